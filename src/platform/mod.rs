//! Everything that differs between operating systems, behind one small interface with an
//! implementation per OS: `unix.rs` (Linux and macOS, which differ only in a few lines there) and
//! `windows.rs`. Nothing outside this module may use `std::os::*` or name an OS in a `cfg`
//! (`scripts/check-layers` fails the test command when something does).
//!
//! What is here: positioned reads (the stream server serves ranges with them), opening a URL
//! with the desktop's handler, the limits of the OS's file watching and how to raise them, the
//! signals that stop the daemon, where the data, downloads and videos folders are, and whether a
//! file has other hard links or another process is still writing it. Needing
//! nothing here: file locks (`std::fs::File::lock` is one call on every OS) and making a rename
//! durable (the local backend fsyncs the folder where the OS lets a folder be opened).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Hands `target` (a URL or a file) to the desktop: a browser for a sign-in page, the default
/// player for a stream URL. Returns once the opener has started.
pub fn open(target: &str) -> std::io::Result<()> {
    Command::new(OPENER)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

/// The program `name` (`ffmpeg`, `ffprobe`) on the `PATH`, with the OS's executable suffix.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(&file))
        .find(|candidate| candidate.is_file())
}

/// The platform's data folder for Offload: `~/.local/share/offload` on Linux,
/// `~/Library/Application Support/app.Offload.offload` on macOS, `%APPDATA%\Offload\offload\data`
/// on Windows.
pub fn data_dir() -> PathBuf {
    directories::ProjectDirs::from("app", "Offload", "offload")
        .map(|dirs| dirs.data_dir().to_owned())
        .unwrap_or_else(|| PathBuf::from(".offload"))
}

/// Where the user's downloads land: the platform's Downloads folder, else `~/Downloads`.
pub fn downloads_dir() -> Option<PathBuf> {
    directories::UserDirs::new()
        .and_then(|dirs| dirs.download_dir().map(PathBuf::from))
        .or_else(|| directories::BaseDirs::new().map(|dirs| dirs.home_dir().join("Downloads")))
}

/// The user's videos folder (`~/Videos`, `~/Movies` on macOS), if the platform names one.
pub fn videos_dir() -> Option<PathBuf> {
    directories::UserDirs::new().and_then(|dirs| dirs.video_dir().map(PathBuf::from))
}
