//! The readers nearest you, in a crowded room: over the bands, each reader
//! also sees a few individual ghosts, the readers nearest its own block,
//! moving live.
//!
//! Readers at the same block see the same neighbours, so the work is per
//! block, not per reader: a crowded room keeps its members in order (by
//! block, then by when they came to it) and, at each of its frames,
//! chooses for every block the [`SENT`] members nearest it: those at the
//! block first, longest there first, then those one block away, and so on.
//! A block whose choice reads differently (someone in it came, went, moved
//! or stepped away) gets one encoded `near` frame, shared by its readers.
//!
//! A reader's stream finds its block's frame through its [`NearView`]: the
//! manager writes where the reader is and wakes it when it steps to
//! another block or that block's frame changes; the stream writes a frame
//! only if it is not the one it wrote last. A move that nobody sees as a
//! neighbour costs no reader a write.
//!
//! Only the manager writes a view or the board (`Room` calls in here);
//! streams only read them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};

use bytes::Bytes;
use parking_lot::Mutex;

use super::ghost::GhostId;

/// Neighbours a page draws at most (docs/PROTOCOL.md).
pub const SHOWN: usize = 6;

/// Members a block's `near` names: one more than a page draws, because a
/// reader may be among its own block's neighbours, and its page leaves
/// itself out.
pub const SENT: usize = SHOWN + 1;

/// A crowded room's current `near` frame for each block, read by its
/// readers' streams, each with a serial (never 0) that no other frame of
/// the room has had: a stream remembers 8 bytes of what it wrote, not the
/// frame. Empty while the room is not crowded.
#[derive(Debug, Default)]
struct Board {
    frames: Mutex<Vec<(u64, Bytes)>>,
    /// Whether there are frames: a stream of a room that sends every ghost
    /// (nearly every room) looks here and nowhere else, with no lock on
    /// the path of every frame. When the room turns crowded, the frame
    /// that says so wakes every stream, after the board is filled.
    filled: AtomicBool,
}

/// One reader's window on its room's neighbours: where the manager last
/// counted it, and the waker of its stream.
#[derive(Debug)]
pub struct NearView {
    block: AtomicU32,
    waker: Mutex<Option<Waker>>,
    board: Arc<Board>,
}

