//! Watches download folders and reports each media file once it is finished.
//!
//! One tokio task owns all state. notify's callback only forwards raw events
//! into that task; paths waiting for their quiet period sit in a map with a
//! single ordered set of deadlines, so a flood of files costs one timer, and
//! nothing wakes up while nothing is pending except the periodic rescan.

mod engine;
mod partial;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use partial::{has_partial_companion, is_partial_name, unfinished};

/// One folder to watch, as configured by the user.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub folder_id: i64,
    pub profile_id: i64,
    pub root: PathBuf,
    pub recursive: bool,
    pub filter: crate::filter::FileFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// How long size and modification time must hold still before a file
    /// counts as finished.
    pub quiet_period: Duration,
    /// Full rescans catch whatever the OS failed to tell us about.
    pub rescan_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            quiet_period: Duration::from_secs(5),
            rescan_interval: Duration::from_secs(60 * 60),
        }
    }
}

/// A finished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub folder_id: i64,
    pub profile_id: i64,
    /// Absolute path; the root is canonicalised when the watch starts.
    pub path: PathBuf,
    /// Path relative to the watched folder.
    pub relative: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Arrived(Arrival),
    /// Something the user may need to fix; watching goes on.
    Problem {
        folder_id: i64,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the folder watcher must be started from inside the tokio runtime")]
    NoRuntime,
    #[error(
        "could not start the folder watcher: {source}; {}",
        crate::platform::watcher_start_hint()
    )]
    Watcher {
        #[source]
        source: notify::Error,
    },
}

/// Control messages and raw notify events share one channel so the task has a
/// single place to wait on.
#[derive(Debug)]
pub(crate) enum Msg {
    Fs(notify::Result<notify::Event>),
    Rescan,
    Stop,
}

/// Keeps the watcher running; dropping it stops watching.
#[derive(Debug)]
pub struct WatchHandle {
    control: mpsc::UnboundedSender<Msg>,
    task: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// Walk every folder again now, as the periodic rescan does.
    pub fn rescan_now(&self) {
        // The task only goes away after a stop or when the consumer is gone;
        // either way there is nobody left to rescan for.
        let _ = self.control.send(Msg::Rescan);
    }

    /// Stop watching and wait until the watcher task has finished.
    pub async fn stop(mut self) {
        let _ = self.control.send(Msg::Stop);
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "folder watcher task ended abnormally");
            }
        }
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.control.send(Msg::Stop);
    }
}

/// Start watching `specs`; finished files and problems go to `events`.
///
/// A folder that is missing or cannot be watched is reported as a
/// [`WatchEvent::Problem`] rather than an error, so one bad folder does not
/// stop the others.
pub fn start(
    specs: Vec<WatchSpec>,
    options: WatchOptions,
    events: mpsc::Sender<WatchEvent>,
) -> Result<WatchHandle, WatchError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    let (control, rx) = mpsc::unbounded_channel();
    let forward = control.clone();
    // notify calls this on its own thread; an unbounded send never blocks it,
    // so the kernel queue keeps draining even while the consumer is slow.
    let watcher = notify::recommended_watcher(move |res| {
        let _ = forward.send(Msg::Fs(res));
    })
    .map_err(|source| WatchError::Watcher { source })?;
    let engine = engine::Engine::new(specs, options, events, watcher);
    let task = runtime.spawn(engine.run(rx));
    Ok(WatchHandle {
        control,
        task: Some(task),
    })
}
