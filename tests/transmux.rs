//! The transmux step as a person meets it: an MP4 whose index comes after its media data is
//! stored with the index first (the media data byte for byte the same, the local file
//! untouched), so a player starts it with one request; what the rewrite does not understand is
//! stored as it is; a copy left by a killed Offload is gone after the next start. With the
//! remux turned on, an MPEG-TS is stored as an MP4 holding the same pictures and sounds; what
//! MP4 cannot carry, and everything where ffmpeg is missing, is stored as it is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::media::{boxes, clip, ffmpeg};
use common::s3::{fetch, garage, redirected};
use common::{add_s3_backend, wait_for, Sandbox};
use sha2::{Digest, Sha256};

/// The top-level box types, in order.
fn layout(bytes: &[u8]) -> Vec<String> {
    boxes(bytes)
        .iter()
        .map(|(kind, _)| String::from_utf8_lossy(kind).into_owned())
        .collect()
}

/// The media data: the body of the file's one `mdat`.
fn media_data(bytes: &[u8]) -> &[u8] {
    let (_, whole) = boxes(bytes)
        .into_iter()
        .find(|(kind, _)| kind == b"mdat")
        .expect("an mdat box");
    &whole[8..]
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// ffmpeg's own late-index layout: what cameras, phones and most encoders write.
fn late_index_clip(path: &Path, seconds: u32) -> Vec<u8> {
    clip(path, seconds, "320x240", &[], &[]);
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(layout(&bytes), ["ftyp", "free", "mdat", "moov"]);
    bytes
}

/// The library item with this title, once it is there.
fn item(sandbox: &Sandbox, title: &str) -> serde_json::Value {
    let mut found = None;
    wait_for(&format!("{title} in the library"), || {
        found = sandbox
            .media()
            .into_iter()
            .find(|entry| entry["title"] == title);
        found.is_some()
    });
    found.unwrap()
}

fn url_of(sandbox: &Sandbox, entry: &serde_json::Value) -> String {
    let id = entry["item"]["id"].as_i64().unwrap().to_string();
    sandbox.ok(&["media", "url", &id]).trim().to_owned()
}

/// Decodes every frame through `url`; ffmpeg must say nothing at `-v error`.
fn assert_decodes(url: &str) {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i", url, "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(output.status.success(), "ffmpeg could not decode {url}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "ffmpeg on {url}"
    );
}

/// How many HTTP requests ffprobe sends to learn what `url` holds and read its first frames, as
/// its own trace says (a player seeking to the end for the index sends another).
fn requests_to_start(url: &str) -> usize {
    let output = Command::new("ffprobe")
        .args(["-v", "trace", "-show_entries", "format=duration", url])
        .output()
        .expect("ffprobe");
    assert!(output.status.success(), "ffprobe {url}");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.contains("request: GET"))
        .count()
}

