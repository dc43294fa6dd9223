//! Connected accounts (`oauth_connections`): the tokens of a Google or Microsoft sign-in, sealed
//! under the master key before they reach the database.

use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use crate::db::{now_ms, Db};
use crate::error::{Error, Result};
use crate::secrets::{SealContext, Vault};
use crate::storage::cloud::Provider;

const TABLE: &str = "oauth_connections";

fn context(record: i64, field: &str) -> SealContext<'_> {
    SealContext {
        table: TABLE,
        record,
        field,
    }
}

/// Tokens in the clear, only in memory; wiped when dropped.
pub struct Tokens {
    pub access_token: Zeroizing<String>,
    pub refresh_token: Option<Zeroizing<String>>,
    pub expires_at: Option<i64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Stores a new connection's tokens and returns its id. Sealing needs the row id for its
/// associated data, so the row is inserted first and filled in the same transaction.
pub fn connect(
    db: &Db,
    vault: &Vault,
    profile_id: i64,
    provider: Provider,
    account: Option<&str>,
    tokens: &Tokens,
) -> Result<i64> {
    let sealer = vault.sealer()?;
    db.transaction(|tx| {
        let now = now_ms();
        tx.execute(
            "INSERT INTO oauth_connections (profile_id, provider, account, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![profile_id, provider.as_str(), account, now],
        )?;
        let id = tx.last_insert_rowid();
        let access = sealer.seal_str(&tokens.access_token, context(id, "access_token"));
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|token| sealer.seal_str(token, context(id, "refresh_token")));
        tx.execute(
            "UPDATE oauth_connections SET access_token = ?2, refresh_token = ?3, expires_at = ?4, scope = ?5 WHERE id = ?1",
            params![id, access, refresh, tokens.expires_at, tokens.scope],
        )?;
        Ok::<_, Error>(id)
    })
}

/// Replaces a connection's tokens (after a refresh; Microsoft rotates the refresh token too), in
/// one statement, and marks it connected: tokens that work are what "connected" means.
pub fn update_tokens(db: &Db, vault: &Vault, id: i64, tokens: &Tokens) -> Result<()> {
    let sealer = vault.sealer()?;
    let access = sealer.seal_str(&tokens.access_token, context(id, "access_token"));
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|token| sealer.seal_str(token, context(id, "refresh_token")));
    let changed = db.lock().execute(
        "UPDATE oauth_connections SET access_token = ?2, refresh_token = coalesce(?3, refresh_token), expires_at = ?4,
             scope = coalesce(?5, scope), updated_at = ?6, status = 'connected', status_reason = NULL WHERE id = ?1",
        params![id, access, refresh, tokens.expires_at, tokens.scope, now_ms()],
    )?;
    if changed == 0 {
        return Err(Error::NotFound(format!(
            "no connected account with id {id}"
        )));
    }
    Ok(())
}

/// A connection's tokens, opened.
pub fn tokens(db: &Db, vault: &Vault, id: i64) -> Result<Tokens> {
    type Row = (Option<String>, Option<String>, Option<i64>, Option<String>);
    let row: Option<Row> = db
        .lock()
        .query_row(
            "SELECT access_token, refresh_token, expires_at, scope FROM oauth_connections WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let (access, refresh, expires_at, scope) =
        row.ok_or_else(|| Error::NotFound(format!("no connected account with id {id}")))?;
    let sealer = vault.sealer()?;
    let access = access.ok_or_else(|| {
        Error::Invalid(format!(
            "account {id} has no access token; connect it again"
        ))
    })?;
    Ok(Tokens {
        access_token: sealer.open_string(&access, context(id, "access_token"))?,
        refresh_token: refresh
            .map(|sealed| sealer.open_string(&sealed, context(id, "refresh_token")))
            .transpose()?,
        expires_at,
        scope,
    })
}

/// Whether an account still works, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub provider: Provider,
    pub account: Option<String>,
    pub connected: bool,
    pub reason: Option<String>,
}

pub fn status(db: &Db, id: i64) -> Result<Status> {
    let row: Option<(String, Option<String>, String, Option<String>)> = db
        .lock()
        .query_row(
            "SELECT provider, account, status, status_reason FROM oauth_connections WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let (provider, account, status, reason) =
        row.ok_or_else(|| Error::NotFound(format!("no connected account with id {id}")))?;
    Ok(Status {
        provider: Provider::parse(&provider).ok_or_else(|| {
            Error::Invalid(format!(
                "account {id} names an unknown provider {provider:?}"
            ))
        })?,
        account,
        connected: status == "connected",
        reason,
    })
}

/// The provider refused the account's refresh token: it stays stored, unusable, until the user
/// signs in again.
pub fn mark_disconnected(db: &Db, id: i64, reason: &str) -> Result<()> {
    db.lock().execute(
        "UPDATE oauth_connections SET status = 'disconnected', status_reason = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, reason, now_ms()],
    )?;
    Ok(())
}

pub fn set_account(db: &Db, id: i64, account: Option<&str>) -> Result<()> {
    db.lock().execute(
        "UPDATE oauth_connections SET account = coalesce(?2, account) WHERE id = ?1",
        params![id, account],
    )?;
    Ok(())
}
