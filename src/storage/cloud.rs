//! What Google Drive and OneDrive backends share above their wire protocols: the OAuth app
//! registration they are signed in with ([`ClientConfig`], with its identity provider's
//! endpoints and scopes), their stored settings ([`CloudConfig`]), and how they get a bearer
//! token without knowing how accounts are kept: through [`AccessToken`], which the sign-in layer
//! implements, the way object_store's `CredentialProvider` works. [`CloudAccess`] is what a
//! provider holds: the token source, the HTTP client, and the sealing of its upload sessions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pacer::Pacer;
use super::{BackendKind, ErrorKind, Field, FieldError, Operation, StorageError};
use crate::secrets::{SealContext, Vault};

/// The identity platforms whose accounts hold cloud backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Google,
    Microsoft,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Microsoft => "microsoft",
        }
    }

    pub fn parse(text: &str) -> Option<Provider> {
        match text {
            "google" => Some(Provider::Google),
            "microsoft" => Some(Provider::Microsoft),
            _ => None,
        }
    }

    /// The platform whose accounts hold backends of `kind`.
    pub fn of(kind: BackendKind) -> Option<Provider> {
        match kind {
            BackendKind::GoogleDrive => Some(Provider::Google),
            BackendKind::Onedrive => Some(Provider::Microsoft),
            BackendKind::Local | BackendKind::S3 => None,
        }
    }

    // Every URL is configurable: Microsoft's national clouds need other hosts, and the tests
    // point them at fakes. These are the public clouds'.
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

    /// The client id a packager built in (`OFFLOAD_GOOGLE_CLIENT_ID` / `OFFLOAD_MICROSOFT_CLIENT_ID`
    /// in the build's environment), if any: a person's own registration overrides it.
    pub fn built_in_client_id(self) -> Option<&'static str> {
        match self {
            Provider::Google => option_env!("OFFLOAD_GOOGLE_CLIENT_ID"),
            Provider::Microsoft => option_env!("OFFLOAD_MICROSOFT_CLIENT_ID"),
        }
        .filter(|id| !id.trim().is_empty())
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

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Google => "Google",
            Provider::Microsoft => "Microsoft",
        })
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
    /// A registration with the provider's endpoints wherever none is given; what is wrong with
    /// the given ones otherwise.
    pub fn new(
        provider: Provider,
        client_id: String,
        auth_url: Option<String>,
        token_url: Option<String>,
        api_base: Option<String>,
    ) -> Result<ClientConfig, FieldError> {
        if client_id.trim().is_empty() {
            return Err(FieldError::new(
                Field::ClientId,
                format!("a {provider} backend needs the client id of an OAuth app registered with {provider}"),
            ));
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
            reqwest::Url::parse(url).map_err(|error| {
                FieldError::new(Field::Endpoint, format!("{url:?} is not a URL: {error}"))
            })?;
        }
        Ok(config)
    }
}

/// A Google Drive or OneDrive backend as stored. `client.client_secret` is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudConfig {
    pub client: ClientConfig,
    /// The folder uploads go under (Drive folder id, or OneDrive item id); the drive's root when
    /// absent.
    #[serde(default)]
    pub folder_id: Option<String>,
    /// The signed-in account, as the sign-in layer numbers accounts; none until signed in.
    #[serde(default)]
    pub connection_id: Option<i64>,
    /// Bytes per upload request (Drive chunk, OneDrive fragment); the provider's default when
    /// absent. Checked against the provider's rules by [`CloudConfig::check_chunk_size`].
    #[serde(default)]
    pub chunk_size: Option<u64>,
}

impl CloudConfig {
    /// Drive wants multiples of 256 KiB; OneDrive multiples of 320 KiB under 60 MiB.
    pub fn check_chunk_size(kind: BackendKind, bytes: u64) -> Result<(), FieldError> {
        let (multiple, limit) = match kind {
            BackendKind::GoogleDrive => (super::google_drive::CHUNK_MULTIPLE, u64::MAX),
            _ => (
                super::onedrive::FRAGMENT_MULTIPLE,
                super::onedrive::FRAGMENT_LIMIT,
            ),
        };
        let provider = kind.display_name();
        if bytes == 0 || !bytes.is_multiple_of(multiple) || bytes >= limit {
            return Err(FieldError::new(
                Field::ChunkSize,
                format!(
                    "{provider} takes upload requests in multiples of {} KiB{}; {bytes} bytes is not one",
                    multiple / 1024,
                    if limit == u64::MAX { "" } else { " under 60 MiB" }
                ),
            ));
        }
        Ok(())
    }
}