#[test]
fn a_late_index_mp4_dropped_in_is_stored_index_first_and_starts_with_one_request() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);

    let original = late_index_clip(&sandbox.path("clip.mp4"), 4);
    std::fs::copy(sandbox.path("clip.mp4"), watch.join("Late Film (2024).mp4")).unwrap();
    let entry = item(&sandbox, "Late Film (2024)");
    let stored = std::fs::read(library.join("Late Film (2024).mp4")).unwrap();
    assert_eq!(layout(&stored), ["ftyp", "free", "moov", "mdat"]);
    assert_eq!(
        media_data(&stored),
        media_data(&original),
        "the media data is unchanged"
    );
    assert_eq!(stored.len(), original.len());
    assert_eq!(
        std::fs::read(watch.join("Late Film (2024).mp4")).unwrap(),
        original,
        "the local file is never altered"
    );
    assert_eq!(entry["checksum"], sha256(&stored), "{entry}");
    assert_eq!(entry["source_checksum"], sha256(&original), "{entry}");
    assert_eq!(entry["media"]["duration_ms"], 4000, "{entry}");
    let url = url_of(&sandbox, &entry);
    assert_decodes(&url);
    assert_eq!(requests_to_start(&url), 1);
    assert!(
        files_left(&sandbox.data_dir()).is_empty(),
        "the rewritten copy is removed once stored"
    );

    // Turned off while Offload runs: the next film is stored as it is, and a player needs more
    // than one request to start it (the index is at the end).
    sandbox.ok(&["profile", "faststart", "Home", "off"]);
    std::fs::copy(sandbox.path("clip.mp4"), watch.join("As It Is (2024).mp4")).unwrap();
    let entry = item(&sandbox, "As It Is (2024)");
    assert_eq!(
        std::fs::read(library.join("As It Is (2024).mp4")).unwrap(),
        original
    );
    assert_eq!(entry["source_checksum"], serde_json::Value::Null);
    assert!(requests_to_start(&url_of(&sandbox, &entry)) > 1);
    sandbox.ok(&["profile", "faststart", "Home", "on"]);

    // What the rewrite does not understand is stored as it is, and the log says why.
    let fragmented = sandbox.path("fragmented.mp4");
    clip(
        &fragmented,
        2,
        "160x120",
        &[],
        &["-movflags", "frag_keyframe+empty_moov"],
    );
    let truncated = &original[..original.len() - 100];
    std::fs::write(sandbox.path("truncated.mp4"), truncated).unwrap();
    for name in ["fragmented.mp4", "truncated.mp4"] {
        std::fs::copy(sandbox.path(name), watch.join(name)).unwrap();
    }
    for (name, title) in [
        ("fragmented.mp4", "fragmented"),
        ("truncated.mp4", "truncated"),
    ] {
        item(&sandbox, title);
        assert_eq!(
            std::fs::read(library.join(name)).unwrap(),
            std::fs::read(sandbox.path(name)).unwrap(),
            "{name} is stored as it is"
        );
    }
    let log = daemon.log();
    assert!(log.contains("fragmented MP4"), "{log}");
    assert!(log.contains("not made ready to stream"), "{log}");
    daemon.stop();
}

#[test]
fn a_late_index_mp4_reaches_the_bucket_index_first_and_plays_through_its_url() {
    let server = garage();
    let sandbox = Sandbox::new();
    sandbox.home_profile(&[]);
    let output = add_s3_backend(&sandbox, &server, &server.secret_access_key, &[]);
    assert!(output.status.success(), "{output:?}");
    let film = sandbox.path("Bucket Film (2023).mp4");
    let original = late_index_clip(&film, 6);
    sandbox.upload("Home", &film);
    assert_eq!(std::fs::read(&film).unwrap(), original);

    let daemon = sandbox.daemon(&[]);
    let entry = item(&sandbox, "Bucket Film (2023)");
    let url = url_of(&sandbox, &entry);
    let presigned = redirected(&url).header("location").unwrap().to_owned();
    let stored = fetch(&presigned, "GET", &[]).body;
    assert_eq!(layout(&stored), ["ftyp", "free", "moov", "mdat"]);
    assert_eq!(media_data(&stored), media_data(&original));
    assert_eq!(entry["checksum"], sha256(&stored));
    assert_eq!(entry["source_checksum"], sha256(&original));
    assert_decodes(&url);
    assert_eq!(
        requests_to_start(&url),
        2,
        "one redirect through Offload, then one read from the bucket"
    );
    daemon.stop();
}

/// Files under the data folder's scratch folders (`owners/*.work`).
fn files_left(data_dir: &Path) -> Vec<PathBuf> {
    common::files_under(&data_dir.join("owners"))
        .into_iter()
        .filter(|path| {
            path.parent()
                .and_then(Path::extension)
                .is_some_and(|extension| extension == "work")
        })
        .collect()
}

