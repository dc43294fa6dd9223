//! Before an upload: the copy sent in place of the local file, where the profile makes its MP4s
//! ready to stream ([`crate::transmux::faststart`]). The copy lives in this process's scratch
//! folder for one attempt and is removed when the attempt ends, however it ends.

use std::path::PathBuf;
use std::sync::Arc;

use super::transfer::{JobControl, Stop};
use super::{Inner, Job};
use crate::error::Result;
use crate::storage::Checksum;
use crate::transmux::faststart::{self, Refused, Verdict};

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
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove a rewritten copy");
        }
    }
}

impl Inner {
    pub(super) async fn prepare(&self, job: &Job, control: &Arc<JobControl>) -> Result<Source> {
        if !crate::profiles::get(&self.db, job.profile_id)?.faststart
            || !crate::filter::is_media_file(&job.local_path)
        {
            return Ok(Source::AsItIs);
        }
        let source = job.local_path.clone();
        let out = self.owner.scratch_dir().join(format!("{}.mp4", job.id));
        let control = control.clone();
        let written = tokio::task::spawn_blocking(move || {
            let plan = match faststart::plan(&source)? {
                Verdict::Ready => return Ok(None),
                Verdict::Rewrite(plan) => plan,
            };
            std::fs::create_dir_all(out.parent().unwrap_or(&out))?;
            // Left by an attempt of this process that could not remove it.
            let _ = std::fs::remove_file(&out);
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
}
