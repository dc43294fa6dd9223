//! How an attempt ends, and what that makes of the job: the queue's state machine. [`decide`] is
//! pure (every outcome and what it leads to is a row of its unit tests); [`Inner::settle`] writes
//! the result in one statement (a verified upload and its library row in one transaction) and
//! tells the shells.

use std::time::Duration;

use rusqlite::params;

use super::after_upload;
use super::transfer::Stop;
use super::{backoff, Inner, Job, JobState, QueueOptions};
use crate::db::{now_ms, to_ns, Cached};
use crate::error::{Action, Error, Result};
use crate::library::{self, LibraryItem, UploadedFile};
use crate::storage::{Checksum, ErrorKind, RemotePath, StorageError, StoredObject};

/// How one attempt ended.
pub enum Outcome {
    /// Stored and checked.
    Verified(Box<Verified>),
    Stopped(Stop),
    Failed(StorageError),
    /// Not a transfer failure: the job cannot run as configured (a removed backend, a bad path).
    Broken(Error),
    /// The file was deleted before it was uploaded.
    LocalGone,
}

/// A stored and checked upload.
#[derive(Debug)]
pub struct Verified {
    pub stored: StoredObject,
    /// Where it was stored: the job's path, or for a remux the `.mp4` beside it.
    pub remote: RemotePath,
    /// The local file's own checksum, where what was stored is a rewrite of it.
    pub source_checksum: Option<Checksum>,
    /// What the stored file holds, where a remux made it other than what the local file holds.
    pub stored_info: Option<crate::probe::MediaInfo>,
}

/// What an outcome other than a verified upload makes of the job.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// A person paused or cancelled it meanwhile: their write stands, and the job only lets go
    /// of it (a cancelled one's partial upload is discarded).
    LetGo { state: JobState },
    /// Back to the queue as it was (the queue-wide pause, a shutdown).
    Yield,
    /// The file changed: back to the queue with its new size, once it has held still.
    Restart { after: Duration },
    /// Try again after a while.
    Retry {
        attempts: u32,
        after: Duration,
        reason: String,
        action: Option<Action>,
    },
    /// Wait, paused, for the account to be signed in again, resume record and all: not the
    /// job's fault, and nothing is lost. A sign-in queues it again.
    WaitForSignIn { reason: String, action: Action },
    /// Failed until a person retries it (or the backend is changed or signed in again).
    Fail {
        attempts: Option<u32>,
        reason: String,
        action: Option<Action>,
    },
    /// The file is gone: there is nothing left to upload.
    Drop { reason: String },
}

const CHANGED: &str = "the file changed; uploading again once it settles";
const GONE: &str = "the file was deleted before it was uploaded";

impl Transition {
    pub fn state(&self) -> JobState {
        match self {
            Transition::LetGo { state } => *state,
            Transition::Yield | Transition::Restart { .. } | Transition::Retry { .. } => {
                JobState::Queued
            }
            Transition::WaitForSignIn { .. } => JobState::Paused,
            Transition::Fail { .. } => JobState::Failed,
            Transition::Drop { .. } => JobState::Cancelled,
        }
    }

    /// The line the shells show with the new state.
    pub fn message(&self) -> Option<String> {
        match self {
            Transition::LetGo {
                state: JobState::Cancelled,
            } => Some("cancelled by you".into()),
            Transition::LetGo { .. } | Transition::Yield => None,
            Transition::Restart { .. } => Some(CHANGED.into()),
            Transition::Retry {
                attempts,
                after,
                reason,
                ..
            } => Some(format!(
                "{reason} (attempt {attempts}, retrying in {}s)",
                after.as_secs()
            )),
            Transition::WaitForSignIn { reason, .. }
            | Transition::Fail { reason, .. }
            | Transition::Drop { reason } => Some(reason.clone()),
        }
    }

    pub fn action(&self) -> Option<Action> {
        match self {
            Transition::Retry { action, .. } | Transition::Fail { action, .. } => *action,
            Transition::WaitForSignIn { action, .. } => Some(*action),
            _ => None,
        }
    }
}

/// Whether trying again may help without anyone acting: a temporary failure, or bytes that
/// arrived damaged.
fn retryable(error: &StorageError) -> bool {
    error.is_temporary() || error.kind == ErrorKind::Integrity
}

