//! The job model and its store: the rows of `upload_jobs`, how a file becomes a job, and every
//! change a person (or another process) makes to jobs: pause, resume, retry, cancel, and the
//! fresh start a backend's jobs get when it is signed in or given new settings.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::db::{now_ms, to_ns, Cached, Db};
use crate::error::{is_unique_violation, Action, Error, Result};
use crate::library::LibraryItem;
use crate::profiles::AfterUpload;
use crate::storage::RemotePath;

/// The queue-wide pause: nothing new starts while it is set.
pub const SETTING_PAUSED: &str = "queue.paused";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ts_rs::TS)]
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

impl Job {
    /// Whether the local file is still the one this job describes (size and modification time).
    pub fn file_unchanged(&self) -> bool {
        std::fs::metadata(&self.local_path).is_ok_and(|meta| {
            meta.len() == self.size && meta.modified().map(to_ns).ok() == Some(self.mtime_ns)
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
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
    /// What a person can do about `last_error`, where the engine knows.
    pub action: Option<Action>,
    pub next_attempt_at: i64,
    pub checksum: Option<String>,
    pub owner: Option<String>,
    pub library_item: Option<LibraryItem>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

pub(super) const JOB_COLUMNS: &str = "id, profile_id, backend_id, watch_folder_id, local_path, size, mtime_ns, remote_path, state,
    bytes_done, attempts, last_error, next_attempt_at, checksum, owner, media_id, episode_id, created_at, updated_at, finished_at,
    action";

pub(super) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
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
        action: row
            .get::<_, Option<String>>(20)?
            .and_then(|text| serde_json::from_str(&text).ok()),
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
    /// What to do with the file once uploaded, where it differs from the profile's policy.
    pub after_upload: Option<AfterUpload>,
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
    let after_upload = job.after_upload.as_ref().map(AfterUpload::to_string);
    db.transaction(|tx| {
        let live: Option<(i64, String, i64, i64)> = tx
            .one(
                "SELECT id, state, size, mtime_ns FROM upload_jobs
                 WHERE profile_id = ?1 AND backend_id = ?2 AND local_path = ?3
                   AND state IN ('queued', 'running', 'verifying', 'paused')",
                params![job.profile_id, job.backend_id, local],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        if let Some((id, state, old_size, old_mtime)) = live {
            if (old_size, old_mtime) != (size, mtime) && matches!(state.as_str(), "queued" | "paused") {
                tx.run(
                    "UPDATE upload_jobs SET size = ?2, mtime_ns = ?3, remote_path = ?4, bytes_done = 0, resume = NULL, updated_at = ?5
                     WHERE id = ?1",
                    params![id, size, mtime, job.remote_path.as_str(), now],
                )?;
            }
            if after_upload.is_some() {
                tx.run(
                    "UPDATE upload_jobs SET after_upload = ?2 WHERE id = ?1",
                    params![id, after_upload],
                )?;
            }
            return Ok(Enqueued::AlreadyQueued(id));
        }
        let handled: Option<(i64, String)> = tx
            .one(
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
        tx.run(
            "INSERT INTO upload_jobs (profile_id, backend_id, watch_folder_id, local_path, size, mtime_ns, remote_path, state,
                                      owner, next_attempt_at, created_at, updated_at, after_upload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, 0, ?9, ?9, ?10)",
            params![job.profile_id, job.backend_id, job.watch_folder_id, local, size, mtime, job.remote_path.as_str(), reserve_for, now,
                    after_upload],
        )
        .map_err(|error| if is_unique_violation(&error) { Error::Invalid(format!("{local} is already queued")) } else { error.into() })?;
        Ok(Enqueued::New(tx.last_insert_rowid()))
    })
}

/// What to do with `job`'s file once uploaded: the policy it was handed over with, else its
/// profile's.
pub fn after_upload_of(db: &Db, job: &Job) -> Result<AfterUpload> {
    let own: Option<String> = db.lock().one(
        "SELECT after_upload FROM upload_jobs WHERE id = ?1",
        [job.id],
        |row| row.get(0),
    )?;
    match own {
        Some(text) => AfterUpload::parse(&text),
        None => Ok(crate::profiles::get(db, job.profile_id)?.after_upload),
    }
}

pub fn get(db: &Db, id: i64) -> Result<Job> {
    db.lock()
        .one(
            &format!("SELECT {JOB_COLUMNS} FROM upload_jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("there is no upload job {id}")))
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
    Ok(db.lock().one(
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
            Ok(db.lock().run(
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
            Ok(db.lock().run(
                "UPDATE upload_jobs SET state = 'queued', next_attempt_at = 0, updated_at = ?2 WHERE id = ?1 AND state = 'paused'",
                params![id, now],
            )?)
        }
        None => {
            db.set_setting(SETTING_PAUSED, "0")?;
            Ok(db.lock().run(
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
    let waiting = conn.run(
        "UPDATE upload_jobs SET state = 'queued', waiting_for = NULL, next_attempt_at = 0, last_error = NULL, action = NULL, updated_at = ?2
         WHERE backend_id = ?1 AND state = 'paused' AND waiting_for = 'sign-in'",
        params![backend_id, now],
    )?;
    let retrying = conn.run(
        "UPDATE upload_jobs SET next_attempt_at = 0, updated_at = ?2
         WHERE backend_id = ?1 AND state = 'queued' AND attempts > 0 AND next_attempt_at > 0",
        params![backend_id, now],
    )?;
    let failed = conn.run(
        "UPDATE upload_jobs SET state = 'queued', attempts = 0, next_attempt_at = 0, last_error = NULL, action = NULL, finished_at = NULL,
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
        .run(
            "UPDATE upload_jobs SET state = 'queued', attempts = 0, next_attempt_at = 0, last_error = NULL, action = NULL, updated_at = ?2
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
    db.lock().run(
        "UPDATE upload_jobs SET state = 'cancelled', last_error = 'cancelled by you', action = NULL, finished_at = ?2, updated_at = ?2
         WHERE id = ?1 AND state NOT IN ('done', 'failed', 'cancelled')",
        params![id, now_ms()],
    )?;
    Ok(())
}

/// Takes a queued job no process holds for `owner` (a one-off upload of a file already queued).
pub fn reserve(db: &Db, id: i64, owner: &str) -> Result<bool> {
    Ok(db.lock().run(
        "UPDATE upload_jobs SET owner = ?2, updated_at = ?3 WHERE id = ?1 AND state IN ('queued', 'paused') AND owner IS NULL",
        params![id, owner, now_ms()],
    )? == 1)
}

/// Lets go of every job `owner` reserved but did not finish, so the daemon can take them.
pub fn release_reservations(db: &Db, owner: &str) -> Result<usize> {
    Ok(db.lock().run(
        "UPDATE upload_jobs SET owner = NULL, updated_at = ?2 WHERE owner = ?1 AND state IN ('queued', 'paused', 'failed', 'cancelled')",
        params![owner, now_ms()],
    )?)
}

/// For the start-up sweep of one backend: the resume records of its live jobs, and every remote
/// path any of its jobs uploads to (or may, through a remux).
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
        // A remux stores a live job's file under its `.mp4` name; both are the job's.
        let remuxed = crate::transmux::remux::applies(std::path::Path::new(&remote))
            .then(|| crate::transmux::remux::stored_name(&remote));
        for remote in std::iter::once(remote).chain(remuxed) {
            if let Ok(remote) = RemotePath::parse(&remote) {
                ours.push(remote);
            }
        }
    }
    Ok((keep, ours))
}
