//! A profile's library as an extended M3U playlist: films first, then each series with its
//! episodes in order, every entry a stream URL. VLC, mpv and Kodi read the titles from `#EXTINF`
//! and the grouping from `group-title`/`#EXTGRP`.

use std::fmt::Write as _;

use super::Links;
use crate::db::Db;
use crate::error::Result;
use crate::library::{self, LibraryEntry};
use crate::profiles;

/// The playlist of profile `profile_id` (which must exist) with URLs from `links`.
pub fn playlist(db: &Db, links: &Links, profile_id: i64) -> Result<String> {
    profiles::get(db, profile_id)?;
    Ok(render(&library::list(db, Some(profile_id))?, links))
}

fn render(entries: &[LibraryEntry], links: &Links) -> String {
    let mut out = String::from("#EXTM3U\n");
    for entry in entries.iter().filter(|entry| entry.status == "uploaded") {
        let title = one_line(&entry.title);
        let seconds = seconds_of(entry);
        match &entry.series {
            Some(series) => {
                let series = one_line(series);
                let _ = writeln!(
                    out,
                    "#EXTINF:{seconds} group-title=\"{}\",{title}\n#EXTGRP:{series}",
                    series.replace('"', "'")
                );
            }
            None => {
                let _ = writeln!(out, "#EXTINF:{seconds},{title}");
            }
        }
        let _ = writeln!(out, "{}", links.item_url(entry.item));
    }
    out
}

/// The item's length in whole seconds as its headers say, or -1 (M3U's "unknown").
fn seconds_of(entry: &LibraryEntry) -> i64 {
    entry
        .media
        .as_ref()
        .and_then(|media| media.duration_ms)
        .map_or(-1, |ms| ((ms + 500) / 1000) as i64)
}

/// A title that cannot break the line-based format.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::LibraryItem;
    use crate::secrets::{KeySource, MasterKey};
    use crate::stream::StreamSettings;

    fn entry(item: LibraryItem, title: &str, series: Option<&str>, status: &str) -> LibraryEntry {
        LibraryEntry {
            item,
            profile_id: 1,
            title: title.into(),
            series: series.map(Into::into),
            season: series.map(|_| 1),
            episode: series.map(|_| 1),
            file_path: None,
            storage_backend_id: Some(1),
            storage_path: Some("x".into()),
            size: Some(1),
            content_type: None,
            checksum: None,
            status: status.into(),
            uploaded_at: None,
            media: None,
            source_checksum: None,
        }
    }

    #[test]
    fn lists_uploaded_items_with_titles_and_groups() {
        let links = Links::new(
            &MasterKey::from_bytes([1; 32], KeySource::Environment),
            &StreamSettings::from_settings(&crate::settings::Settings::default()),
        );
        let mut film = entry(
            LibraryItem::Media(4),
            "Night\nof the Film",
            None,
            "uploaded",
        );
        film.media = Some(crate::probe::MediaInfo {
            container: crate::probe::Container::Mp4,
            duration_ms: Some(6_723_600),
            video: None,
            audio: Vec::new(),
            subtitles: Vec::new(),
        });
        let entries = [
            film,
            entry(LibraryItem::Media(5), "Gone", None, "removed"),
            entry(
                LibraryItem::Episode(9),
                "Show S01E01",
                Some("Show \"X\""),
                "uploaded",
            ),
        ];
        let text = render(&entries, &links);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        assert_eq!(
            lines[1], "#EXTINF:6724,Night of the Film",
            "its probed length"
        );
        assert_eq!(lines[2], links.item_url(LibraryItem::Media(4)));
        assert_eq!(lines[3], "#EXTINF:-1 group-title=\"Show 'X'\",Show S01E01");
        assert_eq!(lines[4], "#EXTGRP:Show \"X\"");
        assert!(lines[5].starts_with("http://127.0.0.1:39240/api/episodes/9/stream?token="));
        assert_eq!(lines.len(), 6, "the removed item is left out: {text}");
    }
}
