//! The daemon: returns interrupted uploads to the queue, watches every profile's folders, uploads
//! what arrives, serves the stream server, and looks again whenever another process (or this
//! one's commands) changed the folders or the queue.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Engine, DAEMON_LOCK, DATABASE_FILE, WAKE_FILE};
use crate::backends::{self, BackendRecord};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::filter::FileFilter;
use crate::library;
use crate::profiles::{self, Profile, WatchFolder};
use crate::queue::{self, ClaimMode, Enqueued, Event, Queue, QueueOptions};
use crate::settings::Settings;
use crate::stream::{StreamServer, StreamSettings};
use crate::watch::{self, Arrival, WatchEvent, WatchOptions, WatchSpec};

/// Arrivals enqueued per database pass when a flood of files lands at once.
const ARRIVAL_BATCH: usize = 512;
/// How long after a verified upload or a finished scan media centre folders are brought up to
/// date: uploads finishing together make one pass.
const STRM_SETTLE: Duration = Duration::from_secs(1);

/// Waits until `due` (never, if it is `None`: the branch is disabled then).
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// What one run of the daemon (`offload run`, the desktop app) changes over the settings.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// Files uploaded at once.
    pub workers: Option<usize>,
    /// How long a file must hold still.
    pub quiet_period: Option<Duration>,
    /// How often every watched folder is scanned in full.
    pub rescan_interval: Option<Duration>,
    /// Attempts before an upload with temporary errors fails.
    pub max_attempts: Option<u32>,
    /// How often storage is looked through for changes; zero: never, this run.
    pub library_scan: Option<Duration>,
    /// Run without the stream server.
    pub without_stream_server: bool,
}

/// What the daemon runs with: the settings, with one run's overrides.
#[derive(Debug, Clone, Default, PartialEq)]
struct DaemonOptions {
    watch: WatchOptions,
    queue: QueueOptions,
    /// Where the stream server listens; `None` runs without one.
    stream: Option<StreamSettings>,
    /// How often the library follows what changed in storage; `None`: never.
    library_scan: Option<Duration>,
}

impl RunOverrides {
    fn options(&self, settings: &Settings) -> DaemonOptions {
        let mut options = DaemonOptions::default();
        options.queue.workers = self.workers.unwrap_or(settings.workers);
        options.queue.player_yield = settings.player_yield();
        // A file must hold still this long before it is uploaded, and again after it changed.
        let quiet_period = self.quiet_period.unwrap_or_else(|| settings.quiet_period());
        options.watch.quiet_period = quiet_period;
        options.queue.settle = quiet_period;
        if let Some(interval) = self.rescan_interval {
            options.watch.rescan_interval = interval;
        }
        if let Some(attempts) = self.max_attempts {
            options.queue.max_attempts = attempts;
        }
        options.stream =
            (!self.without_stream_server).then(|| StreamSettings::from_settings(settings));
        options.library_scan = match self.library_scan {
            Some(every) => (!every.is_zero()).then_some(every),
            None => settings.library_scan(),
        };
        options
    }
}

/// Why one run of the daemon ended.
enum Ended {
    Shutdown,
    /// Settings it fixes at start (uploads at once, the quiet period, where the stream server
    /// listens and how long its URLs live) changed: it starts again with them.
    SettingsChanged,
}

impl Engine {
    /// The headless daemon: returns interrupted uploads to the queue, watches every profile's
    /// folders, and uploads what arrives until `shutdown` fires; then checkpoints and returns.
    /// When a setting it fixes at start changes (the stream port, uploads at once …), whoever
    /// changed it, it stops at a checkpoint and starts again in place with it; the bandwidth
    /// limit is read live, and a setting this run overrides changes nothing.
    pub async fn run(&self, overrides: &RunOverrides, shutdown: CancellationToken) -> Result<()> {
        let _daemon_lock = self.lock_daemon()?;
        let mut first = true;
        let last_scan = library::LastRound::default();
        loop {
            let options = overrides.options(&self.settings()?);
            match self
                .run_with(overrides, options, &shutdown, first, &last_scan)
                .await?
            {
                Ended::Shutdown => return Ok(()),
                Ended::SettingsChanged => {
                    first = false;
                    tracing::info!("the settings changed: starting again with them");
                }
            }
        }
    }

