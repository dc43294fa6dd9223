//! The S3 backend against real S3 servers on loopback: Garage (checks SigV4) and moto (an
//! independent implementation), with a fault-injecting proxy between Offload and the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::add_s3_backend;
use common::conformance::{request, sha256_file, Recorder};
use common::proxy::FaultProxy;
use common::s3::{garage, moto, S3Server};
use common::{job_states, wait_for, Sandbox};
use offload::storage::s3::{S3Backend, DEFAULT_MULTIPART_THRESHOLD};
use offload::storage::{ErrorKind, RemotePath, StorageBackend};
use zeroize::Zeroizing;

const MIB: u64 = 1024 * 1024;

async fn conformance(server: &S3Server) {
    let scratch = tempfile::tempdir().unwrap();
    common::conformance::run(
        &server.backend(),
        DEFAULT_MULTIPART_THRESHOLD as usize,
        scratch.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_passes_the_conformance_suite() {
    conformance(&garage()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_passes_the_conformance_suite() {
    conformance(&moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_half_way_resumes_with_only_the_missing_parts() {
    let server = garage();
    let proxy = FaultProxy::start(server.port());
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("big.mkv");
    let size = 60 * MIB;
    common::write_random(&local, size as usize);

    // Through the proxy, one part at a time, and the connection cut after 25 MiB.
    let mut through_proxy = server.config_for(&proxy.endpoint());
    through_proxy.concurrency = 1;
    proxy.budget.store(25 * MIB as i64, Ordering::SeqCst);
    let first = Recorder::default();
    let error = server
        .backend_with(&through_proxy)
        .upload(&request(&local, "big.mkv", size, None), &first)
        .await
        .expect_err("the cut-off upload must fail");
    assert!(
        error.is_temporary(),
        "a dropped connection is worth retrying: {error}"
    );
    let record = first
        .resume_record()
        .expect("the upload id and finished parts were saved");
    let saved_parts = record["parts"].as_array().unwrap().len();
    assert_eq!(saved_parts, 2, "two 10 MiB parts fit in 25 MiB: {record}");
    let backend = server.backend();
    assert!(
        !backend
            .exists(&RemotePath::parse("big.mkv").unwrap())
            .await
            .unwrap(),
        "no object before completion"
    );

    // Directly, as after a restart: the same upload id, and only the missing parts are sent.
    let second = Recorder::default();
    backend
        .upload(
            &request(&local, "big.mkv", size, Some(record.clone())),
            &second,
        )
        .await
        .unwrap();
    assert_eq!(
        second.resumed.load(Ordering::SeqCst),
        20 * MIB,
        "the two finished parts are not sent again"
    );
    assert_eq!(
        second.sent.load(Ordering::SeqCst),
        40 * MIB,
        "four parts of 10 MiB are sent"
    );
    let final_record = second.resume_record().unwrap();
    assert_eq!(
        final_record["upload_id"], record["upload_id"],
        "the same multipart upload continues"
    );

    let copy = scratch.path().join("copy.mkv");
    backend
        .download(&RemotePath::parse("big.mkv").unwrap(), &copy)
        .await
        .unwrap();
    assert_eq!(sha256_file(&copy), sha256_file(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_multipart_upload_vanished_starts_over_cleanly() {
    let server = garage();
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("a.mkv");
    common::write_random(&local, (12 * MIB) as usize);
    let first = Recorder {
        stop_after: Some(1),
        ..Recorder::default()
    };
    let backend = server.backend();
    backend
        .upload(&request(&local, "a.mkv", 12 * MIB, None), &first)
        .await
        .expect_err("stopped on purpose");
    let record = first.resume_record().unwrap();
    // A lifecycle rule (or a cancel elsewhere) aborts the upload on the server.
    backend.abandon(&record).await.unwrap();
    let second = Recorder::default();
    backend
        .upload(
            &request(&local, "a.mkv", 12 * MIB, Some(record.clone())),
            &second,
        )
        .await
        .unwrap();
    assert_ne!(
        second.resume_record().unwrap()["upload_id"],
        record["upload_id"]
    );
    assert_eq!(second.sent.load(Ordering::SeqCst), 12 * MIB);
    assert_eq!(second.resumed.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let server = garage();
    let proxy = FaultProxy::start(server.port());
    let scratch = tempfile::tempdir().unwrap();
    for (name, size) in [("small.mkv", MIB), ("large.mkv", 12 * MIB)] {
        // A new client each time: its connections are new, so the proxy meets them.
        let backend = server.backend_with(&server.config_for(&proxy.endpoint()));
        let local = scratch.path().join(name);
        common::write_random(&local, size as usize);
        proxy.fail_next.store(2, Ordering::SeqCst);
        backend
            .upload(&request(&local, name, size, None), &Recorder::default())
            .await
            .unwrap();
        assert_eq!(
            proxy.fail_next.load(Ordering::SeqCst),
            0,
            "both injected 503s were served"
        );
        let meta = backend
            .stat(&RemotePath::parse(name).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(meta.size, size);
    }
    assert_eq!(proxy.failed.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misconfiguration_has_its_own_clear_error() {
    let server = garage();
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("a.mkv");
    common::write_random(&local, 1000);
    let upload = |backend: S3Backend| {
        let local = local.clone();
        async move {
            let error = backend
                .upload(&request(&local, "a.mkv", 1000, None), &Recorder::default())
                .await
                .unwrap_err();
            common::assert_sentence(&error.to_string());
            error
        }
    };

    let wrong_secret = S3Backend::new(&server.config(), &Zeroizing::new("not-the-secret".into()));
    let error = upload(wrong_secret).await;
    assert_eq!(error.kind, ErrorKind::Unauthenticated, "{error}");
    assert!(
        error.message.contains("secret access key is wrong"),
        "{error}"
    );

    let mut missing = server.config();
    missing.bucket = "no-such-bucket".into();
    let error = upload(server.backend_with(&missing)).await;
    assert!(error.message.contains("bucket does not exist"), "{error}");

    let closed = common::s3::free_port();
    let unreachable =
        server.backend_with(&server.config_for(&format!("http://127.0.0.1:{closed}")));
    let error = upload(unreachable).await;
    assert!(error.is_temporary(), "{error}");
    assert!(error.message.contains("refused the connection"), "{error}");

    // TLS spoken to a plain-HTTP server.
    let tls =
        server.backend_with(&server.config_for(&format!("https://127.0.0.1:{}", server.port())));
    let error = upload(tls).await;
    assert!(error.message.contains("TLS"), "{error}");

    let report = S3Backend::new(&server.config(), &Zeroizing::new("not-the-secret".into()))
        .test_connection()
        .await;
    assert!(!report.is_ok());
    assert!(
        report.to_string().contains("secret access key is wrong"),
        "{report}"
    );
    assert!(server.backend().test_connection().await.is_ok());
}

#[test]
fn the_command_line_tests_before_saving_and_never_stores_the_secret_in_the_clear() {
    let server = garage();
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let wrong = add_s3_backend(&sandbox, &server, "wrong-secret", &[]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("secret access key is wrong"));
    assert_eq!(
        sandbox.json(&["backend", "list"]).as_array().unwrap().len(),
        1,
        "a failing backend is not saved"
    );

    let added = add_s3_backend(&sandbox, &server, &server.secret_access_key, &[]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let test = sandbox.ok(&["backend", "test", "Bucket", "--profile", "Home"]);
    assert!(test.contains("ok   write"), "{test}");

    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        bytes.extend(
            std::fs::read(format!(
                "{}/offload.db{suffix}",
                sandbox.data_dir().display()
            ))
            .unwrap_or_default(),
        );
    }
    let secret = server.secret_access_key.as_bytes();
    assert!(
        !bytes.windows(secret.len()).any(|window| window == secret),
        "the secret access key is in the database file"
    );
}

#[test]
fn kill_9_during_a_multipart_upload_resumes_with_the_same_upload() {
    let server = garage();
    let sandbox = Sandbox::new();
    let (watch, _) = sandbox.home_profile(&[]);
    assert!(
        add_s3_backend(&sandbox, &server, &server.secret_access_key, &[])
            .status
            .success()
    );
    let size = 80 * MIB as usize;
    let bytes = common::write_random(&watch.join("film.mkv"), size);
    sandbox.ok(&["limit", "8M"]);
    let daemon = sandbox.daemon(&[]);
    wait_for("some parts to be acknowledged", || {
        sandbox
            .jobs()
            .first()
            .is_some_and(|job| job["bytes_done"].as_u64().unwrap_or(0) >= 20 * MIB)
    });
    daemon.kill();

    sandbox.ok(&["limit", "0"]);
    let daemon = sandbox.daemon(&[]);
    wait_for("the upload to finish", || {
        job_states(&sandbox.jobs()) == vec!["done"]
    });
    let log = daemon.log();
    let resumed_line = log
        .lines()
        .find(|line| line.contains("resuming a multipart upload"))
        .expect("the upload was resumed, not restarted");
    let parts: u64 = resumed_line
        .split("parts=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(parts >= 2, "{resumed_line}");
    daemon.stop();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let copy = sandbox.path("copy.mkv");
    runtime
        .block_on(
            server
                .backend()
                .download(&RemotePath::parse("film.mkv").unwrap(), &copy),
        )
        .unwrap();
    assert!(
        std::fs::read(&copy).unwrap() == bytes,
        "the object differs from the file"
    );
    assert_eq!(sandbox.media().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_aborts_only_offloads_own_abandoned_uploads() {
    let server = garage();
    let backend = server.backend();
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("a.mkv");
    common::write_random(&local, (12 * MIB) as usize);
    // Three unfinished multipart uploads, each stopped after its first part.
    let mut records = Vec::new();
    for name in ["kept.mkv", "abandoned.mkv", "someone-elses.mkv"] {
        let recorder = Recorder {
            stop_after: Some(1),
            ..Recorder::default()
        };
        backend
            .upload(&request(&local, name, 12 * MIB, None), &recorder)
            .await
            .expect_err("stopped on purpose");
        records.push(recorder.resume_record().unwrap());
    }
    let ours = [
        RemotePath::parse("kept.mkv").unwrap(),
        RemotePath::parse("abandoned.mkv").unwrap(),
    ];
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    assert_eq!(
        backend
            .sweep_abandoned(&records[..1], &ours, earlier)
            .await
            .unwrap(),
        0,
        "uploads started after the sweep began are left alone"
    );
    let swept = backend
        .sweep_abandoned(&records[..1], &ours, later)
        .await
        .unwrap();
    assert_eq!(swept, 1);
    // The kept and the foreign uploads still continue; the abandoned one starts over.
    for (name, record, continues) in [
        ("kept.mkv", &records[0], true),
        ("abandoned.mkv", &records[1], false),
        ("someone-elses.mkv", &records[2], true),
    ] {
        let recorder = Recorder::default();
        backend
            .upload(
                &request(&local, name, 12 * MIB, Some(record.clone())),
                &recorder,
            )
            .await
            .unwrap();
        assert_eq!(
            recorder.resumed.load(Ordering::SeqCst) > 0,
            continues,
            "{name}"
        );
    }
}

#[test]
fn an_upload_with_refused_credentials_fails_with_the_reason_and_is_not_done() {
    let server = garage();
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    assert!(
        add_s3_backend(&sandbox, &server, "wrong-secret", &["--skip-test"])
            .status
            .success()
    );
    common::write_random(&sandbox.path("in/a.mkv"), 1000);
    let output = sandbox.run(&[
        "upload",
        sandbox.path("in/a.mkv").to_str().unwrap(),
        "--profile",
        "Home",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let jobs = sandbox.jobs();
    assert_eq!(job_states(&jobs), vec!["failed"]);
    assert!(
        jobs[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("secret access key is wrong"),
        "{jobs:#?}"
    );
    assert!(sandbox.media().is_empty());
    assert!(sandbox.path("in/a.mkv").exists());
}

/// Garage really checks `x-amz-checksum-crc32c`, which is what lets its quirk entry skip
/// Content-MD5 for single PUTs (moto, for one, accepts a wrong one: it stays on Content-MD5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_rejects_a_wrong_crc32c_so_offload_may_rely_on_it() {
    let server = garage();
    assert!(
        offload::storage::s3::Provider::Garage
            .quirks()
            .validates_crc32c
    );
    assert!(
        !offload::storage::s3::Provider::Other
            .quirks()
            .validates_crc32c
    );
    let client = server.client();
    let wrong = client
        .put_object()
        .bucket(&server.bucket)
        .key("crc.mkv")
        .checksum_crc32_c("AAAAAA==")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"hello"))
        .send()
        .await;
    let error = wrong.expect_err("a wrong CRC32C must be refused");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&error),
        Some("InvalidDigest")
    );
}

/// Parts go up with CRC32C where the service checks it (Garage does, for parts as for single
/// PUTs), and the object Offload assembles carries the composite CRC32C the server computed
/// from the parts it checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_checks_the_crc32c_of_each_part_offload_sends() {
    let server = garage();
    let client = server.client();
    let created = client
        .create_multipart_upload()
        .bucket(&server.bucket)
        .key("parts.mkv")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .send()
        .await
        .unwrap();
    let wrong = client
        .upload_part()
        .bucket(&server.bucket)
        .key("parts.mkv")
        .upload_id(created.upload_id().unwrap())
        .part_number(1)
        .checksum_crc32_c("AAAAAA==")
        .body(aws_sdk_s3::primitives::ByteStream::from(vec![7u8; 1024]))
        .send()
        .await;
    let error = wrong.expect_err("a part with a wrong CRC32C must be refused");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&error),
        Some("InvalidDigest")
    );

    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("big.mkv");
    let size = 25 * MIB;
    common::write_random(&local, size as usize);
    let recorder = Recorder::default();
    server
        .backend()
        .upload(&request(&local, "big.mkv", size, None), &recorder)
        .await
        .unwrap();
    let record = recorder.resume_record().unwrap();
    assert_eq!(record["check"], "crc32c", "{record}");
    let head = client
        .head_object()
        .bucket(&server.bucket)
        .key("big.mkv")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let composite = head
        .checksum_crc32_c()
        .expect("the object has the CRC32C of its parts");
    assert!(composite.ends_with("-3"), "three parts: {composite}");
}
