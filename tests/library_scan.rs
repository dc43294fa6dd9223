//! The library found in storage: what another tool or computer put in a bucket or folder is
//! listed by `offload library scan` with series grouped, plays through its stream URL, and
//! follows what happens there later (deleted → gone and 410, replaced → the new file); a second
//! data folder over the same bucket sees the same library; a rescan of an unchanged backend
//! writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::media::{assert_plays, make_video};
use common::s3::{fetch, garage, moto, S3Server};
use common::{add_s3_backend, random_bytes, wait_for, Sandbox};

/// Another S3 client's writes and deletes.
struct OtherTool {
    client: aws_sdk_s3::Client,
    bucket: String,
    runtime: tokio::runtime::Runtime,
}

impl OtherTool {
    fn new(server: &S3Server) -> OtherTool {
        OtherTool {
            client: server.client(),
            bucket: server.bucket.clone(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn put(&self, key: &str, bytes: Vec<u8>) {
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
                    .send(),
            )
            .unwrap();
    }

    /// Every key in the bucket.
    fn keys(&self) -> Vec<String> {
        let page = self
            .runtime
            .block_on(self.client.list_objects_v2().bucket(&self.bucket).send())
            .unwrap();
        page.contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_owned))
            .collect()
    }

    fn delete(&self, key: &str) {
        self.runtime
            .block_on(
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send(),
            )
            .unwrap();
    }
}

/// Each item's verified SHA-256 (if the library has one), by title.
fn hashes(sandbox: &Sandbox) -> std::collections::BTreeMap<String, Option<String>> {
    sandbox
        .media()
        .iter()
        .map(|row| {
            let title = row["title"].as_str().unwrap_or_default().to_owned();
            (title, row["checksum"].as_str().map(str::to_owned))
        })
        .collect()
}

/// The library's titles, in order.
fn titles(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .library_rows()
        .into_iter()
        .map(|row| row.0)
        .collect()
}

