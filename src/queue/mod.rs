//! The persistent upload queue. Jobs live in `upload_jobs` and survive restarts and `kill -9`:
//! a job is claimed by one process at a time (its `owner`, kept alive by a lock file), and every
//! state change is one statement or transaction, so nothing is lost, nothing is uploaded twice
//! and no library row is written twice.
//!
//! States: `queued` → `running` → `verifying` → `done`, or `failed`, `paused`, `cancelled`.
//! This module is the runtime (claiming jobs, running them on a few workers); the job model and
//! its store are in [`job`], how an attempt ends in [`settle`], and the rest beside them.

mod after_upload;
mod backoff;
mod bandwidth;
mod events;
mod job;
mod owner;
mod prepare;
mod progress;
mod settle;
mod transfer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backends::OpenBackends;
use crate::db::{now_ms, to_ns, Cached, Db};
use crate::error::{Action, Result};
use crate::library;
use crate::playback::Playback;
use crate::storage::{ErrorKind, RemotePath, StorageError, UploadRequest};

pub use bandwidth::Bandwidth;
pub use events::{Event, Held, Progress};
pub use job::{
    backend_changed, cancel, enqueue, get, is_paused_globally, list, pause, release_reservations,
    reserve, resume, retry, uploads_of_backend, waiting_for_sign_in, Enqueued, Job, JobState,
    NewJob, SETTING_PAUSED,
};
pub use owner::{recover_orphans, OwnerLock};

use job::{job_from_row, JOB_COLUMNS};
use settle::{Outcome, Verified};
use transfer::{JobControl, JobTransfer, Stop};

/// Tuning of the queue; the defaults suit a home connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Files uploaded at once.
    pub workers: usize,
    /// Attempts before a job with temporary errors is marked failed.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a file that changed must hold still before its upload starts again.
    pub settle: Duration,
    /// How often a running upload checks for pause, cancel, a changed file and a new limit, and
    /// saves its progress.
    pub checkpoint_interval: Duration,
    /// How often progress events are sent per job.
    pub progress_interval: Duration,
    /// While a player streams from storage, uploads keep to this many bytes per second (0: half
    /// of what they took before); `None`: they do not yield.
    pub player_yield: Option<u64>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            workers: 2,
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            settle: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            progress_interval: Duration::from_millis(250),
            player_yield: Some(0),
        }
    }
}

/// The queued uploads that closed upload windows hold back now, whoever will run them.
pub fn held_back(db: &Db) -> Result<Held> {
    let (closed, opens) = crate::profiles::closed_windows(db, crate::schedule::local_now())?;
    count_held(db, &closed, opens)
}

/// `closed`: the profiles whose windows are closed; `opens`: when the first of them opens.
/// Nothing is read while every window is open (or none is set), as is usual.
fn count_held(db: &Db, closed: &[i64], opens: Option<chrono::NaiveDateTime>) -> Result<Held> {
    if closed.is_empty() {
        return Ok(Held::default());
    }
    let jobs: usize = db.lock().one(
        "SELECT count(*) FROM upload_jobs WHERE state = 'queued' AND profile_id IN (SELECT value FROM json_each(?1))",
        [ids_json(closed)],
        |row| row.get(0),
    )?;
    Ok(Held {
        jobs,
        opens_at: opens.filter(|_| jobs > 0),
    })
}

/// Ids as a JSON array, for `json_each`.
fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// How long after a player's last request uploads yield.
const PLAYBACK_IDLE: Duration = Duration::from_secs(60);
/// The least a yield leaves the uploads (half of almost nothing would stop them).
const MIN_PLAYER_YIELD: u64 = 256 * 1024;

/// How often a queue holding jobs back for a closed upload window looks at the clock again.
const WINDOW_CHECK: Duration = Duration::from_secs(2);

/// Which queued jobs a queue instance takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimMode {
    /// Any unreserved job (the daemon).
    Any,
    /// Only jobs reserved for this process (a one-off `offload upload`).
    Reserved,
}

/// The queue's runtime: claims jobs, runs them on a few workers, and applies each outcome.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(super) db: Db,
    pub(super) owner: OwnerLock,
    pub(super) mode: ClaimMode,
    pub(super) options: QueueOptions,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) bandwidth: Bandwidth,
    pub(super) wake: Notify,
    pub(super) running: Mutex<HashMap<i64, Arc<JobControl>>>,
    /// What the last [`Event::Held`] said, so it is said again only when it changes.
    held: Mutex<Held>,
    /// Whether a player streams from storage now (see [`QueueOptions::player_yield`]).
    playback: Arc<Playback>,
    /// The limit uploads keep to while they yield to a player.
    yielding: Mutex<Option<u64>>,
    /// Seen as their rows stand when each job starts: a sign-in or new settings apply to the
    /// next job, whoever made them.
    pub(super) backends: Arc<OpenBackends>,
    /// Where the pictures of uploaded films are kept ([`crate::posters`]).
    pub(super) data_dir: PathBuf,
}

