//! Real media for real players: a small video made with ffmpeg, and ffprobe/ffmpeg reading it
//! over HTTP the way VLC or mpv would.

#![allow(dead_code)]

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

/// A 5-second MPEG-4 video with its index (`moov`) first, as Offload stores MP4s: the bytes
/// stored are the bytes on disk, so what players read by Range can be checked byte for byte.
/// (Late-index files, which Offload rewrites, are tests/faststart.rs's.)
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
            "-movflags",
            "+faststart",
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

/// The width and height of the first video stream ffprobe finds at `url`.
pub fn stream_sizes(url: &str) -> (u64, u64) {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("ffprobe");
    assert!(output.status.success(), "ffprobe {url}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stream = &report["streams"][0];
    (
        stream["width"].as_u64().expect("a width"),
        stream["height"].as_u64().expect("a height"),
    )
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

pub fn ffmpeg(args: &[&str]) {
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

/// Makes `path` from ffmpeg's test picture and a tone (and `inputs`), `seconds` long at `size`,
/// encoded as `encoding` says (H.264 and AAC where it says nothing else: ffmpeg takes the last).
pub fn clip(path: &Path, seconds: u32, size: &str, inputs: &[&str], encoding: &[&str]) {
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

/// The boxes of an MP4 held in memory: (type, whole box).
pub fn boxes(bytes: &[u8]) -> Vec<([u8; 4], &[u8])> {
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

/// Writes `out`: the late-index MP4 `small` (as ffmpeg writes it: `ftyp`, an 8-byte `free`,
/// `mdat`, `moov`) grown to `data` bytes of media data the way a long film is, with a 64-bit
/// `mdat` size and a version 1 (64-bit) movie header. The added data is a hole in a sparse file.
pub fn sparse_mp4(small: &Path, data: u64, out: &Path) {
    let original = std::fs::read(small).unwrap();
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
    let mut file = std::fs::File::create(out).unwrap();
    file.write_all(ftyp).unwrap();
    file.write_all(&1u32.to_be_bytes()).unwrap();
    file.write_all(b"mdat").unwrap();
    file.write_all(&data.to_be_bytes()).unwrap();
    file.write_all(payload).unwrap();
    file.seek(SeekFrom::Start(ftyp.len() as u64 + data))
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
}

/// What `offload`'s probe finds in `path`, with how many reads and bytes it took.
pub fn probe_counted(path: &Path) -> (offload::probe::MediaInfo, usize, u64) {
    let file = offload::probe::FileSource::open(path).unwrap();
    probe_counted_from(file, offload::probe::LOCAL_BLOCK)
}

/// What `offload`'s probe finds in `source`, read `block` bytes at a time, with how many reads
/// and bytes it took.
pub fn probe_counted_from(
    source: impl offload::probe::ReadAt,
    block: usize,
) -> (offload::probe::MediaInfo, usize, u64) {
    use offload::probe::ReadAt;

    struct Counted<S> {
        source: S,
        reads: usize,
        bytes: u64,
    }
    impl<S: ReadAt> ReadAt for &mut Counted<S> {
        fn size(&self) -> u64 {
            self.source.size()
        }
        fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.reads += 1;
            let data = self.source.read_at(offset, len)?;
            self.bytes += data.len() as u64;
            Ok(data)
        }
    }

    let mut counted = Counted {
        source,
        reads: 0,
        bytes: 0,
    };
    let info =
        offload::probe::probe(&mut counted, block).unwrap_or_else(|error| panic!("probe: {error}"));
    (info, counted.reads, counted.bytes)
}
