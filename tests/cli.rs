//! The `offload` command as a person or a script uses it: output, exit codes, error messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Sandbox;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must fail with `code`, and returns what it said on stderr.
fn fails(sandbox: &Sandbox, args: &[&str], code: i32) -> String {
    let output = sandbox.run(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "offload {args:?}: {}",
        stderr(&output)
    );
    stderr(&output)
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["frobnicate"], "unrecognized subcommand"),
        (
            &["profile", "add", "X", "--after-upload", "shred"],
            "not one of keep, delete, move:DIR",
        ),
        (
            &["profile", "add", "X", "--template", "{nope}/{filename}"],
            "{nope}, which is not a token",
        ),
        (
            &["profile", "add", "X", "--template", "../{filename}"],
            "climbs out of its folder",
        ),
        (&["profile", "add", "Home"], "already exists"),
        (
            &[
                "profile",
                "add",
                "X",
                "--watch",
                "/tmp",
                "--include",
                "[bad",
            ],
            "the file pattern `[bad` is not valid",
        ),
        (
            &["profile", "watch", "Home", "/tmp", "--exclude", "[bad"],
            "the file pattern `[bad` is not valid",
        ),
        (
            &["profile", "remove", "Nobody"],
            "no profile named \"Nobody\"",
        ),
        (
            &[
                "backend",
                "add",
                "B",
                "--profile",
                "Nobody",
                "--type",
                "local",
            ],
            "no profile named",
        ),
        (
            &["backend", "add", "B", "--profile", "Home", "--type", "ftp"],
            "not a backend type",
        ),
        (
            &[
                "backend",
                "add",
                "Lib",
                "--profile",
                "Home",
                "--type",
                "local",
            ],
            "already has a backend named",
        ),
        (
            &["backend", "test", "Nope", "--profile", "Home"],
            "has no backend named",
        ),
        (&["upload", "a.mkv"], "--profile"),
        (
            &["upload", "a.mkv", "--profile", "Home", "--backend", "Nope"],
            "has no backend named",
        ),
        (&["jobs", "--state", "sleeping"], "not a job state"),
        (&["retry", "999"], "no upload job 999"),
        (&["pause", "999"], "no upload job 999"),
        (&["limit", "fast"], "not a rate"),
        (&["run", "--quiet-period", "soon"], "not a duration"),
    ];
    for (args, expected) in cases {
        let said = fails(&sandbox, args, 2);
        assert!(
            said.contains(expected),
            "offload {args:?} should say {expected:?}, said:\n{said}"
        );
    }
}

