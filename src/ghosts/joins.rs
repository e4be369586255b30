//! A reader arriving: whether the server, the post and the address have
//! room, which ghost comes back (parked here, parked or released by another
//! instance, or none), a takeover by a newer stream, and the booking of the
//! ghost in the roster and its room, answered at the room's next tick with
//! the state every reader arriving in that tick shares (a crowd arriving
//! costs one frame and one state per tick, not one per reader).

use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::commands::{
    Elsewhere, JoinAnswer, JoinRefused, JoinRequest, Refusal, Settings, Waiting,
};
use super::ghost::{palette_color, pick_color, Color, GhostId, Token};
use super::remote::Others;
use super::room::Room;
use super::rooms::Rooms;
use super::roster::{Admission, Parked, Roster};
use super::tally::Tally;
use crate::blog::Slug;
use crate::events::{encode_hello, Hello};
use crate::metrics::Metrics;

/// What a booked join asks of the manager afterwards.
pub(super) enum Booked {
    /// A new reader that counts at once (`--count-after-secs 0`): its
    /// post's total grows, through the manager's one path for that.
    Counted(Slug),
    Uncounted,
}

/// The parts a join books a ghost in, borrowed from the manager for one
/// join: the join desk. It reads and changes them only through their own
/// methods.
pub(super) struct Desk<'a> {
    settings: &'a Settings,
    roster: &'a mut Roster,
    rooms: &'a mut Rooms,
    tally: &'a mut Tally,
    others: &'a mut Others,
    metrics: &'a Metrics,
    rng: &'a mut StdRng,
}

impl<'a> Desk<'a> {
    pub(super) fn new(
        settings: &'a Settings,
        roster: &'a mut Roster,
        rooms: &'a mut Rooms,
        tally: &'a mut Tally,
        others: &'a mut Others,
        metrics: &'a Metrics,
        rng: &'a mut StdRng,
    ) -> Desk<'a> {
        Desk {
            settings,
            roster,
            rooms,
            tally,
            others,
            metrics,
            rng,
        }
    }

    /// Books a reader's ghost (new, resumed or taken over) and queues its
    /// answer for the room's next tick; a refusal comes back at once, with
    /// the sender to say it through.
    pub(super) fn book(
        &mut self,
        request: JoinRequest,
        elsewhere: Elsewhere,
        respond_to: JoinAnswer,
    ) -> Result<Booked, (JoinAnswer, Refusal)> {
        // A ghost whose stream is still open: the newer stream takes over,
        // silently for everyone else.
        let respond_to = match &request.resume {
            Some(token) => match self.take_over(token, &request, respond_to) {
                Ok(()) => return Ok(Booked::Uncounted),
                Err(respond_to) => respond_to,
            },
            None => respond_to,
        };
        let JoinRequest { slug, peer, .. } = &request;
        if let Some(why) = over_a_limit(self.settings, self.roster, self.rooms, slug, peer) {
            return Err((respond_to, Refusal::Refused(why)));
        }
        if let (Elsewhere::Ask, Some(token)) = (&elsewhere, &request.resume) {
            if let Some(instance) = self.live_elsewhere(token, slug) {
                return Err((respond_to, Refusal::LiveElsewhere(instance)));
            }
        }
        let now = Instant::now();
        let back = request.resume.as_ref().and_then(|token| {
            let parked = comes_back(self.roster, token, slug, &elsewhere, now)?;
            Some((token.clone(), parked))
        });
        let (admission, booked) = match back {
            Some((token, parked)) => (
                self.resumed(&request, token, parked, &elsewhere),
                Booked::Uncounted,
            ),
            None => self.newcomer(&request),
        };
        self.admit(request, admission, respond_to);
        Ok(booked)
    }

    /// The instance this token's ghost is live on, if not this one.
    fn live_elsewhere(&self, token: &Token, slug: &Slug) -> Option<String> {
        if self.roster.holds(token) {
            return None;
        }
        Others::live_on(self.rooms, token, slug).map(|instance| instance.to_string())
    }

    /// A ghost coming back (here or from another instance): the same id and
    /// colour where it left. Ids are random: in the rare case that a live
    /// ghost took this one meanwhile (here, or another instance's in this
    /// room), it gets a new id, same colour.
    fn resumed(
        &mut self,
        request: &JoinRequest,
        token: Token,
        parked: Parked,
        elsewhere: &Elsewhere,
    ) -> (Admission, f64) {
        self.metrics.resumes.inc();
        if let Elsewhere::Released { by, .. } = elsewhere {
            // Released for this join: the releasing instance's member is
            // this very ghost, and is this instance's now.
            let by: Arc<str> = Arc::from(by.as_str());
            if self
                .others
                .remove(self.rooms, &by, &request.slug, &parked.id)
            {
                self.rooms.mark(&request.slug);
            }
        }
        let taken = self.roster.contains(&parked.id)
            || self
                .rooms
                .get(&request.slug)
                .is_some_and(|r| r.contains(&parked.id));
        let id = match taken {
            true => self.roster.fresh_id(&mut *self.rng),
            false => parked.id,
        };
        let admission = self.admission(request, id, token, parked.color, parked.counted);
        (admission, parked.pos)
    }

    /// A new reader: a random id, the colour least used in its room, a
    /// 128-bit token, counted now or when it shows it reads.
    fn newcomer(&mut self, request: &JoinRequest) -> ((Admission, f64), Booked) {
        self.metrics.joins.inc();
        let in_use = self
            .rooms
            .get(&request.slug)
            .into_iter()
            .flat_map(Room::colors);
        let color = pick_color(in_use, &mut *self.rng);
        let id = self.roster.fresh_id(&mut *self.rng);
        let counted = self.tally.counts_at_join();
        let booked = match counted {
            true => Booked::Counted(request.slug.clone()),
            false => Booked::Uncounted,
        };
        let token = Token::for_ghost(&id, &mut *self.rng);
        let admission = self.admission(request, id, token, color, counted);
        ((admission, 0.0), booked)
    }

    fn admission(
        &self,
        request: &JoinRequest,
        id: GhostId,
        token: Token,
        color: Color,
        counted: bool,
    ) -> Admission {
        Admission {
            id,
            token,
            slug: request.slug.clone(),
            color,
            peer: request.peer,
            counted,
            watching: request.watch,
            moves_per_sec: self.settings.moves_per_sec,
        }
    }

    /// Books the ghost: in the roster (live, its token, its seat), in its
    /// room (a member, or a watcher), and waiting for the room's tick.
    fn admit(
        &mut self,
        request: JoinRequest,
        (ghost, pos): (Admission, f64),
        respond_to: JoinAnswer,
    ) {
        if !ghost.counted {
            // Counted at its first position, or when this comes due.
            self.tally.wait_to_count(ghost.id.clone(), Instant::now());
        }
        let (slug, blocks, watch) = (request.slug, request.blocks, request.watch);
        let room = self.rooms.open(&slug, Some(blocks));
        if watch {
            room.watch(true); // Sees the room; nobody sees it.
        } else {
            // The others hear the join at the tick, after any moves queued
            // before it; this reader subscribes after that frame, so it
            // never hears its own join.
            room.add(ghost.id.clone(), ghost.color, pos.min(f64::from(blocks)));
        }
        let token = ghost.token.clone();
        let stream = self.roster.admit(ghost);
        let arrival = Arrival {
            id: &stream.id,
            token: &token,
            color: stream.color,
            blocks,
            watching: watch,
        };
        let hello = arrival.hello(self.settings);
        let waiting = Waiting::Joined {
            respond_to,
            ghost: stream.id,
            token,
            serial: stream.serial,
            hello,
            end: stream.end,
        };
        self.rooms.wait(&slug, waiting);
        self.metrics.ghosts.set(self.roster.live_count() as i64);
        self.metrics.rooms.set(self.rooms.len() as i64);
        self.metrics.parked.set(self.roster.parked_count() as i64);
    }

    /// Hands a live ghost to a newer stream on the same post, answered at
    /// the tick; gives `respond_to` back if the token has no live ghost there.
    fn take_over(
        &mut self,
        token: &Token,
        request: &JoinRequest,
        respond_to: JoinAnswer,
    ) -> Result<(), JoinAnswer> {
        let slug = &request.slug;
        if self.rooms.get(slug).is_none() {
            return Err(respond_to);
        }
        let Some(taken) = self.roster.take_over(token, slug, request.watch) else {
            return Err(respond_to);
        };
        let stream = taken.stream;
        if let (Some(watch), Some(room)) = (taken.switched, self.rooms.get_mut(slug)) {
            // The reader chose to be seen, or not to be: its ghost joins
            // or leaves for the others, as the reader it is.
            room.watch(watch);
            if watch {
                room.remove(&stream.id);
            } else {
                room.add(stream.id.clone(), stream.color, 0.0);
            }
        }
        let arrival = Arrival {
            id: &stream.id,
            token,
            color: stream.color,
            blocks: request.blocks,
            watching: request.watch,
        };
        let hello = arrival.hello(self.settings);
        self.metrics.takeovers.inc();
        let waiting = Waiting::Joined {
            respond_to,
            ghost: stream.id,
            token: token.clone(),
            serial: stream.serial,
            hello,
            end: stream.end,
        };
        self.rooms.wait(slug, waiting);
        Ok(())
    }
}

