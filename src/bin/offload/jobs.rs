//! `offload jobs`, `pause`, `resume`, `retry`, `cancel`, `limit`: the upload queue.

use std::io::Write;
use std::process::ExitCode;

use offload::queue::JobState;
use offload::Engine;

use crate::words::advice;
use crate::{human_bytes, print_json, CliResult};

pub fn list(engine: &Engine, states: &[JobState], json: bool) -> CliResult {
    let jobs = engine.jobs(states)?;
    if json {
        print_json(&jobs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if engine.queue_paused()? {
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
    Ok(ExitCode::SUCCESS)
}

pub fn pause(engine: &Engine, job: Option<i64>) -> CliResult {
    engine.pause(job)?;
    match job {
        Some(id) => println!("paused job {id}"),
        None => println!("paused the queue"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn resume(engine: &Engine, job: Option<i64>) -> CliResult {
    let resumed = engine.resume(job)?;
    match job {
        Some(id) => println!("resumed job {id}"),
        None => println!("resumed the queue ({resumed} paused job(s) queued again)"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn retry(engine: &Engine, job: i64) -> CliResult {
    engine.retry(job)?;
    println!("job {job} is queued again");
    Ok(ExitCode::SUCCESS)
}

pub fn cancel(engine: &Engine, job: i64) -> CliResult {
    engine.cancel(job)?;
    println!("cancelled job {job}");
    Ok(ExitCode::SUCCESS)
}

pub fn limit(engine: &Engine, text: &str) -> CliResult {
    if text.contains(',') {
        engine.set_bandwidth_schedule(text)?;
        let now = engine.bandwidth_now()?;
        println!(
            "uploads limited by the timetable {text:?}; now: {}",
            rate_text(now)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rate = crate::parse_rate(text).map_err(offload::Error::Invalid)?;
    engine.set_bandwidth_limit(rate)?;
    println!("uploads limited to {}", rate_text(rate));
    Ok(ExitCode::SUCCESS)
}

fn rate_text(rate: u64) -> String {
    match rate {
        0 => "no limit".into(),
        rate => format!("{}/s", human_bytes(rate)),
    }
}