/// Where the processes' lock files and scratch folders are, in the data folder.
pub fn owners_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("owners")
}

impl Queue {
    pub fn new(
        db: Db,
        backends: Arc<OpenBackends>,
        data_dir: &Path,
        mode: ClaimMode,
        options: QueueOptions,
        events: broadcast::Sender<Event>,
        playback: Arc<Playback>,
    ) -> Result<Queue> {
        let owner = OwnerLock::acquire(&owners_dir(data_dir))?;
        let bandwidth = Bandwidth::default();
        bandwidth.set_limit(crate::settings::bandwidth_limit(&db)?);
        Ok(Queue {
            inner: Arc::new(Inner {
                backends,
                db,
                owner,
                mode,
                options,
                events,
                bandwidth,
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                held: Mutex::new(Held::default()),
                playback,
                yielding: Mutex::new(None),
                data_dir: data_dir.to_owned(),
            }),
        })
    }

    /// The id this process reserves and claims jobs under.
    pub fn owner(&self) -> &str {
        self.inner.owner.id()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Tells the dispatcher to look at the queue again (new jobs, a lifted pause).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn enqueue(&self, job: &NewJob) -> Result<Enqueued> {
        let reserve = match self.inner.mode {
            ClaimMode::Reserved => Some(self.owner()),
            ClaimMode::Any => None,
        };
        let outcome = enqueue(&self.inner.db, job, reserve)?;
        if let Enqueued::New(job_id) = outcome {
            self.inner.emit(Event::Queued {
                job_id,
                local_path: job.local_path.clone(),
            });
            self.wake();
        }
        Ok(outcome)
    }

    /// Runs until `shutdown` fires, then stops every transfer at its next checkpoint, gives the
    /// jobs back to the queue with their progress, and returns.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut workers = JoinSet::new();
        loop {
            let next_due = self.dispatch(&mut workers);
            let sleep = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.wake.notified() => {}
                Some(_) = workers.join_next(), if !workers.is_empty() => {}
                _ = sleep => {}
            }
        }
        for control in self.inner.lock_running().values() {
            control.request(Stop::Yield);
        }
        while workers.join_next().await.is_some() {}
        if self.inner.mode == ClaimMode::Reserved {
            if let Err(error) = release_reservations(&self.inner.db, self.owner()) {
                tracing::warn!(%error, "cannot hand unfinished uploads back to the queue");
            }
        }
    }

    /// Starts jobs while workers are free; returns when the next waiting job becomes due.
    fn dispatch(&self, workers: &mut JoinSet<()>) -> Option<Instant> {
        let inner = &self.inner;
        // A wake-up may come from `offload limit`: new transfers start under the new limit.
        inner.apply_limit();
        match is_paused_globally(&inner.db) {
            Ok(true) => return None,
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "cannot read the queue state");
                return Some(Instant::now() + Duration::from_secs(5));
            }
        }
        let (closed, opens) =
            match crate::profiles::closed_windows(&inner.db, crate::schedule::local_now()) {
                Ok(windows) => windows,
                Err(error) => {
                    tracing::error!(%error, "cannot read the upload windows");
                    return Some(Instant::now() + Duration::from_secs(5));
                }
            };
        inner.tell_held(&closed, opens);
        let closed_json = ids_json(&closed);
        while inner.lock_running().len() < inner.options.workers.max(1) {
            match inner.claim_next(&closed_json) {
                Ok(Some(job)) => {
                    let control = Arc::new(JobControl::default());
                    inner.lock_running().insert(job.id, control.clone());
                    let inner = inner.clone();
                    workers.spawn(async move {
                        let id = job.id;
                        inner.run_job(job, &control).await;
                        inner.lock_running().remove(&id);
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(%error, "cannot claim the next upload");
                    return Some(Instant::now() + Duration::from_secs(5));
                }
            }
        }
        // A closed window is looked at again every few seconds rather than slept on until it
        // opens: the clock of a laptop that slept, or was set, has moved meanwhile.
        let window_check = opens.map(|_| Instant::now() + WINDOW_CHECK);
        match inner.next_due(&closed_json) {
            Ok(Some(at_ms)) => {
                let wait = Duration::from_millis((at_ms - now_ms()).max(0) as u64);
                let due = Instant::now() + wait;
                Some(window_check.map_or(due, |check| check.min(due)))
            }
            Ok(None) => window_check,
            Err(error) => {
                tracing::error!(%error, "cannot read the queue");
                Some(Instant::now() + Duration::from_secs(5))
            }
        }
    }
}

