//! Finding what a backend already holds, whoever put it there: the storage is the source of
//! truth and the library a cache of it. A scan lists the backend's root (no content is read),
//! adds the media it did not know, takes in objects replaced elsewhere, and marks removed the
//! items whose objects are gone, so their stream URLs answer 410. It writes only what changed:
//! a rescan of an unchanged backend commits nothing. Where the provider keeps a feed of changes
//! (Google Drive, OneDrive) a scan after a full listing follows the feed instead ([`feed`]).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::feed;
use super::{content_type_of, record, table_of, LibraryItem, Stored};
use crate::backends::{self, OpenBackends};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::filter::is_media_file;
use crate::storage::{
    records, Checksum, ErrorKind, ListPage, ListedObject, RecordOf, Recorded, RemotePath,
    StorageBackend,
};

/// What one scan of one backend found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ScanReport {
    /// Media items the backend holds now.
    pub found: u64,
    /// Items the library did not have before.
    pub added: u64,
    /// Items whose object was replaced by a different one (another size or tag).
    pub changed: u64,
    /// Items whose object is no longer there.
    pub gone: u64,
}

/// Where a scan of one backend stands, for whoever shows it (the tray's line, the window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ScanProgress {
    pub backend_id: i64,
    pub backend_name: String,
    /// Media items found so far.
    pub found: u64,
    /// The scan ended (whether it worked is in its report).
    pub done: bool,
}

/// What the library knew of an object before the scan.
#[derive(Clone, PartialEq)]
pub(super) struct Known {
    pub item: LibraryItem,
    size: Option<u64>,
    tag: Option<String>,
    remote_id: Option<String>,
    present: bool,
    /// The row holds a SHA-256 of the object's bytes.
    verified: bool,
}

impl Known {
    /// What the library should do about `object`, found where this row's object was.
    pub fn compare(self, object: ListedObject) -> Option<Change> {
        let replaced = !self.present
            || self.size != Some(object.size)
            || self.tag.as_ref().is_some_and(|tag| *tag != object.tag);
        if replaced {
            Some(Change::Replace(object, self))
        } else if self.tag.is_none()
            || (object.id.is_some() && object.id != self.remote_id)
            || (object.checksum.is_some() && !self.verified)
        {
            Some(Change::Tag(self.item, object))
        } else {
            None
        }
    }

    /// This row's object, as a listing would show it at `path`.
    pub fn listed_at(&self, path: RemotePath) -> ListedObject {
        ListedObject {
            path,
            size: self.size.unwrap_or(0),
            tag: self.tag.clone().unwrap_or_default(),
            id: self.remote_id.clone(),
            checksum: None,
        }
    }
}

/// Marks an item's object gone from storage: its stream URL answers 410 from now on.
pub(super) fn mark_removed(tx: &rusqlite::Transaction<'_>, item: LibraryItem) -> Result<()> {
    let (table, id) = table_of(item);
    tx.prepare_cached(&format!(
        "UPDATE {table} SET status = 'removed' WHERE id = ?1"
    ))?
    .execute([id])?;
    Ok(())
}

/// What a page of the listing asks of the database.
pub(super) enum Change {
    Add(ListedObject),
    /// The object differs from what the row said when the scan began.
    Replace(ListedObject, Known),
    /// The object is the one the library recorded; its tag or id was not known yet.
    Tag(LibraryItem, ListedObject),
}

