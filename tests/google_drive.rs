//! The Google Drive backend against a fake Drive that enforces the resumable-upload rules (see
//! `common/oauth_fake.rs`): the shared conformance suite, resuming a cut-off upload without
//! sending confirmed bytes again, short `308` answers, `503`/rate limits, an expired session, an
//! access token that dies mid-upload, and a video playing through the stream server's proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::cloud::{add_cloud_backend, engine_parts, sign_in};
use common::conformance::{request, Recorder};
use common::oauth_fake::FakeIdentity;
use common::{write_random, Sandbox};
use offload::backends::BackendRecord;
use offload::db::Db;
use offload::oauth::Authorizer;
use offload::secrets::Vault;
use offload::storage::google_drive::{GoogleDrive, CHUNK_MULTIPLE};
use offload::storage::{ErrorKind, StorageBackend};

const CHUNK: u64 = 4 * CHUNK_MULTIPLE;

struct Setup {
    fake: FakeIdentity,
    sandbox: Sandbox,
    db: Db,
    vault: Arc<Vault>,
    record: BackendRecord,
}

impl Setup {
    async fn new() -> Setup {
        let fake = FakeIdentity::start();
        let sandbox = Sandbox::new();
        sandbox.ok(&["profile", "add", "Home"]);
        add_cloud_backend(&sandbox, &fake, "google-drive", None);
        sandbox.ok(&["backend", "default", "Cloud", "--profile", "Home"]);
        let (db, vault, record) = engine_parts(&sandbox);
        sign_in(&db, &vault, &record).await;
        let record = offload::backends::get(&db, record.id).unwrap();
        Setup {
            fake,
            sandbox,
            db,
            vault,
            record,
        }
    }

    /// The backend with 1 MiB chunks, so that every rule is met many times per file.
    fn drive(&self) -> GoogleDrive {
        let (config, _) = self.record.cloud(&self.vault).unwrap();
        GoogleDrive::new(
            &config,
            Authorizer::new(&self.db, &self.vault, &self.record),
        )
        .with_chunk_size(CHUNK)
    }
}

#[tokio::test]
async fn google_drive_passes_the_conformance_suite() {
    let setup = Setup::new().await;
    let scratch = tempfile::tempdir().unwrap();
    common::conformance::run(&setup.drive(), 8 * 1024 * 1024, scratch.path()).await;
}

#[tokio::test]
async fn a_cut_off_upload_resumes_without_sending_confirmed_bytes_again() {
    let setup = Setup::new().await;
    let drive = setup.drive();
    let local = setup.sandbox.path("film.mkv");
    let size = 10 * CHUNK as usize + 12345;
    let bytes = write_random(&local, size);
    let upload = request(&local, "Films/2024/film.mkv", size as u64, None);

    // Stop after three chunks were read.
    let first = Recorder {
        stop_after: Some(3 * CHUNK),
        ..Recorder::default()
    };
    let error = drive.upload(&upload, &first).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Interrupted, "{error}");
    let record = first.resume_record().expect("a resume record");
    let text = record.to_string();
    assert!(
        !text.contains("/upload/session/"),
        "the session URI is sealed: {text}"
    );
    let held = setup.fake.drive_received();
    assert_eq!(held, 2 * CHUNK, "two chunks were confirmed before the stop");

    // The second attempt asks the session where it stands and sends only the rest; two of
    // its chunks are cut short by the server and the missing parts are sent again.
    setup.fake.shorten_next_chunks(2);
    let second = Recorder::default();
    let stored = drive
        .upload(
            &request(&local, "Films/2024/film.mkv", size as u64, Some(record)),
            &second,
        )
        .await
        .unwrap();
    assert!(stored.verified);
    assert_eq!(second.resumed.load(Ordering::SeqCst), held);
    assert_eq!(
        setup.fake.drive_received(),
        size as u64,
        "every byte reached the file exactly once"
    );
    assert_eq!(setup.fake.drive_file("Films/2024/film.mkv").unwrap(), bytes);
}

