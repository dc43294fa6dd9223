//! Changes a person makes while Offload runs reach its queue without a restart, in the order
//! people make them: a download that finished before its account was signed in waits, then
//! uploads once `offload backend connect` signs it in (and so does the next one); an account
//! revoked and signed in again does the same; a backend's new key, or the folder in the bucket
//! it names, is what the next upload uses; settings changed from another terminal apply at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::cloud::{add_cloud_backend, connect_with_cli};
use common::oauth_fake::FakeIdentity;
use common::s3::{garage, S3Server};
use common::{add_s3_backend, job_states, wait_for, write_random, Sandbox};
use offload::storage::{RemotePath, StorageBackend};

const SIZE: usize = 3 * 1024 * 1024;

/// A sandbox whose profile "Home" watches `watch/`; returns that folder.
fn watching(sandbox: &Sandbox) -> std::path::PathBuf {
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    sandbox.ok(&["profile", "add", "Home", "--watch", watch.to_str().unwrap()]);
    watch
}

/// A download finishing in `watch`: written under a partial name, then renamed into place.
fn finish_download(watch: &Path, name: &str) -> Vec<u8> {
    let partial = watch.join(format!("{name}.part"));
    let bytes = write_random(&partial, SIZE);
    std::fs::rename(&partial, watch.join(name)).unwrap();
    bytes
}

fn wait_until_done(sandbox: &Sandbox, count: usize) {
    wait_for(&format!("{count} verified upload(s)"), || {
        job_states(&sandbox.jobs()) == vec!["done"; count]
    });
}

fn wait_for_sign_in(sandbox: &Sandbox) {
    wait_for("the upload to wait for a sign-in", || {
        sandbox.jobs().first().is_some_and(|job| {
            job["state"] == "paused"
                && job["last_error"]
                    .as_str()
                    .is_some_and(|reason| reason.contains("sign"))
        })
    });
}

