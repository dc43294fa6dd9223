//! The persistent upload queue. Jobs live in `upload_jobs` and survive restarts and `kill -9`:
//! a job is claimed by one process at a time (its `owner`, kept alive by a lock file), and every
//! state change is one transaction, so nothing is lost, nothing is uploaded twice and no library
//! row is written twice.
//!
//! States: `queued` → `running` → `verifying` → `done`, or `failed`, `paused`, `cancelled`.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use rand::Rng;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backends::OpenBackends;
use crate::db::{now_ms, to_ns, Db};
use crate::error::{is_unique_violation, Error, Result};
use crate::library::{self, LibraryItem, UploadedFile};
use crate::profiles::{self, AfterUpload};
use crate::secrets::Vault;
use crate::storage::{
    BackendKind, ErrorKind, RemotePath, StorageError, StoredObject, Transfer, UploadRequest,
};

pub const SETTING_PAUSED: &str = "queue.paused";
pub const SETTING_BANDWIDTH: &str = "queue.bandwidth_limit";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Verifying,
    Done,
    Failed,
    Paused,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Verifying,
        JobState::Done,
        JobState::Failed,
        JobState::Paused,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Verifying => "verifying",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Paused => "paused",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// No worker will touch the job again unless a person asks.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: i64,
    pub profile_id: i64,
    pub backend_id: i64,
    pub watch_folder_id: Option<i64>,
    pub local_path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub remote_path: String,
    pub state: JobState,
    pub bytes_done: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub checksum: Option<String>,
    pub owner: Option<String>,
    pub library_item: Option<LibraryItem>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const JOB_COLUMNS: &str = "id, profile_id, backend_id, watch_folder_id, local_path, size, mtime_ns, remote_path, state,
    bytes_done, attempts, last_error, next_attempt_at, checksum, owner, media_id, episode_id, created_at, updated_at, finished_at";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(8)?;
    let media: Option<i64> = row.get(15)?;
    let episode: Option<i64> = row.get(16)?;
    Ok(Job {
        id: row.get(0)?,
        profile_id: row.get(1)?,
        backend_id: row.get(2)?,
        watch_folder_id: row.get(3)?,
        local_path: PathBuf::from(row.get::<_, String>(4)?),
        size: row.get::<_, i64>(5)? as u64,
        mtime_ns: row.get(6)?,
        remote_path: row.get(7)?,
        state: JobState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("unknown job state {state}").into(),
            )
        })?,
        bytes_done: row.get::<_, i64>(9)? as u64,
        attempts: row.get(10)?,
        last_error: row.get(11)?,
        next_attempt_at: row.get(12)?,
        checksum: row.get(13)?,
        owner: row.get(14)?,
        library_item: media
            .map(LibraryItem::Media)
            .or(episode.map(LibraryItem::Episode)),
        created_at: row.get(17)?,
        updated_at: row.get(18)?,
        finished_at: row.get(19)?,
    })
}

/// What the queue tells the command line, the tray and the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Queued {
        job_id: i64,
        local_path: PathBuf,
    },
    Progress(Progress),
    State {
        job_id: i64,
        state: JobState,
        message: Option<String>,
    },
    /// Something a person should know that is not a job's state (a watch limit, a policy that failed).
    Notice {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub job_id: i64,
    pub bytes_done: u64,
    pub total: u64,
    /// Bytes per second, smoothed.
    pub rate: f64,
    pub eta_seconds: Option<u64>,
}

/// A file to upload.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub profile_id: i64,
    pub backend_id: i64,
    pub watch_folder_id: Option<i64>,
    pub local_path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub remote_path: RemotePath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job.
    New(i64),
    /// A live job for this file already exists (its size and mtime were refreshed if it had not
    /// started).
    AlreadyQueued(i64),
    /// This exact file (path, size, mtime) was already handled: done, failed or cancelled.
    AlreadyHandled(i64, JobState),
}

impl Enqueued {
    pub fn job_id(self) -> i64 {
        match self {
            Enqueued::New(id) | Enqueued::AlreadyQueued(id) | Enqueued::AlreadyHandled(id, _) => id,
        }
    }
}

/// Adds a file to the queue unless it is already there or already handled. `reserve_for` marks
/// the job as belonging to one process (the one-off `offload upload`), so the daemon leaves it.
pub fn enqueue(db: &Db, job: &NewJob, reserve_for: Option<&str>) -> Result<Enqueued> {
    let local = job
        .local_path
        .to_str()
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} is not a valid Unicode path; rename it to upload it",
                job.local_path.display()
            ))
        })?
        .to_owned();
    let size = job.size as i64;
    let mtime = to_ns(job.modified);
    let now = now_ms();
    db.transaction(|tx| {
        let live: Option<(i64, String, i64, i64)> = tx
            .query_row(
                "SELECT id, state, size, mtime_ns FROM upload_jobs
                 WHERE profile_id = ?1 AND backend_id = ?2 AND local_path = ?3
                   AND state IN ('queued', 'running', 'verifying', 'paused')",
                params![job.profile_id, job.backend_id, local],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        if let Some((id, state, old_size, old_mtime)) = live {
            if (old_size, old_mtime) != (size, mtime) && matches!(state.as_str(), "queued" | "paused") {
                tx.execute(
                    "UPDATE upload_jobs SET size = ?2, mtime_ns = ?3, remote_path = ?4, bytes_done = 0, resume = NULL, updated_at = ?5
                     WHERE id = ?1",
                    params![id, size, mtime, job.remote_path.as_str(), now],
                )?;
            }
            return Ok(Enqueued::AlreadyQueued(id));
        }
        let handled: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, state FROM upload_jobs
                 WHERE profile_id = ?1 AND backend_id = ?2 AND local_path = ?3 AND size = ?4 AND mtime_ns = ?5
                 ORDER BY id DESC LIMIT 1",
                params![job.profile_id, job.backend_id, local, size, mtime],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((id, state)) = handled {
            if let Some(state) = JobState::parse(&state) {
                return Ok(Enqueued::AlreadyHandled(id, state));
            }
        }
        tx.execute(
            "INSERT INTO upload_jobs (profile_id, backend_id, watch_folder_id, local_path, size, mtime_ns, remote_path, state,
                                      owner, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, 0, ?9, ?9)",
            params![job.profile_id, job.backend_id, job.watch_folder_id, local, size, mtime, job.remote_path.as_str(), reserve_for, now],
        )
        .map_err(|error| if is_unique_violation(&error) { Error::Invalid(format!("{local} is already queued")) } else { error.into() })?;
        Ok(Enqueued::New(tx.last_insert_rowid()))
    })
}