/// Why a new stream would be one too many, if it would.
pub(super) fn over_a_limit(
    settings: &Settings,
    roster: &Roster,
    rooms: &Rooms,
    slug: &Slug,
    peer: &std::net::IpAddr,
) -> Option<JoinRefused> {
    if roster.live_count() >= settings.max_readers {
        Some(JoinRefused::ServerFull)
    } else if rooms.readers(slug) >= settings.max_readers_per_post {
        Some(JoinRefused::PostFull)
    } else if roster.streams_from(peer) >= settings.max_streams_per_address {
        Some(JoinRefused::AddressFull)
    } else {
        None
    }
}

/// The ghost that `token` brings back on `slug`: parked here, or parked
/// (or released) by another instance, with its id and colour.
pub(super) fn comes_back(
    roster: &mut Roster,
    token: &Token,
    slug: &Slug,
    elsewhere: &Elsewhere,
    now: Instant,
) -> Option<Parked> {
    if let Some(parked) = roster.unpark(token, slug, now) {
        return Some(parked);
    }
    let remote = match elsewhere {
        Elsewhere::Parked(parked) | Elsewhere::Released { parked, .. } => parked,
        Elsewhere::Nothing | Elsewhere::Ask => return None,
    };
    if remote.slug != slug.as_str() {
        return None;
    }
    Some(Parked {
        id: GhostId::parse(&remote.id)?,
        slug: slug.clone(),
        color: palette_color(&remote.color),
        pos: remote.pos,
        expires: now,
        counted: remote.counted,
    })
}

/// Who a stream's `hello` introduces.
pub(super) struct Arrival<'a> {
    pub(super) id: &'a GhostId,
    pub(super) token: &'a Token,
    pub(super) color: Color,
    pub(super) blocks: u32,
    pub(super) watching: bool,
}

impl Arrival<'_> {
    /// The stream's own first bytes: `retry`, then `hello`.
    pub(super) fn hello(&self, settings: &Settings) -> Bytes {
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
