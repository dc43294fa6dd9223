//! Profiles (the product plan's "organization"): each has its own storage backends, its own
//! watched folders and its own upload policy.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::db::{now_ms, path_text, Db};
use crate::error::{is_unique_violation, Error, Result};
use crate::schedule::Window;
use crate::template;

use chrono::NaiveDateTime;

/// What happens to the local file once its remote copy is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "policy", content = "dir", rename_all = "lowercase")]
pub enum AfterUpload {
    Keep,
    Delete,
    Move(PathBuf),
}

impl AfterUpload {
    /// Parses `keep`, `delete` or `move:DIR`.
    pub fn parse(text: &str) -> Result<AfterUpload> {
        match text {
            "keep" => Ok(AfterUpload::Keep),
            "delete" => Ok(AfterUpload::Delete),
            _ => match text.strip_prefix("move:") {
                Some(dir) if !dir.is_empty() => Ok(AfterUpload::Move(PathBuf::from(dir))),
                _ => Err(Error::Invalid(format!(
                    "after-upload policy {text:?} is not one of keep, delete, move:DIR"
                ))),
            },
        }
    }

    fn columns(&self) -> (&'static str, Option<String>) {
        match self {
            AfterUpload::Keep => ("keep", None),
            AfterUpload::Delete => ("delete", None),
            AfterUpload::Move(dir) => ("move", Some(path_text(dir))),
        }
    }
}

impl std::fmt::Display for AfterUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AfterUpload::Keep => f.write_str("keep"),
            AfterUpload::Delete => f.write_str("delete"),
            AfterUpload::Move(dir) => write!(f, "move:{}", dir.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Profile {
    pub id: i64,
    pub name: String,
    pub remote_template: String,
    pub after_upload: AfterUpload,
    /// The hours its uploads may run, as `01:00-07:00` (local time); `None`: any time.
    pub upload_window: Option<String>,
    /// The folder of `.strm` files kept in step with its library, for media centres.
    pub strm_dir: Option<PathBuf>,
    /// Whether its MP4s with the index after the media data are rewritten index-first before
    /// upload, so players start them from the first bytes.
    pub faststart: bool,
    /// Whether its MPEG-TS, AVI and FLV files are remuxed into MP4 before upload (where ffmpeg
    /// is installed).
    pub remux: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct WatchFolder {
    pub id: i64,
    pub profile_id: i64,
    pub path: PathBuf,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// A new watched folder, before it has an id.
#[derive(Debug, Clone)]
pub struct NewWatchFolder {
    pub path: PathBuf,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl NewWatchFolder {
    pub fn recursive(path: PathBuf) -> NewWatchFolder {
        NewWatchFolder {
            path,
            recursive: true,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

const PROFILE_COLUMNS: &str =
    "id, name, remote_template, after_upload, after_upload_dir, created_at, upload_window, strm_dir, faststart, remux";

fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    let policy: String = row.get(3)?;
    let dir: Option<String> = row.get(4)?;
    let after_upload = match (policy.as_str(), dir) {
        ("delete", _) => AfterUpload::Delete,
        ("move", Some(dir)) => AfterUpload::Move(PathBuf::from(dir)),
        _ => AfterUpload::Keep,
    };
    Ok(Profile {
        id: row.get(0)?,
        name: row.get(1)?,
        remote_template: row.get(2)?,
        after_upload,
        upload_window: row.get(6)?,
        strm_dir: row.get::<_, Option<String>>(7)?.map(PathBuf::from),
        faststart: row.get(8)?,
        remux: row.get(9)?,
        created_at: row.get(5)?,
    })
}

fn folder_from_row(row: &Row<'_>) -> rusqlite::Result<WatchFolder> {
    let patterns = |index| -> rusqlite::Result<Vec<String>> {
        let text: String = row.get(index)?;
        serde_json::from_str(&text).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })
    };
    Ok(WatchFolder {
        id: row.get(0)?,
        profile_id: row.get(1)?,
        path: PathBuf::from(row.get::<_, String>(2)?),
        recursive: row.get(3)?,
        include: patterns(4)?,
        exclude: patterns(5)?,
    })
}

pub fn create(
    db: &Db,
    name: &str,
    remote_template: &str,
    after_upload: &AfterUpload,
    folders: &[NewWatchFolder],
) -> Result<Profile> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid("a profile needs a name".into()));
    }
    template::validate(remote_template)?;
    let (policy, dir) = after_upload.columns();
    let id = db.transaction(|tx| {
        tx.execute(
            "INSERT INTO profiles (name, remote_template, after_upload, after_upload_dir, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, remote_template, policy, dir, now_ms()],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::Invalid(format!("a profile named {name:?} already exists"))
            } else {
                error.into()
            }
        })?;
        let id = tx.last_insert_rowid();
        for folder in folders {
            insert_folder(tx, id, folder)?;
        }
        Ok::<_, Error>(id)
    })?;
    get(db, id)
}

