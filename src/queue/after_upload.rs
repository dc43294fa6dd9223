//! What happens to the local file once its remote copy is verified: kept, deleted, or moved into
//! a folder. The file is only touched if it is still exactly what was uploaded, and the work runs
//! on the blocking pool (a move across disks copies the whole file).

use std::fs::File;
use std::path::Path;

use super::Job;
use crate::profiles::AfterUpload;

/// Applies `policy` to `job`'s file. `Ok(None)`: nothing needed saying; `Ok(Some(note))`: the
/// file was left in place, and why; `Err`: the policy failed, and why.
pub async fn apply(job: &Job, policy: AfterUpload) -> Result<Option<&'static str>, String> {
    if policy == AfterUpload::Keep {
        return Ok(None);
    }
    let job = job.clone();
    let applied = tokio::task::spawn_blocking(move || {
        if !job.file_unchanged() {
            return Ok(Some(
                "the file changed after it was uploaded, so it was left in place",
            ));
        }
        if let Some(reason) = in_use(&job.local_path) {
            return Ok(Some(reason));
        }
        let result = match &policy {
            AfterUpload::Keep => Ok(()),
            AfterUpload::Delete => std::fs::remove_file(&job.local_path),
            AfterUpload::Move(dir) => move_into(&job.local_path, dir),
        };
        result.map(|()| None).map_err(|error| {
            format!("uploaded, but the after-upload policy {policy} failed: {error}")
        })
    })
    .await;
    applied.unwrap_or_else(|error| Err(format!("the after-upload policy did not finish: {error}")))
}

/// Why the file must stay where it is although it was uploaded: a torrent client seeding it
/// through a hard link would lose nothing by a delete but the person's ratio by a move, and one
/// still writing it would be broken by either.
fn in_use(path: &Path) -> Option<&'static str> {
    if crate::platform::link_count(path).is_ok_and(|links| links > 1) {
        return Some(
            "the file has another name (a hard link, as torrent clients and media servers make), so it was kept; remove it there to free the space",
        );
    }
    if crate::platform::Writers::now().writing(path) {
        return Some("another program still has the file open for writing, so it was kept");
    }
    None
}

/// Moves a file into `dir`, keeping its name (adding " (2)", " (3)"… if taken), copying across
/// filesystems when a rename cannot.
fn move_into(path: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut target = dir.join(name);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut n = 2;
    while target.exists() {
        target = dir.join(format!("{stem} ({n}){ext}"));
        n += 1;
    }
    match std::fs::rename(path, &target) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(path, &target)?;
            File::open(&target)?.sync_all()?;
            std::fs::remove_file(path)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_file_keeps_its_name_or_gets_a_number() {
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("Uploaded");
        for _ in 0..3 {
            let file = scratch.path().join("Film.mkv");
            std::fs::write(&file, b"x").unwrap();
            move_into(&file, &target).unwrap();
            assert!(!file.exists());
        }
        let mut names: Vec<String> = std::fs::read_dir(&target)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["Film (2).mkv", "Film (3).mkv", "Film.mkv"]);
    }
}
