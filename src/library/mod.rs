//! The library: what has been uploaded and where it lives. Files are `media` rows; series are
//! `media` rows of kind `series` whose files are `episodes`.

use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use crate::backends::OpenBackends;
use crate::db::{now_ms, path_text, Db};
use crate::error::Result;
use crate::probe::MediaInfo;
use crate::storage::{Checksum, RemotePath};
use crate::template::{parse_episode, tidy_title};

/// Where a verified upload was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum LibraryItem {
    Media(i64),
    Episode(i64),
}

impl LibraryItem {
    /// The item a row names by its `is_episode` flag and id (the `library_entries` view's and
    /// every union over the two tables').
    pub fn of(is_episode: bool, id: i64) -> LibraryItem {
        if is_episode {
            LibraryItem::Episode(id)
        } else {
            LibraryItem::Media(id)
        }
    }
}

/// `media 3`, `episode 7`: how a person names an item (the ids `offload media list` shows).
impl std::fmt::Display for LibraryItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LibraryItem::Media(id) => write!(f, "media {id}"),
            LibraryItem::Episode(id) => write!(f, "episode {id}"),
        }
    }
}

mod feed;
mod scan;

pub use scan::{keep_scanning, scan_backend, LastRound, ScanProgress, ScanReport};

/// A verified upload, as the queue reports it.
#[derive(Debug, Clone)]
pub struct UploadedFile<'a> {
    pub profile_id: i64,
    pub backend_id: i64,
    pub local_path: &'a Path,
    pub remote_path: &'a RemotePath,
    pub size: u64,
    pub checksum: &'a Checksum,
    /// The local file's own checksum, where what was uploaded is a rewrite of it (faststart).
    pub source_checksum: Option<&'a Checksum>,
    /// The provider's id of the uploaded file, where it has one.
    pub remote_id: Option<&'a str>,
    /// The stored object's tag, where the upload's answer said it.
    pub remote_tag: Option<&'a str>,
    /// What the file holds, where it could be probed.
    pub media_info: Option<&'a MediaInfo>,
}

/// Records a verified upload inside the queue's finishing transaction. Uploading to a remote
/// path that already has a row updates that row, so a re-upload never duplicates an item.
pub fn record_upload(tx: &Transaction<'_>, file: &UploadedFile<'_>) -> Result<LibraryItem> {
    let file_name = file
        .local_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    record(
        tx,
        &Stored {
            profile_id: file.profile_id,
            backend_id: file.backend_id,
            name: &file_name,
            remote_path: file.remote_path,
            size: file.size,
            content_type: stored_content_type(file.remote_path, file.local_path),
            checksum: Some(file.checksum.as_str()),
            source_checksum: file.source_checksum.map(Checksum::as_str),
            file_path: Some(path_text(file.local_path)),
            remote_tag: file.remote_tag,
            remote_id: file.remote_id,
            uploaded_at: Some(now_ms()),
            media_info: file
                .media_info
                .and_then(|info| serde_json::to_string(info).ok()),
        },
    )
}

/// An object in storage as the library records it, however Offload learnt of it.
struct Stored<'a> {
    profile_id: i64,
    backend_id: i64,
    /// The file name the title, or series, season and episode, are read from.
    name: &'a str,
    remote_path: &'a RemotePath,
    size: u64,
    content_type: String,
    /// Offload's verified SHA-256, when Offload uploaded these bytes.
    checksum: Option<&'a str>,
    /// The local file's checksum, where the uploaded bytes are a rewrite of it.
    source_checksum: Option<&'a str>,
    /// The local file it was uploaded from.
    file_path: Option<String>,
    remote_tag: Option<&'a str>,
    remote_id: Option<&'a str>,
    uploaded_at: Option<i64>,
    /// What the file holds, as JSON; none for an object only listed.
    media_info: Option<String>,
}

