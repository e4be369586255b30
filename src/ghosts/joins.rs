//! Ghosts arriving and leaving: the manager's join (new, resumed or taken
//! over) and leave. Part of the manager; only it calls these. A join is
//! decided and booked at once, but answered at the room's next tick, with
//! the state every reader arriving in that tick shares: a crowd arriving
//! costs one frame and one state per tick, not one per reader.

use hyper::body::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::commands::{JoinRefused, JoinRequest, Joined, Resync, Waiting};
use super::directory::Seat;
use super::ghost::{palette_color, pick_color, Color, GhostId, Token};
use super::limiter::Limiter;
use super::manager::Manager;
use super::messages::Outbound;
use super::room::Room;
use super::roster::{Live, Parked};
use crate::blog::Slug;
use crate::events::{encode_hello, Hello};

/// Where a join's answer goes.
pub(super) type Answer = oneshot::Sender<Result<Joined, JoinRefused>>;

/// A join refused, with the sender to say so through.
pub(super) struct Refused {
    pub(super) respond_to: Answer,
    pub(super) why: JoinRefused,
}

impl Manager {
    /// `waiting` is answered at the room's next tick, with the state that
    /// every other reader waiting there gets too.
    pub(super) fn wait_for_tick(&mut self, slug: &Slug, waiting: Waiting) {
        self.waiting.entry(slug.clone()).or_default().push(waiting);
        self.mark_dirty(slug);
    }

