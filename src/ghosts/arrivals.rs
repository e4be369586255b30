//! Ghosts arriving and leaving: the manager's join (new, resumed or taken
//! over) and leave. Part of the manager; only it calls these.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Bytes;
use rand::rngs::StdRng;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::ghost::{palette_color, pick_color, Color, GhostId, Token};
use super::handle::{JoinRefused, JoinRequest, Joined};
use super::manager::{Hello, Live, Manager, Parked};
use super::published::{Counts, Limiter, Seat};
use super::room::Room;
use crate::blog::Slug;
use crate::cluster::Outbound;
use crate::sse::encode_hello;

impl Manager {
    pub(super) fn join(&mut self, request: JoinRequest) -> Result<Joined, JoinRefused> {
        let JoinRequest {
            slug,
            blocks,
            resume,
            peer,
            remote_parked: request_parked,
        } = request;
        // A ghost whose stream is still open: the newer stream takes over,
        // silently for everyone else.
        if let Some(joined) = resume
            .as_ref()
            .and_then(|token| self.take_over(token, &slug, blocks))
        {
            return Ok(joined);
        }
        let over_total = self.live.len() >= self.settings.max_readers;
        let over_post = self
            .rooms
            .get(&slug)
            .is_some_and(|r| r.len() >= self.settings.max_readers_per_post);
        if over_total || over_post {
            return Err(if over_total {
                JoinRefused::ServerFull
            } else {
                JoinRefused::PostFull
            });
        }
        let from_peer = self.per_address.get(&peer).copied().unwrap_or(0);
        if from_peer >= self.settings.max_streams_per_address {
            return Err(JoinRefused::AddressFull);
        }
        let resumed = resume.and_then(|token| match self.parked.remove(&token) {
            Some(parked) if parked.slug == slug => Some((token, parked)),
            Some(parked) => {
                self.parked.insert(token, parked);
                None
            }
            // Parked on another instance: same id and colour here.
            None => {
                let remote = request_parked.filter(|p| p.slug == slug.as_str())?;
                let id = GhostId::parse(&remote.id)?;
                let color = palette_color(&remote.color);
                Some((
                    token,
                    Parked {
                        id,
                        slug: slug.clone(),
                        color,
                        pos: remote.pos,
                        expires: Instant::now(),
                    },
                ))
            }
        });
        let shared = self.settings.cluster.is_some();
        let room = self
            .rooms
            .entry(slug.clone())
            .or_insert_with(|| Room::in_cluster(shared));
        let (token, id, color, pos) = match resumed {
            Some((token, parked)) => {
                self.metrics.resumes.inc();
                // Ids are random: in the rare case that a live ghost took this
                // one meanwhile, the resumed ghost gets a new id, same colour.
                let id = if self.live.contains_key(&parked.id) {
                    fresh_id(&self.live, &mut self.rng)
                } else {
                    parked.id
                };
                (token, id, parked.color, parked.pos)
            }
            None => {
                *self.totals.entry(slug.to_string()).or_insert(0) += 1;
                if self.save_at.is_none() {
                    self.save_at =
                        Some((self.last_save + self.settings.save_interval).max(Instant::now()));
                }
                self.metrics.joins.inc();
                if let Some(cluster) = &self.settings.cluster {
                    // If Redis is far behind, the count waits for the next snapshot of totals.
                    let _ = cluster.try_send(Outbound::NewReader { slug: slug.clone() });
                }
                let color = pick_color(room.colors(), &mut self.rng);
                (
                    Token::random(&mut self.rng),
                    fresh_id(&self.live, &mut self.rng),
                    color,
                    0.0,
                )
            }
        };
        room.add(id.clone(), color, pos.min(f64::from(blocks)));
        let counts = Counts {
            now: room.len() as u64,
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        };
        // Publish now, before this reader subscribes: the others hear the
        // join (after any moves queued before it), and the reader does not.
        if room.publish(counts) > 0 {
            self.metrics.frames_published.inc();
        }
        let journal = room.take_journal();
        self.census.set(&slug, counts);
        self.share(&slug, journal);
        self.next_serial += 1;
        let room = match self.rooms.get(&slug) {
            Some(room) => room,
            None => return Err(JoinRefused::Stopped), // Cannot happen: the room was made above.
        };
        let serial = self.next_serial;
        let (end, end_rx) = oneshot::channel();
        let joined = joined(room, counts, &id, &token, color, blocks, serial, end_rx);
        let seat = Seat {
            id: id.clone(),
            slug: slug.clone(),
            limiter: Limiter::per_second(self.settings.moves_per_sec),
        };
        self.directory.insert(token.clone(), Arc::new(seat));
        self.live_tokens.insert(token.clone(), id.clone());
        *self.per_address.entry(peer).or_insert(0) += 1;
        self.live.insert(
            id,
            Live {
                peer,
                token,
                slug,
                color,
                serial,
                end,
            },
        );
        self.metrics.ghosts.set(self.live.len() as i64);
        self.metrics.rooms.set(self.rooms.len() as i64);
        self.metrics.parked.set(self.parked.len() as i64);
        Ok(joined)
    }

