//! Desktop notifications: finished uploads batched into one, failures, and accounts that need a
//! sign-in. Switched off with the setting `app.notifications = 0`.

use std::time::{Duration, Instant};

use offload::queue::{Event, JobState};
use tauri::{AppHandle, Manager as _};
use tauri_plugin_notification::NotificationExt as _;

/// Uploads that finish within this long of each other are announced together.
const BATCH_WINDOW: Duration = Duration::from_secs(3);

/// What to announce, gathered from the queue's events and released a batch at a time.
#[derive(Debug, Default)]
pub struct Announcements {
    finished: Vec<String>,
    last_finished: Option<Instant>,
    failed: Vec<(String, String)>,
    waiting_for_sign_in: usize,
    sign_in_announced: bool,
}

impl Announcements {
    /// Takes note of a job's new state; `name` is its file name.
    pub fn observe(&mut self, event: &Event, name: impl FnOnce(i64) -> String, now: Instant) {
        if let Event::State {
            job_id,
            state,
            message,
            ..
        } = event
        {
            match state {
                JobState::Done => {
                    self.finished.push(name(*job_id));
                    self.last_finished = Some(now);
                }
                JobState::Failed => self.failed.push((
                    name(*job_id),
                    message.clone().unwrap_or_else(|| "it failed".into()),
                )),
                _ => {}
            }
        }
    }

    pub fn set_waiting_for_sign_in(&mut self, jobs: usize) {
        if jobs == 0 {
            self.sign_in_announced = false;
        }
        self.waiting_for_sign_in = jobs;
    }

    /// The notifications due now, as (title, body).
    pub fn due(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut due = Vec::new();
        let settled = self
            .last_finished
            .is_some_and(|last| now.duration_since(last) >= BATCH_WINDOW);
        if settled && !self.finished.is_empty() {
            let body = match self.finished.as_slice() {
                [one] => format!("{one} is uploaded and verified."),
                [first, rest @ ..] => {
                    format!("{first} and {} more are uploaded and verified.", rest.len())
                }
                [] => String::new(),
            };
            let count = self.finished.len();
            let title = if count == 1 {
                "Upload finished".to_owned()
            } else {
                format!("{count} uploads finished")
            };
            due.push((title, body));
            self.finished.clear();
        }
        for (name, message) in self.failed.drain(..) {
            due.push((format!("Upload of {name} failed"), message));
        }
        if self.waiting_for_sign_in > 0 && !self.sign_in_announced {
            self.sign_in_announced = true;
            due.push((
                "Storage needs you to sign in".to_owned(),
                "An account was signed out. Open Offload → Storage and press Reconnect; the uploads wait until then.".to_owned(),
            ));
        }
        due
    }
}

/// Shows one notification, unless they are switched off in the settings. Without a notification
/// service (a bare X server) it is only logged.
pub fn show(app: &AppHandle, title: &str, body: &str) {
    let settings = app.state::<crate::AppState>().engine.settings();
    if settings.is_ok_and(|settings| !settings.notifications) {
        return;
    }
    if let Err(error) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!(%error, "no notification service");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(job_id: i64) -> Event {
        Event::State {
            job_id,
            state: JobState::Done,
            message: None,
            action: None,
        }
    }

    #[test]
    fn uploads_finishing_together_make_one_notification() {
        let start = Instant::now();
        let mut announcements = Announcements::default();
        let name = |id: i64| format!("film{id}.mkv");
        announcements.observe(&done(1), name, start);
        announcements.observe(&done(2), name, start + Duration::from_secs(1));
        assert!(
            announcements.due(start + Duration::from_secs(2)).is_empty(),
            "still batching"
        );
        let due = announcements.due(start + Duration::from_secs(5));
        assert_eq!(
            due,
            vec![(
                "2 uploads finished".to_owned(),
                "film1.mkv and 1 more are uploaded and verified.".to_owned()
            )]
        );
        assert!(
            announcements.due(start + Duration::from_secs(9)).is_empty(),
            "said once"
        );
    }

    #[test]
    fn a_failure_and_a_sign_in_are_said_once_each() {
        let now = Instant::now();
        let mut announcements = Announcements::default();
        announcements.observe(
            &Event::State {
                job_id: 3,
                state: JobState::Failed,
                message: Some("the bucket does not exist".into()),
                action: None,
            },
            |_| "a.mkv".into(),
            now,
        );
        announcements.set_waiting_for_sign_in(2);
        let due = announcements.due(now);
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].0, "Upload of a.mkv failed");
        assert_eq!(due[0].1, "the bucket does not exist");
        assert!(announcements.due(now).is_empty());
        announcements.set_waiting_for_sign_in(0);
        announcements.set_waiting_for_sign_in(1);
        assert_eq!(
            announcements.due(now).len(),
            1,
            "a new sign-out is said again"
        );
    }
}
