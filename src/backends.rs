//! Configured storage backends: the `storage_backends` rows of each profile, and turning a row
//! into a live [`StorageBackend`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::db::{now_ms, ChangeCheck, Db, Revision};
use crate::error::{is_unique_violation, Error, Result};
use crate::secrets::{SealContext, Sealer, Vault};
use crate::storage::cloud::{AccessToken, ClientConfig, CloudAccess, CloudConfig, Provider};
use crate::storage::google_drive::GoogleDrive;
use crate::storage::local::{LocalBackend, LocalConfig};
use crate::storage::onedrive::OneDrive;
use crate::storage::pacer::Pacer;
use crate::storage::s3::{Provider as S3Provider, S3Backend, S3Config, S3Options};
use crate::storage::{BackendKind, StorageBackend};
use zeroize::Zeroizing;

/// The settings of a backend, by type, secrets in the clear (they are sealed when stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSettings {
    Local(LocalConfig),
    S3 {
        config: Box<S3Config>,
        secret_access_key: Zeroizing<String>,
    },
    /// Google Drive or OneDrive: an OAuth client, and the account once it is connected.
    Cloud {
        kind: BackendKind,
        config: Box<CloudConfig>,
        client_secret: Option<Zeroizing<String>>,
    },
}

/// A backend as a person describes it (the CLI's flags, the window's storage form), before it is
/// checked and turned into [`BackendSettings`]. Secrets arrive here and nowhere else, and never
/// leave: a stored backend's form is shown without them.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct BackendForm {
    pub kind: Option<BackendKind>,
    /// local: the library folder (the default library when absent).
    pub path: Option<PathBuf>,
    /// s3
    pub provider: S3Provider,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub access_key_id: Option<String>,
    #[serde(skip_serializing)]
    #[ts(type = "string | null")]
    pub secret_access_key: Option<Zeroizing<String>>,
    pub prefix: Option<String>,
    pub public_url: Option<String>,
    pub path_style: bool,
    /// google-drive, onedrive: the OAuth app registration (the configured one when absent).
    pub client_id: Option<String>,
    #[serde(skip_serializing)]
    #[ts(type = "string | null")]
    pub client_secret: Option<Zeroizing<String>>,
    pub folder_id: Option<String>,
    pub chunk_size: Option<u64>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_base: Option<String>,
}

impl BackendForm {
    /// A change of a stored backend's settings that leaves a secret empty keeps the stored one:
    /// a form shows a stored backend without its secrets.
    pub fn keep_secrets_of(&mut self, stored: &BackendForm) {
        let keep = |typed: &mut Option<Zeroizing<String>>, kept: &Option<Zeroizing<String>>| {
            if typed.as_ref().is_none_or(|secret| secret.is_empty()) {
                typed.clone_from(kept);
            }
        };
        keep(&mut self.secret_access_key, &stored.secret_access_key);
        keep(&mut self.client_secret, &stored.client_secret);
    }

