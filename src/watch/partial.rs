//! Recognising files that a downloader has not finished yet.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Suffixes that browsers, download managers, torrent clients and yt-dlp put on
/// a file while they are still writing it.
const PARTIAL_SUFFIXES: &[&str] = &[
    ".part",
    ".crdownload",
    ".download",
    ".partial",
    ".tmp",
    ".!qb",
    ".aria2",
    ".ytdl",
];

/// Files that sit *beside* the real file while it is being written: `X.aria2`
/// is aria2's control file for `X`, and browsers may pre-create `X` while
/// writing into `X.part`/`X.crdownload`.
pub(crate) const COMPANION_SUFFIXES: &[&str] = &[
    ".part",
    ".crdownload",
    ".aria2",
    ".ytdl",
    ".download",
    ".partial",
];

/// yt-dlp writes fragments as `X.part-Frag12`.
const FRAGMENT_MARKER: &str = ".part-frag";

/// Whether a file name says the file is still being downloaded (or is a lock,
/// temporary or hidden file that should never be uploaded).
pub fn is_partial_name(file_name: &str) -> bool {
    if file_name.starts_with('~') || file_name.starts_with('.') {
        return true;
    }
    let lower = file_name.to_lowercase();
    PARTIAL_SUFFIXES.iter().any(|s| lower.ends_with(s)) || lower.contains(FRAGMENT_MARKER)
}

/// Whether a downloader's companion file (`X.part`, `X.aria2`, …) exists next
/// to `path`, which means `path` itself is not finished.
pub fn has_partial_companion(path: &Path) -> bool {
    companion_of(path).is_some()
}

/// The downloader's companion file beside `path`, if there is one.
fn companion_of(path: &Path) -> Option<PathBuf> {
    COMPANION_SUFFIXES
        .iter()
        .map(|suffix| with_suffix(path, suffix))
        .find(|companion| companion.exists())
}

/// Why the file at `path` is not finished yet, when anything says so: its name, a downloader's
/// companion file beside it, or another program still writing it (as `writers` saw).
pub fn unfinished(path: &Path, writers: &crate::platform::Writers) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    if is_partial_name(&name) {
        return Some(
            "its name says it is still being downloaded, or is a temporary or hidden file".into(),
        );
    }
    if let Some(companion) = companion_of(path) {
        let companion = companion.file_name().unwrap_or_default().to_string_lossy();
        return Some(format!(
            "{companion} beside it says a downloader is still writing it"
        ));
    }
    if writers.writing(path) {
        return Some("another program still has it open for writing".into());
    }
    None
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// For a companion or fragment path, the file it belongs to: when the companion
/// goes away, that file may have become complete and must be looked at again.
pub(crate) fn primary_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_lowercase();
    // Lower-casing can change byte lengths for some scripts; only cut when the
    // suffix is ASCII and the lengths agree, so the index is valid in `name`.
    let cut = if let Some(pos) = lower.find(FRAGMENT_MARKER) {
        Some(pos)
    } else {
        COMPANION_SUFFIXES
            .iter()
            .find(|s| lower.ends_with(*s))
            .map(|s| name.len().saturating_sub(s.len()))
    }?;
    if lower.len() != name.len() || cut == 0 || !name.is_char_boundary(cut) {
        return None;
    }
    Some(path.with_file_name(&name[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_suffixes_are_recognised() {
        for name in [
            "movie.mkv.part",
            "movie.mkv.crdownload",
            "movie.mkv.download",
            "movie.mkv.partial",
            "movie.mkv.tmp",
            "movie.mkv.!qB",
            "movie.mkv.aria2",
            "movie.mkv.ytdl",
            "movie.mkv.PART",
            "movie.f137.mp4.part-Frag12",
            "~lock.movie.mkv",
            ".hidden.mkv",
        ] {
            assert!(is_partial_name(name), "{name} should be partial");
        }
    }

    #[test]
    fn finished_names_are_not_partial() {
        for name in [
            "movie.mkv",
            "part.mkv",
            "movie.partly.mkv",
            "tmp.mp3",
            "a~b.srt",
        ] {
            assert!(!is_partial_name(name), "{name} should not be partial");
        }
    }

    #[test]
    fn primary_strips_companion_suffix() {
        assert_eq!(
            primary_of(Path::new("/d/movie.mkv.aria2")),
            Some(PathBuf::from("/d/movie.mkv"))
        );
        assert_eq!(
            primary_of(Path::new("/d/movie.mkv.part-Frag3")),
            Some(PathBuf::from("/d/movie.mkv"))
        );
        assert_eq!(primary_of(Path::new("/d/movie.mkv")), None);
        assert_eq!(primary_of(Path::new("/d/.part")), None);
    }

    #[test]
    fn companion_holds_file_back() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("x.mkv");
        std::fs::write(&file, b"data")?;
        assert!(!has_partial_companion(&file));
        std::fs::write(dir.path().join("x.mkv.aria2"), b"ctl")?;
        assert!(has_partial_companion(&file));
        Ok(())
    }
}
