//! One pace for every request to a provider account, as rclone's pacer keeps: when the provider
//! says slow down (a `429`, Drive's `userRateLimitExceeded`), every upload, listing and stream
//! to that account waits out the same pause before its next request, instead of each worker
//! finding the limit for itself and the account staying over it. The pause is the provider's
//! `Retry-After` where it gives one, else it doubles from one second while answers keep saying
//! so, and starts again from one second once a request goes through.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause without a `Retry-After`, and the longest.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(64);

#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// No request before this.
    until: Option<Instant>,
    /// The pause the next rate limit without `Retry-After` gets.
    next_pause: Option<Duration>,
}

impl Pacer {
    /// Waits until the account may be asked again; returns how long that was.
    pub async fn wait(&self) -> Duration {
        let until = self.lock().until;
        match until {
            Some(until) if until > Instant::now() => {
                let waited = until - Instant::now();
                tokio::time::sleep_until(until).await;
                waited
            }
            _ => Duration::ZERO,
        }
    }

    /// The provider said slow down: nobody asks it again for `retry_after`, or for a pause that
    /// doubles with each such answer. Returns the pause.
    pub fn slow_down(&self, retry_after: Option<Duration>) -> Duration {
        let mut state = self.lock();
        let pause = retry_after.unwrap_or_else(|| {
            let pause = state.next_pause.unwrap_or(FIRST_PAUSE);
            state.next_pause = Some((pause * 2).min(LONGEST_PAUSE));
            pause
        });
        let until = Instant::now() + pause;
        state.until = Some(state.until.map_or(until, |earlier| earlier.max(until)));
        pause
    }

    /// A request went through: the next rate limit starts again from the first pause.
    pub fn went_through(&self) {
        self.lock().next_pause = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_request_waits_out_the_pause_and_pauses_double_until_one_goes_through() {
        let pacer = Pacer::default();
        assert_eq!(pacer.wait().await, Duration::ZERO);
        assert_eq!(pacer.slow_down(None), Duration::from_secs(1));
        assert_eq!(pacer.slow_down(None), Duration::from_secs(2));
        let start = tokio::time::Instant::now();
        pacer.wait().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "the longer pause holds"
        );
        assert_eq!(
            pacer.slow_down(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(pacer.slow_down(None), Duration::from_secs(4));
        pacer.went_through();
        assert_eq!(pacer.slow_down(None), Duration::from_secs(1));
    }
}
