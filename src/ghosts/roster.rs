//! Who is here and who may come back: the live ghosts, their tokens, the
//! live ghosts per client address, the directory handlers read, the ghosts
//! held for a page that gave its stream up, and the parked ghosts waiting
//! for a resume. These must change together (a ghost in one map and not
//! another is a leak or a lie), so only this type's methods change them,
//! each keeping all of them in step. A live ghost's fields are private to
//! this file for the same reason.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use rand::Rng;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::directory::{Directory, Seat};
use super::ghost::{Color, GhostId, Token};
use super::limiter::Limiter;
use crate::blog::Slug;

/// A ghost with an open stream.
pub(super) struct Live {
    token: Token,
    slug: Slug,
    color: Color,
    /// The address the ghost's first stream came from, counted per address
    /// until the ghost leaves.
    peer: IpAddr,
    /// Which stream of this ghost is current.
    serial: u64,
    /// Dropping this ends the current stream.
    end: oneshot::Sender<()>,
    /// Whether this reader is in the post's `total` yet (see `Tally`).
    counted: bool,
    /// An invisible reader: subscribed to its room, not a member of it.
    watching: bool,
    /// Until when the ghost stays (away) if its stream closes: its page
    /// asked, as it gives its connection up while hidden.
    held_until: Option<Instant>,
}

impl Live {
    pub(super) fn slug(&self) -> &Slug {
        &self.slug
    }

    pub(super) fn serial(&self) -> u64 {
        self.serial
    }
}

/// A ghost whose stream ended, resumable by its token until `expires`.
pub(super) struct Parked {
    pub(super) id: GhostId,
    pub(super) slug: Slug,
    pub(super) color: Color,
    pub(super) pos: f64,
    pub(super) expires: Instant,
    pub(super) counted: bool,
}

/// A ghost that has just left: what is needed to park it, here or in Redis.
pub(super) struct Departed {
    pub(super) token: Token,
    pub(super) slug: Slug,
    pub(super) color: Color,
    pub(super) counted: bool,
    pub(super) watching: bool,
}

/// A new stream for a ghost: who it is and the stream's own serial and end.
pub(super) struct Stream {
    pub(super) id: GhostId,
    pub(super) color: Color,
    pub(super) serial: u64,
    pub(super) end: oneshot::Receiver<()>,
}

/// A ghost whose stream was handed to a newer one (a takeover).
pub(super) struct TakenOver {
    pub(super) stream: Stream,
    /// `Some(watch)`: the reader switched between seen and invisible.
    pub(super) switched: Option<bool>,
}

/// What a new live ghost is, as its join decided.
pub(super) struct Admission {
    pub(super) id: GhostId,
    pub(super) token: Token,
    pub(super) slug: Slug,
    pub(super) color: Color,
    pub(super) peer: IpAddr,
    pub(super) counted: bool,
    pub(super) watching: bool,
    pub(super) moves_per_sec: u32,
}

pub(super) struct Roster {
    live: HashMap<GhostId, Live>,
    tokens: HashMap<Token, GhostId>,
    /// Live ghosts per client address, for the per-address limit. An address
    /// is forgotten as soon as its last ghost leaves.
    per_address: HashMap<IpAddr, usize>,
    /// Live ghosts whose `held_until` is set: exactly those, so letting go
    /// of held ghosts looks at them only.
    held: HashSet<GhostId>,
    parked: HashMap<Token, Parked>,
    directory: Arc<Directory>,
    /// The last stream serial given out; each stream gets a higher one.
    serials: u64,
}

impl Roster {
    pub(super) fn new(directory: Arc<Directory>) -> Roster {
        Roster {
            live: HashMap::new(),
            tokens: HashMap::new(),
            per_address: HashMap::new(),
            held: HashSet::new(),
            parked: HashMap::new(),
            directory,
            serials: 0,
        }
    }

    pub(super) fn live_count(&self) -> usize {
        self.live.len()
    }

    pub(super) fn parked_count(&self) -> usize {
        self.parked.len()
    }

    pub(super) fn get(&self, id: &GhostId) -> Option<&Live> {
        self.live.get(id)
    }

    pub(super) fn contains(&self, id: &GhostId) -> bool {
        self.live.contains_key(id)
    }

    /// Whether a live or parked ghost here has this token.
    pub(super) fn holds(&self, token: &Token) -> bool {
        self.tokens.contains_key(token) || self.parked.contains_key(token)
    }

    /// The live ghost holding `token` on any post, and its current stream.
    pub(super) fn by_token(&self, token: &Token) -> Option<(GhostId, u64)> {
        let id = self.tokens.get(token)?;
        self.live.get(id).map(|live| (id.clone(), live.serial))
    }

    /// Live ghosts whose stream came from `peer`.
    pub(super) fn streams_from(&self, peer: &IpAddr) -> usize {
        self.per_address.get(peer).copied().unwrap_or(0)
    }

