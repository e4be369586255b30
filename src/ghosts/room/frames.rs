//! How a room encodes what its readers hear, one frame per publish: its whole state (a
//! `snapshot` of every ghost, or crowded, a `density`), and the moves of a
//! tick, in order, for its readers and, in cluster mode, the journal.

use bytes::Bytes;
use tokio::time::Instant;

use super::{Member, Room};
use crate::events::{self, Move, Moves, Readers as Counts, Snapshot};
use crate::ghosts::ghost::GhostId;
use crate::ghosts::messages::WireEvent;
use crate::ghosts::near;

impl Room {
    /// The room as it is now, for a reader that just arrived or fell behind
    /// and for a switch of mode: its `density` when crowded, else the
    /// `snapshot` of every ghost.
    pub fn state(&self, counts: Counts) -> Vec<u8> {
        if !self.crowded {
            return self.snapshot(counts);
        }
        let all = self.all_counts();
        let mut out = Vec::with_capacity(64 + 4 * all.len());
        events::encode(
            &mut out,
            &events::Density {
                counts: &all,
                now: counts.now,
                total: counts.total,
            },
        );
        out
    }
    pub(super) fn snapshot(&self, counts: Counts) -> Vec<u8> {
        let ghosts = self
            .members
            .iter()
            .map(|(id, member)| events::Ghost {
                id: id.as_str(),
                color: member.color,
                pos: member.pos,
                away: member.away,
            })
            .collect();
        let mut out = Vec::with_capacity(64 + 64 * self.members.len());
        events::encode(
            &mut out,
            &Snapshot {
                ghosts,
                now: counts.now,
                total: counts.total,
            },
        );
        out
    }
    pub(super) fn encode_moves(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let moves: Vec<Move> = self
            .pending
            .iter()
            .filter_map(|id| {
                let member = self.members.get_mut(id)?;
                member.queued = false;
                Some(Move {
                    id: id.as_str(),
                    pos: member.pos,
                    away: member.away,
                })
            })
            .collect();
        if !self.crowded && !moves.is_empty() {
            events::encode(&mut self.outbox, &Moves { moves });
        }
        if let Some(journal) = &mut self.journal {
            let local: Vec<(&GhostId, &Member)> = self
                .pending
                .iter()
                .filter_map(|id| Some((id, self.members.get(id)?)))
                .filter(|(_, m)| m.origin.is_none())
                .collect();
            let moves: Vec<(String, f64)> = local
                .iter()
                .map(|(id, m)| (id.to_string(), m.pos))
                .collect();
            let away: Vec<String> = local
                .iter()
                .filter(|(_, m)| m.away)
                .map(|(id, _)| id.to_string())
                .collect();
            if !moves.is_empty() {
                journal.push(WireEvent::Moves { moves, away });
            }
        }
        self.pending.clear();
    }

    /// Everything that happened since the last publish as one frame (moves,
    /// joins and leaves in order, then `readers` if the counts changed; in
    /// a crowded room, `density`), sent once to every reader. A switch of
    /// mode sends the whole state for the new mode instead. Returns the
    /// frame's size, 0 if none.
    ///
    /// A crowded room also puts its blocks' neighbours on its board, and
    /// wakes the readers of each block whose neighbours changed.
    pub fn publish(&mut self, counts: Counts, now: Instant) -> usize {
        let frame = self.take_frame(counts, now);
        let near = self.publish_near();
        let Some(frame) = frame else {
            if near {
                self.published_at = Some(now);
            }
            return 0;
        };
        let len = frame.len();
        self.published_at = Some(now);
        // An error only means nobody is subscribed right now.
        let _ = self.sender.send(frame);
        len
    }

    /// Each block's nearest readers, where they may have changed; whether
    /// any block's did.
    fn publish_near(&mut self) -> bool {
        if !self.crowded || !self.neighbours.dirty() {
            return false;
        }
        let members = &self.members;
        let blocks = self.density.counts().len() as u32;
        let changed = self.neighbours.refresh(blocks, |nearest| {
            let ghosts = nearest
                .iter()
                .filter_map(|&id| {
                    let member = members.get(id)?;
                    Some(events::Ghost {
                        id: id.as_str(),
                        color: member.color,
                        pos: member.pos,
                        away: member.away,
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(64 + 64 * near::SENT);
            events::encode(&mut out, &events::Near { ghosts });
            out
        });
        for &block in &changed {
            for id in self.neighbours.at(block) {
                if let Some(view) = self.members.get(id).and_then(|m| m.view.as_deref()) {
                    view.wake();
                }
            }
        }
        !changed.is_empty()
    }

    /// Neighbours are kept while the room is crowded, and only then: a
    /// switch starts them (every member in place, every view told its
    /// block) or stops them.
    pub(super) fn order_neighbours(&mut self) {
        if !self.crowded {
            self.neighbours.stop();
            return;
        }
        let blocks = self.density.counts().len() as u32;
        let members = self.members.iter().map(|(id, member)| {
            let block = crate::ghosts::crowd::block_of(member.pos, blocks);
            (id, block, member.view.as_deref())
        });
        self.neighbours.start(members);
    }

    pub(super) fn take_frame(&mut self, counts: Counts, now: Instant) -> Option<Bytes> {
        self.encode_moves();
        if self.switch_due() {
            self.crowded = !self.crowded;
            self.switched = Some(self.crowded);
            self.order_neighbours();
            if let Some((_, owed)) = &mut self.local {
                *owed = self.crowded;
            }
            let _ = self.shared.take_changed();
            // The per-ghost events of this tick are replaced by the state.
            self.outbox.clear();
            self.outbox.extend_from_slice(&self.state(counts));
            self.heard = counts;
            let _ = self.density.take_changed();
            self.seen(counts, now);
        } else if self.crowded {
            self.crowded_frame(counts, now);
        } else if counts != self.heard {
            events::encode(&mut self.outbox, &counts);
            self.heard = counts;
        }
        if self.outbox.is_empty() {
            return None;
        }
        let capacity = self.outbox.capacity().min(64 * 1024);
        Some(Bytes::from(std::mem::replace(
            &mut self.outbox,
            Vec::with_capacity(capacity),
        )))
    }
}