#[tokio::test]
async fn throttling_and_expiry_lose_nothing() {
    let setup = Setup::new().await;
    let drive = setup.drive();
    let local = setup.sandbox.path("show.mkv");
    let size = 6 * CHUNK as usize + 1;
    let bytes = write_random(&local, size);

    // 503 with Retry-After, then a rate limit: temporary errors that keep the session.
    setup.fake.fail_next_chunks(1);
    let recorder = Recorder::default();
    let upload = request(&local, "show.mkv", size as u64, None);
    let error = drive.upload(&upload, &recorder).await.unwrap_err();
    assert!(error.is_temporary(), "{error}");
    assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(1)));
    setup.fake.rate_limit_next_chunks(1);
    let resume = recorder.resume_record();
    let error = drive
        .upload(&request(&local, "show.mkv", size as u64, resume), &recorder)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited, "{error}");

    // The access token dies mid-upload: one 401, a refresh, and the chunk goes through.
    setup.fake.expire_access_tokens();
    let resume = recorder.resume_record();
    drive
        .upload(&request(&local, "show.mkv", size as u64, resume), &recorder)
        .await
        .unwrap();
    assert_eq!(setup.fake.drive_file("show.mkv").unwrap(), bytes);
    assert_eq!(setup.fake.drive_received(), size as u64);

    // Replacing the file's content; its session expires half way and the upload starts over.
    let changed = write_random(&local, size);
    let stopping = Recorder {
        stop_after: Some(3 * CHUNK),
        ..Recorder::default()
    };
    drive
        .upload(&request(&local, "show.mkv", size as u64, None), &stopping)
        .await
        .unwrap_err();
    setup.fake.expire_sessions();
    drive
        .upload(
            &request(&local, "show.mkv", size as u64, stopping.resume_record()),
            &Recorder::default(),
        )
        .await
        .unwrap();
    assert_eq!(setup.fake.drive_file("show.mkv").unwrap(), changed);
}

/// A profile "Home" watching `watch/` whose default backend is a signed-in Google Drive.
async fn watched_drive() -> (Setup, std::path::PathBuf) {
    let setup = Setup::new().await;
    let watch = setup.sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    setup
        .sandbox
        .ok(&["profile", "watch", "Home", watch.to_str().unwrap()]);
    (setup, watch)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_uploaded_to_drive_plays_through_the_stream_server() {
    let (setup, watch) = watched_drive().await;
    let sandbox = &setup.sandbox;
    let daemon = sandbox.daemon(&[]);
    let video = common::media::make_video(&sandbox.path("Film.mp4"));
    std::fs::rename(sandbox.path("Film.mp4"), watch.join("Film.mp4")).unwrap();
    let sandbox_ref = sandbox;
    tokio::task::block_in_place(|| {
        common::wait_for("the upload", || {
            common::job_states(&sandbox_ref.jobs()) == vec!["done"]
        })
    });
    assert_eq!(setup.fake.drive_file("Film.mp4").unwrap(), video);
    let id = sandbox.media()[0]["item"]["id"].as_i64().unwrap();
    let url = sandbox.ok(&["media", "url", &id.to_string()]);
    tokio::task::block_in_place(|| common::media::assert_plays(url.trim()));
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_upload_resumes_the_session_without_sending_confirmed_chunks_again() {
    let (setup, watch) = watched_drive().await;
    let sandbox = &setup.sandbox;
    let size = 80 * 1024 * 1024;
    let bytes = write_random(&watch.join("film.mkv"), size);
    sandbox.ok(&["limit", "8M"]);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        common::wait_for("some chunks to be confirmed", || {
            sandbox
                .jobs()
                .first()
                .is_some_and(|job| job["bytes_done"].as_u64().unwrap_or(0) >= 20 * 1024 * 1024)
        });
        daemon.kill();
        sandbox.ok(&["limit", "0"]);
        let daemon = sandbox.daemon(&[]);
        common::wait_for("the upload to finish", || {
            common::job_states(&sandbox.jobs()) == vec!["done"]
        });
        assert!(
            daemon
                .log()
                .contains("resuming a Google Drive upload session"),
            "{}",
            daemon.log()
        );
        daemon.stop();
    });
    assert_eq!(
        setup.fake.drive_received(),
        size as u64,
        "no byte was sent into the file twice"
    );
    assert!(setup.fake.drive_file("film.mkv").unwrap() == bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_account_makes_jobs_wait_until_it_is_signed_in_again() {
    let (setup, watch) = watched_drive().await;
    let sandbox = &setup.sandbox;
    setup.fake.revoke_all();
    setup.fake.expire_access_tokens();
    let bytes = write_random(&watch.join("clip.mkv"), 3 * 1024 * 1024);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        common::wait_for("the job to wait for a sign-in", || {
            sandbox.jobs().first().is_some_and(|job| {
                job["state"] == "paused"
                    && job["last_error"]
                        .as_str()
                        .is_some_and(|error| error.contains("offload backend connect Cloud"))
            })
        });
        let listed = sandbox.ok(&["backend", "list"]);
        assert!(listed.contains("DISCONNECTED"), "{listed}");
        daemon.stop();
    });
    // Signing in again (the desktop app's deep link, or `offload backend connect`) queues it.
    sign_in(&setup.db, &setup.vault, &setup.record).await;
    assert_eq!(common::job_states(&sandbox.jobs()), vec!["queued"]);
    tokio::task::block_in_place(|| {
        let daemon = sandbox.daemon(&[]);
        common::wait_for("the upload to finish", || {
            common::job_states(&sandbox.jobs()) == vec!["done"]
        });
        daemon.stop();
    });
    assert!(setup.fake.drive_file("clip.mkv").unwrap() == bytes);
}
