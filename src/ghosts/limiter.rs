//! A move's rate limit, checked by the request handler before the manager
//! hears of the move, so a `429` costs the manager nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A per-ghost rate limit as one atomic (GCRA, the "virtual scheduling"
/// form of a token bucket): a burst of `rate` moves, then `rate` per second.
/// A refused move costs one load and one compare; nothing is queued.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    /// Nanoseconds after `epoch` at which the bucket is next empty.
    theoretical_arrival: AtomicU64,
    interval_nanos: u64,
    burst_nanos: u64,
}

impl Limiter {
    pub fn per_second(rate: u32) -> Limiter {
        let interval_nanos = 1_000_000_000 / u64::from(rate.max(1));
        Limiter {
            epoch: Instant::now(),
            theoretical_arrival: AtomicU64::new(0),
            interval_nanos,
            burst_nanos: interval_nanos * u64::from(rate.max(1).saturating_sub(1)),
        }
    }

    /// Takes one move; `Err(wait)` says how long until one is allowed.
    pub fn check(&self) -> Result<(), Duration> {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut tat = self.theoretical_arrival.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.burst_nanos {
                return Err(Duration::from_nanos(start - now - self.burst_nanos));
            }
            match self.theoretical_arrival.compare_exchange_weak(
                tat,
                start + self.interval_nanos,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_allows_a_burst_then_the_rate() {
        let limiter = Limiter::per_second(50);
        for i in 0..50 {
            assert!(limiter.check().is_ok(), "move {i} of the burst");
        }
        let wait = limiter
            .check()
            .expect_err("the 51st move in the same instant is refused");
        assert!(wait <= Duration::from_millis(20));
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(limiter.check().is_ok(), "one more after one interval");
        assert!(limiter.check().is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        for i in 0..50 {
            assert!(
                limiter.check().is_ok(),
                "a full burst again after a second ({i})"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_rate_at_the_limit_is_never_refused() {
        let limiter = Limiter::per_second(50);
        for _ in 0..500 {
            assert!(limiter.check().is_ok());
            tokio::time::advance(Duration::from_millis(20)).await;
        }
    }
}
