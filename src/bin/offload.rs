//! `offload`: the headless daemon and the scripting interface of the engine.
//!
//! Exit codes: 0 done, 1 something failed, 2 the command was used wrongly.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use offload::backends::{self, BackendForm, BackendSettings};
use offload::engine::{parse_duration, DaemonOptions};
use offload::library;
use offload::profiles::{self, AfterUpload, NewWatchFolder};
use offload::queue::{self, ClaimMode, Enqueued, Event, JobState, QueueOptions};
use offload::storage::s3::Provider;
use offload::storage::BackendKind;
use offload::stream::StreamSettings;
use offload::{template, Engine, Error};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

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
    Run(RunArgs),
    /// Create, list and remove profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Add, list, test and remove storage backends.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Upload files now, showing progress; exits 0 only once every file is verified.
    Upload(UploadArgs),
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
    /// Limit upload bandwidth for all jobs, e.g. 10M (bytes per second); 0 removes the limit.
    Limit {
        #[arg(value_parser = parse_rate)]
        rate: u64,
    },
    /// The library of uploaded media.
    #[command(subcommand)]
    Media(MediaCommand),
    /// Print a profile's library as an M3U playlist of stream URLs, for VLC, mpv or Kodi.
    Playlist {
        #[arg(long, default_value = offload::engine::DEFAULT_PROFILE)]
        profile: String,
        /// Print the playlist's own URL instead, to open in a player that is not on this disk.
        #[arg(long)]
        url: bool,
    },
    /// Show or change the stream server's settings (used by the next `offload run`).
    Stream(StreamArgs),
    /// Show where the master key that seals secrets lives (creating it on first use).
    Key,
}

#[derive(Args)]
struct RunArgs {
    /// How long a file must hold still before it counts as finished (default: the setting
    /// watch.quiet_period_secs, else 5s).
    #[arg(long, value_parser = parse_duration, env = "OFFLOAD_QUIET_PERIOD")]
    quiet_period: Option<Duration>,
    /// How often every watched folder is scanned in full, for changes the OS did not report.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    rescan_interval: Duration,
    /// Files uploaded at once (default: the setting queue.workers, else 2).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// Attempts before an upload with temporary errors is marked failed.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// Do not create the default profile (downloads folder → local library) on a fresh install.
    #[arg(long)]
    no_default_profile: bool,
    /// Do not serve stream URLs (see `offload stream`).
    #[arg(long)]
    no_stream: bool,
}

#[derive(Args)]
struct StreamArgs {
    /// The port stream URLs use. Changing it changes every URL.
    #[arg(long)]
    port: Option<u16>,
    /// The address to listen on. Anything but 127.0.0.1 or ::1 makes the server reachable from
    /// other machines (URLs still need their tokens).
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// How long a presigned URL minted for one playback stays valid, e.g. 30m or 4h.
    #[arg(long, value_parser = parse_duration)]
    url_lifetime: Option<Duration>,
}

#[derive(Subcommand)]
enum ProfileCommand {
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
}

