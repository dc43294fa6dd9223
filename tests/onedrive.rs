//! The OneDrive backend against a fake Microsoft Graph that enforces the upload-session rules
//! (see `common/oauth_fake.rs`): the shared conformance suite, resuming a cut-off upload from
//! `nextExpectedRanges`, `503` with `Retry-After`, an expired session, an access token that dies
//! mid-upload, no `Authorization` on upload URLs, and the daemon-level checks shared with Google
//! Drive: a video plays through the stream server's redirect, `kill -9` resumes, a revoked
//! account makes jobs wait.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::cloud::Setup;
use common::conformance::{request, Recorder};
use common::write_random;
use offload::storage::onedrive::{OneDrive, FRAGMENT_MULTIPLE, SIMPLE_UPLOAD_LIMIT};
use offload::storage::{ErrorKind, StorageBackend};

const FRAGMENT: u64 = 2 * FRAGMENT_MULTIPLE;

/// The backend with small fragments, so that every rule is met many times per file.
fn onedrive(setup: &Setup) -> OneDrive {
    let (config, _) = setup.record.cloud(&setup.vault).unwrap();
    OneDrive::new(&config, setup.access()).with_fragment_size(FRAGMENT)
}

#[tokio::test]
async fn onedrive_passes_the_conformance_suite() {
    let setup = Setup::new("onedrive").await;
    let scratch = tempfile::tempdir().unwrap();
    common::conformance::run(
        &onedrive(&setup),
        SIMPLE_UPLOAD_LIMIT as usize,
        scratch.path(),
    )
    .await;
    assert_eq!(setup.fake.fragments_with_auth_header(), 0);
}

#[tokio::test]
async fn a_cut_off_session_resumes_from_next_expected_ranges() {
    let setup = Setup::new("onedrive").await;
    let backend = onedrive(&setup);
    let local = setup.sandbox.path("film.mkv");
    let size = 12 * FRAGMENT as usize + 777;
    let bytes = write_random(&local, size);

    let first = Recorder {
        stop_after: Some(4 * FRAGMENT),
        ..Recorder::default()
    };
    let error = backend
        .upload(
            &request(&local, "Films/film.mkv", size as u64, None),
            &first,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Interrupted, "{error}");
    let record = first.resume_record().expect("a resume record");
    assert!(
        !record.to_string().contains("/upload/graph/"),
        "the upload URL is sealed"
    );
    let held = setup.fake.graph_received();
    assert_eq!(held, 3 * FRAGMENT);

    let second = Recorder::default();
    let stored = backend
        .upload(
            &request(&local, "Films/film.mkv", size as u64, Some(record)),
            &second,
        )
        .await
        .unwrap();
    assert!(stored.verified);
    assert_eq!(second.resumed.load(Ordering::SeqCst), held);
    assert_eq!(
        setup.fake.graph_received(),
        size as u64,
        "no byte sent twice"
    );
    assert!(setup.fake.graph_file("Films/film.mkv").unwrap() == bytes);
}

#[tokio::test]
async fn throttling_expiry_and_a_dead_token_lose_nothing() {
    let setup = Setup::new("onedrive").await;
    let backend = onedrive(&setup);
    let local = setup.sandbox.path("show.mkv");
    let size = 8 * FRAGMENT as usize + 5;
    let bytes = write_random(&local, size);
    let upload = |resume| request(&local, "show.mkv", size as u64, resume);

    setup.fake.fail_next_fragments(1);
    let recorder = Recorder::default();
    let error = backend.upload(&upload(None), &recorder).await.unwrap_err();
    assert!(error.is_temporary(), "{error}");
    assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(1)));

    // The session expires: the upload starts over in a new one and still arrives whole.
    setup.fake.expire_graph_sessions();
    // And the access token dies: the session URL needs none, the new session gets a fresh one.
    setup.fake.expire_access_tokens();
    backend
        .upload(&upload(recorder.resume_record()), &Recorder::default())
        .await
        .unwrap();
    assert!(setup.fake.graph_file("show.mkv").unwrap() == bytes);
    assert_eq!(setup.fake.fragments_with_auth_header(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_uploaded_to_onedrive_plays_through_the_stream_server() {
    common::cloud::check_video_plays("onedrive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_upload_resumes_the_session_without_sending_confirmed_fragments_again() {
    common::cloud::check_kill_9_resumes("onedrive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_microsoft_account_makes_jobs_wait_until_it_is_signed_in_again() {
    common::cloud::check_revoked_account_waits("onedrive").await;
}

#[test]
fn a_fragment_size_off_the_320_kib_grid_is_refused_with_the_rule() {
    let sandbox = common::Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    for (size, accepted) in [("300K", false), ("60M", false), ("640K", true)] {
        let output = sandbox.run(&[
            "backend",
            "add",
            &format!("Cloud{size}"),
            "--profile",
            "Home",
            "--type",
            "onedrive",
            "--client-id",
            "app",
            "--chunk-size",
            size,
        ]);
        assert_eq!(output.status.success(), accepted, "{size}: {output:?}");
        if !accepted {
            assert_eq!(output.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&output.stderr).contains("multiples of 320 KiB"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_computer_finds_what_is_in_onedrive_whoever_put_it_there() {
    // `Files.ReadWrite`: Graph shows every file of the drive, other apps' too.
    common::cloud::check_a_second_computer_finds_the_uploads("onedrive", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_after_the_first_follow_the_delta_feed() {
    common::cloud::check_scans_follow_the_feed("onedrive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_of_thousands_is_found_page_by_page() {
    common::cloud::check_a_folder_of_thousands_pages_through("onedrive").await;
}

/// Each upload leaves one record file in `.offload` (the SHA-256 a second computer reads), and
/// removing the item through Offload removes its record with it.
#[tokio::test(flavor = "multi_thread")]
async fn removing_an_item_removes_its_record() {
    let (setup, watch) = common::cloud::Setup::watched("onedrive").await;
    let sandbox = &setup.sandbox;
    common::write_random(&watch.join("Film.mkv"), 2000);
    common::write_random(&watch.join("Other.mkv"), 2100);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&["--library-scan", "0"]);
        common::wait_for("the uploads", || {
            common::job_states(&sandbox.jobs()) == vec!["done", "done"]
        });
        daemon.stop();
    });
    assert_eq!(setup.fake.graph_names_in(".offload").len(), 2);
    let film = tokio::task::block_in_place(|| sandbox.media())
        .into_iter()
        .find(|row| row["title"] == "Film")
        .map(|row| row["item"]["id"].as_i64().unwrap())
        .unwrap();
    tokio::task::block_in_place(|| sandbox.ok(&["media", "remove", &film.to_string()]));
    assert_eq!(setup.fake.stored_file("onedrive", "Film.mkv"), None);
    assert!(setup.fake.stored_file("onedrive", "Other.mkv").is_some());
    assert_eq!(setup.fake.graph_names_in(".offload").len(), 1);
}
