//! `offload`: the headless daemon and the scripting interface of the engine. Each command group
//! is a file beside this one; each turns its arguments into one call of the engine's service
//! layer (`offload::Engine`) and the answer into lines on the terminal. The rules live in the
//! engine; how an engine action is said on the command line lives in `words.rs`.
//!
//! Exit codes: 0 done, 1 something failed, 2 the command was used wrongly.

mod backend;
mod jobs;
mod library;
mod profile;
mod run;
mod settings;
mod upload;
mod words;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use offload::queue::JobState;
use offload::{Engine, Error};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "offload",
    version,
    about = "Uploads finished downloads to the storage you chose, verified."
)]
struct Cli {
    /// Where the database lives (default: the platform's data folder).
    #[arg(long, global = true, env = "OFFLOAD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print listings as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: watch every profile's folders and upload what finishes arriving.
    Run(run::RunArgs),
    /// Create, list and remove profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Add, change, list, test and remove storage backends.
    #[command(subcommand)]
    Backend(backend::BackendCommand),
    /// Upload files now, showing progress; exits 0 only once every file is verified.
    Upload(upload::UploadArgs),
    /// Hand finished files to the running Offload's queue and return (for download clients'
    /// completion hooks); exits 0 once every file is queued.
    Add(upload::AddArgs),
    /// List upload jobs.
    Jobs {
        /// Only jobs in these states (queued, running, verifying, done, failed, paused, cancelled).
        #[arg(long, value_parser = parse_state)]
        state: Vec<JobState>,
    },
    /// Pause one job, or the whole queue.
    Pause { job: Option<i64> },
    /// Resume one paused job, or the whole queue.
    Resume { job: Option<i64> },
    /// Try a failed or cancelled job again.
    Retry { job: i64 },
    /// Cancel a job.
    Cancel { job: i64 },
    /// Limit upload bandwidth for all jobs, e.g. 10M (bytes per second; 0 or off: none), or by
    /// time of day as rclone's --bwlimit does: "08:00,2M 23:00,off" (days optional: Mon-08:00,2M).
    Limit { rate: String },
    /// The library: what is in storage, its stream URLs, finding what is already there.
    #[command(subcommand, alias = "library")]
    Media(library::MediaCommand),
    /// Print a profile's library as an M3U playlist of stream URLs, for VLC, mpv or Kodi.
    Playlist {
        #[arg(long, default_value = offload::engine::DEFAULT_PROFILE)]
        profile: String,
        /// Print the playlist's own URL instead, to open in a player that is not on this disk.
        #[arg(long)]
        url: bool,
    },
    /// Show or change the stream server's settings; a running Offload moves to them at once.
    Stream(settings::StreamArgs),
    /// Show or change Offload's settings (the same as the desktop app's Settings).
    Settings(settings::SettingsArgs),
    /// Show where the master key that seals secrets lives (creating it on first use).
    Key,
    /// The local HTTP API of a running Offload (for scripts and apps).
    #[command(subcommand)]
    Api(settings::ApiCommand),
}

fn parse_state(text: &str) -> Result<JobState, String> {
    JobState::parse(text).ok_or_else(|| format!("{text:?} is not a job state (queued, running, verifying, done, failed, paused, cancelled)"))
}

/// `10M` → 10 MiB/s, `off` → 0: rclone's rates (see `offload::schedule::parse_rate`).
fn parse_rate(text: &str) -> Result<u64, String> {
    offload::schedule::parse_rate(text).map_err(|error| error.to_string())
}

/// `8M` → 8 MiB, with the suffixes of [`parse_rate`].
fn parse_size(text: &str) -> Result<u64, String> {
    parse_rate(text).map_err(|_| format!("{text:?} is not a size like 256K, 8M or 1G"))
}

/// An error with the exit code it deserves, and what to do about it in the command line's words.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        // Something the user named does not exist or cannot be done as asked: a usage error.
        let code = match error.downcast_ref::<Error>() {
            Some(
                Error::NotFound(_)
                | Error::Invalid(_)
                | Error::Template(_)
                | Error::Path(_)
                | Error::Field(_)
                | Error::Setting { .. },
            ) => 2,
            _ => 1,
        };
        Failure { code, error }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        anyhow::Error::from(error).into()
    }
}

type CliResult<T = ExitCode> = Result<T, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Run(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(dispatch(cli));
    offload::logging::flush();
    outcome
}

fn init_logging(daemon: bool) {
    let default = if daemon {
        "offload=info"
    } else {
        "offload=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OFFLOAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(offload::logging::LogOutput)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

async fn dispatch(cli: Cli) -> ExitCode {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(Engine::default_data_dir);
    let engine = match Engine::open(&data_dir)
        .with_context(|| format!("cannot open Offload's data in {}", data_dir.display()))
    {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(1);
        }
    };
    match command(&engine, cli.command, cli.json).await {
        Ok(code) => code,
        Err(failure) => {
            print_error(&engine, &failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// An error in sentences on stderr, with what to do about it where the engine knows.
fn print_error(engine: &Engine, error: &anyhow::Error) {
    eprintln!("error: {error:#}");
    if let Some(action) = error.downcast_ref::<Error>().and_then(Error::action) {
        eprintln!("  → {}", words::advice(engine, &action));
    }
}

async fn command(engine: &Engine, command: Command, json: bool) -> CliResult {
    match command {
        Command::Run(args) => run::run(engine, args).await,
        Command::Profile(command) => profile::profile(engine, command, json),
        Command::Backend(command) => backend::backend(engine, command, json).await,
        Command::Upload(args) => upload::upload(engine, args, json).await,
        Command::Add(args) => upload::add(engine, args, json).await,
        Command::Jobs { state } => jobs::list(engine, &state, json),
        Command::Pause { job } => jobs::pause(engine, job),
        Command::Resume { job } => jobs::resume(engine, job),
        Command::Retry { job } => jobs::retry(engine, job),
        Command::Cancel { job } => jobs::cancel(engine, job),
        Command::Limit { rate } => jobs::limit(engine, &rate),
        Command::Media(command) => library::media(engine, command, json).await,
        Command::Playlist { profile, url } => library::playlist(engine, &profile, url),
        Command::Stream(args) => settings::stream(engine, args, json),
        Command::Settings(args) => settings::settings(engine, args, json),
        Command::Key => settings::key(engine, json),
        Command::Api(command) => settings::api(engine, command, json),
    }
}

/// The id of the profile a `--profile NAME` flag names, if one was given.
fn profile_id(engine: &Engine, name: Option<&str>) -> offload::Result<Option<i64>> {
    name.map(|name| engine.profile_named(name).map(|profile| profile.id))
        .transpose()
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    offload::summary::human_bytes(bytes as f64)
}
