//! The queue's side of one running upload: progress events, the bandwidth limit, and the
//! checkpoints at which the upload notices a pause, a cancel, the queue-wide pause, a new limit
//! or a file that changed, and stops.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use rusqlite::params;

use super::progress::Meter;
use super::{is_paused_globally, Event, Inner, Job, Progress};
use crate::db::{now_ms, Cached};
use crate::storage::{BackendKind, ErrorKind, Operation, StorageError, Transfer};

/// Why a running transfer was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stop {
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

/// How a running job is asked to stop, from any thread.
#[derive(Default)]
pub struct JobControl {
    stop: AtomicU8,
}

impl JobControl {
    pub fn request(&self, stop: Stop) {
        // The first reason wins: a cancel is not downgraded to a pause.
        let _ = self.stop.compare_exchange(
            Stop::None as u8,
            stop as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    pub fn requested(&self) -> Stop {
        Stop::from_u8(self.stop.load(Ordering::SeqCst))
    }
}

pub struct JobTransfer {
    inner: Arc<Inner>,
    service: BackendKind,
    job: Job,
    /// The bytes this attempt sends: the file's size, or its rewritten copy's.
    total: u64,
    control: Arc<JobControl>,
    done: AtomicU64,
    marks: Mutex<Marks>,
}

struct Marks {
    last_checkpoint: Instant,
    meter: Meter,
}

impl JobTransfer {
    pub fn new(
        inner: Arc<Inner>,
        job: &Job,
        total: u64,
        service: BackendKind,
        control: Arc<JobControl>,
    ) -> JobTransfer {
        let now = Instant::now();
        let meter = Meter::new(total, inner.options.progress_interval, now);
        JobTransfer {
            inner,
            service,
            job: job.clone(),
            total,
            control,
            done: AtomicU64::new(0),
            marks: Mutex::new(Marks {
                last_checkpoint: now,
                meter,
            }),
        }
    }

    fn lock_marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Saves the progress, and reads what others may have changed: the job's state, the
    /// queue-wide pause, the limit, the file.
    fn checkpoint(&self) {
        let db = &self.inner.db;
        let state: Option<String> = {
            let conn = db.lock();
            let _ = conn.run(
                "UPDATE upload_jobs SET bytes_done = ?2 WHERE id = ?1",
                params![self.job.id, self.done.load(Ordering::Relaxed) as i64],
            );
            conn.one(
                "SELECT state FROM upload_jobs WHERE id = ?1",
                [self.job.id],
                |row| row.get(0),
            )
            .ok()
        };
        match state.as_deref() {
            Some("paused") => self.control.request(Stop::Pause),
            Some("cancelled") | None => self.control.request(Stop::Cancel),
            _ => {}
        }
        let window_closed = crate::profiles::closed_windows(db, crate::schedule::local_now())
            .is_ok_and(|(closed, _)| closed.contains(&self.job.profile_id));
        if window_closed || is_paused_globally(db).unwrap_or(false) {
            self.control.request(Stop::Yield);
        }
        self.inner.apply_limit();
        if !self.job.file_unchanged() {
            self.control.request(Stop::Changed);
        }
    }

    /// Saves how far the upload got, when it stops.
    pub fn flush_progress(&self) {
        let _ = self.inner.db.lock().run(
            "UPDATE upload_jobs SET bytes_done = ?2 WHERE id = ?1",
            params![self.job.id, self.done.load(Ordering::Relaxed) as i64],
        );
    }
}

#[async_trait]
impl Transfer for JobTransfer {
    async fn advance(&self, bytes: u64) -> Result<(), StorageError> {
        self.inner.bandwidth.take(bytes).await;
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let now = Instant::now();
        let (checkpoint_due, reading) = {
            let mut marks = self.lock_marks();
            let checkpoint_due =
                now.duration_since(marks.last_checkpoint) >= self.inner.options.checkpoint_interval;
            if checkpoint_due {
                marks.last_checkpoint = now;
            }
            (checkpoint_due, marks.meter.observe(done, now))
        };
        if let Some(reading) = reading {
            self.inner.emit(Event::Progress(Progress {
                job_id: self.job.id,
                bytes_done: done,
                total: self.total,
                rate: reading.rate,
                eta_seconds: reading.eta_seconds,
            }));
        }
        if checkpoint_due {
            self.checkpoint();
        }
        match self.control.requested() {
            Stop::None => Ok(()),
            _ => Err(StorageError::interrupted(
                self.service,
                self.job.local_path.display(),
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
            .run(
                "UPDATE upload_jobs SET resume = ?2, updated_at = ?3 WHERE id = ?1",
                params![self.job.id, text, now_ms()],
            )
            .map_err(|error| {
                StorageError::new(
                    self.service,
                    Operation::Upload,
                    ErrorKind::Other,
                    self.job.local_path.display(),
                    format!("cannot save the upload's progress: {error}"),
                )
            })?;
        Ok(())
    }
}
