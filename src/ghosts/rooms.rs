//! Every post's room, and when each next speaks: rooms with something to
//! publish, the readers waiting for their room's next tick (newcomers for
//! their first state, readers who fell behind for a fresh one), and when
//! the manager must next wake for them. A change never waits more than one
//! tick (or, in a crowded room, one interval) to go out, and a room that
//! nobody is in any more goes once it has said so.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::census::Counts;
use super::commands::{Joined, Resync, Waiting};
use super::crowd::CrowdRule;
use super::ghost::GhostId;
use super::room::{Room, Sharing};
use crate::blog::Slug;

/// What answering a room's waiting readers came to.
#[derive(Default)]
pub(super) struct Answered {
    /// Newcomers whose requester gave up: `(ghost, serial)`.
    pub(super) gave_up: Vec<(GhostId, u64)>,
    /// Readers that fell behind, given the room's state afresh.
    pub(super) resyncs: u64,
}

pub(super) struct Rooms {
    rooms: HashMap<Slug, Room>,
    /// Rooms with something to publish at the next tick, or (crowded rooms)
    /// when their interval is up.
    dirty: Vec<Slug>,
    /// Readers waiting for their room's next tick. One state per room per
    /// tick serves them all.
    waiting: HashMap<Slug, Vec<Waiting>>,
    /// When the next tick is due; `None` while nothing waits, so an idle
    /// server does not wake up at all.
    flush_at: Option<Instant>,
    last_flush: Instant,
    tick: Duration,
    /// How new rooms are made: shared with the cluster or not, crowded
    /// above the configured size.
    sharing: Sharing,
    crowd: CrowdRule,
}