impl NearView {
    /// The frame for the reader's block, if it is not `last` (the serial of
    /// the one its stream wrote last; 0 for none): then it becomes `last`.
    /// Registers the stream's waker first, so a change after this look
    /// wakes it.
    pub fn poll_frame(&self, cx: &mut Context<'_>, last: &mut u64) -> Option<Bytes> {
        if !self.board.filled.load(Ordering::Acquire) {
            return None;
        }
        {
            let mut waker = self.waker.lock();
            match waker.as_ref() {
                Some(known) if known.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        let block = self.block.load(Ordering::Acquire) as usize;
        let (serial, frame) = self.board.frames.lock().get(block)?.clone();
        if frame.is_empty() || serial == *last {
            return None;
        }
        *last = serial;
        Some(frame)
    }

    /// The reader is at `block` now: its stream looks again.
    fn set_block(&self, block: u32) {
        if self.block.swap(block, Ordering::AcqRel) != block {
            self.wake();
        }
    }

    /// Its block's frame changed: the stream looks again.
    pub fn wake(&self) {
        if let Some(waker) = self.waker.lock().as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// Where a member stands in the order: its block, then when it came there.
type Place = (u32, u64);

/// A room's neighbours: its members in order while it is crowded, the
/// frames its blocks' readers see, and whether they may have changed.
#[derive(Debug, Default)]
pub struct Neighbours {
    board: Arc<Board>,
    /// Whether the room is crowded: only then are members kept in order.
    active: bool,
    /// Members by block, then arrival there.
    order: BTreeMap<Place, GhostId>,
    /// Where each ordered member is, to find it in `order`.
    places: HashMap<GhostId, Place>,
    /// Arrivals so far, for the next member's place.
    arrivals: u64,
    /// Frames put on the board so far, for the next one's serial.
    serials: u64,
    /// Members some block's frame names, as of the last refresh: only
    /// their moves within a block change a frame.
    shown: HashSet<GhostId>,
    /// Whether any block's choice may read differently since it was made.
    dirty: bool,
}

impl Neighbours {
    /// A view for a new member's stream, on this room's board.
    pub fn view(&self, block: u32) -> Arc<NearView> {
        Arc::new(NearView {
            block: AtomicU32::new(block),
            waker: Mutex::new(None),
            board: self.board.clone(),
        })
    }

    /// Whether some block's frame may need to change.
    pub fn dirty(&self) -> bool {
        self.active && self.dirty
    }

    /// The room turned crowded: its members (each with its block, and its
    /// stream's view if it is this instance's) are ordered from now on, in
    /// the order given.
    pub fn start<'a>(
        &mut self,
        members: impl Iterator<Item = (&'a GhostId, u32, Option<&'a NearView>)>,
    ) {
        self.active = true;
        self.order.clear();
        self.places.clear();
        for (id, block, view) in members {
            self.place(id.clone(), block);
            if let Some(view) = view {
                view.set_block(block);
            }
        }
        self.dirty = true;
    }

    /// The room sends every ghost again: no frames, no order.
    pub fn stop(&mut self) {
        self.active = false;
        self.order = BTreeMap::new();
        self.places = HashMap::new();
        self.shown = HashSet::new();
        self.board.filled.store(false, Ordering::Release);
        self.board.frames.lock().clear();
        self.dirty = false;
    }

    fn place(&mut self, id: GhostId, block: u32) {
        self.arrivals += 1;
        let place = (block, self.arrivals);
        self.order.insert(place, id.clone());
        self.places.insert(id, place);
    }

    /// A member came (crowded room).
    pub fn joined(&mut self, id: &GhostId, block: u32) {
        if self.active {
            self.place(id.clone(), block);
            self.dirty = true;
        }
    }

    /// A member went (crowded room).
    pub fn left(&mut self, id: &GhostId) {
        if let Some(place) = self.places.remove(id) {
            self.order.remove(&place);
            self.dirty = true;
        }
    }

    /// A member moved, or stepped away or back. To another block, it goes
    /// to the end of that block's order, and its stream looks there.
    /// Whether a frame may change: it went to another block, or some
    /// block's frame names it.
    pub fn moved(&mut self, id: &GhostId, block: u32, view: Option<&NearView>) -> bool {
        if !self.active {
            return false;
        }
        let Some(&place) = self.places.get(id) else {
            return false;
        };
        let elsewhere = place.0 != block;
        if elsewhere {
            self.order.remove(&place);
            self.place(id.clone(), block);
            if let Some(view) = view {
                view.set_block(block);
            }
        }
        let seen = elsewhere || self.shown.contains(id);
        self.dirty |= seen;
        seen
    }

    /// The `SENT` members nearest `block`: at the block, in order of
    /// arrival, then the nearest other block's (the earlier block first on
    /// a tie), and so on. Empty blocks are skipped in one look each.
    pub fn nearest(&self, block: u32) -> Vec<&GhostId> {
        let mut chosen = Vec::with_capacity(SENT);
        let first_from = |from: u32| self.order.range((from, 0)..).next().map(|(p, _)| p.0);
        let last_before = |to: u32| self.order.range(..(to, 0)).next_back().map(|(p, _)| p.0);
        let (mut above, mut below) = (first_from(block), last_before(block));
        while chosen.len() < SENT {
            let (next, downward) = match (below, above) {
                (Some(b), Some(a)) if block - b <= a - block => (b, true),
                (_, Some(a)) => (a, false),
                (Some(b), None) => (b, true),
                (None, None) => break,
            };
            let room = SENT - chosen.len();
            chosen.extend(self.at(next).take(room));
            if downward {
                below = last_before(next);
            } else {
                above = first_from(next + 1);
            }
        }
        chosen
    }

    /// Members at `block`, whose streams read its frame.
    pub fn at(&self, block: u32) -> impl Iterator<Item = &GhostId> {
        self.order
            .range((block, 0)..(block + 1, 0))
            .map(|(_, id)| id)
    }

    /// Puts each block's frame, encoded by `encode` from its nearest
    /// members, on the board; returns the blocks whose frame changed, for
    /// their readers to be woken.
    pub fn refresh(
        &mut self,
        blocks: u32,
        mut encode: impl FnMut(&[&GhostId]) -> Vec<u8>,
    ) -> Vec<u32> {
        self.dirty = false;
        let blocks = blocks.max(1);
        // Encoded before the board is locked: streams read it meanwhile.
        let mut shown = HashSet::new();
        let fresh: Vec<Vec<u8>> = (0..blocks)
            .map(|block| {
                let nearest = self.nearest(block);
                shown.extend(nearest.iter().map(|&id| id.clone()));
                encode(&nearest)
            })
            .collect();
        self.shown = shown;
        let mut frames = self.board.frames.lock();
        frames.resize(blocks as usize, (0, Bytes::new()));
        let mut changed = Vec::new();
        for (block, frame) in (0..blocks).zip(fresh) {
            let i = block as usize;
            if frames[i].1[..] == frame[..] {
                continue;
            }
            // In a sparse room neighbouring blocks see the same readers:
            // they share one frame (and a reader stepping between them
            // gets nothing new).
            frames[i] = match i.checked_sub(1).map(|before| &frames[before]) {
                Some(before) if before.1[..] == frame[..] => before.clone(),
                _ => {
                    self.serials += 1;
                    (self.serials, Bytes::from(frame))
                }
            };
            changed.push(block);
        }
        drop(frames);
        self.board.filled.store(true, Ordering::Release);
        changed
    }
}

#[cfg(test)]
mod tests;
