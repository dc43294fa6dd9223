//! Opening an address with the desktop's own handler: the browser for a sign-in page, the
//! default media player for a stream URL or playlist.

use std::process::{Command, Stdio};

/// Hands `target` (a URL or a file) to the desktop. Returns once the opener has started; whether
/// a browser or player then shows it is the desktop's business.
pub fn open(target: &str) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    Command::new(opener)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}
