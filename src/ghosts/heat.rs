//! The reading heat map: reader-seconds per block of each post, grown once
//! a second by every local reader who reads. Saved with the counts, and
//! summed over the cluster by the link (each instance tells what its own
//! readers added).

use std::time::Duration;

use tokio::time::Instant;

use super::rooms::Rooms;
use crate::blog::Slug;
use crate::store::{load_heat, Heat};

/// How often the heat map grows.
const HEAT_EVERY: Duration = Duration::from_secs(1);

/// What one warming added to one post, per block, for the other instances.
pub(super) type Grown = Vec<(Slug, Vec<f64>)>;

pub(super) struct HeatMap {
    heat: Heat,
    /// When the heat map last grew.
    at: Instant,
    /// Off with `--no-heat-map` (only to measure what it costs).
    enabled: bool,
}

impl HeatMap {
    /// The heat map saved in `data_dir`, or an empty one when it is off.
    pub(super) fn load(data_dir: &std::path::Path, enabled: bool) -> HeatMap {
        HeatMap {
            heat: if enabled {
                load_heat(data_dir)
            } else {
                Heat::new()
            },
            at: Instant::now(),
            enabled,
        }
    }

    /// The heat map grows by the time since it last did, at the block of
    /// every reader here that reads: local ghosts that are not away
    /// (invisible readers are no ghosts). Once a second, O(readers). `None`
    /// when nothing grew; otherwise what each post grew by per block, when
    /// the cluster must be told (`shared`), or an empty list.
    pub(super) fn warm(&mut self, now: Instant, rooms: &Rooms, shared: bool) -> Option<Grown> {
        let elapsed = now.duration_since(self.at);
        if elapsed < HEAT_EVERY {
            return None;
        }
        self.at = now;
        if !self.enabled {
            return None;
        }
        // A stalled manager (a paused VM) does not credit the pause.
        let seconds = elapsed.min(HEAT_EVERY * 5).as_secs_f64();
        let mut grown_all = Vec::new();
        let mut warmed = false;
        for (slug, room) in rooms.iter() {
            let Some(blocks) = room.blocks() else {
                continue;
            };
            let mut reading = room.local_ghosts().filter(|(_, m)| !m.away).peekable();
            if reading.peek().is_none() {
                continue;
            }
            warmed = true;
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
            if shared {
                grown_all.push((slug.clone(), grown));
            }
        }
        warmed.then_some(grown_all)
    }

    /// The heat of these posts, as this instance knows it.
    pub(super) fn of(&self, slugs: Vec<String>) -> Heat {
        slugs
            .into_iter()
            .filter_map(|slug| Some((slug.clone(), self.heat.get(&slug)?.clone())))
            .collect()
    }

    /// All of it, to save.
    pub(super) fn all(&self) -> &Heat {
        &self.heat
    }
}
