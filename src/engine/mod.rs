//! The service layer: the engine as one object, which both shells (the `offload` command and the
//! desktop app) hold and call. Its operations are keyed by id, check what they are given, write
//! what belongs together in one transaction, and wake a running daemon themselves; each rule has
//! its one place here or below, and the shells only turn arguments and answers into their own
//! words. The daemon itself is in [`daemon`].

pub mod api;
mod backends;
mod daemon;
mod hand_over;
mod jobs;
mod library;
mod profiles;
mod settings;
mod sign_in;

pub use backends::{BackendView, NewBackend, Saved};
pub use daemon::RunOverrides;
pub use hand_over::{HandOver, HandedOver};
pub use library::{BackendScan, LibraryRow};
pub use profiles::ProfileView;
pub use sign_in::SignIn;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::backends::{BackendRecord, BackendSettings, OpenBackends, TokenSources};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::playback::Playback;
use crate::profiles::{AfterUpload, NewWatchFolder, Profile, WatchFolder};
use crate::queue::{self, ClaimMode, Event, NewJob, Queue, QueueOptions};
use crate::secrets::Vault;
use crate::settings::Settings;
use crate::storage::local::LocalConfig;
use crate::stream::{Links, StreamSettings};
use crate::template::{self, TemplateInput};

const DATABASE_FILE: &str = "offload.db";
/// Touched by a command that changed the queue or the folders, so a running daemon looks again.
const WAKE_FILE: &str = "wake";
const DAEMON_LOCK: &str = "daemon.lock";
/// Name of the profile a fresh install starts with.
pub const DEFAULT_PROFILE: &str = "Default";
const DEFAULT_BACKEND: &str = "Library";

pub struct Engine {
    data_dir: PathBuf,
    db: Db,
    vault: Arc<Vault>,
    accounts: Arc<dyn TokenSources>,
    /// The live backends this process's queue and commands use.
    backends: Arc<OpenBackends>,
    events: broadcast::Sender<Event>,
    /// Told by this process's stream server, asked by its queue: uploads yield to a player.
    playback: Arc<Playback>,
}

impl Engine {
    /// The platform's data directory for Offload (`~/.local/share/offload` on Linux).
    pub fn default_data_dir() -> PathBuf {
        crate::platform::data_dir()
    }

    pub fn open(data_dir: &Path) -> Result<Engine> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            Error::io(
                format!("cannot create the data folder {}", data_dir.display()),
                error,
            )
        })?;
        let db = Db::open(&data_dir.join(DATABASE_FILE))?;
        let (events, _) = broadcast::channel(1024);
        let vault = Arc::new(Vault::new(db.clone()));
        let accounts: Arc<dyn TokenSources> = Arc::new(crate::oauth::Accounts::new(&db, &vault));
        let backends = Arc::new(OpenBackends::new(
            db.clone(),
            vault.clone(),
            accounts.clone(),
            Duration::ZERO,
        ));
        Ok(Engine {
            data_dir: data_dir.to_owned(),
            vault,
            accounts,
            backends,
            db,
            events,
            playback: Arc::default(),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The live backend of row `id`, as its row stands now.
    pub fn backend(&self, id: i64) -> Result<Arc<dyn crate::storage::StorageBackend>> {
        self.backends.get(id)
    }

    /// This engine, its events going to `events` (another engine's listeners) instead.
    pub(crate) fn telling(mut self, events: broadcast::Sender<Event>) -> Engine {
        self.events = events;
        self
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn owners_dir(&self) -> PathBuf {
        queue::owners_dir(&self.data_dir)
    }

    /// A queue for this process: `Any` for the daemon, `Reserved` for one-off uploads.
    pub fn queue(&self, mode: ClaimMode, options: QueueOptions) -> Result<Queue> {
        Queue::new(
            self.db.clone(),
            self.backends.clone(),
            &self.data_dir,
            mode,
            options,
            self.events.clone(),
            self.playback.clone(),
        )
    }

    /// Tells a running daemon to look at the queue and the folders again.
    pub fn wake_daemon(&self) {
        let path = self.data_dir.join(WAKE_FILE);
        if let Err(error) = std::fs::write(&path, crate::db::now_ms().to_string()) {
            tracing::debug!(%error, "cannot touch {}", path.display());
        }
    }

    /// With no profile at all, creates the default one: watching the user's downloads folder,
    /// uploading into a local library folder. Returns it when it was created.
    pub fn ensure_default_profile(&self) -> Result<Option<Profile>> {
        if !crate::profiles::list(&self.db)?.is_empty() {
            return Ok(None);
        }
        let downloads = crate::platform::downloads_dir()
            .ok_or_else(|| Error::Invalid("cannot find your downloads folder; add a profile that watches the folder your downloads land in".into()))?;
        std::fs::create_dir_all(&downloads)
            .map_err(|error| Error::io(format!("cannot create {}", downloads.display()), error))?;
        let profile = crate::profiles::create(
            &self.db,
            DEFAULT_PROFILE,
            template::DEFAULT_TEMPLATE,
            &AfterUpload::Keep,
            &[NewWatchFolder::recursive(downloads)],
        )?;
        let library = crate::backends::default_library_dir(&self.data_dir);
        crate::backends::add(
            &self.db,
            &self.vault,
            profile.id,
            DEFAULT_BACKEND,
            &BackendSettings::Local(LocalConfig { path: library }),
            true,
        )?;
        Ok(Some(profile))
    }

    /// The upload job for one file of a profile, from the watched `folder` holding it if any: its
    /// remote path comes from the profile's template, rendered against the file's `relative` path
    /// (to its watched folder, or to a handed-over folder), else its bare name.
    pub fn job_for_file(
        &self,
        profile: &Profile,
        backend: &BackendRecord,
        folder: Option<&WatchFolder>,
        relative: Option<&Path>,
        path: &Path,
    ) -> Result<NewJob> {
        let meta = std::fs::metadata(path)
            .map_err(|error| Error::io(format!("cannot read {}", path.display()), error))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!("{} is not a file", path.display())));
        }
        let relative = relative
            .map(Path::to_owned)
            .or_else(|| path.file_name().map(PathBuf::from))
            .ok_or_else(|| Error::Invalid(format!("{} has no file name", path.display())))?;
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let remote_path = template::render(
            &profile.remote_template,
            &TemplateInput {
                profile: &profile.name,
                relative_path: &relative,
                date: modified.into(),
            },
        )?;
        Ok(NewJob {
            profile_id: profile.id,
            backend_id: backend.id,
            watch_folder_id: folder.map(|folder| folder.id),
            local_path: path.to_owned(),
            size: meta.len(),
            modified,
            remote_path,
            after_upload: None,
        })
    }

    /// The URLs of the library, as the stream server of this data folder answers them.
    pub fn stream_links(&self) -> Result<Links> {
        let settings = StreamSettings::from_settings(&Settings::load(&self.db)?);
        Ok(Links::new(self.vault.sealer()?.key(), &settings))
    }
}

/// Parses durations like `300ms`, `5s`, `2m`, `1h` for command-line flags.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 300ms, 5s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 300ms, 5s, 2m or 1h"
            ))
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration the way [`parse_duration`] reads it: `4h`, `90m`, `45s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
