//! The one-line state of all uploads, for a tray tooltip or a status line: "Uploading 2 files ·
//! 43% · 12.4 MiB/s · 3 min left". Built from the queue's events, so it costs nothing to keep
//! and can be shown as often as the shell likes (the tray updates it once a second, not per
//! progress event).

use std::collections::{HashMap, HashSet};

use crate::queue::{Event, Held, JobState, Progress};

/// What the tray icon should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Idle,
    Uploading,
    /// Nothing uploads and something waits paused.
    Paused,
    /// An upload failed since the summary was last cleared.
    Error,
    /// Uploads wait for an account to be signed in again.
    SignInRequired,
}

#[derive(Debug, Default, Clone)]
pub struct TransferSummary {
    running: HashMap<i64, Progress>,
    paused: HashSet<i64>,
    failed: usize,
    waiting_for_sign_in: usize,
    /// Backends being looked through, by id: their names and what was found so far.
    scanning: HashMap<i64, (String, u64)>,
    /// Uploads waiting for their upload window, and when it opens.
    held: Held,
}

impl TransferSummary {
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Progress(progress) => {
                self.paused.remove(&progress.job_id);
                self.running.insert(progress.job_id, progress.clone());
            }
            Event::State { job_id, state, .. } => {
                self.running.remove(job_id);
                self.paused.remove(job_id);
                match state {
                    JobState::Paused => {
                        self.paused.insert(*job_id);
                    }
                    JobState::Failed => self.failed += 1,
                    _ => {}
                }
            }
            Event::Scan(scan) if scan.done => {
                self.scanning.remove(&scan.backend_id);
            }
            Event::Scan(scan) => {
                self.scanning
                    .insert(scan.backend_id, (scan.backend_name.clone(), scan.found));
            }
            Event::Held(held) => self.held = *held,
            Event::Queued { .. } | Event::Notice { .. } | Event::Described { .. } => {}
        }
    }

    /// How many jobs wait for a sign-in ([`crate::queue::waiting_for_sign_in`]); the events do
    /// not say why a job paused.
    pub fn set_waiting_for_sign_in(&mut self, jobs: usize) {
        self.waiting_for_sign_in = jobs;
    }

    /// Forgets failures the user has seen.
    pub fn clear_failures(&mut self) {
        self.failed = 0;
    }

    pub fn activity(&self) -> Activity {
        if self.failed > 0 {
            Activity::Error
        } else if self.waiting_for_sign_in > 0 {
            Activity::SignInRequired
        } else if !self.running.is_empty() {
            Activity::Uploading
        } else if !self.paused.is_empty() {
            Activity::Paused
        } else {
            Activity::Idle
        }
    }

    /// The running uploads: (job id, percent).
    pub fn running(&self) -> Vec<(i64, u8)> {
        let mut running: Vec<(i64, u8)> = self
            .running
            .values()
            .map(|progress| {
                (
                    progress.job_id,
                    percent(progress.bytes_done, progress.total),
                )
            })
            .collect();
        running.sort_unstable();
        running
    }

    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if !self.running.is_empty() {
            let count = self.running.len();
            let done: u64 = self.running.values().map(|p| p.bytes_done).sum();
            let total: u64 = self.running.values().map(|p| p.total).sum();
            let rate: f64 = self.running.values().map(|p| p.rate).sum();
            parts.push(format!(
                "Uploading {count} file{}",
                if count == 1 { "" } else { "s" }
            ));
            parts.push(format!("{}%", percent(done, total)));
            if rate >= 1.0 {
                parts.push(format!("{}/s", human_bytes(rate)));
                let left = total.saturating_sub(done) as f64 / rate;
                parts.push(format!("{} left", human_duration(left as u64)));
            }
        } else if !self.paused.is_empty() {
            parts.push(format!("{} paused", self.paused.len()));
        } else if self.held.jobs > 0 {
            let opens = self
                .held
                .opens_at
                .map(|at| format!(" (opens at {})", at.format("%H:%M")))
                .unwrap_or_default();
            parts.push(format!(
                "{} wait{} for the upload window{opens}",
                self.held.jobs,
                if self.held.jobs == 1 { "s" } else { "" }
            ));
        } else if self.scanning.is_empty() {
            parts.push("Idle".to_owned());
        }
        let mut scanning: Vec<_> = self.scanning.values().collect();
        scanning.sort();
        for (name, found) in scanning {
            parts.push(format!("Looking in {name}: {} found", thousands(*found)));
        }
        if self.waiting_for_sign_in > 0 {
            parts.push(format!("{} wait for sign-in", self.waiting_for_sign_in));
        }
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        parts.join(" · ")
    }
}