pub fn get(db: &Db, id: i64) -> Result<Job> {
    db.lock()
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM upload_jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no upload job {id}; `offload jobs` lists them")))
}

/// Jobs, newest first; `states` empty means all.
pub fn list(db: &Db, states: &[JobState]) -> Result<Vec<Job>> {
    let filter = if states.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = states
            .iter()
            .map(|state| format!("'{}'", state.as_str()))
            .collect();
        format!("WHERE state IN ({})", names.join(", "))
    };
    let conn = db.lock();
    let mut statement = conn.prepare(&format!(
        "SELECT {JOB_COLUMNS} FROM upload_jobs {filter} ORDER BY id DESC"
    ))?;
    let rows = statement.query_map([], job_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many jobs wait for an account to be signed in again.
pub fn waiting_for_sign_in(db: &Db) -> Result<usize> {
    Ok(db.lock().query_row(
        "SELECT count(*) FROM upload_jobs WHERE state = 'paused' AND waiting_for = 'sign-in'",
        [],
        |row| row.get::<_, i64>(0),
    )? as usize)
}

pub fn is_paused_globally(db: &Db) -> Result<bool> {
    Ok(db.setting(SETTING_PAUSED)?.as_deref() == Some("1"))
}

/// Pauses one job, or with `None` the whole queue: nothing new starts, and uploads in progress
/// stop at their next checkpoint and wait with their progress kept.
pub fn pause(db: &Db, job: Option<i64>) -> Result<usize> {
    match job {
        Some(id) => {
            let job = get(db, id)?;
            if job.state.is_terminal() {
                return Err(Error::Invalid(format!(
                    "job {id} is {}; only unfinished jobs can be paused",
                    job.state
                )));
            }
            Ok(db.lock().execute(
                "UPDATE upload_jobs SET state = 'paused', updated_at = ?2 WHERE id = ?1 AND state IN ('queued', 'running', 'verifying')",
                params![id, now_ms()],
            )?)
        }
        None => {
            db.set_setting(SETTING_PAUSED, "1")?;
            Ok(0)
        }
    }
}

/// Resumes one paused job, or with `None` lifts the queue-wide pause and resumes every paused job.
pub fn resume(db: &Db, job: Option<i64>) -> Result<usize> {
    let now = now_ms();
    match job {
        Some(id) => {
            let job = get(db, id)?;
            if job.state != JobState::Paused {
                return Err(Error::Invalid(format!(
                    "job {id} is {}, not paused",
                    job.state
                )));
            }
            Ok(db.lock().execute(
                "UPDATE upload_jobs SET state = 'queued', next_attempt_at = 0, updated_at = ?2 WHERE id = ?1 AND state = 'paused'",
                params![id, now],
            )?)
        }
        None => {
            db.set_setting(SETTING_PAUSED, "0")?;
            Ok(db.lock().execute(
                "UPDATE upload_jobs SET state = 'queued', next_attempt_at = 0, updated_at = ?1 WHERE state = 'paused'",
                [now],
            )?)
        }
    }
}

/// A backend was signed in or given new settings: its jobs get a fresh start. Those waiting for
/// a sign-in, waiting out a backoff after a failed attempt, or failed on it (the newest job of each file, if no other
/// job for it is alive) are queued to go now. Takes a transaction (or connection) so that it
/// lands with the change that caused it.
pub fn backend_changed(conn: &rusqlite::Connection, backend_id: i64) -> Result<usize> {
    let now = now_ms();
    let waiting = conn.execute(
        "UPDATE upload_jobs SET state = 'queued', waiting_for = NULL, next_attempt_at = 0, last_error = NULL, updated_at = ?2
         WHERE backend_id = ?1 AND state = 'paused' AND waiting_for = 'sign-in'",
        params![backend_id, now],
    )?;
    let retrying = conn.execute(
        "UPDATE upload_jobs SET next_attempt_at = 0, updated_at = ?2
         WHERE backend_id = ?1 AND state = 'queued' AND attempts > 0 AND next_attempt_at > 0",
        params![backend_id, now],
    )?;
    let failed = conn.execute(
        "UPDATE upload_jobs SET state = 'queued', attempts = 0, next_attempt_at = 0, last_error = NULL, finished_at = NULL,
             updated_at = ?2
         WHERE backend_id = ?1 AND state = 'failed'
           AND id = (SELECT max(other.id) FROM upload_jobs other
                     WHERE other.profile_id = upload_jobs.profile_id AND other.backend_id = upload_jobs.backend_id
                       AND other.local_path = upload_jobs.local_path)",
        params![backend_id, now],
    )?;
    Ok(waiting + retrying + failed)
}

/// Puts a failed or cancelled job back in the queue, with a fresh count of attempts.
pub fn retry(db: &Db, id: i64) -> Result<()> {
    let job = get(db, id)?;
    if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
        return Err(Error::Invalid(format!(
            "job {id} is {}; only failed or cancelled jobs can be retried",
            job.state
        )));
    }
    db.lock()
        .execute(
            "UPDATE upload_jobs SET state = 'queued', attempts = 0, next_attempt_at = 0, last_error = NULL, updated_at = ?2
             WHERE id = ?1",
            params![id, now_ms()],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::Invalid(format!("{} is already queued again as another job", job.local_path.display()))
            } else {
                error.into()
            }
        })?;
    Ok(())
}