fn insert_folder(
    tx: &rusqlite::Transaction<'_>,
    profile_id: i64,
    folder: &NewWatchFolder,
) -> Result<i64> {
    // A folder whose patterns do not compile, or that is not there, would be saved and then
    // never watched.
    crate::filter::FileFilter::new(&folder.include, &folder.exclude)
        .map_err(|error| Error::Invalid(error.to_string()))?;
    let path = absolute(&folder.path)?;
    if !path.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a folder on this computer: choose an existing folder to watch",
            path.display()
        )));
    }
    tx.execute(
        "INSERT INTO watch_folders (profile_id, path, recursive, include_patterns, exclude_patterns, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            profile_id,
            path_text(&path),
            folder.recursive,
            serde_json::to_string(&folder.include).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&folder.exclude).unwrap_or_else(|_| "[]".into()),
            now_ms()
        ],
    )
    .map_err(|error| {
        if is_unique_violation(&error) {
            Error::Invalid(format!("{} is already watched by this profile", path.display()))
        } else {
            error.into()
        }
    })?;
    Ok(tx.last_insert_rowid())
}

/// Makes a folder path absolute against the current directory, so the daemon (started elsewhere)
/// finds the same folder.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|error| Error::io(format!("cannot resolve {}", path.display()), error))
}

pub fn add_watch_folder(db: &Db, profile_id: i64, folder: &NewWatchFolder) -> Result<i64> {
    db.transaction(|tx| insert_folder(tx, profile_id, folder))
}

/// Stops watching a folder. Its jobs and library items stay; only new arrivals stop.
pub fn remove_watch_folder(db: &Db, profile_id: i64, path: &Path) -> Result<()> {
    let path = absolute(path)?;
    let removed = db.lock().execute(
        "DELETE FROM watch_folders WHERE profile_id = ?1 AND path = ?2",
        params![profile_id, path_text(&path)],
    )?;
    if removed == 0 {
        return Err(Error::NotFound(format!(
            "this profile does not watch {}",
            path.display()
        )));
    }
    Ok(())
}

/// Stops watching the folder with this id.
pub fn remove_watch_folder_by_id(db: &Db, id: i64) -> Result<()> {
    let removed = db
        .lock()
        .execute("DELETE FROM watch_folders WHERE id = ?1", [id])?;
    if removed == 0 {
        return Err(Error::NotFound(format!("no watched folder with id {id}")));
    }
    Ok(())
}

/// Changes where a profile's uploads go and what happens to the local files afterwards. Jobs
/// already queued keep the remote path they were given.
pub fn update(
    db: &Db,
    id: i64,
    remote_template: &str,
    after_upload: &AfterUpload,
) -> Result<Profile> {
    template::validate(remote_template)?;
    let (policy, dir) = after_upload.columns();
    let changed = db.lock().execute(
        "UPDATE profiles SET remote_template = ?2, after_upload = ?3, after_upload_dir = ?4 WHERE id = ?1",
        params![id, remote_template, policy, dir],
    )?;
    if changed == 0 {
        return Err(missing(id));
    }
    get(db, id)
}

/// Lets profile `id` upload only inside `window`, or (`None`) at any time.
pub fn set_upload_window(db: &Db, id: i64, window: Option<Window>) -> Result<Profile> {
    set(
        db,
        id,
        "upload_window",
        &window.map(|window| window.to_string()),
    )
}

/// Keeps a folder of `.strm` files for profile `id` in step with its library, or (`None`) none.
pub fn set_strm_dir(db: &Db, id: i64, dir: Option<&Path>) -> Result<Profile> {
    set(db, id, "strm_dir", &dir.map(crate::db::path_text))
}

/// The error of asking for profile `id` where there is none.
pub fn missing(id: i64) -> Error {
    Error::NotFound(format!("no profile with id {id}"))
}

/// A profile's settings that are on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    /// Late-index MP4s rewritten index-first before upload.
    Faststart,
    /// MPEG-TS, AVI and FLV remuxed into MP4 before upload.
    Remux,
}

