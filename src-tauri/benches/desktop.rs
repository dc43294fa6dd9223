//! What the tray app costs while it waits, and how fast it notices a download: run with
//! `scripts/bench desktop` (or `cargo bench -p offload-desktop --bench desktop`). The release
//! app runs on a private Xvfb display and D-Bus session, as in the end-to-end tests.
//!
//! 1. Idle memory (RSS and PSS summed over the app and its WebKit processes) and idle CPU over a
//!    minute, with the window closed (a later launch: the app starts in the tray) and open.
//! 2. From a file finishing in a watched folder to the tray reading "Uploading", minus the
//!    quiet period every file waits out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::{wait_until, Desktop};

/// How long the app settles (start-up scan, first paint) before it is measured.
const SETTLE: Duration = Duration::from_secs(15);
const CPU_WINDOW: Duration = Duration::from_secs(60);
const QUIET_PERIOD: Duration = Duration::from_secs(1);

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        println!("desktop: bench");
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    if !filter.is_empty() && !filter.iter().any(|name| "desktop".contains(name.as_str())) {
        return;
    }
    let desktop = Desktop::new();
    desktop
        .engine()
        .db()
        .set_setting("app.welcomed", "1")
        .expect("skip the welcome");
    let log = desktop.path("app.log");
    let app = desktop.launch(&[], &log);
    let pid = app.0.id();
    wait_until("the app to start", || {
        read(&log).contains("offload is running")
    });

    std::thread::sleep(SETTLE);
    let closed = Usage::measure(pid);
    let (first_seen, quiet) = time_to_tray(&desktop, &log);

    // A second launch opens the window of the running app.
    let mut again = std::process::Command::new(harness::APP);
    desktop.env(&mut again);
    again.status().expect("second launch");
    wait_until("the window's web process", || {
        processes(pid)
            .iter()
            .any(|pid| name(*pid).contains("WebKitWeb"))
    });
    std::thread::sleep(SETTLE);
    let open = Usage::measure(pid);

    println!();
    println!(
        "| offload-desktop, idle | processes | RSS | PSS | CPU over {} s |",
        CPU_WINDOW.as_secs()
    );
    println!("|---|---|---|---|---|");
    for (label, usage) in [
        ("window closed (in the tray)", &closed),
        ("window open", &open),
    ] {
        println!(
            "| {label} | {} | {:.1} MiB | {:.1} MiB | {:.2}% of one core |",
            usage.processes,
            usage.rss_kib as f64 / 1024.0,
            usage.pss_kib as f64 / 1024.0,
            usage.cpu_percent
        );
    }
    println!();
    println!(
        "| file finished → tray says \"Uploading\" | {:.0} ms (of which the {} s quiet period) | {:.0} ms after the quiet period |",
        first_seen.as_secs_f64() * 1000.0,
        quiet.as_secs(),
        first_seen.saturating_sub(quiet).as_secs_f64() * 1000.0
    );
    drop(app);
}

struct Usage {
    processes: usize,
    rss_kib: u64,
    pss_kib: u64,
    cpu_percent: f64,
}

impl Usage {
    /// Memory now, summed over `pid` and its descendants, and their CPU over [`CPU_WINDOW`].
    fn measure(pid: u32) -> Usage {
        let before = cpu_ticks(pid);
        let started = Instant::now();
        std::thread::sleep(CPU_WINDOW);
        let ticks = cpu_ticks(pid).saturating_sub(before);
        let tick_rate = 100.0; // USER_HZ on Linux
        let cpu_percent = ticks as f64 / tick_rate / started.elapsed().as_secs_f64() * 100.0;
        let all = processes(pid);
        let field = |pid: u32, name: &str| -> u64 {
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .unwrap_or_default()
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Usage {
            processes: all.len(),
            rss_kib: all.iter().map(|pid| field(*pid, "Rss:")).sum(),
            pss_kib: all.iter().map(|pid| field(*pid, "Pss:")).sum(),
            cpu_percent,
        }
    }
}

/// `pid` and every process below it.
fn processes(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| Some((child, stat(child)?.get(1)?.parse().ok()?)))
        .collect();
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        index += 1;
    }
    tree
}

/// The fields of /proc/PID/stat after the command name: state, ppid, … (utime and stime are 11
/// and 12).
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 2..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

fn cpu_ticks(pid: u32) -> u64 {
    processes(pid)
        .into_iter()
        .filter_map(stat)
        .map(|fields| {
            let ticks = |index: usize| {
                fields
                    .get(index)
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            ticks(11) + ticks(12)
        })
        .sum()
}

fn name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Drops a 64 MiB file (uploaded at a 16 MiB/s limit, so it stays "uploading" for seconds) into a
/// watched folder and times the tray's first "Uploading" line.
fn time_to_tray(desktop: &Desktop, log: &Path) -> (Duration, Duration) {
    let engine = desktop.engine();
    engine.set_bandwidth_limit(16 * 1024 * 1024).expect("limit");
    let profile = offload::profiles::by_name(engine.db(), offload::engine::DEFAULT_PROFILE)
        .expect("the default profile");
    let watched = offload::profiles::watch_folders(engine.db(), Some(profile.id)).expect("folders");
    let folder = &watched.first().expect("a watched folder").path;
    let partial = folder.join("Bench.Film.2025.mkv.part");
    std::fs::write(&partial, vec![7u8; 64 * 1024 * 1024]).expect("write");
    let already = read(log).matches("tray redrawn").count();
    std::fs::rename(&partial, folder.join("Bench.Film.2025.mkv")).expect("finish the download");
    let finished = Instant::now();
    wait_until("the tray to show the upload", || {
        read(log)
            .lines()
            .filter(|line| line.contains("tray redrawn"))
            .skip(already)
            .any(|line| line.contains("Uploading"))
    });
    let seen = finished.elapsed();
    wait_until("the upload to finish", || {
        offload::queue::list(engine.db(), &[offload::queue::JobState::Done])
            .is_ok_and(|done| !done.is_empty())
    });
    engine.set_bandwidth_limit(0).expect("no limit");
    (seen, QUIET_PERIOD)
}
