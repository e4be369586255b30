//! What the manager publishes for request handlers to read without asking it:
//! which token belongs to which live ghost (the [`Directory`]), and each post's
//! reader counts (the [`Census`]). Only the manager writes either; handlers
//! see its decisions at most one command late, which the protocol allows
//! (a move racing a leave is dropped by the manager, who knows better).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::time::Instant;

use super::ghost::{GhostId, Token};
use crate::blog::Slug;

/// A live ghost as a handler sees it: enough to check and rate-limit a move.
#[derive(Debug)]
pub struct Seat {
    pub id: GhostId,
    pub slug: Slug,
    pub limiter: Limiter,
}

/// Live ghosts by token. A read lock held for one hash lookup per POST;
/// written by the manager on join and leave only.
#[derive(Debug, Default)]
pub struct Directory {
    seats: RwLock<HashMap<Token, Arc<Seat>>>,
}

impl Directory {
    pub fn get(&self, token: &Token) -> Option<Arc<Seat>> {
        self.seats.read().get(token).cloned()
    }

    pub(super) fn insert(&self, token: Token, seat: Arc<Seat>) {
        self.seats.write().insert(token, seat);
    }

    pub(super) fn remove(&self, token: &Token) {
        self.seats.write().remove(token);
    }

    pub(super) fn clear(&self) {
        self.seats.write().clear();
    }
}

/// Readers now and ever, per post; also the `readers` event's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub now: u64,
    pub total: u64,
}

/// Each post's counts as of the manager's last tick, for pages.
#[derive(Debug, Default)]
pub struct Census {
    posts: RwLock<HashMap<Slug, Counts>>,
}

impl Census {
    pub fn get(&self, slug: &str) -> Counts {
        self.posts.read().get(slug).copied().unwrap_or_default()
    }

    pub(super) fn set(&self, slug: &Slug, counts: Counts) {
        self.posts.write().insert(slug.clone(), counts);
    }

    pub(super) fn set_all(&self, all: HashMap<Slug, Counts>) {
        *self.posts.write() = all;
    }
}

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
