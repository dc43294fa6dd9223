//! Probing media without decoding it: clips made with ffmpeg give the same duration, codecs,
//! picture size and track languages as ffprobe says, and a probe reads a few small ranges
//! however large the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::media::{clip, probe_counted, sparse_mp4};
use offload::probe::{self, MediaInfo};
use serde_json::Value;

/// What ffprobe says of `path`.
fn ffprobe(path: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,width,height:stream_tags=language",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(output.status.success(), "ffprobe {}", path.display());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Checks that the probe of `path` says what ffprobe says, and returns it.
fn agrees_with_ffprobe(path: &Path) -> MediaInfo {
    let (info, reads, bytes) = probe_counted(path);
    let truth = ffprobe(path);
    let name = path.file_name().unwrap().to_string_lossy();
    let seconds: f64 = truth["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ours = info.duration_ms.expect("a duration") as f64 / 1000.0;
    assert!(
        (ours - seconds).abs() <= 0.1,
        "{name}: duration {ours} s, ffprobe says {seconds} s"
    );
    let streams = truth["streams"].as_array().unwrap();
    let of_kind = |kind: &str| -> Vec<(String, Option<String>)> {
        streams
            .iter()
            .filter(|stream| stream["codec_type"] == kind)
            .map(|stream| {
                let language = stream["tags"]["language"]
                    .as_str()
                    .filter(|code| *code != "und")
                    .map(str::to_owned);
                (stream["codec_name"].as_str().unwrap().to_owned(), language)
            })
            .collect()
    };
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    let ours_video = info.video.as_ref().expect("a video track");
    assert_eq!(ours_video.codec, video["codec_name"], "{name}: video codec");
    assert_eq!(
        (ours_video.width, ours_video.height),
        (
            video["width"].as_u64().map(|n| n as u32),
            video["height"].as_u64().map(|n| n as u32)
        ),
        "{name}: picture size"
    );
    let tracks = |tracks: &[probe::Track]| -> Vec<(String, Option<String>)> {
        tracks
            .iter()
            .map(|track| (track.codec.clone(), track.language.clone()))
            .collect()
    };
    assert_eq!(
        tracks(&info.audio),
        of_kind("audio"),
        "{name}: audio tracks"
    );
    assert_eq!(
        tracks(&info.subtitles),
        of_kind("subtitle"),
        "{name}: subtitle tracks"
    );
    // Headers and indexes only: a handful of reads, well under a mebibyte.
    assert!(reads <= 8, "{name}: {reads} reads");
    assert!(bytes < 1 << 20, "{name}: {bytes} bytes read");
    info
}

#[test]
fn mp4_with_its_index_at_either_end() {
    let dir = tempfile::tempdir().unwrap();
    for (name, faststart) in [("late index.mp4", false), ("faststart.mp4", true)] {
        let path = dir.path().join(name);
        let mut encoding = vec!["-metadata:s:a:0", "language=eng"];
        if faststart {
            encoding.extend(["-movflags", "+faststart"]);
        }
        clip(&path, 6, "320x240", &[], &encoding);
        let info = agrees_with_ffprobe(&path);
        assert_eq!(info.container, probe::Container::Mp4);
        assert_eq!(info.audio[0].language.as_deref(), Some("eng"));
    }
}

#[test]
fn matroska_with_hevc_two_audio_tracks_and_subtitles() {
    let dir = tempfile::tempdir().unwrap();
    let subtitles = dir.path().join("subs.srt");
    std::fs::write(
        &subtitles,
        "1\n00:00:00,500 --> 00:00:02,000\nHola\n\n2\n00:00:02,500 --> 00:00:03,500\nAdiós\n",
    )
    .unwrap();
    let path = dir.path().join("Film (2024).mkv");
    clip(
        &path,
        4,
        "640x360",
        &["-i", &subtitles.to_string_lossy()],
        &[
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "1:a",
            "-map",
            "2:s",
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error",
            "-c:a:1",
            "ac3",
            "-c:s",
            "srt",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fra",
            "-metadata:s:s:0",
            "language=spa",
        ],
    );
    let info = agrees_with_ffprobe(&path);
    assert_eq!(info.container, probe::Container::Matroska);
    assert_eq!(info.video.unwrap().codec, "hevc");
    assert_eq!(info.audio.len(), 2);
    assert_eq!(info.subtitles[0].language.as_deref(), Some("spa"));
}

#[test]
fn mpeg_ts_with_a_cropped_1080p_picture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Show S01E01.ts");
    clip(
        &path,
        3,
        "1920x1080",
        &[],
        &["-metadata:s:a:0", "language=deu"],
    );
    let info = agrees_with_ffprobe(&path);
    assert_eq!(info.container, probe::Container::Mpegts);
    let video = info.video.unwrap();
    assert_eq!((video.width, video.height), (Some(1920), Some(1080)));
}

/// HEVC in a transport stream (as TV recordings are now), at a size that is no multiple of the
/// coding block: the sequence parameter set codes the padded size and a conformance window.
#[test]
fn mpeg_ts_with_hevc_video_at_an_odd_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Recording.ts");
    clip(
        &path,
        2,
        "318x238",
        &[],
        &["-c:v", "libx265", "-x265-params", "log-level=error"],
    );
    let info = agrees_with_ffprobe(&path);
    let video = info.video.unwrap();
    assert_eq!(video.codec, "hevc");
    assert_eq!((video.width, video.height), (Some(318), Some(238)));
}

