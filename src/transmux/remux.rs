//! Remux: an MPEG-TS, AVI or Flash video put into MP4 by `ffmpeg`, where it is installed, so
//! that every player and browser can start it from a URL (and seek in it without reading it
//! through). Every video and audio packet is copied as it is, never re-encoded; text subtitles
//! become MP4's own timed text; the index goes first. What MP4 cannot carry — bitmap subtitles
//! (DVB, Blu-ray), teletext, audio ffmpeg will not put in MP4 — keeps the file as it is, so
//! nothing is lost; so does an MP4 that does not hold every track for the original's length.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::probe::{self, MediaInfo};

/// The names of the files remuxed.
const EXTENSIONS: [&str; 5] = ["ts", "m2ts", "mts", "avi", "flv"];
/// Subtitles MP4 carries once converted to its timed text (text in, text out).
const TEXT_SUBTITLES: [&str; 6] = ["subrip", "srt", "ass", "ssa", "webvtt", "mov_text"];
/// How far the MP4's length may be from the original's: the two are read differently (first and
/// last timestamps in a TS, the index in an MP4), never further apart than a frame or two.
const LENGTH_SLACK_MS: u64 = 1_000;

/// Why a file is uploaded as it is rather than remuxed.
#[derive(Debug, thiserror::Error)]
pub enum RemuxError {
    #[error("ffmpeg is not installed")]
    NoFfmpeg,
    #[error("its {0} subtitles cannot be carried in MP4")]
    Uncarried(String),
    #[error("what it holds could not be read: {0}")]
    Unreadable(#[from] probe::ProbeError),
    #[error("ffmpeg could not put it in MP4: {0}")]
    Ffmpeg(String),
    #[error("the MP4 ffmpeg wrote {0}")]
    Incomplete(String),
    #[error("it could not be read or the MP4 written: {0}")]
    Io(#[from] std::io::Error),
    #[error("the remux was stopped")]
    Stopped,
}

type Result<T> = std::result::Result<T, RemuxError>;

/// A finished remux.
#[derive(Debug)]
pub struct Remuxed {
    pub size: u64,
    /// The original's SHA-256, read while ffmpeg wrote the MP4.
    pub source_sha256: [u8; 32],
    /// What the MP4 holds.
    pub info: MediaInfo,
}

/// Whether a file of this name is one a remux applies to.
pub fn applies(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            EXTENSIONS
                .iter()
                .any(|own| own.eq_ignore_ascii_case(extension))
        })
}

/// The name the MP4 of `remote` (a `/`-separated path) is stored under: its extension `.mp4`.
pub fn stored_name(remote: &str) -> String {
    let name_at = remote.rfind('/').map_or(0, |slash| slash + 1);
    match remote[name_at..].rfind('.') {
        Some(dot) if dot > 0 => format!("{}.mp4", &remote[..name_at + dot]),
        _ => format!("{remote}.mp4"),
    }
}

/// ffmpeg, where it is installed; the remux needs it.
pub fn ffmpeg() -> Option<PathBuf> {
    crate::platform::find_program("ffmpeg")
}

/// Puts `source` into the MP4 `out` (which must not exist), checks the MP4 holds what the
/// original does, and hashes the original meanwhile. `stop` is asked at each of ffmpeg's
/// progress reports (twice a second); when it says so, ffmpeg is ended.
pub async fn remux(
    ffmpeg: &Path,
    source: &Path,
    out: &Path,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Remuxed> {
    let original = blocking({
        let source = source.to_owned();
        move || probe::probe_file(&source)
    })
    .await??;
    carried(&original)?;
    let failed = Arc::new(AtomicBool::new(false));
    let hashing = tokio::task::spawn_blocking({
        let (source, failed) = (source.to_owned(), failed.clone());
        move || super::sha256_of(&source, &failed)
    });
    let written = run(ffmpeg, source, out, stop).await;
    if written.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    let digest = hashing
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the hashing thread failed")));
    written?;
    let info = blocking({
        let out = out.to_owned();
        move || probe::probe_file(&out)
    })
    .await?
    .map_err(|error| RemuxError::Incomplete(format!("cannot be read back: {error}")))?;
    holds_all_of(&original, &info)?;
    Ok(Remuxed {
        size: tokio::fs::metadata(out).await?.len(),
        source_sha256: digest?,
        info,
    })
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| RemuxError::Io(std::io::Error::other("a worker thread failed")))
}

