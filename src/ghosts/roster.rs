//! Who is here and who may come back: the live ghosts, their tokens, the
//! live ghosts per client address, the directory handlers read, and the
//! parked ghosts waiting for a resume. These must change together (a ghost
//! in one map and not another is a leak or a lie), so only this type's
//! methods change them, each keeping all of them in step.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rand::Rng;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::directory::{Directory, Seat};
use super::ghost::{Color, GhostId, Token};
use crate::blog::Slug;

/// A ghost with an open stream.
pub(super) struct Live {
    pub(super) token: Token,
    pub(super) slug: Slug,
    pub(super) color: Color,
    /// The address the ghost's first stream came from, counted per address
    /// until the ghost leaves.
    pub(super) peer: IpAddr,
    /// Which stream of this ghost is current.
    pub(super) serial: u64,
    /// Dropping this ends the current stream.
    pub(super) end: oneshot::Sender<()>,
    /// Whether this reader is in the post's `total` yet (see
    /// `Manager::count_reader`).
    pub(super) counted: bool,
    /// An invisible reader: subscribed to its room, not a member of it.
    pub(super) watching: bool,
    /// Until when the ghost stays (away) if its stream closes: its page
    /// asked, as it gives its connection up while hidden.
    pub(super) held_until: Option<Instant>,
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

pub(super) struct Roster {
    live: HashMap<GhostId, Live>,
    tokens: HashMap<Token, GhostId>,
    /// Live ghosts per client address, for the per-address limit. An address
    /// is forgotten as soon as its last ghost leaves.
    per_address: HashMap<IpAddr, usize>,
    parked: HashMap<Token, Parked>,
    directory: Arc<Directory>,
}

impl Roster {
    pub(super) fn new(directory: Arc<Directory>) -> Roster {
        Roster {
            live: HashMap::new(),
            tokens: HashMap::new(),
            per_address: HashMap::new(),
            parked: HashMap::new(),
            directory,
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

    pub(super) fn get_mut(&mut self, id: &GhostId) -> Option<&mut Live> {
        self.live.get_mut(id)
    }

    pub(super) fn contains(&self, id: &GhostId) -> bool {
        self.live.contains_key(id)
    }

    /// The live ghost holding `token` on `slug`.
    pub(super) fn by_token_mut(
        &mut self,
        token: &Token,
        slug: &Slug,
    ) -> Option<(&GhostId, &mut Live)> {
        let id = self.tokens.get(token)?;
        self.live
            .get_mut(id)
            .filter(|live| live.slug == *slug)
            .map(|live| (id, live))
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

    /// A ghost's stream is open: it is live, its token moves it, its address
    /// counts it.
    pub(super) fn admit(&mut self, id: GhostId, live: Live, seat: Seat) {
        self.directory.insert(live.token.clone(), Arc::new(seat));
        self.tokens.insert(live.token.clone(), id.clone());
        *self.per_address.entry(live.peer).or_insert(0) += 1;
        self.live.insert(id, live);
    }

    /// The ghost's stream `serial` ended: it is no longer live. `None` for
    /// an older stream of a ghost that was taken over, or one already gone.
    pub(super) fn remove(&mut self, id: &GhostId, serial: u64) -> Option<Live> {
        if self.live.get(id).is_none_or(|l| l.serial != serial) {
            return None;
        }
        let live = self.live.remove(id)?;
        self.tokens.remove(&live.token);
        self.directory.remove(&live.token);
        if let Some(count) = self.per_address.get_mut(&live.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&live.peer);
            }
        }
        Some(live)
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
        self.parked.clear();
        self.directory.clear();
    }
}