impl Inner {
    /// Sets the limit transfers keep to now: the setting's (the timetable's at this hour), and
    /// while a player streams from storage, the yield's if lower. The yield is fixed when it
    /// begins (half of what the uploads took then, by default), so it does not halve itself.
    pub(super) fn apply_limit(&self) {
        let Ok(base) = crate::settings::bandwidth_limit(&self.db) else {
            return;
        };
        let mut yielding = self
            .yielding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let playing = self.playback.active_within(PLAYBACK_IDLE);
        let limit = match self.options.player_yield {
            Some(set) if playing => {
                let limit = *yielding.get_or_insert_with(|| {
                    let limit = match set {
                        0 => (self.bandwidth.observed_rate() / 2).max(MIN_PLAYER_YIELD),
                        set => set,
                    };
                    tracing::info!(limit, "a player is streaming from storage: uploads yield");
                    limit
                });
                if base == 0 {
                    limit
                } else {
                    base.min(limit)
                }
            }
            _ => {
                if yielding.take().is_some() {
                    tracing::info!(
                        "playback has been idle for a minute: uploads go at their pace again"
                    );
                }
                base
            }
        };
        self.bandwidth.set_limit(limit);
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<JobControl>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn emit(&self, event: Event) {
        // No subscriber is fine: the daemon runs headless.
        let _ = self.events.send(event);
    }

    pub(super) fn emit_state(
        &self,
        job_id: i64,
        state: JobState,
        message: Option<String>,
        action: Option<Action>,
    ) {
        self.emit(Event::State {
            job_id,
            state,
            message,
            action,
        });
    }

    /// The jobs this process's workers hold, as a JSON array for `json_each`. A job paused and
    /// resumed (or cancelled and retried) before its worker noticed is queued again while that
    /// worker still runs it: it keeps its owner, and is not claimed a second time.
    fn running_json(&self) -> String {
        let ids: Vec<i64> = self.lock_running().keys().copied().collect();
        ids_json(&ids)
    }

    fn claim_next(&self, closed: &str) -> Result<Option<Job>> {
        let owner = self.owner.id();
        let reserved_only = self.mode == ClaimMode::Reserved;
        let now = now_ms();
        let running = self.running_json();
        self.db.transaction(|tx| {
            let job = tx
                .one(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM upload_jobs
                         WHERE state = 'queued' AND next_attempt_at <= ?1
                           AND (owner = ?2 OR (owner IS NULL AND NOT ?3))
                           AND id NOT IN (SELECT value FROM json_each(?4))
                           AND profile_id NOT IN (SELECT value FROM json_each(?5))
                         ORDER BY next_attempt_at, id LIMIT 1"
                    ),
                    params![now, owner, reserved_only, running, closed],
                    job_from_row,
                )
                .optional()?;
            let Some(mut job) = job else { return Ok(None) };
            tx.run(
                "UPDATE upload_jobs SET state = 'running', owner = ?2, bytes_done = 0, updated_at = ?3 WHERE id = ?1",
                params![job.id, owner, now],
            )?;
            job.state = JobState::Running;
            job.owner = Some(owner.to_owned());
            Ok(Some(job))
        })
    }

