//! The loopback end of a sign-in (RFC 8252): a one-time listener on `127.0.0.1` that the provider
//! sends the browser back to, and the small page the browser tab then shows.

use super::{complete, state_of, Connected, Flow, OAuthError, FLOW_LIFETIME};
use crate::db::Db;
use crate::error::Error;
use crate::secrets::Vault;

type Result<T, E = OAuthError> = std::result::Result<T, E>;

/// The path of the loopback redirect.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// The loopback end of a sign-in (RFC 8252): a listener on `127.0.0.1` at a port the system
/// picks, to which the provider sends the browser back.
pub struct Loopback {
    listener: tokio::net::TcpListener,
    pub redirect_uri: String,
}

impl Loopback {
    pub async fn bind() -> Result<Loopback, Error> {
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
            _ => Err(OAuthError::Expired),
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