    /// Hands a live ghost to a newer stream on the same post; `None` if the
    /// token has no live ghost there.
    fn take_over(&mut self, token: &Token, slug: &Slug, blocks: u32) -> Option<Joined> {
        let id = self.live_tokens.get(token)?;
        let live = self.live.get_mut(id).filter(|live| live.slug == *slug)?;
        let room = self.rooms.get(slug)?;
        self.next_serial += 1;
        let serial = self.next_serial;
        let (end, end_rx) = oneshot::channel();
        live.serial = serial;
        // Replacing the sender drops the old one, which ends the old stream;
        // its leave then carries an old serial and is ignored.
        live.end = end;
        self.metrics.takeovers.inc();
        let counts = Counts {
            now: room.len() as u64,
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        };
        Some(joined(
            room, counts, id, token, live.color, blocks, serial, end_rx,
        ))
    }

    pub(super) fn leave(&mut self, id: &GhostId, serial: u64) {
        if self.live.get(id).is_none_or(|l| l.serial != serial) {
            return; // An older stream of a ghost that was taken over, or already gone.
        }
        let Some(live) = self.live.remove(id) else {
            return;
        };
        self.live_tokens.remove(&live.token);
        self.directory.remove(&live.token);
        if let Some(count) = self.per_address.get_mut(&live.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&live.peer);
            }
        }
        let pos = match self.rooms.get_mut(&live.slug) {
            Some(room) => room.remove(id).map_or(0.0, |m| m.pos),
            None => 0.0,
        };
        self.mark_dirty(&live.slug);
        let expires = Instant::now() + self.settings.resume_window;
        self.parked.insert(
            live.token.clone(),
            Parked {
                id: id.clone(),
                slug: live.slug.clone(),
                color: live.color,
                pos,
                expires,
            },
        );
        if let Some(cluster) = &self.settings.cluster {
            let parked = Outbound::Parked {
                token: live.token.clone(),
                id: id.clone(),
                color: live.color,
                slug: live.slug.clone(),
                pos,
            };
            // Lost only if Redis is far behind; then a resume elsewhere gets a new ghost.
            let _ = cluster.try_send(parked);
        }
        self.metrics.leaves.inc();
        self.metrics.ghosts.set(self.live.len() as i64);
        self.metrics.parked.set(self.parked.len() as i64);
    }
}

/// The first bytes of a stream (`retry`, `hello`, `snapshot`) and its
/// subscription, taken together so no frame falls between them.
#[allow(clippy::too_many_arguments)]
fn joined(
    room: &Room,
    counts: Counts,
    id: &GhostId,
    token: &Token,
    color: Color,
    blocks: u32,
    serial: u64,
    end: oneshot::Receiver<()>,
) -> Joined {
    let mut first = Vec::with_capacity(512);
    let hello = Hello {
        id: id.as_str(),
        token: token.as_str(),
        color,
        blocks,
    };
    encode_hello(&mut first, token.as_str(), &hello);
    first.extend_from_slice(&room.snapshot(counts));
    Joined {
        ghost: id.clone(),
        serial,
        first: Bytes::from(first),
        events: room.subscribe(),
        end,
    }
}

/// A random id no live ghost has.
fn fresh_id(live: &HashMap<GhostId, Live>, rng: &mut StdRng) -> GhostId {
    loop {
        let id = GhostId::random(rng);
        if !live.contains_key(&id) {
            return id;
        }
    }
}
