//! One post's readers and what they have yet to hear. Pure bookkeeping plus
//! the room's broadcast sender: the manager calls in, the room encodes events
//! in the order they happened and hands out one shared frame per publish.
//! A crowded room (see `crowd.rs`) sends its readers' density instead of
//! their every join, leave and move.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::census::Counts;
use super::crowd::{block_of, CrowdRule, Density, Shared};
use super::ghost::{Color, GhostId};
use super::messages::WireEvent;
use super::near::{NearView, Neighbours};
use super::sight::Sight;

/// Frames a room keeps for readers that are behind. One frame is one tick
/// (or one join) of the room, so 256 is over two seconds of a busy room at
/// the default tick: a reader further behind than that is better served by a
/// fresh snapshot than by replaying history.
pub const BACKLOG: usize = 256;

#[derive(Debug)]
pub struct Member {
    pub color: Color,
    pub pos: f64,
    /// Which instance holds this ghost's reader: `None` for this one. Only
    /// this instance's own ghosts are shared with the cluster.
    pub origin: Option<Arc<str>>,
    /// Its reader's tabs are hidden, or it has not scrolled for a while.
    pub away: bool,
    /// Whether this member's position waits in `pending`.
    queued: bool,
    /// Where its stream finds its neighbours (this instance's members).
    view: Option<Arc<NearView>>,
}

#[derive(Debug)]
pub struct Room {
    members: HashMap<GhostId, Member>,
    /// Members whose newest position has not been sent, in order of first move.
    pending: Vec<GhostId>,
    /// Encoded events not yet published, in the order they happened.
    outbox: Vec<u8>,
    /// The counts the room's readers last heard.
    heard: Counts,
    /// In cluster mode, this instance's own events since the last publish,
    /// in order, for the other instances.
    journal: Option<Vec<WireEvent>>,
    sender: broadcast::Sender<Bytes>,
    /// When a room is crowded, and how often it then speaks.
    rule: CrowdRule,
    /// Whether the room sends `density` instead of per-ghost events.
    crowded: bool,
    /// Readers per block, kept in every mode: every member, local or not.
    density: Density,
    /// In cluster mode: this instance's own readers per block, which a
    /// crowded room tells the other instances instead of its moves; and
    /// whether the last of them are still to be told.
    local: Option<(Density, bool)>,
    /// Other instances' readers per block, where they share counts.
    shared: Shared,
    /// While crowded: the readers nearest each block, as ghosts.
    neighbours: Neighbours,
    /// What the room's pages draw, as of its last `density`; when that was
    /// sent; and whether the exact counts changed since (see `sight.rs`).
    shown: Option<Sight>,
    shown_at: Option<Instant>,
    unshown: bool,
    /// The mode the last publish switched to, for the manager to tell the
    /// other instances: `Some(true)` crowded, `Some(false)` per-ghost.
    switched: Option<bool>,
    /// When this instance last told the others its counts here.
    counts_told_at: Option<Instant>,
    /// When the room last published a frame.
    published_at: Option<Instant>,
    /// The post's block count, once a local reader has told it (a room
    /// made for another instance's ghosts does not know it yet).
    blocks: Option<u32>,
    /// Invisible readers subscribed here: no member, no count, but the
    /// room must stay while they watch.
    watchers: usize,
}

/// What a move did to the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// First move of this member since the last publish.
    Queued,
    /// Replaced a newer-but-unsent position: one fewer entry on the wire.
    /// In a crowded room: nothing to send, no count changed.
    Coalesced,
    /// In a crowded room: a count changed, for the next `density`.
    Recounted,
    /// In a crowded room: a reader's neighbours changed, for its next `near`.
    Seen,
    /// No such member (it left while the move was on its way).
    Unknown,
}

/// Whether a room's own events are also told to the other instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// A server on its own.
    Alone,
    /// Cluster mode: the room journals its own ghosts' events in order.
    Cluster,
}

impl Room {
    /// A room for a post of `blocks` blocks; `None` while not known (a
    /// room for other instances' ghosts only).
    pub fn new(sharing: Sharing, rule: CrowdRule, blocks: impl Into<Option<u32>>) -> Room {
        let blocks = blocks.into();
        let (sender, _) = broadcast::channel(BACKLOG);
        Room {
            members: HashMap::new(),
            pending: Vec::new(),
            outbox: Vec::new(),
            heard: Counts::default(),
            journal: (sharing == Sharing::Cluster).then(Vec::new),
            sender,
            rule,
            crowded: false,
            density: Density::new(blocks.unwrap_or(1)),
            local: (sharing == Sharing::Cluster)
                .then(|| (Density::new(blocks.unwrap_or(1)), false)),
            shared: Shared::default(),
            neighbours: Neighbours::default(),
            shown: None,
            shown_at: None,
            unshown: false,
            switched: None,
            counts_told_at: None,
            published_at: None,
            blocks,
            watchers: 0,
        }
    }

