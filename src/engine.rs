//! The engine as one object: the data directory, the database, the vault, and the headless
//! daemon that ties watched folders to the upload queue. The command line and the desktop shell
//! are thin layers over this.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use notify::Watcher as _;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backends::{self, BackendRecord, BackendSettings, OpenBackends, TokenSources};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::filter::FileFilter;
use crate::oauth::{self, Connected, Flow, Loopback};
use crate::profiles::{self, AfterUpload, NewWatchFolder, Profile, WatchFolder};
use crate::queue::{self, ClaimMode, Enqueued, Event, NewJob, Queue, QueueOptions};
use crate::secrets::Vault;
use crate::storage::local::LocalConfig;
use crate::stream::{Links, StreamServer, StreamSettings};
use crate::template::{self, TemplateInput};
use crate::watch::{self, Arrival, WatchEvent, WatchOptions, WatchSpec};

const DATABASE_FILE: &str = "offload.db";
/// Touched by a command that changed the queue or the folders, so a running daemon looks again.
const WAKE_FILE: &str = "wake";
const OWNERS_DIR: &str = "owners";
const DAEMON_LOCK: &str = "daemon.lock";
/// Name of the profile a fresh install starts with.
pub const DEFAULT_PROFILE: &str = "Default";
const DEFAULT_BACKEND: &str = "Library";
/// Arrivals enqueued per database pass when a flood of files lands at once.
const ARRIVAL_BATCH: usize = 512;

/// What `offload run` can tune.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    pub watch: WatchOptions,
    pub queue: QueueOptions,
    /// Where the stream server listens; `None` runs without one.
    pub stream: Option<StreamSettings>,
}

/// Settings the window's Settings tab changes; `offload run` flags override them.
pub const SETTING_WORKERS: &str = "queue.workers";
pub const SETTING_QUIET_PERIOD: &str = "watch.quiet_period_secs";
/// The most uploads at once a person can ask for.
pub const MAX_WORKERS: usize = 64;

impl DaemonOptions {
    /// The saved tuning (uploads at once, quiet period) over the defaults, with the stream
    /// server's settings.
    pub fn from_settings(db: &Db) -> Result<DaemonOptions> {
        let mut options = DaemonOptions::default();
        if let Some(workers) = db
            .setting(SETTING_WORKERS)?
            .and_then(|text| text.parse().ok())
        {
            options.queue.workers = usize::clamp(workers, 1, MAX_WORKERS);
        }
        if let Some(secs) = db
            .setting(SETTING_QUIET_PERIOD)?
            .and_then(|text| text.parse().ok())
        {
            options.set_quiet_period(Duration::from_secs(secs));
        }
        options.stream = Some(StreamSettings::load(db)?);
        Ok(options)
    }

    /// A file must hold still this long before it is uploaded, and again after it changed.
    pub fn set_quiet_period(&mut self, quiet_period: Duration) {
        self.watch.quiet_period = quiet_period;
        self.queue.settle = quiet_period;
    }

    /// Saves the tuning that [`DaemonOptions::from_settings`] reads.
    pub fn save_tuning(db: &Db, workers: usize, quiet_period: Duration) -> Result<()> {
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(Error::Invalid(format!(
                "uploads at once must be between 1 and {MAX_WORKERS}"
            )));
        }
        db.set_setting(SETTING_WORKERS, &workers.to_string())?;
        db.set_setting(SETTING_QUIET_PERIOD, &quiet_period.as_secs().to_string())?;
        Ok(())
    }
}

pub struct Engine {
    data_dir: PathBuf,
    db: Db,
    vault: Arc<Vault>,
    accounts: Arc<dyn TokenSources>,
    /// The live backends this process's queue and commands use.
    backends: Arc<OpenBackends>,
    events: broadcast::Sender<Event>,
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