/// Scans one backend of one profile: follows its feed of changes where it has one and a full
/// listing went before, else lists everything. `progress` hears the number of media items
/// found so far after each page.
async fn scan(
    db: &Db,
    backend: &dyn StorageBackend,
    profile_id: i64,
    backend_id: i64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ScanReport> {
    if let Some(since) = feed::stored(db, backend_id)? {
        match feed::follow(db, backend, profile_id, backend_id, since, progress).await {
            Err(Error::Storage(error)) if error.kind == ErrorKind::Expired => {
                tracing::info!("the feed of changes starts again, after a full listing: {error}");
            }
            followed => return followed,
        }
    }
    list_everything(db, backend, profile_id, backend_id, progress).await
}

/// Lists the whole backend. A listing cut short (an error, a killed process) has committed
/// whole pages only, and marks nothing removed; the next scan picks up from what is there.
async fn list_everything(
    db: &Db,
    backend: &dyn StorageBackend,
    profile_id: i64,
    backend_id: i64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ScanReport> {
    let mut known = known_items(db, backend_id)?;
    let mut report = ScanReport::default();
    // Taken first, so that what changes while the listing runs is in the feed after it.
    let point = match backend.change_point().await {
        Err(error) if error.kind == ErrorKind::NotFound => None,
        point => point?,
    };
    let (mut folders, mut records) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let page = match backend.list(cursor.as_deref()).await {
            Ok(page) => page,
            // A root that is not there yet (a library folder nothing was uploaded to) holds
            // nothing; one that held items is an error, in case it is only disconnected.
            Err(error) if error.kind == ErrorKind::NotFound && known.is_empty() => {
                ListPage::default()
            }
            Err(error) => return Err(error.into()),
        };
        folders.extend(page.folders);
        records.extend(page.records);
        let mut changes = Vec::new();
        for object in page.objects {
            match known.remove(object.path.as_str()) {
                Some(before) => {
                    report.found += 1;
                    changes.extend(before.compare(object));
                }
                None if is_media_file(Path::new(object.path.as_str())) => {
                    report.found += 1;
                    changes.push(Change::Add(object));
                }
                None => {}
            }
        }
        if !changes.is_empty() {
            apply(db, profile_id, backend_id, &changes, &mut report)?;
        }
        progress(report.found);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let gone: Vec<LibraryItem> = known
        .into_values()
        .filter(|before| before.present)
        .map(|before| before.item)
        .collect();
    if !gone.is_empty() {
        let mut conn = db.lock();
        let tx = conn.transaction()?;
        for item in &gone {
            mark_removed(&tx, *item)?;
        }
        tx.commit()?;
        report.gone = gone.len() as u64;
    }
    if let Some(point) = point {
        feed::start(db, backend_id, &point, &folders)?;
    }
    if !records.is_empty() {
        take_records(db, backend_id, &records)?;
    }
    Ok(report)
}

/// Offload's records of its uploads (from any computer) give the items they name their
/// verified SHA-256, where the object is still the one recorded (the same tag). An item that
/// has a hash keeps it, so a rescan writes nothing.
pub(super) fn take_records(db: &Db, backend_id: i64, records: &[Recorded]) -> Result<()> {
    let mut conn = db.lock();
    let tx = conn.transaction()?;
    // The items a record may complete: present, with a tag, without a hash. Few, usually.
    let mut open: HashMap<String, (LibraryItem, String)> = HashMap::new();
    {
        let mut statement = tx.prepare_cached(
            "SELECT 0, id, storage_path, remote_tag FROM media
             WHERE storage_backend_id = ?1 AND status = 'uploaded' AND checksum IS NULL
               AND storage_path IS NOT NULL AND remote_tag IS NOT NULL
             UNION ALL
             SELECT 1, id, storage_path, remote_tag FROM episodes
             WHERE storage_backend_id = ?1 AND status = 'uploaded' AND checksum IS NULL
               AND storage_path IS NOT NULL AND remote_tag IS NOT NULL",
        )?;
        let rows = statement.query_map([backend_id], |row| {
            let id = row.get(1)?;
            let item = if row.get(0)? {
                LibraryItem::Episode(id)
            } else {
                LibraryItem::Media(id)
            };
            Ok((row.get::<_, String>(2)?, (item, row.get::<_, String>(3)?)))
        })?;
        for row in rows {
            let (path, known) = row?;
            open.insert(records::path_key(&path), known.clone());
            open.insert(path, known);
        }
    }
    for record in records {
        let key = match &record.of {
            RecordOf::Path(path) => path.as_str(),
            RecordOf::PathKey(key) => key.as_str(),
        };
        if let Some((item, tag)) = open.get(key) {
            if *tag == record.tag {
                let (table, id) = table_of(*item);
                tx.prepare_cached(&format!("UPDATE {table} SET checksum = ?1 WHERE id = ?2"))?
                    .execute(params![record.checksum.as_str(), id])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// What [`known_from_row`] reads, from media rows and from episodes.
pub(super) const KNOWN_TABLES: [&str; 2] = [
    "SELECT 0, id, storage_path, size, remote_tag, status, remote_id, checksum IS NOT NULL FROM media",
    "SELECT 1, id, storage_path, size, remote_tag, status, remote_id, checksum IS NOT NULL FROM episodes",
];

pub(super) fn known_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Known)> {
    let item = LibraryItem::of(row.get(0)?, row.get(1)?);
    Ok((
        row.get(2)?,
        Known {
            item,
            size: row.get::<_, Option<i64>>(3)?.map(|size| size as u64),
            tag: row.get(4)?,
            present: row.get::<_, String>(5)? == "uploaded",
            remote_id: row.get(6)?,
            verified: row.get(7)?,
        },
    ))
}

/// Every item the library has in this backend, removed ones included (an object that comes
/// back is the same item again).
fn known_items(db: &Db, backend_id: i64) -> Result<HashMap<String, Known>> {
    let conn = db.lock();
    let [media, episodes] = KNOWN_TABLES;
    let mut statement = conn.prepare(&format!(
        "{media} WHERE storage_backend_id = ?1 AND storage_path IS NOT NULL
         UNION ALL
         {episodes} WHERE storage_backend_id = ?1 AND storage_path IS NOT NULL"
    ))?;
    let rows = statement.query_map([backend_id], known_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What the row for one remote path says now.
pub(super) fn known_row(
    tx: &rusqlite::Transaction<'_>,
    backend_id: i64,
    path: &str,
) -> Result<Option<Known>> {
    // One indexed lookup per table (each has one row per object at most).
    for table in KNOWN_TABLES {
        let mut statement = tx.prepare_cached(&format!(
            "{table} WHERE storage_backend_id = ?1 AND storage_path = ?2"
        ))?;
        if let Some((_, known)) = statement
            .query_row(params![backend_id, path], known_from_row)
            .optional()?
        {
            return Ok(Some(known));
        }
    }
    Ok(None)
}

/// One page's changes, in one transaction.
fn apply(
    db: &Db,
    profile_id: i64,
    backend_id: i64,
    changes: &[Change],
    report: &mut ScanReport,
) -> Result<()> {
    let mut conn = db.lock();
    let tx = conn.transaction()?;
    apply_in(&tx, profile_id, backend_id, changes, report)?;
    tx.commit()?;
    Ok(())
}

/// Changes, inside the caller's transaction.
pub(super) fn apply_in(
    tx: &rusqlite::Transaction<'_>,
    profile_id: i64,
    backend_id: i64,
    changes: &[Change],
    report: &mut ScanReport,
) -> Result<()> {
    for change in changes {
        // The queue may have recorded an upload to this path since the scan began: what it
        // verified wins over what the listing found.
        let still = match change {
            Change::Add(object) => known_row(tx, backend_id, object.path.as_str())?.is_none(),
            Change::Replace(object, before) => {
                known_row(tx, backend_id, object.path.as_str())?.as_ref() == Some(before)
            }
            Change::Tag(..) => true,
        };
        if !still {
            continue;
        }
        match change {
            Change::Add(object) | Change::Replace(object, _) => {
                let name = object.path.file_name();
                // Found in storage: no local file, and no hash Offload verified for these bytes.
                record(
                    tx,
                    &Stored {
                        profile_id,
                        backend_id,
                        name,
                        remote_path: &object.path,
                        size: object.size,
                        content_type: content_type_of(Path::new(name)),
                        checksum: object.checksum.as_ref().map(Checksum::as_str),
                        file_path: None,
                        remote_tag: Some(&object.tag),
                        remote_id: object.id.as_deref(),
                        uploaded_at: None,
                        media_info: None,
                        source_checksum: None,
                    },
                )?;
                if matches!(change, Change::Add(_)) {
                    report.added += 1;
                } else {
                    report.changed += 1;
                }
            }
            Change::Tag(item, object) => {
                let (table, id) = table_of(*item);
                tx.execute(
                    &format!(
                        "UPDATE {table} SET remote_tag = ?1, remote_id = coalesce(?2, remote_id),
                             checksum = coalesce(checksum, ?3)
                         WHERE id = ?4"
                    ),
                    params![
                        object.tag,
                        object.id,
                        object.checksum.as_ref().map(Checksum::as_str),
                        id
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// Scans one backend, as the library's owner (a shell, the daemon) asks for it.
pub async fn scan_backend(
    db: &Db,
    open: &OpenBackends,
    backend_id: i64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ScanReport> {
    let record = backends::get(db, backend_id)?;
    let backend = open.get(backend_id)?;
    scan(
        db,
        backend.as_ref(),
        record.profile_id,
        backend_id,
        progress,
    )
    .await
}

/// When the daemon's last round of scans began. It outlives one run of the daemon, so that a
/// restart in place (a settings change) does not look through every backend again at once.
pub type LastRound = std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>;

/// The daemon's scans: every backend, every `interval` (the first round now, or an interval
/// after `last` began), until `stop`, each told to `tell` as it goes. What changed is logged; a
/// failing backend is logged once until it works again, and the others are scanned all the same.
pub async fn keep_scanning(
    db: Db,
    open: std::sync::Arc<OpenBackends>,
    interval: Duration,
    last: LastRound,
    tell: impl Fn(ScanProgress) + Send + Sync,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut failing: HashMap<i64, String> = HashMap::new();
    let previous = *last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = previous.map_or_else(tokio::time::Instant::now, |began| began + interval);
    let mut ticks = tokio::time::interval_at(first, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            began = ticks.tick() => {
                *last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(began);
            }
        }
        let records = match backends::list(&db, None) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!("cannot read the backends to scan: {error}");
                continue;
            }
        };
        for record in records {
            // An account waiting for a sign-in has nothing to list yet; the queue already says
            // what to do about it.
            if matches!(
                record.readiness(&db),
                Ok(backends::Readiness::NotSignedIn | backends::Readiness::Disconnected { .. })
            ) {
                continue;
            }
            let progress = |found, done| ScanProgress {
                backend_id: record.id,
                backend_name: record.name.clone(),
                found,
                done,
            };
            let mut heard = |found| tell(progress(found, false));
            let scanned = tokio::select! {
                _ = stop.cancelled() => return,
                scanned = scan_backend(&db, &open, record.id, &mut heard) => scanned,
            };
            tell(progress(
                scanned.as_ref().map_or(0, |report| report.found),
                true,
            ));
            match scanned {
                Ok(report) => {
                    failing.remove(&record.id);
                    if report.added + report.changed + report.gone > 0 {
                        tracing::info!(
                            backend = %record.name,
                            found = report.found,
                            added = report.added,
                            changed = report.changed,
                            gone = report.gone,
                            "the library follows what changed in storage"
                        );
                    }
                }
                Err(error) => {
                    let said = error.to_string();
                    if failing.get(&record.id) != Some(&said) {
                        tracing::warn!(backend = %record.name, "cannot scan the backend: {said}");
                        failing.insert(record.id, said);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("offload.db")).unwrap();
        db.lock()
            .execute_batch(
                "INSERT INTO profiles (id, name, created_at) VALUES (1, 'Home', 0);
                 INSERT INTO storage_backends (id, profile_id, name, type, created_at)
                 VALUES (1, 1, 'Bucket', 's3', 0);",
            )
            .unwrap();
        (dir, db)
    }

    fn listed(path: &str, size: u64, tag: &str) -> ListedObject {
        ListedObject {
            path: RemotePath::parse(path).unwrap(),
            size,
            tag: tag.into(),
            id: None,
            checksum: None,
        }
    }

    /// What the queue does when it verified an upload to `path`.
    fn uploaded(db: &Db, path: &str, size: u64, checksum: &str) {
        let mut conn = db.lock();
        let tx = conn.transaction().unwrap();
        let remote = RemotePath::parse(path).unwrap();
        record(
            &tx,
            &Stored {
                profile_id: 1,
                backend_id: 1,
                name: remote.file_name(),
                remote_path: &remote,
                size,
                content_type: "video/x-matroska".into(),
                checksum: Some(checksum),
                file_path: Some("/downloads/Film.mkv".into()),
                remote_tag: None,
                remote_id: None,
                uploaded_at: Some(1),
                media_info: None,
                source_checksum: None,
            },
        )
        .unwrap();
        tx.commit().unwrap();
    }

    fn checksum_of(db: &Db, path: &str) -> Option<String> {
        db.lock()
            .query_row(
                "SELECT checksum FROM library_entries WHERE storage_path = ?1",
                [path],
                |row| row.get(0),
            )
            .unwrap()
    }

    #[test]
    fn an_upload_recorded_while_a_scan_runs_keeps_its_verified_hash() {
        let (_dir, db) = library();
        let mut report = ScanReport::default();

        // Listed as new, but the queue recorded its upload before the page was written.
        let new = Change::Add(listed("Film.mkv", 10, "\"etag-1\""));
        uploaded(&db, "Film.mkv", 10, "sha256:aa");
        apply(&db, 1, 1, &[new], &mut report).unwrap();
        assert_eq!(checksum_of(&db, "Film.mkv").as_deref(), Some("sha256:aa"));
        assert_eq!(report.added, 0);

        // Listed as replaced, but the queue uploaded it again meanwhile.
        let before = known_items(&db, 1).unwrap().remove("Film.mkv").unwrap();
        let replaced = Change::Replace(listed("Film.mkv", 20, "\"etag-2\""), before);
        uploaded(&db, "Film.mkv", 20, "sha256:bb");
        apply(&db, 1, 1, &[replaced], &mut report).unwrap();
        assert_eq!(checksum_of(&db, "Film.mkv").as_deref(), Some("sha256:bb"));
        assert_eq!(report.changed, 0);

        // Replaced elsewhere with nothing in between: the found file, without a verified hash.
        let before = known_items(&db, 1).unwrap().remove("Film.mkv").unwrap();
        let replaced = Change::Replace(listed("Film.mkv", 30, "\"etag-3\""), before);
        apply(&db, 1, 1, &[replaced], &mut report).unwrap();
        assert_eq!(checksum_of(&db, "Film.mkv"), None);
        assert_eq!(report.changed, 1);
    }
}
