//! `offload profile …`: profiles and the folders they watch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use offload::profiles::{AfterUpload, NewWatchFolder, Switch};
use offload::{template, Engine};

use crate::{print_json, CliResult};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create a profile.
    Add {
        name: String,
        /// A folder to watch (repeatable).
        #[arg(long, value_name = "DIR")]
        watch: Vec<PathBuf>,
        /// Where files go in storage; tokens: {profile} {relative_path} {filename} {stem} {ext}
        /// {yyyy} {mm} {dd} {series} {season} {episode}.
        #[arg(long, default_value = template::DEFAULT_TEMPLATE)]
        template: String,
        /// What to do with the local file once its remote copy is verified: keep, delete or move:DIR.
        #[arg(long, default_value = "keep", value_parser = parse_after_upload)]
        after_upload: AfterUpload,
        #[command(flatten)]
        folder: FolderArgs,
    },
    /// List profiles with their folders.
    List,
    /// Remove a profile (uploaded files stay in storage).
    Remove { name: String },
    /// Rename a profile.
    Rename { name: String, new_name: String },
    /// Watch another folder for a profile.
    Watch {
        name: String,
        dir: PathBuf,
        #[command(flatten)]
        folder: FolderArgs,
    },
    /// Stop watching a folder (its uploaded files stay in storage).
    Unwatch { name: String, dir: PathBuf },
    /// Upload this profile's files only between these hours (local time), e.g. 01:00-07:00 or
    /// 23:00-07:00; "always" lifts it. A running upload stops at the window's end and goes on
    /// when it opens.
    Window { name: String, window: String },
    /// Keep this profile's library in DIR as .strm files for Kodi, Jellyfin or Emby (as
    /// `offload library export` writes them); a running Offload brings it up to date as items
    /// arrive, change or go. "off" stops (the folder stays as it is).
    Strm { name: String, dir: String },
    /// Whether MP4 and MOV files whose index comes after their media data are uploaded as a copy
    /// with the index first, so players start them at once (on by default). The local file is
    /// never changed.
    Faststart { name: String, setting: OnOff },
    /// Whether MPEG-TS, AVI and FLV files are uploaded remuxed into MP4 (every packet copied,
    /// nothing re-encoded; stored as NAME.mp4), so any player or browser starts and seeks them
    /// from a URL (off by default). Needs ffmpeg; a file with subtitles or audio MP4 cannot carry
    /// is uploaded as it is.
    Remux { name: String, setting: OnOff },
}

/// A setting's two values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

pub(crate) fn parse_after_upload(text: &str) -> Result<AfterUpload, String> {
    AfterUpload::parse(text).map_err(|error| error.to_string())
}

/// How a watched folder is watched.
#[derive(Args, Clone)]
pub struct FolderArgs {
    /// Watch only the top level of the folder.
    #[arg(long)]
    no_recursive: bool,
    /// Upload only files matching these globs (instead of all media files).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Never upload files matching these globs.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
}

