//! Real-filesystem tests of the folder watcher: real notify, a short quiet
//! period, and the event channel as the only synchronisation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use offload::filter::FileFilter;
use offload::watch::{self, Arrival, WatchEvent, WatchHandle, WatchOptions, WatchSpec};
use tokio::sync::mpsc;
use tokio::time::timeout;

const QUIET: Duration = Duration::from_millis(300);
const PATIENCE: Duration = Duration::from_secs(20);

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn options(quiet: Duration) -> WatchOptions {
    WatchOptions {
        quiet_period: quiet,
        rescan_interval: Duration::from_secs(3600),
    }
}

fn spec(folder_id: i64, root: &Path, recursive: bool, filter: FileFilter) -> WatchSpec {
    WatchSpec {
        folder_id,
        profile_id: 7,
        root: root.to_path_buf(),
        recursive,
        filter,
    }
}

fn media() -> FileFilter {
    FileFilter::default()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn start(
    specs: Vec<WatchSpec>,
    quiet: Duration,
) -> Result<(WatchHandle, mpsc::Receiver<WatchEvent>), watch::WatchError> {
    let (tx, rx) = mpsc::channel(64);
    let handle = watch::start(specs, options(quiet), tx)?;
    Ok((handle, rx))
}

fn name_of(arrival: &Arrival) -> String {
    arrival
        .relative
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/")
}

/// Receives until an arrival whose relative path is `marker`; returns every
/// event seen, marker included. Fails on timeout or a closed channel.
async fn collect_until(
    rx: &mut mpsc::Receiver<WatchEvent>,
    marker: &str,
) -> Result<Vec<WatchEvent>, String> {
    let mut seen = Vec::new();
    loop {
        match timeout(PATIENCE, rx.recv()).await {
            Ok(Some(event)) => {
                let done = matches!(&event, WatchEvent::Arrived(a) if name_of(a) == marker);
                seen.push(event);
                if done {
                    return Ok(seen);
                }
            }
            Ok(None) => return Err(format!("channel closed before {marker}; saw {seen:?}")),
            Err(_) => return Err(format!("timed out waiting for {marker}; saw {seen:?}")),
        }
    }
}

fn arrived_names(events: &[WatchEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Arrived(a) => Some(name_of(a)),
            WatchEvent::Problem { .. } => None,
        })
        .collect()
}

fn write_file(path: &Path, bytes: usize) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, vec![b'x'; bytes])
}

fn write_old_file(path: &Path, bytes: usize) -> std::io::Result<()> {
    write_file(path, bytes)?;
    let file = fs::File::options().write(true).open(path)?;
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
}

