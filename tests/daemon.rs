//! `offload run` end to end: watched folders, the persistent queue, crashes and policies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{job_states, wait_for, Sandbox};

fn done_count(sandbox: &Sandbox) -> usize {
    job_states(&sandbox.jobs())
        .iter()
        .filter(|state| *state == "done")
        .count()
}

#[test]
fn a_partial_download_is_uploaded_once_after_it_is_renamed() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);

    let partial = watch.join("Film.2019.mkv.part");
    let mut file = std::fs::File::create(&partial).unwrap();
    let mut expected = Vec::new();
    for _ in 0..5 {
        let chunk = common::random_bytes(256 * 1024);
        file.write_all(&chunk).unwrap();
        file.flush().unwrap();
        expected.extend(chunk);
        // A slow download: each pause is longer than the quiet period.
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(file);
    assert!(
        sandbox.jobs().is_empty(),
        "nothing may be queued while the download carries .part"
    );
    std::fs::rename(&partial, watch.join("Film.2019.mkv")).unwrap();

    wait_for("the upload to finish", || done_count(&sandbox) == 1);
    // A later marker proves the watcher has moved on without queueing the file again.
    common::write_random(&watch.join("marker.mkv"), 10);
    wait_for("the marker", || done_count(&sandbox) == 2);
    let jobs = sandbox.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    assert_eq!(
        std::fs::read(library.join("Film.2019.mkv")).unwrap(),
        expected
    );
    let media = sandbox.media();
    assert_eq!(media.len(), 2);
    assert!(
        media.iter().any(|item| item["title"] == "Film 2019"),
        "{media:#?}"
    );
    daemon.stop();
}

#[test]
fn unfinished_downloads_are_never_uploaded() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    common::write_random(&watch.join("big.mkv.crdownload"), 1000);
    common::write_random(&watch.join("torrent.mkv"), 1000);
    common::write_random(&watch.join("torrent.mkv.aria2"), 100);
    common::write_random(&watch.join("notes.txt"), 100);
    common::write_random(&watch.join("marker.mkv"), 10);
    wait_for("the marker", || done_count(&sandbox) == 1);
    // And a second marker after another quiet period, for the slowest of the others to be seen.
    common::write_random(&watch.join("marker2.mkv"), 10);
    wait_for("the second marker", || done_count(&sandbox) == 2);
    assert_eq!(sandbox.jobs().len(), 2);
    assert!(!library.join("big.mkv.crdownload").exists());
    assert!(!library.join("torrent.mkv").exists());

    std::fs::remove_file(watch.join("torrent.mkv.aria2")).unwrap();
    wait_for("the torrent once its control file is gone", || {
        library.join("torrent.mkv").exists()
    });
    daemon.stop();
}

#[test]
fn a_thousand_files_dropped_at_once_all_arrive() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&["--workers", "4"]);
    let staging = sandbox.path("staging");
    let mut originals = Vec::new();
    for i in 0..1000 {
        let name = format!("batch/clip-{i:04}.mp4");
        originals.push((
            name.clone(),
            common::write_random(&staging.join(&name), 64 + i),
        ));
    }
    // One rename drops all thousand into the watched folder at the same instant.
    std::fs::rename(staging.join("batch"), watch.join("batch")).unwrap();
    wait_for("a thousand uploads", || done_count(&sandbox) == 1000);
    for (name, bytes) in &originals {
        assert_eq!(&std::fs::read(library.join(name)).unwrap(), bytes, "{name}");
    }
    assert_eq!(sandbox.jobs().len(), 1000, "no file is queued twice");
    assert_eq!(sandbox.media().len(), 1000);
    daemon.stop();
}

#[test]
fn files_that_arrived_while_stopped_are_found_at_start() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let first = common::write_random(&watch.join("Show.Name.S01E01.mkv"), 3000);
    let second = common::write_random(&watch.join("sub/Show Name 1x02.mkv"), 3000);
    let daemon = sandbox.daemon(&[]);
    wait_for("both uploads", || done_count(&sandbox) == 2);
    assert_eq!(
        std::fs::read(library.join("Show.Name.S01E01.mkv")).unwrap(),
        first
    );
    assert_eq!(
        std::fs::read(library.join("sub/Show Name 1x02.mkv")).unwrap(),
        second
    );
    let media = sandbox.media();
    let episodes: Vec<_> = media
        .iter()
        .filter(|item| item["series"] == "Show Name")
        .collect();
    assert_eq!(
        episodes.len(),
        2,
        "both files are episodes of one series: {media:#?}"
    );
    daemon.stop();

    // A restart finds the same files again and uploads nothing twice.
    let daemon = sandbox.daemon(&[]);
    common::write_random(&watch.join("marker.mkv"), 10);
    wait_for("the marker", || done_count(&sandbox) == 3);
    assert_eq!(sandbox.jobs().len(), 3);
    daemon.stop();
}

