//! The Windows build of `offload` (x86_64-pc-windows-gnu), run under Wine: the platform module's
//! Windows side (positioned reads, file locks, paths, watching) doing what a person on Windows
//! sees. Wine is not Windows, but it runs the same binary through the same Win32 calls, so a
//! Windows-only fault in our code shows here first. `scripts/check-windows` (part of the test
//! command) builds the binary, prepares a Wine prefix and runs these.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::s3::fetch;
use common::{wait_for, write_random, Sandbox, MASTER_KEY};

/// `offload.exe` under Wine, on one sandbox's data.
struct Windows {
    sandbox: Sandbox,
}

/// A path as Windows programs under Wine see it: `/tmp/x` is `Z:\tmp\x`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

impl Windows {
    fn new() -> Windows {
        Windows {
            sandbox: Sandbox::new(),
        }
    }

    fn offload(&self) -> Command {
        let needs = "is set by scripts/check-windows, which the test command runs";
        let exe = std::env::var("OFFLOAD_TEST_WINDOWS_EXE")
            .unwrap_or_else(|_| panic!("OFFLOAD_TEST_WINDOWS_EXE {needs}"));
        let wine = std::env::var("OFFLOAD_TEST_WINE")
            .unwrap_or_else(|_| panic!("OFFLOAD_TEST_WINE {needs}"));
        let prefix = std::env::var("OFFLOAD_TEST_WINEPREFIX")
            .unwrap_or_else(|_| panic!("OFFLOAD_TEST_WINEPREFIX {needs}"));
        let mut command = Command::new(wine);
        command
            .arg(exe)
            .env("WINEPREFIX", prefix)
            .env("WINEDEBUG", "-all")
            .env("OFFLOAD_DATA_DIR", windows_path(&self.sandbox.data_dir()))
            .env("OFFLOAD_MASTER_KEY", MASTER_KEY)
            .env("OFFLOAD_STREAM_PORT", self.sandbox.stream_port.to_string())
            .env("OFFLOAD_LOG", "offload=info")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.offload()
            .args(args)
            .output()
            .expect("run offload.exe under Wine")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "offload.exe {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn daemon(&self, log: &Path) -> Child {
        let file = std::fs::File::create(log).expect("log file");
        let child = self
            .offload()
            .args(["run", "--quiet-period", "500ms", "--no-default-profile"])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start offload.exe run");
        wait_for("the Windows daemon to start", || {
            std::fs::read_to_string(log).is_ok_and(|text| text.contains("offload is running"))
        });
        child
    }
}

#[test]
#[ignore = "needs the Windows build and Wine: scripts/check-windows (in the test command) runs it"]
fn the_windows_build_uploads_watches_streams_and_keeps_one_daemon_under_wine() {
    let windows = Windows::new();
    let sandbox = &windows.sandbox;
    let watch = sandbox.path("watch");
    let library = sandbox.path("library");
    std::fs::create_dir_all(&watch).unwrap();
    windows.ok(&["profile", "add", "Home", "--watch", &windows_path(&watch)]);
    windows.ok(&[
        "backend",
        "add",
        "Lib",
        "--profile",
        "Home",
        "--type",
        "local",
        "--path",
        &windows_path(&library),
        "--default",
    ]);

    // Uploaded now, from the command line: the copy is byte for byte the file.
    let film = write_random(&watch.join("film.mkv"), 3_000_000);
    let said = windows.ok(&[
        "upload",
        "--profile",
        "Home",
        &windows_path(&watch.join("film.mkv")),
    ]);
    assert!(said.contains("uploaded"), "{said}");
    assert!(std::fs::read(library.join("film.mkv")).unwrap() == film);
    let url = windows.ok(&["media", "url", "1"]).trim().to_owned();

    // The daemon: the stream server reads ranges with the Windows positioned read.
    let log = sandbox.path("daemon.log");
    let mut daemon = windows.daemon(&log);
    for (range, slice) in [
        ("bytes=0-99", &film[..100]),
        ("bytes=1000000-1999999", &film[1_000_000..2_000_000]),
        ("bytes=-500", &film[film.len() - 500..]),
    ] {
        let answer = fetch(&url, "GET", &[("Range", range)]);
        assert_eq!(answer.status, 206, "{range}");
        assert!(answer.body == slice, "{range}: the bytes of the file");
    }

    // One daemon per data folder: the lock is the Windows file lock.
    let second = windows.run(&["run", "--no-default-profile"]);
    assert_eq!(second.status.code(), Some(2));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("already running"), "{said}");

    // A download finishing in the watched folder is uploaded; the one uploaded before is not
    // uploaded again (its path reads the same to the watcher as to `offload upload`).
    let partial = watch.join("second.mp4.part");
    let second_bytes = write_random(&partial, 1_000_000);
    std::fs::rename(&partial, watch.join("second.mp4")).unwrap();
    wait_for("the watched download to arrive", || {
        std::fs::read(library.join("second.mp4")).is_ok_and(|copy| copy == second_bytes)
    });
    wait_for("both jobs done", || {
        let jobs: serde_json::Value =
            serde_json::from_str(&windows.ok(&["--json", "jobs"])).unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|job| job["state"] == "done")
    });
    let jobs: serde_json::Value = serde_json::from_str(&windows.ok(&["--json", "jobs"])).unwrap();
    let paths: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["local_path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2, "each file uploaded once: {paths:?}");
    assert!(
        paths.iter().all(|path| path.starts_with("Z:\\")),
        "paths as people type them: {paths:?}"
    );

    // Settings keep their rules on Windows too.
    let refused = windows.run(&["stream", "--port", "80"]);
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&offload::Setting::StreamPort.rule()),
        "{said}"
    );

    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
