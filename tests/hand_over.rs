//! Download clients hand finished files over with `offload add`: aria2's `--on-download-complete`
//! and yt-dlp's `--exec`, downloading from a local HTTP server into a watched folder whose quiet
//! period is an hour, so only the hand-over can start the upload. And what `add` refuses, what it
//! says without a running Offload, folders of a multi-file torrent, and files kept after upload
//! because a torrent client still seeds them through a hard link.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{job_states, wait_for, write_random, Sandbox};

/// A profile "Home" watching `watch/` into `library/`, and a daemon that would wait an hour
/// before uploading anything it only saw arrive.
fn patient(sandbox: &Sandbox) -> (PathBuf, PathBuf, common::Daemon) {
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&["--quiet-period", "1h"]);
    (watch, library, daemon)
}

/// `python -m http.server` over `dir` on a free loopback port, answering once it listens.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        let python = std::env::var("OFFLOAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = common::s3::free_port();
        let child = Command::new(python)
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python's http.server");
        wait_for("the file server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        FileServer { child, port }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A download client's command, with the sandbox's environment (its data folder) as the client
/// would pass its own on to the hook.
fn client(sandbox: &Sandbox, program: &str) -> Command {
    let offload = sandbox.offload();
    let mut command = Command::new(program);
    for (key, value) in offload.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.stdin(Stdio::null());
    command
}

fn run_ok(mut command: Command) {
    let output = command.output().expect("run the download client");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The one job there is, once it is done: uploaded once, verified, where the template puts it.
fn uploaded_once(sandbox: &Sandbox, library: &Path, relative: &str, bytes: &[u8]) {
    wait_for("the handed-over file to be uploaded", || {
        job_states(&sandbox.jobs()) == ["done"]
    });
    let jobs = sandbox.jobs();
    assert_eq!(jobs.len(), 1, "uploaded once: {jobs:?}");
    assert_eq!(std::fs::read(library.join(relative)).unwrap(), bytes);
}

#[test]
fn aria2_hands_its_finished_download_over() {
    let sandbox = Sandbox::new();
    let (watch, library, _daemon) = patient(&sandbox);
    let served = sandbox.path("served");
    let bytes = write_random(&served.join("Film.2024.mkv"), 3 * 1024 * 1024 + 17);
    let server = FileServer::start(&served);
    // aria2 runs the hook with three arguments: the download's GID, its number of files and the
    // first file's path. README gives this script.
    let hook = sandbox.path("aria2-done.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nexec '{}' add \"$3\"\n",
            env!("CARGO_BIN_EXE_offload")
        ),
    )
    .unwrap();
    let mut chmod = Command::new("chmod");
    chmod.arg("+x").arg(&hook);
    run_ok(chmod);

    let mut aria2 = client(&sandbox, "aria2c");
    aria2
        .args(["--quiet", "--dir"])
        .arg(&watch)
        .arg(format!("--on-download-complete={}", hook.display()))
        .arg(server.url("Film.2024.mkv"));
    run_ok(aria2);
    uploaded_once(&sandbox, &library, "Film.2024.mkv", &bytes);
}

#[test]
fn yt_dlp_hands_each_download_over_with_exec() {
    let sandbox = Sandbox::new();
    let (watch, library, _daemon) = patient(&sandbox);
    let served = sandbox.path("served");
    let bytes = write_random(&served.join("clip.mp4"), 2 * 1024 * 1024 + 5);
    let server = FileServer::start(&served);
    let yt_dlp = std::env::var("OFFLOAD_TEST_PYTHON")
        .map(|python| Path::new(&python).with_file_name("yt-dlp"))
        .unwrap_or_else(|_| PathBuf::from("yt-dlp"));

    let mut download = client(&sandbox, yt_dlp.to_str().unwrap());
    download
        .args(["--no-update", "--no-progress", "--quiet", "-o"])
        .arg(watch.join("%(title)s.%(ext)s"))
        .arg("--exec")
        .arg(format!("'{}' add {{}}", env!("CARGO_BIN_EXE_offload")))
        .arg(server.url("clip.mp4"));
    run_ok(download);
    uploaded_once(&sandbox, &library, "clip.mp4", &bytes);
}

/// What `add` will not take, and why: a name that says it is still downloading, a companion
/// file beside it, another program still writing it.
#[test]
fn a_file_still_being_written_is_refused_with_the_reason() {
    let sandbox = Sandbox::new();
    let (watch, _library, _daemon) = patient(&sandbox);
    let refused = |path: &Path, reason: &str| {
        let output = sandbox.run(&["add", path.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{said}");
        assert!(said.contains(reason), "{said}");
        common::assert_sentence(said.lines().next().unwrap());
    };
    let partial = watch.join("Film.mkv.part");
    write_random(&partial, 1000);
    refused(&partial, "still being downloaded");
    std::fs::remove_file(&partial).unwrap();

    let film = watch.join("Film.mkv");
    write_random(&film, 1000);
    std::fs::write(watch.join("Film.mkv.aria2"), b"control").unwrap();
    refused(&film, "Film.mkv.aria2 beside it");
    std::fs::remove_file(watch.join("Film.mkv.aria2")).unwrap();

    let writer = HeldOpen::new(&film, ">>");
    refused(&film, "open for writing");
    drop(writer);
    assert!(sandbox.jobs().is_empty(), "nothing was queued");

    // A program only reading it (a player, a torrent client seeding) does not hold it back.
    let _reader = HeldOpen::new(&film, "<");
    let said = sandbox.ok(&["add", film.to_str().unwrap()]);
    assert!(said.contains("queued"), "{said}");
}

/// A shell holding a file open on descriptor 3 (`>>` appending, `<` reading) until dropped.
struct HeldOpen(Child);

impl HeldOpen {
    fn new(path: &Path, redirect: &str) -> HeldOpen {
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3{redirect}\"$0\"; echo open; read _"))
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(shell.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "open\n");
        HeldOpen(shell)
    }
}

impl Drop for HeldOpen {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Without a running Offload the files wait in the queue, and `add` says so and how to start
/// it; the daemon started later uploads them. A folder (a multi-file torrent's) gives its media
/// files, samples left out, under the folder's name.
#[test]
fn without_a_running_offload_files_wait_and_folders_give_their_media() {
    let sandbox = Sandbox::new();
    let (_watch, library) = sandbox.home_profile(&[]);
    let torrent = sandbox.path("complete/Show.S01");
    let first = write_random(&torrent.join("Show.S01E01.mkv"), 1500);
    let second = write_random(&torrent.join("Show.S01E02.mkv"), 1600);
    write_random(&torrent.join("Sample/show.sample.mkv"), 100);
    std::fs::write(torrent.join("Show.S01.nfo"), b"info").unwrap();

    let output = sandbox.run(&["add", torrent.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("Offload is not running"), "{said}");
    assert!(said.contains("offload run"), "{said}");
    assert_eq!(job_states(&sandbox.jobs()), ["queued", "queued"]);

    let _daemon = sandbox.daemon(&["--quiet-period", "1h"]);
    wait_for("both episodes", || {
        job_states(&sandbox.jobs()) == ["done", "done"]
    });
    assert_eq!(
        std::fs::read(library.join("Show.S01/Show.S01E01.mkv")).unwrap(),
        first
    );
    assert_eq!(
        std::fs::read(library.join("Show.S01/Show.S01E02.mkv")).unwrap(),
        second
    );
    // Handed over again (a client re-checking the torrent): already there, not uploaded twice.
    let said = sandbox.ok(&["add", torrent.to_str().unwrap()]);
    assert_eq!(
        said.matches("already uploaded and verified").count(),
        2,
        "{said}"
    );
    assert_eq!(sandbox.jobs().len(), 2);
}

/// `--after-upload delete` for one file removes it once verified, but never a file with another
/// name (the hard link a torrent client seeds from): that one is kept, and its job says why.
/// `--wait` returns once the upload is verified.
#[test]
fn a_hardlinked_file_is_kept_after_upload_with_the_reason() {
    let sandbox = Sandbox::new();
    let (_watch, library, _daemon) = patient(&sandbox);
    let downloads = sandbox.path("complete");
    let alone = downloads.join("Alone.mkv");
    let linked = downloads.join("Seeded.mkv");
    write_random(&alone, 1200);
    let bytes = write_random(&linked, 1300);
    std::fs::create_dir_all(sandbox.path("seeding")).unwrap();
    std::fs::hard_link(&linked, sandbox.path("seeding/Seeded.mkv")).unwrap();

    for file in [&alone, &linked] {
        let said = sandbox.ok(&[
            "add",
            "--wait",
            "--after-upload",
            "delete",
            file.to_str().unwrap(),
        ]);
        assert!(said.contains("uploaded"), "{said}");
    }
    wait_for("the after-upload policy", || !alone.exists());
    assert_eq!(std::fs::read(library.join("Seeded.mkv")).unwrap(), bytes);
    wait_for("the reason the seeded file was kept", || {
        sandbox.ok(&["jobs"]).contains("hard link")
    });
    assert_eq!(
        std::fs::read(&linked).unwrap(),
        bytes,
        "the seeded file is kept"
    );
}
