//! Signing in to Google and Microsoft: the authorization code flow with PKCE (RFC 7636, S256),
//! a random `state` per attempt, and access tokens kept fresh.
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
//! disconnected: nothing is deleted, and signing in again brings it back.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest,
    HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::accounts::{self, Provider, Tokens};
use crate::backends::{self, BackendRecord};
use crate::db::{now_ms, Db};
use crate::error::{Error, Result};
use crate::secrets::{SealContext, Vault};
use crate::storage::{BackendKind, ErrorKind, Operation, StorageError};

/// How long a sign-in may take from the printed URL to the callback.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Refresh when less than this is left, so a request never starts with a token about to expire.
const REFRESH_AHEAD: Duration = Duration::from_secs(120);
/// The path of the loopback redirect.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// A provider's endpoints and scopes. Every URL is configurable: Microsoft's national clouds
/// need other hosts, and the tests point them at fakes.
impl Provider {
    pub fn default_auth_url(self) -> &'static str {
        match self {
            Provider::Google => "https://accounts.google.com/o/oauth2/v2/auth",
            Provider::Microsoft => "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        }
    }

    pub fn default_token_url(self) -> &'static str {
        match self {
            Provider::Google => "https://oauth2.googleapis.com/token",
            Provider::Microsoft => "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        }
    }

    pub fn default_api_base(self) -> &'static str {
        match self {
            Provider::Google => "https://www.googleapis.com",
            Provider::Microsoft => "https://graph.microsoft.com/v1.0",
        }
    }

    /// The narrowest scopes that let Offload manage the files it uploads: Drive's `drive.file`
    /// covers only files this app created; Microsoft needs `offline_access` for a refresh
    /// token and `User.Read` to name the account.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Provider::Google => &["https://www.googleapis.com/auth/drive.file"],
            Provider::Microsoft => &["Files.ReadWrite", "offline_access", "User.Read"],
        }
    }
}

/// An OAuth client registration, as stored in a cloud backend's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub provider: Provider,
    pub client_id: String,
    /// Sealed when stored. Google's desktop clients have a secret that is not confidential;
    /// it is sealed all the same.
    #[serde(default)]
    pub client_secret: Option<String>,
    pub auth_url: String,
    pub token_url: String,
    pub api_base: String,
}

impl ClientConfig {
    /// A registration with the provider's endpoints wherever none is given.
    pub fn new(
        provider: Provider,
        client_id: String,
        auth_url: Option<String>,
        token_url: Option<String>,
        api_base: Option<String>,
    ) -> Result<ClientConfig> {
        if client_id.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "a {provider} backend needs the client id of an OAuth app registered with {provider}"
            )));
        }
        let config = ClientConfig {
            provider,
            client_id,
            client_secret: None,
            auth_url: auth_url.unwrap_or_else(|| provider.default_auth_url().to_owned()),
            token_url: token_url.unwrap_or_else(|| provider.default_token_url().to_owned()),
            api_base: api_base
                .unwrap_or_else(|| provider.default_api_base().to_owned())
                .trim_end_matches('/')
                .to_owned(),
        };
        for url in [&config.auth_url, &config.token_url, &config.api_base] {
            reqwest::Url::parse(url)
                .map_err(|error| Error::Invalid(format!("{url:?} is not a URL: {error}")))?;
        }
        Ok(config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("this sign-in link is not one Offload started (unknown state); start again with `offload backend connect`")]
    UnknownState,
    #[error("this sign-in was started more than 10 minutes ago and has expired; start again with `offload backend connect`")]
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
    #[error(
        "{provider} refused the sign-in: {detail}; start again with `offload backend connect`"
    )]
    Exchange { provider: Provider, detail: String },
    #[error("the {provider} account of backend {backend:?} needs signing in again ({reason}): run `offload backend connect {backend} --profile {profile}`")]
    Disconnected {
        provider: Provider,
        backend: String,
        profile: String,
        reason: String,
    },
    #[error("the {provider} sign-in service cannot be reached: {detail}")]
    Unreachable { provider: Provider, detail: String },
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

fn flow_context(id: i64) -> SealContext<'static> {
    SealContext {
        table: "oauth_flows",
        record: id,
        field: "code_verifier",
    }
}

