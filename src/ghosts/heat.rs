//! The reading heat map: reader-seconds per block of each post, grown
//! once a second by every local reader who reads. Part of the manager;
//! saved with the counts, and summed over the cluster by the link.

use std::time::Duration;

use tokio::time::Instant;

use super::manager::Manager;
use super::messages::Outbound;

/// How often the heat map grows.
const HEAT_EVERY: Duration = Duration::from_secs(1);

impl Manager {
    /// The heat map grows by the time since it last did, at the block of
    /// every reader here that reads: local ghosts that are not away
    /// (invisible readers are no ghosts). Once a second, O(readers); other
    /// instances add their own readers to the cluster's sum.
    pub(super) fn warm(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.heat_at);
        if elapsed < HEAT_EVERY {
            return;
        }
        self.heat_at = now;
        if !self.settings.heat_map {
            return;
        }
        // A stalled manager (a paused VM) does not credit the pause.
        let seconds = elapsed.min(HEAT_EVERY * 5).as_secs_f64();
        // What each room grew by is told to the other instances; alone,
        // nobody needs it.
        let shared = self.settings.cluster.is_some();
        let mut warmed = Vec::new();
        for (slug, room) in &self.rooms {
            let Some(blocks) = room.blocks() else {
                continue;
            };
            let mut reading = room.local_ghosts().filter(|(_, m)| !m.away).peekable();
            if reading.peek().is_none() {
                continue;
            }
            let strip = self.heat.entry(slug.to_string()).or_default();
            let len = blocks.max(1) as usize;
            strip.resize(len, 0.0); // A post edited since: its new length.
            let mut grown = if shared { vec![0.0; len] } else { Vec::new() };
            for (_, member) in reading {
                let block = (member.pos.max(0.0) as usize).min(len - 1);
                strip[block] += seconds;
                if shared {
                    grown[block] += seconds;
                }
            }
            warmed.push((slug.clone(), grown));
        }
        if !warmed.is_empty() {
            self.saver.changed();
        }
        if shared {
            for (slug, grown) in warmed {
                self.tell_cluster(Outbound::Heat { slug, grown });
            }
        }
    }
}