    /// Says how many queued jobs the closed windows hold back, when that changed.
    fn tell_held(&self, closed: &[i64], opens: Option<chrono::NaiveDateTime>) {
        let held = match count_held(&self.db, closed, opens) {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, "cannot count the uploads waiting for their window");
                return;
            }
        };
        let mut said = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *said != held {
            *said = held;
            self.emit(Event::Held(held));
        }
    }

    fn next_due(&self, closed: &str) -> Result<Option<i64>> {
        let reserved_only = self.mode == ClaimMode::Reserved;
        let running = self.running_json();
        Ok(self.db.lock().one(
            "SELECT min(next_attempt_at) FROM upload_jobs WHERE state = 'queued' AND (owner = ?1 OR (owner IS NULL AND NOT ?2))
                 AND id NOT IN (SELECT value FROM json_each(?3))
                 AND profile_id NOT IN (SELECT value FROM json_each(?4))",
            params![self.owner.id(), reserved_only, running, closed],
            |row| row.get(0),
        )?)
    }

    async fn run_job(self: &Arc<Self>, job: Job, control: &Arc<JobControl>) {
        self.emit_state(job.id, JobState::Running, None, None);
        let result = self.attempt(&job, control).await;
        if let Err(error) = self.settle(&job, result).await {
            tracing::error!(job = job.id, %error, "cannot record the outcome of an upload");
        }
    }

    async fn attempt(self: &Arc<Self>, job: &Job, control: &Arc<JobControl>) -> Result<Outcome> {
        let backend = self.backends.get(job.backend_id)?;
        let remote = RemotePath::parse(&job.remote_path)?;
        let meta = match tokio::fs::metadata(&job.local_path).await {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Outcome::LocalGone)
            }
            Err(error) => {
                return Ok(Outcome::Failed(StorageError::from_io(
                    backend.kind(),
                    crate::storage::Operation::Upload,
                    job.local_path.display(),
                    &error,
                )))
            }
        };
        if meta.len() != job.size || meta.modified().map(to_ns).ok() != Some(job.mtime_ns) {
            return Ok(Outcome::Stopped(Stop::Changed));
        }
        let resume: Option<serde_json::Value> = self
            .db
            .lock()
            .one(
                "SELECT resume FROM upload_jobs WHERE id = ?1",
                [job.id],
                |row| row.get::<_, Option<String>>(0),
            )?
            .and_then(|text| serde_json::from_str(&text).ok());
        // Held until the attempt ends: dropping it removes the rewritten copy.
        let source = match self.prepare(job, &remote, control).await? {
            prepare::Source::Stopped => return Ok(Outcome::Stopped(control.requested())),
            source => source,
        };
        let (local_path, size, source_checksum, remuxed) = match &source {
            prepare::Source::Rewritten(rewrite) => (
                rewrite.path.clone(),
                rewrite.size,
                Some(rewrite.source_checksum.clone()),
                rewrite.remuxed.clone(),
            ),
            _ => (job.local_path.clone(), job.size, None, None),
        };
        let (remote, stored_info) = match remuxed {
            Some((stored_as, info)) => (stored_as, Some(info)),
            None => (remote, None),
        };
        let request = UploadRequest {
            local_path,
            remote_path: remote.clone(),
            size,
            content_type: library::stored_content_type(&remote, &job.local_path),
            resume,
        };
        let transfer = JobTransfer::new(self.clone(), job, size, backend.kind(), control.clone());
        let uploaded = backend.upload(&request, &transfer).await;
        transfer.flush_progress();
        let stored = match uploaded {
            Ok(stored) => stored,
            Err(error) => {
                return Ok(match (error.kind, control.requested()) {
                    (ErrorKind::Interrupted, stop) if stop != Stop::None => Outcome::Stopped(stop),
                    (ErrorKind::SourceChanged, _) => Outcome::Stopped(Stop::Changed),
                    (ErrorKind::NotFound, _) if !job.local_path.exists() => Outcome::LocalGone,
                    _ => Outcome::Failed(error),
                })
            }
        };
        self.set_verifying(job.id)?;
        // The file must still be what was read: otherwise the remote copy is already stale.
        if !job.file_unchanged() {
            return Ok(Outcome::Stopped(Stop::Changed));
        }
        let verified = |stored| {
            Outcome::Verified(Box::new(Verified {
                stored,
                remote: remote.clone(),
                source_checksum,
                stored_info,
            }))
        };
        if stored.verified && stored.size == size {
            return Ok(verified(stored));
        }
        match backend.stat(&remote).await {
            Ok(Some(meta))
                if meta.size == size
                    && stored.size == size
                    && meta.checksum.as_ref().is_none_or(|c| *c == stored.checksum) =>
            {
                Ok(verified(stored))
            }
            Ok(found) => Ok(Outcome::Failed(StorageError::new(
                backend.kind(),
                crate::storage::Operation::Verify,
                ErrorKind::Integrity,
                &remote,
                match found {
                    Some(meta) => format!(
                        "the remote copy has {} bytes, the file {size}; uploading again",
                        meta.size
                    ),
                    None => "the remote copy is missing right after the upload; uploading again"
                        .to_owned(),
                },
            ))),
            Err(error) => Ok(Outcome::Failed(error)),
        }
    }

    fn set_verifying(&self, id: i64) -> Result<()> {
        self.db.lock().run(
            "UPDATE upload_jobs SET state = 'verifying', updated_at = ?2 WHERE id = ?1 AND state = 'running'",
            params![id, now_ms()],
        )?;
        self.emit_state(id, JobState::Verifying, None, None);
        Ok(())
    }
}