/// Why no token could be had: the kind decides what the queue does (an account that must sign
/// in again waits for that; a sign-in service that cannot be reached is tried again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Where a cloud provider gets the bearer token of its account.
#[async_trait]
pub trait AccessToken: Send + Sync + fmt::Debug {
    /// A current token; with `refresh`, a new one (the provider refused the last with `401`).
    async fn token(&self, refresh: bool) -> Result<Zeroizing<String>, TokenError>;
}

/// An HTTP client for requests that carry credentials: it never follows a redirect, so a token,
/// a code or a secret never goes where an answer points.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// What a cloud provider holds to reach its account: the token source, the HTTP client, and
/// the means to seal the upload sessions it keeps in resume records (whoever holds a session URL
/// can write into the file), bound to its backend's row.
#[derive(Clone)]
pub struct CloudAccess {
    token: Arc<dyn AccessToken>,
    http: reqwest::Client,
    vault: Arc<Vault>,
    backend_id: i64,
    /// Shared with every backend of the same account (see [`Pacer`]).
    pacer: Arc<Pacer>,
}

impl fmt::Debug for CloudAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudAccess")
            .field("backend_id", &self.backend_id)
            .finish_non_exhaustive()
    }
}

impl CloudAccess {
    pub fn new(
        token: Arc<dyn AccessToken>,
        vault: Arc<Vault>,
        backend_id: i64,
        pacer: Arc<Pacer>,
    ) -> CloudAccess {
        CloudAccess {
            token,
            http: http_client(),
            vault,
            backend_id,
            pacer,
        }
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Sends a request that carries no token (an upload URL is its own credential), at the
    /// account's pace.
    pub async fn send_plain(
        &self,
        service: BackendKind,
        operation: Operation,
        target: &(dyn fmt::Display + Sync),
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, StorageError> {
        self.pace(service, target).await;
        let answer = request.send().await.map_err(|error| {
            super::network::transport_failure(service, operation, target, error)
        })?;
        if answer.status().is_success() {
            self.pacer.went_through();
        }
        Ok(answer)
    }

    /// Waits out a pause the provider asked this account for.
    async fn pace(&self, service: BackendKind, target: &(dyn fmt::Display + Sync)) {
        let waited = self.pacer.wait().await;
        if !waited.is_zero() {
            tracing::info!(backend = self.backend_id, %service, %target, ?waited, "waited as the provider asked");
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A bearer token for `operation` on `target`; with `refresh`, a new one.
    pub async fn bearer(
        &self,
        service: BackendKind,
        operation: Operation,
        target: &(dyn fmt::Display + Sync),
        refresh: bool,
    ) -> Result<Zeroizing<String>, StorageError> {
        self.token.token(refresh).await.map_err(|error| {
            StorageError::new(service, operation, error.kind, target, error.message)
        })
    }

    /// Sends the request `build` makes with a bearer token; after a `401`, once more with a
    /// refreshed token. The answer is returned whatever its status.
    pub async fn send(
        &self,
        service: BackendKind,
        operation: Operation,
        target: &(dyn fmt::Display + Sync),
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, StorageError> {
        let mut refreshed = false;
        loop {
            self.pace(service, target).await;
            let token = self.bearer(service, operation, target, refreshed).await?;
            let answer = build(&self.http, &token).send().await.map_err(|error| {
                super::network::transport_failure(service, operation, target, error)
            })?;
            if answer.status() == reqwest::StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                continue;
            }
            if answer.status().is_success() {
                self.pacer.went_through();
            }
            return Ok(answer);
        }
    }

    fn session_context(&self) -> SealContext<'static> {
        SealContext {
            table: "storage_backends",
            record: self.backend_id,
            field: "resume.session_url",
        }
    }

    /// `session`, sealed for a resume record.
    pub fn seal_session(
        &self,
        service: BackendKind,
        session: &str,
    ) -> Result<String, StorageError> {
        let sealer = self.vault.sealer().map_err(|error| {
            StorageError::new(
                service,
                Operation::Upload,
                ErrorKind::Config,
                "upload session",
                error.to_string(),
            )
        })?;
        Ok(sealer.seal_str(session, self.session_context()))
    }

    /// The session a resume record holds, if it opens.
    pub fn open_session(&self, sealed: &str) -> Option<Zeroizing<String>> {
        self.vault
            .sealer()
            .ok()?
            .open_string(sealed, self.session_context())
            .ok()
    }
}
