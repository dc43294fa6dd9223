//! `offload upload`: files uploaded now, with progress, by a queue of this process's own (the
//! daemon, if one runs, leaves these jobs to it).

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use offload::queue::{self, ClaimMode, Enqueued, Event, JobState, QueueOptions};
use offload::{Engine, Error};
use tokio_util::sync::CancellationToken;

use crate::{human_bytes, print_json, CliResult};

#[derive(Args)]
pub struct UploadArgs {
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

pub async fn upload(engine: &Engine, args: UploadArgs, json: bool) -> CliResult {
    let db = engine.db();
    let profile = engine.profile_named(&args.profile)?;
    let backend = match &args.backend {
        Some(name) => engine.backend_named(profile.id, name)?,
        None => engine.default_backend(profile.id)?,
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
                Ok(Event::State { job_id, state, message, action }) => {
                    let advice = action.map(|action| crate::words::advice(engine, &action));
                    bars.state(job_id, state, message.as_deref(), advice.as_deref());
                    if state.is_terminal() || state == JobState::Paused {
                        pending.remove(&job_id);
                    }
                }
                Ok(Event::Notice { message }) => bars.println(&format!("note: {message}")),
                Ok(Event::Queued { .. } | Event::Scan(_)) => {}
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

    fn state(&self, job_id: i64, state: JobState, message: Option<&str>, advice: Option<&str>) {
        match (message, advice) {
            (Some(message), Some(advice)) => {
                self.println(&format!("job {job_id}: {state}: {message}; {advice}"))
            }
            (Some(message), None) => self.println(&format!("job {job_id}: {state}: {message}")),
            (None, _) => {}
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
