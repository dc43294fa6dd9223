//! Windows. Linted for `x86_64-pc-windows-gnu` and run under Wine by the test command
//! (`scripts/check-windows`); not yet run on Windows itself (see README's platform section).

use std::fs::File;
use std::os::windows::fs::FileExt;
use std::path::Path;

/// Reads into `buffer` from `offset`. Windows' positioned read moves the file's cursor, which no
/// caller relies on: every read names its offset.
pub fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    file.seek_read(buffer, offset)
}

/// How many names the file at `path` has: above one, another program (a torrent client seeding
/// it, a media server's hardlinked library) reaches the same bytes under another name.
pub fn link_count(path: &Path) -> std::io::Result<u64> {
    let file = File::open(path)?;
    Ok(winapi_util::file::information(&file)?.number_of_links())
}

/// Who has files open for writing. Windows lists nothing: each file is asked by itself.
pub struct Writers;

impl Writers {
    pub fn now() -> Writers {
        Writers
    }

    /// Whether another process has the file at `path` open for writing: opening it while
    /// sharing only reading (and deletion) is refused with a sharing violation exactly then (or
    /// when another process shares nothing at all, which says the same: it is not done with
    /// the file).
    pub fn writing(&self, path: &Path) -> bool {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ: u32 = 0x1;
        const FILE_SHARE_DELETE: u32 = 0x4;
        const ERROR_SHARING_VIOLATION: i32 = 32;
        File::options()
            .read(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_DELETE)
            .open(path)
            .is_err_and(|error| error.raw_os_error() == Some(ERROR_SHARING_VIOLATION))
    }
}

/// The program that hands a URL or a file to the desktop's default handler.
pub const OPENER: &str = "explorer";

/// Windows' folder watching (ReadDirectoryChangesW) has no limit on watched folders.
pub fn is_watch_limit(error: &notify::Error) -> bool {
    matches!(error.kind, notify::ErrorKind::MaxFilesWatch)
}

pub fn watch_limit_message(root: &Path) -> String {
    format!(
        "Offload can't watch every folder inside {}: the system refused to watch more. New files \
         there are still picked up by a rescan every minute. Watch fewer or smaller folders.",
        root.display()
    )
}

pub fn watcher_start_hint() -> &'static str {
    "check that Offload may read the watched folders"
}

/// Waits for Ctrl-C, or for the console window being closed.
pub async fn shutdown_signal() {
    match tokio::signal::windows::ctrl_close() {
        Ok(mut close) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = close.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
