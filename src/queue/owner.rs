//! Which process holds which job: a lock file per process that the OS releases when the
//! process dies, however it dies, so a restarted daemon takes back a crashed one's jobs at once.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::params;

use crate::db::{now_ms, Cached, Db};
use crate::error::{Error, Result};

/// A process's claim on the jobs it runs: a lock file that the OS releases when the process
/// dies, however it dies. Another process finding the file unlocked knows the owner is gone.
pub struct OwnerLock {
    id: String,
    path: PathBuf,
    _file: File,
}

impl OwnerLock {
    pub fn acquire(dir: &Path) -> Result<OwnerLock> {
        std::fs::create_dir_all(dir)
            .map_err(|error| Error::io(format!("cannot create {}", dir.display()), error))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = dir.join(format!("{id}.lock"));
        let file = File::create(&path)
            .map_err(|error| Error::io(format!("cannot create {}", path.display()), error))?;
        file.lock()
            .map_err(|error| Error::io(format!("cannot lock {}", path.display()), error))?;
        Ok(OwnerLock {
            id,
            path,
            _file: file,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// This process's scratch folder (the rewritten copies it is uploading). It goes with the
    /// lock; after a crash, the next process's [`recover_orphans`] removes it.
    pub fn scratch_dir(&self) -> PathBuf {
        self.path.with_extension(SCRATCH)
    }

    /// Whether the process that took `owner` in `dir` is still running.
    pub fn is_alive(dir: &Path, owner: &str) -> bool {
        let path = dir.join(format!("{owner}.lock"));
        let Ok(file) = File::options().read(true).write(true).open(&path) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(_) => true,
        }
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.scratch_dir());
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The extension of an owner's scratch folder beside its lock file.
const SCRATCH: &str = "work";

/// Removes the scratch folders of processes that are gone.
fn sweep_scratch(owners_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(owners_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_none_or(|extension| extension != SCRATCH)
        {
            continue;
        }
        let Some(owner) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        if !OwnerLock::is_alive(owners_dir, owner) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed what an interrupted upload left behind")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove what an interrupted upload left behind")
                }
            }
        }
    }
}

/// Returns to the queue every job whose owner died (a crash, `kill -9`, a power cut), and
/// removes the scratch files it left. Its resume record stays, so a provider that can continue
/// does.
pub fn recover_orphans(db: &Db, owners_dir: &Path) -> Result<usize> {
    sweep_scratch(owners_dir);
    let claimed: Vec<(i64, String)> = {
        let conn = db.lock();
        let mut statement =
            conn.prepare("SELECT id, owner FROM upload_jobs WHERE owner IS NOT NULL")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut alive: HashMap<String, bool> = HashMap::new();
    let mut recovered = 0;
    for (id, owner) in claimed {
        let owner_alive = *alive
            .entry(owner.clone())
            .or_insert_with(|| OwnerLock::is_alive(owners_dir, &owner));
        if owner_alive {
            continue;
        }
        recovered += db.lock().run(
            "UPDATE upload_jobs SET owner = NULL, updated_at = ?3,
                 state = CASE WHEN state IN ('running', 'verifying') THEN 'queued' ELSE state END
             WHERE id = ?1 AND owner = ?2",
            params![id, owner, now_ms()],
        )?;
    }
    if recovered > 0 {
        tracing::info!(recovered, "returned interrupted uploads to the queue");
    }
    Ok(recovered)
}