/// An empty file is complete.
fn percent(done: u64, total: u64) -> u8 {
    (done.min(total) * 100).checked_div(total).unwrap_or(100) as u8
}

/// `12.4 MiB`: binary units, one decimal.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds.div_ceil(60)),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// 1240 as "1,240".
fn thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(job_id: i64, bytes_done: u64, total: u64, rate: f64) -> Event {
        Event::Progress(Progress {
            job_id,
            bytes_done,
            total,
            rate,
            eta_seconds: None,
        })
    }

    fn state(job_id: i64, state: JobState) -> Event {
        Event::State {
            job_id,
            state,
            message: None,
            action: None,
        }
    }

    #[test]
    fn sums_the_running_uploads_into_one_line() {
        let mut summary = TransferSummary::default();
        assert_eq!(summary.line(), "Idle");
        assert_eq!(summary.activity(), Activity::Idle);
        const MIB: u64 = 1024 * 1024;
        summary.observe(&progress(1, 300 * MIB, 1000 * MIB, 6.0 * MIB as f64));
        summary.observe(&progress(2, 560 * MIB, 1000 * MIB, 6.4 * MIB as f64));
        assert_eq!(
            summary.line(),
            "Uploading 2 files · 43% · 12.4 MiB/s · 2 min left"
        );
        assert_eq!(summary.activity(), Activity::Uploading);
        assert_eq!(summary.running(), vec![(1, 30), (2, 56)]);

        summary.observe(&state(1, JobState::Done));
        summary.observe(&state(2, JobState::Paused));
        assert_eq!(summary.line(), "1 paused");
        assert_eq!(summary.activity(), Activity::Paused);

        summary.observe(&progress(3, 0, 10, 0.0));
        summary.observe(&state(3, JobState::Failed));
        assert_eq!(summary.line(), "1 paused · 1 failed");
        assert_eq!(summary.activity(), Activity::Error);
        summary.clear_failures();
        assert_eq!(summary.activity(), Activity::Paused);

        summary.set_waiting_for_sign_in(1);
        assert_eq!(summary.activity(), Activity::SignInRequired);
        assert_eq!(summary.line(), "1 paused · 1 wait for sign-in");
    }

    fn scan(backend_id: i64, name: &str, found: u64, done: bool) -> Event {
        Event::Scan(crate::library::ScanProgress {
            backend_id,
            backend_name: name.into(),
            found,
            done,
        })
    }

    #[test]
    fn a_look_through_storage_shows_while_it_runs() {
        let mut summary = TransferSummary::default();
        summary.observe(&scan(1, "Cloud", 1000, false));
        summary.observe(&scan(1, "Cloud", 1240, false));
        assert_eq!(summary.line(), "Looking in Cloud: 1,240 found");
        assert_eq!(summary.activity(), Activity::Idle);
        summary.observe(&progress(1, 5, 10, 0.0));
        summary.observe(&scan(2, "Bucket", 3, false));
        assert_eq!(
            summary.line(),
            "Uploading 1 file · 50% · Looking in Bucket: 3 found · Looking in Cloud: 1,240 found"
        );
        summary.observe(&scan(1, "Cloud", 1240, true));
        summary.observe(&scan(2, "Bucket", 3, true));
        summary.observe(&state(1, JobState::Done));
        assert_eq!(summary.line(), "Idle");
    }

    #[test]
    fn uploads_held_for_their_window_say_when_it_opens() {
        let mut summary = TransferSummary::default();
        let opens =
            chrono::NaiveDate::from_ymd_opt(2026, 12, 8).and_then(|day| day.and_hms_opt(1, 0, 0));
        summary.observe(&Event::Held(Held {
            jobs: 2,
            opens_at: opens,
        }));
        assert_eq!(
            summary.line(),
            "2 wait for the upload window (opens at 01:00)"
        );
        summary.observe(&progress(1, 5, 10, 0.0));
        assert_eq!(
            summary.line(),
            "Uploading 1 file · 50%",
            "running uploads come first"
        );
        summary.observe(&state(1, JobState::Done));
        summary.observe(&Event::Held(Held::default()));
        assert_eq!(summary.line(), "Idle");
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(61), "2 min");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3 h 5 min");
    }
}
