//! `offload upload` and `offload add`: files handed over by a person or a download client's
//! completion hook. `upload` (and `add --now`) uploads them with a queue of this process's own,
//! with progress (the daemon, if one runs, leaves these jobs to it); `add` puts them in the
//! running Offload's queue and returns, or with `--wait` follows them there.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use offload::engine::{HandOver, HandedOver};
use offload::profiles::AfterUpload;
use offload::queue::{self, ClaimMode, Event, JobState, Queue, QueueOptions};
use offload::Engine;
use tokio_util::sync::CancellationToken;

use crate::{human_bytes, print_json, CliResult};

#[derive(Args)]
pub struct UploadArgs {
    /// Files, or folders whose media files are all uploaded.
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

#[derive(Args)]
pub struct AddArgs {
    /// Finished files, or folders whose media files are all taken (a multi-file torrent).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The profile; else the one watching the file's folder, else the only one.
    #[arg(long)]
    profile: Option<String>,
    /// Upload to this backend instead of the profile's default.
    #[arg(long)]
    backend: Option<String>,
    /// What to do with these files once uploaded and verified (keep, delete, move:DIR), instead
    /// of the profile's policy.
    #[arg(long, value_parser = crate::profile::parse_after_upload)]
    after_upload: Option<AfterUpload>,
    /// Wait until every file is uploaded and verified, showing progress.
    #[arg(long)]
    wait: bool,
    /// Upload here and now, showing progress, as `offload upload` does.
    #[arg(long, conflicts_with = "wait")]
    now: bool,
}

/// `offload upload`: the files are uploaded by this process.
pub async fn upload(engine: &Engine, args: UploadArgs, json: bool) -> CliResult {
    let options = HandOver {
        profile: Some(args.profile),
        backend: args.backend,
        ..HandOver::default()
    };
    here(engine, &args.files, options, args.workers.into(), json).await
}

/// `offload add`: the files go into the running Offload's queue.
pub async fn add(engine: &Engine, args: AddArgs, json: bool) -> CliResult {
    let options = HandOver {
        profile: args.profile,
        backend: args.backend,
        after_upload: args.after_upload,
        reserve_for: None,
    };
    if args.now {
        return here(
            engine,
            &args.files,
            options,
            QueueOptions::default().workers,
            json,
        )
        .await;
    }
    let handed = engine.hand_over(&args.files, &options)?;
    let running = engine.daemon_running();
    if json && !args.wait {
        print_json(&handed)?;
    } else {
        for outcome in &handed {
            match outcome {
                HandedOver::Queued { path, job } => {
                    println!("queued {} (job {job})", path.display())
                }
                HandedOver::AlreadyQueued { path, job } => {
                    println!("{} is already queued (job {job})", path.display())
                }
                HandedOver::AlreadyDone { path, job } => {
                    println!(
                        "{} is already uploaded and verified (job {job})",
                        path.display()
                    )
                }
                HandedOver::Refused { path, reason } => {
                    eprintln!("NOT queued {}: {reason}", path.display())
                }
            }
        }
    }
    let refused = handed.iter().any(|outcome| outcome.job().is_none());
    if !running {
        eprintln!(
            "Offload is not running, so these wait in its queue until it starts: open the desktop app or run `offload run` (or use `offload add --now` to upload them here and now)."
        );
        if args.wait {
            return Ok(ExitCode::from(1));
        }
    }
    if !args.wait {
        return Ok(if refused {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let jobs: Vec<i64> = handed.iter().filter_map(HandedOver::job).collect();
    let all_done = follow(engine, &jobs, None, json).await? && !refused;
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Hands the files over to a queue of this process's own and follows them until verified: the
/// daemon, if one runs, leaves them alone (and this process follows any it already holds).
async fn here(
    engine: &Engine,
    files: &[PathBuf],
    mut options: HandOver,
    workers: usize,
    json: bool,
) -> CliResult {
    let queue = engine.queue(
        ClaimMode::Reserved,
        QueueOptions {
            workers,
            ..QueueOptions::default()
        },
    )?;
    options.reserve_for = Some(queue.owner().to_owned());
    let handed = engine.hand_over(files, &options)?;
    let mut refused = false;
    for outcome in &handed {
        match outcome {
            HandedOver::AlreadyDone { path, job } => {
                eprintln!(
                    "{} is already uploaded and verified (job {job})",
                    path.display()
                )
            }
            HandedOver::AlreadyQueued { path, job } => eprintln!(
                "{} is being uploaded by the running Offload (job {job}); following it",
                path.display()
            ),
            HandedOver::Refused { path, reason } => {
                refused = true;
                eprintln!("NOT uploaded {}: {reason}", path.display())
            }
            HandedOver::Queued { .. } => {}
        }
    }
    let jobs: Vec<i64> = handed.iter().filter_map(HandedOver::job).collect();
    let stop = CancellationToken::new();
    let runner = {
        let queue = queue.clone();
        let stop = stop.clone();
        tokio::spawn(async move { queue.run(stop).await })
    };
    queue.wake();
    let all_done = follow(engine, &jobs, Some(&queue), json).await;
    stop.cancel();
    let _ = runner.await;
    Ok(if all_done? && !refused {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How often jobs held by another process are read back from the queue.
const POLL: Duration = Duration::from_millis(500);

/// Shows the jobs' progress until each is done, failed or paused (from `own` queue's events, and
/// from the database for jobs another process runs), then what became of each. `Ok(true)`: every
/// one was uploaded and verified.
async fn follow(engine: &Engine, jobs: &[i64], own: Option<&Queue>, json: bool) -> CliResult<bool> {
    let db = engine.db();
    let mut events = own.map(Queue::subscribe);
    let bars = ProgressBars::new(engine, jobs)?;
    let mut pending: HashSet<i64> = jobs.iter().copied().collect();
    let mut poll = tokio::time::interval(POLL);
    // The first tick is at once: every job is read once before any event arrives.
    let mut read_back = false;
    let interrupted = loop {
        // Jobs that finished before the subscription, or in another process, are read back at
        // each poll, not at each event: every pending job read per event grew with the square
        // of the number of files.
        if std::mem::take(&mut read_back) {
            pending.retain(|id| match queue::get(db, *id) {
                Ok(job) if settled(job.state) => {
                    bars.state(job.id, job.state, None, None);
                    false
                }
                Ok(job) => {
                    bars.position(job.id, job.bytes_done);
                    true
                }
                Err(_) => false,
            });
        }
        if pending.is_empty() {
            break false;
        }
        let event = async {
            match &mut events {
                Some(events) => events.recv().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break true,
            _ = poll.tick() => read_back = true,
            Some(event) = event => match event {
                Event::Progress(progress) => bars.position(progress.job_id, progress.bytes_done),
                Event::State { job_id, state, message, action } => {
                    let advice = action.map(|action| crate::words::advice(engine, &action));
                    bars.state(job_id, state, message.as_deref(), advice.as_deref());
                    if settled(state) {
                        pending.remove(&job_id);
                    }
                }
                Event::Notice { message } => bars.println(&format!("note: {message}")),
                Event::Held(held) if held.jobs > 0 => bars.println(&format!(
                    "note: waiting for the profile's upload window{}; Ctrl-C leaves the files queued",
                    held.opens_at.map(|at| format!(", which opens at {}", at.format("%H:%M"))).unwrap_or_default()
                )),
                Event::Queued { .. } | Event::Scan(_) | Event::Described { .. } | Event::Held(_) => {}
            },
        }
    };
    bars.finish();

    let mut finished = Vec::new();
    for id in jobs {
        finished.push(queue::get(db, *id)?);
    }
    if json {
        print_json(&finished)?;
    } else {
        for job in &finished {
            match job.state {
                JobState::Done => println!(
                    "uploaded {} → {} ({}, {})",
                    job.local_path.display(),
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
    Ok(!interrupted && finished.iter().all(|job| job.state == JobState::Done))
}

/// A job `follow` stops waiting for: done, failed, cancelled or paused.
fn settled(state: JobState) -> bool {
    state.is_terminal() || state == JobState::Paused
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

    fn position(&self, job_id: i64, bytes_done: u64) {
        if let Some(bar) = self.bars.get(&job_id) {
            bar.set_position(bytes_done);
        }
    }

    fn state(&self, job_id: i64, state: JobState, message: Option<&str>, advice: Option<&str>) {
        match (message, advice) {
            (Some(message), Some(advice)) => {
                self.println(&format!("job {job_id}: {state}: {message}; {advice}"))
            }
            (Some(message), None) => self.println(&format!("job {job_id}: {state}: {message}")),
            (None, _) => {}
        }
        if let Some(bar) = self.bars.get(&job_id) {
            if bar.is_finished() {
            } else if state == JobState::Done {
                bar.set_position(bar.length().unwrap_or(0));
                bar.finish();
            } else if settled(state) {
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