    /// Checks the form and fills in defaults: the library folder, the provider's endpoint and
    /// region, the configured OAuth client id (`OFFLOAD_GOOGLE_CLIENT_ID`, setting
    /// `oauth.google.client_id`, …).
    pub fn settings(&self, db: &Db, data_dir: &std::path::Path) -> Result<BackendSettings> {
        let blank = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let kind = self
            .kind
            .ok_or_else(|| Error::Invalid("choose a kind of storage".into()))?;
        match kind {
            BackendKind::Local => {
                let path = self
                    .path
                    .clone()
                    .filter(|path| !path.as_os_str().is_empty())
                    .unwrap_or_else(|| default_library_dir(data_dir));
                let path = std::path::absolute(&path).map_err(|error| {
                    Error::io(format!("cannot resolve {}", path.display()), error)
                })?;
                Ok(BackendSettings::Local(LocalConfig { path }))
            }
            BackendKind::S3 => {
                let required = |value: &Option<String>, what: &str| {
                    blank(value)
                        .ok_or_else(|| Error::Invalid(format!("an S3 backend needs {what}")))
                };
                let config = S3Config::new(S3Options {
                    provider: self.provider,
                    endpoint: blank(&self.endpoint),
                    region: blank(&self.region),
                    bucket: required(&self.bucket, "a bucket")?,
                    access_key_id: required(&self.access_key_id, "an access key id")?,
                    prefix: blank(&self.prefix),
                    public_url: blank(&self.public_url),
                    path_style: self.path_style,
                })?;
                let secret_access_key = self
                    .secret_access_key
                    .clone()
                    .filter(|secret| !secret.is_empty())
                    .ok_or_else(|| {
                        Error::Invalid("an S3 backend needs its secret access key".into())
                    })?;
                Ok(BackendSettings::S3 {
                    config: Box::new(config),
                    secret_access_key,
                })
            }
            BackendKind::GoogleDrive | BackendKind::Onedrive => {
                let provider = if kind == BackendKind::GoogleDrive {
                    Provider::Google
                } else {
                    Provider::Microsoft
                };
                let client_id = match blank(&self.client_id) {
                    Some(id) => id,
                    None => configured_client_id(db, provider)?,
                };
                let client = ClientConfig::new(
                    provider,
                    client_id,
                    blank(&self.auth_url),
                    blank(&self.token_url),
                    blank(&self.api_base),
                )?;
                if let Some(bytes) = self.chunk_size {
                    CloudConfig::check_chunk_size(kind, bytes)?;
                }
                Ok(BackendSettings::Cloud {
                    kind,
                    config: Box::new(CloudConfig {
                        client,
                        folder_id: blank(&self.folder_id),
                        connection_id: None,
                        chunk_size: self.chunk_size,
                    }),
                    client_secret: self
                        .client_secret
                        .clone()
                        .filter(|secret| !secret.is_empty()),
                })
            }
        }
    }
}

/// The OAuth client id registered for `provider` when a backend names none: a person's own
/// (`OFFLOAD_GOOGLE_CLIENT_ID` or `…MICROSOFT…` in the environment, else the setting
/// `oauth.google.client_id`), else the one built into this build; empty when there is none
/// ([`ClientConfig::new`] then says what to do).
pub fn configured_client_id(db: &Db, provider: Provider) -> Result<String> {
    let name = provider.as_str();
    if let Ok(id) = std::env::var(format!("OFFLOAD_{}_CLIENT_ID", name.to_ascii_uppercase())) {
        if !id.trim().is_empty() {
            return Ok(id);
        }
    }
    if let Some(id) = db
        .setting(&format!("oauth.{name}.client_id"))?
        .filter(|id| !id.trim().is_empty())
    {
        return Ok(id);
    }
    Ok(provider.built_in_client_id().unwrap_or_default().to_owned())
}

impl BackendSettings {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSettings::Local(_) => BackendKind::Local,
            BackendSettings::S3 { .. } => BackendKind::S3,
            BackendSettings::Cloud { kind, .. } => *kind,
        }
    }

    /// The sealer the stored form needs, if any; taken before a transaction, because the vault
    /// itself may read the database the first time.
    pub fn sealer_for(&self, vault: &Vault) -> Result<Option<Sealer>> {
        match self {
            BackendSettings::Local(_) => Ok(None),
            BackendSettings::Cloud {
                client_secret: None,
                ..
            } => Ok(None),
            BackendSettings::S3 { .. } | BackendSettings::Cloud { .. } => vault.sealer().map(Some),
        }
    }

    /// The configuration as stored in row `id`: every secret field sealed to that row.
    fn to_stored_json(&self, id: i64, sealer: Option<&Sealer>) -> Result<String> {
        let encoded = match self {
            BackendSettings::Local(config) => serde_json::to_string(config),
            BackendSettings::S3 {
                config,
                secret_access_key,
            } => {
                let sealer =
                    sealer.ok_or_else(|| Error::Invalid("sealing needs the master key".into()))?;
                let sealed =
                    sealer.seal_str(secret_access_key, secret_context(id, S3_SECRET_FIELD));
                serde_json::to_string(&S3Config {
                    secret_access_key: sealed,
                    ..(**config).clone()
                })
            }
            BackendSettings::Cloud {
                config,
                client_secret,
                ..
            } => {
                let sealed = match (client_secret, sealer) {
                    (Some(secret), Some(sealer)) => {
                        Some(sealer.seal_str(secret, secret_context(id, CLIENT_SECRET_FIELD)))
                    }
                    (Some(_), None) => {
                        return Err(Error::Invalid("sealing needs the master key".into()))
                    }
                    (None, _) => None,
                };
                let mut stored = (**config).clone();
                stored.client.client_secret = sealed;
                serde_json::to_string(&stored)
            }
        };
        encoded
            .map_err(|error| Error::Invalid(format!("cannot encode the backend settings: {error}")))
    }

    /// Where the backend's files are, as opposed to how it is reached.
    fn place(&self) -> Place {
        match self {
            BackendSettings::Local(config) => Place::Folder(config.path.clone()),
            BackendSettings::S3 { config, .. } => Place::Bucket {
                bucket: config.bucket.clone(),
                prefix: config.prefix.clone(),
            },
            BackendSettings::Cloud { config, .. } => Place::DriveFolder(config.folder_id.clone()),
        }
    }

    /// Builds the live backend without storing anything, for "test before saving"; `None` for a
    /// cloud backend, which cannot be reached before its account is signed in.
    pub fn open_unsaved(&self) -> Option<Arc<dyn StorageBackend>> {
        match self {
            BackendSettings::Local(config) => Some(Arc::new(LocalBackend::new(config))),
            BackendSettings::S3 {
                config,
                secret_access_key,
            } => Some(Arc::new(S3Backend::new(config, secret_access_key))),
            BackendSettings::Cloud { .. } => None,
        }
    }

    /// The test `offload backend add` and the window's Save run before storing: S3 settings are
    /// tested, as a typo in a key or bucket is the usual mistake; a local folder is created on
    /// its first upload, and a cloud account can only be tested once signed in.
    pub async fn test_before_saving(&self) -> Option<crate::storage::ConnectionReport> {
        match self {
            BackendSettings::S3 { .. } => Some(self.open_unsaved()?.test_connection().await),
            BackendSettings::Local(_) | BackendSettings::Cloud { .. } => None,
        }
    }
}

