//! A profile's library as a folder of `.strm` files (each one line: the item's stream URL), laid
//! out the way Kodi, Jellyfin and Emby document for films and series, so a media centre pointed
//! at the folder lists, scrapes and plays the whole remote library.
//!
//! The folder is kept in step, not rewritten: a manifest in it (`.offload-strm`) names every
//! file Offload wrote, so a later export removes the files of items gone from the library and
//! never touches anything else — the media centre's own pictures and `.nfo` files, or whatever
//! else the person keeps there.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Links;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::library::{self, LibraryEntry};
use crate::profiles;

/// The file in the export folder that lists what Offload wrote there.
pub const MANIFEST: &str = ".offload-strm";

/// What an export changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StrmReport {
    /// Files written because they were new or their URL changed.
    pub written: u64,
    pub unchanged: u64,
    /// Files of items no longer in the library, removed.
    pub removed: u64,
}

/// Writes profile `profile_id`'s library into `dir` as `.strm` files with URLs from `links`.
pub fn export_strm(db: &Db, links: &Links, profile_id: i64, dir: &Path) -> Result<StrmReport> {
    profiles::get(db, profile_id)?;
    let entries: Vec<LibraryEntry> = library::list(db, Some(profile_id))?
        .into_iter()
        .filter(|entry| entry.status == "uploaded")
        .collect();
    let failed = |error: io::Error| Error::Io {
        context: format!(
            "cannot keep the media centre folder {} in step",
            dir.display()
        ),
        error,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let before = read_manifest(dir).map_err(failed)?;
    let mut report = StrmReport::default();
    let mut now = BTreeSet::new();
    for entry in &entries {
        let relative = unique(layout(entry), &now);
        let path = dir.join(&relative);
        let content = format!("{}\n", links.item_url(entry.item));
        if std::fs::read_to_string(&path).is_ok_and(|old| old == content) {
            report.unchanged += 1;
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(failed)?;
            }
            write_whole(&path, content.as_bytes()).map_err(failed)?;
            report.written += 1;
        }
        now.insert(relative);
    }
    // The new manifest first: a crash before the removals leaves files the next export removes.
    write_manifest(dir, &now).map_err(failed)?;
    for gone in before.difference(&now) {
        let path = dir.join(gone);
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(failed(error)),
        }
        remove_empty_parents(dir, &path);
    }
    Ok(report)
}

/// Where an item goes: `Films/Title (Year)/Title (Year).strm`, or
/// `Shows/Series/Season 01/Series S01E02.strm`.
fn layout(entry: &LibraryEntry) -> PathBuf {
    match (&entry.series, entry.season, entry.episode) {
        (Some(series), Some(season), Some(episode)) => {
            let series = file_name(series);
            PathBuf::from("Shows")
                .join(&series)
                .join(format!("Season {season:02}"))
                .join(format!("{series} S{season:02}E{episode:02}.strm"))
        }
        _ => {
            let film = file_name(&film_name(&entry.title));
            PathBuf::from("Films")
                .join(&film)
                .join(format!("{film}.strm"))
        }
    }
}

/// `path`, or `path` with " - 2", " - 3"… before its extension when another item took it (two
/// copies of one film, say), as the media centres name versions of one title.
fn unique(path: PathBuf, taken: &BTreeSet<PathBuf>) -> PathBuf {
    if !taken.contains(&path) {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    (2..)
        .map(|n| path.with_file_name(format!("{stem} - {n}.strm")))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(path)
}

/// A film title as media centres match it: the words before the first year, then the year in
/// brackets (`Night Walk 2024 1080p WEB-DL` → `Night Walk (2024)`); a title without a year as
/// it is.
fn film_name(title: &str) -> String {
    let words: Vec<&str> = title.split_whitespace().collect();
    let year = words.iter().enumerate().skip(1).find_map(|(at, word)| {
        let bare = word.trim_matches(|c| matches!(c, '(' | ')' | '[' | ']'));
        (bare.len() == 4
            && bare
                .parse::<u16>()
                .is_ok_and(|y| (1900..=2099).contains(&y)))
        .then_some((at, bare))
    });
    match year {
        Some((at, year)) => format!("{} ({year})", words[..at].join(" ")),
        None => title.to_owned(),
    }
}

/// A name every file system takes: no separators, no characters Windows refuses, no trailing
/// dots or spaces, none of Windows' device names.
fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    let cleaned = cleaned.trim_end_matches(['.', ' ']).to_owned();
    let device = cleaned
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let reserved = matches!(device.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (device.len() == 4
            && (device.starts_with("COM") || device.starts_with("LPT"))
            && device.ends_with(|c: char| c.is_ascii_digit()));
    match cleaned.as_str() {
        "" | "." | ".." => "Untitled".to_owned(),
        _ if reserved => format!("{cleaned}_"),
        _ => cleaned,
    }
}

fn read_manifest(dir: &Path) -> io::Result<BTreeSet<PathBuf>> {
    match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(text) => Ok(text
            .lines()
            .map(PathBuf::from)
            // Only what this module writes: a hand-edited line cannot point outside the folder.
            .filter(|path| {
                path.components()
                    .all(|part| matches!(part, std::path::Component::Normal(_)))
                    && path.extension().is_some_and(|ext| ext == "strm")
            })
            .collect()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(error) => Err(error),
    }
}

fn write_manifest(dir: &Path, paths: &BTreeSet<PathBuf>) -> io::Result<()> {
    let text: String = paths
        .iter()
        .map(|path| format!("{}\n", path.to_string_lossy().replace('\\', "/")))
        .collect();
    write_whole(&dir.join(MANIFEST), text.as_bytes())
}

/// Writes `path` whole or not at all: a media centre scanning meanwhile never reads half a URL.
fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let partial = path.with_extension("strm-partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// Removes the folders above `path` that its removal left empty, up to (not including) `dir`.
fn remove_empty_parents(dir: &Path, path: &Path) {
    let mut folder = path.parent();
    while let Some(current) = folder.filter(|folder| *folder != dir && folder.starts_with(dir)) {
        // Fails, and stops, at the first folder that still holds something.
        if std::fs::remove_dir(current).is_err() {
            break;
        }
        folder = current.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_media_centres_match_and_every_file_system_takes() {
        assert_eq!(
            film_name("Night Walk 2024 1080p WEB-DL"),
            "Night Walk (2024)"
        );
        assert_eq!(film_name("Big Film (2024)"), "Big Film (2024)");
        assert_eq!(
            film_name("2001 A Space Odyssey 1968"),
            "2001 A Space Odyssey (1968)"
        );
        assert_eq!(film_name("Arrival"), "Arrival");
        assert_eq!(file_name("What? A/B: \"Cut\"..."), "What A B Cut");
        assert_eq!(file_name("con"), "con_");
        assert_eq!(file_name("COM1.txt"), "COM1.txt_");
        assert_eq!(file_name(".."), "Untitled");
        let taken: BTreeSet<PathBuf> = [PathBuf::from("Films/A/A.strm")].into();
        assert_eq!(
            unique(PathBuf::from("Films/A/A.strm"), &taken),
            PathBuf::from("Films/A/A - 2.strm")
        );
    }
}