/// Cancels a job. One in progress stops at its next checkpoint; what it left half-uploaded is
/// discarded by its backend.
pub fn cancel(db: &Db, id: i64) -> Result<()> {
    let job = get(db, id)?;
    if job.state.is_terminal() {
        return Err(Error::Invalid(format!("job {id} is already {}", job.state)));
    }
    db.lock().execute(
        "UPDATE upload_jobs SET state = 'cancelled', last_error = 'cancelled by you', finished_at = ?2, updated_at = ?2
         WHERE id = ?1 AND state NOT IN ('done', 'failed', 'cancelled')",
        params![id, now_ms()],
    )?;
    Ok(())
}

/// Sets the queue-wide bandwidth limit in bytes per second (0: none). Running uploads pick it up
/// within a second.
pub fn set_bandwidth_limit(db: &Db, bytes_per_second: u64) -> Result<()> {
    db.set_setting(SETTING_BANDWIDTH, &bytes_per_second.to_string())?;
    Ok(())
}

pub fn bandwidth_limit(db: &Db) -> Result<u64> {
    Ok(db
        .setting(SETTING_BANDWIDTH)?
        .and_then(|text| text.parse().ok())
        .unwrap_or(0))
}

/// A process's claim on the jobs it runs: a lock file that the OS releases when the process
/// dies, however it dies. Another process finding the file unlocked knows the owner is gone.
pub struct OwnerLock {
    id: String,
    path: PathBuf,
    _file: File,
}

impl OwnerLock {
    pub fn acquire(dir: &Path) -> Result<OwnerLock> {
        std::fs::create_dir_all(dir)
            .map_err(|error| Error::io(format!("cannot create {}", dir.display()), error))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = dir.join(format!("{id}.lock"));
        let file = File::create(&path)
            .map_err(|error| Error::io(format!("cannot create {}", path.display()), error))?;
        file.lock()
            .map_err(|error| Error::io(format!("cannot lock {}", path.display()), error))?;
        Ok(OwnerLock {
            id,
            path,
            _file: file,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the process that took `owner` in `dir` is still running.
    pub fn is_alive(dir: &Path, owner: &str) -> bool {
        let path = dir.join(format!("{owner}.lock"));
        let Ok(file) = File::options().read(true).write(true).open(&path) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(_) => true,
        }
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes a queued job no process holds for `owner` (a one-off upload of a file already queued).
pub fn reserve(db: &Db, id: i64, owner: &str) -> Result<bool> {
    Ok(db.lock().execute(
        "UPDATE upload_jobs SET owner = ?2, updated_at = ?3 WHERE id = ?1 AND state IN ('queued', 'paused') AND owner IS NULL",
        params![id, owner, now_ms()],
    )? == 1)
}

/// Lets go of every job `owner` reserved but did not finish, so the daemon can take them.
pub fn release_reservations(db: &Db, owner: &str) -> Result<usize> {
    Ok(db.lock().execute(
        "UPDATE upload_jobs SET owner = NULL, updated_at = ?2 WHERE owner = ?1 AND state IN ('queued', 'paused', 'failed', 'cancelled')",
        params![owner, now_ms()],
    )?)
}

/// For the start-up sweep of one backend: the resume records of its live jobs, and every remote
/// path any of its jobs uploads to.
pub fn uploads_of_backend(
    db: &Db,
    backend_id: i64,
) -> Result<(Vec<serde_json::Value>, Vec<RemotePath>)> {
    let conn = db.lock();
    let mut statement =
        conn.prepare("SELECT remote_path, state, resume FROM upload_jobs WHERE backend_id = ?1")?;
    let rows = statement.query_map([backend_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
        ))
    })?;
    let (mut keep, mut ours) = (Vec::new(), Vec::new());
    for row in rows {
        let (remote, state, resume) = row?;
        let live =
            JobState::parse(&state).is_some_and(|state| !state.is_terminal()) || state == "failed";
        if let (true, Some(record)) = (
            live,
            resume.and_then(|text| serde_json::from_str(&text).ok()),
        ) {
            keep.push(record);
        }
        if let Ok(remote) = RemotePath::parse(&remote) {
            ours.push(remote);
        }
    }
    Ok((keep, ours))
}

/// Returns to the queue every job whose owner died (a crash, `kill -9`, a power cut). Its
/// resume record stays, so a provider that can continue does.
pub fn recover_orphans(db: &Db, owners_dir: &Path) -> Result<usize> {
    let claimed: Vec<(i64, String)> = {
        let conn = db.lock();
        let mut statement =
            conn.prepare("SELECT id, owner FROM upload_jobs WHERE owner IS NOT NULL")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut alive: HashMap<String, bool> = HashMap::new();
    let mut recovered = 0;
    for (id, owner) in claimed {
        let owner_alive = *alive
            .entry(owner.clone())
            .or_insert_with(|| OwnerLock::is_alive(owners_dir, &owner));
        if owner_alive {
            continue;
        }
        recovered += db.lock().execute(
            "UPDATE upload_jobs SET owner = NULL, updated_at = ?3,
                 state = CASE WHEN state IN ('running', 'verifying') THEN 'queued' ELSE state END
             WHERE id = ?1 AND owner = ?2",
            params![id, owner, now_ms()],
        )?;
    }
    if recovered > 0 {
        tracing::info!(recovered, "returned interrupted uploads to the queue");
    }
    Ok(recovered)
}

/// Tuning of the queue; the defaults suit a home connection.
#[derive(Debug, Clone)]
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
        }
    }
}