/// Where a backend's files are: the library's rows name files relative to this place, so it may
/// only change while the library holds nothing there. The endpoint, keys and account are how the
/// place is reached, and may change at any time.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Folder(PathBuf),
    Bucket { bucket: String, prefix: String },
    DriveFolder(Option<String>),
}

const S3_SECRET_FIELD: &str = "config.secret_access_key";
const CLIENT_SECRET_FIELD: &str = "config.client.client_secret";

fn secret_context(id: i64, field: &str) -> SealContext<'_> {
    SealContext {
        table: "storage_backends",
        record: id,
        field,
    }
}

/// What [`BackendRecord::readiness`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Readiness {
    Ready,
    Connected { account: Option<String> },
    NotSignedIn,
    Disconnected { reason: String },
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::Ready => f.write_str("ready"),
            Readiness::Connected {
                account: Some(account),
            } => write!(f, "signed in as {account}"),
            Readiness::Connected { account: None } => f.write_str("signed in"),
            Readiness::NotSignedIn => f.write_str("not signed in"),
            Readiness::Disconnected { reason } => write!(f, "DISCONNECTED ({reason})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendRecord {
    pub id: i64,
    pub profile_id: i64,
    pub name: String,
    pub kind: BackendKind,
    /// The stored configuration, secrets still sealed.
    pub config: serde_json::Value,
    pub is_default: bool,
    pub created_at: i64,
}

impl BackendRecord {
    /// A one-line description for listings, without secrets.
    pub fn location(&self) -> String {
        match self.kind {
            BackendKind::Local => self
                .config
                .get("path")
                .and_then(|path| path.as_str())
                .unwrap_or("?")
                .to_owned(),
            BackendKind::S3 => serde_json::from_value::<S3Config>(self.config.clone())
                .map(|config| config.location())
                .unwrap_or_default(),
            BackendKind::GoogleDrive | BackendKind::Onedrive => {
                match serde_json::from_value::<CloudConfig>(self.config.clone()) {
                    Ok(config) => config
                        .folder_id
                        .map(|folder| format!("folder {folder}"))
                        .unwrap_or_else(|| "drive root".into()),
                    Err(_) => String::new(),
                }
            }
        }
    }

    /// The account a cloud backend is signed in with, if any.
    pub fn stored_connection(&self) -> Option<i64> {
        match self.kind {
            BackendKind::Local | BackendKind::S3 => None,
            BackendKind::GoogleDrive | BackendKind::Onedrive => {
                serde_json::from_value::<CloudConfig>(self.config.clone())
                    .ok()
                    .and_then(|config| config.connection_id)
            }
        }
    }