/// Refuses what MP4 cannot carry without converting it to something else.
fn carried(info: &MediaInfo) -> Result<()> {
    match info
        .subtitles
        .iter()
        .find(|track| !TEXT_SUBTITLES.contains(&track.codec.as_str()))
    {
        Some(track) => Err(RemuxError::Uncarried(track.codec.replace('_', " "))),
        None => Ok(()),
    }
}

/// ffmpeg's arguments: every video, audio and subtitle stream (not the broadcast's data streams,
/// which no player reads), packets copied, text subtitles as MP4 timed text, the index first,
/// and no version or time stamped in, so a second run of the same file writes the same bytes
/// (an interrupted upload resumes with them).
fn arguments(source: &Path, out: &Path) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = ["-nostdin", "-v", "error", "-nostats"]
        .into_iter()
        .chain(["-progress", "pipe:1", "-fflags", "+bitexact", "-i"])
        .map(OsString::from)
        .collect();
    arguments.push(source.into());
    arguments.extend(
        [
            "-map",
            "0:v?",
            "-map",
            "0:a?",
            "-map",
            "0:s?",
            "-c",
            "copy",
            "-c:s",
            "mov_text",
            "-map_metadata",
            "0",
            "-flags:v",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ]
        .map(OsString::from),
    );
    arguments.push(out.into());
    arguments
}

async fn run(
    ffmpeg: &Path,
    source: &Path,
    out: &Path,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<()> {
    let mut child = tokio::process::Command::new(ffmpeg)
        .args(arguments(source, out))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(progress), Some(mut errors)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RemuxError::Io(std::io::Error::other(
            "ffmpeg's output is not readable",
        )));
    };
    // Read beside the progress, so a talkative ffmpeg never blocks on a full pipe.
    let said = tokio::spawn(async move {
        let mut said = String::new();
        let _ = errors.read_to_string(&mut said).await;
        said
    });
    let mut reports = BufReader::new(progress).lines();
    while let Some(_line) = reports.next_line().await? {
        if stop() {
            let _ = child.kill().await;
            return Err(RemuxError::Stopped);
        }
    }
    let status = child.wait().await?;
    let said = said.await.unwrap_or_default();
    if !status.success() {
        return Err(RemuxError::Ffmpeg(first_complaint(&said)));
    }
    Ok(())
}

/// ffmpeg's first line of complaint (the later ones only say that it gave up), without the
/// `[mp4 @ 0x55…]` it puts before it.
fn first_complaint(said: &str) -> String {
    said.lines()
        .map(|line| match (line.starts_with('['), line.find("] ")) {
            (true, Some(end)) => &line[end + 2..],
            _ => line,
        })
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("it gave no reason")
        .to_owned()
}