#[test]
fn upload_verifies_and_reports_each_file() {
    let sandbox = Sandbox::new();
    let (_, library) = sandbox.home_profile(&[]);
    let empty = common::write_random(&sandbox.path("in/empty.mkv"), 0);
    let one = common::write_random(&sandbox.path("in/one.mkv"), 1);
    let mid = common::write_random(
        &sandbox.path("in/Show.Name.S02E03.mkv"),
        3 * 1024 * 1024 + 17,
    );
    let out = sandbox.ok(&[
        "upload",
        sandbox.path("in/empty.mkv").to_str().unwrap(),
        sandbox.path("in/one.mkv").to_str().unwrap(),
        sandbox.path("in/Show.Name.S02E03.mkv").to_str().unwrap(),
        "--profile",
        "Home",
    ]);
    assert_eq!(out.matches("uploaded ").count(), 3, "{out}");
    assert!(out.contains("sha256:"), "{out}");
    assert_eq!(std::fs::read(library.join("empty.mkv")).unwrap(), empty);
    assert_eq!(std::fs::read(library.join("one.mkv")).unwrap(), one);
    assert_eq!(
        std::fs::read(library.join("Show.Name.S02E03.mkv")).unwrap(),
        mid
    );

    let jobs = sandbox.jobs();
    assert_eq!(common::job_states(&jobs), vec!["done"; 3]);
    let media = sandbox.media();
    assert_eq!(media.len(), 3);
    let episode = media
        .iter()
        .find(|item| item["series"] == "Show Name")
        .expect("an episode row");
    assert_eq!(
        (episode["season"].as_u64(), episode["episode"].as_u64()),
        (Some(2), Some(3))
    );

    // The same unchanged file again: nothing is uploaded twice, and that is still a success.
    let output = sandbox.run(&[
        "upload",
        sandbox.path("in/one.mkv").to_str().unwrap(),
        "--profile",
        "Home",
    ]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("already uploaded"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sandbox.jobs().len(), 3);
}

#[test]
fn upload_that_cannot_be_verified_exits_1_and_keeps_the_file() {
    let sandbox = Sandbox::new();
    sandbox.broken_profile();
    common::write_random(&sandbox.path("in/a.mkv"), 100);
    let output = sandbox.run(&[
        "upload",
        sandbox.path("in/a.mkv").to_str().unwrap(),
        "--profile",
        "Home",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("NOT uploaded"));
    assert!(sandbox.path("in/a.mkv").exists());
    assert_eq!(common::job_states(&sandbox.jobs()), vec!["failed"]);

    let missing = sandbox.run(&[
        "upload",
        sandbox.path("in/missing.mkv").to_str().unwrap(),
        "--profile",
        "Home",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("it does not exist"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn profiles_and_backends_are_managed_and_listed() {
    let sandbox = Sandbox::new();
    let watch = sandbox.path("w");
    std::fs::create_dir_all(&watch).unwrap();
    sandbox.ok(&[
        "profile",
        "add",
        "Films",
        "--watch",
        watch.to_str().unwrap(),
        "--no-recursive",
        "--exclude",
        "*sample*",
        "--after-upload",
        "move:/tmp/done",
    ]);
    let profiles = sandbox.json(&["profile", "list"]);
    let films = &profiles[0];
    assert_eq!(films["name"], "Films");
    assert_eq!(films["after_upload"]["policy"], "move");
    assert_eq!(films["folders"][0]["recursive"], false);
    assert_eq!(films["folders"][0]["exclude"][0], "*sample*");

    sandbox.local_backend("Films", "A", &sandbox.path("a"));
    sandbox.local_backend("Films", "B", &sandbox.path("b"));
    let defaults = |sandbox: &Sandbox| -> Vec<(String, bool)> {
        sandbox
            .json(&["backend", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["name"].as_str().unwrap().to_owned(),
                    b["is_default"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        defaults(&sandbox),
        vec![("A".into(), true), ("B".into(), false)],
        "the first backend becomes the default"
    );
    sandbox.ok(&["backend", "default", "B", "--profile", "Films"]);
    assert_eq!(
        defaults(&sandbox),
        vec![("A".into(), false), ("B".into(), true)]
    );
    let test = sandbox.ok(&["backend", "test", "B", "--profile", "Films"]);
    assert!(test.contains("ok   write"), "{test}");
    sandbox.ok(&["backend", "remove", "B", "--profile", "Films"]);
    assert_eq!(
        defaults(&sandbox),
        vec![("A".into(), true)],
        "removing the default promotes another"
    );
    let other = sandbox.path("w2");
    // A folder that is not there yet is refused, as in the window (the rule is the engine's).
    let said = fails(
        &sandbox,
        &["profile", "watch", "Films", other.to_str().unwrap()],
        2,
    );
    assert!(said.contains("choose an existing folder"), "{said}");
    std::fs::create_dir_all(&other).unwrap();
    sandbox.ok(&[
        "profile",
        "watch",
        "Films",
        other.to_str().unwrap(),
        "--include",
        "*.mkv",
    ]);
    let folders = |sandbox: &Sandbox| {
        sandbox.json(&["profile", "list"])[0]["folders"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(folders(&sandbox), 2);
    let said = fails(
        &sandbox,
        &["profile", "unwatch", "Films", "/not/watched"],
        2,
    );
    assert!(said.contains("does not watch"), "{said}");
    sandbox.ok(&["profile", "unwatch", "Films", other.to_str().unwrap()]);
    assert_eq!(folders(&sandbox), 1);
    sandbox.ok(&["profile", "add", "Other"]);
    let said = fails(&sandbox, &["profile", "rename", "Other", "Films"], 2);
    assert!(said.contains("already exists"), "{said}");
    sandbox.ok(&["profile", "rename", "Films", "Movies"]);
    sandbox.ok(&["profile", "remove", "Other"]);
    sandbox.ok(&["profile", "remove", "Movies"]);
    assert!(sandbox
        .json(&["profile", "list"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn backend_test_failure_exits_1_with_the_reason() {
    let sandbox = Sandbox::new();
    sandbox.broken_profile();
    let output = sandbox.run(&["backend", "test", "Lib", "--profile", "Home"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAIL folder: cannot create"));
}

#[test]
fn first_run_creates_the_default_profile_watching_downloads() {
    let sandbox = Sandbox::new();
    let child = sandbox
        .offload()
        .args(["run", "--quiet-period", "300ms"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = common::Daemon {
        child,
        log: sandbox.path("unused.log"),
    };
    common::wait_for("the default profile", || {
        sandbox
            .json(&["backend", "list"])
            .as_array()
            .is_some_and(|list| !list.is_empty())
    });
    let profiles = sandbox.json(&["profile", "list"]);
    assert_eq!(profiles[0]["name"], "Default");
    let downloads = profiles[0]["folders"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(downloads.ends_with("Downloads"), "{downloads}");
    let bytes = common::write_random(&std::path::Path::new(&downloads).join("film.mp4"), 1234);
    common::wait_for("the download to land in the library", || {
        common::job_states(&sandbox.jobs()) == vec!["done"]
    });
    let library = sandbox.json(&["backend", "list"])[0]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read(std::path::Path::new(&library).join("film.mp4")).unwrap(),
        bytes
    );
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
}

#[test]
fn a_second_daemon_for_the_same_data_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let said = fails(&sandbox, &["run", "--no-default-profile"], 2);
    assert!(said.contains("already running"), "{said}");
    daemon.stop();
}

#[test]
fn settings_outside_their_rules_are_refused_in_the_engines_words_and_nothing_changes() {
    use offload::Setting;
    let sandbox = Sandbox::new();
    let before = sandbox.json(&["settings"]);
    // The window shows the same rule, generated into ui/src/lib/bindings.ts from Setting::rule.
    let refused = [
        (vec!["stream", "--port", "80"], Setting::StreamPort),
        (
            vec!["settings", "--stream-port", "1023"],
            Setting::StreamPort,
        ),
        (vec!["settings", "--workers", "0"], Setting::Workers),
        (vec!["settings", "--workers", "65"], Setting::Workers),
        (
            vec!["settings", "--quiet-period", "25h"],
            Setting::QuietPeriod,
        ),
        (
            vec!["stream", "--url-lifetime", "200h"],
            Setting::UrlLifetime,
        ),
    ];
    for (args, setting) in refused {
        let said = fails(&sandbox, &args, 2);
        assert!(said.contains(&setting.rule()), "offload {args:?}: {said}");
        common::assert_sentence(&said);
    }
    assert_eq!(
        sandbox.json(&["settings"]),
        before,
        "a refused change stores nothing"
    );

    // One accepted change keeps every other setting as it was.
    sandbox.ok(&["settings", "--workers", "64", "--bandwidth-limit", "5M"]);
    let after = sandbox.json(&["settings"]);
    assert_eq!(after["workers"], 64);
    assert_eq!(after["bandwidth_limit"], 5 * 1024 * 1024);
    assert_eq!(after["stream_port"], before["stream_port"]);
    assert_eq!(after["notifications"], before["notifications"]);
}
