//! How readers come, go and move in a room: each change kept in its
//! counts (the density, this instance's own, the neighbours' order) and,
//! as the mode wants it, in its outbox and its journal for the cluster.

use std::sync::Arc;

use super::{Member, Moved, Room};
use crate::events::{self, Join, Leave};
use crate::ghosts::crowd::block_of;
use crate::ghosts::ghost::{Color, GhostId};
use crate::ghosts::messages::WireEvent;

impl Room {
    pub fn add(&mut self, id: GhostId, color: Color, pos: f64) {
        self.insert(id, color, pos, None, false);
    }

    /// A ghost whose reader is on instance `origin`.
    pub fn add_remote(
        &mut self,
        id: GhostId,
        color: Color,
        pos: f64,
        origin: Arc<str>,
        away: bool,
    ) {
        self.insert(id, color, pos, Some(origin), away);
    }

    fn insert(
        &mut self,
        id: GhostId,
        color: Color,
        pos: f64,
        origin: Option<Arc<str>>,
        away: bool,
    ) {
        self.encode_moves();
        if origin.is_none() {
            if let Some((local, _)) = &mut self.local {
                local.add(pos);
            }
        }
        // A crowded room tells its counts, not its joins.
        if let (Some(journal), None, false) = (&mut self.journal, &origin, self.crowded) {
            journal.push(WireEvent::Join {
                id: id.to_string(),
                color: color.to_string(),
                pos,
                away,
            });
        }
        self.density.add(pos);
        let block = self.block_of(pos);
        self.neighbours.joined(&id, block);
        let view = origin.is_none().then(|| self.neighbours.view(block));
        if !self.crowded {
            events::encode(
                &mut self.outbox,
                &Join(events::Ghost {
                    id: id.as_str(),
                    color,
                    pos,
                    away,
                }),
            );
        }
        self.members.insert(
            id,
            Member {
                color,
                pos,
                origin,
                away,
                queued: false,
                view,
            },
        );
    }

    /// The member is away, or back: told like a move (an entry of `moves`
    /// carries both), coalesced with its moves of the same tick.
    pub fn set_away(&mut self, id: &GhostId, away: bool) -> Moved {
        let Some(member) = self.members.get_mut(id) else {
            return Moved::Unknown;
        };
        if member.away == away {
            return Moved::Coalesced;
        }
        member.away = away;
        let pos = member.pos;
        self.moved(id, pos)
    }

    pub fn remove(&mut self, id: &GhostId) -> Option<Member> {
        // Moves queued before the leave go out before it.
        self.encode_moves();
        let member = self.members.remove(id)?;
        self.density.remove(member.pos);
        self.neighbours.left(id);
        if !self.crowded {
            events::encode(&mut self.outbox, &Leave { id: id.as_str() });
        }
        if member.origin.is_none() {
            if let Some((local, _)) = &mut self.local {
                local.remove(member.pos);
            }
        }
        if let (Some(journal), None, false) = (&mut self.journal, &member.origin, self.crowded) {
            journal.push(WireEvent::Leave { id: id.to_string() });
        }
        Some(member)
    }

    pub fn moved(&mut self, id: &GhostId, pos: f64) -> Moved {
        let Some(member) = self.members.get_mut(id) else {
            return Moved::Unknown;
        };
        let recounted = self.density.moved(member.pos, pos);
        if let (Some((local, _)), None) = (&mut self.local, &member.origin) {
            local.moved(member.pos, pos);
        }
        member.pos = pos;
        let block = block_of(pos, self.density.counts().len() as u32);
        let seen = self.neighbours.moved(id, block, member.view.as_deref());
        // A crowded room queues no moves: it tells counts, to its readers
        // and to the other instances.
        let queues = !self.crowded;
        if queues && !member.queued {
            member.queued = true;
            self.pending.push(id.clone());
            Moved::Queued
        } else if self.crowded && recounted {
            Moved::Recounted
        } else if seen {
            Moved::Seen
        } else {
            Moved::Coalesced
        }
    }
}
