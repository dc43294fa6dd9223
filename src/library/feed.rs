//! Following a provider's feed of changes (Google Drive's `changes`, OneDrive's `delta`) instead
//! of listing everything again: after one full listing, a scan asks only what changed since,
//! and a scan of an unchanged drive is one request. A feed names files and folders by id, so
//! the library keeps the folders' ids with their paths (`remote_folders`) and the files' ids
//! with their rows (`remote_id`), and places each entry itself.
//!
//! What a feed cannot say is caught by a full listing at least every [`FULL_LISTING_EVERY`]:
//! a folder moved in from elsewhere arrives as one folder, without its content.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use super::scan::{
    apply_in, known_from_row, known_row, mark_removed, take_records, Change, Known, KNOWN_TABLES,
};
use super::ScanReport;
use crate::db::{now_ms, Db};
use crate::error::Result;
use crate::filter::is_media_file;
use crate::storage::{
    records, ChangePoint, FeedItem, ListedFolder, ListedObject, Recorded, RemotePath,
    StorageBackend,
};

/// How long a feed is followed before the backend is listed in full again.
pub const FULL_LISTING_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Where a backend's feed stands, as the last scan left it.
pub struct Since {
    point: String,
    root: String,
}

/// The feed to follow for this backend, or `None` when a full listing is due: none went
/// before, the last is older than [`FULL_LISTING_EVERY`], or some item's id is not known (an
/// upload recorded before ids were), so a feed's "file X is gone" could not find it.
pub fn stored(db: &Db, backend_id: i64) -> Result<Option<Since>> {
    let conn = db.lock();
    let since = conn
        .query_row(
            "SELECT point, root FROM library_feeds WHERE backend_id = ?1 AND listed_at > ?2",
            params![backend_id, now_ms() - FULL_LISTING_EVERY.as_millis() as i64],
            |row| {
                Ok(Since {
                    point: row.get(0)?,
                    root: row.get(1)?,
                })
            },
        )
        .optional()?;
    let unknown: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM media WHERE storage_backend_id = ?1 AND storage_path IS NOT NULL
                            AND status = 'uploaded' AND remote_id IS NULL)
             OR EXISTS (SELECT 1 FROM episodes WHERE storage_backend_id = ?1 AND storage_path IS NOT NULL
                            AND status = 'uploaded' AND remote_id IS NULL)",
        [backend_id],
        |row| row.get(0),
    )?;
    Ok(since.filter(|_| !unknown))
}