#[test]
fn a_copy_left_by_a_killed_offload_is_removed_at_the_next_start() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let film = sandbox.path("Long Film (2020).mp4");
    // Big enough that the upload, held to 64 KB/s, is still running when Offload is killed.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=20:size=640x480:rate=25",
        "-c:v",
        "mpeg4",
        "-q:v",
        "2",
        film.to_str().unwrap(),
    ]);
    let original = std::fs::read(&film).unwrap();
    assert_eq!(layout(&original)[2..], ["mdat", "moov"]);
    sandbox.ok(&["settings", "--bandwidth-limit", "64K"]);
    let daemon = sandbox.daemon(&[]);
    std::fs::copy(&film, watch.join("Long Film (2020).mp4")).unwrap();
    wait_for("the rewritten copy to be uploading", || {
        !files_left(&sandbox.data_dir()).is_empty()
            && sandbox
                .jobs()
                .iter()
                .any(|job| job["bytes_done"].as_u64() > Some(0))
    });
    daemon.kill();
    let left = files_left(&sandbox.data_dir());
    assert_eq!(left.len(), 1, "kill -9 leaves the copy behind: {left:?}");

    sandbox.ok(&["settings", "--bandwidth-limit", "0"]);
    let daemon = sandbox.daemon(&[]);
    wait_for("the copy left behind to be removed", || !left[0].exists());
    item(&sandbox, "Long Film (2020)");
    let stored = std::fs::read(library.join("Long Film (2020).mp4")).unwrap();
    assert_eq!(layout(&stored)[2..], ["moov", "mdat"]);
    assert_eq!(media_data(&stored), media_data(&original));
    daemon.stop();
    assert!(files_left(&sandbox.data_dir()).is_empty());
}