    /// Whether the backend can be used now: local and S3 backends are ready; a cloud backend
    /// needs a signed-in account that the provider has not refused.
    pub fn readiness(&self, db: &Db) -> Result<Readiness> {
        if matches!(self.kind, BackendKind::Local | BackendKind::S3) {
            return Ok(Readiness::Ready);
        }
        let Some(id) = self.stored_connection() else {
            return Ok(Readiness::NotSignedIn);
        };
        let status = crate::accounts::status(db, id)?;
        Ok(if status.connected {
            Readiness::Connected {
                account: status.account,
            }
        } else {
            Readiness::Disconnected {
                reason: status
                    .reason
                    .unwrap_or_else(|| "the account was signed out".into()),
            }
        })
    }

    /// Builds the live backend this row describes, opening its secrets with the vault. Cloud
    /// backends get their account's tokens from `accounts`.
    pub fn open(
        &self,
        vault: &Arc<Vault>,
        accounts: &dyn TokenSources,
    ) -> Result<Arc<dyn StorageBackend>> {
        match self.kind {
            BackendKind::Local => {
                let config: LocalConfig = self.stored()?;
                Ok(Arc::new(LocalBackend::new(&config)))
            }
            BackendKind::S3 => {
                let config: S3Config = self.stored()?;
                let secret = vault.sealer()?.open_string(
                    &config.secret_access_key,
                    secret_context(self.id, S3_SECRET_FIELD),
                )?;
                Ok(Arc::new(S3Backend::new(&config, &secret)))
            }
            BackendKind::GoogleDrive => {
                let (config, _) = self.cloud(vault)?;
                let drive = GoogleDrive::new(&config, self.access(vault, accounts));
                Ok(Arc::new(match config.chunk_size {
                    Some(bytes) => drive.with_chunk_size(bytes),
                    None => drive,
                }))
            }
            BackendKind::Onedrive => {
                let (config, _) = self.cloud(vault)?;
                let onedrive = OneDrive::new(&config, self.access(vault, accounts));
                Ok(Arc::new(match config.chunk_size {
                    Some(bytes) => onedrive.with_fragment_size(bytes),
                    None => onedrive,
                }))
            }
        }
    }

    /// The stored configuration as `T` (secrets still sealed).
    fn stored<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.config.clone()).map_err(|error| {
            Error::Invalid(format!(
                "backend {:?} has damaged settings: {error}",
                self.name
            ))
        })
    }

    fn place(&self) -> Result<Place> {
        Ok(match self.kind {
            BackendKind::Local => Place::Folder(self.stored::<LocalConfig>()?.path),
            BackendKind::S3 => {
                let config: S3Config = self.stored()?;
                Place::Bucket {
                    bucket: config.bucket,
                    prefix: config.prefix,
                }
            }
            BackendKind::GoogleDrive | BackendKind::Onedrive => {
                Place::DriveFolder(self.stored::<CloudConfig>()?.folder_id)
            }
        })
    }

    /// What a cloud provider of this row holds to reach its account.
    pub fn access(&self, vault: &Arc<Vault>, accounts: &dyn TokenSources) -> CloudAccess {
        CloudAccess::new(
            accounts.token_source(self.id),
            vault.clone(),
            self.id,
            accounts.pacer(self.id),
        )
    }

    /// The backend's settings as a form, secrets opened: what a change of settings starts from.
    pub fn form(&self, vault: &Vault) -> Result<BackendForm> {
        let mut form = BackendForm {
            kind: Some(self.kind),
            ..BackendForm::default()
        };
        match self.kind {
            BackendKind::Local => {
                let config: LocalConfig = self.stored()?;
                form.path = Some(config.path);
            }
            BackendKind::S3 => {
                let config: S3Config = self.stored()?;
                form.secret_access_key = Some(vault.sealer()?.open_string(
                    &config.secret_access_key,
                    secret_context(self.id, S3_SECRET_FIELD),
                )?);
                form.provider = config.provider;
                form.endpoint = config.endpoint;
                form.region = Some(config.region);
                form.bucket = Some(config.bucket);
                form.access_key_id = Some(config.access_key_id);
                form.prefix = Some(config.prefix);
                form.public_url = config.public_url;
                form.path_style = config.path_style;
            }
            BackendKind::GoogleDrive | BackendKind::Onedrive => {
                let (config, secret) = self.cloud(vault)?;
                form.client_secret = secret;
                form.client_id = Some(config.client.client_id);
                form.auth_url = Some(config.client.auth_url);
                form.token_url = Some(config.client.token_url);
                form.api_base = Some(config.client.api_base);
                form.folder_id = config.folder_id;
                form.chunk_size = config.chunk_size;
            }
        }
        Ok(form)
    }

    /// The OAuth side of a Google Drive or OneDrive backend, its client secret opened.
    pub fn cloud(&self, vault: &Vault) -> Result<(CloudConfig, Option<Zeroizing<String>>)> {
        if !matches!(self.kind, BackendKind::GoogleDrive | BackendKind::Onedrive) {
            return Err(Error::Invalid(format!(
                "backend {:?} is of type {}, which has no account to sign in to",
                self.name, self.kind
            )));
        }
        let config: CloudConfig = self.stored()?;
        let secret = match &config.client.client_secret {
            Some(sealed) => Some(
                vault
                    .sealer()?
                    .open_string(sealed, secret_context(self.id, CLIENT_SECRET_FIELD))?,
            ),
            None => None,
        };
        Ok((config, secret))
    }
}