/// After a complete listing: the folders it went through, and the point its feed starts from.
pub fn start(
    db: &Db,
    backend_id: i64,
    point: &ChangePoint,
    folders: &[ListedFolder],
) -> Result<()> {
    let mut conn = db.lock();
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM remote_folders WHERE backend_id = ?1",
        [backend_id],
    )?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO remote_folders (backend_id, folder_id, path) VALUES (?1, ?2, ?3)",
        )?;
        for folder in folders {
            insert.execute(params![backend_id, folder.id, folder.path])?;
        }
    }
    tx.execute(
        "INSERT INTO library_feeds (backend_id, point, root, listed_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (backend_id) DO UPDATE SET point = excluded.point, root = excluded.root,
             listed_at = excluded.listed_at",
        params![backend_id, point.point, point.root, now_ms()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Follows the feed from where the last scan left it, one transaction a page. A run cut short
/// leaves the point where it was, and the next scan applies the same entries again, which
/// changes nothing the second time.
pub async fn follow(
    db: &Db,
    backend: &dyn StorageBackend,
    profile_id: i64,
    backend_id: i64,
    since: Since,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ScanReport> {
    let mut folders = Folders::load(db, backend_id, since.root)?;
    let mut report = ScanReport::default();
    let mut cursor = since.point;
    loop {
        let page = backend.changes(&cursor).await?;
        {
            let mut conn = db.lock();
            let tx = conn.transaction()?;
            for item in page.items {
                folders.place(&tx, profile_id, item, &mut report)?;
            }
            if let (None, Some(point)) = (&page.next, &page.point) {
                // Only a point that moved is written: an unchanged drive writes nothing.
                tx.execute(
                    "UPDATE library_feeds SET point = ?2 WHERE backend_id = ?1 AND point <> ?2",
                    params![backend_id, point],
                )?;
            }
            tx.commit()?;
        }
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    if !folders.records.is_empty() {
        take_records(db, backend_id, &folders.records)?;
    }
    report.found = present(db, backend_id)?;
    progress(report.found);
    Ok(report)
}

/// The items a backend holds now.
fn present(db: &Db, backend_id: i64) -> Result<u64> {
    let count: i64 = db.lock().query_row(
        "SELECT (SELECT count(*) FROM media WHERE storage_backend_id = ?1 AND storage_path IS NOT NULL
                     AND status = 'uploaded')
              + (SELECT count(*) FROM episodes WHERE storage_backend_id = ?1 AND storage_path IS NOT NULL
                     AND status = 'uploaded')",
        [backend_id],
        |row| row.get(0),
    )?;
    Ok(count as u64)
}

/// The present rows that match `condition` (with `?1` the backend and `?2` its argument).
fn rows_where(
    tx: &Transaction<'_>,
    backend_id: i64,
    condition: &str,
    argument: &str,
) -> Result<Vec<(String, Known)>> {
    let mut found = Vec::new();
    for table in KNOWN_TABLES {
        let mut statement = tx.prepare_cached(&format!(
            "{table} WHERE storage_backend_id = ?1 AND status = 'uploaded' AND {condition}"
        ))?;
        let rows = statement.query_map(params![backend_id, argument], known_from_row)?;
        found.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    Ok(found)
}

/// Rows of files under the folder at `path`.
const UNDER: &str = "substr(storage_path, 1, length(?2) + 1) = ?2 || '/'";

fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// A backend's folders by the provider's id, with their paths ("" is the backend's folder).
struct Folders {
    backend_id: i64,
    root: String,
    paths: HashMap<String, String>,
    /// Offload's records of uploads the feed brought ([`records`]).
    records: Vec<Recorded>,
}

impl Folders {
    fn load(db: &Db, backend_id: i64, root: String) -> Result<Folders> {
        let conn = db.lock();
        let mut statement =
            conn.prepare("SELECT folder_id, path FROM remote_folders WHERE backend_id = ?1")?;
        let mut paths: HashMap<String, String> = statement
            .query_map([backend_id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        paths.insert(root.clone(), String::new());
        Ok(Folders {
            backend_id,
            root,
            paths,
            records: Vec::new(),
        })
    }

    /// Applies one entry of the feed.
    fn place(
        &mut self,
        tx: &Transaction<'_>,
        profile_id: i64,
        item: FeedItem,
        report: &mut ScanReport,
    ) -> Result<()> {
        match item {
            // The backend's own folder is where it is; what the feed says of it (a rename
            // elsewhere in the drive) changes no path under it.
            FeedItem::Folder { id, .. } | FeedItem::Gone { id } if id == self.root => Ok(()),
            FeedItem::File {
                id,
                parent,
                name,
                size,
                tag,
                checksum,
            } => {
                if self.paths.get(&parent).map(String::as_str) == Some(records::FOLDER) {
                    self.records.extend(records::parse_flat(&name));
                    return Ok(());
                }
                let path = self
                    .paths
                    .get(&parent)
                    .and_then(|folder| RemotePath::exact(&join(folder, &name)));
                match path {
                    Some(path) => self.arrive(
                        tx,
                        profile_id,
                        ListedObject {
                            path,
                            size,
                            tag,
                            id: Some(id),
                            checksum,
                        },
                        report,
                    ),
                    // Moved out of the backend's folder, or never in it.
                    None => self.gone(tx, &id, report),
                }
            }
            FeedItem::Folder { id, parent, name } => {
                let now = self.paths.get(&parent).map(|folder| join(folder, &name));
                match (self.paths.get(&id).cloned(), now) {
                    (None, None) => Ok(()),
                    (None, Some(now)) => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO remote_folders (backend_id, folder_id, path)
                             VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![self.backend_id, id, now])?;
                        self.paths.insert(id, now);
                        Ok(())
                    }
                    (Some(was), Some(now)) if was == now => Ok(()),
                    (Some(was), Some(now)) => self.moved(tx, profile_id, &was, &now, report),
                    (Some(was), None) => self.dropped(tx, &was, report),
                }
            }
            FeedItem::Gone { id } => match self.paths.get(&id).cloned() {
                Some(was) => self.dropped(tx, &was, report),
                None => self.gone(tx, &id, report),
            },
        }
    }

    /// A file is at `object.path` now: the same as what the row there says, replaced, or new
    /// there (moved or renamed from where its id's row was, which is then gone).
    fn arrive(
        &self,
        tx: &Transaction<'_>,
        profile_id: i64,
        object: ListedObject,
        report: &mut ScanReport,
    ) -> Result<()> {
        let id = object.id.as_deref().unwrap_or_default();
        for (path, before) in rows_where(tx, self.backend_id, "remote_id = ?2", id)? {
            if path != object.path.as_str() {
                mark_removed(tx, before.item)?;
                report.gone += 1;
            }
        }
        let change = match known_row(tx, self.backend_id, object.path.as_str())? {
            Some(before) => before.compare(object),
            None if is_media_file(Path::new(object.path.as_str())) => Some(Change::Add(object)),
            None => None,
        };
        if let Some(change) = change {
            apply_in(tx, profile_id, self.backend_id, &[change], report)?;
        }
        Ok(())
    }

    /// The file with this id is gone.
    fn gone(&self, tx: &Transaction<'_>, id: &str, report: &mut ScanReport) -> Result<()> {
        for (_, before) in rows_where(tx, self.backend_id, "remote_id = ?2", id)? {
            mark_removed(tx, before.item)?;
            report.gone += 1;
        }
        Ok(())
    }

    /// The folder at `was` and everything under it are gone (deleted, or moved out).
    fn dropped(&mut self, tx: &Transaction<'_>, was: &str, report: &mut ScanReport) -> Result<()> {
        for (_, before) in rows_where(tx, self.backend_id, UNDER, was)? {
            mark_removed(tx, before.item)?;
            report.gone += 1;
        }
        tx.prepare_cached(&format!(
            "DELETE FROM remote_folders WHERE backend_id = ?1 AND (path = ?2 OR {})",
            UNDER.replace("storage_path", "path")
        ))?
        .execute(params![self.backend_id, was])?;
        let under = format!("{was}/");
        self.paths
            .retain(|_, path| path != was && !path.starts_with(&under));
        Ok(())
    }

    /// The folder at `was` is at `now`, with everything under it (a feed names only the folder).
    /// Files keep their rows, and so their stream URLs, where nothing is in the way.
    fn moved(
        &mut self,
        tx: &Transaction<'_>,
        profile_id: i64,
        was: &str,
        now: &str,
        report: &mut ScanReport,
    ) -> Result<()> {
        let under = format!("{was}/");
        for path in self.paths.values_mut() {
            if path == was || path.starts_with(&under) {
                *path = format!("{now}{}", &path[was.len()..]);
            }
        }
        tx.prepare_cached(&format!(
            "UPDATE remote_folders SET path = ?3 || substr(path, length(?2) + 1)
             WHERE backend_id = ?1 AND (path = ?2 OR {})",
            UNDER.replace("storage_path", "path")
        ))?
        .execute(params![self.backend_id, was, now])?;
        for (path, before) in rows_where(tx, self.backend_id, UNDER, was)? {
            let Some(target) = RemotePath::exact(&format!("{now}{}", &path[was.len()..])) else {
                mark_removed(tx, before.item)?;
                report.gone += 1;
                continue;
            };
            if known_row(tx, self.backend_id, target.as_str())?.is_none() {
                let (table, id) = super::table_of(before.item);
                tx.execute(
                    &format!("UPDATE {table} SET storage_path = ?1 WHERE id = ?2"),
                    params![target.as_str(), id],
                )?;
                report.changed += 1;
            } else {
                mark_removed(tx, before.item)?;
                report.gone += 1;
                let object = before.listed_at(target);
                self.arrive(tx, profile_id, object, report)?;
            }
        }
        Ok(())
    }
}