/// The HTTP client for token requests: no redirects, so a token request never follows a
/// provider's answer somewhere else with the code or the secret.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// Starts a sign-in for a cloud backend, to come back to `redirect_uri`.
pub fn begin(db: &Db, vault: &Vault, backend: &BackendRecord, redirect_uri: &str) -> Result<Flow> {
    let (config, _) = backend.cloud(vault)?;
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|error| Error::Invalid(format!("{redirect_uri:?} is not a URL: {error}")))?;
    let auth_url = AuthUrl::new(config.client.auth_url.clone())
        .map_err(|error| Error::Invalid(error.to_string()))?;
    let client = BasicClient::new(ClientId::new(config.client.client_id.clone()))
        .set_auth_uri(auth_url)
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in config.client.provider.scopes() {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    if config.client.provider == Provider::Google {
        // Without these Google issues no refresh token on a second sign-in.
        request = request
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent");
    }
    let (url, state) = request.url();
    let sealer = vault.sealer()?;
    let now = now_ms();
    db.transaction(|tx| {
        tx.execute(
            "INSERT INTO oauth_flows (state, provider, backend_id, code_verifier, redirect_uri, created_at, expires_at)
             VALUES (?1, ?2, ?3, '', ?4, ?5, ?6)",
            params![
                state.secret(),
                config.client.provider.as_str(),
                backend.id,
                redirect_uri,
                now,
                now + FLOW_LIFETIME.as_millis() as i64
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE oauth_flows SET code_verifier = ?2 WHERE id = ?1",
            params![id, sealer.seal_str(verifier.secret(), flow_context(id))],
        )?;
        // Old attempts are of no use to anyone.
        tx.execute("DELETE FROM oauth_flows WHERE expires_at < ?1", [now - 86_400_000])?;
        Ok::<_, Error>(())
    })?;
    Ok(Flow {
        url: url.to_string(),
        state: state.secret().clone(),
    })
}

/// The `state` a callback URL carries, if any.
pub fn state_of(callback_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(callback_url).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == "state")
        .map(|(_, value)| value.into_owned())
}

/// Finishes a sign-in from the URL the browser came back to (loopback or deep link): checks the
/// state, its age and that it is used once, exchanges the code with the PKCE verifier, and
/// stores the tokens sealed. Nothing is stored unless every check passes.
pub async fn complete(
    db: &Db,
    vault: &Vault,
    http: &reqwest::Client,
    callback_url: &str,
) -> Result<Connected> {
    let url =
        reqwest::Url::parse(callback_url).map_err(|_| Error::from(OAuthError::UnknownState))?;
    let query = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let state = query("state").ok_or(OAuthError::UnknownState)?;
    type FlowRow = (i64, String, i64, String, String, i64, Option<i64>);
    let row: Option<FlowRow> = db
        .lock()
        .query_row(
            "SELECT id, provider, backend_id, code_verifier, redirect_uri, expires_at, used_at FROM oauth_flows WHERE state = ?1",
            [&state],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            },
        )
        .optional()?;
    let (flow_id, provider, backend_id, sealed_verifier, redirect_uri, expires_at, used_at) =
        row.ok_or(OAuthError::UnknownState)?;
    let provider = Provider::parse(&provider).ok_or(OAuthError::UnknownState)?;
    // A deep link names its provider (`offload://oauth/microsoft`); it must be this flow's.
    if url.scheme() == "offload" {
        let named = url.path().trim_start_matches('/');
        if named != provider.as_str() {
            return Err(OAuthError::WrongProvider {
                expected: provider,
                found: named.to_owned(),
            }
            .into());
        }
    }
    if used_at.is_some() {
        return Err(OAuthError::AlreadyUsed.into());
    }
    if now_ms() > expires_at {
        return Err(OAuthError::Expired.into());
    }
    // Claim the flow before anything else: a second callback racing this one loses here.
    let claimed = db.lock().execute(
        "UPDATE oauth_flows SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![flow_id, now_ms()],
    )?;
    if claimed == 0 {
        return Err(OAuthError::AlreadyUsed.into());
    }
    if let Some(error) = query("error") {
        return Err(OAuthError::Denied {
            provider,
            error,
            description: query("error_description"),
        }
        .into());
    }
    let code = query("code").ok_or_else(|| OAuthError::Exchange {
        provider,
        detail: "the callback carries no authorization code".into(),
    })?;
    let verifier = vault
        .sealer()?
        .open_string(&sealed_verifier, flow_context(flow_id))?;
    let backend = backends::get(db, backend_id)?;
    let (config, secret) = backend.cloud(vault)?;
    let client = oauth_client(&config.client, secret.as_ref())?.set_redirect_uri(
        RedirectUrl::new(redirect_uri).map_err(|error| Error::Invalid(error.to_string()))?,
    );
    let answer = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.as_str().to_owned()))
        .request_async(&Http(http))
        .await
        .map_err(|error| token_error(provider, error))?;
    let tokens = tokens_of(&answer);
    let account = account_name(http, &config.client, &tokens.access_token).await;
    let connection_id = match config.connection_id {
        Some(id) if accounts::status(db, id).is_ok() => {
            accounts::update_tokens(db, vault, id, &tokens)?;
            accounts::set_account(db, id, account.as_deref())?;
            id
        }
        _ => accounts::connect(
            db,
            vault,
            backend.profile_id,
            provider,
            account.as_deref(),
            &tokens,
        )?,
    };
    backends::set_connection(db, backend_id, connection_id)?;
    let waiting = crate::queue::backend_changed(&db.lock(), backend_id)?;
    tracing::info!(backend = %backend.name, %provider, waiting, "account connected");
    Ok(Connected {
        backend_id,
        connection_id,
        provider,
        account,
    })
}

