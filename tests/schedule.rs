//! Upload windows and bandwidth by time of day, against the real daemon on a clock the test
//! drives: libfaketime (Debian's package) preloaded, reading the time from a file the test
//! rewrites, so the window closes and opens when the test says, without sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{job_states, wait_for, write_random, Daemon, Sandbox};

/// libfaketime's multi-threaded build, wherever the distribution put it.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib").ok().and_then(|dirs| {
        dirs.flatten()
            .map(|dir| dir.path().join("faketime/libfaketimeMT.so.1"))
            .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
            .find(|path| path.exists())
    });
    found.expect("libfaketime (scripts/test installs Debian's faketime package)")
}

/// A clock the test sets: every process given [`Clock::env`] reads its wall-clock time from
/// the file (again at most a second later); monotonic time, which timers use, stays real.
struct Clock {
    file: PathBuf,
}

impl Clock {
    fn new(sandbox: &Sandbox, at: &str) -> Clock {
        let clock = Clock {
            file: sandbox.path("clock"),
        };
        clock.set(at);
        clock
    }

    /// From now on the time is `at` (UTC), running on from there.
    fn set(&self, at: &str) {
        std::fs::write(&self.file, format!("@{at}\n")).unwrap();
    }

    fn apply(&self, command: &mut Command) {
        command
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("TZ", "UTC");
    }

    fn offload(&self, sandbox: &Sandbox, args: &[&str]) -> String {
        let mut command = sandbox.offload();
        self.apply(&mut command);
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn daemon(&self, sandbox: &Sandbox) -> Daemon {
        let log = sandbox.path("daemon.log");
        let mut command = sandbox.offload();
        self.apply(&mut command);
        let child = command
            .args(["run", "--no-default-profile", "--quiet-period", "300ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon { child, log };
        wait_for("the daemon to start", || {
            daemon.log().contains("offload is running")
        });
        daemon
    }
}

/// The first file's job, once it has one.
fn job(sandbox: &Sandbox) -> serde_json::Value {
    sandbox.jobs().pop().unwrap_or_default()
}

/// A profile that uploads only from 01:00 to 07:00: a file arriving at 06:59 starts uploading;
/// at 07:00 the upload stops at a checkpoint and waits, queued, keeping what it did; at 01:00
/// the next night it goes on and the library holds the file's bytes. A file arriving while the
/// window is closed waits for it too.
#[test]
fn an_upload_window_closing_mid_upload_holds_the_upload_until_it_opens() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let clock = Clock::new(&sandbox, "2026-12-07 06:59:00");
    sandbox.ok(&["profile", "window", "Home", "01:00-07:00"]);
    assert!(sandbox
        .ok(&["profile", "list"])
        .contains("uploads between 01:00-07:00"));
    // 40 MiB at 4 MiB/s: ten seconds, long enough to close the window in the middle.
    sandbox.ok(&["limit", "4M"]);
    let _daemon = clock.daemon(&sandbox);

    let bytes = write_random(&watch.join("Film.mkv"), 40 * 1024 * 1024);
    wait_for("the upload to be under way", || {
        let job = job(&sandbox);
        job["state"] == "running" && job["bytes_done"].as_u64() > Some(0)
    });
    clock.set("2026-12-07 07:00:05");
    wait_for("the upload to stop for the closed window", || {
        job(&sandbox)["state"] == "queued"
    });
    assert!(
        std::fs::read(library.join("Film.mkv")).ok().as_deref() != Some(&bytes[..]),
        "the upload did not finish"
    );
    // One more file while the window is closed: it waits with the first.
    let later = write_random(&watch.join("Later.mkv"), 1000);
    wait_for("the second file to be queued", || {
        job_states(&sandbox.jobs()) == ["queued", "queued"]
    });

    sandbox.ok(&["limit", "0"]);
    clock.set("2026-12-08 01:00:05");
    wait_for("both uploads once the window opens", || {
        job_states(&sandbox.jobs()) == ["done", "done"]
    });
    assert_eq!(std::fs::read(library.join("Film.mkv")).unwrap(), bytes);
    assert_eq!(std::fs::read(library.join("Later.mkv")).unwrap(), later);
}

/// `offload limit` takes rclone's timetable, and the limit in force follows the clock.
#[test]
fn a_bandwidth_timetable_sets_the_limit_by_the_time_of_day() {
    let sandbox = Sandbox::new();
    let clock = Clock::new(&sandbox, "2026-12-07 09:00:00");
    let said = clock.offload(&sandbox, &["limit", "08:00,2M 23:00,off"]);
    assert!(said.contains("now: 2.0 MiB/s"), "{said}");
    clock.set("2026-12-07 23:30:00");
    let said = clock.offload(&sandbox, &["limit", "08:00,2M 23:00,off"]);
    assert!(said.contains("now: no limit"), "{said}");
    let settings = sandbox.json(&["settings"]);
    assert_eq!(settings["bandwidth_schedule"], "08:00,2M 23:00,off");

    let broken = sandbox.run(&["limit", "08:00,2M 25:00,off"]);
    assert_eq!(broken.status.code(), Some(2));
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(
        said.contains("a bandwidth timetable is times and rates"),
        "{said}"
    );
    assert_eq!(
        sandbox.json(&["settings"])["bandwidth_schedule"],
        "08:00,2M 23:00,off",
        "nothing was stored"
    );
}