/// What `outcome` (anything but a verified upload) makes of `job`. `jitter` (0 to 1) picks the
/// backoff within its random half.
pub fn decide(job: &Job, outcome: &Outcome, options: &QueueOptions, jitter: f64) -> Transition {
    match outcome {
        Outcome::Verified(..) | Outcome::Stopped(Stop::Yield | Stop::None) => Transition::Yield,
        Outcome::Stopped(Stop::Pause) => Transition::LetGo {
            state: JobState::Paused,
        },
        Outcome::Stopped(Stop::Cancel) => Transition::LetGo {
            state: JobState::Cancelled,
        },
        Outcome::Stopped(Stop::Changed) => Transition::Restart {
            after: options.settle,
        },
        Outcome::LocalGone => Transition::Drop {
            reason: GONE.into(),
        },
        Outcome::Broken(error) => Transition::Fail {
            attempts: None,
            reason: error.to_string(),
            action: error.action(),
        },
        Outcome::Failed(error) => {
            let reason = error.to_string();
            let action = error
                .fix
                .map(|fix| Action::for_backend(Some(job.backend_id), fix));
            if error.kind == ErrorKind::SignInRequired {
                return Transition::WaitForSignIn {
                    reason,
                    action: Action::SignIn {
                        backend_id: job.backend_id,
                    },
                };
            }
            let attempts = job.attempts + 1;
            if !retryable(error) || attempts >= options.max_attempts {
                return Transition::Fail {
                    attempts: Some(attempts),
                    reason,
                    action,
                };
            }
            Transition::Retry {
                attempts,
                after: backoff::delay(
                    options.backoff_base,
                    options.backoff_max,
                    attempts,
                    error.retry_after,
                    jitter,
                ),
                reason,
                action,
            }
        }
    }
}

impl Inner {
    /// Applies the outcome of an attempt to the job's row.
    pub(super) async fn settle(&self, job: &Job, outcome: Result<Outcome>) -> Result<()> {
        let outcome = outcome.unwrap_or_else(Outcome::Broken);
        if let Outcome::Verified(verified) = outcome {
            return self.record_verified(job, *verified).await;
        }
        let transition = decide(job, &outcome, &self.options, rand::random::<f64>());
        self.write(job, &transition)?;
        match &transition {
            Transition::Fail { reason, .. } => {
                tracing::warn!(job = job.id, error = %reason, "upload failed")
            }
            Transition::WaitForSignIn { reason, .. } => {
                tracing::warn!(job = job.id, error = %reason, "upload waits for a sign-in")
            }
            Transition::Retry {
                attempts,
                after,
                reason,
                ..
            } => {
                tracing::info!(job = job.id, attempts, retry_in = ?after, error = %reason, "upload will be retried")
            }
            Transition::Drop { reason } => {
                tracing::info!(job = job.id, path = %job.local_path.display(), "{reason}; dropping the upload")
            }
            _ => {}
        }
        if matches!(
            transition,
            Transition::Drop { .. }
                | Transition::LetGo {
                    state: JobState::Cancelled
                }
        ) {
            self.discard_partial(job).await;
        }
        self.emit_state(
            job.id,
            transition.state(),
            transition.message(),
            transition.action(),
        );
        Ok(())
    }

