//! Probing media without decoding it: clips made with ffmpeg give the same duration, codecs,
//! picture size and track languages as ffprobe says, and a probe reads a few small ranges
//! however large the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use offload::probe::{self, MediaInfo, ReadAt, LOCAL_BLOCK};
use serde_json::Value;

/// A file read through `ReadAt`, every read counted.
struct Counted {
    file: probe::FileSource,
    reads: usize,
    bytes: u64,
}

impl ReadAt for &mut Counted {
    fn size(&self) -> u64 {
        self.file.size()
    }
    fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.reads += 1;
        let data = self.file.read_at(offset, len)?;
        self.bytes += data.len() as u64;
        Ok(data)
    }
}

/// Probes `path`, returning what it found and how many reads and bytes that took.
fn probed(path: &Path) -> (MediaInfo, usize, u64) {
    let mut counted = Counted {
        file: probe::FileSource::open(path).unwrap(),
        reads: 0,
        bytes: 0,
    };
    let info = probe::probe(&mut counted, LOCAL_BLOCK)
        .unwrap_or_else(|error| panic!("probe {}: {error}", path.display()));
    (info, counted.reads, counted.bytes)
}

fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg (Debian package ffmpeg) is installed");
    assert!(
        output.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

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
    let (info, reads, bytes) = probed(path);
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

/// Makes `path` from ffmpeg's test picture and a tone (and `inputs`), `seconds` long at `size`,
/// encoded as `encoding` says (H.264 and AAC where it says nothing else: ffmpeg takes the last).
fn clip(path: &Path, seconds: u32, size: &str, inputs: &[&str], encoding: &[&str]) {
    let picture = format!("testsrc=duration={seconds}:size={size}:rate=25");
    let tone = format!("sine=frequency=440:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &picture, "-f", "lavfi", "-i", &tone];
    args.extend(inputs);
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]);
    args.extend(encoding);
    let path = path.to_string_lossy();
    args.push(&path);
    ffmpeg(&args);
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

/// The boxes of an MP4 held in memory: (type, whole box).
fn boxes(bytes: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8, "a box this test does not expect");
        out.push((
            bytes[at + 4..at + 8].try_into().unwrap(),
            &bytes[at..at + size],
        ));
        at += size;
    }
    out
}

/// A film over 4 GiB as a camera or a long remux writes it: a 64-bit `mdat` size and a
/// version 1 (64-bit) movie header, the data sparse so the test writes megabytes, not gigabytes.
#[test]
fn mp4_over_4_gib_with_64_bit_sizes_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.mp4");
    clip(&small, 5, "320x240", &[], &[]);
    let original = std::fs::read(&small).unwrap();
    let top = boxes(&original);
    let kinds: Vec<&[u8; 4]> = top.iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        kinds,
        [b"ftyp", b"free", b"mdat", b"moov"],
        "ffmpeg's layout"
    );
    let (ftyp, payload, moov) = (top[0].1, &top[2].1[8..], top[3].1);

    // The 8-byte `free` ffmpeg leaves before `mdat` is room for a 64-bit size: the media data
    // stays where the chunk offsets say.
    let large: u64 = 4_600_000_000;
    let big = dir.path().join("big film.mp4");
    let mut file = std::fs::File::create(&big).unwrap();
    file.write_all(ftyp).unwrap();
    file.write_all(&1u32.to_be_bytes()).unwrap();
    file.write_all(b"mdat").unwrap();
    file.write_all(&(large).to_be_bytes()).unwrap();
    file.write_all(payload).unwrap();
    file.seek(SeekFrom::Start(ftyp.len() as u64 + large))
        .unwrap();

    // The movie header rewritten as version 1: 64-bit dates, timescale, 64-bit duration.
    let mut rebuilt = Vec::new();
    for (kind, whole) in boxes(&moov[8..]) {
        if &kind == b"mvhd" {
            let body = &whole[8..];
            assert_eq!(body[0], 0, "ffmpeg writes version 0");
            let field = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            let mut v1 = vec![1, 0, 0, 0];
            v1.extend(u64::from(field(4)).to_be_bytes());
            v1.extend(u64::from(field(8)).to_be_bytes());
            v1.extend(field(12).to_be_bytes());
            v1.extend(u64::from(field(16)).to_be_bytes());
            v1.extend(&body[20..]);
            rebuilt.extend(((v1.len() + 8) as u32).to_be_bytes());
            rebuilt.extend(b"mvhd");
            rebuilt.extend(v1);
        } else {
            rebuilt.extend(whole);
        }
    }
    file.write_all(&((rebuilt.len() + 8) as u32).to_be_bytes())
        .unwrap();
    file.write_all(b"moov").unwrap();
    file.write_all(&rebuilt).unwrap();
    drop(file);
    assert!(std::fs::metadata(&big).unwrap().len() > 4 << 30);

    let info = agrees_with_ffprobe(&big);
    let (small_info, _, _) = probed(&small);
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
