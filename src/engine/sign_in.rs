//! Signing a cloud backend's account in, whichever way the browser comes back.

use super::Engine;
use crate::backends;
use crate::error::{Error, Result};
use crate::oauth::{self, Connected, Flow, Loopback};
use crate::queue;
use crate::storage::cloud::Provider;

/// A sign-in that has started: the address to open (the shells always show it, copyable, in
/// case no browser opened), and, when the browser comes back to a loopback listener of this
/// process, that listener.
pub struct SignIn {
    pub url: String,
    loopback: Option<(Loopback, Flow)>,
}

impl SignIn {
    /// Waits for the browser to come back to this process, completes the sign-in, and lets the
    /// backend's waiting uploads go. `None` when it comes back by a deep link instead (which
    /// [`Engine::complete_sign_in`] takes, in whichever process receives it).
    pub async fn finish(self, engine: &Engine) -> Option<Result<Connected>> {
        let (loopback, flow) = self.loopback?;
        let finished = loopback
            .finish(&engine.db, &engine.vault, &oauth::http_client(), &flow)
            .await
            .map_err(Error::from);
        Some(finished.and_then(|connected| engine.signed_in(connected)))
    }
}

impl Engine {
    /// Starts a sign-in to the account of backend `backend_id`. Google only lets desktop apps
    /// come back to a loopback address, so it always gets a one-time listener of this process;
    /// Microsoft comes back to `deep_link` when the shell handles one (the desktop app's
    /// `offload://oauth/microsoft`), else to a listener too.
    pub async fn start_sign_in(&self, backend_id: i64, deep_link: Option<&str>) -> Result<SignIn> {
        let record = backends::get(&self.db, backend_id)?;
        let (config, _) = record.cloud(&self.vault)?;
        if let (Provider::Microsoft, Some(link)) = (config.client.provider, deep_link) {
            let flow = oauth::begin(&self.db, &self.vault, &record, link)?;
            return Ok(SignIn {
                url: flow.url,
                loopback: None,
            });
        }
        let loopback = Loopback::bind().await?;
        let flow = oauth::begin(&self.db, &self.vault, &record, &loopback.redirect_uri)?;
        Ok(SignIn {
            url: flow.url.clone(),
            loopback: Some((loopback, flow)),
        })
    }

    /// Starts a sign-in whose browser comes back to `callback` (the local API's callback route),
    /// for a backend of `provider`'s; returns the address to open.
    pub fn start_sign_in_returning_to(
        &self,
        backend_id: i64,
        provider: Provider,
        callback: &str,
    ) -> Result<String> {
        let record = backends::get(&self.db, backend_id)?;
        let (config, _) = record.cloud(&self.vault)?;
        if config.client.provider != provider {
            return Err(Error::Invalid(format!(
                "backend {:?} signs in with {}, not {provider}",
                record.name, config.client.provider
            )));
        }
        Ok(oauth::begin(&self.db, &self.vault, &record, callback)?.url)
    }

    /// Finishes a sign-in from the URL the browser came back to (a deep link): see
    /// [`oauth::complete`]. The backend's uploads that waited for it go at once.
    pub async fn complete_sign_in(&self, callback_url: &str) -> Result<Connected> {
        let connected =
            oauth::complete(&self.db, &self.vault, &oauth::http_client(), callback_url).await?;
        self.signed_in(connected)
    }

    fn signed_in(&self, connected: Connected) -> Result<Connected> {
        let queued = queue::backend_changed(&self.db.lock(), connected.backend_id)?;
        tracing::info!(
            backend = connected.backend_id,
            queued,
            "uploads waiting for the sign-in go now"
        );
        self.wake_daemon();
        Ok(connected)
    }
}