impl QueueOptions {
    /// Exponential backoff with equal jitter; never sooner than the provider asked.
    fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempts.saturating_sub(1).min(20);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max);
        let half = full / 2;
        let jittered = half + half.mul_f64(rand::rng().random::<f64>());
        retry_after.map_or(jittered, |asked| asked.max(jittered))
    }
}

/// A token bucket shared by all transfers of a process; the limit can change while it runs.
#[derive(Default)]
pub struct Bandwidth {
    limit: AtomicU64,
    next_free: Mutex<Option<Instant>>,
}

/// How far ahead of the ideal schedule a transfer may run: smooths bursts of reads.
const BANDWIDTH_BURST: Duration = Duration::from_millis(200);

impl Bandwidth {
    pub fn set_limit(&self, bytes_per_second: u64) {
        self.limit.store(bytes_per_second, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    pub async fn take(&self, bytes: u64) {
        let limit = self.limit();
        if limit == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / limit as f64);
        let wake_at = {
            let mut next_free = self
                .next_free
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let start = next_free.map_or(now, |next| next.max(now));
            let next = start + cost;
            *next_free = Some(next);
            next.checked_sub(BANDWIDTH_BURST).filter(|at| *at > now)
        };
        if let Some(at) = wake_at {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

/// Which queued jobs a queue instance takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimMode {
    /// Any unreserved job (the daemon).
    Any,
    /// Only jobs reserved for this process (a one-off `offload upload`).
    Reserved,
}

/// Why a running transfer was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stop {
    None = 0,
    /// Pause this job (it waits, keeping its progress).
    Pause = 1,
    /// Cancel this job.
    Cancel = 2,
    /// Give the job back to the queue (queue-wide pause, shutdown).
    Yield = 3,
    /// The local file changed: start again once it settles.
    Changed = 4,
}

impl Stop {
    fn from_u8(value: u8) -> Stop {
        match value {
            1 => Stop::Pause,
            2 => Stop::Cancel,
            3 => Stop::Yield,
            4 => Stop::Changed,
            _ => Stop::None,
        }
    }
}

#[derive(Default)]
struct JobControl {
    stop: AtomicU8,
}

impl JobControl {
    fn request(&self, stop: Stop) {
        // The first reason wins: a cancel is not downgraded to a pause.
        let _ = self.stop.compare_exchange(
            Stop::None as u8,
            stop as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    fn requested(&self) -> Stop {
        Stop::from_u8(self.stop.load(Ordering::SeqCst))
    }
}

/// The queue's runtime: claims jobs, runs them on a few workers, and applies each outcome.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    owner: OwnerLock,
    mode: ClaimMode,
    options: QueueOptions,
    events: broadcast::Sender<Event>,
    bandwidth: Bandwidth,
    wake: Notify,
    running: Mutex<HashMap<i64, Arc<JobControl>>>,
    /// Seen as their rows stand when each job starts: a sign-in or new settings apply to the
    /// next job, whoever made them.
    backends: OpenBackends,
}

impl Queue {
    pub fn new(
        db: Db,
        vault: Arc<Vault>,
        owners_dir: &Path,
        mode: ClaimMode,
        options: QueueOptions,
        events: broadcast::Sender<Event>,
    ) -> Result<Queue> {
        let owner = OwnerLock::acquire(owners_dir)?;
        let bandwidth = Bandwidth::default();
        bandwidth.set_limit(bandwidth_limit(&db)?);
        Ok(Queue {
            inner: Arc::new(Inner {
                backends: OpenBackends::new(db.clone(), vault, Duration::ZERO),
                db,
                owner,
                mode,
                options,
                events,
                bandwidth,
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
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
        if let Ok(limit) = bandwidth_limit(&inner.db) {
            inner.bandwidth.set_limit(limit);
        }
        match is_paused_globally(&inner.db) {
            Ok(true) => return None,
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "cannot read the queue state");
                return Some(Instant::now() + Duration::from_secs(5));
            }
        }
        while inner.lock_running().len() < inner.options.workers.max(1) {
            match inner.claim_next() {
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
        match inner.next_due() {
            Ok(Some(at_ms)) => {
                let wait = Duration::from_millis((at_ms - now_ms()).max(0) as u64);
                Some(Instant::now() + wait)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%error, "cannot read the queue");
                Some(Instant::now() + Duration::from_secs(5))
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Verified(StoredObject),
    Stopped(Stop),
    Failed(StorageError),
    /// Not a transfer failure: the job cannot run as configured (a removed backend, a bad path).
    Broken(Error),
    LocalGone,
}

impl Inner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<JobControl>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine: the daemon runs headless.
        let _ = self.events.send(event);
    }

    fn emit_state(&self, job_id: i64, state: JobState, message: Option<String>) {
        self.emit(Event::State {
            job_id,
            state,
            message,
        });
    }

    /// The jobs this process's workers hold, as a JSON array for `json_each`. A job paused and
    /// resumed (or cancelled and retried) before its worker noticed is queued again while that
    /// worker still runs it: it keeps its owner, and is not claimed a second time.
    fn running_json(&self) -> String {
        let ids: Vec<i64> = self.lock_running().keys().copied().collect();
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
    }

    fn claim_next(&self) -> Result<Option<Job>> {
        let owner = self.owner.id();
        let reserved_only = self.mode == ClaimMode::Reserved;
        let now = now_ms();
        let running = self.running_json();
        self.db.transaction(|tx| {
            let job = tx
                .query_row(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM upload_jobs
                         WHERE state = 'queued' AND next_attempt_at <= ?1
                           AND (owner = ?2 OR (owner IS NULL AND NOT ?3))
                           AND id NOT IN (SELECT value FROM json_each(?4))
                         ORDER BY next_attempt_at, id LIMIT 1"
                    ),
                    params![now, owner, reserved_only, running],
                    job_from_row,
                )
                .optional()?;
            let Some(mut job) = job else { return Ok(None) };
            tx.execute(
                "UPDATE upload_jobs SET state = 'running', owner = ?2, bytes_done = 0, updated_at = ?3 WHERE id = ?1",
                params![job.id, owner, now],
            )?;
            job.state = JobState::Running;
            job.owner = Some(owner.to_owned());
            Ok(Some(job))
        })
    }

    fn next_due(&self) -> Result<Option<i64>> {
        let reserved_only = self.mode == ClaimMode::Reserved;
        let running = self.running_json();
        Ok(self.db.lock().query_row(
            "SELECT min(next_attempt_at) FROM upload_jobs WHERE state = 'queued' AND (owner = ?1 OR (owner IS NULL AND NOT ?2))
                 AND id NOT IN (SELECT value FROM json_each(?3))",
            params![self.owner.id(), reserved_only, running],
            |row| row.get(0),
        )?)
    }

    async fn run_job(self: &Arc<Self>, job: Job, control: &Arc<JobControl>) {
        self.emit_state(job.id, JobState::Running, None);
        let result = self.attempt(&job, control).await;
        if let Err(error) = self.settle(&job, result).await {
            tracing::error!(job = job.id, %error, "cannot record the outcome of an upload");
        }
    }

    async fn attempt(self: &Arc<Self>, job: &Job, control: &Arc<JobControl>) -> Result<Attempt> {
        let backend = self.backends.get(job.backend_id)?;
        let remote = RemotePath::parse(&job.remote_path)?;
        let meta = match tokio::fs::metadata(&job.local_path).await {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Attempt::LocalGone)
            }
            Err(error) => {
                return Ok(Attempt::Failed(StorageError::from_io(
                    backend.kind(),
                    crate::storage::Operation::Upload,
                    job.local_path.display(),
                    &error,
                )))
            }
        };
        if meta.len() != job.size || meta.modified().map(to_ns).ok() != Some(job.mtime_ns) {
            return Ok(Attempt::Stopped(Stop::Changed));
        }
        let resume: Option<serde_json::Value> = self
            .db
            .lock()
            .query_row(
                "SELECT resume FROM upload_jobs WHERE id = ?1",
                [job.id],
                |row| row.get::<_, Option<String>>(0),
            )?
            .and_then(|text| serde_json::from_str(&text).ok());
        let request = UploadRequest {
            local_path: job.local_path.clone(),
            remote_path: remote.clone(),
            size: job.size,
            content_type: library::content_type_of(&job.local_path),
            resume,
        };
        let transfer = JobTransfer::new(self.clone(), job, backend.kind(), control.clone());
        let uploaded = backend.upload(&request, &transfer).await;
        transfer.flush_progress();
        let stored = match uploaded {
            Ok(stored) => stored,
            Err(error) => {
                return Ok(match (error.kind, control.requested()) {
                    (ErrorKind::Interrupted, stop) if stop != Stop::None => Attempt::Stopped(stop),
                    (ErrorKind::SourceChanged, _) => Attempt::Stopped(Stop::Changed),
                    (ErrorKind::NotFound, _) if !job.local_path.exists() => Attempt::LocalGone,
                    _ => Attempt::Failed(error),
                })
            }
        };
        self.set_verifying(job.id)?;
        // The file must still be what was read: otherwise the remote copy is already stale.
        if !local_unchanged(&job.local_path, job.size, job.mtime_ns) {
            return Ok(Attempt::Stopped(Stop::Changed));
        }
        if stored.verified && stored.size == job.size {
            return Ok(Attempt::Verified(stored));
        }
        match backend.stat(&remote).await {
            Ok(Some(meta))
                if meta.size == job.size
                    && stored.size == job.size
                    && meta.checksum.as_ref().is_none_or(|c| *c == stored.checksum) =>
            {
                Ok(Attempt::Verified(stored))
            }
            Ok(found) => Ok(Attempt::Failed(StorageError::new(
                backend.kind(),
                crate::storage::Operation::Verify,
                ErrorKind::Integrity,
                &remote,
                match found {
                    Some(meta) => format!(
                        "the remote copy has {} bytes, the file {}; uploading again",
                        meta.size, job.size
                    ),
                    None => "the remote copy is missing right after the upload; uploading again"
                        .to_owned(),
                },
            ))),
            Err(error) => Ok(Attempt::Failed(error)),
        }
    }

    fn set_verifying(&self, id: i64) -> Result<()> {
        self.db.lock().execute(
            "UPDATE upload_jobs SET state = 'verifying', updated_at = ?2 WHERE id = ?1 AND state = 'running'",
            params![id, now_ms()],
        )?;
        self.emit_state(id, JobState::Verifying, None);
        Ok(())
    }

    /// Applies the outcome of an attempt to the job's row, in one transaction.
    async fn settle(&self, job: &Job, result: Result<Attempt>) -> Result<()> {
        let now = now_ms();
        let owner = self.owner.id();
        let reserve = (self.mode == ClaimMode::Reserved).then_some(owner);
        // Writes other than "done" only apply while the job is still ours and unfinished: a
        // person may have paused or cancelled it in the meantime, and that wins.
        let update_live = |sql: &str, values: &[&dyn rusqlite::ToSql]| -> Result<usize> {
            Ok(self.db.lock().execute(
                &format!(
                    "{sql} WHERE id = {} AND state IN ('running', 'verifying')",
                    job.id
                ),
                values,
            )?)
        };
        let attempt = result.unwrap_or_else(Attempt::Broken);
        match attempt {
            Attempt::Verified(stored) => {
                let remote = RemotePath::parse(&job.remote_path)?;
                let item = self.db.transaction(|tx| {
                    let item = library::record_upload(
                        tx,
                        &UploadedFile {
                            profile_id: job.profile_id,
                            backend_id: job.backend_id,
                            local_path: &job.local_path,
                            remote_path: &remote,
                            size: stored.size,
                            checksum: &stored.checksum,
                        },
                    )?;
                    let (media, episode) = match item {
                        LibraryItem::Media(id) => (Some(id), None),
                        LibraryItem::Episode(id) => (None, Some(id)),
                    };
                    tx.execute(
                        "UPDATE upload_jobs SET state = 'done', bytes_done = size, checksum = ?2, media_id = ?3, episode_id = ?4,
                             owner = NULL, resume = NULL, last_error = NULL, finished_at = ?5, updated_at = ?5
                         WHERE id = ?1",
                        params![job.id, stored.checksum.as_str(), media, episode, now],
                    )?;
                    Ok::<_, Error>(item)
                })?;
                tracing::info!(job = job.id, path = %job.local_path.display(), remote = %remote, "upload verified");
                tracing::debug!(job = job.id, ?item, "library updated");
                self.emit_state(job.id, JobState::Done, None);
                self.after_upload(job);
            }
            Attempt::Stopped(stop) => {
                let (state, message) = match stop {
                    Stop::Pause => (JobState::Paused, None),
                    Stop::Cancel => (JobState::Cancelled, Some("cancelled by you".to_owned())),
                    Stop::Yield | Stop::None => (JobState::Queued, None),
                    Stop::Changed => (
                        JobState::Queued,
                        Some("the file changed; uploading again once it settles".to_owned()),
                    ),
                };
                if stop == Stop::Changed {
                    let (size, mtime) = match std::fs::metadata(&job.local_path) {
                        Ok(meta) => (
                            meta.len() as i64,
                            meta.modified().map(to_ns).unwrap_or(job.mtime_ns),
                        ),
                        Err(_) => (job.size as i64, job.mtime_ns),
                    };
                    let due = now + self.options.settle.as_millis() as i64;
                    update_live(
                        "UPDATE upload_jobs SET state = 'queued', owner = ?1, size = ?2, mtime_ns = ?3, bytes_done = 0, resume = NULL,
                             next_attempt_at = ?4, last_error = ?5, updated_at = ?6",
                        &[&reserve, &size, &mtime, &due, &message, &now],
                    )?;
                } else if stop == Stop::Yield || stop == Stop::None {
                    update_live(
                        "UPDATE upload_jobs SET state = 'queued', owner = ?1, updated_at = ?2",
                        &[&reserve, &now],
                    )?;
                }
                // Pause and cancel were written by whoever asked; the job only lets go of it.
                self.db.lock().execute(
                    "UPDATE upload_jobs SET owner = ?2 WHERE id = ?1 AND state IN ('paused', 'cancelled')",
                    params![job.id, reserve],
                )?;
                if stop == Stop::Cancel {
                    self.discard_partial(job).await;
                }
                self.emit_state(job.id, state, message);
            }
            Attempt::LocalGone => {
                let reason = "the file was deleted before it was uploaded".to_owned();
                tracing::info!(job = job.id, path = %job.local_path.display(), "{reason}; dropping the upload");
                update_live(
                    "UPDATE upload_jobs SET state = 'cancelled', owner = NULL, last_error = ?1, finished_at = ?2, updated_at = ?2",
                    &[&reason, &now],
                )?;
                self.discard_partial(job).await;
                self.emit_state(job.id, JobState::Cancelled, Some(reason));
            }
            Attempt::Broken(error) => {
                let message = error.to_string();
                tracing::warn!(job = job.id, error = %message, "upload cannot run");
                update_live(
                    "UPDATE upload_jobs SET state = 'failed', owner = NULL, last_error = ?1, finished_at = ?2, updated_at = ?2",
                    &[&message, &now],
                )?;
                self.emit_state(job.id, JobState::Failed, Some(message));
            }
            Attempt::Failed(error) if error.kind == ErrorKind::SignInRequired => {
                // Not the job's fault and not lost: it waits for the account, resume record
                // and all, and `resume_after_sign_in` queues it again.
                let message = error.to_string();
                tracing::warn!(job = job.id, error = %message, "upload waits for a sign-in");
                update_live(
                    "UPDATE upload_jobs SET state = 'paused', waiting_for = 'sign-in', owner = NULL, last_error = ?1, updated_at = ?2",
                    &[&message, &now],
                )?;
                self.emit_state(job.id, JobState::Paused, Some(message));
            }
            Attempt::Failed(error) => {
                let attempts = job.attempts + 1;
                let message = error.to_string();
                let give_up = !retryable(&error) || attempts >= self.options.max_attempts;
                if give_up {
                    tracing::warn!(job = job.id, attempts, error = %message, "upload failed");
                    update_live(
                        "UPDATE upload_jobs SET state = 'failed', owner = NULL, attempts = ?1, last_error = ?2, finished_at = ?3, updated_at = ?3",
                        &[&attempts, &message, &now],
                    )?;
                    self.emit_state(job.id, JobState::Failed, Some(message));
                } else {
                    let delay = self.options.backoff(attempts, error.retry_after);
                    let due = now + delay.as_millis() as i64;
                    tracing::info!(job = job.id, attempts, retry_in = ?delay, error = %message, "upload will be retried");
                    update_live(
                        "UPDATE upload_jobs SET state = 'queued', owner = ?1, attempts = ?2, last_error = ?3, next_attempt_at = ?4, updated_at = ?5",
                        &[&reserve, &attempts, &message, &due, &now],
                    )?;
                    self.emit_state(
                        job.id,
                        JobState::Queued,
                        Some(format!(
                            "{message} (attempt {attempts}, retrying in {}s)",
                            delay.as_secs()
                        )),
                    );
                }
            }
        }
        Ok(())
    }

    /// Lets the backend clean up what a cancelled job left behind (temporary files, multipart uploads).
    async fn discard_partial(&self, job: &Job) {
        let resume: Option<String> = self
            .db
            .lock()
            .query_row(
                "SELECT resume FROM upload_jobs WHERE id = ?1",
                [job.id],
                |row| row.get(0),
            )
            .ok()
            .flatten();
        let Some(record) = resume.and_then(|text| serde_json::from_str(&text).ok()) else {
            return;
        };
        match self.backends.get(job.backend_id) {
            Ok(backend) => {
                if let Err(error) = backend.abandon(&record).await {
                    tracing::warn!(job = job.id, %error, "could not clean up a cancelled upload");
                }
            }
            Err(error) => {
                tracing::warn!(job = job.id, %error, "could not clean up a cancelled upload")
            }
        }
        let _ = self.db.lock().execute(
            "UPDATE upload_jobs SET resume = NULL WHERE id = ?1",
            [job.id],
        );
    }

    /// Runs the profile's after-upload policy. Only called once the remote copy is verified, and
    /// only touches the file if it is still exactly what was uploaded.
    fn after_upload(&self, job: &Job) {
        let policy = match profiles::get(&self.db, job.profile_id) {
            Ok(profile) => profile.after_upload,
            Err(error) => {
                tracing::warn!(job = job.id, %error, "cannot read the after-upload policy");
                return;
            }
        };
        if policy == AfterUpload::Keep {
            return;
        }
        if !local_unchanged(&job.local_path, job.size, job.mtime_ns) {
            self.notice(
                job,
                "the file changed after it was uploaded, so it was left in place",
            );
            return;
        }
        let result = match &policy {
            AfterUpload::Keep => Ok(()),
            AfterUpload::Delete => std::fs::remove_file(&job.local_path),
            AfterUpload::Move(dir) => move_into(&job.local_path, dir),
        };
        match result {
            Ok(()) => {
                tracing::info!(job = job.id, path = %job.local_path.display(), %policy, "after-upload policy applied")
            }
            Err(error) => self.notice(
                job,
                &format!("uploaded, but the after-upload policy {policy} failed: {error}"),
            ),
        }
    }

    fn notice(&self, job: &Job, message: &str) {
        tracing::warn!(job = job.id, path = %job.local_path.display(), "{message}");
        let _ = self.db.lock().execute(
            "UPDATE upload_jobs SET last_error = ?2 WHERE id = ?1",
            params![job.id, message],
        );
        self.emit(Event::Notice {
            message: format!("{}: {message}", job.local_path.display()),
        });
    }
}

fn retryable(error: &StorageError) -> bool {
    error.is_temporary() || error.kind == ErrorKind::Integrity
}

fn local_unchanged(path: &Path, size: u64, mtime_ns: i64) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.len() == size && meta.modified().map(to_ns).ok() == Some(mtime_ns))
}

/// Moves a file into `dir`, keeping its name (adding " (2)", " (3)"… if taken), copying across
/// filesystems when a rename cannot.
fn move_into(path: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut target = dir.join(name);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut n = 2;
    while target.exists() {
        target = dir.join(format!("{stem} ({n}){ext}"));
        n += 1;
    }
    match std::fs::rename(path, &target) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(path, &target)?;
            File::open(&target)?.sync_all()?;
            std::fs::remove_file(path)
        }
        Err(error) => Err(error),
    }
}

