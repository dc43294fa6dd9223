//! Linux and macOS.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Reads into `buffer` from `offset` without moving the file's cursor, so one open file can serve
/// many ranges at once.
pub fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    file.read_at(buffer, offset)
}

/// How many names the file at `path` has: above one, another program (a torrent client seeding
/// it, a media server's hardlinked library) reaches the same bytes under another name.
pub fn link_count(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.nlink())
}

/// What other processes have open, looked at once so that many files can be asked about for the
/// price of one look (a hand-over of 1,000 files walked every process's descriptors 1,000 times,
/// a fifth of the CPU of uploading them). Linux: the open files under `/proc`, read as this user
/// may (another user's processes stay unseen). macOS has no such listing without `lsof`, so
/// there nothing is open.
pub struct Writers {
    /// Each open file's path, with the `fdinfo` of every descriptor that holds it.
    open: std::collections::HashMap<std::path::PathBuf, Vec<std::path::PathBuf>>,
}

impl Writers {
    pub fn now() -> Writers {
        let mut open: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
        let processes = match cfg!(target_os = "linux").then(|| std::fs::read_dir("/proc")) {
            Some(Ok(processes)) => processes,
            _ => return Writers { open },
        };
        let me = std::process::id().to_string();
        for process in processes.flatten() {
            let pid = process.file_name();
            if pid
                .to_str()
                .is_none_or(|pid| pid == me || !pid.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let Ok(descriptors) = std::fs::read_dir(process.path().join("fd")) else {
                continue;
            };
            for fd in descriptors.flatten() {
                // Sockets, pipes and the like read as `socket:[…]`: only paths are files.
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if target.is_absolute() {
                        let info = process.path().join("fdinfo").join(fd.file_name());
                        open.entry(target).or_default().push(info);
                    }
                }
            }
        }
        Writers { open }
    }

    /// Whether another process had the file at `path` open for writing.
    pub fn writing(&self, path: &Path) -> bool {
        std::fs::canonicalize(path).is_ok_and(|target| {
            self.open
                .get(&target)
                .is_some_and(|infos| infos.iter().any(|info| writes(info)))
        })
    }
}

/// Whether the descriptor that `fdinfo` describes was opened for writing: its `flags` line is
/// the open flags in octal, whose access mode (the low two bits) is 1 for write-only and 2 for
/// read-write.
fn writes(fdinfo: &Path) -> bool {
    std::fs::read_to_string(fdinfo).is_ok_and(|info| {
        info.lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
            .is_some_and(|flags| flags & 0o3 != 0)
    })
}

/// The program that hands a URL or a file to the desktop's default handler.
pub const OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else {
    "xdg-open"
};

/// Whether a watch failed because the OS's limit on watched folders was reached (Linux answers
/// `ENOSPC` from inotify for that).
pub fn is_watch_limit(error: &notify::Error) -> bool {
    const ENOSPC: i32 = 28;
    match &error.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => cfg!(target_os = "linux") && io.raw_os_error() == Some(ENOSPC),
        _ => false,
    }
}

/// What to tell a person whose folder `root` hit the limit on watched folders.
pub fn watch_limit_message(root: &Path) -> String {
    if cfg!(target_os = "linux") {
        format!(
            "Offload can't watch every folder inside {}: the system limit on watched folders \
             (fs.inotify.max_user_watches) was reached. New files there are still picked up by a \
             rescan every minute. To fix it, run `sudo sysctl fs.inotify.max_user_watches=524288` \
             and keep it after reboot with `echo fs.inotify.max_user_watches=524288 | sudo tee \
             /etc/sysctl.d/90-offload.conf`.",
            root.display()
        )
    } else {
        format!(
            "Offload can't watch every folder inside {}: the system limit on watched files was \
             reached. New files there are still picked up by a rescan every minute. Watch fewer \
             or smaller folders, or turn off subfolders for the largest one.",
            root.display()
        )
    }
}

/// What may help when the file watcher cannot start at all.
pub fn watcher_start_hint() -> &'static str {
    if cfg!(target_os = "linux") {
        "too many programs may be watching files; raising `fs.inotify.max_user_instances` with sysctl can help"
    } else {
        "check that Offload may read the watched folders"
    }
}

/// Waits for the signals that ask the daemon to stop: Ctrl-C and SIGTERM (what `kill` and
/// service managers send).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn inotify_running_out_of_watches_is_the_limit_and_says_how_to_raise_it() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(is_watch_limit(&notify::Error::io(enospc)));
        let message = watch_limit_message(Path::new("/media/downloads"));
        assert!(message.contains("/media/downloads"));
        assert!(message.contains("sysctl fs.inotify.max_user_watches=524288"));
        assert!(message.contains("/etc/sysctl.d/"));
    }

    #[test]
    fn a_second_name_counts_as_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Film.mkv");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(link_count(&file).unwrap(), 1);
        std::fs::hard_link(&file, dir.path().join("seeding.mkv")).unwrap();
        assert_eq!(link_count(&file).unwrap(), 2);
    }

    #[test]
    fn a_positioned_read_leaves_the_cursor_alone() {
        use std::io::{Read, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        let mut two = [0u8; 2];
        assert_eq!(read_at(&file, &mut two, 4).unwrap(), 2);
        assert_eq!(&two, b"45");
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "the cursor stayed at the end of what was written"
        );
    }
}