/// Where cloud backends get their accounts' tokens. The sign-in layer (`oauth`), which keeps
/// accounts, implements it, so that this layer below it can open cloud backends.
pub trait TokenSources: Send + Sync {
    fn token_source(&self, backend_id: i64) -> Arc<dyn AccessToken>;

    /// The pace of the account backend `backend_id` is signed in with, shared by every backend
    /// of that account.
    fn pacer(&self, backend_id: i64) -> Arc<Pacer>;
}

/// The live backends of a process (the queue's, the stream server's), each opened once and used
/// for as long as its row is unchanged. Whenever the database moved (see [`ChangeCheck`]), a
/// backend's row is read again before it is handed out, and a backend whose settings changed (a
/// sign-in, a new key, another endpoint; in this process or another one) is opened afresh. An
/// unchanged backend keeps its connections and caches.
pub struct OpenBackends {
    db: Db,
    vault: Arc<Vault>,
    accounts: Arc<dyn TokenSources>,
    check: ChangeCheck,
    open: Mutex<HashMap<i64, Opened>>,
}

struct Opened {
    record: BackendRecord,
    checked: Revision,
    backend: Arc<dyn StorageBackend>,
}

impl OpenBackends {
    /// `staleness`: how long a change may go unseen (zero: never; see [`ChangeCheck`]).
    pub fn new(
        db: Db,
        vault: Arc<Vault>,
        accounts: Arc<dyn TokenSources>,
        staleness: Duration,
    ) -> OpenBackends {
        OpenBackends {
            db,
            vault,
            accounts,
            check: ChangeCheck::new(staleness),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Opened>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The backend of row `id`, as its row stands now.
    pub fn get(&self, id: i64) -> Result<Arc<dyn StorageBackend>> {
        let now = self.check.revision(&self.db)?;
        if let Some(opened) = self.lock().get(&id).filter(|opened| opened.checked == now) {
            return Ok(opened.backend.clone());
        }
        let record = match get(&self.db, id) {
            Ok(record) => record,
            Err(error) => {
                self.lock().remove(&id);
                return Err(error);
            }
        };
        if let Some(opened) = self.lock().get_mut(&id) {
            if opened.record == record {
                opened.checked = now;
                return Ok(opened.backend.clone());
            }
        }
        let backend = record.open(&self.vault, self.accounts.as_ref())?;
        self.lock().insert(
            id,
            Opened {
                record,
                checked: now,
                backend: backend.clone(),
            },
        );
        Ok(backend)
    }
}

/// Records which connected account a cloud backend uses.
pub fn set_connection(db: &Db, backend_id: i64, connection_id: i64) -> Result<()> {
    let mut conn = db.lock();
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE storage_backends SET config = json_set(config, '$.connection_id', ?2) WHERE id = ?1",
        params![backend_id, connection_id],
    )?;
    forget_feed(&tx, backend_id)?;
    tx.commit()?;
    Ok(())
}

/// Another account or place is another storage: what its feed of changes said of the old one
/// does not apply, and the next scan lists everything.
fn forget_feed(tx: &rusqlite::Transaction<'_>, backend_id: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM library_feeds WHERE backend_id = ?1",
        [backend_id],
    )?;
    tx.execute(
        "DELETE FROM remote_folders WHERE backend_id = ?1",
        [backend_id],
    )?;
    Ok(())
}

