//! Real media for real players: a small video made with ffmpeg, and ffprobe/ffmpeg reading it
//! over HTTP the way VLC or mpv would.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// A 5-second MPEG-4 video. ffmpeg writes the index (`moov`) at the end, so a player must read
/// the end of the file with a Range request before it can play the start.
pub fn make_video(path: &Path) -> Vec<u8> {
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=5:size=160x120:rate=10",
            "-c:v",
            "mpeg4",
            "-y",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg (Debian package ffmpeg) is installed");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

/// What ffprobe, reading over HTTP, says: (duration in seconds, video codec).
pub fn probe(url: &str) -> (f64, String) {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("ffprobe");
    assert!(
        output.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let duration = report["format"]["duration"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("a duration");
    let codec = report["streams"][0]["codec_name"]
        .as_str()
        .unwrap()
        .to_owned();
    (duration, codec)
}

/// Decodes one frame four seconds in: the player seeks with a Range request.
pub fn seek_and_decode(url: &str) {
    let output = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-ss",
            "4",
            "-i",
            url,
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "seeking in {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn assert_plays(url: &str) {
    let (duration, codec) = probe(url);
    assert!(
        (duration - 5.0).abs() < 0.05,
        "duration {duration} of {url}"
    );
    assert_eq!(codec, "mpeg4");
    seek_and_decode(url);
}
