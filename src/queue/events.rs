//! What the queue tells the command line, the tray and the window, as it happens.

use std::path::PathBuf;

use serde::Serialize;

use super::JobState;
use crate::error::Action;
use crate::library::ScanProgress;

/// What the queue tells the command line, the tray and the window.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
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
        /// What a person can do about `message`, where the engine knows.
        action: Option<Action>,
    },
    /// Something a person should know that is not a job's state (a watch limit, a policy that failed).
    Notice {
        message: String,
    },
    /// A look through a backend for what storage holds, as it goes.
    Scan(ScanProgress),
    /// Items found in storage were described (what they hold, their pictures): a library shown
    /// should be listed again.
    Described {
        items: usize,
    },
    /// Uploads held back by closed upload windows: said when that changes, and with `jobs: 0`
    /// when nothing waits any more.
    Held(Held),
}

/// Queued uploads whose profiles' upload windows are closed, and when the first of those
/// windows opens (local time, `2026-12-08T01:00:00`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Held {
    pub jobs: usize,
    #[ts(type = "string | null")]
    pub opens_at: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct Progress {
    pub job_id: i64,
    pub bytes_done: u64,
    pub total: u64,
    /// Bytes per second, smoothed.
    pub rate: f64,
    pub eta_seconds: Option<u64>,
}
