//! What the benchmarks share: timing a command under GNU time, medians, and the same S3 server
//! reached by Offload, rclone and the AWS CLI.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

#[path = "../../tests/common/media.rs"]
pub mod media;
#[path = "../../tests/common/s3.rs"]
pub mod s3;
mod select;

pub use select::wanted;

pub const OFFLOAD: &str = env!("CARGO_BIN_EXE_offload");

pub struct Measure {
    pub seconds: f64,
    pub peak_rss_mib: f64,
}

/// Runs a command under GNU time; `None` when the tool is missing or failed.
pub fn measure(command: Command) -> Option<Measure> {
    let report = tempfile::NamedTempFile::new().unwrap();
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = command
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args);
    for (key, value) in envs {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let status = timed
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let text = std::fs::read_to_string(report.path()).ok()?;
    let mut fields = text.split_whitespace();
    let seconds = fields.next()?.parse().ok()?;
    let kib: f64 = fields.next()?.parse().ok()?;
    Some(Measure {
        seconds,
        peak_rss_mib: kib / 1024.0,
    })
}

pub fn median(mut runs: Vec<Measure>) -> Option<Measure> {
    if runs.is_empty() {
        return None;
    }
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let peak = runs.iter().map(|run| run.peak_rss_mib).fold(0.0, f64::max);
    let middle = runs.swap_remove(runs.len() / 2);
    Some(Measure {
        seconds: middle.seconds,
        peak_rss_mib: peak,
    })
}

/// `offload` with its own data folder (and a fixed master key, so no keychain is needed).
pub fn offload(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(OFFLOAD);
    command.args(args).env("OFFLOAD_DATA_DIR", data).env(
        "OFFLOAD_MASTER_KEY",
        "YmVuY2htYXJrLW1hc3Rlci1rZXktMzItYnl0ZXMtISE=",
    );
    command
}

/// A profile "Bench" in `data` whose default backend "Garage" is this server's bucket.
pub fn offload_on(data: &Path, server: &s3::S3Server) {
    assert!(offload(data, &["profile", "add", "Bench"])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let added = offload(
        data,
        &[
            "backend",
            "add",
            "Garage",
            "--profile",
            "Bench",
            "--type",
            "s3",
            "--provider",
            "garage",
            "--endpoint",
            &server.endpoint,
            "--bucket",
            &server.bucket,
            "--access-key-id",
            &server.access_key_id,
            "--default",
        ],
    )
    .env("OFFLOAD_S3_SECRET_ACCESS_KEY", &server.secret_access_key)
    .stdout(Stdio::null())
    .status()
    .unwrap();
    assert!(added.success());
}

/// rclone with a remote `garage:` that is this server.
pub fn rclone(server: &s3::S3Server, args: &[&str]) -> Command {
    let mut command = Command::new("rclone");
    command
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_GARAGE_TYPE", "s3")
        .env("RCLONE_CONFIG_GARAGE_PROVIDER", "Other")
        .env("RCLONE_CONFIG_GARAGE_ENDPOINT", &server.endpoint)
        .env("RCLONE_CONFIG_GARAGE_REGION", "garage")
        .env("RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID", &server.access_key_id)
        .env(
            "RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY",
            &server.secret_access_key,
        );
    command
}

/// The AWS CLI against this server, configured by `config` (an AWS config file).
pub fn aws(server: &s3::S3Server, config: &Path, args: &[&str]) -> Command {
    // Debian's AWS CLI v2, not a pip-installed v1 that may shadow it on PATH.
    let binary = if Path::new("/usr/bin/aws").exists() {
        "/usr/bin/aws"
    } else {
        "aws"
    };
    let mut command = Command::new(binary);
    command
        .args(args)
        .args(["--endpoint-url", &server.endpoint])
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env_remove("AWS_PROFILE");
    command
}