#[tokio::test]
async fn slow_partial_download_is_reported_once_after_rename() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (handle, mut rx) = start(vec![spec(1, dir.path(), true, media())], QUIET)?;

    let part = dir.path().join("name.mkv.part");
    let mut file = fs::File::create(&part)?;
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..6 {
        file.write_all(&chunk)?;
        file.flush()?;
        // Pacing the writer like a network download, not synchronisation.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(file);
    fs::rename(&part, dir.path().join("name.mkv"))?;

    let events = collect_until(&mut rx, "name.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["name.mkv"]);
    match events.last() {
        Some(WatchEvent::Arrived(a)) => {
            assert_eq!(a.size, 6 * 64 * 1024);
            assert_eq!(a.folder_id, 1);
            assert_eq!(a.profile_id, 7);
            assert!(a.path.is_absolute());
            assert!(a.path.ends_with("name.mkv"));
        }
        other => panic!("expected arrival, got {other:?}"),
    }

    write_file(&dir.path().join("marker.mkv"), 10)?;
    let events = collect_until(&mut rx, "marker.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["marker.mkv"]);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn growing_file_is_held_back_until_it_stops_changing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let quiet = Duration::from_secs(1);
    let (handle, mut rx) = start(vec![spec(1, dir.path(), true, media())], quiet)?;

    let path = dir.path().join("growing.mkv");
    let mut file = fs::File::create(&path)?;
    for _ in 0..12 {
        file.write_all(&[b'g'; 1000])?;
        file.flush()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(file);

    let events = collect_until(&mut rx, "growing.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["growing.mkv"]);
    match events.last() {
        Some(WatchEvent::Arrived(a)) => assert_eq!(a.size, 12_000, "reported before it finished"),
        other => panic!("expected arrival, got {other:?}"),
    }
    write_file(&dir.path().join("marker.mkv"), 1)?;
    let events = collect_until(&mut rx, "marker.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["marker.mkv"]);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn unfinished_downloads_and_companions_are_held_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Accept every name, so only the partial-download rules can hold files back.
    let everything = FileFilter::new(&strings(&["*"]), &[])?;
    let (handle, mut rx) = start(vec![spec(2, dir.path(), true, everything)], QUIET)?;

    write_file(&dir.path().join("big.mkv.crdownload"), 5000)?;
    write_file(&dir.path().join("~lock.mkv"), 10)?;
    write_file(&dir.path().join(".hidden.mkv"), 10)?;
    write_file(&dir.path().join("torrent.mkv.!qB"), 10)?;
    write_file(&dir.path().join("x.mkv.aria2"), 10)?;
    write_file(&dir.path().join("x.mkv"), 4000)?;
    write_file(&dir.path().join("marker1.mkv"), 10)?;

    let events = collect_until(&mut rx, "marker1.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["marker1.mkv"]);

    fs::remove_file(dir.path().join("x.mkv.aria2"))?;
    let events = collect_until(&mut rx, "x.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["x.mkv"]);
    match events.last() {
        Some(WatchEvent::Arrived(a)) => assert_eq!(a.size, 4000),
        other => panic!("expected arrival, got {other:?}"),
    }

    write_file(&dir.path().join("marker2.mkv"), 10)?;
    let events = collect_until(&mut rx, "marker2.mkv").await?;
    assert_eq!(arrived_names(&events), vec!["marker2.mkv"]);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn thousand_files_at_once_all_arrive_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (handle, mut rx) = start(vec![spec(3, dir.path(), true, media())], QUIET)?;

    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for i in 0..1000 {
            fs::write(root.join(format!("f{i:04}.mkv")), format!("file {i}"))?;
        }
        Ok(())
    })
    .await??;

    let mut counts: HashMap<String, usize> = HashMap::new();
    while counts.len() < 1000 {
        match timeout(PATIENCE, rx.recv()).await {
            Ok(Some(WatchEvent::Arrived(a))) => *counts.entry(name_of(&a)).or_default() += 1,
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            Ok(None) => panic!("channel closed"),
            Err(_) => panic!("only {} of 1000 files arrived", counts.len()),
        }
    }
    write_file(&dir.path().join("marker.mkv"), 1)?;
    for name in arrived_names(&collect_until(&mut rx, "marker.mkv").await?) {
        *counts.entry(name).or_default() += 1;
    }
    assert_eq!(counts.remove("marker.mkv"), Some(1));
    assert_eq!(counts.len(), 1000);
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "reported more than once: {repeated:?}");
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn startup_scan_reports_existing_media_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_old_file(&dir.path().join("old.mkv"), 100)?;
    write_file(&dir.path().join("sub/show.mp4"), 200)?;
    write_old_file(&dir.path().join("notes.txt"), 10)?;
    write_old_file(&dir.path().join("half.mkv.part"), 10)?;
    let (handle, mut rx) = start(vec![spec(4, dir.path(), true, media())], QUIET)?;

    write_file(&dir.path().join("zz-marker.mkv"), 1)?;
    let events = collect_until(&mut rx, "zz-marker.mkv").await?;
    let mut names = arrived_names(&events);
    names.sort();
    assert_eq!(names, vec!["old.mkv", "sub/show.mp4", "zz-marker.mkv"]);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn startup_scan_reports_old_files_without_quiet_wait() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_old_file(&dir.path().join("old.mkv"), 100)?;
    // A quiet period far longer than the deadline below: only the mtime shortcut
    // can deliver the file in time.
    let (handle, mut rx) = start(
        vec![spec(4, dir.path(), true, media())],
        Duration::from_secs(120),
    )?;
    match timeout(Duration::from_secs(15), rx.recv()).await {
        Ok(Some(WatchEvent::Arrived(a))) => {
            assert_eq!(name_of(&a), "old.mkv");
            assert_eq!(a.size, 100);
        }
        other => panic!("expected old.mkv promptly, got {other:?}"),
    }
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn include_and_exclude_patterns_apply() -> TestResult {
    let dir = tempfile::tempdir()?;
    for name in [
        "a.mkv",
        "a.mp4",
        "a-sample.mkv",
        "docs/readme.txt",
        "notes.txt",
    ] {
        write_file(&dir.path().join(name), 10)?;
    }
    let filter = FileFilter::new(&strings(&["*.mkv", "docs/*.txt"]), &strings(&["*sample*"]))?;
    let (handle, mut rx) = start(vec![spec(5, dir.path(), true, filter)], QUIET)?;
    write_file(&dir.path().join("later-sample.mkv"), 10)?;
    write_file(&dir.path().join("zz-marker.mkv"), 10)?;

    let events = collect_until(&mut rx, "zz-marker.mkv").await?;
    let mut names = arrived_names(&events);
    names.sort();
    assert_eq!(names, vec!["a.mkv", "docs/readme.txt", "zz-marker.mkv"]);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn non_recursive_spec_ignores_subfolders() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_old_file(&dir.path().join("sub/inner.mkv"), 10)?;
    write_old_file(&dir.path().join("top.mkv"), 10)?;
    let (handle, mut rx) = start(vec![spec(6, dir.path(), false, media())], QUIET)?;

    write_file(&dir.path().join("sub/new.mkv"), 10)?;
    write_file(&dir.path().join("newsub/deeper.mkv"), 10)?;
    write_file(&dir.path().join("zz-marker.mkv"), 10)?;
    let events = collect_until(&mut rx, "zz-marker.mkv").await?;
    let mut names = arrived_names(&events);
    names.sort();
    assert_eq!(names, vec!["top.mkv", "zz-marker.mkv"]);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn directory_moved_in_reports_its_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    write_old_file(&outside.path().join("season/e01.mkv"), 11)?;
    write_old_file(&outside.path().join("season/e02.mkv"), 12)?;
    let (handle, mut rx) = start(vec![spec(8, dir.path(), true, media())], QUIET)?;

    fs::rename(outside.path().join("season"), dir.path().join("season"))?;
    write_file(&dir.path().join("zz-marker.mkv"), 10)?;
    let mut names = arrived_names(&collect_until(&mut rx, "zz-marker.mkv").await?);
    // The marker may overtake the walk of the moved folder; wait for the rest.
    while !(names.iter().any(|n| n == "season/e01.mkv")
        && names.iter().any(|n| n == "season/e02.mkv"))
    {
        match timeout(PATIENCE, rx.recv()).await {
            Ok(Some(WatchEvent::Arrived(a))) => names.push(name_of(&a)),
            other => panic!("moved-in files missing ({names:?}), got {other:?}"),
        }
    }
    names.sort();
    assert_eq!(
        names,
        vec!["season/e01.mkv", "season/e02.mkv", "zz-marker.mkv"]
    );
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn missing_root_is_a_problem_not_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing: PathBuf = dir.path().join("not-here");
    let good = dir.path().join("good");
    fs::create_dir(&good)?;
    let (handle, mut rx) = start(
        vec![
            spec(10, &missing, true, media()),
            spec(11, &good, true, media()),
        ],
        QUIET,
    )?;
    write_file(&good.join("ok.mkv"), 10)?;
    let events = collect_until(&mut rx, "ok.mkv").await?;
    let problems: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Problem { folder_id, message } => Some((*folder_id, message.clone())),
            WatchEvent::Arrived(_) => None,
        })
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, 10);
    assert!(problems[0].1.contains("not-here"), "{}", problems[0].1);
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn dropping_the_receiver_ends_the_watcher() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (handle, rx) = start(vec![spec(12, dir.path(), true, media())], QUIET)?;
    drop(rx);
    timeout(PATIENCE, handle.stop()).await?;
    Ok(())
}
