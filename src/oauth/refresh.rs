//! Access tokens kept fresh: refreshed ahead of expiry and after a `401`, one refresh at a time,
//! the rotated refresh token stored before the new access token is handed out; and the token
//! source cloud backends get their tokens from ([`Accounts`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RefreshToken, RequestTokenError};
use zeroize::Zeroizing;

use super::{http_client, oauth_client, token_error, tokens_of, Http, OAuthError};
use crate::accounts::{self, Tokens};
use crate::backends::{self, BackendRecord, TokenSources};
use crate::db::{now_ms, Db};
use crate::secrets::Vault;
use crate::storage::cloud::{AccessToken, TokenError};
use crate::storage::pacer::Pacer;
use crate::storage::ErrorKind;

type Result<T, E = OAuthError> = std::result::Result<T, E>;

/// Refresh when less than this is left, so a request never starts with a token about to expire.
const REFRESH_AHEAD: Duration = Duration::from_secs(120);

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
    let disconnected = |reason: String| OAuthError::Disconnected {
        provider,
        backend: backend.name.clone(),
        backend_id: backend.id,
        reason,
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
    disconnected: &dyn Fn(String) -> OAuthError,
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

/// The token source of one cloud backend: its row is read for every token, so an account signed
/// in (or again) is used from the next request on, whoever signed it in.
#[derive(Debug)]
struct AccountToken {
    db: Db,
    vault: Arc<Vault>,
    http: reqwest::Client,
    backend_id: i64,
}

#[async_trait]
impl AccessToken for AccountToken {
    async fn token(&self, refresh: bool) -> Result<Zeroizing<String>, TokenError> {
        let token = match backends::get(&self.db, self.backend_id) {
            Ok(record) => access_token(&self.db, &self.vault, &self.http, &record, refresh).await,
            Err(error) => Err(error.into()),
        };
        token.map_err(|error| TokenError {
            // A disconnected account waits for the person to sign in again; a sign-in service
            // that cannot be reached is worth another try.
            kind: match &error {
                OAuthError::Disconnected { .. } => ErrorKind::SignInRequired,
                OAuthError::Unreachable { .. } => ErrorKind::Temporary,
                _ => ErrorKind::Unauthenticated,
            },
            message: error.to_string(),
        })
    }
}

/// The accounts of this data folder, as cloud backends get their tokens from them.
pub struct Accounts {
    db: Db,
    vault: Arc<Vault>,
    http: reqwest::Client,
    /// The pace of each account by its connection's id (a backend never signed in: its own,
    /// under its negated id).
    pacers: Mutex<HashMap<i64, Arc<Pacer>>>,
}

impl Accounts {
    pub fn new(db: &Db, vault: &Arc<Vault>) -> Accounts {
        Accounts {
            db: db.clone(),
            vault: vault.clone(),
            http: http_client(),
            pacers: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenSources for Accounts {
    fn token_source(&self, backend_id: i64) -> Arc<dyn AccessToken> {
        Arc::new(AccountToken {
            db: self.db.clone(),
            vault: self.vault.clone(),
            http: self.http.clone(),
            backend_id,
        })
    }

    fn pacer(&self, backend_id: i64) -> Arc<Pacer> {
        let connection = backends::get(&self.db, backend_id)
            .ok()
            .and_then(|backend| backend.stored_connection());
        let key = connection.unwrap_or(-backend_id);
        let mut pacers = self
            .pacers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pacers.entry(key).or_default().clone()
    }
}