/// A film over 4 GiB as a camera or a long remux writes it: a 64-bit `mdat` size and a
/// version 1 (64-bit) movie header, the data sparse so the test writes megabytes, not gigabytes.
#[test]
fn mp4_over_4_gib_with_64_bit_sizes_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.mp4");
    clip(&small, 5, "320x240", &[], &[]);
    let big = dir.path().join("big film.mp4");
    sparse_mp4(&small, 4_600_000_000, &big);
    assert!(std::fs::metadata(&big).unwrap().len() > 4 << 30);

    let info = agrees_with_ffprobe(&big);
    let (small_info, _, _) = probe_counted(&small);
    assert_eq!(
        info, small_info,
        "the same film, however its sizes are written"
    );
}

#[test]
fn what_is_not_media_or_is_cut_short_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a film at all").unwrap();
    let error = probe::probe_file(&text).unwrap_err();
    assert!(matches!(error, probe::ProbeError::Unrecognised), "{error}");

    // A download stopped halfway: the index ffmpeg writes last never arrived.
    let whole = dir.path().join("whole.mp4");
    clip(&whole, 3, "320x240", &[], &[]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let error = probe::probe_file(&cut).unwrap_err().to_string();
    assert!(error.contains("MP4"), "{error}");
}

/// AVI and Flash video, which no probe here reads: ffprobe answers for them, in the same terms.
#[test]
fn other_containers_are_asked_of_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    for (name, (video_codec, audio), (said_video, said_audio), container) in [
        (
            "old.avi",
            ("mpeg4", "libmp3lame"),
            ("mpeg4", "mp3"),
            probe::Container::Avi,
        ),
        (
            "clip.flv",
            ("flv", "aac"),
            ("flv1", "aac"),
            probe::Container::Flv,
        ),
    ] {
        let path = dir.path().join(name);
        clip(
            &path,
            3,
            "320x240",
            &[],
            &["-c:v", video_codec, "-c:a", audio],
        );
        let info = probe::probe_file(&path).unwrap();
        assert_eq!(info.container, container, "{name}");
        let seconds = info.duration_ms.expect("a duration") as f64 / 1000.0;
        assert!((seconds - 3.0).abs() <= 0.1, "{name}: {seconds} s");
        let video = info.video.expect("a video track");
        assert_eq!(
            (video.codec.as_str(), video.width, video.height),
            (said_video, Some(320), Some(240)),
            "{name}"
        );
        assert_eq!(info.audio.len(), 1, "{name}");
        assert_eq!(info.audio[0].codec, said_audio, "{name}");
    }
}