/// Waits until the job for `name` is running and has saved some progress.
fn wait_until_uploading(sandbox: &Sandbox, name: &str) {
    wait_for("the upload to be under way", || {
        sandbox.jobs().iter().any(|job| {
            job["local_path"]
                .as_str()
                .is_some_and(|path| path.ends_with(name))
                && job["state"] == "running"
                && job["bytes_done"].as_u64().unwrap_or(0) > 0
        })
    });
}

#[test]
fn kill_9_in_the_middle_of_an_upload_loses_nothing_and_duplicates_nothing() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let big = 100 * 1024 * 1024;
    let bytes = common::write_random(&watch.join("big.mkv"), big);
    sandbox.ok(&["limit", "10M"]);
    let daemon = sandbox.daemon(&[]);
    wait_until_uploading(&sandbox, "big.mkv");
    daemon.kill();

    assert!(
        !library.join("big.mkv").exists(),
        "a killed upload leaves nothing under the final name"
    );
    let jobs = sandbox.jobs();
    assert_eq!(
        job_states(&jobs),
        vec!["running"],
        "the job is still recorded as the dead process left it"
    );

    sandbox.ok(&["limit", "0"]);
    let daemon = sandbox.daemon(&[]);
    wait_for("the upload to finish after the restart", || {
        done_count(&sandbox) == 1
    });
    let jobs = sandbox.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(std::fs::read(library.join("big.mkv")).unwrap(), bytes);
    assert_eq!(sandbox.media().len(), 1);
    assert_eq!(
        common::files_under(&library).len(),
        1,
        "no temporary file survives"
    );
    daemon.stop();
}

#[test]
fn a_file_changed_during_its_upload_is_uploaded_again_with_the_new_content() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let path = watch.join("changing.mkv");
    common::write_random(&path, 40 * 1024 * 1024);
    // Slow enough that the change lands while the first upload runs, however loaded the machine
    // (at 8 MB/s, with the other tests of this file beside it, it had sometimes finished first);
    // the limit is lifted as soon as the file has changed.
    sandbox.ok(&["limit", "1M"]);
    let daemon = sandbox.daemon(&[]);
    wait_until_uploading(&sandbox, "changing.mkv");
    let replacement = common::write_random(&path, 30 * 1024 * 1024);
    sandbox.ok(&["limit", "0"]);
    wait_for("the new content to be uploaded", || {
        done_count(&sandbox) == 1
            && std::fs::read(library.join("changing.mkv")).is_ok_and(|bytes| bytes == replacement)
    });
    let jobs = sandbox.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["size"].as_u64(), Some(30 * 1024 * 1024));
    assert_eq!(sandbox.media().len(), 1);
    daemon.stop();
}

#[test]
fn after_upload_delete_only_removes_verified_files() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&["--after-upload", "delete"]);
    // A second profile whose library cannot be created: its uploads fail.
    let broken_watch = sandbox.path("broken-watch");
    std::fs::create_dir_all(&broken_watch).unwrap();
    std::fs::write(sandbox.path("not-a-folder"), b"x").unwrap();
    sandbox.ok(&[
        "profile",
        "add",
        "Broken",
        "--watch",
        broken_watch.to_str().unwrap(),
        "--after-upload",
        "delete",
    ]);
    let broken_library = sandbox.path("not-a-folder/library");
    sandbox.local_backend("Broken", "Lib", &broken_library);

    let daemon = sandbox.daemon(&[]);
    let bytes = common::write_random(&watch.join("a.mkv"), 70_000);
    common::write_random(&broken_watch.join("b.mkv"), 70_000);
    wait_for(
        "the good upload to finish and its file to be deleted",
        || !watch.join("a.mkv").exists(),
    );
    assert_eq!(
        std::fs::read(library.join("a.mkv")).unwrap(),
        bytes,
        "deleted only after the copy was verified"
    );
    wait_for("the broken upload to fail", || {
        job_states(&sandbox.jobs()).contains(&"failed".to_owned())
    });
    assert!(
        broken_watch.join("b.mkv").exists(),
        "a file whose upload failed is never deleted"
    );
    let failed = sandbox
        .jobs()
        .into_iter()
        .find(|job| job["state"] == "failed")
        .unwrap();
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("local upload"),
        "{failed:#?}"
    );
    daemon.stop();
}