/// The queue's side of one running upload.
struct JobTransfer {
    inner: Arc<Inner>,
    service: BackendKind,
    job_id: i64,
    local_path: PathBuf,
    size: u64,
    mtime_ns: i64,
    control: Arc<JobControl>,
    done: AtomicU64,
    marks: Mutex<Marks>,
}

struct Marks {
    started: Instant,
    last_checkpoint: Instant,
    last_event: Instant,
    last_event_bytes: u64,
    rate: f64,
}

impl JobTransfer {
    fn new(
        inner: Arc<Inner>,
        job: &Job,
        service: BackendKind,
        control: Arc<JobControl>,
    ) -> JobTransfer {
        let now = Instant::now();
        JobTransfer {
            inner,
            service,
            job_id: job.id,
            local_path: job.local_path.clone(),
            size: job.size,
            mtime_ns: job.mtime_ns,
            control,
            done: AtomicU64::new(0),
            marks: Mutex::new(Marks {
                started: now,
                last_checkpoint: now,
                last_event: now,
                last_event_bytes: 0,
                rate: 0.0,
            }),
        }
    }

    fn lock_marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads what others may have changed: the job's state, the queue-wide pause, the limit.
    fn checkpoint(&self) {
        let done = self.done.load(Ordering::Relaxed) as i64;
        let db = &self.inner.db;
        let state: Option<String> = {
            let conn = db.lock();
            let _ = conn.execute(
                "UPDATE upload_jobs SET bytes_done = ?2 WHERE id = ?1",
                params![self.job_id, done],
            );
            conn.query_row(
                "SELECT state FROM upload_jobs WHERE id = ?1",
                [self.job_id],
                |row| row.get(0),
            )
            .ok()
        };
        match state.as_deref() {
            Some("paused") => self.control.request(Stop::Pause),
            Some("cancelled") | None => self.control.request(Stop::Cancel),
            _ => {}
        }
        if is_paused_globally(db).unwrap_or(false) {
            self.control.request(Stop::Yield);
        }
        if let Ok(limit) = bandwidth_limit(db) {
            self.inner.bandwidth.set_limit(limit);
        }
        if !local_unchanged(&self.local_path, self.size, self.mtime_ns) {
            self.control.request(Stop::Changed);
        }
    }