const COLUMNS: &str = "id, profile_id, name, type, config, is_default, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<BackendRecord> {
    let kind_text: String = row.get(3)?;
    let kind = BackendKind::parse(&kind_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown backend type {kind_text}").into(),
        )
    })?;
    let config: String = row.get(4)?;
    Ok(BackendRecord {
        id: row.get(0)?,
        profile_id: row.get(1)?,
        name: row.get(2)?,
        kind,
        config: serde_json::from_str(&config).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?,
        is_default: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// Adds a backend. The profile's first backend becomes its default. Secret settings are sealed
/// to the new row, which is why the row is inserted first and filled in the same transaction.
pub fn add(
    db: &Db,
    vault: &Vault,
    profile_id: i64,
    name: &str,
    settings: &BackendSettings,
    make_default: bool,
) -> Result<BackendRecord> {
    let name = backend_name(name)?;
    let sealer = settings.sealer_for(vault)?;
    let id = db.transaction(|tx| {
        let existing: i64 = tx.query_row("SELECT count(*) FROM storage_backends WHERE profile_id = ?1", [profile_id], |row| row.get(0))?;
        let is_default = make_default || existing == 0;
        if is_default {
            tx.execute("UPDATE storage_backends SET is_default = 0 WHERE profile_id = ?1", [profile_id])?;
        }
        tx.execute(
            "INSERT INTO storage_backends (profile_id, name, type, is_default, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![profile_id, name, settings.kind().as_str(), is_default, now_ms()],
        )
        .map_err(|error| name_taken(name, error))?;
        let id = tx.last_insert_rowid();
        tx.execute("UPDATE storage_backends SET config = ?2 WHERE id = ?1", params![id, settings.to_stored_json(id, sealer.as_ref())?])?;
        Ok::<_, Error>(id)
    })?;
    get(db, id)
}

/// Gives backend `id` new settings (and, with `name`, a new name), sealed to its row. A cloud
/// backend keeps its signed-in account. Where its files are (the folder, the bucket and prefix,
/// the Drive folder) may only change while the library holds nothing there, because library
/// items name their files relative to that place. Runs inside the caller's transaction, so what
/// else the change implies (the queue retrying the backend's uploads) lands with it; `sealer`
/// comes from [`BackendSettings::sealer_for`], taken before the transaction.
pub fn update(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    name: Option<&str>,
    settings: &BackendSettings,
    sealer: Option<&Sealer>,
) -> Result<BackendRecord> {
    let row = |tx: &rusqlite::Transaction<'_>| {
        tx.query_row(
            &format!("SELECT {COLUMNS} FROM storage_backends WHERE id = ?1"),
            [id],
            from_row,
        )
    };
    let current = row(tx)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no storage backend with id {id}")))?;
    if settings.kind() != current.kind {
        return Err(Error::Invalid(format!(
            "backend {:?} is {} storage and stays so; add a new backend for {} storage",
            current.name,
            current.kind,
            settings.kind()
        )));
    }
    let mut settings = settings.clone();
    if let BackendSettings::Cloud { config, .. } = &mut settings {
        config.connection_id = serde_json::from_value::<CloudConfig>(current.config.clone())
            .ok()
            .and_then(|stored| stored.connection_id);
    }
    let held: i64 = tx.query_row(
        "SELECT (SELECT count(*) FROM media WHERE storage_backend_id = ?1 AND status = 'uploaded')
              + (SELECT count(*) FROM episodes WHERE storage_backend_id = ?1 AND status = 'uploaded')",
        [id],
        |row| row.get(0),
    )?;
    if held > 0 && current.place()? != settings.place() {
        return Err(Error::Invalid(format!(
            "backend {:?} holds {held} library item(s) where it is now, and they would stop playing \
             if it pointed elsewhere; add a new backend for the new place and make it the default \
             (the items stay playable from this one)",
            current.name
        )));
    }
    let name = backend_name(name.unwrap_or(&current.name))?;
    tx.execute(
        "UPDATE storage_backends SET name = ?2, config = ?3 WHERE id = ?1",
        params![id, name, settings.to_stored_json(id, sealer)?],
    )
    .map_err(|error| name_taken(name, error))?;
    forget_feed(tx, id)?;
    Ok(row(tx)?)
}

/// A backend's name as given, trimmed; refused when empty.
fn backend_name(name: &str) -> Result<&str> {
    match name.trim() {
        "" => Err(Error::Invalid("a backend needs a name".into())),
        name => Ok(name),
    }
}

/// What writing `name` failing means: the profile has a backend of that name already.
fn name_taken(name: &str, error: rusqlite::Error) -> Error {
    if is_unique_violation(&error) {
        Error::Invalid(format!("this profile already has a backend named {name:?}"))
    } else {
        error.into()
    }
}

pub fn get(db: &Db, id: i64) -> Result<BackendRecord> {
    db.lock()
        .query_row(
            &format!("SELECT {COLUMNS} FROM storage_backends WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no storage backend with id {id}")))
}

