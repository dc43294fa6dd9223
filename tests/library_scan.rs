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

/// (title, series, season, episode, storage path) of every item `media list` shows.
fn library(sandbox: &Sandbox) -> BTreeSet<(String, String, i64, i64, String)> {
    sandbox
        .media()
        .iter()
        .map(|row| {
            (
                row["title"].as_str().unwrap().to_owned(),
                row["series"].as_str().unwrap_or_default().to_owned(),
                row["season"].as_i64().unwrap_or(0),
                row["episode"].as_i64().unwrap_or(0),
                row["storage_path"].as_str().unwrap().to_owned(),
            )
        })
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
    let found = library(&sandbox);
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
    std::fs::write(sandbox.path("Show.Name.S01E01.mkv"), random_bytes(500)).unwrap();
    sandbox.upload("Home", &sandbox.path("Show.Name.S01E01.mkv"));
    let second = a_sandbox_on(server);
    let said = scan(&second);
    assert!(said.contains("Found 5 items in Bucket (5 new"), "{said}");
    assert_eq!(library(&second), library(&sandbox));

    // Found items play through this computer's stream server.
    let daemon = sandbox.daemon(&[]);
    assert_plays(&item_url(&sandbox, "Clips/Clip.mp4"));

    // Deleted elsewhere: gone from the library on the next scan, its URL answers 410. Replaced
    // elsewhere: the new file.
    let deleted = item_url(&sandbox, "Show.Name.S02E06.mkv");
    other.delete("Show.Name.S02E06.mkv");
    other.put("Film (2019)/Film.mkv", random_bytes(4000));
    let said = scan(&sandbox);
    assert!(
        said.contains("Found 4 items in Bucket (0 new, 1 changed, 1 gone)"),
        "{said}"
    );
    let titles: Vec<_> = library(&sandbox).into_iter().map(|row| row.0).collect();
    assert_eq!(
        titles,
        ["Clip", "Film", "Show Name S01E01", "Show Name S02E05"]
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
    let titles: Vec<_> = library(&sandbox).into_iter().map(|row| row.0).collect();
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
}
