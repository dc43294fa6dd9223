//! The authorization code flow: starting a sign-in ([`begin`]), and finishing it from the URL the
//! browser comes back to ([`complete`]), with every check made before anything is stored.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use rusqlite::{params, OptionalExtension};

use super::{
    oauth_client, token_error, tokens_of, Connected, Flow, Http, OAuthError, FLOW_LIFETIME,
};
use crate::accounts;
use crate::backends::{self, BackendRecord};
use crate::db::{now_ms, Db};
use crate::error::Error;
use crate::secrets::{SealContext, Vault};
use crate::storage::cloud::{ClientConfig, Provider};

type Result<T, E = OAuthError> = std::result::Result<T, E>;

fn flow_context(id: i64) -> SealContext<'static> {
    SealContext {
        table: "oauth_flows",
        record: id,
        field: "code_verifier",
    }
}

/// Starts a sign-in for a cloud backend, to come back to `redirect_uri`.
pub fn begin(db: &Db, vault: &Vault, backend: &BackendRecord, redirect_uri: &str) -> Result<Flow> {
    let (config, _) = backend.cloud(vault)?;
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|error| Error::Invalid(format!("{redirect_uri:?} is not a URL: {error}")))?;
    let auth_url = AuthUrl::new(config.client.auth_url.clone())
        .map_err(|error| Error::Invalid(format!("the sign-in address is not a URL: {error}")))?;
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
        Ok::<_, OAuthError>(())
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
    let url = reqwest::Url::parse(callback_url).map_err(|_| OAuthError::UnknownState)?;
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
            });
        }
    }
    if used_at.is_some() {
        return Err(OAuthError::AlreadyUsed);
    }
    if now_ms() > expires_at {
        return Err(OAuthError::Expired);
    }
    // Claim the flow before anything else: a second callback racing this one loses here.
    let claimed = db.lock().execute(
        "UPDATE oauth_flows SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![flow_id, now_ms()],
    )?;
    if claimed == 0 {
        return Err(OAuthError::AlreadyUsed);
    }
    if let Some(error) = query("error") {
        return Err(OAuthError::Denied {
            provider,
            error,
            description: query("error_description"),
        });
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
        RedirectUrl::new(redirect_uri).map_err(|error| {
            Error::Invalid(format!("the redirect address is not a URL: {error}"))
        })?,
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
    tracing::info!(backend = %backend.name, %provider, "account connected");
    Ok(Connected {
        backend_id,
        connection_id,
        provider,
        account,
    })
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