    /// A random id no live ghost has.
    pub(super) fn fresh_id(&self, rng: &mut impl Rng) -> GhostId {
        loop {
            let id = GhostId::random(rng);
            if !self.live.contains_key(&id) {
                return id;
            }
        }
    }

    /// A ghost's stream is open: it is live, its token moves it (its seat
    /// in the directory), its address counts it. Returns its stream.
    pub(super) fn admit(&mut self, ghost: Admission) -> Stream {
        let (end, end_rx) = oneshot::channel();
        let serial = self.next_serial();
        let seat = Seat {
            id: ghost.id.clone(),
            slug: ghost.slug.clone(),
            limiter: Limiter::per_second(ghost.moves_per_sec),
        };
        self.directory.insert(ghost.token.clone(), Arc::new(seat));
        self.tokens.insert(ghost.token.clone(), ghost.id.clone());
        *self.per_address.entry(ghost.peer).or_insert(0) += 1;
        let live = Live {
            token: ghost.token,
            slug: ghost.slug,
            color: ghost.color,
            peer: ghost.peer,
            serial,
            end,
            counted: ghost.counted,
            watching: ghost.watching,
            held_until: None,
        };
        self.live.insert(ghost.id.clone(), live);
        Stream {
            id: ghost.id,
            color: ghost.color,
            serial,
            end: end_rx,
        }
    }

    /// Hands the live ghost holding `token` on `slug` to a newer stream:
    /// the old stream's end is dropped (ending it; its leave then carries
    /// an old serial and is ignored), and a held ghost's page is back.
    pub(super) fn take_over(
        &mut self,
        token: &Token,
        slug: &Slug,
        watch: bool,
    ) -> Option<TakenOver> {
        let id = self.tokens.get(token)?.clone();
        let serial = self.serials + 1;
        let live = self.live.get_mut(&id).filter(|live| live.slug == *slug)?;
        self.serials = serial;
        let (end, end_rx) = oneshot::channel();
        live.serial = serial;
        live.end = end;
        live.held_until = None;
        let switched = (live.watching != watch).then_some(watch);
        live.watching = watch;
        let color = live.color;
        self.held.remove(&id);
        Some(TakenOver {
            stream: Stream {
                id,
                color,
                serial,
                end: end_rx,
            },
            switched,
        })
    }

