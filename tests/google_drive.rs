//! The Google Drive backend against a fake Drive that enforces the resumable-upload rules (see
//! `common/oauth_fake.rs`): the shared conformance suite, resuming a cut-off upload without
//! sending confirmed bytes again, short `308` answers, `503`/rate limits, an expired session, an
//! access token that dies mid-upload, and a video playing through the stream server's proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::cloud::Setup;
use common::conformance::{request, Recorder};
use common::write_random;
use offload::storage::google_drive::{GoogleDrive, CHUNK_MULTIPLE};
use offload::storage::{ErrorKind, StorageBackend};

const CHUNK: u64 = 4 * CHUNK_MULTIPLE;

/// The backend with small chunks, so that every rule is met many times per file.
fn drive(setup: &Setup) -> GoogleDrive {
    let (config, _) = setup.record.cloud(&setup.vault).unwrap();
    GoogleDrive::new(&config, setup.access()).with_chunk_size(CHUNK)
}

#[tokio::test]
async fn google_drive_passes_the_conformance_suite() {
    let setup = Setup::new("google-drive").await;
    let scratch = tempfile::tempdir().unwrap();
    common::conformance::run(&drive(&setup), 8 * 1024 * 1024, scratch.path()).await;
}

#[tokio::test]
async fn a_cut_off_upload_resumes_without_sending_confirmed_bytes_again() {
    let setup = Setup::new("google-drive").await;
    let drive = drive(&setup);
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

/// The answer to the last chunk lost, or the process stopped before the job recorded it: the
/// next attempt finds the session finished, so it sends nothing, and still checks the whole
/// file against Drive's MD5 (reading from disk what it did not send this time).
#[tokio::test]
async fn a_session_an_earlier_attempt_finished_completes_without_sending_again() {
    let setup = Setup::new("google-drive").await;
    let drive = drive(&setup);
    let local = setup.sandbox.path("film.mkv");
    let size = 3 * CHUNK as usize + 999;
    let bytes = write_random(&local, size);
    let first = Recorder::default();
    let sent = drive
        .upload(&request(&local, "film.mkv", size as u64, None), &first)
        .await
        .unwrap();
    // The session as the job last saved it: before its last chunk was answered.
    let record = first.resume_record().expect("a resume record");
    let received = setup.fake.drive_received();

    let again = Recorder::default();
    let stored = drive
        .upload(
            &request(&local, "film.mkv", size as u64, Some(record)),
            &again,
        )
        .await
        .unwrap();
    assert!(stored.verified);
    assert_eq!(stored.checksum, sent.checksum, "the whole file was hashed");
    assert_eq!(again.resumed.load(Ordering::SeqCst), size as u64);
    assert_eq!(again.sent.load(Ordering::SeqCst), 0);
    assert_eq!(
        setup.fake.drive_received(),
        received,
        "nothing was sent again"
    );
    assert_eq!(setup.fake.drive_file("film.mkv").unwrap(), bytes);
}

/// Uploads into a folder that does not exist yet, all at once (the queue runs several workers),
/// make one folder: Drive would keep a second folder of the same name and split the files.
#[tokio::test]
async fn uploads_at_once_into_a_new_folder_make_one_folder() {
    let setup = Setup::new("google-drive").await;
    let drive = drive(&setup);
    let files: Vec<_> = (0..6)
        .map(|n| {
            let local = setup.sandbox.path(&format!("e{n}.mkv"));
            let bytes = write_random(&local, 1000 + n);
            let remote = format!("Show/Season 1/e{n}.mkv");
            (
                request(&local, &remote, bytes.len() as u64, None),
                remote,
                bytes,
            )
        })
        .collect();
    let recorders: Vec<Recorder> = files.iter().map(|_| Recorder::default()).collect();
    let uploads = files
        .iter()
        .zip(&recorders)
        .map(|((upload, _, _), recorder)| drive.upload(upload, recorder));
    for stored in futures_util::future::join_all(uploads).await {
        assert!(stored.unwrap().verified);
    }
    assert_eq!(setup.fake.drive_folders_named("Show"), 1);
    assert_eq!(setup.fake.drive_folders_named("Season 1"), 1);
    for (_, remote, bytes) in &files {
        assert_eq!(
            setup.fake.drive_file(remote).as_ref(),
            Some(bytes),
            "{remote}"
        );
    }
}

/// Drive's `userRateLimitExceeded` (no `Retry-After`) told to one upload slows the others on the
/// account too: two backends of one account upload at once, one chunk is refused, and for the
/// pause that follows (a second) no other chunk request reaches Drive, but the one in flight.
/// Both files then arrive whole.
#[tokio::test]
async fn a_rate_limit_told_to_one_upload_slows_every_upload_to_the_account() {
    let setup = Setup::new("google-drive").await;
    let accounts = offload::oauth::Accounts::new(&setup.db, &setup.vault);
    let (config, _) = setup.record.cloud(&setup.vault).unwrap();
    let backend = || {
        GoogleDrive::new(&config, setup.record.access(&setup.vault, &accounts))
            .with_chunk_size(CHUNK)
    };
    let (films, shows) = (backend(), backend());
    let size = 12 * CHUNK as usize;
    let film = setup.sandbox.path("film.mkv");
    let episode = setup.sandbox.path("episode.mkv");
    let film_bytes = write_random(&film, size);
    let episode_bytes = write_random(&episode, size);
    let (first, second) = (Recorder::default(), Recorder::default());
    let film_upload = request(&film, "film.mkv", size as u64, None);
    let episode_upload = request(&episode, "episode.mkv", size as u64, None);
    // The third chunk request is refused, so both uploads are under way.
    let limit = async {
        while setup.fake.drive_chunk_arrivals().len() < 2 {
            tokio::task::yield_now().await;
        }
        setup.fake.rate_limit_next_chunks(1);
    };
    let (film_result, episode_result, ()) = tokio::join!(
        films.upload(&film_upload, &first),
        shows.upload(&episode_upload, &second),
        limit
    );
    let arrivals = setup.fake.drive_chunk_arrivals();
    let told = arrivals
        .iter()
        .find(|(_, limited)| *limited)
        .map(|(at, _)| *at)
        .expect("a chunk was refused");
    let during_pause = arrivals
        .iter()
        .filter(|(at, _)| {
            *at > told && at.duration_since(told) < std::time::Duration::from_millis(900)
        })
        .count();
    assert!(
        during_pause <= 1,
        "{during_pause} chunk requests during the pause: {arrivals:?}"
    );

    // The upload that was told fails temporarily (the queue tries it again); the other finishes.
    for (result, upload, bytes, recorder) in [
        (film_result, &film_upload, &film_bytes, &first),
        (episode_result, &episode_upload, &episode_bytes, &second),
    ] {
        if let Err(error) = result {
            assert_eq!(error.kind, ErrorKind::RateLimited, "{error}");
            let mut again = upload.clone();
            again.resume = recorder.resume_record();
            films.upload(&again, &Recorder::default()).await.unwrap();
        }
        let remote = upload.remote_path.as_str();
        assert_eq!(
            setup.fake.drive_file(remote).as_ref(),
            Some(bytes),
            "{remote}"
        );
    }
}

#[tokio::test]
async fn throttling_and_expiry_lose_nothing() {
    let setup = Setup::new("google-drive").await;
    let drive = drive(&setup);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_video_uploaded_to_drive_plays_through_the_stream_server() {
    common::cloud::check_video_plays("google-drive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_upload_resumes_the_session_without_sending_confirmed_chunks_again() {
    common::cloud::check_kill_9_resumes("google-drive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_account_makes_jobs_wait_until_it_is_signed_in_again() {
    common::cloud::check_revoked_account_waits("google-drive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_computer_finds_what_offload_put_in_drive_and_not_other_apps_files() {
    // `drive.file`: Drive shows Offload only what its own OAuth client created.
    common::cloud::check_a_second_computer_finds_the_uploads("google-drive", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_after_the_first_follow_the_changes_feed() {
    common::cloud::check_scans_follow_the_feed("google-drive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_of_thousands_is_found_page_by_page() {
    common::cloud::check_a_folder_of_thousands_pages_through("google-drive").await;
}

/// Bytes Drive accepted in `window`. A measurement window, not a wait for something: the rate
/// is what is being measured.
fn received_in(setup: &Setup, window: std::time::Duration) -> u64 {
    let before = setup.fake.drive_received();
    std::thread::sleep(window);
    setup.fake.drive_received() - before
}

/// A player streaming a film from Drive through the stream server slows a running upload to the
/// yield limit (512 KiB/s here, from the 8 MiB/s it had), as the bytes Drive receives show; with
/// yielding turned off the upload goes at its pace again and arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_streaming_from_drive_slows_the_uploads_down() {
    let (setup, watch) = Setup::watched("google-drive").await;
    let sandbox = &setup.sandbox;
    tokio::task::block_in_place(|| {
        sandbox.ok(&[
            "backend",
            "edit",
            "Cloud",
            "--profile",
            "Home",
            "--chunk-size",
            "256K",
        ]);
        sandbox.ok(&["settings", "--player-yield-limit", "512K"]);
        sandbox.ok(&["limit", "8M"]);
        common::write_random(&sandbox.path("Trailer.mkv"), 300_000);
        sandbox.upload("Home", &sandbox.path("Trailer.mkv"));
        let id = sandbox.media()[0]["item"]["id"].as_i64().unwrap();
        let url = sandbox
            .ok(&["media", "url", &id.to_string()])
            .trim()
            .to_owned();

        let daemon = sandbox.daemon(&[]);
        let film = common::write_random(&watch.join("Film.mkv"), 48 * 1024 * 1024);
        let film_job = || {
            sandbox
                .jobs()
                .into_iter()
                .find(|job| {
                    job["local_path"]
                        .as_str()
                        .is_some_and(|path| path.ends_with("Film.mkv"))
                })
                .unwrap_or_default()
        };
        common::wait_for("the upload to be under way", || {
            film_job()["bytes_done"].as_u64() > Some(2 * 1024 * 1024)
        });
        let window = std::time::Duration::from_secs(2);
        let alone = received_in(&setup, window);

        // The player reads the trailer through the stream server, which proxies it from Drive.
        let played = common::s3::fetch(&url, "GET", &[]);
        assert_eq!(played.status, 200);
        common::wait_for("uploads to yield", || {
            daemon.log().contains("uploads yield")
        });
        let while_playing = received_in(&setup, window);
        assert!(
            while_playing * 3 < alone,
            "{while_playing} bytes in {window:?} while a player streamed, {alone} before"
        );

        sandbox.ok(&["settings", "--yield-to-players", "off"]);
        common::wait_for("the film once yielding is off", || {
            film_job()["state"] == "done"
        });
        assert_eq!(setup.fake.drive_file("Film.mkv").unwrap(), film);
        daemon.stop();
    });
}
