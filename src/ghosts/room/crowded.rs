//! A crowded room's frames: a `density` when what its pages draw changed
//! (a band's level, a shown count: `sight.rs`), and at least every
//! `REFRESH` while its exact counts differ from the last one sent; and in
//! cluster mode, its own counts for the other instances and theirs here.

use tokio::time::Instant;

use super::Room;
use crate::events::{self, Readers};
use crate::ghosts::crowd::Shared;
use crate::ghosts::sight::{Sight, REFRESH};

impl Room {
    /// Every reader per block: this instance's members, and the readers
    /// other instances count here.
    pub(super) fn all_counts(&self) -> Vec<u32> {
        let mut all = self.density.counts().to_vec();
        self.shared.add_into(&mut all);
        all
    }

    /// Encodes a `density` into the outbox if a page would draw it
    /// differently, or a refresh is due.
    pub(super) fn crowded_frame(&mut self, counts: Readers, now: Instant) {
        let density = self.density.take_changed();
        let shared = self.shared.take_changed();
        self.unshown |= density || shared || counts != self.heard;
        if !self.unshown {
            return;
        }
        let all = self.all_counts();
        let sight = match &self.shown {
            Some(drawn) => drawn.next(&all, counts),
            None => Sight::of(&all, counts),
        };
        let refresh = self.shown_at.is_none_or(|at| now >= at + REFRESH);
        if self.shown.as_ref() == Some(&sight) && !refresh {
            return;
        }
        events::encode(
            &mut self.outbox,
            &events::Density {
                counts: &all,
                now: counts.now,
                total: counts.total,
            },
        );
        self.heard = counts;
        self.shown = Some(sight);
        self.shown_at = Some(now);
        self.unshown = false;
    }

    /// The room's pages got its whole state (a switch of mode).
    pub(super) fn seen(&mut self, counts: Readers, now: Instant) {
        self.shown = self.crowded.then(|| Sight::of(&self.all_counts(), counts));
        self.shown_at = Some(now);
        self.unshown = false;
    }

    /// Whether the exact counts changed, unseen, for longer than a refresh.
    pub fn refresh_due(&self, now: Instant) -> bool {
        self.crowded && self.unshown && self.shown_at.is_some_and(|at| now >= at + REFRESH)
    }

    /// When this instance's changed counts are due to the others: half an
    /// interval after it last told them, so that a move here shows on
    /// another instance within about one and a half intervals, not two.
    pub(super) fn counts_due(&self) -> Option<Instant> {
        let (local, owed) = self.local.as_ref()?;
        if !self.crowded || !(local.counts_changed() || *owed) {
            return None;
        }
        let half = self.rule.interval / 2;
        Some(
            self.counts_told_at
                .map_or_else(Instant::now, |at| at + half),
        )
    }
    /// Other instances' counts here (cluster mode, crowded rooms).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }
    pub fn shared_mut(&mut self) -> &mut Shared {
        &mut self.shared
    }
    /// Whether the room may ever be crowded (`--crowd` is not 0): only
    /// then can it show other instances' counts.
    pub fn can_crowd(&self) -> bool {
        self.rule.above > 0
    }
    /// The mode the last publish switched to, once.
    pub fn take_switch(&mut self) -> Option<bool> {
        self.switched.take()
    }
    /// In a crowded room of cluster mode: this instance's readers per
    /// block, when not yet told since they changed (or since the switch).
    pub fn take_local_counts(&mut self, now: Instant) -> Option<Vec<u32>> {
        let (local, owed) = self.local.as_mut()?;
        let changed = local.take_changed();
        if !self.crowded || !(changed || *owed) {
            return None;
        }
        *owed = false;
        self.counts_told_at = Some(now);
        Some(local.counts().to_vec())
    }
    /// This instance's readers per block, told once more (another instance
    /// asked).
    pub fn owe_local_counts(&mut self) {
        if let Some((_, owed)) = &mut self.local {
            *owed = true;
        }
    }
}
