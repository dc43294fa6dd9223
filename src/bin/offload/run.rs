//! `offload run`: the daemon, in the foreground until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use offload::engine::{parse_duration, RunOverrides};
use offload::Engine;
use tokio_util::sync::CancellationToken;

use crate::CliResult;

#[derive(Args)]
pub struct RunArgs {
    /// How long a file must hold still before it counts as finished, for this run (default: the
    /// setting, 5s unless changed with `offload settings --quiet-period`).
    #[arg(long, value_parser = parse_duration, env = "OFFLOAD_QUIET_PERIOD")]
    quiet_period: Option<Duration>,
    /// How often every watched folder is scanned in full, for changes the OS did not report.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    rescan_interval: Duration,
    /// Files uploaded at once, for this run (default: the setting, 2 unless changed with
    /// `offload settings --workers`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// Attempts before an upload with temporary errors is marked failed.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// How often storage is looked through for what changed there, for this run; 0: never
    /// (default: the setting, 5m unless changed with `offload settings --library-scan`).
    #[arg(long, value_parser = parse_duration)]
    library_scan: Option<Duration>,
    /// Do not create the default profile (downloads folder → local library) on a fresh install.
    #[arg(long)]
    no_default_profile: bool,
    /// Do not serve stream URLs (see `offload stream`).
    #[arg(long)]
    no_stream: bool,
}

pub async fn run(engine: &Engine, args: RunArgs) -> CliResult {
    if !args.no_default_profile {
        if let Some(profile) = engine.ensure_default_profile()? {
            let view = engine.profile(profile.id)?;
            let backends = engine.list_backends(Some(profile.id))?;
            let into = backends
                .iter()
                .find(|backend| backend.is_default)
                .map(|backend| backend.location.clone())
                .unwrap_or_default();
            for folder in view.folders {
                eprintln!(
                    "First run: watching {} and uploading into {into}",
                    folder.path.display()
                );
            }
        }
    }
    let overrides = RunOverrides {
        workers: args.workers.map(usize::from),
        quiet_period: args.quiet_period,
        rescan_interval: Some(args.rescan_interval),
        max_attempts: Some(args.max_attempts),
        library_scan: args.library_scan,
        without_stream_server: args.no_stream,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            offload::platform::shutdown_signal().await;
            shutdown.cancel();
        }
    });
    engine.run(&overrides, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