impl FolderArgs {
    fn watching(&self, path: PathBuf) -> NewWatchFolder {
        NewWatchFolder {
            path,
            recursive: !self.no_recursive,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

pub fn profile(engine: &Engine, command: ProfileCommand, json: bool) -> CliResult {
    match command {
        ProfileCommand::Add {
            name,
            watch,
            template,
            after_upload,
            folder,
        } => {
            let folders: Vec<NewWatchFolder> = watch
                .into_iter()
                .map(|path| folder.watching(path))
                .collect();
            let created = engine.create_profile(&name, &template, &after_upload, &folders)?;
            println!("created profile {:?}", created.profile.name);
        }
        ProfileCommand::List => {
            let profiles = engine.profiles()?;
            if json {
                print_json(&profiles)?;
            } else {
                for view in &profiles {
                    let window = view
                        .profile
                        .upload_window
                        .as_ref()
                        .map(|window| format!("  uploads between {window}"))
                        .unwrap_or_default();
                    let strm = view
                        .profile
                        .strm_dir
                        .as_ref()
                        .map(|dir| format!("  .strm files in {}", dir.display()))
                        .unwrap_or_default();
                    let faststart = if view.profile.faststart {
                        ""
                    } else {
                        "  MP4s uploaded as they are"
                    };
                    let remux = match (view.profile.remux, view.ffmpeg) {
                        (false, _) => "",
                        (true, true) => "  TS, AVI and FLV remuxed into MP4",
                        (true, false) => {
                            "  TS, AVI and FLV remuxed into MP4 once ffmpeg is installed"
                        }
                    };
                    println!(
                        "{}  template {}  after upload: {}{window}{strm}{faststart}{remux}",
                        view.profile.name, view.profile.remote_template, view.profile.after_upload
                    );
                    for folder in &view.folders {
                        let depth = if folder.recursive {
                            ""
                        } else {
                            " (top level only)"
                        };
                        println!("    watches {}{depth}", folder.path.display());
                    }
                }
            }
        }
        ProfileCommand::Rename { name, new_name } => {
            let profile = engine.profile_named(&name)?;
            engine.rename_profile(profile.id, &new_name)?;
            println!("renamed profile {name:?} to {new_name:?}");
        }
        ProfileCommand::Watch { name, dir, folder } => {
            let profile = engine.profile_named(&name)?;
            let folder = folder.watching(dir);
            engine.add_watch_folder(profile.id, &folder)?;
            println!("{:?} now watches {}", profile.name, folder.path.display());
        }
        ProfileCommand::Unwatch { name, dir } => {
            let profile = engine.profile_named(&name)?;
            engine.unwatch(profile.id, &dir)?;
            println!("{:?} no longer watches {}", profile.name, dir.display());
        }
        ProfileCommand::Window { name, window } => {
            let profile = engine.profile_named(&name)?;
            let window = (window != "always").then_some(window.as_str());
            let profile = engine.set_upload_window(profile.id, window)?;
            match &profile.upload_window {
                Some(window) => println!("{name:?} uploads only between {window}"),
                None => println!("{name:?} uploads at any time"),
            }
        }
        ProfileCommand::Strm { name, dir } => {
            let profile = engine.profile_named(&name)?;
            let dir = match dir.as_str() {
                "off" => None,
                // Only an empty path has no absolute form; the engine refuses it in words.
                dir => Some(std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir))),
            };
            let (profile, report) = engine.set_strm_dir(profile.id, dir.as_deref())?;
            match (&profile.strm_dir, report) {
                (Some(dir), Some(report)) => println!(
                    "{name:?} keeps its library in {} ({} films and episodes there now); point Kodi, Jellyfin or Emby at it",
                    dir.display(),
                    report.written + report.unchanged
                ),
                _ => println!("{name:?} keeps no media centre folder"),
            }
        }
        ProfileCommand::Faststart { name, setting } => {
            switch(engine, &name, Switch::Faststart, setting)?
        }
        ProfileCommand::Remux { name, setting } => switch(engine, &name, Switch::Remux, setting)?,
        ProfileCommand::Remove { name } => {
            let profile = engine.profile_named(&name)?;
            engine.delete_profile(profile.id)?;
            println!("removed profile {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Turns one of a profile's switches on or off and says what the profile now does.
fn switch(engine: &Engine, name: &str, switch: Switch, setting: OnOff) -> CliResult<()> {
    let id = engine.profile_named(name)?.id;
    let profile = engine.set_switch(id, switch, matches!(setting, OnOff::On))?;
    match (switch, setting) {
        (Switch::Faststart, OnOff::On) => {
            println!("{name:?} uploads MP4s with their index first, ready to stream")
        }
        (Switch::Faststart, OnOff::Off) => println!("{name:?} uploads MP4s as they are"),
        (Switch::Remux, OnOff::On) => {
            println!("{name:?} uploads MPEG-TS, AVI and FLV files remuxed into MP4 (packets copied, nothing re-encoded)");
            if !engine.profile(profile.id)?.ffmpeg {
                println!("ffmpeg is not installed, so they are uploaded as they are until it is: install it from your system's packages (apt install ffmpeg, brew install ffmpeg, winget install ffmpeg) or https://ffmpeg.org/download.html, then nothing else needs doing");
            }
        }
        (Switch::Remux, OnOff::Off) => {
            println!("{name:?} uploads MPEG-TS, AVI and FLV files as they are")
        }
    }
    Ok(())
}
