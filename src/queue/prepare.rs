//! Before an upload: the copy sent in place of the local file, where the profile makes its media
//! ready to stream — an MPEG-TS, AVI or FLV remuxed into MP4 ([`crate::transmux::remux`]), an
//! MP4 with its index moved first ([`crate::transmux::faststart`]). The copy lives in this
//! process's scratch folder for one attempt and is removed when the attempt ends, however it
//! ends.

use crate::db::Cached;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::params;

use super::transfer::{JobControl, Stop};
use super::{Inner, Job};
use crate::error::Result;
use crate::probe::MediaInfo;
use crate::profiles::Profile;
use crate::storage::{Checksum, RemotePath};
use crate::transmux::faststart::{self, Refused, Verdict};
use crate::transmux::remux::{self, RemuxError};

/// What an attempt uploads.
pub(super) enum Source {
    /// The local file itself.
    AsItIs,
    /// A rewrite of it.
    Rewritten(Rewrite),
    /// A pause or cancel came while the copy was being written.
    Stopped,
}

/// A rewritten copy of the job's file, removed when dropped.
pub(super) struct Rewrite {
    pub path: PathBuf,
    pub size: u64,
    pub source_checksum: Checksum,
    /// Where a remux stores it (an `.mp4` beside the job's path), and what the MP4 holds.
    pub remuxed: Option<(RemotePath, MediaInfo)>,
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove a rewritten copy");
        }
    }
}

impl Inner {
    pub(super) async fn prepare(
        &self,
        job: &Job,
        remote: &RemotePath,
        control: &Arc<JobControl>,
    ) -> Result<Source> {
        let profile = crate::profiles::get(&self.db, job.profile_id)?;
        if let Some(stored_as) = self.remux_target(&profile, job, remote)? {
            match self.remux(job, stored_as, control).await {
                Ok(rewrite) => return Ok(Source::Rewritten(rewrite)),
                Err(RemuxError::Stopped) => return Ok(Source::Stopped),
                Err(problem) => {
                    tracing::info!(job = job.id, path = %job.local_path.display(), reason = %problem, "not remuxed into MP4; uploading it as it is");
                    return Ok(Source::AsItIs);
                }
            }
        }
        if !profile.faststart || !crate::filter::is_media_file(&job.local_path) {
            return Ok(Source::AsItIs);
        }
        self.faststart(job, control).await
    }

    /// Where the MP4 of the job's file goes, when the profile remuxes and this file is one to
    /// remux: not when another file already has that name (its copy would be overwritten).
    fn remux_target(
        &self,
        profile: &Profile,
        job: &Job,
        remote: &RemotePath,
    ) -> Result<Option<RemotePath>> {
        if !profile.remux || !remux::applies(&job.local_path) {
            return Ok(None);
        }
        let Ok(stored_as) = RemotePath::parse(&remux::stored_name(remote.as_str())) else {
            return Ok(None);
        };
        let taken: bool = self.db.lock().one(
            "SELECT EXISTS (SELECT 1 FROM library_entries
                            WHERE storage_backend_id = ?1 AND storage_path = ?2 AND file_path IS NOT ?3)
                 OR EXISTS (SELECT 1 FROM upload_jobs
                            WHERE backend_id = ?1 AND remote_path = ?2 AND local_path != ?3
                              AND state IN ('queued', 'running', 'verifying', 'paused'))",
            params![job.backend_id, stored_as.as_str(), crate::db::path_text(&job.local_path)],
            |row| row.get(0),
        )?;
        if taken {
            tracing::info!(job = job.id, remote = %stored_as, "not remuxed into MP4: another file is stored under that name; uploading it as it is");
            return Ok(None);
        }
        Ok(Some(stored_as))
    }

    async fn remux(
        &self,
        job: &Job,
        stored_as: RemotePath,
        control: &Arc<JobControl>,
    ) -> std::result::Result<Rewrite, RemuxError> {
        let ffmpeg = remux::ffmpeg().ok_or(RemuxError::NoFfmpeg)?;
        let out = self.scratch_copy(job)?;
        let started = std::time::Instant::now();
        let stop = || control.requested() != Stop::None;
        match remux::remux(&ffmpeg, &job.local_path, &out, &stop).await {
            Ok(done) => {
                tracing::info!(job = job.id, path = %job.local_path.display(), remote = %stored_as, bytes = done.size, took = ?started.elapsed(), "remuxed into MP4, ready to stream");
                Ok(Rewrite {
                    path: out,
                    size: done.size,
                    source_checksum: Checksum::sha256(&done.source_sha256),
                    remuxed: Some((stored_as, done.info)),
                })
            }
            Err(problem) => {
                let _ = tokio::fs::remove_file(&out).await;
                Err(problem)
            }
        }
    }

    async fn faststart(&self, job: &Job, control: &Arc<JobControl>) -> Result<Source> {
        let source = job.local_path.clone();
        let out = match self.scratch_copy(job) {
            Ok(out) => out,
            Err(error) => {
                tracing::warn!(job = job.id, %error, "no room for a rewritten copy; uploading it as it is");
                return Ok(Source::AsItIs);
            }
        };
        let control = control.clone();
        let written = tokio::task::spawn_blocking(move || {
            let plan = match faststart::plan(&source)? {
                Verdict::Ready => return Ok(None),
                Verdict::Rewrite(plan) => plan,
            };
            let started = std::time::Instant::now();
            match faststart::rewrite(&source, &plan, &out, &|| {
                control.requested() != Stop::None
            }) {
                Ok(done) => {
                    tracing::info!(path = %source.display(), bytes = done.size, took = ?started.elapsed(), "moved the index to the front, ready to stream");
                    Ok(Some(Rewrite {
                        path: out,
                        size: done.size,
                        source_checksum: Checksum::sha256(&done.source_sha256),
                        remuxed: None,
                    }))
                }
                Err(refused) => {
                    let _ = std::fs::remove_file(&out);
                    Err(refused)
                }
            }
        })
        .await;
        Ok(match written {
            Ok(Ok(Some(rewrite))) => Source::Rewritten(rewrite),
            Ok(Ok(None)) | Ok(Err(Refused::NotMp4)) | Err(_) => Source::AsItIs,
            Ok(Err(Refused::Stopped)) => Source::Stopped,
            Ok(Err(refused)) => {
                tracing::info!(job = job.id, path = %job.local_path.display(), reason = %refused, "not made ready to stream; uploading it as it is");
                Source::AsItIs
            }
        })
    }

    /// Where this attempt's copy of the job's file is written, the folder made and any copy an
    /// attempt of this process could not remove cleared.
    fn scratch_copy(&self, job: &Job) -> std::io::Result<PathBuf> {
        let out = self.owner.scratch_dir().join(format!("{}.mp4", job.id));
        std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
        match std::fs::remove_file(&out) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(out),
        }
    }
}