/// Inserts the item, or replaces what the row for its remote path said: one row per object.
fn record(tx: &Transaction<'_>, item: &Stored<'_>) -> Result<LibraryItem> {
    let now = now_ms();
    let size = item.size as i64;
    if let Some(episode) = parse_episode(item.name) {
        // Cached statements: a scan records thousands of items in one transaction.
        tx.prepare_cached(
            "INSERT INTO media (profile_id, kind, title, status, created_at) VALUES (?1, 'series', ?2, 'uploaded', ?3)
             ON CONFLICT (profile_id, title) WHERE kind = 'series' DO NOTHING",
        )?
        .execute(params![item.profile_id, episode.series, now])?;
        let series_id: i64 = tx
            .prepare_cached(
                "SELECT id FROM media WHERE profile_id = ?1 AND kind = 'series' AND title = ?2",
            )?
            .query_row(params![item.profile_id, episode.series], |row| row.get(0))?;
        let title = format!(
            "{} S{:02}E{:02}",
            episode.series, episode.season, episode.episode
        );
        let id: i64 = tx.prepare_cached(
            "INSERT INTO episodes (series_id, season, episode, title, file_path, storage_backend_id, storage_path, size,
                                   content_type, checksum, status, uploaded_at, remote_tag, remote_id, created_at, media_info,
                                   source_checksum, described_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'uploaded', ?11, ?12, ?13, ?14, ?15, ?16, ?11)
             ON CONFLICT (storage_backend_id, storage_path) WHERE storage_path IS NOT NULL DO UPDATE SET
                 series_id = excluded.series_id, season = excluded.season, episode = excluded.episode,
                 title = excluded.title, file_path = excluded.file_path, size = excluded.size,
                 content_type = excluded.content_type, checksum = excluded.checksum, status = 'uploaded',
                 uploaded_at = excluded.uploaded_at, remote_tag = excluded.remote_tag,
                 remote_id = excluded.remote_id, media_info = excluded.media_info,
                 source_checksum = excluded.source_checksum, described_at = excluded.described_at
             RETURNING id",
        )?.query_row(
            params![
                series_id,
                episode.season,
                episode.episode,
                title,
                item.file_path,
                item.backend_id,
                item.remote_path.as_str(),
                size,
                item.content_type,
                item.checksum,
                item.uploaded_at,
                item.remote_tag,
                item.remote_id,
                now,
                item.media_info,
                item.source_checksum
            ],
            |row| row.get(0),
        )?;
        return Ok(LibraryItem::Episode(id));
    }
    let title = tidy_title(
        Path::new(item.name)
            .file_stem()
            .map(|stem| stem.to_string_lossy())
            .unwrap_or_default()
            .as_ref(),
    );
    let id: i64 = tx.prepare_cached(
        "INSERT INTO media (profile_id, kind, title, file_path, storage_backend_id, storage_path, size, content_type,
                            checksum, status, uploaded_at, remote_tag, remote_id, created_at, media_info, source_checksum,
                            described_at)
         VALUES (?1, 'file', ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'uploaded', ?9, ?10, ?11, ?12, ?13, ?14, ?9)
         ON CONFLICT (storage_backend_id, storage_path) WHERE storage_path IS NOT NULL DO UPDATE SET
             title = excluded.title, file_path = excluded.file_path, size = excluded.size,
             content_type = excluded.content_type, checksum = excluded.checksum, status = 'uploaded',
             uploaded_at = excluded.uploaded_at, remote_tag = excluded.remote_tag,
             remote_id = excluded.remote_id, media_info = excluded.media_info,
             source_checksum = excluded.source_checksum, described_at = excluded.described_at
         RETURNING id",
    )?.query_row(
        params![
            item.profile_id,
            title,
            item.file_path,
            item.backend_id,
            item.remote_path.as_str(),
            size,
            item.content_type,
            item.checksum,
            item.uploaded_at,
            item.remote_tag,
            item.remote_id,
            now,
            item.media_info,
            item.source_checksum
        ],
        |row| row.get(0),
    )?;
    Ok(LibraryItem::Media(id))
}

/// The table and row id of an item.
pub(crate) fn table_of(item: LibraryItem) -> (&'static str, i64) {
    match item {
        LibraryItem::Media(id) => ("media", id),
        LibraryItem::Episode(id) => ("episodes", id),
    }
}

/// The content type of a file stored at `remote` from `local`: by the stored name (a remux
/// stores an MP4 under its own), or by the local one where a template left the extension off.
pub fn stored_content_type(remote: &RemotePath, local: &Path) -> String {
    let stored = Path::new(remote.file_name());
    content_type_of(if stored.extension().is_some() {
        stored
    } else {
        local
    })
}

