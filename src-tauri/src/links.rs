//! `offload://` deep links: the end of a Microsoft sign-in comes back as
//! `offload://oauth/microsoft?code=…&state=…`, to this process or through a second launch that
//! the single-instance plugin hands over. The engine checks state, expiry and reuse.

use std::sync::Arc;

use offload::oauth::Connected;
use offload::{Engine, Result};
use serde::Serialize;
use tauri::{AppHandle, Emitter};

/// The redirect address a Microsoft app registration lists for Offload (platform "Mobile and
/// desktop applications").
pub const MICROSOFT_REDIRECT: &str = "offload://oauth/microsoft";

/// The `account-connected` event: a sign-in completed.
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct AccountConnected {
    backend_id: i64,
    account: Option<String>,
}

/// The `account-failed` event: a sign-in was refused (`backend_id` is none for a link that
/// matched no sign-in).
#[derive(Clone, Serialize, ts_rs::TS)]
pub struct AccountFailed {
    backend_id: Option<i64>,
    message: String,
    action: Option<offload::Action>,
}

/// Completes every sign-in link among `urls`; other links are ignored (and never logged: a link
/// carries an authorization code).
pub fn open(app: &AppHandle, engine: &Arc<Engine>, urls: impl IntoIterator<Item = String>) {
    for url in urls
        .into_iter()
        .filter(|url| url.starts_with("offload://oauth/"))
    {
        let app = app.clone();
        let engine = engine.clone();
        tauri::async_runtime::spawn(async move {
            let outcome = engine.complete_sign_in(&url).await;
            signed_in(&app, None, outcome);
        });
    }
}

/// Tells the window, the tray and the log how a sign-in ended.
pub fn signed_in(app: &AppHandle, backend_id: Option<i64>, outcome: Result<Connected>) {
    match outcome {
        Ok(connected) => {
            tracing::info!(backend = connected.backend_id, provider = %connected.provider, "signed in");
            crate::notify::show(
                app,
                "Signed in",
                &match &connected.account {
                    Some(account) => format!("{} is connected as {account}.", connected.provider),
                    None => format!("{} is connected.", connected.provider),
                },
            );
            let _ = app.emit(
                "account-connected",
                AccountConnected {
                    backend_id: connected.backend_id,
                    account: connected.account,
                },
            );
        }
        Err(error) => {
            tracing::warn!(%error, "refused a sign-in");
            crate::notify::show(app, "Sign-in failed", &error.to_string());
            let _ = app.emit(
                "account-failed",
                AccountFailed {
                    backend_id,
                    action: error.action(),
                    message: error.to_string(),
                },
            );
        }
    }
}
