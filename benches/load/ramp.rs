//! The `ramp` scenario's steps: readers are added a step at a time, and each
//! step is judged on the readers it holds, until its p99 passes the limit,
//! errors appear, or its readers cannot all connect.

use std::time::Duration;

use tokio::time::Instant;

/// Readers a step adds; they arrive over `ARRIVAL`, not all in one instant.
pub const STEP: usize = 5_000;
const ARRIVAL: f64 = 2.0;
/// A step is judged from this long after all its readers are in: on the
/// readers it holds, not on the rush of their joining.
const SETTLE: Duration = Duration::from_secs(2);
/// The staleness p99 a step may hold readers at: of moves in rooms that
/// send every ghost, and of the density in crowded rooms (which waits for
/// the room's interval by design).
const LIMIT_MS: f64 = 250.0;
const CROWD_LIMIT_MS: f64 = 1000.0;

/// Where the ramp is.
pub struct Ramp {
    /// Readers this step brings the run to.
    pub target: usize,
    max: usize,
    /// How long each step is held once settled.
    hold: Duration,
    started: Instant,
    /// When 99 % of the step's readers were in.
    settled: Option<Instant>,
    worst_joining: f64,
    worst_held: f64,
    worst_crowd_held: f64,
    errors_before: u64,
    /// Moves sent when the held part of the step began, and when.
    held_from: Option<(u64, Instant)>,
    /// The most readers held within the limits, and their moves/s.
    pub knee: Option<(u64, f64)>,
}

impl Ramp {
    /// Up to `max` readers, each step held `hold_secs` once settled.
    pub fn new(max: usize, hold_secs: u64) -> Ramp {
        Ramp {
            target: STEP.min(max),
            max,
            hold: Duration::from_secs(hold_secs),
            started: Instant::now(),
            settled: None,
            worst_joining: 0.0,
            worst_held: 0.0,
            worst_crowd_held: 0.0,
            errors_before: 0,
            held_from: None,
            knee: None,
        }
    }

    /// How many readers should have arrived by now.
    pub fn due(&self) -> usize {
        let base = self.target.saturating_sub(STEP);
        let arrived = self.started.elapsed().as_secs_f64() / ARRIVAL * STEP as f64;
        (base + arrived.ceil() as usize).min(self.target)
    }

    /// One second's figures. Returns whether the ramp goes on.
    pub fn second(
        &mut self,
        p99_ms: f64,
        crowd_p99_ms: f64,
        open: u64,
        moves: u64,
        errors: u64,
    ) -> bool {
        if self.settled.is_none() && open as usize >= self.target * 99 / 100 {
            self.settled = Some(Instant::now());
        }
        let held = self.settled.map_or(Duration::ZERO, |at| at.elapsed());
        if held >= SETTLE {
            self.held_from.get_or_insert((moves, Instant::now()));
            self.worst_held = self.worst_held.max(p99_ms);
            self.worst_crowd_held = self.worst_crowd_held.max(crowd_p99_ms);
        } else {
            self.worst_joining = self.worst_joining.max(p99_ms);
        }
        let stuck = self.started.elapsed() >= (self.hold * 6).max(Duration::from_secs(10));
        let too_stale = self.worst_held > LIMIT_MS || self.worst_crowd_held > CROWD_LIMIT_MS;
        if errors > self.errors_before || too_stale || stuck {
            eprintln!(
                "\nramp: stopping at {} readers (p99 {:.1} ms held, crowd p99 {:.1} ms held, {:.1} ms while joining, {} new errors{})",
                self.target,
                self.worst_held,
                self.worst_crowd_held,
                self.worst_joining,
                errors - self.errors_before,
                if stuck { ", readers did not all connect" } else { "" }
            );
            return false;
        }
        // Held for `hold` (give or take the tick's jitter) since judging began.
        let Some((moves_then, since)) = self.held_from else {
            return true;
        };
        if since.elapsed() + Duration::from_millis(100) < self.hold {
            return true;
        }
        let rate = (moves - moves_then) as f64 / since.elapsed().as_secs_f64().max(1e-9);
        self.knee = Some((open, rate));
        if self.target >= self.max {
            return false;
        }
        eprintln!(
            "\nramp: {} readers held at p99 {:.1} ms, crowd p99 {:.1} ms ({:.1} ms while they joined)",
            self.target, self.worst_held, self.worst_crowd_held, self.worst_joining
        );
        *self = Ramp {
            target: (self.target + STEP).min(self.max),
            errors_before: errors,
            knee: self.knee,
            ..Ramp::new(self.max, self.hold.as_secs())
        };
        true
    }
}
