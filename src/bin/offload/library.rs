//! `offload media …` and `offload playlist`: the library, and the URLs players open.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use indicatif::ProgressBar;
use offload::engine::BackendView;
use offload::library::LibraryItem;
use offload::probe::MediaInfo;
use offload::stream::StreamSettings;
use offload::Engine;

use crate::{human_bytes, print_json, CliResult};

#[derive(Subcommand)]
pub enum MediaCommand {
    /// List uploaded media and episodes.
    List {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print the stream URL of one item, for a media player.
    Url {
        /// The id `offload media list` shows.
        id: i64,
        /// The id is an episode's.
        #[arg(long)]
        episode: bool,
    },
    /// Find what storage already holds (uploaded by another computer or tool) and what was
    /// deleted or replaced there; nothing in storage is changed.
    Scan {
        #[arg(long)]
        profile: Option<String>,
        /// Only this backend of the profile.
        #[arg(long, requires = "profile")]
        backend: Option<String>,
    },
    /// Write a profile's library as .strm files (one stream URL each) into DIR, laid out for
    /// Kodi, Jellyfin and Emby (Films/Title (Year)/, Shows/Series/Season 01/); run it again to
    /// bring the folder up to date. Only files Offload wrote there are ever removed.
    Export {
        #[arg(long, default_value = offload::engine::DEFAULT_PROFILE)]
        profile: String,
        /// The folder to keep the .strm files in.
        #[arg(long, value_name = "DIR")]
        strm: std::path::PathBuf,
    },
    /// Delete an item's remote copy and drop it from the library; the local file stays.
    Remove {
        /// The id `offload media list` shows.
        id: i64,
        /// The id is an episode's.
        #[arg(long)]
        episode: bool,
    },
}

fn item(id: i64, episode: bool) -> LibraryItem {
    if episode {
        LibraryItem::Episode(id)
    } else {
        LibraryItem::Media(id)
    }
}

pub async fn media(engine: &Engine, command: MediaCommand, json: bool) -> CliResult {
    match command {
        MediaCommand::List { profile } => {
            let rows = engine.library(crate::profile_id(engine, profile.as_deref())?)?;
            if json {
                print_json(&rows)?;
                return Ok(ExitCode::SUCCESS);
            }
            for row in &rows {
                let entry = &row.entry;
                println!(
                    "{:>12}  {:<40}  {:>10}  {:<36}  {}",
                    entry.item.to_string(),
                    entry.title,
                    human_bytes(entry.size.unwrap_or(0)),
                    entry.media.as_ref().map(media_line).unwrap_or_default(),
                    entry.storage_path.as_deref().unwrap_or("")
                );
            }
            if rows.is_empty() {
                println!("the library is empty");
            }
        }
        MediaCommand::Url { id, episode } => {
            println!("{}", engine.stream_url(item(id, episode))?);
            warn_if_stream_server_is_down(engine);
        }
        MediaCommand::Scan { profile, backend } => {
            return scan(engine, profile.as_deref(), backend.as_deref(), json).await;
        }
        MediaCommand::Export { profile, strm } => {
            let profile = engine.profile_named(&profile)?;
            let report = engine.export_strm(profile.id, &strm)?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "{}: {} written, {} unchanged, {} removed; point Kodi, Jellyfin or Emby at it (films under Films, series under Shows)",
                    strm.display(),
                    report.written,
                    report.unchanged,
                    report.removed
                );
            }
            warn_if_stream_server_is_down(engine);
        }
        MediaCommand::Remove { id, episode } => {
            let item = item(id, episode);
            let title = engine.library_item(item)?.title;
            engine.remove_library_item(item).await?;
            println!("removed {title} from storage and the library; the local file stays");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a file holds, as a person reads it: `1:52:04 · 1080p · HEVC · 2 audio · 3 subs`.
fn media_line(media: &MediaInfo) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = media.duration_ms {
        let seconds = (ms + 500) / 1000;
        let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        parts.push(if hours > 0 {
            format!("{hours}:{minutes:02}:{seconds:02}")
        } else {
            format!("{minutes}:{seconds:02}")
        });
    }
    if let Some(video) = &media.video {
        if let Some(label) = resolution(video.width, video.height) {
            parts.push(label);
        }
        parts.push(match video.codec.as_str() {
            "h264" => "H.264".to_owned(),
            "mpeg2video" => "MPEG-2".to_owned(),
            "mpeg4" => "MPEG-4".to_owned(),
            other => other.to_ascii_uppercase(),
        });
    }
    match media.audio.len() {
        0 => {}
        1 => parts.push(media.audio[0].codec.to_ascii_uppercase()),
        n => parts.push(format!("{n} audio")),
    }
    match media.subtitles.len() {
        0 => {}
        1 => parts.push("1 sub".to_owned()),
        n => parts.push(format!("{n} subs")),
    }
    parts.join(" · ")
}

/// The name people give a picture size: by its width, so that a 1920×800 film is 1080p.
fn resolution(width: Option<u32>, height: Option<u32>) -> Option<String> {
    let label = match (width.unwrap_or(0), height.unwrap_or(0)) {
        (w, h) if w >= 3800 || h >= 2100 => "2160p",
        (w, h) if w >= 2500 || h >= 1400 => "1440p",
        (w, h) if w >= 1900 || h >= 1000 => "1080p",
        (w, h) if w >= 1200 || h >= 700 => "720p",
        (_, 0) => return None,
        (_, h) => return Some(format!("{h}p")),
    };
    Some(label.to_owned())
}

pub fn playlist(engine: &Engine, profile: &str, url: bool) -> CliResult {
    let profile = engine.profile_named(profile)?;
    if url {
        println!("{}", engine.playlist_url(profile.id)?);
    } else {
        print!("{}", engine.playlist(profile.id)?);
    }
    warn_if_stream_server_is_down(engine);
    Ok(ExitCode::SUCCESS)
}

/// The URLs only play while `offload run` or the desktop app serves them; say so on stderr, so
/// that the printed URLs can still be redirected into a file.
fn warn_if_stream_server_is_down(engine: &Engine) {
    let Ok(settings) = engine.settings() else {
        return;
    };
    let stream = StreamSettings::from_settings(&settings);
    let mut address = stream.address();
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_err() {
        eprintln!(
            "note: nothing is serving {} right now; these URLs play while `offload run` or the Offload app runs",
            stream.base_url()
        );
    }
}

/// Scans the backends named (one, a profile's, or all); one that fails is
/// reported and the others are still scanned.
async fn scan(
    engine: &Engine,
    profile: Option<&str>,
    backend: Option<&str>,
    json: bool,
) -> CliResult {
    let profile_id = crate::profile_id(engine, profile)?;
    let backend_id = match (profile_id, backend) {
        (Some(profile_id), Some(name)) => Some(engine.backend_named(profile_id, name)?.id),
        _ => None,
    };
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut progress = |backend: &BackendView, found: u64| {
        bar.set_message(format!("scanning {}: {found} found", backend.name))
    };
    let scans = engine
        .scan_library(profile_id, backend_id, &mut progress)
        .await?;
    bar.finish_and_clear();
    if scans.is_empty() && !json {
        println!("there is no storage to look through: add some with `offload backend add`");
    }
    let mut failed = false;
    let mut results = Vec::new();
    for scan in scans {
        let name = &scan.backend.name;
        match scan.outcome {
            Ok(report) => {
                if !json {
                    println!(
                        "Found {} items in {name} ({} new, {} changed, {} gone)",
                        report.found, report.added, report.changed, report.gone
                    );
                }
                results.push(serde_json::json!({ "backend": name, "backend_id": scan.backend.id, "report": report }));
            }
            Err(error) => {
                failed = true;
                let message = error.to_string();
                crate::print_error(
                    engine,
                    &anyhow::Error::from(error).context(format!("cannot scan {name}")),
                );
                results.push(serde_json::json!({ "backend": name, "backend_id": scan.backend.id, "error": message }));
            }
        }
    }
    if json {
        print_json(&results)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
