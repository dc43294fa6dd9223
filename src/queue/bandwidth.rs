//! The bandwidth limit: a token bucket every transfer of a process draws from, whose limit can
//! change while it runs (`offload limit`, the window's Settings; read with
//! `settings::bandwidth_limit`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket shared by all transfers of a process; the limit can change while it runs.
#[derive(Default)]
pub struct Bandwidth {
    limit: AtomicU64,
    next_free: Mutex<Option<Instant>>,
    /// What the transfers took lately, for a limit relative to it (yielding to a player).
    meter: Mutex<Meter>,
}

/// Bytes per second over windows of a second or more, the last window weighed as much as all
/// before it.
#[derive(Default)]
struct Meter {
    window_start: Option<Instant>,
    bytes: u64,
    rate: f64,
}

/// The shortest window the meter counts a rate over.
const METER_WINDOW: Duration = Duration::from_secs(1);

/// How far ahead of the ideal schedule a transfer may run: smooths bursts of reads.
const BANDWIDTH_BURST: Duration = Duration::from_millis(200);

impl Bandwidth {
    pub fn set_limit(&self, bytes_per_second: u64) {
        self.limit.store(bytes_per_second, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes per second the transfers took lately.
    pub fn observed_rate(&self) -> u64 {
        self.lock_meter().rate as u64
    }

    fn lock_meter(&self) -> std::sync::MutexGuard<'_, Meter> {
        self.meter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, bytes: u64) {
        let now = Instant::now();
        let mut meter = self.lock_meter();
        let start = *meter.window_start.get_or_insert(now);
        meter.bytes += bytes;
        let elapsed = now - start;
        if elapsed >= METER_WINDOW {
            let rate = meter.bytes as f64 / elapsed.as_secs_f64();
            meter.rate = if meter.rate == 0.0 {
                rate
            } else {
                (meter.rate + rate) / 2.0
            };
            meter.bytes = 0;
            meter.window_start = Some(now);
        }
    }

    pub async fn take(&self, bytes: u64) {
        self.count(bytes);
        let limit = self.limit();
        if limit == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / limit as f64);
        let wake_at = {
            let mut next_free = self
                .next_free
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let start = next_free.map_or(now, |next| next.max(now));
            let next = start + cost;
            *next_free = Some(next);
            next.checked_sub(BANDWIDTH_BURST).filter(|at| *at > now)
        };
        if let Some(at) = wake_at {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On tokio's paused clock: how long taking `chunks` of `bytes` under `limit` takes.
    async fn time_to_take(limit: u64, bytes: u64, chunks: u32) -> Duration {
        let bandwidth = Bandwidth::default();
        bandwidth.set_limit(limit);
        let started = Instant::now();
        for _ in 0..chunks {
            bandwidth.take(bytes).await;
        }
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_holds_over_many_takes_with_a_small_burst() {
        // 10 MiB at 1 MiB/s: ten seconds, less the burst allowance.
        let took = time_to_take(1 << 20, 1 << 20, 10).await;
        assert!(
            took >= Duration::from_secs(10) - BANDWIDTH_BURST,
            "{took:?}"
        );
        assert!(took <= Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_taken_is_observed() {
        // 4 MiB/s under the limit: what the meter sees.
        assert_eq!(Bandwidth::default().observed_rate(), 0);
        let bandwidth = Bandwidth::default();
        bandwidth.set_limit(4 << 20);
        for _ in 0..40 {
            bandwidth.take(1 << 20).await;
        }
        let rate = bandwidth.observed_rate();
        assert!((3 << 20..=5 << 20).contains(&rate), "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_never_waits() {
        assert_eq!(time_to_take(0, 1 << 30, 100).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_take_within_the_burst_does_not_wait() {
        assert_eq!(time_to_take(1 << 20, 100 * 1024, 1).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lifted_limit_applies_to_the_next_take() {
        let bandwidth = Bandwidth::default();
        bandwidth.set_limit(1024);
        let started = Instant::now();
        bandwidth.take(1024).await;
        let limited = started.elapsed();
        bandwidth.set_limit(0);
        let lifted = Instant::now();
        bandwidth.take(1 << 30).await;
        assert!(limited >= Duration::from_millis(800), "{limited:?}");
        assert_eq!(lifted.elapsed(), Duration::ZERO);
    }
}
