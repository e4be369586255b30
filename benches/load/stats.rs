//! What a load run counts, shared by every simulated reader: atomics for
//! counters, and histograms (microseconds) behind short-held locks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// POST answers worth telling apart; anything else counts as "other".
pub const STATUSES: [u16; 9] = [204, 400, 404, 408, 410, 413, 429, 503, 0];

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Default)]
pub struct Stats {
    pub opened: AtomicU64,
    pub failed: AtomicU64,
    pub resumed: AtomicU64,
    pub left: AtomicU64,
    pub open_streams: AtomicU64,
    pub moves_sent: AtomicU64,
    pub bytes: AtomicU64,
    pub deliveries: AtomicU64,
    posts: [AtomicU64; STATUSES.len()],
    errors: Mutex<BTreeMap<String, u64>>,
    /// Staleness of moves in rooms that send every ghost.
    moves: BySecond,
    /// Staleness of deliveries that crossed from one instance to another.
    cross: Mutex<Option<Histogram<u64>>>,
    /// Staleness in crowded rooms: a marker's entering or leaving its block
    /// until a reader's `density` shows it.
    pub crowd: BySecond,
    /// Staleness of neighbours in crowded rooms: a move's POST until a
    /// reader's `near` shows that position or a newer one.
    pub near: BySecond,
    /// From a reader starting to connect to its `hello` arriving.
    hello: Mutex<Option<Histogram<u64>>>,
}

impl Stats {
    pub fn post_answer(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.posts[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn posts(&self) -> BTreeMap<String, u64> {
        STATUSES
            .iter()
            .zip(&self.posts)
            .map(|(s, n)| {
                (
                    if *s == 0 {
                        "other".to_string()
                    } else {
                        s.to_string()
                    },
                    n.load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn posts_not_204(&self) -> u64 {
        self.posts()
            .iter()
            .filter(|(s, _)| *s != "204")
            .map(|(_, n)| n)
            .sum()
    }

    pub fn error(&self, kind: &str) {
        *self.errors.lock().entry(kind.to_string()).or_insert(0) += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    /// Records a batch of staleness samples (µs) from one read.
    pub fn record(&self, samples: &[u64]) {
        if samples.is_empty() {
            return;
        }
        self.deliveries
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        self.moves.record(samples);
    }

    /// Records deliveries that crossed instances (cluster mode); they are
    /// also in `record`.
    pub fn record_cross(&self, samples: &[u64]) {
        record_into(&self.cross, samples);
    }

    pub fn cross(&self) -> Histogram<u64> {
        self.cross.lock().clone().unwrap_or_else(histogram)
    }

    /// Records a batch of crowd staleness samples (µs) from one read; each
    /// is a delivery.
    pub fn record_crowd(&self, samples: &[u64]) {
        self.deliveries
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        self.crowd.record(samples);
    }

    /// A reader's `hello` came `micros` after it began to connect.
    pub fn record_hello(&self, micros: u64) {
        let mut hello = self.hello.lock();
        let _ = hello.get_or_insert_with(histogram).record(micros.max(1));
    }

    pub fn hello(&self) -> Option<Histogram<u64>> {
        self.hello.lock().clone()
    }

    /// Ends the current second of moves' staleness: its histogram, folded
    /// into the run's.
    pub fn take_second(&self) -> Histogram<u64> {
        self.moves.take_second()
    }

    pub fn total(&self) -> Histogram<u64> {
        self.moves.total().unwrap_or_else(histogram)
    }
}

/// A staleness of the current second, and of the run so far (samples in
/// microseconds).
#[derive(Default)]
pub struct BySecond {
    second: Mutex<Option<Histogram<u64>>>,
    total: Mutex<Option<Histogram<u64>>>,
}

impl BySecond {
    /// Records a batch of samples from one read.
    pub fn record(&self, samples: &[u64]) {
        record_into(&self.second, samples);
    }

    /// Ends the current second: its histogram, added to the run's.
    pub fn take_second(&self) -> Histogram<u64> {
        let second = self.second.lock().take().unwrap_or_else(histogram);
        let _ = self.total.lock().get_or_insert_with(histogram).add(&second);
        second
    }

    /// The run's; `None` if nothing was recorded.
    pub fn total(&self) -> Option<Histogram<u64>> {
        let _ = self.take_second();
        self.total.lock().clone().filter(|h| !h.is_empty())
    }
}

/// Adds samples (µs, at least 1) to a histogram made on first use.
fn record_into(slot: &Mutex<Option<Histogram<u64>>>, samples: &[u64]) {
    if samples.is_empty() {
        return;
    }
    let mut slot = slot.lock();
    let histogram = slot.get_or_insert_with(histogram);
    for sample in samples {
        let _ = histogram.record((*sample).max(1));
    }
}