    /// The ghost's stream `serial` ended: it is no longer live. `None` for
    /// an older stream of a ghost that was taken over, or one already gone.
    pub(super) fn remove(&mut self, id: &GhostId, serial: u64) -> Option<Departed> {
        if self.live.get(id).is_none_or(|l| l.serial != serial) {
            return None;
        }
        let live = self.live.remove(id)?;
        self.tokens.remove(&live.token);
        self.directory.remove(&live.token);
        self.held.remove(id);
        if let Some(count) = self.per_address.get_mut(&live.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&live.peer);
            }
        }
        Some(Departed {
            token: live.token,
            slug: live.slug,
            color: live.color,
            counted: live.counted,
            watching: live.watching,
        })
    }

    /// The live ghost `id` has shown it is a reader: its post's slug, the
    /// first time only (a reader counts in `total` once).
    pub(super) fn mark_counted(&mut self, id: &GhostId) -> Option<Slug> {
        let live = self.live.get_mut(id).filter(|live| !live.counted)?;
        live.counted = true;
        Some(live.slug.clone())
    }

    /// Holds the ghost (away) until `until` if its stream closes, or (with
    /// `None`) no longer.
    pub(super) fn hold(&mut self, id: &GhostId, until: Option<Instant>) {
        let Some(live) = self.live.get_mut(id) else {
            return;
        };
        live.held_until = until;
        match until {
            Some(_) => self.held.insert(id.clone()),
            None => self.held.remove(id),
        };
    }

    /// Whether stream `serial` of ghost `id` is current and held past `now`
    /// (its page closed it on purpose, to be back).
    pub(super) fn is_held(&self, id: &GhostId, serial: u64, now: Instant) -> bool {
        self.live
            .get(id)
            .filter(|live| live.serial == serial)
            .and_then(|live| live.held_until)
            .is_some_and(|until| until > now)
    }

    /// Ends the holds that ran out by `now`: the ghosts whose stream is
    /// closed too, with that stream's serial, are due to leave. A ghost
    /// whose stream is still open (its page changed its mind without
    /// saying so) only stops being held.
    pub(super) fn let_go(&mut self, now: Instant) -> Vec<(GhostId, u64)> {
        let mut leaving = Vec::new();
        let live = &mut self.live;
        self.held.retain(|id| {
            let Some(ghost) = live.get_mut(id) else {
                return false;
            };
            match ghost.held_until {
                Some(until) if until > now => true,
                Some(_) => {
                    ghost.held_until = None;
                    if ghost.end.is_closed() {
                        leaving.push((id.clone(), ghost.serial));
                    }
                    false
                }
                None => false,
            }
        });
        leaving
    }

    pub(super) fn park(&mut self, token: Token, parked: Parked) {
        self.parked.insert(token, parked);
    }

    /// The ghost parked under `token`, if it was parked on `slug` (a token
    /// resumes only on its own post; a parked ghost of another post stays)
    /// and its window has not passed, whether or not housekeeping has
    /// forgotten it yet.
    pub(super) fn unpark(&mut self, token: &Token, slug: &Slug, now: Instant) -> Option<Parked> {
        match self.parked.get(token) {
            Some(parked) if parked.slug == *slug && parked.expires > now => {
                self.parked.remove(token)
            }
            _ => None,
        }
    }

    /// Forgets the parked ghosts whose resume window has passed, which is
    /// what keeps nothing about a reader past that window. Whether any went.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        let before = self.parked.len();
        self.parked.retain(|_, parked| parked.expires > now);
        self.parked.len() != before
    }

    /// Everyone gone at once: dropping every `end` sender ends every stream.
    pub(super) fn clear(&mut self) {
        self.live.clear();
        self.tokens.clear();
        self.per_address.clear();
        self.held.clear();
        self.parked.clear();
        self.directory.clear();
    }

    fn next_serial(&mut self) -> u64 {
        self.serials += 1;
        self.serials
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn admission(id: &str, token: &Token) -> Admission {
        Admission {
            id: GhostId::for_test(id),
            token: token.clone(),
            slug: Slug::parse("p").expect("a slug"),
            color: "#000",
            peer: IpAddr::from([192, 0, 2, 1]),
            counted: false,
            watching: false,
            moves_per_sec: 10,
        }
    }

    fn token(rng: &mut impl Rng, id: &str) -> Token {
        Token::for_ghost(&GhostId::for_test(id), rng)
    }

    #[tokio::test(start_paused = true)]
    async fn a_ghost_is_in_every_map_or_in_none() {
        let directory = Arc::new(Directory::default());
        let mut roster = Roster::new(directory.clone());
        let mut rng = rand::rng();
        let t = token(&mut rng, "a");
        let stream = roster.admit(admission("a", &t));
        let peer = IpAddr::from([192, 0, 2, 1]);
        assert!(directory.get(&t).is_some() && roster.holds(&t));
        assert_eq!(roster.streams_from(&peer), 1);
        assert!(
            roster.remove(&stream.id, stream.serial + 1).is_none(),
            "not its stream"
        );
        let gone = roster
            .remove(&stream.id, stream.serial)
            .expect("its stream");
        assert_eq!(gone.token, t);
        assert!(directory.get(&t).is_none() && !roster.holds(&t));
        assert_eq!(roster.streams_from(&peer), 0, "the address is forgotten");
        assert_eq!(roster.live_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_takeover_ends_the_old_stream_and_the_hold() {
        let mut roster = Roster::new(Arc::default());
        let mut rng = rand::rng();
        let t = token(&mut rng, "a");
        let mut first = roster.admit(admission("a", &t));
        let id = first.id.clone();
        let now = Instant::now();
        roster.hold(&id, Some(now + Duration::from_secs(60)));
        assert!(roster.is_held(&id, first.serial, now));
        let slug = Slug::parse("p").expect("a slug");
        let other = Slug::parse("q").expect("a slug");
        assert!(
            roster.take_over(&t, &other, false).is_none(),
            "a token is for its own post"
        );
        let taken = roster.take_over(&t, &slug, true).expect("taken over");
        assert!(taken.stream.serial > first.serial);
        assert_eq!(taken.switched, Some(true), "it chose to be invisible");
        assert!(
            first.end.try_recv().is_err(),
            "the old stream's end is dropped"
        );
        assert!(
            !roster.is_held(&id, taken.stream.serial, now),
            "its page is back"
        );
        assert!(
            roster.let_go(now + Duration::from_secs(61)).is_empty(),
            "no hold is left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_that_runs_out_lets_go_only_of_a_closed_stream() {
        let mut roster = Roster::new(Arc::default());
        let mut rng = rand::rng();
        let (ta, tb) = (token(&mut rng, "a"), token(&mut rng, "b"));
        let open = roster.admit(admission("a", &ta));
        let closed = roster.admit(admission("b", &tb));
        drop(closed.end);
        let now = Instant::now();
        for stream in [&open.id, &closed.id] {
            roster.hold(stream, Some(now + Duration::from_secs(1)));
        }
        assert!(roster.let_go(now).is_empty(), "not yet");
        let later = now + Duration::from_secs(2);
        assert_eq!(
            roster.let_go(later),
            vec![(closed.id.clone(), closed.serial)]
        );
        assert!(!roster.is_held(&open.id, open.serial, later));
        assert!(roster.let_go(later).is_empty(), "each hold ends once");
    }
}
