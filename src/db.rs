//! The SQLite database: opening it, the pragmas every connection needs, and the schema migrations
//! that live in `migrations/` (and nowhere else).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction};

/// Every migration, in order. `user_version` records how many have been applied.
/// `tests` checks that this list names every file in `migrations/`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial.sql",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        "0002_library_entries.sql",
        include_str!("../migrations/0002_library_entries.sql"),
    ),
    (
        "0003_oauth_flows.sql",
        include_str!("../migrations/0003_oauth_flows.sql"),
    ),
    (
        "0004_job_actions.sql",
        include_str!("../migrations/0004_job_actions.sql"),
    ),
    (
        "0005_remote_tags.sql",
        include_str!("../migrations/0005_remote_tags.sql"),
    ),
    (
        "0006_library_feeds.sql",
        include_str!("../migrations/0006_library_feeds.sql"),
    ),
    (
        "0007_job_after_upload.sql",
        include_str!("../migrations/0007_job_after_upload.sql"),
    ),
    (
        "0008_upload_windows.sql",
        include_str!("../migrations/0008_upload_windows.sql"),
    ),
    (
        "0009_media_aware_library.sql",
        include_str!("../migrations/0009_media_aware_library.sql"),
    ),
    (
        "0010_faststart.sql",
        include_str!("../migrations/0010_faststart.sql"),
    ),
    (
        "0011_remux.sql",
        include_str!("../migrations/0011_remux.sql"),
    ),
];

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the database at {path} was written by a newer version of Offload (schema {found}, this \
         build knows up to {known}); install the newer Offload again, or use another data folder"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("applying migration {name} failed: {source}")]
    Migration {
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl DbError {
    fn is_busy(&self) -> bool {
        let source = match self {
            DbError::Open { source, .. }
            | DbError::Migration { source, .. }
            | DbError::Sql(source) => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// A shared handle to one connection. SQLite work here is short and synchronous, so callers take
/// the lock for one statement or one transaction and never hold it across an `.await`.
#[derive(Clone, Debug)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Commits made through this connection, which its `data_version` does not count.
    commits: Arc<AtomicU64>,
}

/// Where the database stands. It moves whenever anything commits, through this connection or
/// any other (another process, or another connection of this one), so a cache of database state
/// knows when to look again: the one rule every such cache follows (see [`ChangeCheck`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    /// SQLite's count of other connections' commits.
    others: i64,
    own: u64,
}

impl Db {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        // Switching a new file to WAL, or migrating it, can answer "busy" without consulting the
        // busy handler while another process does the same (the daemon and a command started
        // together): retry for as long as any other statement would wait.
        let started = std::time::Instant::now();
        loop {
            match Self::try_open(path) {
                Err(error) if error.is_busy() && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    fn try_open(path: &Path) -> Result<Db, DbError> {
        let open_err = |source| DbError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        configure(&conn).map_err(open_err)?;
        migrate(&mut conn, path)?;
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        conn.commit_hook(Some(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            // false: let the commit go ahead.
            false
        }));
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
            commits,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for one statement or one transaction.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (an open transaction is
        // rolled back when dropped), so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` inside one transaction: everything in it lands together or not at all.
    pub fn transaction<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .lock()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// The database's revision now: see [`Revision`].
    pub fn revision(&self) -> Result<Revision, DbError> {
        let conn = self.lock();
        let others = conn.pragma_query_value(None, "data_version", |row| row.get(0))?;
        Ok(Revision {
            others,
            own: self.commits.load(Ordering::Relaxed),
        })
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

/// When a cache of database state must look again: whenever [`Db::revision`] moved, read at
/// most once per `every` (zero: on every call). A reader that answers many requests a second (the
/// stream server) reads it at most once a second; the queue, which must see a sign-in at once,
/// on every job.
#[derive(Debug)]
pub struct ChangeCheck {
    every: Duration,
    last: Mutex<Option<(Instant, Revision)>>,
}

impl ChangeCheck {
    pub fn new(every: Duration) -> ChangeCheck {
        ChangeCheck {
            every,
            last: Mutex::new(None),
        }
    }

    /// The revision a cache's entries must have been checked at to be used as they are.
    pub fn revision(&self, db: &Db) -> Result<Revision, DbError> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, revision)) = *last {
            if at.elapsed() < self.every {
                return Ok(revision);
            }
        }
        let revision = db.revision()?;
        *last = Some((Instant::now(), revision));
        Ok(revision)
    }
}

/// Statements through the connection's cache of prepared statements: the queue runs the same
/// few dozen statements for every job, and parsing each anew was a sixteenth of the CPU of
/// uploading 1,000 small files.
pub trait Cached {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn one<T, P, F>(&self, sql: &str, params: P, row: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn one<T, P, F>(&self, sql: &str, params: P, row: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, row)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Room for every statement the queue, the library and the stream server repeat.
    conn.set_prepared_statement_cache_capacity(64);
    // WAL lets the daemon and a command-line call read and write at the same time; NORMAL
    // synchronous is durable across process crashes in WAL mode, which is what the queue needs.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let known = MIGRATIONS.len() as i64;
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > known {
        return Err(DbError::TooNew {
            path: path.to_owned(),
            found: current,
            known,
        });
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
            // Another process may have migrated while we waited for the lock.
            let now: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
            if now < version {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", version)?;
            }
            tx.commit()
        };
        apply(conn).map_err(|source| DbError::Migration { name, source })?;
        tracing::info!(migration = name, "applied database migration");
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub fn to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

/// Nanoseconds since the epoch: the precision a modification time is compared at.
pub fn to_ns(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i64,
        Err(before) => -(before.duration().as_nanos() as i64),
    }
}

/// A path stored as text. Paths that are not valid Unicode are rejected where they enter
/// (see `queue`), so this only meets paths that round-trip.
pub fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
