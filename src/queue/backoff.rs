//! How long a job waits before its next attempt: exponential backoff with equal jitter (half the
//! delay fixed, half random, so that many jobs refused together do not come back together),
//! capped, and never sooner than the provider asked (`Retry-After`).

use std::time::Duration;

/// The delay before attempt `attempts + 1`, `jitter` in `0.0..=1.0` choosing within the random
/// half: `base × 2^(attempts − 1)`, at most `max`.
pub fn delay(
    base: Duration,
    max: Duration,
    attempts: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exponent).min(max);
    let half = full / 2;
    let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    retry_after.map_or(jittered, |asked| asked.max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(15 * 60);

    #[test]
    fn doubles_from_the_base_between_half_and_all_of_it() {
        for (attempts, full) in [(1, 2), (2, 4), (3, 8), (4, 16), (8, 256)] {
            let full = Duration::from_secs(full);
            assert_eq!(
                delay(BASE, MAX, attempts, None, 0.0),
                full / 2,
                "attempt {attempts}"
            );
            assert_eq!(
                delay(BASE, MAX, attempts, None, 1.0),
                full,
                "attempt {attempts}"
            );
            let middle = delay(BASE, MAX, attempts, None, 0.5);
            assert!(
                middle > full / 2 && middle < full,
                "attempt {attempts}: {middle:?}"
            );
        }
    }

    #[test]
    fn is_capped_and_never_overflows() {
        assert_eq!(delay(BASE, MAX, 11, None, 1.0), MAX);
        assert_eq!(delay(BASE, MAX, u32::MAX, None, 1.0), MAX);
        assert_eq!(delay(BASE, MAX, u32::MAX, None, 0.0), MAX / 2);
    }

    #[test]
    fn waits_at_least_what_the_provider_asked() {
        let asked = Duration::from_secs(30);
        assert_eq!(delay(BASE, MAX, 1, Some(asked), 1.0), asked);
        // A provider asking for less than the backoff does not shorten it.
        assert_eq!(
            delay(BASE, MAX, 8, Some(asked), 1.0),
            Duration::from_secs(256)
        );
    }

    #[test]
    fn the_first_attempt_counts_as_one() {
        assert_eq!(delay(BASE, MAX, 0, None, 1.0), BASE);
    }
}
