//! Files handed over by whoever knows they are finished: a download client's completion hook
//! (qBittorrent, Transmission, aria2, SABnzbd, NZBGet, yt-dlp), a script, `offload upload`. They
//! go into the persistent queue at once, with no quiet period to wait out, for the running
//! daemon (or the caller's own queue) to upload.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Engine, DAEMON_LOCK};
use crate::backends::BackendRecord;
use crate::error::{Error, Result};
use crate::filter::FileFilter;
use crate::profiles::{self, AfterUpload, Profile, WatchFolder};
use crate::queue::{self, Enqueued, Event, JobState};

/// Where handed-over files go, where the caller says.
#[derive(Debug, Clone, Default)]
pub struct HandOver {
    /// The profile by name; else the one watching the file's folder, else the only one.
    pub profile: Option<String>,
    /// The backend by name; else the profile's default.
    pub backend: Option<String>,
    /// What to do with these files once uploaded, instead of the profile's policy.
    pub after_upload: Option<AfterUpload>,
    /// Reserves the jobs for this queue owner (a process uploading them itself).
    pub reserve_for: Option<String>,
}

/// What became of one handed-over file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HandedOver {
    /// In the queue now (new, or a failed or cancelled job of this file tried again).
    Queued { path: PathBuf, job: i64 },
    /// Already in the queue or uploading, held by whoever has it.
    AlreadyQueued { path: PathBuf, job: i64 },
    /// This very file (path, size, modification time) was already uploaded and verified.
    AlreadyDone { path: PathBuf, job: i64 },
    /// Not taken, and why (still being written, not a file…).
    Refused { path: PathBuf, reason: String },
}

impl HandedOver {
    /// The job that has the file, unless it was refused.
    pub fn job(&self) -> Option<i64> {
        match self {
            HandedOver::Queued { job, .. }
            | HandedOver::AlreadyQueued { job, .. }
            | HandedOver::AlreadyDone { job, .. } => Some(*job),
            HandedOver::Refused { .. } => None,
        }
    }
}

impl Engine {
    /// Queues `paths` (files, or folders whose media files are all taken, as a multi-file torrent
    /// is handed over) and wakes the daemon. A file still being written is refused with the
    /// reason; one already uploaded is not uploaded again.
    pub fn hand_over(&self, paths: &[PathBuf], options: &HandOver) -> Result<Vec<HandedOver>> {
        let mut options = options.clone();
        // A hook runs in whatever folder the download client chose: a folder to move into is
        // fixed now, not when the upload finishes.
        if let Some(AfterUpload::Move(dir)) = &mut options.after_upload {
            *dir = std::path::absolute(&*dir)
                .map_err(|error| Error::io(format!("cannot resolve {}", dir.display()), error))?;
        }
        let options = &options;
        let watched = profiles::watch_folders(&self.db, None)?;
        let writers = crate::platform::Writers::now();
        let mut outcomes = Vec::new();
        for given in paths {
            let path = std::path::absolute(given)
                .map_err(|error| Error::io(format!("cannot resolve {}", given.display()), error))?;
            let profile = self.profile_for(&path, options.profile.as_deref(), &watched)?;
            let backend = match &options.backend {
                Some(name) => self.backend_named(profile.id, name)?,
                None => self.default_backend(profile.id)?,
            };
            let folder = deepest_watching(&watched, &path, Some(profile.id));
            let base = path.parent().unwrap_or(&path).to_owned();
            let files = match path.is_dir() {
                true => media_under(&path, folder)?,
                false => vec![path],
            };
            for file in files {
                outcomes.push(match refusal(&file, &writers) {
                    Some(reason) => HandedOver::Refused { path: file, reason },
                    None => {
                        self.hand_over_file(&profile, &backend, folder, &base, file, options)?
                    }
                });
            }
        }
        // Listeners hear of them before the daemon, woken, can start them.
        for outcome in &outcomes {
            if let HandedOver::Queued { path, job } = outcome {
                let _ = self.events.send(Event::Queued {
                    job_id: *job,
                    local_path: path.clone(),
                });
            }
        }
        self.wake_daemon();
        Ok(outcomes)
    }

