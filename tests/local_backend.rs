//! The local-folder backend against the real filesystem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::conformance::{request, Recorder};

use std::sync::atomic::Ordering;
use std::time::Duration;

use offload::storage::local::{LocalBackend, LocalConfig};
use offload::storage::{ErrorKind, RemotePath, StorageBackend, StreamTarget};

#[tokio::test]
async fn files_of_every_size_arrive_byte_identical() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    for (name, len) in [
        ("empty.mkv", 0usize),
        ("one.mkv", 1),
        ("big/hundred.mkv", 100 * 1024 * 1024),
    ] {
        let source = sandbox.path(&format!("src/{name}"));
        let bytes = common::write_random(&source, len);
        let recorder = Recorder::default();
        let stored = backend
            .upload(
                &request(&source, &format!("Films/{name}"), len as u64, None),
                &recorder,
            )
            .await
            .unwrap();
        assert_eq!(stored.size, len as u64);
        assert_eq!(
            recorder.sent.load(Ordering::SeqCst),
            len as u64,
            "progress must add up to the size"
        );
        let target = sandbox.path(&format!("library/Films/{name}"));
        assert!(
            std::fs::read(&target).unwrap() == bytes,
            "{name} differs after upload"
        );
        let meta = backend
            .stat(&RemotePath::parse(&format!("Films/{name}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(meta.size, len as u64);
    }
    // Nothing but the three files: no temporary files left behind.
    assert_eq!(common::files_under(&sandbox.path("library")).len(), 3);
}

#[tokio::test]
async fn an_interrupted_copy_leaves_nothing_under_the_final_name() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    let source = sandbox.path("src/movie.mkv");
    common::write_random(&source, 8 * 1024 * 1024);
    let recorder = Recorder {
        stop_after: Some(3 * 1024 * 1024),
        ..Recorder::default()
    };
    let error = backend
        .upload(
            &request(&source, "movie.mkv", 8 * 1024 * 1024, None),
            &recorder,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Interrupted);
    assert!(
        !sandbox.path("library/movie.mkv").exists(),
        "a half copy must never carry the final name"
    );
    assert!(
        common::files_under(&sandbox.path("library")).is_empty(),
        "the temporary copy must be removed"
    );
    assert!(
        recorder.resume.lock().unwrap().is_some(),
        "the temporary name is recorded before copying starts"
    );
}

#[tokio::test]
async fn a_temporary_file_left_by_a_killed_attempt_is_removed_on_the_next() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    let source = sandbox.path("src/movie.mkv");
    let bytes = common::write_random(&source, 4096);
    let stale = sandbox.path("library/.offload-deadbeef.tmp");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"half a file").unwrap();
    let mut first = request(&source, "movie.mkv", 4096, None);
    first.resume = Some(serde_json::json!({ "temp": stale }));
    backend.upload(&first, &Recorder::default()).await.unwrap();
    assert!(!stale.exists());
    assert_eq!(
        std::fs::read(sandbox.path("library/movie.mkv")).unwrap(),
        bytes
    );
}

#[tokio::test]
async fn a_file_that_changes_size_while_copied_is_refused() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    let source = sandbox.path("src/movie.mkv");
    common::write_random(&source, 2048);
    let error = backend
        .upload(
            &request(&source, "movie.mkv", 1024, None),
            &Recorder::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::SourceChanged);
    assert!(!sandbox.path("library/movie.mkv").exists());
}

#[tokio::test]
async fn names_the_folder_cannot_hold_are_a_clear_error() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    let source = sandbox.path("src/a.mkv");
    common::write_random(&source, 10);
    let long = format!("{}.mkv", "x".repeat(300));
    let error = backend
        .upload(&request(&source, &long, 10, None), &Recorder::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidName);
    assert!(error.to_string().contains("255 bytes"), "{error}");
    for bad in [
        "../escape.mkv",
        "/etc/passwd",
        "a/../../b",
        "C:/x.mkv",
        "nul\0byte",
    ] {
        assert!(RemotePath::parse(bad).is_err(), "{bad:?} must be rejected");
    }
}

#[tokio::test]
async fn delete_exists_download_and_stream() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    let source = sandbox.path("src/a.mkv");
    let bytes = common::write_random(&source, 5000);
    let remote = RemotePath::parse("Show/Season 1/a.mkv").unwrap();
    backend
        .upload(
            &request(&source, remote.as_str(), 5000, None),
            &Recorder::default(),
        )
        .await
        .unwrap();
    assert!(backend.exists(&remote).await.unwrap());
    match backend
        .stream_target(&remote, Duration::from_secs(60))
        .await
        .unwrap()
    {
        StreamTarget::LocalFile(path) => assert_eq!(std::fs::read(path).unwrap(), bytes),
        other => panic!("expected a local file, got {other:?}"),
    }
    let copy = sandbox.path("download.mkv");
    assert_eq!(backend.download(&remote, &copy).await.unwrap(), 5000);
    assert_eq!(std::fs::read(&copy).unwrap(), bytes);
    backend.delete(&remote).await.unwrap();
    assert!(!backend.exists(&remote).await.unwrap());
    backend.delete(&remote).await.unwrap();
    assert!(
        !sandbox.path("library/Show").exists(),
        "empty folders the upload created are tidied"
    );
    assert!(sandbox.path("library").exists());
}

#[tokio::test]
async fn connection_test_says_what_is_wrong() {
    let sandbox = common::Sandbox::new();
    let good = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    assert!(good.test_connection().await.is_ok());
    std::fs::write(sandbox.path("a-file"), b"x").unwrap();
    let bad = LocalBackend::new(&LocalConfig {
        path: sandbox.path("a-file/library"),
    });
    let report = bad.test_connection().await;
    assert!(!report.is_ok());
    assert!(report.to_string().contains("cannot create"), "{report}");
}

#[tokio::test]
async fn the_local_backend_passes_the_conformance_suite() {
    let sandbox = common::Sandbox::new();
    let backend = LocalBackend::new(&LocalConfig {
        path: sandbox.path("library"),
    });
    std::fs::create_dir_all(sandbox.path("scratch")).unwrap();
    common::conformance::run(&backend, 8 * 1024 * 1024, &sandbox.path("scratch")).await;
}
