//! One post's readers and what they have yet to hear. Pure bookkeeping plus
//! the room's broadcast sender: the manager calls in, the room encodes events
//! in the order they happened and hands out one shared frame per publish.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Bytes;
use tokio::sync::broadcast;

use super::census::Counts;
use super::ghost::{Color, GhostId};
use super::messages::WireEvent;
use crate::events::{self, Join, Leave, Move, Moves, Snapshot};

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
    /// Whether this member's position waits in `pending`.
    queued: bool,
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
}

/// What a move did to the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// First move of this member since the last publish.
    Queued,
    /// Replaced a newer-but-unsent position: one fewer entry on the wire.
    Coalesced,
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
    pub fn new(sharing: Sharing) -> Room {
        let (sender, _) = broadcast::channel(BACKLOG);
        Room {
            members: HashMap::new(),
            pending: Vec::new(),
            outbox: Vec::new(),
            heard: Counts::default(),
            journal: (sharing == Sharing::Cluster).then(Vec::new),
            sender,
        }
    }

    pub fn contains(&self, id: &GhostId) -> bool {
        self.members.contains_key(id)
    }

    pub fn member(&self, id: &GhostId) -> Option<&Member> {
        self.members.get(id)
    }

    /// This instance's own ghosts: `(id, color, pos)`.
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

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn colors(&self) -> impl Iterator<Item = Color> + '_ {
        self.members.values().map(|m| m.color)
    }

    pub fn pos(&self, id: &GhostId) -> Option<f64> {
        self.members.get(id).map(|m| m.pos)
    }

    /// A receiver that gets every frame published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.sender.subscribe()
    }

    /// Whether anything waits to be published.
    pub fn has_news(&self, counts: Counts) -> bool {
        !self.pending.is_empty() || !self.outbox.is_empty() || counts != self.heard
    }

    pub fn add(&mut self, id: GhostId, color: Color, pos: f64) {
        self.insert(id, color, pos, None);
    }

    /// A ghost whose reader is on instance `origin`.
    pub fn add_remote(&mut self, id: GhostId, color: Color, pos: f64, origin: Arc<str>) {
        self.insert(id, color, pos, Some(origin));
    }

    fn insert(&mut self, id: GhostId, color: Color, pos: f64, origin: Option<Arc<str>>) {
        self.encode_moves();
        if let (Some(journal), None) = (&mut self.journal, &origin) {
            journal.push(WireEvent::Join {
                id: id.to_string(),
                color: color.to_string(),
                pos,
            });
        }
        events::encode(
            &mut self.outbox,
            &Join(events::Ghost {
                id: id.as_str(),
                color,
                pos,
            }),
        );
        self.members.insert(
            id,
            Member {
                color,
                pos,
                origin,
                queued: false,
            },
        );
    }

    pub fn remove(&mut self, id: &GhostId) -> Option<Member> {
        // Moves queued before the leave go out before it.
        self.encode_moves();
        let member = self.members.remove(id)?;
        events::encode(&mut self.outbox, &Leave { id: id.as_str() });
        if let (Some(journal), None) = (&mut self.journal, &member.origin) {
            journal.push(WireEvent::Leave { id: id.to_string() });
        }
        Some(member)
    }

    pub fn moved(&mut self, id: &GhostId, pos: f64) -> Moved {
        let Some(member) = self.members.get_mut(id) else {
            return Moved::Unknown;
        };
        member.pos = pos;
        if member.queued {
            Moved::Coalesced
        } else {
            member.queued = true;
            self.pending.push(id.clone());
            Moved::Queued
        }
    }

    /// Everything that happened since the last publish as one frame (moves,
    /// joins and leaves in order, then `readers` if the counts changed),
    /// sent once to every reader. Returns the frame's size, 0 if none.
    pub fn publish(&mut self, counts: Counts) -> usize {
        let Some(frame) = self.take_frame(counts) else {
            return 0;
        };
        let len = frame.len();
        // An error only means nobody is subscribed right now.
        let _ = self.sender.send(frame);
        len
    }

    fn take_frame(&mut self, counts: Counts) -> Option<Bytes> {
        self.encode_moves();
        if counts != self.heard {
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

    /// The room as it is now, for a reader that just arrived or fell behind.
    pub fn snapshot(&self, counts: Counts) -> Vec<u8> {
        let ghosts = self
            .members
            .iter()
            .map(|(id, member)| events::Ghost {
                id: id.as_str(),
                color: member.color,
                pos: member.pos,
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

    fn encode_moves(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let moves = self
            .pending
            .iter()
            .filter_map(|id| {
                let member = self.members.get_mut(id)?;
                member.queued = false;
                Some(Move {
                    id: id.as_str(),
                    pos: member.pos,
                })
            })
            .collect();
        events::encode(&mut self.outbox, &Moves { moves });
        if let Some(journal) = &mut self.journal {
            let local: Vec<(String, f64)> = self
                .pending
                .iter()
                .filter_map(|id| {
                    self.members
                        .get(id)
                        .filter(|m| m.origin.is_none())
                        .map(|m| (id.to_string(), m.pos))
                })
                .collect();
            if !local.is_empty() {
                journal.push(WireEvent::Moves { moves: local });
            }
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> GhostId {
        GhostId::for_test(s)
    }

    fn frame(room: &mut Room, counts: Counts) -> String {
        String::from_utf8(
            room.take_frame(counts)
                .map(|b| b.to_vec())
                .unwrap_or_default(),
        )
        .expect("utf-8")
    }

    const C: Color = "c";

    #[test]
    fn moves_are_coalesced_to_the_newest_position_per_ghost() {
        let mut room = Room::new(Sharing::Alone);
        room.add(id("a"), C, 0.0);
        room.add(id("b"), C, 0.0);
        let _ = frame(&mut room, Counts { now: 2, total: 2 });
        assert_eq!(room.moved(&id("a"), 1.0), Moved::Queued);
        assert_eq!(room.moved(&id("b"), 2.0), Moved::Queued);
        assert_eq!(room.moved(&id("a"), 3.5), Moved::Coalesced);
        assert_eq!(room.moved(&id("zz"), 3.5), Moved::Unknown);
        assert_eq!(
            frame(&mut room, Counts { now: 2, total: 2 }),
            "event: moves\ndata: {\"moves\":[{\"id\":\"a\",\"pos\":3.5},{\"id\":\"b\",\"pos\":2.0}]}\n\n"
        );
        assert_eq!(
            frame(&mut room, Counts { now: 2, total: 2 }),
            "",
            "a quiet room publishes nothing"
        );
    }

    #[test]
    fn joins_and_leaves_keep_their_order_with_the_moves_around_them() {
        let mut room = Room::new(Sharing::Alone);
        room.add(id("a"), C, 0.0);
        let _ = frame(&mut room, Counts { now: 1, total: 1 });
        room.moved(&id("a"), 1.0);
        room.add(id("b"), C, 0.0);
        room.moved(&id("b"), 2.0);
        room.moved(&id("a"), 4.0);
        room.remove(&id("a"));
        let text = frame(&mut room, Counts { now: 1, total: 2 });
        let order: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            order,
            ["moves", "join", "moves", "leave", "readers"],
            "{text}"
        );
        assert!(text.contains("{\"moves\":[{\"id\":\"a\",\"pos\":1.0}]}"));
        assert!(
            text.contains("{\"moves\":[{\"id\":\"b\",\"pos\":2.0},{\"id\":\"a\",\"pos\":4.0}]}")
        );
        assert!(text.contains("data: {\"now\":1,\"total\":2}"));
    }

    #[test]
    fn a_shared_room_journals_only_its_own_ghosts_in_order() {
        let mut room = Room::new(Sharing::Cluster);
        room.add(id("a"), C, 0.0);
        room.add_remote(id("r"), C, 1.0, Arc::from("other"));
        room.moved(&id("a"), 2.0);
        room.moved(&id("r"), 3.0);
        room.remove(&id("r"));
        room.remove(&id("a"));
        let _ = frame(&mut room, Counts { now: 0, total: 2 });
        assert_eq!(
            room.take_journal(),
            [
                WireEvent::Join {
                    id: "a".into(),
                    color: C.into(),
                    pos: 0.0
                },
                WireEvent::Moves {
                    moves: vec![("a".into(), 2.0)]
                },
                WireEvent::Leave { id: "a".into() },
            ]
        );
        assert!(room.take_journal().is_empty());
    }

    #[test]
    fn a_snapshot_lists_every_member_and_the_counts() {
        let mut room = Room::new(Sharing::Alone);
        room.add(id("a"), "red", 2.25);
        let text = String::from_utf8(room.snapshot(Counts { now: 1, total: 9 })).expect("utf-8");
        assert_eq!(
            text,
            "event: snapshot\ndata: {\"ghosts\":[{\"id\":\"a\",\"color\":\"red\",\"pos\":2.25}],\"now\":1,\"total\":9}\n\n"
        );
    }
}
