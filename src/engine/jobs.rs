//! The upload queue, as both shells show and steer it. Every change reaches a running daemon
//! (this process's or another's) within a second: it is woken, and running uploads read their
//! job's state at each checkpoint.

use super::Engine;
use crate::error::Result;
use crate::queue::{self, Job, JobState};

impl Engine {
    /// Jobs in these states (all when empty), newest first.
    pub fn jobs(&self, states: &[JobState]) -> Result<Vec<Job>> {
        queue::list(&self.db, states)
    }

    pub fn job(&self, id: i64) -> Result<Job> {
        queue::get(&self.db, id)
    }

    /// The queued uploads that closed upload windows hold back, and when the first opens.
    pub fn held_back(&self) -> Result<queue::Held> {
        queue::held_back(&self.db)
    }

    /// Whether the whole queue is paused.
    pub fn queue_paused(&self) -> Result<bool> {
        queue::is_paused_globally(&self.db)
    }

    /// Pauses one job, or with `None` the whole queue.
    pub fn pause(&self, job: Option<i64>) -> Result<usize> {
        let paused = queue::pause(&self.db, job)?;
        self.wake_daemon();
        Ok(paused)
    }

    /// Resumes one paused job, or with `None` the whole queue and every paused job.
    pub fn resume(&self, job: Option<i64>) -> Result<usize> {
        let resumed = queue::resume(&self.db, job)?;
        self.wake_daemon();
        Ok(resumed)
    }

    /// Tries a failed or cancelled job again, with a fresh count of attempts.
    pub fn retry(&self, id: i64) -> Result<()> {
        queue::retry(&self.db, id)?;
        self.wake_daemon();
        Ok(())
    }

    pub fn cancel(&self, id: i64) -> Result<()> {
        queue::cancel(&self.db, id)?;
        self.wake_daemon();
        Ok(())
    }

    /// Limits the bandwidth of all uploads (bytes per second; 0: none) all day, at once.
    pub fn set_bandwidth_limit(&self, bytes_per_second: u64) -> Result<()> {
        self.change_settings(|settings| {
            settings.bandwidth_limit = bytes_per_second;
            settings.bandwidth_schedule.clear();
        })
        .map(drop)
    }

    /// The bandwidth limit at this moment (bytes per second; 0: none), the timetable's where
    /// one is set.
    pub fn bandwidth_now(&self) -> Result<u64> {
        crate::settings::bandwidth_limit(&self.db)
    }

    /// Limits the bandwidth of all uploads by time of day (rclone's timetable form), at once.
    pub fn set_bandwidth_schedule(&self, timetable: &str) -> Result<()> {
        self.change_settings(|settings| settings.bandwidth_schedule = timetable.trim().to_owned())
            .map(drop)
    }
}