/// The MP4 has the original's tracks and its length: nothing was dropped on the way.
fn holds_all_of(original: &MediaInfo, mp4: &MediaInfo) -> Result<()> {
    let lacks = |what: String| Err(RemuxError::Incomplete(what));
    if mp4.container != probe::Container::Mp4 {
        return lacks("is not an MP4".into());
    }
    let video = |info: &MediaInfo| info.video.as_ref().map(|video| video.codec.clone());
    if video(original) != video(mp4) {
        return lacks(format!(
            "has video {:?} where the original has {:?}",
            video(mp4),
            video(original)
        ));
    }
    for (what, had, has) in [
        ("audio", original.audio.len(), mp4.audio.len()),
        ("subtitle", original.subtitles.len(), mp4.subtitles.len()),
    ] {
        if had != has {
            return lacks(format!(
                "has {has} {what} tracks where the original has {had}"
            ));
        }
    }
    if let (Some(had), Some(has)) = (original.duration_ms, mp4.duration_ms) {
        if had.abs_diff(has) > LENGTH_SLACK_MS {
            return lacks(format!(
                "lasts {:.1} s where the original lasts {:.1} s",
                has as f64 / 1000.0,
                had as f64 / 1000.0
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Container, Track, Video};

    fn info(container: Container, subtitles: &[&str], duration_ms: u64) -> MediaInfo {
        MediaInfo {
            container,
            duration_ms: Some(duration_ms),
            video: Some(Video {
                codec: "h264".into(),
                width: Some(1920),
                height: Some(1080),
            }),
            audio: vec![Track {
                codec: "aac".into(),
                language: Some("eng".into()),
            }],
            subtitles: subtitles
                .iter()
                .map(|codec| Track {
                    codec: (*codec).into(),
                    language: None,
                })
                .collect(),
        }
    }

    #[test]
    fn applies_to_transport_streams_avi_and_flash_video_by_name() {
        for name in ["a.ts", "b.M2TS", "c.mts", "d.avi", "e.FLV"] {
            assert!(applies(Path::new(name)), "{name}");
        }
        for name in ["a.mp4", "b.mkv", "ts", "c.tsx"] {
            assert!(!applies(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn stores_the_mp4_under_the_same_name() {
        assert_eq!(stored_name("Films/A (2020)/A.ts"), "Films/A (2020)/A.mp4");
        assert_eq!(stored_name("Shows/S.01/ep.1.m2ts"), "Shows/S.01/ep.1.mp4");
        assert_eq!(stored_name("x/.hidden"), "x/.hidden.mp4");
        assert_eq!(stored_name("plain"), "plain.mp4");
    }

    #[test]
    fn carries_text_subtitles_and_refuses_bitmaps_and_teletext() {
        assert!(carried(&info(Container::Mpegts, &["subrip"], 1)).is_ok());
        for codec in ["dvb_subtitle", "dvb_teletext", "hdmv_pgs_subtitle"] {
            let refused = carried(&info(Container::Mpegts, &["subrip", codec], 1)).unwrap_err();
            assert!(matches!(refused, RemuxError::Uncarried(_)), "{codec}");
        }
        assert_eq!(
            carried(&info(Container::Mpegts, &["dvb_teletext"], 1))
                .unwrap_err()
                .to_string(),
            "its dvb teletext subtitles cannot be carried in MP4"
        );
    }

    #[test]
    fn says_ffmpegs_first_complaint_without_its_prefix() {
        let said = "[mp4 @ 0x55f73cfa4dc0] Could not find tag for codec pcm_s16le in stream #1, codec not currently supported in container\nCould not write header for output file #0 (incorrect codec parameters ?): Invalid argument\nError initializing output stream 0:1 -- \n";
        assert_eq!(
            first_complaint(said),
            "Could not find tag for codec pcm_s16le in stream #1, codec not currently supported in container"
        );
        assert_eq!(first_complaint("\n"), "it gave no reason");
    }

    #[test]
    fn an_mp4_missing_a_track_or_a_stretch_is_refused() {
        let original = info(Container::Mpegts, &["subrip"], 60_000);
        assert!(holds_all_of(&original, &info(Container::Mp4, &["mov_text"], 60_400)).is_ok());
        assert!(holds_all_of(&original, &info(Container::Mp4, &[], 60_000)).is_err());
        assert!(holds_all_of(&original, &info(Container::Mp4, &["mov_text"], 30_000)).is_err());
        assert!(
            holds_all_of(&original, &info(Container::Matroska, &["mov_text"], 60_000)).is_err()
        );
        let mut silent = info(Container::Mp4, &["mov_text"], 60_000);
        silent.audio.clear();
        assert!(holds_all_of(&original, &silent).is_err());
    }
}
