//! What a media file holds — its container, duration, video codec and picture size, audio and
//! subtitle tracks — read from its headers and indexes alone: a few positioned reads however
//! large the file, nothing decoded. The same probes read a local file before it is uploaded and
//! a stored object through Range reads.
//!
//! The parsers are Offload's own rather than the `mp4` or `matroska` crates': those read through
//! `Read + Seek` and load whole indexes (an MP4's sample tables run to megabytes for a film),
//! where a probe must skip them and count what it reads; and the MP4 box walk is the one the
//! faststart rewrite needs as well.

mod bits;
mod ffprobe;
mod matroska;
mod mp4;
mod mpegts;
mod source;

pub(crate) use bits::be;
pub use ffprobe::ffprobe;
pub use mp4::{children as mp4_boxes, sniff as looks_like_mp4, BoxHeader};
pub use source::{FileSource, ReadAt, Reader};

use serde::{Deserialize, Serialize};

/// How much a probe of a local file reads at a time: small, because local reads are cheap and
/// every byte counts against reading "only the headers".
pub const LOCAL_BLOCK: usize = 16 * 1024;
/// How much a probe through storage reads at a time: each read is a request, so fewer and larger.
pub const REMOTE_BLOCK: usize = 256 * 1024;

/// What a media file holds, as far as its headers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct MediaInfo {
    pub container: Container,
    /// Whole milliseconds; absent where the file does not say.
    pub duration_ms: Option<u64>,
    /// The first video track (a second one is rare and never the film).
    pub video: Option<Video>,
    pub audio: Vec<Track>,
    pub subtitles: Vec<Track>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Matroska,
    Webm,
    Mpegts,
    /// Read by ffprobe (the fallback): AVI, Flash video, and the rest ffprobe names otherwise.
    Avi,
    Flv,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Video {
    /// ffmpeg's name for the codec (`h264`, `hevc`, `av1`…), as ffprobe says it.
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// An audio or subtitle track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Track {
    /// ffmpeg's name for the codec (`aac`, `eac3`, `subrip`…).
    pub codec: String,
    /// The ISO 639-2 code the file gives, where it gives one (never `und`).
    pub language: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("not a format Offload reads the headers of (MP4/MOV, Matroska/WebM, MPEG-TS), and ffprobe (from ffmpeg) is not installed or could not read it either")]
    Unrecognised,
    #[error("its {format} headers are damaged: {what}")]
    Malformed { format: &'static str, what: String },
    #[error("it could not be read: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, ProbeError>;

/// Reads what `source` holds, `block` bytes at a time.
pub fn probe(source: impl ReadAt, block: usize) -> Result<MediaInfo> {
    let mut reader = Reader::new(source, block);
    let head = reader.up_to(0, 200)?;
    if mp4::sniff(&head) {
        mp4::probe(&mut reader)
    } else if matroska::sniff(&head) {
        matroska::probe(&mut reader)
    } else if let Some(packet) = mpegts::sniff(&mut reader)? {
        mpegts::probe(&mut reader, packet)
    } else {
        Err(ProbeError::Unrecognised)
    }
}

/// Reads what the local file at `path` holds; a format the probes here do not read is asked of
/// ffprobe, where it is installed.
pub fn probe_file(path: &std::path::Path) -> Result<MediaInfo> {
    match probe(FileSource::open(path)?, LOCAL_BLOCK) {
        Err(ProbeError::Unrecognised) if for_ffprobe(path) => ffprobe(path.as_os_str()),
        other => other,
    }
}

/// Whether a file of this name that the probes here do not recognise is worth asking ffprobe:
/// not when its name says a format they read (it is damaged or misnamed, and ffprobe would cost
/// a process per file for nothing — a thousand downloads are a thousand processes).
pub fn for_ffprobe(name: &std::path::Path) -> bool {
    const READ_HERE: [&str; 11] = [
        "mp4", "m4v", "m4a", "mov", "3gp", "mkv", "mka", "webm", "ts", "m2ts", "mts",
    ];
    name.extension()
        .and_then(|extension| extension.to_str())
        .is_none_or(|extension| {
            !READ_HERE
                .iter()
                .any(|own| own.eq_ignore_ascii_case(extension))
        })
}

/// An ISO 639-2 code as the library keeps it: lower case, `und` (undetermined) as none.
fn language(code: &str) -> Option<String> {
    let code = code.trim_matches(char::from(0)).trim().to_ascii_lowercase();
    (!code.is_empty() && code != "und" && code.chars().all(|c| c.is_ascii_alphabetic()))
        .then_some(code)
}

fn malformed(format: &'static str, what: impl Into<String>) -> ProbeError {
    ProbeError::Malformed {
        format,
        what: what.into(),
    }
}
