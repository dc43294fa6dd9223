//! Signing in to Google and Microsoft: the authorization code flow with PKCE (RFC 7636, S256),
//! a random `state` per attempt ([`flow`]), the loopback listener the browser comes back to
//! ([`loopback`]), and access tokens kept fresh ([`refresh`]).
//!
//! A sign-in is a row of `oauth_flows` (state, provider, backend, the PKCE verifier sealed, the
//! redirect URI), valid for [`FLOW_LIFETIME`] and usable once. The browser comes back either to a
//! loopback address (`http://127.0.0.1:<port>/oauth/callback`, RFC 8252; the only kind Google
//! allows desktop clients) or to the deep link `offload://oauth/microsoft`; both end in
//! [`complete`], whichever process receives them, because the flow lives in the database.
//!
//! Tokens are sealed in `oauth_connections`. [`access_token`] refreshes ahead of expiry, and the
//! refresh token a provider sends back (Microsoft rotates it on every use) is stored before the
//! new access token is handed out. A refresh refused with `invalid_grant` marks the account
//! disconnected: nothing is deleted, and signing in again brings it back. What a sign-in makes
//! happen elsewhere (the queue trying the backend's uploads again) is the caller's business.

mod flow;
mod loopback;
mod refresh;

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, RequestTokenError, TokenResponse,
    TokenUrl,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::accounts::Tokens;
use crate::db::now_ms;
use crate::error::Error;
use crate::storage::cloud::{ClientConfig, Provider};

pub use crate::storage::cloud::http_client;
pub use flow::{begin, complete, state_of};
pub use loopback::{Loopback, CALLBACK_PATH};
pub use refresh::{access_token, Accounts};

/// How long a sign-in may take from the printed URL to the callback.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(
        "this sign-in link is not one Offload started (unknown state); start the sign-in again"
    )]
    UnknownState,
    #[error("this sign-in was started more than 10 minutes ago and has expired; start it again")]
    Expired,
    #[error("this sign-in was already completed; a callback is only accepted once")]
    AlreadyUsed,
    #[error("the callback came from {found}, but this sign-in was for {expected}")]
    WrongProvider { expected: Provider, found: String },
    #[error("{provider} did not grant access: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        provider: Provider,
        error: String,
        description: Option<String>,
    },
    #[error("{provider} refused the sign-in: {detail}; start it again")]
    Exchange { provider: Provider, detail: String },
    #[error("the {provider} account of backend {backend:?} needs signing in again ({reason})")]
    Disconnected {
        provider: Provider,
        backend: String,
        backend_id: i64,
        reason: String,
    },
    #[error("the {provider} sign-in service cannot be reached: {detail}")]
    Unreachable { provider: Provider, detail: String },
    /// Something below the sign-in failed (the database, the keychain, a missing backend).
    #[error(transparent)]
    Engine(#[from] Error),
}

impl From<rusqlite::Error> for OAuthError {
    fn from(error: rusqlite::Error) -> OAuthError {
        OAuthError::Engine(error.into())
    }
}

impl From<crate::secrets::SecretsError> for OAuthError {
    fn from(error: crate::secrets::SecretsError) -> OAuthError {
        OAuthError::Engine(error.into())
    }
}

impl From<OAuthError> for Error {
    fn from(error: OAuthError) -> Error {
        let backend_id = match &error {
            OAuthError::Engine(_) => None,
            OAuthError::Disconnected { backend_id, .. } => Some(*backend_id),
            _ => None,
        };
        match error {
            OAuthError::Engine(inner) => inner,
            other => Error::SignIn {
                message: other.to_string(),
                backend_id,
            },
        }
    }
}

/// A sign-in that has started: open `url` in a browser.
#[derive(Debug, Clone)]
pub struct Flow {
    pub url: String,
    pub state: String,
}

/// A finished sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connected {
    pub backend_id: i64,
    pub connection_id: i64,
    pub provider: Provider,
    pub account: Option<String>,
}

pub(crate) type Client = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

pub(crate) fn oauth_client(
    config: &ClientConfig,
    secret: Option<&Zeroizing<String>>,
) -> Result<Client, OAuthError> {
    let token_url = TokenUrl::new(config.token_url.clone())
        .map_err(|error| Error::Invalid(format!("the token address is not a URL: {error}")))?;
    let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_token_uri(token_url)
        // Google and Microsoft both take the client in the form body.
        .set_auth_type(AuthType::RequestBody);
    if let Some(secret) = secret {
        client = client.set_client_secret(ClientSecret::new(secret.as_str().to_owned()));
    }
    Ok(client)
}

pub(crate) fn tokens_of(answer: &oauth2::basic::BasicTokenResponse) -> Tokens {
    Tokens {
        access_token: Zeroizing::new(answer.access_token().secret().clone()),
        refresh_token: answer
            .refresh_token()
            .map(|token| Zeroizing::new(token.secret().clone())),
        expires_at: answer
            .expires_in()
            .map(|lifetime| now_ms() + lifetime.as_millis() as i64),
        scope: answer.scopes().map(|scopes| {
            scopes
                .iter()
                .map(|scope| scope.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        }),
    }
}

pub(crate) fn token_error<RE: std::error::Error + 'static>(
    provider: Provider,
    error: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => OAuthError::Exchange {
            provider,
            detail: match response.error_description() {
                Some(description) => format!("{} ({description})", response.error()),
                None => response.error().to_string(),
            },
        },
        RequestTokenError::Request(error) => OAuthError::Unreachable {
            provider,
            detail: error.to_string(),
        },
        RequestTokenError::Parse(error, _) => OAuthError::Exchange {
            provider,
            detail: format!("its answer could not be read: {error}"),
        },
        RequestTokenError::Other(detail) => OAuthError::Exchange { provider, detail },
    }
}

/// `oauth2`'s HTTP interface over our `reqwest` client.
pub(crate) struct Http<'a>(pub(crate) &'a reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpError(String);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::result::Result<HttpResponse, HttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|error| HttpError(crate::storage::network::chain(&error.without_url())))?;
            let answer = client.execute(request).await.map_err(|error| {
                let host = crate::storage::network::host_of(error.url());
                HttpError(
                    crate::storage::network::unreachable(&host, &error, error.is_timeout()).message,
                )
            })?;
            let mut response = axum::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            let body = answer.bytes().await.map_err(|error| {
                let host = crate::storage::network::host_of(error.url());
                HttpError(format!("the answer from {host} was cut off"))
            })?;
            response
                .body(body.to_vec())
                .map_err(|error| HttpError(error.to_string()))
        })
    }
}
