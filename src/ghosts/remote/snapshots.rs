//! A post's ghosts, whole: what this instance answers an instance that
//! begins hearing the post, and how such an answer is applied here.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Changed, Others};
use crate::blog::Slug;
use crate::ghosts::crowd::MOST_BLOCKS;
use crate::ghosts::ghost::GhostId;
use crate::ghosts::messages::{WireEvent, WireRoom};
use crate::ghosts::rooms::Rooms;

impl Others {
    /// `instance`'s readers of a crowded post, per block: they replace its
    /// ghosts (or counts) there. Counts past any post's length, or that
    /// would fill the room past its most readers, are cut.
    pub(in crate::ghosts) fn apply_counts(
        &mut self,
        rooms: &mut Rooms,
        instance: &str,
        slug: &str,
        mut counts: Vec<u32>,
    ) -> Changed {
        let mut changed = Changed::default();
        let Some(slug) = Slug::parse(slug) else {
            return changed;
        };
        let instance: Arc<str> = Arc::from(instance);
        if let Some((_, waiting)) = self.unconfirmed.get_mut(&slug) {
            waiting.remove(&instance);
        }
        if self.leave_post_ghosts(rooms, &instance, &slug) {
            changed.rooms.push(slug.clone());
        }
        let room = rooms.open(&slug, None);
        if !room.can_crowd() {
            // Never crowded here (`--crowd 0`; every instance should run
            // the same): counts cannot be shown as ghosts.
            return changed;
        }
        let others = room.len() - room.shared().readers_of(&instance);
        let mut room_left = self.most_per_post.saturating_sub(others);
        counts.truncate(MOST_BLOCKS);
        for n in &mut counts {
            let kept = (*n as usize).min(room_left);
            room_left -= kept;
            *n = kept as u32; // ok: at most the original u32
        }
        room.shared_mut().set(instance, counts);
        changed.rooms.push(slug);
        changed
    }

    /// Makes this instance's view of `instance`'s ghosts in one post match
    /// its snapshot: missing ghosts leave, new ones join, moved ones move.
    pub(super) fn apply_snapshot(
        &mut self,
        rooms: &mut Rooms,
        instance: &str,
        snapshot: WireRoom,
    ) -> Changed {
        let mut changed = Changed::default();
        let Some(slug) = Slug::parse(&snapshot.slug) else {
            return changed;
        };
        let instance: Arc<str> = Arc::from(instance);
        if let Some((_, waiting)) = self.unconfirmed.get_mut(&slug) {
            waiting.remove(&instance);
        }
        // Its ghosts, one by one, replace the counts it sent while crowded.
        if rooms
            .get_mut(&slug)
            .is_some_and(|room| room.shared_mut().clear(&instance))
        {
            changed.rooms.push(slug.clone());
        }
        let wanted = wanted(snapshot);
        let known: Vec<GhostId> = self
            .by_instance
            .get(&instance)
            .map(|g| {
                g.iter()
                    .filter(|(_, s)| **s == slug)
                    .map(|(i, _)| i.clone())
                    .collect()
            })
            .unwrap_or_default();
        for id in known {
            if !wanted.contains_key(&id) && self.remove(rooms, &instance, &slug, &id) {
                changed.rooms.push(slug.clone());
            }
        }
        for (id, (color, pos, away)) in wanted {
            // Most ghosts are where this instance already has them: those
            // cost nothing and republish nothing.
            let here = rooms.get(&slug).and_then(|r| r.member(&id));
            let event = match here.map(|m| (m.pos, m.away)) {
                Some(state) if state == (pos, away) => continue,
                Some(_) => WireEvent::Moves {
                    moves: vec![(id.to_string(), pos)],
                    away: if away {
                        vec![id.to_string()]
                    } else {
                        Vec::new()
                    },
                },
                None => WireEvent::Join {
                    id: id.to_string(),
                    color,
                    pos,
                    away,
                },
            };
            changed.coalesced += self.apply_event(rooms, &instance, &slug, event);
            changed.rooms.push(slug.clone());
        }
        changed
    }
}

/// A room snapshot's ghosts by id: `(color, pos, away)`.
fn wanted(room: WireRoom) -> HashMap<GhostId, (String, f64, bool)> {
    let mut wanted = HashMap::new();
    for (text, color, pos) in room.ghosts {
        if let Some(id) = GhostId::parse(&text) {
            let away = room.away.contains(&text);
            wanted.insert(id, (color, pos, away));
        }
    }
    wanted
}

/// This instance's own ghosts in one post, for an instance that asks.
pub(in crate::ghosts) fn local_room(rooms: &Rooms, slug: &Slug) -> WireRoom {
    let mut room = WireRoom {
        slug: slug.to_string(),
        ghosts: Vec::new(),
        away: Vec::new(),
    };
    for (id, m) in rooms.get(slug).into_iter().flat_map(|r| r.local_ghosts()) {
        room.ghosts
            .push((id.to_string(), m.color.to_string(), m.pos));
        if m.away {
            room.away.push(id.to_string());
        }
    }
    room
}
