//! Which token belongs to which live ghost, for request handlers to check a
//! move without asking the manager. Only the manager writes it (through
//! `Roster`, which keeps it in step with the live ghosts); handlers see its
//! decisions at most one command late, which the protocol allows: a move
//! racing a leave is dropped by the manager, who knows better.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::ghost::{GhostId, Token};
use super::limiter::Limiter;
use crate::blog::Slug;

/// A live ghost as a handler sees it: enough to check and rate-limit a move.
#[derive(Debug)]
pub struct Seat {
    pub id: GhostId,
    pub slug: Slug,
    pub limiter: Limiter,
}

/// Live ghosts by token. A read lock held for one hash lookup per POST;
/// written by the manager on join and leave only.
#[derive(Debug, Default)]
pub struct Directory {
    seats: RwLock<HashMap<Token, Arc<Seat>>>,
}

impl Directory {
    pub fn get(&self, token: &Token) -> Option<Arc<Seat>> {
        self.seats.read().get(token).cloned()
    }

    pub(super) fn insert(&self, token: Token, seat: Arc<Seat>) {
        self.seats.write().insert(token, seat);
    }

    pub(super) fn remove(&self, token: &Token) {
        self.seats.write().remove(token);
    }

    pub(super) fn clear(&self) {
        self.seats.write().clear();
    }
}