/// An access token for a connected cloud backend: the stored one while it has more than two
/// minutes left (and `refresh` is false), a refreshed one otherwise. Call with `refresh` after
/// a `401`.
pub async fn access_token(
    db: &Db,
    vault: &Vault,
    http: &reqwest::Client,
    backend: &BackendRecord,
    refresh: bool,
) -> Result<Zeroizing<String>> {
    let (config, secret) = backend.cloud(vault)?;
    let provider = config.client.provider;
    let disconnected = |reason: String| -> Error {
        let profile = crate::profiles::get(db, backend.profile_id)
            .map(|profile| profile.name)
            .unwrap_or_default();
        OAuthError::Disconnected {
            provider,
            backend: backend.name.clone(),
            profile,
            reason,
        }
        .into()
    };
    let Some(connection_id) = config.connection_id else {
        return Err(disconnected("it was never signed in".into()));
    };
    // One refresh at a time: two refreshes with the same rotating refresh token would leave the
    // loser with a token Microsoft has already retired.
    static REFRESHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let seen = accounts::tokens(db, vault, connection_id)?;
    if !refresh && !expires_soon(&seen) {
        check_connected(db, connection_id, &disconnected)?;
        return Ok(seen.access_token);
    }
    let _refreshing = REFRESHING.lock().await;
    check_connected(db, connection_id, &disconnected)?;
    let current = accounts::tokens(db, vault, connection_id)?;
    if current.access_token != seen.access_token && !expires_soon(&current) {
        // Someone else refreshed while this one waited.
        return Ok(current.access_token);
    }
    let Some(refresh_token) = current.refresh_token else {
        let reason = "the provider gave no refresh token";
        accounts::mark_disconnected(db, connection_id, reason)?;
        return Err(disconnected(reason.into()));
    };
    let client = oauth_client(&config.client, secret.as_ref())?;
    let answer = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token.as_str().to_owned()))
        .request_async(&Http(http))
        .await;
    match answer {
        Ok(answer) => {
            let tokens = tokens_of(&answer);
            // Stored before use: if the process dies now, the rotated refresh token is not lost.
            accounts::update_tokens(db, vault, connection_id, &tokens)?;
            tracing::debug!(backend = %backend.name, rotated = tokens.refresh_token.is_some(), "access token refreshed");
            Ok(tokens.access_token)
        }
        Err(RequestTokenError::ServerResponse(response))
            if *response.error() == BasicErrorResponseType::InvalidGrant =>
        {
            let reason = match response.error_description() {
                Some(description) => format!("sign in again: {description}"),
                None => "sign in again: the provider no longer accepts the stored sign-in".into(),
            };
            accounts::mark_disconnected(db, connection_id, &reason)?;
            tracing::warn!(backend = %backend.name, %reason, "account disconnected");
            Err(disconnected(reason))
        }
        Err(error) => Err(token_error(provider, error)),
    }
}

