//! Shared harness for the engine's integration tests: a throwaway data folder, the real
//! `offload` binary, and waiting on conditions (never on the clock alone).

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

pub mod cloud;
pub mod conformance;
pub mod media;
pub mod oauth_fake;
pub mod proxy;
pub mod s3;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::RngCore;

/// How long any single condition may take before the test fails. Generous: CI machines are slow,
/// and waiting longer costs nothing when the condition holds early.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// The stream server's port for this sandbox's daemons, so parallel tests do not collide.
    pub stream_port: u16,
    /// Whether that port is given as `OFFLOAD_STREAM_PORT` (else it is the saved setting).
    port_in_env: bool,
}

/// The master key every sandbox uses (base64 of 32 bytes).
pub const MASTER_KEY: &str = "b2ZmbG9hZC10ZXN0cy1tYXN0ZXIta2V5LTMyLWJ5dGU=";

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
            stream_port: s3::free_port(),
            port_in_env: true,
        }
    }

    /// A sandbox whose stream port is the saved setting, as a person's is, so that changing the
    /// setting moves it.
    pub fn with_port_setting() -> Sandbox {
        let sandbox = Sandbox {
            port_in_env: false,
            ..Sandbox::new()
        };
        sandbox.ok(&["stream", "--port", &sandbox.stream_port.to_string()]);
        sandbox
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// `offload` with this sandbox's data folder, and a home that is not the user's.
    pub fn offload(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_offload"));
        command
            .env("OFFLOAD_DATA_DIR", self.data_dir())
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("OFFLOAD_LOG", "offload=debug")
            // Sealing S3 secrets needs a master key; the keychain has its own tests.
            .env("OFFLOAD_MASTER_KEY", MASTER_KEY)
            .stdin(Stdio::null());
        if self.port_in_env {
            command.env("OFFLOAD_STREAM_PORT", self.stream_port.to_string());
        } else {
            command.env_remove("OFFLOAD_STREAM_PORT");
        }
        command
    }

    /// Runs `offload ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.offload().args(args).output().expect("run offload")
    }

    /// Runs `offload ARGS` with `line` on its stdin (a secret, the way a person pipes one in).
    pub fn run_with_stdin(&self, args: &[&str], line: &str) -> Output {
        let mut child = self
            .offload()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start offload");
        writeln!(child.stdin.take().expect("stdin"), "{line}").expect("write stdin");
        child.wait_with_output().expect("run offload")
    }

    /// Runs `offload ARGS` and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "offload {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ok(&full)).expect("offload printed JSON")
    }

    /// Starts `offload run` with a short quiet period (unless `extra` gives one); its log goes to
    /// `daemon-N.log`.
    pub fn daemon(&self, extra: &[&str]) -> Daemon {
        let n = std::fs::read_dir(self.dir.path())
            .map(|entries| entries.count())
            .unwrap_or(0);
        let log = self.path(&format!("daemon-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut args = vec!["run", "--no-default-profile"];
        if !extra.contains(&"--quiet-period") {
            args.extend(["--quiet-period", "300ms"]);
        }
        args.extend_from_slice(extra);
        let child = self
            .offload()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start offload run");
        let daemon = Daemon { child, log };
        wait_for("the daemon to start", || {
            daemon.log().contains("offload is running")
        });
        daemon
    }

    /// `offload upload FILE --profile PROFILE`, which must succeed.
    pub fn upload(&self, profile: &str, file: &Path) {
        self.ok(&[
            "upload",
            "--profile",
            profile,
            file.to_str().expect("utf-8"),
        ]);
    }

    pub fn jobs(&self) -> Vec<serde_json::Value> {
        self.json(&["jobs"]).as_array().cloned().unwrap_or_default()
    }

    pub fn media(&self) -> Vec<serde_json::Value> {
        self.json(&["media", "list"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// (title, series, season, episode, storage path) of every item `media list` shows.
    pub fn library_rows(&self) -> std::collections::BTreeSet<(String, String, i64, i64, String)> {
        self.media()
            .iter()
            .map(|row| {
                (
                    row["title"].as_str().expect("a title").to_owned(),
                    row["series"].as_str().unwrap_or_default().to_owned(),
                    row["season"].as_i64().unwrap_or(0),
                    row["episode"].as_i64().unwrap_or(0),
                    row["storage_path"]
                        .as_str()
                        .expect("a storage path")
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Adds a local backend `name` at `path` to `profile`.
    pub fn local_backend(&self, profile: &str, name: &str, path: &Path) {
        self.ok(&[
            "backend",
            "add",
            name,
            "--profile",
            profile,
            "--type",
            "local",
            "--path",
            path.to_str().expect("utf-8"),
        ]);
    }

    /// A profile "Home" watching `watch/` and uploading into `library/`.
    pub fn home_profile(&self, extra: &[&str]) -> (PathBuf, PathBuf) {
        let watch = self.path("watch");
        let library = self.path("library");
        std::fs::create_dir_all(&watch).expect("watch dir");
        let watch_text = watch.to_str().expect("utf-8");
        let mut args = vec!["profile", "add", "Home", "--watch", watch_text];
        args.extend_from_slice(extra);
        self.ok(&args);
        self.local_backend("Home", "Lib", &library);
        (watch, library)
    }

    /// A profile "Home" whose only backend is under a regular file, so every upload fails.
    pub fn broken_profile(&self) {
        std::fs::write(self.path("not-a-folder"), b"x").expect("write");
        self.ok(&["profile", "add", "Home"]);
        self.local_backend("Home", "Lib", &self.path("not-a-folder/lib"));
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        #[cfg(unix)]
        {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let status = self.child.wait().expect("wait for daemon");
        assert!(
            status.success(),
            "daemon exited with {status:?}; log:\n{}",
            self.log()
        );
    }

    /// SIGKILL: the process gets no chance to tidy up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds; fails the test with `what` after [`PATIENCE`].
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

pub fn write_random(path: &Path, len: usize) -> Vec<u8> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("parent dir");
    }
    let bytes = random_bytes(len);
    std::fs::write(path, &bytes).expect("write file");
    bytes
}

pub fn job_states(jobs: &[serde_json::Value]) -> Vec<String> {
    jobs.iter()
        .map(|job| job["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .collect()
}

/// `offload backend add` for this server, the secret on stdin, with `extra` flags.
pub fn add_s3_backend(
    sandbox: &Sandbox,
    server: &s3::S3Server,
    secret: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = s3_backend_args(
        "garage",
        &server.endpoint,
        &server.bucket,
        &server.access_key_id,
    );
    args.push("--default");
    args.extend_from_slice(extra);
    sandbox.run_with_stdin(&args, secret)
}

/// The arguments of `offload backend add` for an S3 backend "Bucket" of profile "Home", its
/// secret to come on stdin.
pub fn s3_backend_args<'a>(
    provider: &'a str,
    endpoint: &'a str,
    bucket: &'a str,
    access_key_id: &'a str,
) -> Vec<&'a str> {
    vec![
        "backend",
        "add",
        "Bucket",
        "--profile",
        "Home",
        "--type",
        "s3",
        "--provider",
        provider,
        "--endpoint",
        endpoint,
        "--bucket",
        bucket,
        "--access-key-id",
        access_key_id,
        "--secret-access-key-stdin",
    ]
}

/// Text meant for a person (a command's output, a job's reason, a log line) is sentences: never
/// the `Debug` rendering of some library's error, with its braces, field names and type names.
pub fn assert_sentence(text: &str) {
    for sign in [
        "{",
        "}",
        "Error(",
        "Some(",
        "kind:",
        "source:",
        "DispatchFailure",
        "ConnectorError",
        "ServiceError",
        "ErrorMetadata",
        "SdkBody",
        "hyper_util",
        "reqwest::",
    ] {
        assert!(
            !text.contains(sign),
            "{sign:?} in text meant for a person:\n{text}"
        );
    }
}

/// The lines of a log meant for people: warnings, errors and what the daemon reports it did.
pub fn log_for_people(log: &str) -> String {
    log.lines()
        .filter(|line| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|level| line.contains(level))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