    fn flush_progress(&self) {
        let done = self.done.load(Ordering::Relaxed) as i64;
        let _ = self.inner.db.lock().execute(
            "UPDATE upload_jobs SET bytes_done = ?2 WHERE id = ?1",
            params![self.job_id, done],
        );
    }
}

/// Weight of the newest sample in the smoothed rate.
const RATE_SMOOTHING: f64 = 0.3;

#[async_trait]
impl Transfer for JobTransfer {
    async fn advance(&self, bytes: u64) -> Result<(), StorageError> {
        self.inner.bandwidth.take(bytes).await;
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let now = Instant::now();
        let (checkpoint_due, progress) = {
            let mut marks = self.lock_marks();
            let checkpoint_due =
                now.duration_since(marks.last_checkpoint) >= self.inner.options.checkpoint_interval;
            if checkpoint_due {
                marks.last_checkpoint = now;
            }
            let since_event = now.duration_since(marks.last_event);
            let progress = (since_event >= self.inner.options.progress_interval
                || done == self.size)
                .then(|| {
                    let sample = (done - marks.last_event_bytes) as f64
                        / since_event.as_secs_f64().max(1e-3);
                    marks.rate = if marks.last_event == marks.started {
                        sample
                    } else {
                        RATE_SMOOTHING * sample + (1.0 - RATE_SMOOTHING) * marks.rate
                    };
                    marks.last_event = now;
                    marks.last_event_bytes = done;
                    Progress {
                        job_id: self.job_id,
                        bytes_done: done,
                        total: self.size,
                        rate: marks.rate,
                        eta_seconds: (marks.rate > 1.0).then(|| {
                            (self.size.saturating_sub(done) as f64 / marks.rate).ceil() as u64
                        }),
                    }
                });
            (checkpoint_due, progress)
        };
        if let Some(progress) = progress {
            self.inner.emit(Event::Progress(progress));
        }
        if checkpoint_due {
            self.checkpoint();
        }
        match self.control.requested() {
            Stop::None => Ok(()),
            _ => Err(StorageError::interrupted(
                self.service,
                self.local_path.display(),
            )),
        }
    }

    async fn resumed(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    async fn save_resume(&self, record: serde_json::Value) -> Result<(), StorageError> {
        let text = record.to_string();
        self.inner
            .db
            .lock()
            .execute(
                "UPDATE upload_jobs SET resume = ?2, updated_at = ?3 WHERE id = ?1",
                params![self.job_id, text, now_ms()],
            )
            .map_err(|error| {
                StorageError::new(
                    self.service,
                    crate::storage::Operation::Upload,
                    ErrorKind::Other,
                    self.local_path.display(),
                    format!("cannot save the upload's progress: {error}"),
                )
            })?;
        Ok(())
    }
}