    /// Whether a daemon (`offload run` or the desktop app) runs for this data folder now.
    pub fn daemon_running(&self) -> bool {
        let path = self.data_dir.join(DAEMON_LOCK);
        match std::fs::File::options().write(true).open(&path) {
            Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// The profile `path` is for: the one named, else the one watching its folder, else the only
    /// one there is.
    fn profile_for(
        &self,
        path: &Path,
        named: Option<&str>,
        watched: &[WatchFolder],
    ) -> Result<Profile> {
        if let Some(name) = named {
            return self.profile_named(name);
        }
        if let Some(folder) = deepest_watching(watched, path, None) {
            return profiles::get(&self.db, folder.profile_id);
        }
        match <[Profile; 1]>::try_from(profiles::list(&self.db)?) {
            Ok([only]) => Ok(only),
            Err(all) if all.is_empty() => Err(Error::Invalid(
                "there is no profile yet: add one to say where uploads go".into(),
            )),
            Err(_) => Err(Error::Invalid(format!(
                "{} is in no watched folder and there are several profiles: say which profile it is for",
                path.display()
            ))),
        }
    }

    /// One finished file into the queue. Its remote path is rendered from its path relative to the
    /// profile's watched folder holding it, as the watcher would, else relative to `base` (the
    /// handed-over folder's parent, so a torrent's folder name is kept).
    fn hand_over_file(
        &self,
        profile: &Profile,
        backend: &BackendRecord,
        folder: Option<&WatchFolder>,
        base: &Path,
        path: PathBuf,
        options: &HandOver,
    ) -> Result<HandedOver> {
        let relative = match folder {
            Some(folder) => path.strip_prefix(&folder.path),
            None => path.strip_prefix(base),
        }
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.file_name().map(PathBuf::from).unwrap_or_default());
        let mut job = self.job_for_file(profile, backend, folder, Some(&relative), &path)?;
        job.after_upload = options.after_upload.clone();
        let reserve = |id: i64| match &options.reserve_for {
            Some(owner) => queue::reserve(&self.db, id, owner),
            None => Ok(true),
        };
        Ok(
            match queue::enqueue(&self.db, &job, options.reserve_for.as_deref())? {
                Enqueued::New(job) => HandedOver::Queued { path, job },
                Enqueued::AlreadyHandled(job, JobState::Done) => {
                    HandedOver::AlreadyDone { path, job }
                }
                Enqueued::AlreadyHandled(job, _) => {
                    queue::retry(&self.db, job)?;
                    reserve(job)?;
                    HandedOver::Queued { path, job }
                }
                Enqueued::AlreadyQueued(job) => match reserve(job)? {
                    true if options.reserve_for.is_some() => HandedOver::Queued { path, job },
                    _ => HandedOver::AlreadyQueued { path, job },
                },
            },
        )
    }
}

/// Why `path` cannot be taken now, if it cannot: it is not a file, or not finished.
fn refusal(path: &Path, writers: &crate::platform::Writers) -> Option<String> {
    if !path.is_file() {
        let reason = if path.exists() {
            "it is not a file"
        } else {
            "it does not exist"
        };
        return Some(reason.into());
    }
    crate::watch::unfinished(path, writers)
}

/// The innermost of `watched` (of `profile`'s, if given) holding `path`: nested watched folders
/// belong to the one nearest the file, as the watcher sees them.
fn deepest_watching<'a>(
    watched: &'a [WatchFolder],
    path: &Path,
    profile: Option<i64>,
) -> Option<&'a WatchFolder> {
    watched
        .iter()
        .filter(|folder| profile.is_none_or(|id| folder.profile_id == id))
        .filter(|folder| path.starts_with(&folder.path))
        .max_by_key(|folder| folder.path.components().count())
}

/// The media files under `dir` that the watched folder's rules (else the default media rule)
/// take, in name order.
fn media_under(dir: &Path, folder: Option<&WatchFolder>) -> Result<Vec<PathBuf>> {
    let filter = match folder {
        Some(folder) => FileFilter::new(&folder.include, &folder.exclude),
        None => FileFilter::new(&[], &[]),
    }
    .map_err(|error| Error::Invalid(error.to_string()))?;
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|error| {
            Error::io(
                format!("cannot read {}", dir.display()),
                error
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("a folder loop")),
            )
        })?;
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        if entry.file_type().is_file() && filter.accepts(relative) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}
