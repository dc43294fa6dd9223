//! A picture per film and episode: one frame of the video, taken by `ffmpeg` where it is
//! installed, kept in the data folder's `posters/` and shown on the Library's cards (through the
//! stream server, with the item's own token). Without ffmpeg there are no pictures and nothing
//! else changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::library::LibraryItem;

const POSTERS_DIR: &str = "posters";
/// Wide enough for a card on a high-density screen, small enough to list hundreds at once.
const WIDTH: u32 = 480;
/// ffmpeg answers in well under a second for a local file; a remote one that hangs is given up.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PosterError {
    #[error("ffmpeg is not installed, so there are no pictures (install ffmpeg to have them)")]
    NoFfmpeg,
    #[error("ffmpeg could not take a picture of it: {0}")]
    Ffmpeg(String),
    #[error("ffmpeg took longer than {} s", PATIENCE.as_secs())]
    TimedOut,
    #[error("the picture could not be saved: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the picture of `item` is kept.
pub fn path(data_dir: &Path, item: LibraryItem) -> PathBuf {
    let (kind, id) = match item {
        LibraryItem::Media(id) => ("media", id),
        LibraryItem::Episode(id) => ("episode", id),
    };
    data_dir.join(POSTERS_DIR).join(format!("{kind}-{id}.jpg"))
}

/// Takes the picture of `item` from `input` (a local file, or a URL ffmpeg reads by Range) one
/// tenth of the way in — past the opening titles and black frames — and keeps it.
pub async fn take(
    data_dir: &Path,
    item: LibraryItem,
    input: &std::ffi::OsStr,
    duration_ms: Option<u64>,
) -> Result<PathBuf, PosterError> {
    let ffmpeg = crate::platform::find_program("ffmpeg").ok_or(PosterError::NoFfmpeg)?;
    let out = path(data_dir, item);
    let dir = out.parent().unwrap_or(data_dir);
    tokio::fs::create_dir_all(dir).await?;
    let partial = out.with_extension("partial.jpg");
    let at = duration_ms.map_or(10.0, |ms| ms as f64 / 10_000.0);
    let run = tokio::process::Command::new(ffmpeg)
        .args([
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-ss",
            &format!("{at:.3}"),
            "-i",
        ])
        .arg(input)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("scale='min({WIDTH},iw)':-2"),
            "-q:v",
            "4",
            "-f",
            "image2",
        ])
        .arg(&partial)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run)
        .await
        .map_err(|_| PosterError::TimedOut)??;
    let made = tokio::fs::metadata(&partial)
        .await
        .is_ok_and(|meta| meta.len() > 0);
    if !output.status.success() || !made {
        let _ = tokio::fs::remove_file(&partial).await;
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said.lines().last().unwrap_or("it wrote no picture").trim();
        return Err(PosterError::Ffmpeg(said.to_owned()));
    }
    tokio::fs::rename(&partial, &out).await?;
    Ok(out)
}

/// The items that have a picture, by one listing of the folder (not a look per item).
pub fn taken(data_dir: &Path) -> std::collections::HashSet<PathBuf> {
    std::fs::read_dir(data_dir.join(POSTERS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect()
}

/// Forgets the picture of an item that left the library.
pub fn remove(data_dir: &Path, item: LibraryItem) {
    let path = path(data_dir, item);
    if let Err(error) = std::fs::remove_file(&path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::debug!(path = %path.display(), %error, "cannot remove a picture");
        }
    }
}
