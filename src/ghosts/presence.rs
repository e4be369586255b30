//! Whether a reader is here: away and back, and the ghosts held for a page
//! that gave its connection up on purpose (a hidden tab over HTTP/1.1, a
//! leader tab handing over), until it comes back or lets go. Part of the
//! manager.

use tokio::time::Instant;

use super::ghost::GhostId;
use super::manager::Manager;
use super::room::Moved;

impl Manager {
    /// The reader is away (its tabs hidden, or not reading), or back. A
    /// page that is about to give its connection up asks for its ghost to
    /// be held until it comes back, for at most `let_go`.
    pub(super) fn mark_away(&mut self, id: &GhostId, away: Option<bool>, hold: bool) {
        let now = Instant::now();
        let let_go = self.settings.let_go;
        let Some(live) = self.roster.get_mut(id) else {
            return;
        };
        live.held_until = hold.then(|| now + let_go);
        if hold {
            self.held.insert(id.clone());
        }
        let (Some(away), slug) = (away, live.slug.clone()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&slug) else {
            return;
        };
        if room.set_away(id, away) != Moved::Unknown {
            self.mark_dirty(&slug);
        }
    }

    /// A stream ended by itself: its ghost leaves, unless its page asked
    /// for it to be held (it closed its stream on purpose, to be back).
    pub(super) fn stream_ended(&mut self, id: &GhostId, serial: u64) {
        let now = Instant::now();
        let held = self
            .roster
            .get(id)
            .filter(|live| live.serial == serial)
            .and_then(|live| live.held_until)
            .is_some_and(|until| until > now);
        if !held {
            self.leave(id, serial);
        }
    }

    /// Held ghosts whose page never came back within `let_go` leave.
    pub(super) fn let_go_of_held(&mut self, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        let mut expired = Vec::new();
        self.held.retain(|id| match self.roster.get(id) {
            Some(live) => match live.held_until {
                Some(until) if until <= now => {
                    expired.push((id.clone(), live.serial));
                    false
                }
                Some(_) => true,
                None => false,
            },
            None => false,
        });
        for (id, serial) in expired {
            // Its stream may be open still (the page changed its mind
            // without saying so): then it only stops being held. A closed
            // stream has dropped its end of `end`.
            if let Some(live) = self.roster.get_mut(&id) {
                live.held_until = None;
                if live.end.is_closed() {
                    self.leave(&id, serial);
                }
            }
        }
    }
}