#[test]
fn pause_resume_and_cancel_from_another_process() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    common::write_random(&watch.join("slow.mkv"), 30 * 1024 * 1024);
    sandbox.ok(&["limit", "4M"]);
    let daemon = sandbox.daemon(&[]);
    wait_until_uploading(&sandbox, "slow.mkv");
    let id = sandbox.jobs()[0]["id"].as_i64().unwrap().to_string();

    sandbox.ok(&["pause", &id]);
    wait_for("the job to be paused", || {
        job_states(&sandbox.jobs()) == vec!["paused"]
    });
    sandbox.ok(&["limit", "0"]);
    sandbox.ok(&["resume", &id]);
    wait_for("the job to finish", || done_count(&sandbox) == 1);
    assert!(library.join("slow.mkv").exists());

    common::write_random(&watch.join("second.mkv"), 30 * 1024 * 1024);
    sandbox.ok(&["limit", "4M"]);
    wait_until_uploading(&sandbox, "second.mkv");
    let second = sandbox
        .jobs()
        .into_iter()
        .find(|job| job["state"] == "running")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    sandbox.ok(&["cancel", &second.to_string()]);
    wait_for("the job to be cancelled", || {
        job_states(&sandbox.jobs()).contains(&"cancelled".to_owned())
    });
    assert!(!library.join("second.mkv").exists());
    // The cancel is written at once; the worker lets go at its next checkpoint and tidies up.
    wait_for("the cancelled upload's temporary file to go", || {
        common::files_under(&library).len() == 1
    });
    assert!(watch.join("second.mkv").exists());
    daemon.stop();
}

#[test]
fn a_file_deleted_before_its_upload_is_dropped_with_the_reason() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    sandbox.ok(&["pause"]);
    let daemon = sandbox.daemon(&[]);
    common::write_random(&watch.join("gone.mkv"), 1000);
    wait_for("the file to be queued", || {
        job_states(&sandbox.jobs()) == vec!["queued"]
    });
    std::fs::remove_file(watch.join("gone.mkv")).unwrap();
    sandbox.ok(&["resume"]);
    wait_for("the job to be dropped", || {
        job_states(&sandbox.jobs()) == vec!["cancelled"]
    });
    let job = &sandbox.jobs()[0];
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("deleted before it was uploaded"),
        "{job:#?}"
    );
    assert!(common::files_under(&library).is_empty());
    assert!(
        daemon.log().contains("deleted before it was uploaded"),
        "the reason is logged"
    );
    daemon.stop();
}

#[test]
fn a_folder_added_while_the_daemon_runs_is_watched_at_once() {
    let sandbox = Sandbox::new();
    let (_, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let extra = sandbox.path("extra");
    std::fs::create_dir_all(&extra).unwrap();
    sandbox.ok(&["profile", "watch", "Home", extra.to_str().unwrap()]);
    wait_for("the daemon to watch the new folder", || {
        daemon.log().contains("watched folders changed")
    });
    let bytes = common::write_random(&extra.join("late.mkv"), 4096);
    wait_for("the upload from the new folder", || {
        done_count(&sandbox) == 1
    });
    assert_eq!(std::fs::read(library.join("late.mkv")).unwrap(), bytes);
    daemon.stop();
}

#[test]
fn pause_and_resume_before_the_worker_notices_uploads_once() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let bytes = common::write_random(&watch.join("quick.mkv"), 30 * 1024 * 1024);
    sandbox.ok(&["limit", "4M"]);
    let daemon = sandbox.daemon(&[]);
    wait_until_uploading(&sandbox, "quick.mkv");
    let id = sandbox.jobs()[0]["id"].as_i64().unwrap().to_string();
    // Both land within one checkpoint interval: the worker may never see the pause.
    sandbox.ok(&["pause", &id]);
    sandbox.ok(&["resume", &id]);
    sandbox.ok(&["limit", "0"]);
    wait_for("the upload to finish", || done_count(&sandbox) == 1);
    // A marker after it proves the daemon has moved on, with nothing else running.
    common::write_random(&watch.join("marker.mkv"), 10);
    wait_for("the marker", || done_count(&sandbox) == 2);
    assert_eq!(
        daemon.log().matches("upload verified job=1 ").count(),
        1,
        "the file was uploaded twice:\n{}",
        daemon.log()
    );
    assert_eq!(std::fs::read(library.join("quick.mkv")).unwrap(), bytes);
    assert_eq!(
        common::files_under(&library).len(),
        2,
        "no second copy or temporary file"
    );
    daemon.stop();
}
