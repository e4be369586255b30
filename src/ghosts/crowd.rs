//! Crowd mode: above a number of readers, a room stops sending per-ghost
//! events (which cost the square of its readers: every move to every
//! reader) and sends what the page draws there anyway, the number of
//! readers at each block, at most once per interval. Pure bookkeeping,
//! kept by the room in every mode so a switch costs nothing to prepare.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// When a room is crowded, and how often a crowded room speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrowdRule {
    /// More readers than this make a room crowded; 0 never does.
    pub above: usize,
    /// The least time between two `density` frames of one room.
    pub interval: Duration,
}

impl CrowdRule {
    /// Per-ghost events whatever the room's size (`--crowd 0`).
    pub const OFF: CrowdRule = CrowdRule {
        above: 0,
        interval: Duration::ZERO,
    };

    /// Whether a room of `readers` that is not crowded becomes so.
    pub fn enters(&self, readers: usize) -> bool {
        self.above > 0 && readers > self.above
    }

    /// Whether a crowded room of `readers` goes back to per-ghost events:
    /// only once a fifth of the threshold (at least one reader) has left,
    /// so a room that hovers at the threshold does not flap between modes.
    pub fn leaves(&self, readers: usize) -> bool {
        self.above == 0 || readers <= self.above - (self.above / 5).max(1)
    }
}

/// The block a position is in, in a post of `blocks` blocks: its integer
/// part, and the last block for the end of the post (`pos == blocks`) or
/// anything past it.
pub fn block_of(pos: f64, blocks: u32) -> u32 {
    // `as` saturates: NaN and negatives land on 0, huge values on MAX.
    (pos.floor() as u32).min(blocks.max(1) - 1)
}

/// Readers per block, updated as they come, go and move.
#[derive(Debug)]
pub struct Density {
    counts: Vec<u32>,
    /// Whether the counts changed since the last `take_changed`.
    changed: bool,
}

impl Density {
    /// Counts for a post of `blocks` blocks (at least one).
    pub fn new(blocks: u32) -> Density {
        Density {
            counts: vec![0; blocks.max(1) as usize],
            changed: false,
        }
    }

    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The block a position is in: its integer part, and the last block for
    /// the end of the post (`pos == blocks`) or anything past it.
    fn block(&self, pos: f64) -> usize {
        block_of(pos, self.counts.len() as u32) as usize
    }

    pub fn add(&mut self, pos: f64) {
        let block = self.block(pos);
        self.counts[block] += 1;
        self.changed = true;
    }

    pub fn remove(&mut self, pos: f64) {
        let block = self.block(pos);
        self.counts[block] = self.counts[block].saturating_sub(1);
        self.changed = true;
    }

    /// A reader moved; whether that changed any count.
    pub fn moved(&mut self, from: f64, to: f64) -> bool {
        let (from, to) = (self.block(from), self.block(to));
        if from == to {
            return false;
        }
        self.counts[from] = self.counts[from].saturating_sub(1);
        self.counts[to] += 1;
        self.changed = true;
        true
    }

    /// Counts again for another number of blocks (the post was edited).
    pub fn recount(&mut self, blocks: u32, positions: impl Iterator<Item = f64>) {
        *self = Density::new(blocks);
        for pos in positions {
            self.add(pos);
        }
    }

    /// Whether the counts changed since the last `take_changed`.
    pub fn counts_changed(&self) -> bool {
        self.changed
    }

    /// Whether the counts changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::replace(&mut self.changed, false)
    }
}

/// In cluster mode, a crowded room's readers on other instances, as each
/// instance counts them per block: a crowded room shares counts, not moves,
/// so what crosses Redis grows with its blocks, not its readers.
#[derive(Debug, Default)]
pub struct Shared {
    by_instance: HashMap<Arc<str>, Vec<u32>>,
    /// Their sum over every instance and block.
    readers: usize,
    /// Whether any changed since the last `take_changed`.
    changed: bool,
}

/// The most blocks an instance's counts may name; more is not a post.
pub const MOST_BLOCKS: usize = 10_000;

impl Shared {
    /// `instance`'s counts now, replacing what it said before.
    pub fn set(&mut self, instance: Arc<str>, counts: Vec<u32>) {
        if self.by_instance.get(&instance) == Some(&counts) {
            return;
        }
        self.by_instance.insert(instance, counts);
        self.changed = true;
        self.recount();
    }