/// The MIME type players expect for a file of this name.
pub fn content_type_of(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|ext| ext.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Formats mime_guess does not know or names unhelpfully for players.
    let known = match ext.as_str() {
        "mkv" => Some("video/x-matroska"),
        "mka" => Some("audio/x-matroska"),
        "ts" | "m2ts" | "mts" => Some("video/mp2t"),
        "srt" => Some("application/x-subrip"),
        "ass" | "ssa" => Some("text/x-ssa"),
        "vtt" => Some("text/vtt"),
        "flac" => Some("audio/flac"),
        "opus" => Some("audio/opus"),
        _ => None,
    };
    known.map(str::to_owned).unwrap_or_else(|| {
        mime_guess::from_ext(&ext)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    })
}

/// One entry of the library listing: a file, or an episode with its series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct LibraryEntry {
    pub item: LibraryItem,
    pub profile_id: i64,
    pub title: String,
    pub series: Option<String>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    pub file_path: Option<String>,
    pub storage_backend_id: Option<i64>,
    pub storage_path: Option<String>,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub checksum: Option<String>,
    pub status: String,
    pub uploaded_at: Option<i64>,
    /// What the file holds (duration, picture, tracks), where it has been probed.
    pub media: Option<MediaInfo>,
    /// The local file's SHA-256 where the stored bytes are a rewrite of it (its index moved to
    /// the front); `checksum` is the stored bytes' own.
    pub source_checksum: Option<String>,
}

/// The library of one profile (or all), files first, then series with their episodes in order.
pub fn list(db: &Db, profile_id: Option<i64>) -> Result<Vec<LibraryEntry>> {
    let conn = db.lock();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM library_entries WHERE ?1 IS NULL OR profile_id = ?1
         ORDER BY is_episode, series, season, episode, title, id"
    ))?;
    let rows = statement.query_map([profile_id], entry_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One item of the library, if it exists.
pub fn get(db: &Db, item: LibraryItem) -> Result<Option<LibraryEntry>> {
    let (is_episode, id) = match item {
        LibraryItem::Media(id) => (false, id),
        LibraryItem::Episode(id) => (true, id),
    };
    let conn = db.lock();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM library_entries WHERE is_episode = ?1 AND id = ?2"
    ))?;
    Ok(statement
        .query_row(params![is_episode, id], entry_from_row)
        .optional()?)
}

/// Deletes an item's remote copy, then marks it removed (its stream URL answers 410 from then
/// on). A copy that is already gone from storage counts as deleted.
pub async fn remove(db: &Db, backends: &OpenBackends, item: LibraryItem) -> Result<()> {
    let entry = get(db, item)?
        .ok_or_else(|| crate::Error::NotFound("that library item does not exist".into()))?;
    if let (Some(backend_id), Some(path), "uploaded") = (
        entry.storage_backend_id,
        entry.storage_path.as_deref(),
        entry.status.as_str(),
    ) {
        let remote = crate::storage::RemotePath::parse(path)
            .map_err(|error| crate::Error::Invalid(error.to_string()))?;
        let backend = backends.get(backend_id)?;
        match backend.delete(&remote).await {
            Ok(()) => {}
            Err(error) if error.kind == crate::storage::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
    }
    let (table, id) = table_of(item);
    db.lock().execute(
        &format!("UPDATE {table} SET status = 'removed' WHERE id = ?1"),
        [id],
    )?;
    Ok(())
}

const ENTRY_COLUMNS: &str =
    "is_episode, id, profile_id, title, series, season, episode, file_path, \
     storage_backend_id, storage_path, size, content_type, checksum, status, uploaded_at, media_info, \
     source_checksum";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LibraryEntry> {
    Ok(LibraryEntry {
        item: LibraryItem::of(row.get(0)?, row.get(1)?),
        profile_id: row.get(2)?,
        title: row.get(3)?,
        series: row.get(4)?,
        season: row.get(5)?,
        episode: row.get(6)?,
        file_path: row.get(7)?,
        storage_backend_id: row.get(8)?,
        storage_path: row.get(9)?,
        size: row.get::<_, Option<i64>>(10)?.map(|size| size as u64),
        content_type: row.get(11)?,
        checksum: row.get(12)?,
        status: row.get(13)?,
        uploaded_at: row.get(14)?,
        // A record this version cannot read (written by a newer one) is shown without it.
        media: row
            .get::<_, Option<String>>(15)?
            .and_then(|json| serde_json::from_str(&json).ok()),
        source_checksum: row.get(16)?,
    })
}
