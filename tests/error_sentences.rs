//! Every error a person sees is a sentence: what went wrong and what to check, never the `Debug`
//! text of an HTTP stack's error. One test per class of failure, each through the real `offload`
//! command a person runs: a refused connection, a name that does not resolve, TLS spoken to a
//! plain server and a certificate this computer does not trust, a clock 30 days off (the real
//! binary under libfaketime against Garage, which refuses the request), and an error code Offload
//! has no sentence of its own for. S3, Google Drive, OneDrive and their sign-in service alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};

use common::cloud::{add_cloud_backend, connect_with_cli};
use common::oauth_fake::FakeIdentity;
use common::s3::{free_port, garage};
use common::{add_s3_backend, assert_sentence, s3_backend_args, wait_for, write_random, Sandbox};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `offload backend add` of an S3 backend at `endpoint`, whose test before saving must fail with
/// `expected` in a sentence.
fn s3_add_fails_with(endpoint: &str, expected: &str) -> String {
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    let output = sandbox.run_with_stdin(
        &s3_backend_args("minio", endpoint, "media", "key"),
        "secret",
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains(expected), "{expected:?} not in:\n{said}");
    assert_sentence(&said);
    said
}

#[test]
fn an_s3_endpoint_that_refuses_connections() {
    let port = free_port();
    s3_add_fails_with(
        &format!("http://127.0.0.1:{port}"),
        &format!("127.0.0.1:{port} refused the connection: is the server running"),
    );
}

#[test]
fn an_s3_endpoint_whose_name_does_not_resolve() {
    s3_add_fails_with(
        "http://offload-test.invalid:9000",
        "the name offload-test.invalid:9000 does not resolve",
    );
}

#[test]
fn tls_spoken_to_a_plain_http_server() {
    let server = garage();
    s3_add_fails_with(
        &format!("https://127.0.0.1:{}", server.port()),
        "the secure (TLS) connection to",
    );
}

/// `openssl s_server` with a certificate it made itself, as a NAS's MinIO often has.
struct SelfSigned {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_signed_server() -> SelfSigned {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("openssl s_server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    SelfSigned {
        child,
        port,
        _dir: dir,
    }
}

#[test]
fn an_s3_server_with_a_self_signed_certificate() {
    let server = self_signed_server();
    s3_add_fails_with(
        &format!("https://127.0.0.1:{}", server.port),
        "TLS certificate is not accepted (it is self-signed or from an authority this computer does not trust)",
    );
}

/// An S3 endpoint that answers every request with an error code Offload has no sentence for.
fn answers_every_request_with(status: &'static str, body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut request_body = vec![0u8; length];
                let _ = reader.read_exact(&mut request_body);
                let date = httpdate::fmt_http_date(std::time::SystemTime::now());
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nDate: {date}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            });
        }
    });
    port
}

#[test]
fn an_s3_error_code_offload_has_no_words_for_is_said_with_the_servers_words() {
    let port = answers_every_request_with(
        "403 Forbidden",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccountProblem</Code>\
         <Message>There is a problem with your AWS account that prevents the operation from completing successfully.</Message>\
         <RequestId>4442587FB7D0A2F9</RequestId></Error>",
    );
    s3_add_fails_with(
        &format!("http://127.0.0.1:{port}"),
        "it answered 403 AccountProblem: There is a problem with your AWS account",
    );
}

#[test]
fn a_clock_30_days_behind_is_named_whatever_the_server_calls_it() {
    let server = garage();
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    let added = add_s3_backend(&sandbox, &server, &server.secret_access_key, &[]);
    assert!(added.status.success(), "{added:?}");
    // The real binary, its clock set 30 days back by libfaketime (Debian's faketime package):
    // Garage refuses its requests as too old.
    let mut command = Command::new("faketime");
    let offload = sandbox.offload();
    for (name, value) in offload.get_envs() {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    let output = command
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .args(["-f", "-30d"])
        .arg(offload.get_program())
        .args(["backend", "test", "Bucket", "--profile", "Home"])
        .stdin(Stdio::null())
        .output()
        .expect("faketime (scripts/test installs Debian's faketime package)");
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("this computer's clock is 30 days behind the server's: set the clock"),
        "{said}"
    );
    assert_sentence(&said);
}

#[test]
fn an_upload_to_a_refused_endpoint_fails_with_a_sentence_as_its_reason() {
    let sandbox = Sandbox::new();
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    sandbox.ok(&["profile", "add", "Home", "--watch", watch.to_str().unwrap()]);
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut args = s3_backend_args("garage", &endpoint, "media", "key");
    args.push("--skip-test");
    let added = sandbox.run_with_stdin(&args, "secret");
    assert!(added.status.success(), "{added:?}");
    let daemon = sandbox.daemon(&["--max-attempts", "1"]);
    write_random(&watch.join("film.mkv"), 1000);
    wait_for("the upload to fail", || {
        sandbox
            .jobs()
            .first()
            .is_some_and(|job| job["state"] == "failed")
    });
    let reason = sandbox.jobs()[0]["last_error"].as_str().unwrap().to_owned();
    assert!(reason.contains("refused the connection"), "{reason}");
    assert_sentence(&reason);
    let listed = sandbox.ok(&["jobs"]);
    assert!(listed.contains("refused the connection"), "{listed}");
    assert_sentence(&listed);
    assert_sentence(&common::log_for_people(&daemon.log()));
    daemon.stop();
}

/// A signed-in cloud backend whose addresses are then changed with `backend edit`; `backend
/// test` must fail with `expected` in a sentence.
fn cloud_test_fails_with(kind: &str, edits: &[&str], expire: bool, expected: &str) {
    let fake = FakeIdentity::start();
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    add_cloud_backend(&sandbox, &fake.backend_args(), kind, None);
    assert!(connect_with_cli(&sandbox).status.success());
    let mut args = vec!["backend", "edit", "Cloud", "--profile", "Home"];
    args.extend_from_slice(edits);
    sandbox.ok(&args);
    if expire {
        fake.expire_access_tokens();
    }
    let output = sandbox.run(&["backend", "test", "Cloud", "--profile", "Home"]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains(expected), "{expected:?} not in:\n{said}");
    assert_sentence(&said);
}

#[test]
fn cloud_apis_that_refuse_connections_or_do_not_resolve() {
    for kind in ["google-drive", "onedrive"] {
        let port = free_port();
        let closed = format!("http://127.0.0.1:{port}");
        cloud_test_fails_with(
            kind,
            &["--api-base", &closed],
            false,
            &format!("127.0.0.1:{port} refused the connection"),
        );
        cloud_test_fails_with(
            kind,
            &["--api-base", "http://offload-test.invalid"],
            false,
            "the name offload-test.invalid does not resolve",
        );
    }
}

#[test]
fn a_sign_in_service_that_cannot_be_reached_when_a_token_needs_refreshing() {
    for (kind, provider) in [("google-drive", "Google"), ("onedrive", "Microsoft")] {
        let port = free_port();
        let closed = format!("http://127.0.0.1:{port}/token");
        cloud_test_fails_with(
            kind,
            &["--token-url", &closed],
            true,
            &format!(
                "the {provider} sign-in service cannot be reached: 127.0.0.1:{port} refused the connection"
            ),
        );
    }
}