    /// Writes `transition` to the job's row, only while the job is still ours and unfinished: a
    /// person may have paused or cancelled it in the meantime, and that wins.
    fn write(&self, job: &Job, transition: &Transition) -> Result<()> {
        let now = now_ms();
        // A one-off upload keeps its jobs to itself until it lets go of them.
        let reserve = (self.mode == super::ClaimMode::Reserved).then_some(self.owner.id());
        let action = transition
            .action()
            .and_then(|action| serde_json::to_string(&action).ok());
        let update_live = |sql: &str, values: &[&dyn rusqlite::ToSql]| -> Result<usize> {
            Ok(self.db.lock().run(
                &format!(
                    "{sql} WHERE id = {} AND state IN ('running', 'verifying')",
                    job.id
                ),
                values,
            )?)
        };
        match transition {
            Transition::LetGo { .. } => {
                // Pause and cancel were written by whoever asked.
                self.db.lock().run(
                    "UPDATE upload_jobs SET owner = ?2 WHERE id = ?1 AND state IN ('paused', 'cancelled')",
                    params![job.id, reserve],
                )?;
            }
            Transition::Yield => {
                update_live(
                    "UPDATE upload_jobs SET state = 'queued', owner = ?1, updated_at = ?2",
                    &[&reserve, &now],
                )?;
            }
            Transition::Restart { after } => {
                let (size, mtime) = match std::fs::metadata(&job.local_path) {
                    Ok(meta) => (
                        meta.len() as i64,
                        meta.modified().map(to_ns).unwrap_or(job.mtime_ns),
                    ),
                    Err(_) => (job.size as i64, job.mtime_ns),
                };
                let due = now + after.as_millis() as i64;
                update_live(
                    "UPDATE upload_jobs SET state = 'queued', owner = ?1, size = ?2, mtime_ns = ?3, bytes_done = 0, resume = NULL,
                         next_attempt_at = ?4, last_error = ?5, action = NULL, updated_at = ?6",
                    &[&reserve, &size, &mtime, &due, &CHANGED, &now],
                )?;
            }
            Transition::Retry {
                attempts,
                after,
                reason,
                ..
            } => {
                let due = now + after.as_millis() as i64;
                update_live(
                    "UPDATE upload_jobs SET state = 'queued', owner = ?1, attempts = ?2, last_error = ?3, action = ?4,
                         next_attempt_at = ?5, updated_at = ?6",
                    &[&reserve, attempts, reason, &action, &due, &now],
                )?;
            }
            Transition::WaitForSignIn { reason, .. } => {
                update_live(
                    "UPDATE upload_jobs SET state = 'paused', waiting_for = 'sign-in', owner = NULL, last_error = ?1, action = ?2,
                         updated_at = ?3",
                    &[reason, &action, &now],
                )?;
            }
            Transition::Fail {
                attempts, reason, ..
            } => {
                update_live(
                    "UPDATE upload_jobs SET state = 'failed', owner = NULL, attempts = coalesce(?1, attempts), last_error = ?2,
                         action = ?3, finished_at = ?4, updated_at = ?4",
                    &[attempts, reason, &action, &now],
                )?;
            }
            Transition::Drop { reason } => {
                update_live(
                    "UPDATE upload_jobs SET state = 'cancelled', owner = NULL, last_error = ?1, action = NULL, finished_at = ?2,
                         updated_at = ?2",
                    &[reason, &now],
                )?;
            }
        }
        Ok(())
    }

