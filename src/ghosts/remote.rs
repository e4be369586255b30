//! The view of other instances (cluster mode): their ghosts, applied to the
//! rooms as members whose origin is that instance, so local readers see
//! them through the same events, in the same order, as local ghosts. This
//! part owns which ghost each instance holds, so an instance that dies is
//! removed whole; what it changes in the rooms it says by the slugs it
//! returns, which the manager schedules.

use std::collections::HashMap;
use std::sync::Arc;

use super::ghost::{palette_color, GhostId, Token};
use super::messages::{Wire, WireEvent, WireRoom};
use super::room::Moved;
use super::rooms::Rooms;
use super::tally::Tally;
use crate::blog::Slug;

pub(super) struct Others {
    /// Other instances' ghosts, by instance.
    by_instance: HashMap<Arc<str>, HashMap<GhostId, Slug>>,
    /// The most readers a room may hold; remote joins respect it, as local
    /// ones do.
    most_per_post: usize,
}

/// What applying one instance's message changed.
#[derive(Default)]
pub(super) struct Changed {
    /// Rooms with something new to publish.
    pub(super) rooms: Vec<Slug>,
    /// Moves that changed nothing another reader could see.
    pub(super) coalesced: u64,
}

/// What a message from another instance asks of this one.
pub(super) enum Heard {
    /// Rooms it changed (or none).
    Changed(Changed),
    /// Another instance (`to`) has a reader resuming with this token: if
    /// its ghost is live here, its stream here ends and the ghost is parked
    /// in Redis only, for that instance to take with its id and colour.
    Release { token: Token, to: String },
}

impl Others {
    pub(super) fn new(most_per_post: usize) -> Others {
        Others {
            by_instance: HashMap::new(),
            most_per_post,
        }
    }

    /// Applies a message from another instance. Nothing in it is trusted:
    /// a slug no post could have, an id of the wrong shape or a token that
    /// is not ours changes nothing.
    pub(super) fn hear(&mut self, rooms: &mut Rooms, tally: &mut Tally, wire: Wire) -> Heard {
        let changed = match wire {
            Wire::Room {
                instance,
                slug,
                events,
            } => self.apply_room(rooms, &instance, &slug, events),
            Wire::Snapshot {
                instance,
                rooms: snapshot,
            } => self.apply_snapshot(rooms, &instance, snapshot),
            Wire::Bye { instance } => self.gone(rooms, &instance),
            Wire::Total { slug, total } => {
                let Some(slug) = Slug::parse(&slug) else {
                    tracing::warn!("cluster: a total for a slug no post can have; ignored");
                    return Heard::Changed(Changed::default());
                };
                let has_room = rooms.get(&slug).is_some();
                let mut changed = Changed::default();
                if tally.raise(&slug, total, has_room) && has_room {
                    changed.rooms.push(slug);
                }
                changed
            }
            Wire::Release {
                instance, token, ..
            } => match Token::parse(&token) {
                Some(token) => {
                    return Heard::Release {
                        token,
                        to: instance,
                    }
                }
                None => Changed::default(),
            },
            Wire::Heartbeat { .. } | Wire::Hello { .. } | Wire::Released { .. } => {
                Changed::default()
            }
        };
        Heard::Changed(changed)
    }

    /// One room's events of one tick on `instance`, in order.
    fn apply_room(
        &mut self,
        rooms: &mut Rooms,
        instance: &str,
        slug: &str,
        events: Vec<WireEvent>,
    ) -> Changed {
        let mut changed = Changed::default();
        let Some(slug) = Slug::parse(slug) else {
            return changed;
        };
        let instance: Arc<str> = Arc::from(instance);
        for event in events {
            changed.coalesced += self.apply_event(rooms, &instance, &slug, event);
        }
        changed.rooms.push(slug);
        changed
    }

    /// The instance this token's ghost is live on: the room has a member
    /// of another instance with the id the token was issued to. (The caller
    /// knows that nothing here holds the token.)
    pub(super) fn live_on(rooms: &Rooms, token: &Token, slug: &Slug) -> Option<Arc<str>> {
        let id = token.issued_to()?;
        rooms.get(slug)?.member(&id)?.origin.clone()
    }