    async fn run_with(
        &self,
        overrides: &RunOverrides,
        options: DaemonOptions,
        shutdown: &CancellationToken,
        first: bool,
        last_scan: &library::LastRound,
    ) -> Result<Ended> {
        let stream_stop = CancellationToken::new();
        let stream_task = match &options.stream {
            Some(stream) => {
                self.start_stream_server(stream, stream_stop.clone())
                    .await?
            }
            None => None,
        };
        queue::recover_orphans(&self.db, &self.owners_dir())?;
        if first {
            self.sweep_abandoned_uploads();
        }
        let queue = self.queue(ClaimMode::Any, options.queue.clone())?;
        let queue_stop = CancellationToken::new();
        let queue_task = {
            let queue = queue.clone();
            let stop = queue_stop.clone();
            tokio::spawn(async move { queue.run(stop).await })
        };

        let scan_stop = CancellationToken::new();
        let scan_task = options.library_scan.map(|every| {
            let events = self.events.clone();
            tokio::spawn(library::keep_scanning(
                self.db.clone(),
                self.backends.clone(),
                every,
                last_scan.clone(),
                move |progress| {
                    let _ = events.send(Event::Scan(progress));
                },
                scan_stop.clone(),
            ))
        });

        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        let _wake_watcher = self.watch_wake_file(wake_tx)?;
        let (arrivals_tx, mut arrivals_rx) = mpsc::channel::<WatchEvent>(4096);
        let mut folders = profiles::watch_folders(&self.db, None)?;
        let mut watcher = self.start_watching(&folders, &options.watch, arrivals_tx.clone())?;
        if first {
            tracing::info!(folders = folders.len(), data_dir = %self.data_dir.display(), "offload is running");
        }

        // The library's follow-ups — describing items found in storage, media centre folders —
        // run at start, when woken, and a moment after uploads are verified or a scan ends (one
        // pass for a burst).
        let mut library_events = self.events.subscribe();
        let mut strm_due = Some(tokio::time::Instant::now());
        let mut strm_failing = std::collections::HashSet::new();
        let mut describing: Option<tokio::task::JoinHandle<()>> = None;

        let mut batch = Vec::with_capacity(ARRIVAL_BATCH);
        let ended = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ended::Shutdown,
                () = sleep_until(strm_due), if strm_due.is_some() => {
                    strm_due = None;
                    if stream_task.is_some() && describing.as_ref().is_none_or(|task| task.is_finished()) {
                        describing = self.describe_found_items();
                    }
                    self.sync_strm_folders(&mut strm_failing).await;
                }
                event = library_events.recv() => {
                    let changed = match event {
                        Ok(Event::State { state, .. }) => state == queue::JobState::Done,
                        Ok(Event::Scan(progress)) => progress.done,
                        Ok(_) => false,
                        // Missed events may have been uploads.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                    };
                    if changed && strm_due.is_none() {
                        strm_due = Some(tokio::time::Instant::now() + STRM_SETTLE);
                    }
                }
                Some(()) = wake_rx.recv() => {
                    strm_due = Some(tokio::time::Instant::now());
                    if self.settings().is_ok_and(|now| overrides.options(&now) != options) {
                        break Ended::SettingsChanged;
                    }
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
                    if count == 0 { break Ended::Shutdown; }
                    self.handle_watch_events(&queue, &folders, batch.drain(..));
                }
            }
        };
        tracing::info!("stopping: checkpointing uploads in progress");
        watcher.stop().await;
        queue_stop.cancel();
        stream_stop.cancel();
        scan_stop.cancel();
        if let Some(task) = describing {
            task.abort();
        }
        let _ = queue_task.await;
        if let Some(task) = scan_task {
            let _ = task.await;
        }
        if let Some(task) = stream_task {
            let _ = task.await;
        }
        Ok(ended)
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
            self.playback.clone(),
            &self.data_dir,
        )
        .await?;
        // The local API answers on the same listener, with an engine of its own.
        let api = super::api::router(
            Engine::open(&self.data_dir)?.telling(self.events.clone()),
            settings.base_url(),
        );
        Ok(Some(tokio::spawn(server.with_routes(api).serve(stop))))
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
                "Offload is already running for {} (the desktop app or a daemon); stop it first, or use another data folder",
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
        let job = match self.job_for_file(
            profile,
            backend,
            folder.map(|(folder, _)| folder),
            folder.map(|(_, relative)| relative),
            &arrival.path,
        ) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_follows_what_the_run_uses_not_every_setting() {
        let before = Settings::default();
        let changed = |change: fn(&mut Settings)| {
            let mut now = before.clone();
            change(&mut now);
            now
        };
        let plain = RunOverrides::default();
        let restarts = |overrides: &RunOverrides, now: &Settings| {
            overrides.options(now) != overrides.options(&before)
        };
        // Read live, or not the daemon's at all.
        assert!(!restarts(&plain, &changed(|s| s.bandwidth_limit = 1 << 20)));
        assert!(!restarts(&plain, &changed(|s| s.notifications = false)));
        assert!(!restarts(&plain, &changed(|s| s.autostart = true)));
        // Fixed at start.
        assert!(restarts(&plain, &changed(|s| s.workers = 3)));
        assert!(restarts(&plain, &changed(|s| s.quiet_period_secs = 1)));
        assert!(restarts(&plain, &changed(|s| s.stream_port = 40_000)));
        assert!(restarts(&plain, &changed(|s| s.url_lifetime_secs = 3)));
        // What this run overrides stays as it is whatever the setting says.
        let fixed = RunOverrides {
            workers: Some(4),
            without_stream_server: true,
            ..RunOverrides::default()
        };
        assert!(!restarts(&fixed, &changed(|s| s.workers = 3)));
        assert!(!restarts(&fixed, &changed(|s| s.stream_port = 40_000)));
        assert!(restarts(&fixed, &changed(|s| s.quiet_period_secs = 1)));
    }
}
