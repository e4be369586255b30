//! The manager's side of cluster mode: other instances' messages applied
//! through `Others`, the link's questions answered, and what a room tells
//! the other instances besides its journal (a crowded room's counts, its
//! ghosts when it is no longer crowded or is asked).

use tokio::time::Instant;

use super::Manager;
use crate::blog::Slug;
use crate::ghosts::commands::Command;
use crate::ghosts::messages::{Outbound, Wire};
use crate::ghosts::remote::{local_room, Changed, Heard};

impl Manager {
    /// A command of cluster mode: from the link, about other instances.
    pub(super) fn apply_cluster(&mut self, command: Command) {
        match command {
            Command::Remote(wire) => self.apply_remote(wire),
            Command::InstanceGone(instance) => {
                let changed = self.others.gone(&mut self.rooms, &instance);
                self.mark_changed(changed);
            }
            // The link may have given up waiting for these; then nobody needs them.
            Command::Announce(slug) => {
                if let Some(room) = self.rooms.get_mut(&slug) {
                    room.owe_local_counts();
                }
                self.share_room(&slug, true);
            }
            Command::Serving { respond_to } => {
                let serving = self
                    .rooms
                    .iter()
                    .filter(|(_, room)| room.has_local_reader())
                    .map(|(slug, _)| slug.clone())
                    .collect();
                let _ = respond_to.send(serving);
            }
            Command::Forget(slug) => {
                let changed = self.others.forget(&mut self.rooms, &slug);
                self.mark_changed(changed);
            }
            Command::Asked(slug) => self.others.asked(&self.rooms, slug, Instant::now()),
            _ => {} // The manager's own commands: `Manager::apply`.
        }
    }

    /// Cluster mode: a crowded room tells the other instances its readers
    /// per block when they changed; a room back to per-ghost events tells
    /// them its ghosts (so do both when `asked`).
    pub(super) fn share_room(&mut self, slug: &Slug, asked: bool) {
        if self.elsewhere.is_none() {
            return;
        }
        let Some(room) = self.rooms.get_mut(slug) else {
            return;
        };
        let back_to_ghosts = room.take_switch() == Some(false);
        if let Some(counts) = room.take_local_counts(Instant::now()) {
            let slug = slug.clone();
            self.tell(Outbound::Counts { slug, counts });
        } else if back_to_ghosts || (asked && !room.crowded()) {
            let local = local_room(&self.rooms, slug);
            if back_to_ghosts || !local.ghosts.is_empty() {
                self.tell(Outbound::Snapshot { room: local });
            }
        }
    }

    /// A message from another instance: what it changed in the rooms is
    /// scheduled; a release hands this instance's ghost over.
    fn apply_remote(&mut self, wire: Wire) {
        match self.others.hear(&mut self.rooms, &mut self.tally, wire) {
            Heard::Changed(changed) => self.mark_changed(changed),
            Heard::Release { token, to } => {
                // A token that is not live here changes nothing.
                if let Some((id, serial)) = self.roster.by_token(&token) {
                    self.metrics.takeovers.inc();
                    self.depart(&id, serial, Some(to));
                }
            }
        }
    }

    pub(super) fn mark_changed(&mut self, changed: Changed) {
        self.metrics.moves_coalesced.add(changed.coalesced);
        for slug in changed.rooms {
            self.rooms.mark(&slug);
        }
    }
}