    /// A verified upload and its library row land together, then the after-upload policy runs.
    async fn record_verified(&self, job: &Job, verified: Verified) -> Result<()> {
        let now = now_ms();
        let Verified {
            stored,
            remote,
            source_checksum,
            stored_info,
        } = verified;
        let media_info = match stored_info {
            Some(info) => Some(info),
            None => probe_uploaded(job).await,
        };
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
                    source_checksum: source_checksum.as_ref(),
                    remote_id: stored.id.as_deref(),
                    remote_tag: stored.tag.as_deref(),
                    media_info: media_info.as_ref(),
                },
            )?;
            let (media, episode) = match item {
                LibraryItem::Media(id) => (Some(id), None),
                LibraryItem::Episode(id) => (None, Some(id)),
            };
            tx.run(
                "UPDATE upload_jobs SET state = 'done', bytes_done = size, checksum = ?2, media_id = ?3, episode_id = ?4,
                     remote_path = ?6, owner = NULL, resume = NULL, last_error = NULL, action = NULL, finished_at = ?5,
                     updated_at = ?5
                 WHERE id = ?1",
                params![job.id, stored.checksum.as_str(), media, episode, now, remote.as_str()],
            )?;
            Ok::<_, Error>(item)
        })?;
        tracing::info!(job = job.id, path = %job.local_path.display(), remote = %remote, "upload verified");
        tracing::debug!(job = job.id, ?item, "library updated");
        // Before the shells hear of it, so the Library they list again has the picture.
        self.take_poster(job, item, media_info.as_ref()).await;
        self.emit_state(job.id, JobState::Done, None, None);
        let policy = match super::job::after_upload_of(&self.db, job) {
            Ok(policy) => policy,
            Err(error) => {
                tracing::warn!(job = job.id, %error, "cannot read the after-upload policy");
                return Ok(());
            }
        };
        match after_upload::apply(job, policy).await {
            Ok(None) => {}
            Ok(Some(note)) => self.notice(job, note),
            Err(problem) => self.notice(job, &problem),
        }
        Ok(())
    }

    /// A picture of a verified video, from the local file while it is still here (the
    /// after-upload policy may remove it next).
    async fn take_poster(
        &self,
        job: &Job,
        item: LibraryItem,
        media_info: Option<&crate::probe::MediaInfo>,
    ) {
        let Some(info) = media_info.filter(|info| info.video.is_some()) else {
            return;
        };
        match crate::posters::take(
            &self.data_dir,
            item,
            job.local_path.as_os_str(),
            info.duration_ms,
        )
        .await
        {
            Ok(_) => {}
            Err(error @ crate::posters::PosterError::NoFfmpeg) => {
                tracing::debug!(job = job.id, "{error}")
            }
            Err(error) => {
                tracing::info!(job = job.id, path = %job.local_path.display(), %error, "no picture for it")
            }
        }
    }

    /// Lets the backend clean up what a cancelled job left behind (temporary files, multipart
    /// uploads).
    async fn discard_partial(&self, job: &Job) {
        let resume: Option<String> = self
            .db
            .lock()
            .one(
                "SELECT resume FROM upload_jobs WHERE id = ?1",
                [job.id],
                |row| row.get(0),
            )
            .ok()
            .flatten();
        let Some(record) = resume.and_then(|text| serde_json::from_str(&text).ok()) else {
            return;
        };
        let cleaned = match self.backends.get(job.backend_id) {
            Ok(backend) => backend.abandon(&record).await.map_err(Error::from),
            Err(error) => Err(error),
        };
        if let Err(error) = cleaned {
            tracing::warn!(job = job.id, %error, "could not clean up a cancelled upload");
        }
        let _ = self.db.lock().run(
            "UPDATE upload_jobs SET resume = NULL WHERE id = ?1",
            [job.id],
        );
    }

    /// Something a person should know about a finished job (a policy that could not run).
    fn notice(&self, job: &Job, message: &str) {
        tracing::warn!(job = job.id, path = %job.local_path.display(), "{message}");
        let _ = self.db.lock().run(
            "UPDATE upload_jobs SET last_error = ?2 WHERE id = ?1",
            params![job.id, message],
        );
        self.emit(super::Event::Notice {
            message: format!("{}: {message}", job.local_path.display()),
        });
    }
}