fn signed_in(sandbox: &Sandbox) {
    let output = connect_with_cli(sandbox);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A download waits for a sign-in while the daemon runs, and the sign-in then made with the CLI
/// uploads it and the next one. `again`: the account was signed in and then revoked at the
/// provider before the download; otherwise it was never signed in.
fn a_sign_in_reaches_the_running_daemon(kind: &str, again: bool) {
    let fake = FakeIdentity::start();
    let sandbox = Sandbox::new();
    let watch = watching(&sandbox);
    add_cloud_backend(&sandbox, &fake.backend_args(), kind, None);
    if again {
        signed_in(&sandbox);
    }
    let daemon = sandbox.daemon(&[]);
    if again {
        // The person revokes Offload's access at the provider; the next download waits.
        fake.revoke_all();
        fake.expire_access_tokens();
    }

    let first = finish_download(&watch, "first.mkv");
    wait_for_sign_in(&sandbox);
    signed_in(&sandbox);
    wait_until_done(&sandbox, 1);
    assert!(fake.stored_file(kind, "first.mkv").unwrap() == first);

    let second = finish_download(&watch, "second.mkv");
    wait_until_done(&sandbox, 2);
    assert!(fake.stored_file(kind, "second.mkv").unwrap() == second);
    daemon.stop();
}

#[test]
fn google_drive_signed_in_while_the_daemon_runs_uploads_the_waiting_file_and_the_next() {
    a_sign_in_reaches_the_running_daemon("google-drive", false);
}

#[test]
fn onedrive_signed_in_while_the_daemon_runs_uploads_the_waiting_file_and_the_next() {
    a_sign_in_reaches_the_running_daemon("onedrive", false);
}

#[test]
fn google_drive_revoked_and_signed_in_again_while_the_daemon_runs_uploads_again() {
    a_sign_in_reaches_the_running_daemon("google-drive", true);
}

#[test]
fn onedrive_revoked_and_signed_in_again_while_the_daemon_runs_uploads_again() {
    a_sign_in_reaches_the_running_daemon("onedrive", true);
}

/// `offload backend edit Bucket --profile Home ARGS`, the secret (if any) on stdin.
fn edit(sandbox: &Sandbox, args: &[&str], secret: Option<&str>) -> std::process::Output {
    let mut all = vec!["backend", "edit", "Bucket", "--profile", "Home"];
    all.extend_from_slice(args);
    match secret {
        Some(secret) => {
            all.push("--secret-access-key-stdin");
            sandbox.run_with_stdin(&all, secret)
        }
        None => sandbox.run(&all),
    }
}

/// What the bucket holds at `key`, read with the server's current key.
async fn object(server: &S3Server, key: &str) -> Option<Vec<u8>> {
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("copy");
    server
        .backend()
        .download(&RemotePath::parse(key).unwrap(), &local)
        .await
        .ok()
        .map(|_| std::fs::read(&local).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_given_while_the_daemon_runs_is_used_by_the_next_upload() {
    let mut server = garage();
    let sandbox = Sandbox::new();
    let watch = watching(&sandbox);
    let added = add_s3_backend(&sandbox, &server, &server.secret_access_key, &[]);
    assert!(added.status.success(), "{added:?}");
    let daemon = sandbox.daemon(&[]);
    let first = finish_download(&watch, "first.mkv");
    tokio::task::block_in_place(|| wait_until_done(&sandbox, 1));

    // The old key stops working; the person gives Offload the new one.
    server.rotate_key();
    let output = edit(
        &sandbox,
        &["--access-key-id", &server.access_key_id],
        Some(&server.secret_access_key),
    );
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{output:?}");
    assert!(
        said.contains("ok   write"),
        "the new key was tested: {said}"
    );

    let second = finish_download(&watch, "second.mkv");
    tokio::task::block_in_place(|| wait_until_done(&sandbox, 2));
    assert!(object(&server, "second.mkv").await.unwrap() == second);
    assert!(object(&server, "first.mkv").await.unwrap() == first);
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_upload_goes_where_the_backend_points_when_it_starts() {
    let server = garage();
    let sandbox = Sandbox::new();
    let watch = watching(&sandbox);
    let added = add_s3_backend(
        &sandbox,
        &server,
        &server.secret_access_key,
        &["--prefix", "old"],
    );
    assert!(added.status.success(), "{added:?}");
    let daemon = sandbox.daemon(&[]);
    // The daemon opens the backend for a first download, deleted before it could be uploaded:
    // the backend is open, and nothing of it is in the library.
    sandbox.ok(&["pause"]);
    finish_download(&watch, "gone.mkv");
    tokio::task::block_in_place(|| {
        wait_for("the download to be queued", || {
            job_states(&sandbox.jobs()) == vec!["queued"]
        });
        std::fs::remove_file(watch.join("gone.mkv")).unwrap();
        sandbox.ok(&["resume"]);
        wait_for("the deleted download to be dropped", || {
            job_states(&sandbox.jobs()) == vec!["cancelled"]
        });
    });
    sandbox.ok(&["pause"]);
    let film = finish_download(&watch, "film.mkv");
    tokio::task::block_in_place(|| {
        wait_for("the next download to be queued", || {
            job_states(&sandbox.jobs()) == vec!["queued", "cancelled"]
        })
    });

    let output = edit(&sandbox, &["--prefix", "new"], None);
    assert!(output.status.success(), "{output:?}");
    sandbox.ok(&["resume"]);
    tokio::task::block_in_place(|| {
        wait_for("the upload", || {
            job_states(&sandbox.jobs()) == vec!["done", "cancelled"]
        })
    });
    assert!(object(&server, "new/film.mkv").await.unwrap() == film);
    assert_eq!(object(&server, "old/film.mkv").await, None);

    // Now the library holds a file there: moving the backend would orphan it, so it is refused
    // with the reason and what to do instead, and nothing changes.
    let output = edit(&sandbox, &["--prefix", "other"], None);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("1 library item") && said.contains("add a new backend"),
        "{said}"
    );
    let listed = sandbox.ok(&["backend", "list"]);
    assert!(listed.contains("/new"), "{listed}");
    daemon.stop();
}

#[test]
fn settings_changed_from_another_terminal_apply_to_the_running_daemon() {
    let sandbox = Sandbox::with_port_setting();
    let (watch, library) = sandbox.home_profile(&[]);
    let mut daemon = sandbox.daemon(&[]);
    let first = finish_download(&watch, "first.mkv");
    wait_until_done(&sandbox, 1);
    let id = sandbox.media()[0]["item"]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let old_url = sandbox.ok(&["media", "url", &id]).trim().to_owned();
    assert!(
        old_url.contains(&format!(":{}/", sandbox.stream_port)),
        "{old_url}"
    );

    // A new port: the running daemon moves its stream server there, and the URL follows.
    let moved = common::s3::free_port();
    sandbox.ok(&["stream", "--port", &moved.to_string()]);
    wait_for("the stream server on the new port", || {
        std::net::TcpStream::connect(("127.0.0.1", moved)).is_ok()
    });
    let url = sandbox.ok(&["media", "url", &id]).trim().to_owned();
    assert_eq!(
        url,
        old_url.replace(&format!(":{}/", sandbox.stream_port), &format!(":{moved}/"))
    );
    let answer = common::s3::fetch(&url, "GET", &[]);
    assert!(
        answer.status == 200 && answer.body == first,
        "{}",
        answer.status
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", sandbox.stream_port)).is_err(),
        "the old port is let go"
    );

    // Fewer uploads at once and a bandwidth limit: the next download still arrives, whole.
    sandbox.ok(&["settings", "--workers", "1", "--bandwidth-limit", "50M"]);
    let second = finish_download(&watch, "second.mkv");
    wait_until_done(&sandbox, 2);
    assert!(std::fs::read(library.join("second.mkv")).unwrap() == second);
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the same process runs on"
    );
    let log = daemon.log();
    assert_eq!(log.matches("offload is running").count(), 1, "{log}");
    assert!(log.contains("the settings changed"), "{log}");
    daemon.stop();
}