    /// An invisible reader starts or stops watching this room.
    pub fn watch(&mut self, watching: bool) {
        if watching {
            self.watchers += 1;
        } else {
            self.watchers = self.watchers.saturating_sub(1);
        }
    }

    /// Nobody is here, visible or not: the room can go.
    /// Whether a reader of this instance is here: a ghost, or a watcher.
    pub fn has_local_reader(&self) -> bool {
        self.watchers > 0 || self.local_ghosts().next().is_some()
    }

    pub fn is_unused(&self) -> bool {
        self.members.is_empty() && self.watchers == 0 && self.shared.readers() == 0
    }

    /// The post's block count, once known.
    pub fn blocks(&self) -> Option<u32> {
        self.blocks
    }

    /// A position from another instance, made one a local reader could
    /// send: finite, and within the post once its length is known.
    pub fn sane(&self, pos: f64) -> f64 {
        let pos = if pos.is_finite() { pos.max(0.0) } else { 0.0 };
        match self.blocks {
            Some(blocks) => pos.min(f64::from(blocks)),
            None => pos,
        }
    }

    /// The post has `blocks` blocks (first told, or it was edited): every
    /// position is kept within it, and the density counted again over it.
    pub fn set_blocks(&mut self, blocks: u32) {
        if self.blocks == Some(blocks) {
            return;
        }
        self.blocks = Some(blocks);
        let end = f64::from(blocks);
        for member in self.members.values_mut() {
            member.pos = member.pos.min(end);
        }
        let positions = self.members.values().map(|m| m.pos);
        self.density.recount(blocks, positions);
        // Every member in its block of the post as it is now.
        self.order_neighbours();
        if let Some((local, _)) = &mut self.local {
            let positions = self.members.values().filter(|m| m.origin.is_none());
            local.recount(blocks, positions.map(|m| m.pos));
        }
    }

    /// Whether the next publish switches modes.
    /// Another instance sharing counts here means it found the room
    /// crowded: this instance shows it crowded too (counts cannot be drawn
    /// as ghosts), until that instance sends its ghosts again.
    fn switch_due(&self) -> bool {
        let counted_elsewhere = self.shared.readers() > 0;
        if self.crowded {
            self.rule.leaves(self.len()) && !counted_elsewhere
        } else {
            self.rule.enters(self.len()) || counted_elsewhere
        }
    }

    /// When the room should next publish: at once, unless it is crowded
    /// (then one interval after its last frame) and not about to switch;
    /// or, crowded in a cluster, when its own counts are due to the other
    /// instances, if that is sooner.
    pub fn publish_due(&self, now: Instant) -> Instant {
        let frame = self.frame_due(now);
        self.counts_due()
            .map_or(frame, |counts| counts.max(now).min(frame))
    }

    /// When the room's readers should next get a frame.
    pub fn frame_due(&self, now: Instant) -> Instant {
        match self.published_at {
            Some(last) if self.crowded && !self.switch_due() => last + self.rule.interval,
            _ => now,
        }
    }

    pub fn contains(&self, id: &GhostId) -> bool {
        self.members.contains_key(id)
    }

    pub fn member(&self, id: &GhostId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Where this instance's member `id`'s stream finds its neighbours.
    pub fn near_view(&self, id: &GhostId) -> Option<Arc<NearView>> {
        self.members.get(id)?.view.clone()
    }

    /// The block a position counts in.
    fn block_of(&self, pos: f64) -> u32 {
        block_of(pos, self.density.counts().len() as u32)
    }

    /// This instance's own ghosts, each with its id.
    pub fn local_ghosts(&self) -> impl Iterator<Item = (&GhostId, &Member)> {
        self.members.iter().filter(|(_, m)| m.origin.is_none())
    }

    /// The events to share with the cluster since the last call.
    pub fn take_journal(&mut self) -> Vec<WireEvent> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Readers in the room: its members, and the readers other instances
    /// count here.
    pub fn len(&self) -> usize {
        self.members.len() + self.shared.readers()
    }

    /// Whether the room is crowded now.
    pub fn crowded(&self) -> bool {
        self.crowded
    }

    pub fn colors(&self) -> impl Iterator<Item = Color> + '_ {
        self.members.values().map(|m| m.color)
    }

    /// A receiver that gets every frame published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.sender.subscribe()
    }

    /// Whether anything waits to be published.
    pub fn has_news(&self, counts: Counts) -> bool {
        !self.pending.is_empty()
            || !self.outbox.is_empty()
            || counts != self.heard
            || self.switch_due()
            || (self.crowded && (self.density.counts_changed() || self.shared.changed()))
            || self.neighbours.dirty()
            || self.refresh_due(Instant::now())
    }
}

mod crowded;
mod frames;
mod members;
#[cfg(test)]
mod tests;