/// What the uploaded file holds, read from its headers while it is still here (the
/// after-upload policy may remove it next). A file that cannot be probed is listed all the same;
/// why is logged once, here.
async fn probe_uploaded(job: &Job) -> Option<crate::probe::MediaInfo> {
    if !crate::filter::is_media_file(&job.local_path) {
        return None;
    }
    let path = job.local_path.clone();
    match tokio::task::spawn_blocking(move || crate::probe::probe_file(&path)).await {
        Ok(Ok(info)) => Some(info),
        Ok(Err(error)) => {
            tracing::info!(job = job.id, path = %job.local_path.display(), %error, "cannot tell what this file holds");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BackendKind, Field, Fix, Operation};
    use std::path::PathBuf;

    fn job(attempts: u32) -> Job {
        Job {
            id: 1,
            profile_id: 1,
            backend_id: 7,
            watch_folder_id: None,
            local_path: PathBuf::from("/downloads/film.mkv"),
            size: 10,
            mtime_ns: 0,
            remote_path: "film.mkv".into(),
            state: JobState::Running,
            bytes_done: 0,
            attempts,
            last_error: None,
            action: None,
            next_attempt_at: 0,
            checksum: None,
            owner: None,
            library_item: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
        }
    }

    fn failure(kind: ErrorKind) -> StorageError {
        StorageError::new(
            BackendKind::S3,
            Operation::Upload,
            kind,
            "film.mkv",
            "it went wrong",
        )
    }

    const REASON: &str = "s3 upload of film.mkv: it went wrong";

    #[test]
    fn every_outcome_leads_where_it_should() {
        let options = QueueOptions::default();
        let slowed = {
            let mut error = failure(ErrorKind::RateLimited);
            error.retry_after = Some(Duration::from_secs(30));
            error
        };
        let wrong_key =
            failure(ErrorKind::Unauthenticated).fix(Fix::Change(Field::SecretAccessKey));
        let signed_out = failure(ErrorKind::SignInRequired);
        let table: Vec<(&str, Job, Outcome, Transition)> = vec![
            (
                "paused by a person",
                job(0),
                Outcome::Stopped(Stop::Pause),
                Transition::LetGo {
                    state: JobState::Paused,
                },
            ),
            (
                "cancelled by a person",
                job(0),
                Outcome::Stopped(Stop::Cancel),
                Transition::LetGo {
                    state: JobState::Cancelled,
                },
            ),
            (
                "the queue paused or stopping",
                job(0),
                Outcome::Stopped(Stop::Yield),
                Transition::Yield,
            ),
            (
                "the file changed",
                job(3),
                Outcome::Stopped(Stop::Changed),
                Transition::Restart {
                    after: options.settle,
                },
            ),
            (
                "the file is gone",
                job(0),
                Outcome::LocalGone,
                Transition::Drop {
                    reason: GONE.into(),
                },
            ),
            (
                "a temporary failure, first time",
                job(0),
                Outcome::Failed(failure(ErrorKind::Temporary)),
                Transition::Retry {
                    attempts: 1,
                    after: Duration::from_secs(2),
                    reason: REASON.into(),
                    action: None,
                },
            ),
            (
                "rate limited: no sooner than asked",
                job(0),
                Outcome::Failed(slowed),
                Transition::Retry {
                    attempts: 1,
                    after: Duration::from_secs(30),
                    reason: REASON.into(),
                    action: None,
                },
            ),
            (
                "damaged bytes are worth another try",
                job(2),
                Outcome::Failed(failure(ErrorKind::Integrity)),
                Transition::Retry {
                    attempts: 3,
                    after: Duration::from_secs(8),
                    reason: REASON.into(),
                    action: None,
                },
            ),
            (
                "a temporary failure, the last attempt",
                job(options.max_attempts - 1),
                Outcome::Failed(failure(ErrorKind::Temporary)),
                Transition::Fail {
                    attempts: Some(options.max_attempts),
                    reason: REASON.into(),
                    action: None,
                },
            ),
            (
                "a wrong key fails at once, saying which setting",
                job(0),
                Outcome::Failed(wrong_key),
                Transition::Fail {
                    attempts: Some(1),
                    reason: REASON.into(),
                    action: Some(Action::ChangeBackend {
                        backend_id: Some(7),
                        field: Field::SecretAccessKey,
                    }),
                },
            ),
            (
                "a signed-out account waits",
                job(5),
                Outcome::Failed(signed_out),
                Transition::WaitForSignIn {
                    reason: REASON.into(),
                    action: Action::SignIn { backend_id: 7 },
                },
            ),
            (
                "a job that cannot run as configured",
                job(0),
                Outcome::Broken(Error::NotFound("no storage backend with id 7".into())),
                Transition::Fail {
                    attempts: None,
                    reason: "no storage backend with id 7".into(),
                    action: None,
                },
            ),
        ];
        for (what, job, outcome, expected) in table {
            // Jitter 1.0: the full backoff, so the table can name it.
            assert_eq!(decide(&job, &outcome, &options, 1.0), expected, "{what}");
        }
    }

    #[test]
    fn states_and_words_follow_the_transition() {
        let retry = Transition::Retry {
            attempts: 2,
            after: Duration::from_secs(4),
            reason: REASON.into(),
            action: None,
        };
        assert_eq!(retry.state(), JobState::Queued);
        assert_eq!(
            retry.message().unwrap(),
            format!("{REASON} (attempt 2, retrying in 4s)")
        );
        let waiting = Transition::WaitForSignIn {
            reason: REASON.into(),
            action: Action::SignIn { backend_id: 7 },
        };
        assert_eq!(waiting.state(), JobState::Paused);
        assert_eq!(waiting.action(), Some(Action::SignIn { backend_id: 7 }));
        assert_eq!(
            Transition::LetGo {
                state: JobState::Cancelled
            }
            .message()
            .as_deref(),
            Some("cancelled by you")
        );
        assert_eq!(Transition::Yield.message(), None);
    }
}
