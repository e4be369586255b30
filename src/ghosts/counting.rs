//! Who counts in a post's all-time `total`: a reader that has shown it is
//! one (its first position, or its stream held `count_after`), once. Part
//! of the manager.

use tokio::time::Instant;

use super::ghost::GhostId;
use super::manager::Manager;
use super::messages::Outbound;
use super::remote::MAX_TOTAL;
use crate::blog::Slug;

impl Manager {
    /// A reader has shown it is one: it counts in its post's all-time
    /// `total`, here and (through Redis) on every instance. The one place
    /// a total grows.
    pub(super) fn count_reader(&mut self, slug: &Slug) {
        let total = self.totals.entry(slug.to_string()).or_insert(0);
        *total = total.saturating_add(1).min(MAX_TOTAL);
        self.saver.changed();
        self.metrics.readers_counted.inc();
        // If Redis is far behind, the count waits for the next snapshot of totals.
        self.tell_cluster(Outbound::NewReader { slug: slug.clone() });
        if self.rooms.contains_key(slug) {
            self.mark_dirty(slug);
        }
    }

    /// Counts the live reader `id` if it is not counted yet (its first
    /// position came, or it has held its stream long enough).
    pub(super) fn count_if_new(&mut self, id: &GhostId) {
        let Some(live) = self.roster.get_mut(id).filter(|live| !live.counted) else {
            return;
        };
        live.counted = true;
        let slug = live.slug.clone();
        self.count_reader(&slug);
    }

    /// Counts the readers whose stream has been held `count_after`.
    pub(super) fn count_held(&mut self, now: Instant) {
        while let Some((due, _)) = self.uncounted.front() {
            if *due > now {
                break;
            }
            if let Some((_, id)) = self.uncounted.pop_front() {
                self.count_if_new(&id);
            }
        }
    }
}
