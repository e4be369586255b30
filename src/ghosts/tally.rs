//! Each post's all-time `total`, who has yet to count in it, and the
//! counts pages read (the census). A total only grows, and only here: by a
//! reader that has shown it is one (its first position, or its stream held
//! `count_after`), once; or to what the cluster's Redis holds, never
//! backwards. The census is written only here, so what pages show is
//! always what the tally knows.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::census::{Census, Counts};
use super::ghost::GhostId;
use crate::blog::Slug;
use crate::store::Totals;

/// The largest all-time count kept: 2^53 - 1, the largest whole number a
/// browser's JavaScript shows exactly, and far from overflowing at a join.
pub(super) const MAX_TOTAL: u64 = (1 << 53) - 1;

pub(super) struct Tally {
    totals: Totals,
    census: Arc<Census>,
    /// New readers not yet in their post's `total`, oldest first, with when
    /// their held stream counts them.
    uncounted: VecDeque<(Instant, GhostId)>,
    /// How long a stream must be held to count; zero counts at the join.
    count_after: Duration,
    /// When the last batch of held streams counted (see `due`).
    batch_at: Option<Instant>,
}

/// Held streams count in batches at least this far apart. Each batch moves
/// a post's total once, so its readers get one `readers` for it, not one a
/// reader: in a room of 100 where readers arrive all the time, that was
/// 6 % more frames than the moves alone needed. Nobody can tell a total
/// that grew a second late.
const COUNT_BATCH: Duration = Duration::from_secs(1);

impl Tally {
    /// The totals loaded from disk, shown to pages at once.
    pub(super) fn new(totals: Totals, census: Arc<Census>, count_after: Duration) -> Tally {
        let shown = totals
            .iter()
            .filter_map(|(slug, total)| {
                let counts = Counts {
                    now: 0,
                    total: *total,
                };
                Some((Slug::parse(slug)?, counts))
            })
            .collect();
        census.set_all(shown);
        Tally {
            totals,
            census,
            uncounted: VecDeque::new(),
            count_after,
            batch_at: None,
        }
    }

    /// Whether a new reader counts the moment it joins.
    pub(super) fn counts_at_join(&self) -> bool {
        self.count_after.is_zero()
    }

    /// A reader has shown it is one: its post's total grows by one.
    pub(super) fn count(&mut self, slug: &Slug) {
        let total = self.totals.entry(slug.to_string()).or_insert(0);
        *total = total.saturating_add(1).min(MAX_TOTAL);
    }

    /// A new reader that has not counted yet: it counts when it moves, or
    /// once its stream has been held `count_after`.
    pub(super) fn wait_to_count(&mut self, id: GhostId, now: Instant) {
        self.uncounted.push_back((now + self.count_after, id));
    }

    /// The readers whose stream has now been held long enough to count
    /// (each counts if it has not already, and is still here).
    /// At most one batch a [`COUNT_BATCH`].
    pub(super) fn due(&mut self, now: Instant) -> Vec<GhostId> {
        let mut due = Vec::new();
        if self.batch_at.is_some_and(|at| now < at + COUNT_BATCH) {
            return due;
        }
        while self.uncounted.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, id)) = self.uncounted.pop_front() {
                due.push(id);
            }
        }
        if !due.is_empty() {
            self.batch_at = Some(now);
        }
        due
    }

    /// The total the cluster holds for a post: ours rises to it, never
    /// falls. Whether it rose. A post with no room here shows it at once;
    /// a room's counts go out with its next publish.
    pub(super) fn raise(&mut self, slug: &Slug, total: u64, has_room: bool) -> bool {
        let total = total.min(MAX_TOTAL);
        let entry = self.totals.entry(slug.to_string()).or_insert(0);
        if total <= *entry {
            return false;
        }
        *entry = total;
        if !has_room {
            let counts = self.census.get(slug.as_str());
            self.census.set(slug, Counts { total, ..counts });
        }
        true
    }

    /// A post's counts: `now` readers in its room, and its total.
    pub(super) fn counts(&self, slug: &Slug, now: usize) -> Counts {
        Counts {
            now: now as u64,
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        }
    }

    /// What pages show for a post, as its room has just published it.
    pub(super) fn show(&self, slug: &Slug, counts: Counts) {
        self.census.set(slug, counts);
    }

    pub(super) fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Shutdown: nobody is left to count.
    pub(super) fn forget_uncounted(&mut self) {
        self.uncounted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(text: &str) -> Slug {
        Slug::parse(text).expect("a slug")
    }

    #[tokio::test(start_paused = true)]
    async fn a_total_only_grows_by_readers_or_up_to_the_cluster_never_down() {
        let census = Arc::new(Census::default());
        let mut totals = Totals::new();
        totals.insert("p".to_string(), 5);
        let mut tally = Tally::new(totals, census.clone(), Duration::from_secs(5));
        assert_eq!(census.get("p").total, 5, "loaded totals are shown at once");
        tally.count(&slug("p"));
        assert_eq!(tally.counts(&slug("p"), 2).total, 6);
        assert!(
            !tally.raise(&slug("p"), 3, false),
            "the cluster never lowers a total"
        );
        assert_eq!(tally.counts(&slug("p"), 2).total, 6);
        assert!(tally.raise(&slug("p"), 9, false));
        assert_eq!(
            census.get("p").total,
            9,
            "a post with no room shows it at once"
        );
        assert!(tally.raise(&slug("p"), u64::MAX, true));
        assert_eq!(
            tally.counts(&slug("p"), 0).total,
            MAX_TOTAL,
            "kept where a browser shows it exactly"
        );
        tally.count(&slug("p"));
        assert_eq!(tally.counts(&slug("p"), 0).total, MAX_TOTAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_is_due_to_count_once_its_stream_was_held_long_enough() {
        let mut tally = Tally::new(Totals::new(), Arc::default(), Duration::from_secs(5));
        assert!(!tally.counts_at_join());
        let start = Instant::now();
        tally.wait_to_count(GhostId::for_test("a"), start);
        tally.wait_to_count(GhostId::for_test("b"), start + Duration::from_secs(1));
        assert!(tally.due(start + Duration::from_secs(4)).is_empty());
        assert_eq!(
            tally.due(start + Duration::from_secs(5)),
            vec![GhostId::for_test("a")]
        );
        assert_eq!(
            tally.due(start + Duration::from_secs(9)),
            vec![GhostId::for_test("b")]
        );
        assert!(
            tally.due(start + Duration::from_secs(99)).is_empty(),
            "each once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn held_streams_count_in_batches_a_second_apart() {
        let mut tally = Tally::new(Totals::new(), Arc::default(), Duration::from_secs(5));
        let start = Instant::now();
        for (ms, id) in [(0, "a"), (300, "b"), (600, "c")] {
            tally.wait_to_count(GhostId::for_test(id), start + Duration::from_millis(ms));
        }
        let at = |ms| start + Duration::from_secs(5) + Duration::from_millis(ms);
        assert_eq!(tally.due(at(0)), vec![GhostId::for_test("a")]);
        assert!(tally.due(at(500)).is_empty(), "b waits for the next batch");
        assert_eq!(
            tally.due(at(1000)),
            vec![GhostId::for_test("b"), GhostId::for_test("c")]
        );
    }
}