    /// Applies one event; the moves it coalesced.
    fn apply_event(
        &mut self,
        rooms: &mut Rooms,
        instance: &Arc<str>,
        slug: &Slug,
        event: WireEvent,
    ) -> u64 {
        match event {
            WireEvent::Join {
                id,
                color,
                pos,
                away,
            } => {
                if let Some(id) = GhostId::parse(&id) {
                    self.join(rooms, instance, slug, id, &color, pos, away);
                }
                0
            }
            WireEvent::Leave { id } => {
                if let Some(id) = GhostId::parse(&id) {
                    self.remove(rooms, instance, slug, &id);
                }
                0
            }
            WireEvent::Moves { moves, away } => {
                let Some(room) = rooms.get_mut(slug) else {
                    return 0;
                };
                let mut coalesced = 0;
                for (text, pos) in moves {
                    let Some(id) = GhostId::parse(&text) else {
                        continue;
                    };
                    let theirs = room
                        .member(&id)
                        .is_some_and(|m| m.origin.as_deref() == Some(&**instance));
                    if !theirs {
                        continue;
                    }
                    let moved = room.moved(&id, room.sane(pos));
                    let marked = room.set_away(&id, away.contains(&text));
                    if moved == Moved::Coalesced && marked == Moved::Coalesced {
                        coalesced += 1;
                    }
                }
                coalesced
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // One ghost's every field, as the wire gives them.
    fn join(
        &mut self,
        rooms: &mut Rooms,
        instance: &Arc<str>,
        slug: &Slug,
        id: GhostId,
        color: &str,
        pos: f64,
        away: bool,
    ) {
        // The post's block count is not known here; the first local
        // reader's join sets it.
        let room = rooms.open(slug, None);
        if room.contains(&id) {
            return; // Already known (a snapshot came first), or an id clash with a local ghost.
        }
        if room.len() >= self.most_per_post {
            return;
        }
        let pos = room.sane(pos);
        room.add_remote(
            id.clone(),
            palette_color(color),
            pos,
            instance.clone(),
            away,
        );
        self.by_instance
            .entry(instance.clone())
            .or_default()
            .insert(id, slug.clone());
    }

    /// Removes `instance`'s ghost `id` from the room, if it is that
    /// instance's (an id it once had may be a local ghost's now, and that
    /// one stays). Whether it was.
    pub(super) fn remove(
        &mut self,
        rooms: &mut Rooms,
        instance: &Arc<str>,
        slug: &Slug,
        id: &GhostId,
    ) -> bool {
        let Some(room) = rooms.get_mut(slug) else {
            return false;
        };
        let theirs = room
            .member(id)
            .is_some_and(|m| m.origin.as_deref() == Some(&**instance));
        if theirs {
            room.remove(id);
            if let Some(ghosts) = self.by_instance.get_mut(instance) {
                ghosts.remove(id);
            }
        }
        theirs
    }

    /// Makes this instance's view of `instance` match its snapshot: missing
    /// ghosts leave, new ones join, moved ones move.
    fn apply_snapshot(
        &mut self,
        rooms: &mut Rooms,
        instance: &str,
        snapshot: Vec<WireRoom>,
    ) -> Changed {
        let instance: Arc<str> = Arc::from(instance);
        let wanted = wanted(snapshot);
        let mut changed = Changed::default();
        let known: Vec<(GhostId, Slug)> = self
            .by_instance
            .get(&instance)
            .map(|g| g.iter().map(|(i, s)| (i.clone(), s.clone())).collect())
            .unwrap_or_default();
        for (id, slug) in known {
            let gone = wanted.get(&id).is_none_or(|(s, ..)| *s != slug);
            if gone && self.remove(rooms, &instance, &slug, &id) {
                changed.rooms.push(slug);
            }
        }
        for (id, (slug, color, pos, away)) in wanted {
            // Most ghosts are where this instance already has them: those
            // cost nothing, so a snapshot every 10 s republishes no room.
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
            changed.rooms.push(slug);
        }
        changed
    }

    /// An instance went silent or said goodbye: all its ghosts leave.
    pub(super) fn gone(&mut self, rooms: &mut Rooms, instance: &str) -> Changed {
        let instance: Arc<str> = Arc::from(instance);
        let mut changed = Changed::default();
        let Some(ghosts) = self.by_instance.remove(&instance) else {
            return changed;
        };
        for (id, slug) in ghosts {
            let Some(room) = rooms.get_mut(&slug) else {
                continue;
            };
            if room
                .member(&id)
                .is_some_and(|m| m.origin.as_deref() == Some(&*instance))
            {
                room.remove(&id);
                changed.rooms.push(slug);
            }
        }
        changed
    }
}

/// A snapshot's ghosts by id: `(slug, color, pos, away)`.
fn wanted(snapshot: Vec<WireRoom>) -> HashMap<GhostId, (Slug, String, f64, bool)> {
    let mut wanted = HashMap::new();
    for room in snapshot {
        let Some(slug) = Slug::parse(&room.slug) else {
            continue;
        };
        for (text, color, pos) in room.ghosts {
            if let Some(id) = GhostId::parse(&text) {
                let away = room.away.contains(&text);
                wanted.insert(id, (slug.clone(), color, pos, away));
            }
        }
    }
    wanted
}

/// This instance's own ghosts, for a snapshot to the others.
pub(super) fn local_snapshot(rooms: &Rooms) -> Vec<WireRoom> {
    rooms
        .iter()
        .map(|(slug, room)| WireRoom {
            slug: slug.to_string(),
            ghosts: room
                .local_ghosts()
                .map(|(id, m)| (id.to_string(), m.color.to_string(), m.pos))
                .collect(),
            away: room
                .local_ghosts()
                .filter(|(_, m)| m.away)
                .map(|(id, _)| id.to_string())
                .collect(),
        })
        .filter(|room| !room.ghosts.is_empty())
        .collect()
}
