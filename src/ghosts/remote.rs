//! The view of other instances (cluster mode): their ghosts, applied to the
//! rooms as members whose origin is that instance, so local readers see
//! them through the same events, in the same order, as local ghosts. This
//! part owns which ghost each instance holds, so an instance that dies is
//! removed whole; what it changes in the rooms it says by the slugs it
//! returns, which the manager schedules.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::ghost::{palette_color, GhostId, Token};
use super::messages::{Wire, WireEvent};
use super::room::Moved;
use super::rooms::Rooms;
use super::tally::Tally;
use crate::blog::Slug;

mod snapshots;

pub(super) use snapshots::local_room;

pub(super) struct Others {
    /// Other instances' ghosts, by instance.
    by_instance: HashMap<Arc<str>, HashMap<GhostId, Slug>>,
    /// The most readers a room may hold; remote joins respect it, as local
    /// ones do.
    most_per_post: usize,
    /// Posts this instance has asked about (it began hearing them, or heard
    /// them again after Redis came back): until when answers count, and the
    /// instances with ghosts there that have not answered yet.
    unconfirmed: HashMap<Slug, (Instant, HashSet<Arc<str>>)>,
}

/// How long the instances of a post have to answer `Ask` before their
/// ghosts there, unconfirmed, leave: a Redis round trip each way, and some.
const CONFIRM_WITHIN: Duration = Duration::from_secs(3);

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
            unconfirmed: HashMap::new(),
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
            Wire::Snapshot { instance, room } => self.apply_snapshot(rooms, &instance, room),
            Wire::Counts {
                instance,
                slug,
                counts,
            } => self.apply_counts(rooms, &instance, &slug, counts),
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
            Wire::Heartbeat { .. } | Wire::Ask { .. } | Wire::Released { .. } => Changed::default(),
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

    /// This instance asked `slug`'s instances for their ghosts there: those
    /// that hold some now have `CONFIRM_WITHIN` to answer.
    pub(super) fn asked(&mut self, rooms: &Rooms, slug: Slug, now: Instant) {
        let holding: HashSet<Arc<str>> = self
            .by_instance
            .iter()
            .filter(|(_, ghosts)| ghosts.values().any(|s| *s == slug))
            .map(|(instance, _)| instance.clone())
            .chain(rooms_counting(rooms, &slug))
            .collect();
        self.unconfirmed
            .insert(slug, (now + CONFIRM_WITHIN, holding));
    }

    /// Ghosts no answer confirmed in time leave: their instance left the
    /// post while this one was not hearing it.
    pub(super) fn sweep(&mut self, rooms: &mut Rooms, now: Instant) -> Changed {
        let mut changed = Changed::default();
        let due: Vec<Slug> = self
            .unconfirmed
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(slug, _)| slug.clone())
            .collect();
        for slug in due {
            let Some((_, silent)) = self.unconfirmed.remove(&slug) else {
                continue;
            };
            for instance in silent {
                changed
                    .rooms
                    .extend(self.leave_post(rooms, &instance, &slug));
            }
        }
        changed
    }

    /// This instance no longer hears `slug`: every other instance's ghost
    /// in it leaves here.
    pub(super) fn forget(&mut self, rooms: &mut Rooms, slug: &Slug) -> Changed {
        let mut changed = Changed::default();
        self.unconfirmed.remove(slug);
        if rooms
            .get_mut(slug)
            .is_some_and(|room| room.shared_mut().clear_all())
        {
            changed.rooms.push(slug.clone());
        }
        let instances: Vec<Arc<str>> = self.by_instance.keys().cloned().collect();
        for instance in instances {
            changed
                .rooms
                .extend(self.leave_post(rooms, &instance, slug));
        }
        changed
    }

    /// `instance`'s ghosts (or counts) in `slug` leave; the slug, if any
    /// did.
    fn leave_post(&mut self, rooms: &mut Rooms, instance: &Arc<str>, slug: &Slug) -> Option<Slug> {
        let counted = rooms
            .get_mut(slug)
            .is_some_and(|room| room.shared_mut().clear(instance));
        let left = self.leave_post_ghosts(rooms, instance, slug);
        (counted || left).then(|| slug.clone())
    }

    /// `instance`'s ghosts in `slug` leave; whether any did.
    fn leave_post_ghosts(&mut self, rooms: &mut Rooms, instance: &Arc<str>, slug: &Slug) -> bool {
        let ids: Vec<GhostId> = self
            .by_instance
            .get(instance)
            .into_iter()
            .flatten()
            .filter(|(_, s)| *s == slug)
            .map(|(id, _)| id.clone())
            .collect();
        let mut left = false;
        for id in ids {
            left |= self.remove(rooms, instance, slug, &id);
        }
        left
    }

    /// An instance went silent or said goodbye: all its ghosts leave.
    pub(super) fn gone(&mut self, rooms: &mut Rooms, instance: &str) -> Changed {
        let instance: Arc<str> = Arc::from(instance);
        let mut changed = Changed::default();
        for (slug, room) in rooms.iter_mut() {
            if room.shared_mut().clear(&instance) {
                changed.rooms.push(slug.clone());
            }
        }
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

/// The instances that count readers in `slug`'s room (crowded, in cluster
/// mode).
fn rooms_counting(rooms: &Rooms, slug: &Slug) -> Vec<Arc<str>> {
    rooms
        .get(slug)
        .map(|room| room.shared().instances().cloned().collect())
        .unwrap_or_default()
}
