//! The manager's side of cluster mode: other instances' ghosts applied to
//! the rooms as members whose origin is that instance, so local readers see
//! them through the same events, in the same order, as local ghosts.

use std::collections::HashMap;
use std::sync::Arc;

use super::census::Counts;
use super::ghost::{palette_color, GhostId, Token};
use super::manager::Manager;
use super::messages::{Wire, WireEvent, WireRoom};
use super::room::Moved;
use crate::blog::Slug;

/// The largest all-time count kept: 2^53 - 1, the largest whole number a
/// browser's JavaScript shows exactly, and far from overflowing at a join.
pub(super) const MAX_TOTAL: u64 = (1 << 53) - 1;

impl Manager {
    pub(super) fn apply_remote(&mut self, wire: Wire) {
        match wire {
            Wire::Room {
                instance,
                slug,
                events,
            } => {
                let Some(slug) = Slug::parse(&slug) else {
                    return;
                };
                let instance: Arc<str> = Arc::from(instance);
                for event in events {
                    self.apply_event(&instance, &slug, event);
                }
                self.mark_dirty(&slug);
            }
            Wire::Snapshot { instance, rooms } => self.apply_snapshot(Arc::from(instance), rooms),
            Wire::Bye { instance } => self.instance_gone(&instance),
            Wire::Total { slug, total } => {
                // Nothing from Redis is trusted: a slug that no post could
                // have is dropped before it is stored, and a total is kept
                // where a browser can still show it exactly.
                let Some(slug) = Slug::parse(&slug) else {
                    tracing::warn!("cluster: a total for a slug no post can have; ignored");
                    return;
                };
                let total = total.min(MAX_TOTAL);
                let entry = self.totals.entry(slug.to_string()).or_insert(0);
                // Counts never go backwards: Redis can only add to ours.
                if total > *entry {
                    *entry = total;
                    if self.rooms.contains_key(&slug) {
                        self.mark_dirty(&slug);
                    } else {
                        let counts = self.census.get(slug.as_str());
                        self.census.set(&slug, Counts { total, ..counts });
                    }
                }
            }
            Wire::Release {
                instance, token, ..
            } => {
                // A token that is not ours, or not live here, changes nothing.
                if let Some(token) = Token::parse(&token) {
                    self.release(&token, instance);
                }
            }
            Wire::Heartbeat { .. } | Wire::Hello { .. } | Wire::Released { .. } => {}
        }
    }

    /// The instance this token's ghost is live on, if not this one: the
    /// room has a member of another instance with the id the token was
    /// issued to, and nothing here (live or parked) holds the token.
    pub(super) fn live_elsewhere(&self, token: &Token, slug: &Slug) -> Option<Arc<str>> {
        if self.roster.holds(token) {
            return None;
        }
        let id = token.issued_to()?;
        self.rooms.get(slug)?.member(&id)?.origin.clone()
    }

    fn apply_event(&mut self, instance: &Arc<str>, slug: &Slug, event: WireEvent) {
        match event {
            WireEvent::Join {
                id,
                color,
                pos,
                away,
            } => {
                let Some(id) = GhostId::parse(&id) else {
                    return;
                };
                if !self.rooms.contains_key(slug) {
                    // The post's block count is not known here; the first
                    // local reader's join sets it.
                    let room = self.new_room(None);
                    self.rooms.insert(slug.clone(), room);
                }
                let most = self.settings.max_readers_per_post;
                let Some(room) = self.rooms.get_mut(slug) else {
                    return;
                };
                if room.contains(&id) {
                    return; // Already known (a snapshot came first), or an id clash with a local ghost.
                }
                if room.len() >= most {
                    return; // Remote joins respect the post's limit, as local ones do.
                }
                let pos = room.sane(pos);
                room.add_remote(
                    id.clone(),
                    palette_color(&color),
                    pos,
                    instance.clone(),
                    away,
                );
                self.remote
                    .entry(instance.clone())
                    .or_default()
                    .insert(id, slug.clone());
            }
            WireEvent::Leave { id } => {
                let Some(id) = GhostId::parse(&id) else {
                    return;
                };
                self.remove_remote(instance, slug, &id);
            }
            WireEvent::Moves { moves, away } => {
                let Some(room) = self.rooms.get_mut(slug) else {
                    return;
                };
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
                        self.metrics.moves_coalesced.inc();
                    }
                }
            }
        }
    }

    pub(super) fn remove_remote(&mut self, instance: &Arc<str>, slug: &Slug, id: &GhostId) {
        let Some(room) = self.rooms.get_mut(slug) else {
            return;
        };
        if room
            .member(id)
            .is_some_and(|m| m.origin.as_deref() == Some(&**instance))
        {
            room.remove(id);
            if let Some(ghosts) = self.remote.get_mut(instance) {
                ghosts.remove(id);
            }
            self.mark_dirty(slug);
        }
    }

    /// Makes this instance's view of `instance` match its snapshot: missing
    /// ghosts leave, new ones join, moved ones move.
    fn apply_snapshot(&mut self, instance: Arc<str>, rooms: Vec<WireRoom>) {
        let mut wanted: HashMap<GhostId, (Slug, String, f64, bool)> = HashMap::new();
        for room in rooms {
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
        let known: Vec<(GhostId, Slug)> = self
            .remote
            .get(&instance)
            .map(|g| g.iter().map(|(i, s)| (i.clone(), s.clone())).collect())
            .unwrap_or_default();
        for (id, slug) in known {
            if wanted.get(&id).is_none_or(|(s, ..)| *s != slug) {
                self.remove_remote(&instance, &slug, &id);
            }
        }
        for (id, (slug, color, pos, away)) in wanted {
            // Most ghosts are where this instance already has them: those
            // cost nothing, so a snapshot every 10 s republishes no room.
            let here = self.rooms.get(&slug).and_then(|r| r.member(&id));
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
            self.apply_event(&instance, &slug, event);
            self.mark_dirty(&slug);
        }
    }

    /// An instance went silent or said goodbye: all its ghosts leave.
    pub(super) fn instance_gone(&mut self, instance: &str) {
        let instance: Arc<str> = Arc::from(instance);
        let Some(ghosts) = self.remote.get(&instance).cloned() else {
            return;
        };
        for (id, slug) in ghosts {
            // Only members that are that instance's: an id it once had may
            // be a local ghost's now, and that one stays.
            self.remove_remote(&instance, &slug, &id);
        }
        self.remote.remove(&instance);
    }

    /// This instance's own ghosts, for a snapshot to the others.
    pub(super) fn local_snapshot(&self) -> Vec<WireRoom> {
        self.rooms
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
}