    /// `instance` no longer counts here (it sends its ghosts, left, or is
    /// gone); whether it did.
    pub fn clear(&mut self, instance: &str) -> bool {
        let had = self.by_instance.remove(instance).is_some();
        if had {
            self.changed = true;
            self.recount();
        }
        had
    }

    pub fn clear_all(&mut self) -> bool {
        let had = !self.by_instance.is_empty();
        self.by_instance.clear();
        self.readers = 0;
        self.changed |= had;
        had
    }

    pub fn readers(&self) -> usize {
        self.readers
    }

    /// What `instance` counts here.
    pub fn readers_of(&self, instance: &str) -> usize {
        self.by_instance
            .get(instance)
            .map_or(0, |c| c.iter().map(|n| *n as usize).sum())
    }

    /// The instances that count readers here.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_instance.keys()
    }

    /// Adds every instance's counts into `counts`, block by block; counts
    /// past the last block land in it, as positions past the end do.
    pub fn add_into(&self, counts: &mut [u32]) {
        let Some(last) = counts.len().checked_sub(1) else {
            return;
        };
        for theirs in self.by_instance.values() {
            for (block, n) in theirs.iter().enumerate() {
                counts[block.min(last)] = counts[block.min(last)].saturating_add(*n);
            }
        }
    }

    pub fn changed(&self) -> bool {
        self.changed
    }

    pub fn take_changed(&mut self) -> bool {
        std::mem::replace(&mut self.changed, false)
    }

    fn recount(&mut self) {
        self.readers = self
            .by_instance
            .values()
            .flat_map(|c| c.iter())
            .map(|n| *n as usize)
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_enters_above_the_threshold_and_leaves_a_fifth_below_it() {
        let rule = CrowdRule {
            above: 50,
            interval: Duration::from_millis(250),
        };
        let cases = [
            (50, false, false),
            (51, true, false),
            (45, false, false),
            (41, false, false),
            (40, false, true),
        ];
        for (readers, enters, leaves) in cases {
            assert_eq!(rule.enters(readers), enters, "enters at {readers}");
            assert_eq!(rule.leaves(readers), leaves, "leaves at {readers}");
        }
        let tiny = CrowdRule { above: 1, ..rule };
        assert!(tiny.enters(2) && !tiny.leaves(1) && tiny.leaves(0));
        assert!(!CrowdRule::OFF.enters(1_000_000));
    }

    #[test]
    fn counts_follow_readers_and_say_when_they_changed() {
        let mut density = Density::new(4);
        density.add(0.0);
        density.add(1.5);
        density.add(4.0); // the end of the post counts in the last block
        density.add(99.0);
        assert_eq!(density.counts(), [1, 1, 0, 2]);
        assert!(density.take_changed());
        assert!(!density.moved(1.5, 1.9), "within a block: nothing to send");
        assert!(!density.take_changed());
        assert!(density.moved(1.9, 2.0));
        density.remove(0.0);
        assert_eq!(density.counts(), [0, 0, 1, 2]);
        assert!(density.take_changed());
        density.recount(2, [0.5, 3.0].into_iter());
        assert_eq!(density.counts(), [1, 1]);
        density.add(f64::NAN);
        assert_eq!(density.counts(), [2, 1]);
    }

    #[test]
    fn other_instances_counts_add_up_block_by_block_and_can_be_withdrawn() {
        let mut shared = Shared::default();
        shared.set(Arc::from("a"), vec![1, 0, 2]);
        shared.set(Arc::from("b"), vec![0, 3, 0, 0, 4]);
        assert_eq!(shared.readers(), 10);
        assert!(shared.take_changed());
        let mut counts = vec![1, 1, 1];
        shared.add_into(&mut counts);
        assert_eq!(counts, [2, 4, 7], "past the last block lands in it");
        shared.set(Arc::from("a"), vec![1, 0, 2]);
        assert!(!shared.take_changed(), "the same counts change nothing");
        assert!(shared.clear("a"));
        assert!(!shared.clear("a"));
        assert_eq!((shared.readers(), shared.readers_of("b")), (7, 7));
        assert!(shared.clear_all() && shared.readers() == 0);
    }
}