    /// Gives every reader waiting on a room the room's state, encoded once,
    /// and a subscription from after this tick's frame.
    pub(super) fn answer_waiting(&mut self, slug: &Slug) {
        let Some(waiting) = self.waiting.remove(slug) else {
            return;
        };
        let Some(room) = self.rooms.get(slug) else {
            return; // Dropping the senders ends those streams; they reconnect.
        };
        let state = Bytes::from(room.state(self.counts(slug)));
        let mut gave_up = Vec::new();
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
                    let joined = Joined {
                        ghost,
                        token,
                        serial,
                        hello,
                        state: state.clone(),
                        events: room.subscribe(),
                        end,
                    };
                    // If the requester gave up, the stream parts it would
                    // have got are dropped here... but the manager still
                    // holds the ghost, and its stream never existed to send
                    // the leave. Undo the join.
                    if let Err(Ok(joined)) = respond_to.send(Ok(joined)) {
                        gave_up.push((joined.ghost, joined.serial));
                    }
                }
                Waiting::Resync { respond_to } => {
                    self.metrics.lag_snapshots.inc();
                    let resync = Resync {
                        snapshot: state.clone(),
                        events: room.subscribe(),
                    };
                    // The stream may have closed meanwhile; then it needs nothing.
                    let _ = respond_to.send(resync);
                }
            }
        }
        for (ghost, serial) in gave_up {
            self.leave(&ghost, serial);
        }
    }

    /// Books a reader's ghost (new, resumed or taken over) and queues its
    /// answer for the room's next tick; a refusal comes back at once.
    pub(super) fn join(&mut self, request: JoinRequest, respond_to: Answer) -> Result<(), Refused> {
        let JoinRequest {
            slug,
            blocks,
            resume,
            peer,
            remote_parked,
            ask_elsewhere,
            released_by,
            watch,
        } = request;
        // A ghost whose stream is still open: the newer stream takes over,
        // silently for everyone else.
        let respond_to = match resume.as_ref() {
            Some(token) => match self.take_over(token, &slug, blocks, watch, respond_to) {
                Ok(()) => return Ok(()),
                Err(respond_to) => respond_to,
            },
            None => respond_to,
        };
        let refused = if self.roster.live_count() >= self.settings.max_readers {
            Some(JoinRefused::ServerFull)
        } else if self
            .rooms
            .get(&slug)
            .is_some_and(|r| r.len() >= self.settings.max_readers_per_post)
        {
            Some(JoinRefused::PostFull)
        } else if self.roster.streams_from(&peer) >= self.settings.max_streams_per_address {
            Some(JoinRefused::AddressFull)
        } else {
            None
        };
        if let Some(why) = refused {
            return Err(Refused { respond_to, why });
        }
        if ask_elsewhere {
            if let Some(instance) = resume.as_ref().and_then(|t| self.live_elsewhere(t, &slug)) {
                let why = JoinRefused::LiveElsewhere(instance.to_string());
                return Err(Refused { respond_to, why });
            }
        }
        let resumed = resume.and_then(|token| {
            let parked = self
                .roster
                .unpark(&token, &slug, Instant::now())
                .or_else(|| {
                    // Parked on another instance: same id and colour here.
                    let remote = remote_parked.filter(|p| p.slug == slug.as_str())?;
                    Some(Parked {
                        id: GhostId::parse(&remote.id)?,
                        slug: slug.clone(),
                        color: palette_color(&remote.color),
                        pos: remote.pos,
                        expires: Instant::now(),
                        counted: remote.counted,
                    })
                })?;
            Some((token, parked))
        });
        let (token, id, color, pos, counted) = match resumed {
            Some((token, parked)) => {
                self.metrics.resumes.inc();
                // Ids are random: in the rare case that a live ghost took this
                // one meanwhile (here, or another instance's in this room),
                // the resumed ghost gets a new id, same colour.
                if let Some(instance) = &released_by {
                    // Released for this join: the releasing instance's
                    // member is this very ghost, and is this instance's now.
                    self.remove_remote(&std::sync::Arc::from(instance.as_str()), &slug, &parked.id);
                }
                let taken = self.roster.contains(&parked.id)
                    || self
                        .rooms
                        .get(&slug)
                        .is_some_and(|r| r.contains(&parked.id));
                let id = if taken {
                    self.roster.fresh_id(&mut self.rng)
                } else {
                    parked.id
                };
                (token, id, parked.color, parked.pos, parked.counted)
            }
            None => {
                self.metrics.joins.inc();
                let in_use = self.rooms.get(&slug).into_iter().flat_map(Room::colors);
                let color = pick_color(in_use, &mut self.rng);
                let id = self.roster.fresh_id(&mut self.rng);
                let counted = self.settings.count_after.is_zero();
                if counted {
                    self.count_reader(&slug);
                }
                (
                    Token::for_ghost(&id, &mut self.rng),
                    id,
                    color,
                    0.0,
                    counted,
                )
            }
        };
        if !counted {
            // Counted at its first position, or when this comes due.
            let due = Instant::now() + self.settings.count_after;
            self.uncounted.push_back((due, id.clone()));
        }
        if !self.rooms.contains_key(&slug) {
            let room = self.new_room(Some(blocks));
            self.rooms.insert(slug.clone(), room);
        }
        if let Some(room) = self.rooms.get_mut(&slug) {
            room.set_blocks(blocks);
            if watch {
                room.watch(true); // Sees the room; nobody sees it.
            } else {
                // The others hear the join at the tick, after any moves
                // queued before it; this reader subscribes after that
                // frame, so it never hears its own join.
                room.add(id.clone(), color, pos.min(f64::from(blocks)));
            }
        }
        let serial = self.next_serial();
        let (end, end_rx) = oneshot::channel();
        let hello = Arrival {
            id: &id,
            token: &token,
            color,
            blocks,
            watching: watch,
        }
        .hello(&self.settings);
        self.wait_for_tick(
            &slug,
            Waiting::Joined {
                respond_to,
                ghost: id.clone(),
                token: token.clone(),
                serial,
                hello,
                end: end_rx,
            },
        );
        let seat = Seat {
            id: id.clone(),
            slug: slug.clone(),
            limiter: Limiter::per_second(self.settings.moves_per_sec),
        };
        let live = Live {
            peer,
            token,
            slug,
            color,
            serial,
            end,
            counted,
            watching: watch,
            held_until: None,
        };
        self.roster.admit(id, live, seat);
        self.metrics.ghosts.set(self.roster.live_count() as i64);
        self.metrics.rooms.set(self.rooms.len() as i64);
        self.metrics.parked.set(self.roster.parked_count() as i64);
        Ok(())
    }

    /// Hands a live ghost to a newer stream on the same post, answered at
    /// the tick; gives `respond_to` back if the token has no live ghost there.
    fn take_over(
        &mut self,
        token: &Token,
        slug: &Slug,
        blocks: u32,
        watch: bool,
        respond_to: Answer,
    ) -> Result<(), Answer> {
        if !self.rooms.contains_key(slug) {
            return Err(respond_to);
        }
        let serial = self.next_serial();
        let Some((id, live)) = self.roster.by_token_mut(token, slug) else {
            return Err(respond_to);
        };
        let (end, end_rx) = oneshot::channel();
        live.serial = serial;
        // Replacing the sender drops the old one, which ends the old stream;
        // its leave then carries an old serial and is ignored.
        live.end = end;
        // A held ghost's page is back: its stream is its own again.
        live.held_until = None;
        let switched = (live.watching != watch).then_some((live.color, watch));
        live.watching = watch;
        let hello = Arrival {
            id,
            token,
            color: live.color,
            blocks,
            watching: watch,
        }
        .hello(&self.settings);
        let ghost = id.clone();
        if let Some((color, watch)) = switched {
            // The reader chose to be seen, or not to be: its ghost joins
            // or leaves for the others, as the reader it is.
            if let Some(room) = self.rooms.get_mut(slug) {
                room.watch(watch);
                if watch {
                    room.remove(&ghost);
                } else {
                    room.add(ghost.clone(), color, 0.0);
                }
            }
        }
        self.metrics.takeovers.inc();
        self.wait_for_tick(
            slug,
            Waiting::Joined {
                respond_to,
                ghost,
                token: token.clone(),
                serial,
                hello,
                end: end_rx,
            },
        );
        Ok(())
    }

    /// The stream `serial` of ghost `id` ended: the ghost leaves its room
    /// and is parked for the resume window.
    pub(super) fn leave(&mut self, id: &GhostId, serial: u64) {
        self.depart(id, serial, None);
    }

    /// Another instance (`to`) has a reader resuming with this token while
    /// its ghost is live here: its stream here ends, and the ghost is
    /// parked in Redis only, for that instance to take with its id and
    /// colour.
    pub(super) fn release(&mut self, token: &Token, to: String) {
        if let Some((id, serial)) = self.roster.by_token(token) {
            self.metrics.takeovers.inc();
            self.depart(&id, serial, Some(to));
        }
    }

    fn depart(&mut self, id: &GhostId, serial: u64, released_to: Option<String>) {
        let Some(live) = self.roster.remove(id, serial) else {
            return; // An older stream of a ghost that was taken over, or already gone.
        };
        let pos = match self.rooms.get_mut(&live.slug) {
            Some(room) if live.watching => {
                room.watch(false);
                0.0
            }
            Some(room) => room.remove(id).map_or(0.0, |m| m.pos),
            None => 0.0,
        };
        self.mark_dirty(&live.slug);
        // Lost only if Redis is far behind; then a resume elsewhere gets a new ghost.
        self.tell_cluster(Outbound::Parked {
            token: live.token.clone(),
            id: id.clone(),
            color: live.color,
            slug: live.slug.clone(),
            pos,
            counted: live.counted,
            released_to: released_to.clone(),
        });
        self.metrics.leaves.inc();
        self.metrics.ghosts.set(self.roster.live_count() as i64);
        if released_to.is_some() {
            return; // Resumed elsewhere; never here.
        }
        let parked = Parked {
            id: id.clone(),
            slug: live.slug,
            color: live.color,
            pos,
            expires: Instant::now() + self.settings.resume_window,
            counted: live.counted,
        };
        self.roster.park(live.token, parked);
        self.metrics.parked.set(self.roster.parked_count() as i64);
    }
}

/// Who a stream's `hello` introduces.
struct Arrival<'a> {
    id: &'a GhostId,
    token: &'a Token,
    color: Color,
    blocks: u32,
    watching: bool,
}

impl Arrival<'_> {
    /// The stream's own first bytes: `retry`, then `hello`.
    fn hello(&self, settings: &super::commands::Settings) -> Bytes {
        let mut first = Vec::with_capacity(256);
        let hello = Hello {
            id: self.id.as_str(),
            token: self.token.as_str(),
            color: self.color,
            blocks: self.blocks,
            watching: self.watching,
            away_after: settings.away_after.as_secs(),
            let_go: settings.let_go.as_secs(),
        };
        encode_hello(&mut first, &hello);
        Bytes::from(first)
    }
}