impl Rooms {
    pub(super) fn new(tick: Duration, sharing: Sharing, crowd: CrowdRule) -> Rooms {
        Rooms {
            rooms: HashMap::new(),
            dirty: Vec::new(),
            waiting: HashMap::new(),
            flush_at: None,
            last_flush: Instant::now(),
            tick,
            sharing,
            crowd,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.rooms.len()
    }

    pub(super) fn get(&self, slug: &Slug) -> Option<&Room> {
        self.rooms.get(slug)
    }

    pub(super) fn get_mut(&mut self, slug: &Slug) -> Option<&mut Room> {
        self.rooms.get_mut(slug)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Slug, &Room)> {
        self.rooms.iter()
    }

    /// Crowded rooms whose exact counts changed unseen for a while: their
    /// pages get them now.
    pub(super) fn refresh_due(&self, now: Instant) -> Vec<Slug> {
        self.rooms
            .iter()
            .filter(|(_, room)| room.refresh_due(now))
            .map(|(slug, _)| slug.clone())
            .collect()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&Slug, &mut Room)> {
        self.rooms.iter_mut()
    }

    /// Readers in a post's room now (local and remote ghosts).
    pub(super) fn readers(&self, slug: &Slug) -> usize {
        self.rooms.get(slug).map_or(0, Room::len)
    }

    /// The post's room, made if it has none; `blocks` is `None` for a room
    /// made for other instances' ghosts, which do not say the post's
    /// length (its first local reader does).
    pub(super) fn open(&mut self, slug: &Slug, blocks: Option<u32>) -> &mut Room {
        let room = self
            .rooms
            .entry(slug.clone())
            .or_insert_with(|| Room::new(self.sharing, self.crowd, blocks));
        if let Some(blocks) = blocks {
            room.set_blocks(blocks);
        }
        room
    }

    /// The room has something to publish: at the next tick, or for a
    /// crowded room at the end of its interval, whichever is later.
    pub(super) fn mark(&mut self, slug: &Slug) {
        if !self.dirty.contains(slug) {
            self.dirty.push(slug.clone());
        }
        let now = Instant::now();
        // A lone change goes out at once if the last tick was long ago.
        let tick = (self.last_flush + self.tick).max(now);
        let due = match self.rooms.get(slug) {
            Some(room) if !self.waiting.contains_key(slug) => room.publish_due(now).max(tick),
            _ => tick,
        };
        self.flush_at = Some(self.flush_at.map_or(due, |at| at.min(due)));
    }

    /// `reader` is answered at the room's next tick, with the state every
    /// other reader waiting there gets too.
    pub(super) fn wait(&mut self, slug: &Slug, reader: Waiting) {
        self.waiting.entry(slug.clone()).or_default().push(reader);
        self.mark(slug);
    }

    /// When the manager must next wake to publish, if ever.
    pub(super) fn flush_at(&self) -> Option<Instant> {
        self.flush_at
    }

    /// Starts a tick at `now`, if one is due: the changed rooms, each of
    /// which publishes if it is due and answers its waiting readers.
    /// Crowded rooms not yet due wait on, scheduled again.
    pub(super) fn start_tick(&mut self, now: Instant) -> Option<Vec<Slug>> {
        if self.flush_at.is_none_or(|at| at > now) {
            return None;
        }
        let slugs = std::mem::take(&mut self.dirty);
        self.flush_at = None;
        self.last_flush = now;
        Some(slugs)
    }

    /// Whether the room is due to publish at `now`; if not, it stays
    /// scheduled for when it is.
    pub(super) fn publishes_now(&mut self, slug: &Slug, now: Instant) -> bool {
        let due = self
            .rooms
            .get(slug)
            .map_or(now, |room| room.publish_due(now));
        if due > now {
            self.dirty.push(slug.clone());
            self.flush_at = Some(self.flush_at.map_or(due, |at| at.min(due)));
            return false;
        }
        true
    }

    /// Gives every reader waiting on the room the room's state, encoded
    /// once, and a subscription from after this tick's frame. Returns the
    /// newcomers whose requester gave up meanwhile (their stream never
    /// existed to send its leave: the caller undoes their join), and how
    /// many readers that fell behind were given a fresh start.
    pub(super) fn answer_waiting(&mut self, slug: &Slug, counts: Counts) -> Answered {
        let mut answered = Answered::default();
        let Some(waiting) = self.waiting.remove(slug) else {
            return answered;
        };
        let Some(room) = self.rooms.get(slug) else {
            return answered; // Dropping the senders ends those streams; they reconnect.
        };
        let state = Bytes::from(room.state(counts));
        for reader in waiting {
            match reader {
                Waiting::Joined {
                    respond_to,
                    ghost,
                    token,
                    serial,
                    hello,
                    end,
                } => {
                    let near = room.near_view(&ghost);
                    let joined = Joined {
                        ghost,
                        token,
                        serial,
                        hello,
                        state: state.clone(),
                        events: room.subscribe(),
                        end,
                        near,
                    };
                    if let Err(Ok(joined)) = respond_to.send(Ok(joined)) {
                        answered.gave_up.push((joined.ghost, joined.serial));
                    }
                }
                Waiting::Resync { respond_to } => {
                    answered.resyncs += 1;
                    let resync = Resync {
                        snapshot: state.clone(),
                        events: room.subscribe(),
                    };
                    // The stream may have closed meanwhile; then it needs nothing.
                    let _ = respond_to.send(resync);
                }
            }
        }
        answered
    }

    /// The room goes if nobody is in it any more and it has published
    /// that (it was due at this tick). Whether it went.
    pub(super) fn drop_if_unused(&mut self, slug: &Slug, published: bool) -> bool {
        let unused = self.rooms.get(slug).is_some_and(Room::is_unused);
        if unused && published {
            self.rooms.remove(slug);
        }
        unused && published
    }

    /// Everyone gone at once: dropping every room and waiting reader ends
    /// every stream and every answer still to come.
    pub(super) fn clear(&mut self) {
        self.rooms.clear();
        self.waiting.clear();
        self.dirty.clear();
        self.flush_at = None;
    }
}
