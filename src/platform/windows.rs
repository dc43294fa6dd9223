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