/// How a watched folder is watched.
#[derive(Args, Clone)]
struct FolderArgs {
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

#[derive(Subcommand)]
enum BackendCommand {
    /// Add a storage backend to a profile (an S3 backend is tested before it is saved).
    Add(Box<BackendAddArgs>),
    /// Change a backend's settings (a new key, endpoint or name); a running Offload uses them
    /// for its next upload, and the backend's waiting and failed uploads go again.
    Edit(Box<BackendEditArgs>),
    /// List backends.
    List {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Check that a backend works, and say what to fix if not.
    Test {
        name: String,
        #[arg(long)]
        profile: String,
    },
    /// Make a backend the profile's default.
    Default {
        name: String,
        #[arg(long)]
        profile: String,
    },
    /// Remove a backend (its files stay where they are).
    Remove {
        name: String,
        #[arg(long)]
        profile: String,
    },
    /// Sign in to a Google Drive or OneDrive backend's account (again, when it was disconnected).
    Connect {
        name: String,
        #[arg(long)]
        profile: String,
        /// Only print the sign-in address; do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
    },
}

#[derive(Args)]
struct BackendAddArgs {
    name: String,
    #[arg(long)]
    profile: String,
    #[arg(long = "type", value_parser = parse_kind)]
    kind: BackendKind,
    /// Make it the profile's default backend.
    #[arg(long)]
    default: bool,
    #[command(flatten)]
    settings: BackendFlags,
}

#[derive(Args)]
struct BackendEditArgs {
    name: String,
    #[arg(long)]
    profile: String,
    /// Give the backend a new name.
    #[arg(long, value_name = "NEW_NAME")]
    rename: Option<String>,
    #[command(flatten)]
    settings: BackendFlags,
}

/// A backend's settings, as `backend add` takes them and `backend edit` changes them (a flag
/// left out keeps what the backend has; an empty value clears an optional one).
#[derive(Args)]
struct BackendFlags {
    /// local: the library folder (default: ~/Videos/Offload).
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// s3: whose S3 it is (aws, r2, b2, wasabi, minio, garage, other; default other); fills in
    /// the endpoint pattern, region and quirks.
    #[arg(long, value_parser = parse_provider)]
    provider: Option<Provider>,
    /// s3: the service URL, e.g. https://<account>.r2.cloudflarestorage.com.
    #[arg(long)]
    endpoint: Option<String>,
    /// s3: the region to sign for (the provider's default when left out).
    #[arg(long)]
    region: Option<String>,
    /// s3: the bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// s3: the access key id. The secret comes from stdin or OFFLOAD_S3_SECRET_ACCESS_KEY, never argv.
    #[arg(long)]
    access_key_id: Option<String>,
    /// s3: read the secret access key from the first line of standard input.
    #[arg(long)]
    secret_access_key_stdin: bool,
    /// s3: a folder inside the bucket that every upload goes under.
    #[arg(long)]
    prefix: Option<String>,
    /// s3: a public URL (custom domain) that serves the bucket, used for streaming.
    #[arg(long)]
    public_url: Option<String>,
    /// s3: address buckets as endpoint/bucket/key (MinIO, Garage and most self-hosted servers).
    #[arg(long)]
    path_style: bool,
    /// google-drive, onedrive: the client id of your OAuth app registration (else
    /// OFFLOAD_GOOGLE_CLIENT_ID / OFFLOAD_MICROSOFT_CLIENT_ID, else the setting
    /// oauth.google.client_id / oauth.microsoft.client_id).
    #[arg(long)]
    client_id: Option<String>,
    /// google-drive, onedrive: read the app's client secret from standard input (else
    /// OFFLOAD_GOOGLE_CLIENT_SECRET / OFFLOAD_MICROSOFT_CLIENT_SECRET; public clients have none).
    #[arg(long)]
    client_secret_stdin: bool,
    /// google-drive, onedrive: the id of the folder uploads go under (default: the drive's root).
    #[arg(long)]
    folder_id: Option<String>,
    /// google-drive, onedrive: bytes per upload request, e.g. 16M (Drive: a multiple of 256K,
    /// default 8M; OneDrive: a multiple of 320K under 60M, default 10M).
    #[arg(long, value_parser = parse_size)]
    chunk_size: Option<u64>,
    /// google-drive, onedrive: the authorization endpoint (national clouds, tests).
    #[arg(long)]
    auth_url: Option<String>,
    /// google-drive, onedrive: the token endpoint.
    #[arg(long)]
    token_url: Option<String>,
    /// google-drive, onedrive: the API's base URL.
    #[arg(long)]
    api_base: Option<String>,
    /// Save without testing the connection first.
    #[arg(long)]
    skip_test: bool,
}

#[derive(Args)]
struct UploadArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    profile: String,
    /// Upload to this backend instead of the profile's default.
    #[arg(long)]
    backend: Option<String>,
    /// Files uploaded at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
}

#[derive(Subcommand)]
enum MediaCommand {
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
}

fn parse_state(text: &str) -> Result<JobState, String> {
    JobState::parse(text).ok_or_else(|| format!("{text:?} is not a job state (queued, running, verifying, done, failed, paused, cancelled)"))
}

fn parse_kind(text: &str) -> Result<BackendKind, String> {
    BackendKind::parse(text).ok_or_else(|| {
        format!("{text:?} is not a backend type (local, s3, google-drive, onedrive)")
    })
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    Provider::parse(text).ok_or_else(|| {
        format!("{text:?} is not a provider (aws, r2, b2, wasabi, minio, garage, other)")
    })
}

fn parse_after_upload(text: &str) -> Result<AfterUpload, String> {
    AfterUpload::parse(text).map_err(|error| error.to_string())
}

/// A secret from the first line of standard input (when `stdin`) or from `env`; never argv.
fn read_secret(
    stdin: bool,
    env: &str,
    what: &str,
) -> CliResult<Option<zeroize::Zeroizing<String>>> {
    let secret = if stdin {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .with_context(|| format!("cannot read {what} from stdin"))?;
        zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        match std::env::var(env) {
            Ok(secret) => zeroize::Zeroizing::new(secret),
            Err(_) => return Ok(None),
        }
    };
    if secret.is_empty() {
        return Err(Error::Invalid(format!("{what} is empty")).into());
    }
    Ok(Some(secret))
}

/// `8M` → 8 MiB, with the suffixes of [`parse_rate`].
fn parse_size(text: &str) -> Result<u64, String> {
    parse_rate(text).map_err(|_| format!("{text:?} is not a size like 256K, 8M or 1G"))
}

/// `10M` → 10 MiB/s. Suffixes K, M, G (powers of 1024), optionally followed by `B`, `iB`, `/s`.
fn parse_rate(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a rate like 0, 500K, 10M or 1G (bytes per second)");
    let trimmed = text
        .trim()
        .trim_end_matches("/s")
        .trim_end_matches("iB")
        .trim_end_matches('B');
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    Ok((value * scale) as u64)
}

/// An error with the exit code it deserves.
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

type CliResult<T = ()> = Result<T, Failure>;

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
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
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

async fn dispatch(cli: Cli) -> CliResult<ExitCode> {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(Engine::default_data_dir);
    let engine = Engine::open(&data_dir)
        .with_context(|| format!("cannot open Offload's data in {}", data_dir.display()))?;
    let json = cli.json;
    match cli.command {
        Command::Run(args) => return run(engine, args).await,
        Command::Profile(command) => profile(&engine, command, json)?,
        Command::Backend(command) => return backend(&engine, command, json).await,
        Command::Upload(args) => return upload(&engine, args, json).await,
        Command::Jobs { state } => jobs(&engine, &state, json)?,
        Command::Pause { job } => {
            queue::pause(engine.db(), job)?;
            engine.wake_daemon();
            println!(
                "{}",
                job.map_or("paused the queue".to_owned(), |id| format!(
                    "paused job {id}"
                ))
            );
        }
        Command::Resume { job } => {
            let resumed = queue::resume(engine.db(), job)?;
            engine.wake_daemon();
            println!(
                "{}",
                job.map_or(
                    format!("resumed the queue ({resumed} paused job(s) queued again)"),
                    |id| format!("resumed job {id}")
                )
            );
        }
        Command::Retry { job } => {
            queue::retry(engine.db(), job)?;
            engine.wake_daemon();
            println!("job {job} is queued again");
        }
        Command::Cancel { job } => {
            queue::cancel(engine.db(), job)?;
            engine.wake_daemon();
            println!("cancelled job {job}");
        }
        Command::Limit { rate } => {
            queue::set_bandwidth_limit(engine.db(), rate)?;
            engine.wake_daemon();
            if rate == 0 {
                println!("no bandwidth limit");
            } else {
                println!("uploads limited to {}/s", human_bytes(rate));
            }
        }
        Command::Media(MediaCommand::List { profile }) => media(&engine, profile.as_deref(), json)?,
        Command::Media(MediaCommand::Url { id, episode }) => {
            let item = if episode {
                library::LibraryItem::Episode(id)
            } else {
                library::LibraryItem::Media(id)
            };
            if library::get(engine.db(), item)?.is_none() {
                let kind = if episode { "episode" } else { "media" };
                return Err(Error::NotFound(format!(
                    "there is no {kind} {id}; `offload media list` shows the library"
                ))
                .into());
            }
            println!("{}", engine.stream_links()?.item_url(item));
            warn_if_stream_server_is_down(&engine);
        }
        Command::Playlist { profile, url } => {
            let profile = profiles::by_name(engine.db(), &profile)?;
            let links = engine.stream_links()?;
            if url {
                println!("{}", links.playlist_url(profile.id));
            } else {
                print!(
                    "{}",
                    offload::stream::playlist(engine.db(), &links, profile.id)?
                );
            }
            warn_if_stream_server_is_down(&engine);
        }
        Command::Stream(args) => stream_settings(&engine, args, json)?,
        Command::Key => key(&engine, json)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(engine: Engine, args: RunArgs) -> CliResult<ExitCode> {
    if !args.no_default_profile {
        if let Some(profile) = engine.ensure_default_profile()? {
            let folders = profiles::watch_folders(engine.db(), Some(profile.id))?;
            let backend = backends::default_for(engine.db(), profile.id)?;
            for folder in folders {
                eprintln!(
                    "First run: watching {} and uploading into {}",
                    folder.path.display(),
                    backend.location()
                );
            }
        }
    }
    let mut options = DaemonOptions::from_settings(engine.db())?;
    options.watch.rescan_interval = args.rescan_interval;
    options.queue.max_attempts = args.max_attempts;
    if let Some(quiet_period) = args.quiet_period {
        options.set_quiet_period(quiet_period);
    }
    if let Some(workers) = args.workers {
        options.queue.workers = workers.into();
    }
    if args.no_stream {
        options.stream = None;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            offload::platform::shutdown_signal().await;
            shutdown.cancel();
        }
    });
    engine.run(options, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

fn profile(engine: &Engine, command: ProfileCommand, json: bool) -> CliResult {
    let db = engine.db();
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
            let profile = profiles::create(db, &name, &template, &after_upload, &folders)?;
            engine.wake_daemon();
            println!("created profile {:?}", profile.name);
        }
        ProfileCommand::List => {
            #[derive(Serialize)]
            struct Listed {
                #[serde(flatten)]
                profile: profiles::Profile,
                folders: Vec<profiles::WatchFolder>,
            }
            let listed: Vec<Listed> = profiles::list(db)?
                .into_iter()
                .map(|profile| {
                    Ok(Listed {
                        folders: profiles::watch_folders(db, Some(profile.id))?,
                        profile,
                    })
                })
                .collect::<offload::Result<_>>()?;
            if json {
                print_json(&listed)?;
            } else {
                for entry in &listed {
                    println!(
                        "{}  template {}  after upload: {}",
                        entry.profile.name,
                        entry.profile.remote_template,
                        entry.profile.after_upload
                    );
                    for folder in &entry.folders {
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
            profiles::rename(db, &name, &new_name)?;
            engine.wake_daemon();
            println!("renamed profile {name:?} to {new_name:?}");
        }
        ProfileCommand::Watch { name, dir, folder } => {
            let profile = profiles::by_name(db, &name)?;
            let folder = folder.watching(dir);
            profiles::add_watch_folder(db, profile.id, &folder)?;
            engine.wake_daemon();
            println!("{:?} now watches {}", profile.name, folder.path.display());
        }
        ProfileCommand::Unwatch { name, dir } => {
            let profile = profiles::by_name(db, &name)?;
            profiles::remove_watch_folder(db, profile.id, &dir)?;
            engine.wake_daemon();
            println!("{:?} no longer watches {}", profile.name, dir.display());
        }
        ProfileCommand::Remove { name } => {
            profiles::remove(db, &name)?;
            engine.wake_daemon();
            println!("removed profile {name:?}");
        }
    }
    Ok(())
}

async fn backend(engine: &Engine, command: BackendCommand, json: bool) -> CliResult<ExitCode> {
    let db = engine.db();
    match command {
        BackendCommand::Add(args) => {
            let profile = profiles::by_name(db, &args.profile)?;
            let mut form = BackendForm {
                kind: Some(args.kind),
                ..BackendForm::default()
            };
            args.settings.apply(&mut form)?;
            let settings = form.settings(db, engine.data_dir())?;
            if !args.settings.tested(&settings).await {
                return Ok(ExitCode::from(1));
            }
            let record = backends::add(
                db,
                engine.vault(),
                profile.id,
                &args.name,
                &settings,
                args.default,
            )?;
            println!(
                "added {} backend {:?} → {}{}",
                record.kind,
                record.name,
                record.location(),
                if record.is_default { " (default)" } else { "" }
            );
        }
        BackendCommand::Edit(args) => {
            let profile = profiles::by_name(db, &args.profile)?;
            let record = backends::by_name(db, profile.id, &args.name)?;
            let mut form = record.form(engine.vault())?;
            args.settings.apply(&mut form)?;
            let settings = form.settings(db, engine.data_dir())?;
            if !args.settings.tested(&settings).await {
                return Ok(ExitCode::from(1));
            }
            let (record, queued) =
                engine.update_backend(record.id, args.rename.as_deref(), &settings)?;
            println!(
                "changed {} backend {:?} → {}",
                record.kind,
                record.name,
                record.location()
            );
            if queued > 0 {
                println!("{queued} of its uploads go again now");
            }
        }
        BackendCommand::List { profile } => {
            let profile_id = profile
                .map(|name| profiles::by_name(db, &name))
                .transpose()?
                .map(|p| p.id);
            let records = backends::list(db, profile_id)?;
            if json {
                print_json(&records)?;
            } else {
                let names: HashMap<i64, String> = profiles::list(db)?
                    .into_iter()
                    .map(|p| (p.id, p.name))
                    .collect();
                for record in records {
                    let default = if record.is_default { "  (default)" } else { "" };
                    let owner = names
                        .get(&record.profile_id)
                        .map(String::as_str)
                        .unwrap_or("?");
                    let account = match record.readiness(db)? {
                        // The location already says how to sign in.
                        backends::Readiness::Ready | backends::Readiness::NotSignedIn => {
                            String::new()
                        }
                        state @ backends::Readiness::Disconnected { .. } => {
                            format!("  {state}: `offload backend connect`")
                        }
                        state => format!("  {state}"),
                    };
                    println!(
                        "{owner}/{}  {}  {}{default}{account}",
                        record.name,
                        record.kind,
                        record.location()
                    );
                }
            }
        }
        BackendCommand::Test { name, profile } => {
            let profile = profiles::by_name(db, &profile)?;
            let record = backends::by_name(db, profile.id, &name)?;
            let report = engine.backend(record.id)?.test_connection().await;
            if json {
                print_json(&report)?;
            } else {
                print!("{report}");
            }
            return Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        BackendCommand::Default { name, profile } => {
            let profile = profiles::by_name(db, &profile)?;
            backends::set_default(db, profile.id, &name)?;
            println!("{name:?} is now the default backend of {:?}", profile.name);
        }
        BackendCommand::Remove { name, profile } => {
            let profile = profiles::by_name(db, &profile)?;
            backends::remove(db, profile.id, &name)?;
            println!("removed backend {name:?}");
        }
        BackendCommand::Connect {
            name,
            profile,
            no_browser,
        } => {
            let profile = profiles::by_name(db, &profile)?;
            let record = backends::by_name(db, profile.id, &name)?;
            let loopback = offload::oauth::Loopback::bind().await?;
            let flow = engine.begin_sign_in(&record, &loopback.redirect_uri)?;
            // The address always goes out on its own line: a sign-in must never hang on a
            // browser that did not open.
            eprintln!("Sign in with your browser. If none opens, open this address (it works for 10 minutes):");
            println!("{}", flow.url);
            let _ = std::io::stdout().flush();
            if !no_browser {
                // Failing is fine: the address was printed.
                let _ = offload::platform::open(&flow.url);
            }
            let connected = engine.finish_sign_in(loopback, &flow).await?;
            match &connected.account {
                Some(account) => {
                    println!("connected {name:?} to {} as {account}", connected.provider)
                }
                None => println!("connected {name:?} to {}", connected.provider),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl BackendFlags {
    /// `form` with the settings these flags give, the secrets read from stdin or the environment.
    fn apply(&self, form: &mut BackendForm) -> CliResult {
        fn set<T: Clone>(field: &mut Option<T>, flag: &Option<T>) {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        set(&mut form.path, &self.path);
        if let Some(provider) = self.provider {
            form.provider = provider;
        }
        set(&mut form.endpoint, &self.endpoint);
        set(&mut form.region, &self.region);
        set(&mut form.bucket, &self.bucket);
        set(&mut form.access_key_id, &self.access_key_id);
        set(&mut form.prefix, &self.prefix);
        set(&mut form.public_url, &self.public_url);
        form.path_style |= self.path_style;
        set(&mut form.client_id, &self.client_id);
        set(&mut form.folder_id, &self.folder_id);
        set(&mut form.chunk_size, &self.chunk_size);
        set(&mut form.auth_url, &self.auth_url);
        set(&mut form.token_url, &self.token_url);
        set(&mut form.api_base, &self.api_base);
        match form.kind {
            Some(BackendKind::S3) => {
                let secret = read_secret(
                    self.secret_access_key_stdin,
                    "OFFLOAD_S3_SECRET_ACCESS_KEY",
                    "the secret access key",
                )?;
                set(&mut form.secret_access_key, &secret);
                if form.secret_access_key.is_none() {
                    return Err(Error::Invalid(
                        "give the secret access key on standard input with --secret-access-key-stdin, or in OFFLOAD_S3_SECRET_ACCESS_KEY (never as an argument)".into(),
                    )
                    .into());
                }
            }
            Some(kind @ (BackendKind::GoogleDrive | BackendKind::Onedrive)) => {
                let upper = if kind == BackendKind::GoogleDrive {
                    "GOOGLE"
                } else {
                    "MICROSOFT"
                };
                let secret = read_secret(
                    self.client_secret_stdin,
                    &format!("OFFLOAD_{upper}_CLIENT_SECRET"),
                    "the client secret",
                )?;
                set(&mut form.client_secret, &secret);
            }
            Some(BackendKind::Local) | None => {}
        }
        Ok(())
    }

    /// S3 settings are tested before they are saved: a typo in a key or bucket is the usual
    /// mistake. A local folder is created on the first upload, and a cloud account is tested
    /// once signed in. Prints the report; false when it failed.
    async fn tested(&self, settings: &BackendSettings) -> bool {
        if self.skip_test {
            return true;
        }
        match settings.test_before_saving().await {
            Some(report) => {
                print!("{report}");
                if !report.is_ok() {
                    eprintln!(
                        "not saved: fix what failed above (or add --skip-test to save anyway)"
                    );
                }
                report.is_ok()
            }
            None => true,
        }
    }
}

async fn upload(engine: &Engine, args: UploadArgs, json: bool) -> CliResult<ExitCode> {
    let db = engine.db();
    let profile = profiles::by_name(db, &args.profile)?;
    let backend = match &args.backend {
        Some(name) => backends::by_name(db, profile.id, name)?,
        None => backends::default_for(db, profile.id)?,
    };
    engine.backend(backend.id)?;
    let queue = engine.queue(
        ClaimMode::Reserved,
        QueueOptions {
            workers: args.workers.into(),
            ..QueueOptions::default()
        },
    )?;
    let mut events = queue.subscribe();
    let mut own: Vec<i64> = Vec::new();
    let mut already_done: Vec<i64> = Vec::new();
    for file in &args.files {
        let path = std::path::absolute(file)
            .with_context(|| format!("cannot resolve {}", file.display()))?;
        let job = engine.job_for_file(&profile, &backend, None, &path)?;
        match queue.enqueue(&job)? {
            Enqueued::New(id) => own.push(id),
            Enqueued::AlreadyHandled(id, JobState::Done) => {
                eprintln!(
                    "{} is already uploaded and verified (job {id})",
                    path.display()
                );
                already_done.push(id);
            }
            Enqueued::AlreadyHandled(id, _) => {
                queue::retry(db, id)?;
                queue::reserve(db, id, queue.owner())?;
                own.push(id);
            }
            Enqueued::AlreadyQueued(id) => {
                if queue::reserve(db, id, queue.owner())? {
                    own.push(id);
                } else {
                    return Err(Error::Invalid(format!(
                        "{} is already being uploaded by a running `offload run` (job {id}); follow it with `offload jobs`",
                        path.display()
                    ))
                    .into());
                }
            }
        }
    }

    let stop = CancellationToken::new();
    let runner = {
        let queue = queue.clone();
        let stop = stop.clone();
        tokio::spawn(async move { queue.run(stop).await })
    };
    queue.wake();
    let bars = ProgressBars::new(engine, &own)?;
    let mut pending: HashSet<i64> = own.iter().copied().collect();
    // Jobs that finished between enqueueing and subscribing cannot be missed: they are read back.
    pending.retain(|id| {
        queue::get(db, *id)
            .map(|job| !job.state.is_terminal())
            .unwrap_or(false)
    });
    let interrupted = loop {
        if pending.is_empty() {
            break false;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break true,
            event = events.recv() => match event {
                Ok(Event::Progress(progress)) => bars.progress(&progress),
                Ok(Event::State { job_id, state, message, .. }) => {
                    bars.state(job_id, state, message.as_deref());
                    if state.is_terminal() || state == JobState::Paused {
                        pending.remove(&job_id);
                    }
                }
                Ok(Event::Notice { message }) => bars.println(&format!("note: {message}")),
                Ok(Event::Queued { .. }) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    pending.retain(|id| queue::get(db, *id).map(|job| !job.state.is_terminal()).unwrap_or(false));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break true,
            },
        }
    };
    stop.cancel();
    let _ = runner.await;
    bars.finish();

    let mut jobs = Vec::new();
    for id in own.iter().chain(&already_done) {
        jobs.push(queue::get(db, *id)?);
    }
    let all_done = !interrupted && jobs.iter().all(|job| job.state == JobState::Done);
    if json {
        print_json(&jobs)?;
    } else {
        for job in &jobs {
            match job.state {
                JobState::Done => println!(
                    "uploaded {} → {}:{} ({}, {})",
                    job.local_path.display(),
                    backend.name,
                    job.remote_path,
                    human_bytes(job.size),
                    job.checksum.as_deref().unwrap_or("")
                ),
                state => println!(
                    "NOT uploaded {}: {state}{}",
                    job.local_path.display(),
                    job.last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            }
        }
    }
    if interrupted {
        eprintln!("interrupted: unfinished uploads stay queued; `offload run` continues them");
        engine.wake_daemon();
    }
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Progress bars on a terminal; plain lines otherwise.
struct ProgressBars {
    multi: MultiProgress,
    bars: HashMap<i64, ProgressBar>,
}

impl ProgressBars {
    fn new(engine: &Engine, jobs: &[i64]) -> offload::Result<ProgressBars> {
        let multi = MultiProgress::new();
        if !std::io::stderr().is_terminal() {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let mut bars = HashMap::new();
        for id in jobs {
            let job = queue::get(engine.db(), *id)?;
            let bar = multi.add(ProgressBar::new(job.size));
            bar.set_style(style.clone());
            bar.set_message(
                job.local_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            bars.insert(*id, bar);
        }
        Ok(ProgressBars { multi, bars })
    }

    fn progress(&self, progress: &queue::Progress) {
        if let Some(bar) = self.bars.get(&progress.job_id) {
            bar.set_position(progress.bytes_done);
        }
    }

    fn state(&self, job_id: i64, state: JobState, message: Option<&str>) {
        if let Some(message) = message {
            self.println(&format!("job {job_id}: {state}: {message}"));
        }
        if let Some(bar) = self.bars.get(&job_id) {
            if state == JobState::Done {
                bar.set_position(bar.length().unwrap_or(0));
                bar.finish();
            } else if state.is_terminal() {
                bar.abandon();
            }
        }
    }

    fn println(&self, line: &str) {
        if self.multi.println(line).is_err() || self.multi.is_hidden() {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

fn jobs(engine: &Engine, states: &[JobState], json: bool) -> CliResult {
    let jobs = queue::list(engine.db(), states)?;
    if json {
        return Ok(print_json(&jobs)?);
    }
    if queue::is_paused_globally(engine.db())? {
        println!("The queue is paused (`offload resume` to continue).");
    }
    let mut out = std::io::stdout().lock();
    for job in &jobs {
        let percent = (job.bytes_done * 100).checked_div(job.size).unwrap_or(100);
        let note = match (&job.last_error, &job.action) {
            (Some(error), Some(action)) => format!("  ({error}; {})", advice(engine, action)),
            (Some(error), None) => format!("  ({error})"),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:>5}  {:<9} {:>3}%  {:>10}  {} → {}{note}",
            job.id,
            job.state,
            percent,
            human_bytes(job.size),
            job.local_path.display(),
            job.remote_path
        );
    }
    if jobs.is_empty() {
        let _ = writeln!(out, "no upload jobs");
    }
    Ok(())
}

fn media(engine: &Engine, profile: Option<&str>, json: bool) -> CliResult {
    let profile_id = profile
        .map(|name| profiles::by_name(engine.db(), name))
        .transpose()?
        .map(|p| p.id);
    let entries = library::list(engine.db(), profile_id)?;
    if json {
        return Ok(print_json(&entries)?);
    }
    for entry in &entries {
        let id = match entry.item {
            library::LibraryItem::Media(id) => format!("media {id}"),
            library::LibraryItem::Episode(id) => format!("episode {id}"),
        };
        println!(
            "{id:>12}  {:<40}  {:>10}  {}",
            entry.title,
            human_bytes(entry.size.unwrap_or(0)),
            entry.storage_path.as_deref().unwrap_or("")
        );
    }
    if entries.is_empty() {
        println!("the library is empty");
    }
    Ok(())
}

/// The URLs only play while `offload run` or the desktop app serves them; say so on stderr, so
/// that the printed URLs can still be redirected into a file.
fn warn_if_stream_server_is_down(engine: &Engine) {
    let Ok(settings) = StreamSettings::load(engine.db()) else {
        return;
    };
    let mut address = settings.address();
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_err() {
        eprintln!(
            "note: nothing is serving {} right now; these URLs play while `offload run` or the Offload app runs",
            settings.base_url()
        );
    }
}

fn stream_settings(engine: &Engine, args: StreamArgs, json: bool) -> CliResult {
    let mut settings = StreamSettings::load(engine.db())?;
    let changed = args.port.is_some() || args.bind.is_some() || args.url_lifetime.is_some();
    settings.port = args.port.unwrap_or(settings.port);
    settings.bind = args.bind.unwrap_or(settings.bind);
    settings.url_lifetime = args.url_lifetime.unwrap_or(settings.url_lifetime);
    if changed {
        settings.save(engine.db())?;
    }
    if json {
        print_json(&serde_json::json!({ "settings": settings, "url": settings.base_url() }))?;
        return Ok(());
    }
    println!(
        "stream server: {} (listening on {}), presigned URLs live {}",
        settings.base_url(),
        settings.address(),
        offload::engine::format_duration(settings.url_lifetime)
    );
    if changed {
        println!("saved; a running `offload run` uses it after a restart");
    }
    Ok(())
}

fn key(engine: &Engine, json: bool) -> CliResult {
    let sealer = engine.vault().sealer()?;
    let key = sealer.key();
    let source = match key.source() {
        offload::secrets::KeySource::Keychain => "OS keychain",
        offload::secrets::KeySource::Environment => "OFFLOAD_MASTER_KEY",
    };
    if json {
        print_json(&serde_json::json!({ "source": source, "fingerprint": key.fingerprint() }))?;
    } else {
        println!("master key: {source}, fingerprint {}", key.fingerprint());
    }
    Ok(())
}

/// What the command line says to do about `action`: the command to run, with its flag.
fn advice(engine: &Engine, action: &offload::Action) -> String {
    use offload::storage::Field;
    use offload::Action;
    let named = |id: i64| {
        let backend = backends::get(engine.db(), id).ok()?;
        let profile = profiles::get(engine.db(), backend.profile_id).ok()?;
        Some((backend.name, profile.name))
    };
    let flag = |field: Field| match field {
        Field::Path => "--path DIR",
        Field::Endpoint => "--endpoint URL",
        Field::Region => "--region REGION",
        Field::Bucket => "--bucket NAME",
        Field::AccessKeyId => "--access-key-id ID",
        Field::SecretAccessKey => "--secret-access-key-stdin",
        Field::Prefix => "--prefix FOLDER",
        Field::PublicUrl => "--public-url URL",
        Field::FolderId => "--folder-id ID",
        Field::ClientId => "--client-id ID",
        Field::ClientSecret => "--client-secret-stdin",
        Field::ChunkSize => "--chunk-size SIZE",
    };
    match *action {
        Action::SignIn { backend_id } => match named(backend_id) {
            Some((name, profile)) => {
                format!("run `offload backend connect {name} --profile {profile}`")
            }
            None => "sign in again with `offload backend connect`".into(),
        },
        Action::ChangeBackend {
            backend_id: Some(backend_id),
            field,
        } => match named(backend_id) {
            Some((name, profile)) => format!(
                "correct it with `offload backend edit {name} --profile {profile} {}`",
                flag(field)
            ),
            None => format!("correct {}", flag(field)),
        },
        Action::ChangeBackend {
            backend_id: None,
            field,
        } => format!("correct {}", flag(field)),
        Action::ChangeSetting { setting } => match setting {
            offload::Setting::StreamPort => {
                "pick a free port with `offload stream --port N`".into()
            }
            offload::Setting::StreamBind => {
                "choose an address with `offload stream --bind ADDRESS`".into()
            }
            offload::Setting::UrlLifetime => {
                "choose with `offload stream --url-lifetime 4h`".into()
            }
            offload::Setting::Workers => "choose with `offload run --workers N`".into(),
            offload::Setting::QuietPeriod => "choose with `offload run --quiet-period 5s`".into(),
            offload::Setting::BandwidthLimit => "choose with `offload limit RATE`".into(),
        },
        Action::SetClock => "set this computer's clock (turn on automatic date and time)".into(),
        Action::FreeSpace => "free some space where the files go".into(),
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    offload::summary::human_bytes(bytes as f64)
}