fn check_connected(
    db: &Db,
    connection_id: i64,
    disconnected: &dyn Fn(String) -> Error,
) -> Result<()> {
    let status = accounts::status(db, connection_id)?;
    if status.connected {
        Ok(())
    } else {
        Err(disconnected(
            status.reason.unwrap_or_else(|| "sign in again".into()),
        ))
    }
}

fn expires_soon(tokens: &Tokens) -> bool {
    tokens
        .expires_at
        .is_some_and(|at| at - now_ms() < REFRESH_AHEAD.as_millis() as i64)
}

type Client = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn oauth_client(config: &ClientConfig, secret: Option<&Zeroizing<String>>) -> Result<Client> {
    let token_url = TokenUrl::new(config.token_url.clone())
        .map_err(|error| Error::Invalid(error.to_string()))?;
    let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_token_uri(token_url)
        // Google and Microsoft both take the client in the form body.
        .set_auth_type(AuthType::RequestBody);
    if let Some(secret) = secret {
        client = client.set_client_secret(ClientSecret::new(secret.as_str().to_owned()));
    }
    Ok(client)
}

fn tokens_of(answer: &oauth2::basic::BasicTokenResponse) -> Tokens {
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

fn token_error<RE: std::error::Error + 'static>(
    provider: Provider,
    error: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> Error {
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
    .into()
}

/// Who signed in, for the user to see: Drive's `about.user`, Graph's `/me`.
async fn account_name(
    http: &reqwest::Client,
    config: &ClientConfig,
    access_token: &str,
) -> Option<String> {
    let (path, fields): (&str, &[&[&str]]) = match config.provider {
        Provider::Google => (
            "/drive/v3/about?fields=user",
            &[&["user", "emailAddress"], &["user", "displayName"]],
        ),
        Provider::Microsoft => (
            "/me",
            &[&["userPrincipalName"], &["mail"], &["displayName"]],
        ),
    };
    let answer = http
        .get(format!("{}{path}", config.api_base))
        .bearer_auth(access_token)
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = answer.error_for_status().ok()?.json().await.ok()?;
    fields.iter().find_map(|path| {
        path.iter()
            .try_fold(&body, |value, key| value.get(key))
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    })
}

/// `oauth2`'s HTTP interface over our `reqwest` client.
struct Http<'a>(&'a reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

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
                HttpError(crate::storage::network::unreachable(&host, &error, error.is_timeout()).1)
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

/// The loopback end of a sign-in (RFC 8252): a listener on `127.0.0.1` at a port the system
/// picks, to which the provider sends the browser back.
pub struct Loopback {
    listener: tokio::net::TcpListener,
    pub redirect_uri: String,
}

impl Loopback {
    pub async fn bind() -> Result<Loopback> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|error| Error::io("cannot listen for the sign-in callback", error))?;
        let port = listener
            .local_addr()
            .map_err(|error| Error::io("cannot listen for the sign-in callback", error))?
            .port();
        Ok(Loopback {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{CALLBACK_PATH}"),
        })
    }

    /// Waits for the browser to come back with `flow`'s state, completes the sign-in and shows
    /// the outcome in the browser (never the code or a token). Callbacks with another state are
    /// turned away and waiting goes on; after [`FLOW_LIFETIME`] the sign-in has expired.
    pub async fn finish(
        self,
        db: &Db,
        vault: &std::sync::Arc<Vault>,
        http: &reqwest::Client,
        flow: &Flow,
    ) -> Result<Connected> {
        use axum::extract::State;
        use axum::response::Html;

        type Outcome = std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Result<Connected>>>>;
        struct Waiting {
            db: Db,
            vault: std::sync::Arc<Vault>,
            http: reqwest::Client,
            redirect_uri: String,
            state: String,
            outcome: Outcome,
        }
        async fn callback(
            State(waiting): State<std::sync::Arc<Waiting>>,
            uri: axum::http::Uri,
        ) -> (axum::http::StatusCode, Html<String>) {
            let url = format!(
                "{}?{}",
                waiting.redirect_uri,
                uri.query().unwrap_or_default()
            );
            if state_of(&url).as_deref() != Some(waiting.state.as_str()) {
                return (
                    axum::http::StatusCode::BAD_REQUEST,
                    page(
                        "Not this sign-in",
                        "This is not the sign-in Offload is waiting for.",
                    ),
                );
            }
            let result = complete(&waiting.db, &waiting.vault, &waiting.http, &url).await;
            let answer = match &result {
                Ok(connected) => (
                    axum::http::StatusCode::OK,
                    page(
                        "Connected",
                        &format!(
                            "Offload is connected to {}{}. You can close this tab.",
                            connected.provider,
                            connected
                                .account
                                .as_deref()
                                .map(|account| format!(" as {account}"))
                                .unwrap_or_default()
                        ),
                    ),
                ),
                Err(error) => (
                    axum::http::StatusCode::BAD_REQUEST,
                    page("Not connected", &error.to_string()),
                ),
            };
            let sender = waiting
                .outcome
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(sender) = sender {
                let _ = sender.send(result);
            }
            answer
        }

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let waiting = std::sync::Arc::new(Waiting {
            db: db.clone(),
            vault: vault.clone(),
            http: http.clone(),
            redirect_uri: self.redirect_uri.clone(),
            state: flow.state.clone(),
            outcome: std::sync::Mutex::new(Some(sender)),
        });
        let router = axum::Router::new()
            .route(CALLBACK_PATH, axum::routing::get(callback))
            .with_state(waiting);
        let stop = tokio_util::sync::CancellationToken::new();
        let server = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });
        let outcome = tokio::time::timeout(FLOW_LIFETIME, receiver).await;
        stop.cancel();
        let _ = server.await;
        match outcome {
            Ok(Ok(result)) => result,
            _ => Err(OAuthError::Expired.into()),
        }
    }
}