/// Turns one of profile `id`'s switches on or off.
pub fn set_switch(db: &Db, id: i64, switch: Switch, on: bool) -> Result<Profile> {
    let column = match switch {
        Switch::Faststart => "faststart",
        Switch::Remux => "remux",
    };
    set(db, id, column, &on)
}

/// Sets one of profile `id`'s settings (`column` is one of the names above, never input).
fn set(db: &Db, id: i64, column: &str, value: &dyn rusqlite::ToSql) -> Result<Profile> {
    let changed = db.lock().execute(
        &format!("UPDATE profiles SET {column} = ?2 WHERE id = ?1"),
        params![id, value],
    )?;
    if changed == 0 {
        return Err(missing(id));
    }
    get(db, id)
}

/// The profiles whose upload window is closed at `now` (local time), and when the first of them
/// opens again.
pub fn closed_windows(db: &Db, now: NaiveDateTime) -> Result<(Vec<i64>, Option<NaiveDateTime>)> {
    let windows: Vec<(i64, String)> = {
        let conn = db.lock();
        let mut statement =
            conn.prepare("SELECT id, upload_window FROM profiles WHERE upload_window IS NOT NULL")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut closed = Vec::new();
    let mut opens: Option<NaiveDateTime> = None;
    for (id, text) in windows {
        // Written through `set_upload_window` only, so it parses; one that does not is ignored
        // rather than holding uploads back for ever.
        let Ok(window) = Window::parse(&text) else {
            continue;
        };
        if !window.is_open(now) {
            closed.push(id);
            let next = window.next_opening(now);
            opens = Some(opens.map_or(next, |first| first.min(next)));
        }
    }
    Ok((closed, opens))
}

pub fn rename(db: &Db, id: i64, new_name: &str) -> Result<()> {
    let new_name = new_name.trim();
    if new_name.is_empty() {
        return Err(Error::Invalid("a profile needs a name".into()));
    }
    let profile = get(db, id)?;
    db.lock()
        .execute(
            "UPDATE profiles SET name = ?2 WHERE id = ?1",
            params![profile.id, new_name],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::Invalid(format!("a profile named {new_name:?} already exists"))
            } else {
                error.into()
            }
        })?;
    Ok(())
}

pub fn get(db: &Db, id: i64) -> Result<Profile> {
    db.lock()
        .query_row(
            &format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE id = ?1"),
            [id],
            profile_from_row,
        )
        .optional()?
        .ok_or_else(|| missing(id))
}

pub fn by_name(db: &Db, name: &str) -> Result<Profile> {
    db.lock()
        .query_row(
            &format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE name = ?1"),
            [name],
            profile_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("there is no profile named {name:?}")))
}

pub fn list(db: &Db) -> Result<Vec<Profile>> {
    let conn = db.lock();
    let mut statement = conn.prepare(&format!(
        "SELECT {PROFILE_COLUMNS} FROM profiles ORDER BY name"
    ))?;
    let rows = statement.query_map([], profile_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn remove(db: &Db, id: i64) -> Result<()> {
    let profile = get(db, id)?;
    db.transaction(|tx| {
        let live: i64 = tx.query_row(
            "SELECT count(*) FROM upload_jobs WHERE profile_id = ?1 AND state IN ('running', 'verifying')",
            [profile.id],
            |row| row.get(0),
        )?;
        if live > 0 {
            return Err(Error::Invalid(format!(
                "profile {:?} has {live} upload(s) in progress; pause or cancel them first",
                profile.name
            )));
        }
        // Uploaded media keep their remote copies; only Offload's records of them go.
        tx.execute("DELETE FROM upload_jobs WHERE profile_id = ?1", [profile.id])?;
        tx.execute("DELETE FROM episodes WHERE series_id IN (SELECT id FROM media WHERE profile_id = ?1)", [profile.id])?;
        tx.execute("DELETE FROM media WHERE profile_id = ?1", [profile.id])?;
        tx.execute("DELETE FROM profiles WHERE id = ?1", [profile.id])?;
        Ok(())
    })
}

pub fn watch_folders(db: &Db, profile_id: Option<i64>) -> Result<Vec<WatchFolder>> {
    let conn = db.lock();
    let mut statement = conn.prepare(
        "SELECT id, profile_id, path, recursive, include_patterns, exclude_patterns FROM watch_folders
         WHERE ?1 IS NULL OR profile_id = ?1 ORDER BY profile_id, path",
    )?;
    let rows = statement.query_map([profile_id], folder_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