fn item_url(sandbox: &Sandbox, storage_path: &str) -> String {
    sandbox
        .media()
        .iter()
        .find(|row| row["storage_path"] == storage_path)
        .map(|row| row["stream_url"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{storage_path} is not in the library"))
}

/// SQLite's count of commits made by other connections: unchanged means nothing was written.
fn commits_seen(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
        .unwrap()
}

fn a_sandbox_on(server: &S3Server) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    let output = add_s3_backend(&sandbox, server, &server.secret_access_key, &[]);
    assert!(output.status.success(), "{output:?}");
    sandbox
}

fn scan(sandbox: &Sandbox) -> String {
    sandbox.ok(&["library", "scan", "--profile", "Home"])
}

fn check_a_bucket_filled_elsewhere(server: &S3Server) {
    let other = OtherTool::new(server);
    let sandbox = a_sandbox_on(server);
    let video = make_video(&sandbox.path("clip.mp4"));
    other.put("Show.Name.S02E05.mkv", random_bytes(1000));
    other.put("Show.Name.S02E06.mkv", random_bytes(1200));
    other.put("Film (2019)/Film.mkv", random_bytes(3000));
    other.put("Clips/Clip.mp4", video.clone());
    other.put("notes.txt", b"not media".to_vec());

    let said = scan(&sandbox);
    assert!(
        said.contains("Found 4 items in Bucket (4 new, 0 changed, 0 gone)"),
        "{said}"
    );
    let found = sandbox.library_rows();
    let expected: BTreeSet<_> = [
        ("Clip", "", 0, 0, "Clips/Clip.mp4"),
        ("Film", "", 0, 0, "Film (2019)/Film.mkv"),
        (
            "Show Name S02E05",
            "Show Name",
            2,
            5,
            "Show.Name.S02E05.mkv",
        ),
        (
            "Show Name S02E06",
            "Show Name",
            2,
            6,
            "Show.Name.S02E06.mkv",
        ),
    ]
    .into_iter()
    .map(|(t, s, n, e, p)| (t.to_owned(), s.to_owned(), n, e, p.to_owned()))
    .collect();
    assert_eq!(found, expected);

    // Nothing changed in the bucket: the rescan commits nothing to the database.
    let watcher = rusqlite::Connection::open(sandbox.data_dir().join("offload.db")).unwrap();
    let before = commits_seen(&watcher);
    let said = scan(&sandbox);
    assert!(
        said.contains("Found 4 items in Bucket (0 new, 0 changed, 0 gone)"),
        "{said}"
    );
    assert_eq!(commits_seen(&watcher), before, "a rescan wrote");

    // A file uploaded by this computer, then a second data folder over the same bucket: the same
    // library, titles, series and episodes.
    // One fits a single PUT (its hash is in its metadata only), one (over the 8 MiB threshold)
    // goes in parts and is recorded beside it: the second computer has that one's verified hash
    // too, and no other.
    std::fs::write(sandbox.path("Show.Name.S01E01.mkv"), random_bytes(500)).unwrap();
    sandbox.upload("Home", &sandbox.path("Show.Name.S01E01.mkv"));
    std::fs::write(sandbox.path("Big.Film.mkv"), random_bytes(9 << 20)).unwrap();
    sandbox.upload("Home", &sandbox.path("Big.Film.mkv"));
    let second = a_sandbox_on(server);
    let said = scan(&second);
    assert!(said.contains("Found 6 items in Bucket (6 new"), "{said}");
    assert_eq!(second.library_rows(), sandbox.library_rows());
    let (here, there) = (hashes(&sandbox), hashes(&second));
    for (title, hash) in &there {
        let ours = title == "Big Film";
        assert_eq!(hash.is_some(), ours, "{title}: {there:?}");
        if ours {
            assert_eq!(hash, &here[title], "{title}");
        }
    }

    // Found items play through this computer's stream server, which a running Offload also reads
    // them through, by Range, to say what they hold and take their pictures.
    let daemon = sandbox.daemon(&[]);
    assert_plays(&item_url(&sandbox, "Clips/Clip.mp4"));
    let mut clip = serde_json::Value::Null;
    wait_for("what the found clip holds, and its picture", || {
        clip = sandbox
            .media()
            .into_iter()
            .find(|row| row["title"] == "Clip")
            .unwrap();
        clip["poster_url"].is_string()
    });
    assert_eq!(clip["media"]["duration_ms"], 5000, "{clip}");
    assert_eq!(clip["media"]["video"]["width"], 160, "{clip}");
    let picture = fetch(clip["poster_url"].as_str().unwrap(), "GET", &[]);
    assert_eq!(
        (picture.status, &picture.body[..2]),
        (200, &[0xff, 0xd8][..])
    );
    let film = sandbox
        .media()
        .into_iter()
        .find(|row| row["title"] == "Film");
    assert_eq!(
        film.unwrap()["media"],
        serde_json::Value::Null,
        "not a video"
    );

    // Deleted elsewhere: gone from the library on the next scan, its URL answers 410. Replaced
    // elsewhere: the new file.
    let deleted = item_url(&sandbox, "Show.Name.S02E06.mkv");
    other.delete("Show.Name.S02E06.mkv");
    other.put("Film (2019)/Film.mkv", random_bytes(4000));
    let said = scan(&sandbox);
    assert!(
        said.contains("Found 5 items in Bucket (0 new, 1 changed, 1 gone)"),
        "{said}"
    );
    let titles = titles(&sandbox);
    assert_eq!(
        titles,
        [
            "Big Film",
            "Clip",
            "Film",
            "Show Name S01E01",
            "Show Name S02E05"
        ]
    );
    let film = sandbox
        .media()
        .into_iter()
        .find(|row| row["title"] == "Film")
        .unwrap();
    assert_eq!(film["size"], 4000);
    let playlist = sandbox.ok(&["playlist", "--profile", "Home"]);
    assert!(!playlist.contains("S02E06"), "{playlist}");
    wait_for("the deleted item's URL to answer 410 Gone", || {
        fetch(&deleted, "GET", &[]).status == 410
    });
    daemon.stop();

    // Removing an item through Offload deletes its record with it, and nothing else.
    let records = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|key| key.starts_with(".offload/"))
            .map(|key| key.rsplit_once('/').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(records(&other.keys()), [".offload/records/Big.Film.mkv"]);
    let big = sandbox
        .media()
        .into_iter()
        .find(|row| row["title"] == "Big Film")
        .map(|row| row["item"]["id"].as_i64().unwrap())
        .unwrap();
    sandbox.ok(&["media", "remove", &big.to_string()]);
    let keys = other.keys();
    assert!(!keys.contains(&"Big.Film.mkv".to_owned()), "{keys:?}");
    assert!(
        keys.contains(&"Show.Name.S01E01.mkv".to_owned()),
        "{keys:?}"
    );
    assert_eq!(records(&keys), Vec::<String>::new());
}

#[test]
fn a_bucket_filled_by_another_tool_is_found_on_garage() {
    check_a_bucket_filled_elsewhere(&garage());
}

#[test]
fn a_bucket_filled_by_another_tool_is_found_on_moto() {
    check_a_bucket_filled_elsewhere(&moto());
}

#[test]
fn files_copied_into_a_local_library_by_hand_are_found_and_followed() {
    let sandbox = Sandbox::new();
    let (_watch, library_dir) = sandbox.home_profile(&[]);
    std::fs::create_dir_all(library_dir.join("Series/Season 1")).unwrap();
    std::fs::write(
        library_dir.join("Series/Season 1/Series.S01E01.mkv"),
        b"one",
    )
    .unwrap();
    std::fs::write(
        library_dir.join("Series/Season 1/Series.S01E02.mkv"),
        b"two",
    )
    .unwrap();
    std::fs::write(library_dir.join("Home Video.mp4"), b"home").unwrap();
    std::fs::write(library_dir.join("readme.txt"), b"not media").unwrap();

    let said = scan(&sandbox);
    assert!(
        said.contains("Found 3 items in Lib (3 new, 0 changed, 0 gone)"),
        "{said}"
    );
    let titles = titles(&sandbox);
    assert_eq!(titles, ["Home Video", "Series S01E01", "Series S01E02"]);

    let daemon = sandbox.daemon(&[]);
    let url = item_url(&sandbox, "Series/Season 1/Series.S01E02.mkv");
    assert_eq!(fetch(&url, "GET", &[]).body, b"two");
    std::fs::remove_file(library_dir.join("Series/Season 1/Series.S01E02.mkv")).unwrap();
    let said = scan(&sandbox);
    assert!(said.contains("(0 new, 0 changed, 1 gone)"), "{said}");
    wait_for("the deleted file's URL to answer 410 Gone", || {
        fetch(&url, "GET", &[]).status == 410
    });
    daemon.stop();

    // The folder's disk unplugged: the scan says so and the library keeps its items.
    std::fs::rename(&library_dir, sandbox.path("unplugged")).unwrap();
    let unplugged = sandbox.run(&["library", "scan", "--profile", "Home"]);
    assert_eq!(unplugged.status.code(), Some(1));
    let said = String::from_utf8_lossy(&unplugged.stderr);
    assert!(said.contains("the folder is not there"), "{said}");
    common::assert_sentence(&said);
    assert_eq!(sandbox.library_rows().len(), 2);

    // A library folder nothing was uploaded to yet holds nothing.
    sandbox.local_backend("Home", "Empty", &sandbox.path("not-yet"));
    let said = sandbox.ok(&["library", "scan", "--profile", "Home", "--backend", "Empty"]);
    assert!(said.contains("Found 0 items in Empty"), "{said}");
}

#[test]
fn a_running_offload_follows_the_bucket_without_being_asked() {
    let server = garage();
    let other = OtherTool::new(&server);
    let sandbox = a_sandbox_on(&server);
    let daemon = sandbox.daemon(&["--library-scan", "1s"]);
    other.put("Arrived.Elsewhere.S01E01.mkv", random_bytes(700));
    wait_for("the running daemon to find the new object", || {
        sandbox
            .library_rows()
            .iter()
            .any(|row| row.0 == "Arrived Elsewhere S01E01")
    });
    other.delete("Arrived.Elsewhere.S01E01.mkv");
    wait_for("the running daemon to see it deleted", || {
        sandbox.library_rows().is_empty()
    });
    assert!(
        daemon
            .log()
            .contains("the library follows what changed in storage"),
        "{}",
        daemon.log()
    );
    daemon.stop();
}

/// Items the library has in storage now, and how many distinct objects they name.
fn rows_in_db(sandbox: &Sandbox) -> (i64, i64) {
    let conn = rusqlite::Connection::open(sandbox.data_dir().join("offload.db")).unwrap();
    conn.query_row(
        "SELECT count(*), count(DISTINCT storage_path) FROM library_entries WHERE status = 'uploaded'",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_scan_cut_off_or_killed_midway_ends_with_each_object_once() {
    const OBJECTS: i64 = 20_000;
    const CUT_AFTER: i64 = 8 * 1024;
    let server = garage();
    let other = OtherTool::new(&server);
    other.runtime.block_on(async {
        use futures_util::StreamExt;
        futures_util::stream::iter(0..OBJECTS)
            .map(|n| {
                other
                    .client
                    .put_object()
                    .bucket(&other.bucket)
                    .key(format!("Bulk/Clip {n:05}.mkv"))
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                    .send()
            })
            .buffer_unordered(32)
            .for_each(|put| async move {
                put.unwrap();
            })
            .await;
    });
    let proxy = common::proxy::FaultProxy::start(server.port());
    let sandbox = Sandbox::new();
    sandbox.ok(&["profile", "add", "Home"]);
    let endpoint = proxy.endpoint();
    let mut args =
        common::s3_backend_args("garage", &endpoint, &server.bucket, &server.access_key_id);
    args.push("--default");
    let output = sandbox.run_with_stdin(&args, &server.secret_access_key);
    assert!(output.status.success(), "{output:?}");
    let budget = |bytes: i64| {
        proxy
            .budget
            .store(bytes, std::sync::atomic::Ordering::SeqCst)
    };

    // The network goes after a few pages: the scan says so, and marks nothing gone.
    budget(CUT_AFTER);
    let cut = sandbox.run(&["library", "scan", "--profile", "Home"]);
    assert!(!cut.status.success());
    let said = String::from_utf8_lossy(&cut.stderr);
    assert!(said.contains("cannot scan Bucket"), "{said}");
    common::assert_sentence(&said);
    let (after_cut, distinct) = rows_in_db(&sandbox);
    assert!(0 < after_cut && after_cut < OBJECTS, "{after_cut}");
    assert_eq!(after_cut, distinct);

    // The network stalls further on, about half way through the pages the first scan did not
    // reach (a page of a thousand keys costs the same request each time), and the scan is
    // killed while it waits.
    let pages_done = after_cut / 1000;
    let per_page = CUT_AFTER / pages_done;
    let pages_left = (OBJECTS - after_cut) / 1000;
    proxy.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    budget((pages_done + pages_left / 2) * per_page + per_page / 2);
    let mut killed = sandbox
        .offload()
        .args(["library", "scan", "--profile", "Home"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the second scan to get past the first", || {
        rows_in_db(&sandbox).0 > after_cut
    });
    wait_for("the second scan to stall", || {
        proxy.budget.load(std::sync::atomic::Ordering::SeqCst) < 0
    });
    killed.kill().unwrap();
    let _ = killed.wait();
    let (after_kill, distinct) = rows_in_db(&sandbox);
    assert!(after_kill < OBJECTS, "{after_kill}");
    assert_eq!(after_kill, distinct);

    // With the network back, a scan completes: every object once, none gone.
    proxy.hold.store(false, std::sync::atomic::Ordering::SeqCst);
    budget(i64::MAX);
    let said = scan(&sandbox);
    assert!(
        said.contains(&format!(
            "Found {OBJECTS} items in Bucket ({} new, 0 changed, 0 gone)",
            OBJECTS - after_kill
        )),
        "{said}"
    );
    assert_eq!(rows_in_db(&sandbox), (OBJECTS, OBJECTS));
}

/// Two computers upload into one bucket at the same time (files in parts, as films are), one of
/// their files under the same name with other bytes of the same size: each library then lists both computers' files, each
/// with the hash of the bytes the bucket holds — for the shared name, the upload that landed last.
#[test]
fn two_computers_uploading_into_one_bucket_at_once_keep_each_others_records() {
    let server = garage();
    let other = OtherTool::new(&server);
    let (first, second) = (a_sandbox_on(&server), a_sandbox_on(&server));
    std::thread::scope(|threads| {
        for (sandbox, name) in [(&first, "First"), (&second, "Second")] {
            threads.spawn(move || {
                for file in [format!("{name}.Film.mkv"), "Same.Name.mkv".to_owned()] {
                    std::fs::write(sandbox.path(&file), random_bytes(9 << 20)).unwrap();
                    sandbox.upload("Home", &sandbox.path(&file));
                }
            });
        }
    });
    let held = other.runtime.block_on(async {
        let object = other
            .client
            .get_object()
            .bucket(&other.bucket)
            .key("Same.Name.mkv")
            .send()
            .await
            .unwrap();
        object.body.collect().await.unwrap().into_bytes()
    });
    let held = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&held)))
    };
    scan(&first);
    scan(&second);
    let (seen_first, seen_second) = (hashes(&first), hashes(&second));
    assert_eq!(seen_first, seen_second);
    let titles: Vec<&str> = seen_first.keys().map(String::as_str).collect();
    assert_eq!(titles, ["First Film", "Same Name", "Second Film"]);
    assert!(seen_first.values().all(Option::is_some), "{seen_first:?}");
    assert_eq!(seen_first["Same Name"].as_deref(), Some(held.as_str()));
}