pub fn by_name(db: &Db, profile_id: i64, name: &str) -> Result<BackendRecord> {
    db.lock()
        .query_row(
            &format!("SELECT {COLUMNS} FROM storage_backends WHERE profile_id = ?1 AND name = ?2"),
            params![profile_id, name],
            from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("this profile has no backend named {name:?}")))
}

pub fn default_for(db: &Db, profile_id: i64) -> Result<BackendRecord> {
    db.lock()
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM storage_backends WHERE profile_id = ?1 AND is_default = 1"
            ),
            [profile_id],
            from_row,
        )
        .optional()?
        .ok_or_else(|| {
            Error::NotFound("this profile has no storage yet; add some for it first".into())
        })
}

pub fn list(db: &Db, profile_id: Option<i64>) -> Result<Vec<BackendRecord>> {
    let conn = db.lock();
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM storage_backends WHERE ?1 IS NULL OR profile_id = ?1 ORDER BY profile_id, name"
    ))?;
    let rows = statement.query_map([profile_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_default(db: &Db, id: i64) -> Result<()> {
    let backend = get(db, id)?;
    db.transaction(|tx| {
        // Clear first: the partial unique index allows one default at any instant.
        tx.execute(
            "UPDATE storage_backends SET is_default = 0 WHERE profile_id = ?1",
            [backend.profile_id],
        )?;
        tx.execute(
            "UPDATE storage_backends SET is_default = 1 WHERE id = ?1",
            [backend.id],
        )?;
        Ok(())
    })
}

/// Removes a backend that holds no library items and has no upload in progress. Remote files
/// are left where they are.
pub fn remove(db: &Db, id: i64) -> Result<()> {
    let backend = get(db, id)?;
    let (profile_id, name) = (backend.profile_id, backend.name.as_str());
    db.transaction(|tx| {
        let live: i64 = tx.query_row(
            "SELECT count(*) FROM upload_jobs WHERE backend_id = ?1 AND state IN ('running', 'verifying')",
            [backend.id],
            |row| row.get(0),
        )?;
        let items: i64 = tx.query_row(
            "SELECT (SELECT count(*) FROM media WHERE storage_backend_id = ?1) + (SELECT count(*) FROM episodes WHERE storage_backend_id = ?1)",
            [backend.id],
            |row| row.get(0),
        )?;
        if live > 0 {
            return Err(Error::Invalid(format!("backend {name:?} has {live} upload(s) in progress; pause or cancel them first")));
        }
        if items > 0 {
            return Err(Error::Invalid(format!(
                "backend {name:?} holds {items} library item(s); remove them from the library first"
            )));
        }
        tx.execute("DELETE FROM storage_backends WHERE id = ?1", [backend.id])?;
        if backend.is_default {
            // Keep the profile usable: the oldest remaining backend becomes the default.
            tx.execute(
                "UPDATE storage_backends SET is_default = 1 WHERE id = (SELECT id FROM storage_backends WHERE profile_id = ?1 ORDER BY created_at, id LIMIT 1)",
                [profile_id],
            )?;
        }
        Ok(())
    })
}

/// The library folder a fresh install uploads into: `~/Videos/Offload`, or the data directory's
/// `library` where the platform names no videos folder.
pub fn default_library_dir(data_dir: &std::path::Path) -> PathBuf {
    crate::platform::videos_dir()
        .map(|videos| videos.join("Offload"))
        .unwrap_or_else(|| data_dir.join("library"))
}
