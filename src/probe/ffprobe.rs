//! The fallback for containers the probes here do not read (AVI, FLV, WMV, MPEG program
//! streams…): `ffprobe`, where ffmpeg is installed, asked for the same facts. A file or a URL
//! (ffprobe reads a URL by Range, as the probes here do).

use std::ffi::OsStr;
use std::process::Command;

use serde_json::Value;

use super::{language, Container, MediaInfo, ProbeError, Result, Track, Video};

/// How long ffprobe may wait on a network read, in microseconds (its own unit).
const NETWORK_TIMEOUT_US: &str = "30000000";

/// What ffprobe says `input` holds; `Unrecognised` where ffprobe is not installed or cannot
/// read it either.
pub fn ffprobe(input: &OsStr) -> Result<MediaInfo> {
    let Some(program) = crate::platform::find_program("ffprobe") else {
        return Err(ProbeError::Unrecognised);
    };
    let mut command = Command::new(program);
    command.args([
        "-v",
        "error",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
    ]);
    if input.to_string_lossy().starts_with("http") {
        command.args(["-rw_timeout", NETWORK_TIMEOUT_US]);
    }
    let output = command.arg(input).output()?;
    if !output.status.success() {
        return Err(ProbeError::Unrecognised);
    }
    let report: Value =
        serde_json::from_slice(&output.stdout).map_err(|_| ProbeError::Unrecognised)?;
    Ok(from_report(&report))
}

fn from_report(report: &Value) -> MediaInfo {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let format = &report["format"];
    let container = match format["format_name"].as_str().unwrap_or_default() {
        "avi" => Container::Avi,
        "flv" => Container::Flv,
        _ => Container::Other,
    };
    let mut info = MediaInfo {
        container,
        duration_ms: format["duration"]
            .as_str()
            .and_then(|seconds| seconds.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(|seconds| (seconds * 1000.0).round() as u64),
        video: None,
        audio: Vec::new(),
        subtitles: Vec::new(),
    };
    for stream in report["streams"].as_array().into_iter().flatten() {
        let codec = text(&stream["codec_name"]).unwrap_or_else(|| "unknown".into());
        let track = || Track {
            codec: codec.clone(),
            language: stream["tags"]["language"].as_str().and_then(language),
        };
        match stream["codec_type"].as_str() {
            // A cover picture is a video stream to ffprobe, and never the film.
            Some("video") if stream["disposition"]["attached_pic"] == 1 => {}
            Some("video") if info.video.is_none() => {
                let size = |key: &str| stream[key].as_u64().and_then(|n| u32::try_from(n).ok());
                info.video = Some(Video {
                    codec: codec.clone(),
                    width: size("width"),
                    height: size("height"),
                });
            }
            Some("audio") => info.audio.push(track()),
            Some("subtitle") => info.subtitles.push(track()),
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobes_report_becomes_the_same_facts() {
        let report = serde_json::json!({
            "format": { "format_name": "avi", "duration": "3.040000" },
            "streams": [
                { "codec_type": "video", "codec_name": "mpeg4", "width": 320, "height": 240 },
                { "codec_type": "audio", "codec_name": "mp3", "tags": { "language": "fre" } },
                { "codec_type": "video", "codec_name": "mjpeg", "disposition": { "attached_pic": 1 } },
                { "codec_type": "subtitle", "codec_name": "subrip", "tags": { "language": "und" } }
            ]
        });
        let info = from_report(&report);
        assert_eq!(info.container, Container::Avi);
        assert_eq!(info.duration_ms, Some(3040));
        assert_eq!(
            info.video,
            Some(Video {
                codec: "mpeg4".into(),
                width: Some(320),
                height: Some(240)
            })
        );
        assert_eq!(info.audio[0].language.as_deref(), Some("fre"));
        assert_eq!(info.subtitles[0].language, None);
    }
}