/// A small page for the browser tab the sign-in ends in.
fn page(title: &str, message: &str) -> axum::response::Html<String> {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    axum::response::Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Offload: {title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; margin: 3em\"><h1>{title}</h1><p>{}</p></body></html>",
        escape(message),
        title = escape(title)
    ))
}

/// Bearer tokens for one cloud backend, as its storage module needs them.
#[derive(Clone)]
pub struct Authorizer {
    db: Db,
    vault: std::sync::Arc<Vault>,
    http: reqwest::Client,
    record: BackendRecord,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("backend", &self.record.name)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    pub fn new(db: &Db, vault: &std::sync::Arc<Vault>, record: &BackendRecord) -> Authorizer {
        Authorizer {
            db: db.clone(),
            vault: vault.clone(),
            http: http_client(),
            record: record.clone(),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn backend_id(&self) -> i64 {
        self.record.id
    }

    /// A current access token; `refresh` after the provider answered `401`.
    pub async fn token(&self, refresh: bool) -> Result<Zeroizing<String>> {
        access_token(&self.db, &self.vault, &self.http, &self.record, refresh).await
    }

    /// Sends the request `build` makes with a bearer token; after a `401`, once more with a
    /// refreshed token. The answer is returned whatever its status.
    pub async fn send(
        &self,
        service: BackendKind,
        operation: Operation,
        target: &(dyn std::fmt::Display + Sync),
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> std::result::Result<reqwest::Response, StorageError> {
        let mut refreshed = false;
        loop {
            let token = self
                .token(refreshed)
                .await
                .map_err(|error| token_failure(service, operation, target, error))?;
            let answer = build(&self.http, &token).send().await.map_err(|error| {
                crate::storage::network::transport_failure(service, operation, target, error)
            })?;
            if answer.status() == reqwest::StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }
}

/// A token that could not be had, as a storage error: a disconnected account waits for the user
/// to sign in again; a token endpoint that cannot be reached is worth another try.
pub fn token_failure(
    service: BackendKind,
    operation: Operation,
    target: &(dyn std::fmt::Display + Sync),
    error: Error,
) -> StorageError {
    let kind = match &error {
        Error::OAuth(OAuthError::Disconnected { .. }) => ErrorKind::SignInRequired,
        Error::OAuth(OAuthError::Unreachable { .. }) => ErrorKind::Temporary,
        _ => ErrorKind::Unauthenticated,
    };
    StorageError::new(service, operation, kind, target, error.to_string())
}
