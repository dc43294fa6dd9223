//! Progress as people see it: how far a transfer is, how fast it goes (smoothed, so a burst or a
//! stall does not make the figure jump), and how long is left. Pure: the caller gives the time.

use std::time::{Duration, Instant};

/// Weight of the newest sample in the smoothed rate.
const RATE_SMOOTHING: f64 = 0.3;

/// One transfer's measurements between progress reports.
#[derive(Debug)]
pub struct Meter {
    total: u64,
    every: Duration,
    last_report: Instant,
    last_bytes: u64,
    rate: Option<f64>,
}

/// What a progress report says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Bytes per second, smoothed.
    pub rate: f64,
    pub eta_seconds: Option<u64>,
}

impl Meter {
    /// A transfer of `total` bytes started at `now`, reported at most once per `every` (and once
    /// more when it completes).
    pub fn new(total: u64, every: Duration, now: Instant) -> Meter {
        Meter {
            total,
            every,
            last_report: now,
            last_bytes: 0,
            rate: None,
        }
    }

    /// `done` bytes are through at `now`: a reading when one is due.
    pub fn observe(&mut self, done: u64, now: Instant) -> Option<Reading> {
        let since = now.duration_since(self.last_report);
        if since < self.every && done != self.total {
            return None;
        }
        let elapsed = since.max(Duration::from_millis(1)).as_secs_f64();
        let sample = done.saturating_sub(self.last_bytes) as f64 / elapsed;
        let rate = match self.rate {
            None => sample,
            Some(rate) => RATE_SMOOTHING * sample + (1.0 - RATE_SMOOTHING) * rate,
        };
        self.rate = Some(rate);
        self.last_report = now;
        self.last_bytes = done;
        Some(Reading {
            rate,
            eta_seconds: (rate > 1.0)
                .then(|| (self.total.saturating_sub(done) as f64 / rate).ceil() as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn reports_at_the_interval_and_at_the_end() {
        let start = Instant::now();
        let mut meter = Meter::new(10 * MIB, Duration::from_millis(250), start);
        assert_eq!(meter.observe(MIB, start + Duration::from_millis(100)), None);
        let first = meter
            .observe(2 * MIB, start + Duration::from_millis(250))
            .unwrap();
        assert_eq!(first.rate, 8.0 * MIB as f64, "2 MiB in a quarter second");
        assert_eq!(first.eta_seconds, Some(1));
        assert_eq!(
            meter.observe(3 * MIB, start + Duration::from_millis(300)),
            None
        );
        let last = meter
            .observe(10 * MIB, start + Duration::from_millis(310))
            .unwrap();
        assert_eq!(
            last.eta_seconds,
            Some(0),
            "the last bytes are always reported"
        );
    }

    #[test]
    fn the_rate_is_smoothed_so_a_stall_does_not_zero_it() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut meter = Meter::new(100 * MIB, second, start);
        let steady = meter.observe(10 * MIB, start + second).unwrap();
        assert_eq!(steady.rate, 10.0 * MIB as f64);
        let stalled = meter.observe(10 * MIB, start + 2 * second).unwrap();
        assert_eq!(
            stalled.rate,
            7.0 * MIB as f64,
            "70% of the old rate, 30% of nothing"
        );
        assert_eq!(
            stalled.eta_seconds,
            Some(13),
            "90 MiB at 7 MiB/s, rounded up"
        );
    }

    #[test]
    fn no_rate_no_estimate() {
        let start = Instant::now();
        let mut meter = Meter::new(MIB, Duration::from_secs(1), start);
        let reading = meter.observe(0, start + Duration::from_secs(1)).unwrap();
        assert_eq!(reading.eta_seconds, None);
    }
}