/// The MD5 of what a file's video, or audio, decodes to: equal for two files only when neither
/// was re-encoded from the other.
fn decoded(path: &Path, streams: &str) -> String {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", streams, "-f", "md5", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg decoding {}",
        path.display()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A broadcast-like recording: H.264 with an English and a French AAC track, in MPEG-TS.
fn recording(path: &Path) -> Vec<u8> {
    clip(
        path,
        3,
        "320x240",
        &["-f", "lavfi", "-i", "sine=frequency=660:duration=3"],
        &[
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fra",
            "-f",
            "mpegts",
        ],
    );
    std::fs::read(path).unwrap()
}

fn languages(entry: &serde_json::Value) -> Vec<String> {
    entry["media"]["audio"]
        .as_array()
        .unwrap()
        .iter()
        .map(|track| track["language"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_recording_is_stored_as_an_mp4_of_the_same_frames_once_the_remux_is_turned_on() {
    let sandbox = Sandbox::new();
    let (watch, library) = sandbox.home_profile(&[]);
    let daemon = sandbox.daemon(&[]);
    let original = recording(&sandbox.path("recording.ts"));

    // Off by default: stored as it is.
    std::fs::copy(sandbox.path("recording.ts"), watch.join("Before (2021).ts")).unwrap();
    item(&sandbox, "Before (2021)");
    assert_eq!(
        std::fs::read(library.join("Before (2021).ts")).unwrap(),
        original
    );

    // Turned on while Offload runs: the next one is an MP4, index first, of the same frames
    // and sounds in both languages.
    let said = sandbox.ok(&["profile", "remux", "Home", "on"]);
    assert!(said.contains("remuxed into MP4"), "{said}");
    assert!(!said.contains("not installed"), "{said}");
    let local = watch.join("Broadcast (2021).ts");
    std::fs::copy(sandbox.path("recording.ts"), &local).unwrap();
    let entry = item(&sandbox, "Broadcast (2021)");
    let stored_path = library.join("Broadcast (2021).mp4");
    let stored = std::fs::read(&stored_path).unwrap();
    assert!(!library.join("Broadcast (2021).ts").exists());
    let top = layout(&stored);
    let at = |kind: &str| top.iter().position(|box_kind| box_kind == kind).unwrap();
    assert!(at("moov") < at("mdat"), "{top:?}");
    for streams in ["0:v", "0:a"] {
        assert_eq!(
            decoded(&stored_path, streams),
            decoded(&local, streams),
            "{streams}: copied, not re-encoded"
        );
    }
    assert_eq!(
        std::fs::read(&local).unwrap(),
        original,
        "the local file is never altered"
    );
    assert_eq!(entry["media"]["container"], "mp4", "{entry}");
    assert_eq!(languages(&entry), ["eng", "fra"], "{entry}");
    assert_eq!(entry["checksum"], sha256(&stored), "{entry}");
    assert_eq!(entry["source_checksum"], sha256(&original), "{entry}");
    assert_eq!(entry["content_type"], "video/mp4", "{entry}");
    let job = sandbox
        .jobs()
        .into_iter()
        .find(|job| job["local_path"] == local.to_str().unwrap())
        .unwrap();
    assert_eq!(job["remote_path"], "Broadcast (2021).mp4", "{job}");
    let url = url_of(&sandbox, &entry);
    assert_decodes(&url);
    assert_eq!(requests_to_start(&url), 1);

    // An MP4 of that name from another file is not overwritten: this one goes as it is.
    clip(
        &watch.join("Twin (2020).mp4"),
        2,
        "160x120",
        &[],
        &["-movflags", "+faststart"],
    );
    item(&sandbox, "Twin (2020)");
    let twin = std::fs::read(library.join("Twin (2020).mp4")).unwrap();
    std::fs::copy(sandbox.path("recording.ts"), watch.join("Twin (2020).ts")).unwrap();
    wait_for("the other Twin to be stored", || {
        library.join("Twin (2020).ts").exists()
    });
    wait_for("its upload to be done", || {
        sandbox
            .jobs()
            .iter()
            .any(|job| job["remote_path"] == "Twin (2020).ts" && job["state"] == "done")
    });
    assert_eq!(
        std::fs::read(library.join("Twin (2020).ts")).unwrap(),
        original
    );
    assert_eq!(
        std::fs::read(library.join("Twin (2020).mp4")).unwrap(),
        twin
    );

    // Sound MP4 cannot carry as it is (PCM, in an old camera's AVI): stored as it is, and the
    // log says why.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=160x120:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:v",
        "mpeg4",
        "-c:a",
        "pcm_s16le",
        sandbox.path("camera.avi").to_str().unwrap(),
    ]);
    std::fs::copy(sandbox.path("camera.avi"), watch.join("Old Camera.avi")).unwrap();
    item(&sandbox, "Old Camera");
    assert_eq!(
        std::fs::read(library.join("Old Camera.avi")).unwrap(),
        std::fs::read(sandbox.path("camera.avi")).unwrap()
    );
    assert!(!library.join("Old Camera.mp4").exists());
    let log = daemon.log();
    assert!(log.contains("not remuxed into MP4"), "{log}");
    assert!(
        log.contains("Could not find tag for codec pcm_s16le"),
        "{log}"
    );
    assert!(
        files_left(&sandbox.data_dir()).is_empty(),
        "the MP4s written are removed once stored"
    );
    daemon.stop();
}

#[test]
fn without_ffmpeg_the_remux_says_what_to_install_and_recordings_go_as_they_are() {
    let sandbox = Sandbox::new();
    let (_, library) = sandbox.home_profile(&[]);
    let original = recording(&sandbox.path("Evening News.ts"));
    let nowhere = sandbox.path("no-programs");
    std::fs::create_dir_all(&nowhere).unwrap();
    let without_ffmpeg = |args: &[&str]| {
        let output = sandbox
            .offload()
            .env("PATH", &nowhere)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let said = without_ffmpeg(&["profile", "remux", "Home", "on"]);
    assert!(said.contains("ffmpeg is not installed"), "{said}");
    assert!(said.contains("https://ffmpeg.org/download.html"), "{said}");
    common::assert_sentence(said.lines().last().unwrap());
    let listed = without_ffmpeg(&["profile", "list"]);
    assert!(
        listed.contains("remuxed into MP4 once ffmpeg is installed"),
        "{listed}"
    );
    assert_eq!(
        sandbox.json(&["profile", "list"])[0]["remux"],
        true,
        "the setting is kept for when ffmpeg arrives"
    );

    let film = sandbox.path("Evening News.ts");
    without_ffmpeg(&["upload", "--profile", "Home", film.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(library.join("Evening News.ts")).unwrap(),
        original
    );
    assert!(!library.join("Evening News.mp4").exists());
}