    pub fn backends(&self) -> &Arc<OpenBackends> {
        &self.backends
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn owners_dir(&self) -> PathBuf {
        self.data_dir.join(OWNERS_DIR)
    }

    /// A queue for this process: `Any` for the daemon, `Reserved` for one-off uploads.
    pub fn queue(&self, mode: ClaimMode, options: QueueOptions) -> Result<Queue> {
        Queue::new(
            self.db.clone(),
            self.backends.clone(),
            &self.owners_dir(),
            mode,
            options,
            self.events.clone(),
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
        if !profiles::list(&self.db)?.is_empty() {
            return Ok(None);
        }
        let downloads = crate::platform::downloads_dir()
            .ok_or_else(|| Error::Invalid("cannot find your downloads folder; add a profile with `offload profile add NAME --watch DIR`".into()))?;
        std::fs::create_dir_all(&downloads)
            .map_err(|error| Error::io(format!("cannot create {}", downloads.display()), error))?;
        let profile = profiles::create(
            &self.db,
            DEFAULT_PROFILE,
            template::DEFAULT_TEMPLATE,
            &AfterUpload::Keep,
            &[NewWatchFolder::recursive(downloads)],
        )?;
        let library = backends::default_library_dir(&self.data_dir);
        backends::add(
            &self.db,
            &self.vault,
            profile.id,
            DEFAULT_BACKEND,
            &BackendSettings::Local(LocalConfig { path: library }),
            true,
        )?;
        Ok(Some(profile))
    }

    /// Gives a backend new settings (and, with `name`, a new name): see [`backends::update`]. Its
    /// jobs waiting, retrying or failed go again at once, in this process's daemon or another's.
    /// Returns the backend as stored, and how many of its jobs were queued again.
    pub fn update_backend(
        &self,
        id: i64,
        name: Option<&str>,
        settings: &BackendSettings,
    ) -> Result<(BackendRecord, usize)> {
        let sealer = settings.sealer_for(&self.vault)?;
        let updated = self.db.transaction(|tx| {
            let record = backends::update(tx, id, name, settings, sealer.as_ref())?;
            let queued = queue::backend_changed(tx, id)?;
            Ok::<_, Error>((record, queued))
        })?;
        self.wake_daemon();
        Ok(updated)
    }

    /// Starts a sign-in for a cloud backend, to come back to `redirect_uri`: see [`oauth::begin`].
    pub fn begin_sign_in(&self, backend: &BackendRecord, redirect_uri: &str) -> Result<Flow> {
        Ok(oauth::begin(&self.db, &self.vault, backend, redirect_uri)?)
    }

    /// Finishes a sign-in from the URL the browser came back to (a deep link): see
    /// [`oauth::complete`]. The backend's uploads that waited for it go at once.
    pub async fn complete_sign_in(&self, callback_url: &str) -> Result<Connected> {
        let connected =
            oauth::complete(&self.db, &self.vault, &oauth::http_client(), callback_url).await?;
        self.signed_in(&connected)?;
        Ok(connected)
    }

    /// Waits for the browser to come back to `loopback` with `flow`'s sign-in, then does what
    /// [`Engine::complete_sign_in`] does.
    pub async fn finish_sign_in(&self, loopback: Loopback, flow: &Flow) -> Result<Connected> {
        let connected = loopback
            .finish(&self.db, &self.vault, &oauth::http_client(), flow)
            .await?;
        self.signed_in(&connected)?;
        Ok(connected)
    }

    fn signed_in(&self, connected: &Connected) -> Result<()> {
        let queued = queue::backend_changed(&self.db.lock(), connected.backend_id)?;
        tracing::info!(
            backend = connected.backend_id,
            queued,
            "uploads waiting for the sign-in go now"
        );
        self.wake_daemon();
        Ok(())
    }

    /// The upload job for one file of a profile: its remote path comes from the profile's
    /// template, rendered against the file's path relative to its watched folder (given with the
    /// folder), or its bare name for a one-off upload.
    pub fn job_for_file(
        &self,
        profile: &Profile,
        backend: &BackendRecord,
        folder: Option<(&WatchFolder, &Path)>,
        path: &Path,
    ) -> Result<NewJob> {
        let meta = std::fs::metadata(path)
            .map_err(|error| Error::io(format!("cannot read {}", path.display()), error))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!("{} is not a file", path.display())));
        }
        let relative = folder
            .map(|(_, relative)| relative.to_owned())
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
            watch_folder_id: folder.map(|(folder, _)| folder.id),
            local_path: path.to_owned(),
            size: meta.len(),
            modified,
            remote_path,
        })
    }

    /// The headless daemon: returns interrupted uploads to the queue, watches every profile's
    /// folders, and uploads what arrives until `shutdown` fires; then checkpoints and returns.
    pub async fn run(&self, options: DaemonOptions, shutdown: CancellationToken) -> Result<()> {
        let _daemon_lock = self.lock_daemon()?;
        let stream_stop = CancellationToken::new();
        let stream_task = match &options.stream {
            Some(settings) => {
                self.start_stream_server(settings, stream_stop.clone())
                    .await?
            }
            None => None,
        };
        queue::recover_orphans(&self.db, &self.owners_dir())?;
        self.sweep_abandoned_uploads();
        let queue = self.queue(ClaimMode::Any, options.queue.clone())?;
        let queue_stop = CancellationToken::new();
        let queue_task = {
            let queue = queue.clone();
            let stop = queue_stop.clone();
            tokio::spawn(async move { queue.run(stop).await })
        };

        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        let _wake_watcher = self.watch_wake_file(wake_tx)?;
        let (arrivals_tx, mut arrivals_rx) = mpsc::channel::<WatchEvent>(4096);
        let mut folders = profiles::watch_folders(&self.db, None)?;
        let mut watcher = self.start_watching(&folders, &options.watch, arrivals_tx.clone())?;
        tracing::info!(folders = folders.len(), data_dir = %self.data_dir.display(), "offload is running");

        let mut batch = Vec::with_capacity(ARRIVAL_BATCH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = wake_rx.recv() => {
                    // A one-off `offload upload` that died leaves reservations behind.
                    queue::recover_orphans(&self.db, &self.owners_dir())?;
                    queue.wake();
                    let current = profiles::watch_folders(&self.db, None)?;
                    if current != folders {
                        tracing::info!(folders = current.len(), "watched folders changed");
                        watcher.stop().await;
                        folders = current;
                        watcher = self.start_watching(&folders, &options.watch, arrivals_tx.clone())?;
                    }
                }
                count = arrivals_rx.recv_many(&mut batch, ARRIVAL_BATCH) => {
                    if count == 0 { break; }
                    self.handle_watch_events(&queue, &folders, batch.drain(..));
                }
            }
        }
        tracing::info!("stopping: checkpointing uploads in progress");
        watcher.stop().await;
        queue_stop.cancel();
        stream_stop.cancel();
        let _ = queue_task.await;
        if let Some(task) = stream_task {
            let _ = task.await;
        }
        Ok(())
    }

    /// The URLs of the library, as the stream server of this data folder answers them.
    pub fn stream_links(&self) -> Result<Links> {
        let settings = StreamSettings::load(&self.db)?;
        Ok(Links::new(self.vault.sealer()?.key(), &settings))
    }

    /// Binds the stream server (a taken port stops the daemon with the setting to change) and
    /// serves in the background. Without the master key there are no URL tokens, so there is no
    /// server either; uploads carry on and the reason is reported.
    async fn start_stream_server(
        &self,
        settings: &StreamSettings,
        stop: CancellationToken,
    ) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let sealer = match self.vault.sealer() {
            Ok(sealer) => sealer,
            Err(error) => {
                self.notice(format!("the stream server is off: {error}"));
                return Ok(None);
            }
        };
        let db = Db::open(&self.data_dir.join(DATABASE_FILE))?;
        let server = StreamServer::bind(
            settings,
            db,
            self.vault.clone(),
            self.accounts.clone(),
            sealer.key(),
        )
        .await?;
        Ok(Some(tokio::spawn(server.serve(stop))))
    }

    /// Aborts unfinished multipart uploads that Offload started and no job can continue any more
    /// (storage providers keep, and often bill, their parts until they are aborted).
    ///
    /// It runs in the background so that a bucket that cannot be reached does not hold up
    /// watching and uploading; only uploads started before the daemon are candidates, so an
    /// upload a job starts meanwhile is never mistaken for an abandoned one.
    fn sweep_abandoned_uploads(&self) {
        let started = std::time::SystemTime::now();
        let Ok(records) = backends::list(&self.db, None) else {
            return;
        };
        let mut work = Vec::new();
        for record in records
            .into_iter()
            .filter(|record| record.kind == crate::storage::BackendKind::S3)
        {
            let prepared = self
                .backend(record.id)
                .and_then(|backend| Ok((backend, queue::uploads_of_backend(&self.db, record.id)?)));
            match prepared {
                Ok((backend, (keep, ours))) => work.push((record.name, backend, keep, ours)),
                Err(error) => {
                    tracing::warn!(backend = %record.name, %error, "could not look for abandoned uploads")
                }
            }
        }
        if work.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for (name, backend, keep, ours) in work {
                match backend.sweep_abandoned(&keep, &ours, started).await {
                    Ok(0) => {}
                    Ok(count) => {
                        tracing::info!(backend = %name, count, "cleaned up abandoned uploads")
                    }
                    Err(error) => {
                        tracing::warn!(backend = %name, %error, "could not look for abandoned uploads")
                    }
                }
            }
        });
    }

    /// One daemon per data folder: a second would watch the same folders twice.
    fn lock_daemon(&self) -> Result<std::fs::File> {
        let path = self.data_dir.join(DAEMON_LOCK);
        let file = std::fs::File::create(&path)
            .map_err(|error| Error::io(format!("cannot create {}", path.display()), error))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Invalid(format!(
                "Offload is already running for {} (the tray app or another `offload run`); stop it first, or use another --data-dir",
                self.data_dir.display()
            ))),
            Err(std::fs::TryLockError::Error(error)) => Err(Error::io(format!("cannot lock {}", path.display()), error)),
        }
    }

    fn start_watching(
        &self,
        folders: &[WatchFolder],
        options: &WatchOptions,
        events: mpsc::Sender<WatchEvent>,
    ) -> Result<watch::WatchHandle> {
        let mut specs = Vec::with_capacity(folders.len());
        for folder in folders {
            match FileFilter::new(&folder.include, &folder.exclude) {
                Ok(filter) => specs.push(WatchSpec {
                    folder_id: folder.id,
                    profile_id: folder.profile_id,
                    root: folder.path.clone(),
                    recursive: folder.recursive,
                    filter,
                }),
                Err(error) => {
                    self.notice(format!("not watching {}: {error}", folder.path.display()))
                }
            }
        }
        watch::start(specs, options.clone(), events)
            .map_err(|error| Error::Invalid(error.to_string()))
    }

    fn handle_watch_events(
        &self,
        queue: &Queue,
        folders: &[WatchFolder],
        events: impl Iterator<Item = WatchEvent>,
    ) {
        let mut targets: HashMap<i64, Option<(Profile, BackendRecord)>> = HashMap::new();
        for event in events {
            match event {
                WatchEvent::Problem { folder_id, message } => {
                    let folder = folders.iter().find(|folder| folder.id == folder_id);
                    let name = folder
                        .map(|folder| folder.path.display().to_string())
                        .unwrap_or_default();
                    self.notice(format!("{name}: {message}"));
                }
                WatchEvent::Arrived(arrival) => {
                    let target = targets
                        .entry(arrival.profile_id)
                        .or_insert_with(|| self.upload_target(arrival.profile_id));
                    if let Some((profile, backend)) = target {
                        let folder = folders.iter().find(|folder| folder.id == arrival.folder_id);
                        self.enqueue_arrival(
                            queue,
                            profile,
                            backend,
                            folder.map(|folder| (folder, arrival.relative.as_path())),
                            &arrival,
                        );
                    }
                }
            }
        }
    }

    fn upload_target(&self, profile_id: i64) -> Option<(Profile, BackendRecord)> {
        let found = profiles::get(&self.db, profile_id)
            .and_then(|profile| Ok((backends::default_for(&self.db, profile.id)?, profile)));
        match found {
            Ok((backend, profile)) => Some((profile, backend)),
            Err(error) => {
                self.notice(format!(
                    "files arrived for profile {profile_id} but cannot be queued: {error}"
                ));
                None
            }
        }
    }

    fn enqueue_arrival(
        &self,
        queue: &Queue,
        profile: &Profile,
        backend: &BackendRecord,
        folder: Option<(&WatchFolder, &Path)>,
        arrival: &Arrival,
    ) {
        let job = match self.job_for_file(profile, backend, folder, &arrival.path) {
            Ok(job) => job,
            Err(error) => {
                self.notice(format!(
                    "{} cannot be queued: {error}",
                    arrival.path.display()
                ));
                return;
            }
        };
        match queue.enqueue(&job) {
            Ok(Enqueued::New(id)) => {
                tracing::info!(job = id, path = %arrival.path.display(), remote = %job.remote_path, "queued")
            }
            Ok(other) => tracing::debug!(?other, path = %arrival.path.display(), "already known"),
            Err(error) => self.notice(format!(
                "{} cannot be queued: {error}",
                arrival.path.display()
            )),
        }
    }

    fn notice(&self, message: String) {
        tracing::warn!("{message}");
        let _ = self.events.send(Event::Notice { message });
    }

    /// Watches the data folder for the wake file that other `offload` commands touch.
    fn watch_wake_file(&self, wake: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher> {
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if event
                        .paths
                        .iter()
                        .any(|path| path.file_name().is_some_and(|name| name == WAKE_FILE))
                    {
                        // A full channel already holds a wake-up; dropping this one loses nothing.
                        let _ = wake.try_send(());
                    }
                }
            })
            .map_err(|error| Error::Invalid(format!("cannot watch the data folder: {error}")))?;
        watcher
            .watch(&self.data_dir, notify::RecursiveMode::NonRecursive)
            .map_err(|error| {
                Error::Invalid(format!(
                    "cannot watch the data folder {}: {error}",
                    self.data_dir.display()
                ))
            })?;
        Ok(watcher)
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
