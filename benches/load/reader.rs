//! One simulated reader: a real event stream and real position POSTs (see
//! `transport`), moved by a reading model. Every position encodes its move's
//! sequence number in its thousandths, so its `watcher` can tell which move
//! another reader sees and how late.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::shared::{Move, Shared};
use crate::transport::open;
use crate::watcher::Watcher;

/// How one reader behaves.
#[derive(Clone)]
pub struct Plan {
    pub slug: Arc<str>,
    /// Average moves per second; 10 and over means a steady 10 Hz.
    pub hz: f64,
    /// Chance, after each burst of scrolling, of leaving and coming back
    /// with `Last-Event-ID` a few seconds later.
    pub leave_chance: f64,
    pub move_until: Instant,
    pub end_at: Instant,
    pub seed: u64,
}

/// Runs one reader until its plan ends.
pub async fn run(shared: Arc<Shared>, me: usize, plan: Plan) {
    shared.seat(me, &plan.slug);
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut token: Option<Arc<str>> = None;
    let mut seq = 0u64;
    let mut block = rng.random_range(0..shared.reading_blocks()) as f64;
    let marker = shared.markers.get(&plan.slug).cloned();
    while Instant::now() < plan.end_at {
        let opening = shared.nanos();
        let Some((mut stream, mut buf)) = open(&shared, me, &plan.slug, token.as_deref()).await
        else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        shared.stats.open_streams.fetch_add(1, Ordering::Relaxed);
        let session = shared.sent[me].session.fetch_add(1, Ordering::AcqRel) + 1;
        let mut watcher = Watcher::new(me, marker.clone());
        // The first bytes may have come with the response head.
        shared
            .stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let mut greeted = false;
        if let Some(new_token) = watcher.consume(&shared, &mut buf) {
            token = Some(new_token);
            greeted = true;
            shared.stats.record_hello((shared.nanos() - opening) / 1000);
        }
        let mut burst = 0u32;
        let first = already_reading(&mut rng, plan.hz, &mut burst);
        let mut next_move = Instant::now() + first;
        // One timer, made once and reset, for the next move or the end,
        // whichever comes first: the timer wheel was a tenth of the harness's
        // time at 150,000 reads a second when timers were made per read, and
        // every timer in the select is polled on every read.
        let timer = tokio::time::sleep_until(next_move.min(plan.end_at));
        tokio::pin!(timer);
        let leave = loop {
            tokio::select! {
                read = stream.chunk(&mut buf) => {
                    let Some(n) = read else { break false };
                    shared.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    if let Some(new_token) = watcher.consume(&shared, &mut buf) {
                        token = Some(new_token);
                        if !greeted {
                            greeted = true;
                            shared.stats.record_hello((shared.nanos() - opening) / 1000);
                        }
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= plan.end_at { break false; }
                    if now >= plan.move_until {
                        next_move = plan.end_at;
                    } else if token.is_none() {
                        // No hello yet: look again shortly rather than skip a move.
                        next_move = now + Duration::from_millis(10);
                    } else {
                        // Read on a little; a thousandth of the block says which move this is.
                        block = (block + rng.random_range(0.05..0.4)) % f64::from(shared.reading_blocks());
                        let pos = block.floor() + (seq % 1000) as f64 / 1000.0;
                        if let Some(token) = &token {
                            let poster = &shared.posters[me % shared.posters.len()];
                            let queued = poster.try_send(Move { reader: me, session, seq, pos, token: token.clone(), slug: plan.slug.clone() });
                            if queued.is_err() { shared.stats.error("harness: POST queue full (the harness is the limit)"); }
                        }
                        seq += 1;
                        let (delay, burst_over) = next_delay(&mut rng, plan.hz, &mut burst);
                        next_move = now + delay;
                        if burst_over && rng.random_bool(plan.leave_chance.clamp(0.0, 1.0)) { break true; }
                    }
                    timer.as_mut().reset(next_move.min(plan.end_at));
                }
            }
        };
        shared.stats.open_streams.fetch_sub(1, Ordering::Relaxed);
        shared.sent[me].session.fetch_add(1, Ordering::AcqRel);
        drop(stream);
        if !leave {
            if Instant::now() < plan.end_at {
                shared.stats.error("stream ended by the server");
            }
            continue;
        }
        shared.stats.left.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..4000))).await;
    }
}

/// How long a reader who arrives now waits before its first move: as if it
/// had been reading for a long while already, so that readers move at `hz`
/// over any window of a run, its first seconds included.
///
/// Its reading model is run from twenty cycles back until it passes now.
/// Starting each reader at a random point of one average cycle is not the
/// same: a reader's next burst then comes sooner than its average, and
/// `idle-crowd` climbed to 0.13 Hz by its end where 0.1 was asked.
fn already_reading(rng: &mut StdRng, hz: f64, burst: &mut u32) -> Duration {
    if hz >= 10.0 {
        return Duration::from_secs_f64(rng.random_range(0.0..0.1));
    }
    let mut clock = -20.0 * AVERAGE_BURST / hz;
    loop {
        let (delay, _) = next_delay(rng, hz, burst);
        clock += delay.as_secs_f64();
        if clock >= 0.0 {
            return Duration::from_secs_f64(clock);
        }
    }
}

/// Moves in one burst of scrolling, on average (2 to 8).
const AVERAGE_BURST: f64 = 5.0;

/// The reading model's next pause: bursts of 2–8 moves at 10 Hz, then a
/// pause long enough that the average is `hz`.
fn next_delay(rng: &mut StdRng, hz: f64, burst: &mut u32) -> (Duration, bool) {
    if hz >= 10.0 {
        return (Duration::from_millis(100), false);
    }
    if *burst == 0 {
        *burst = rng.random_range(2..=8);
    }
    *burst -= 1;
    if *burst > 0 {
        return (Duration::from_millis(100), false);
    }
    let k = rng.random_range(2..=8) as f64;
    let pause = (k / hz - k * 0.1).max(0.1) * rng.random_range(0.5..1.5);
    (Duration::from_secs_f64(pause), true)
}
