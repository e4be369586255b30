//! One simulated reader: a real event stream and real position POSTs (see
//! `transport`), moved by a reading model. Every position encodes its move's
//! sequence number in its thousandths, so its `watcher` can tell which move
//! another reader sees and how late.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::stats::Stats;
use crate::transport::{open, poster, H2Pool};
use crate::watcher::{Fx, Watcher};

/// Sends remembered per ghost: 6.4 s of a reader moving at 10 Hz. A
/// watcher further behind than that on one ghost leaves those moves untimed
/// (each entry says which move it holds), rather than timing them wrong.
pub(crate) const RING: usize = 64;

/// Locks over the ghost ids, each over a part of them.
const ID_SHARDS: usize = 64;

/// The low bits of a move's sequence number kept beside its send time.
const SEQ_BITS: u32 = 24;

/// One ghost's moves, and its seat: all a watcher reads of another reader,
/// inline and together, so that a delivery costs one or two cache misses
/// instead of four dependent ones (a boxed ring of 1,024 sends per reader
/// was 147 MiB at 18,000 readers, and the harness's costliest line).
#[repr(align(64))]
pub struct Sent {
    pub(crate) count: AtomicU64,
    /// Which stream of this reader is open; moves queued by an earlier one
    /// are dropped, as a closed tab sends nothing.
    pub(crate) session: AtomicU64,
    /// This reader's seat in its post's room (see [`Shared::seat`]).
    pub(crate) seat: AtomicU32,
    /// Move `seq` is at `seq % RING`: its send time in µs since the start,
    /// above the low [`SEQ_BITS`] of `seq`.
    times: [AtomicU64; RING],
}

impl Sent {
    fn new() -> Sent {
        Sent {
            count: AtomicU64::new(0),
            session: AtomicU64::new(0),
            seat: AtomicU32::new(0),
            times: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Move `seq` is being sent now (`micros` since the start).
    pub(crate) fn sending(&self, seq: u64, micros: u64) {
        let stamp = micros.max(1) << SEQ_BITS | seq & ((1 << SEQ_BITS) - 1);
        self.times[seq as usize % RING].store(stamp, Ordering::Release);
    }

    /// When move `seq` was sent, if it is still remembered.
    pub(crate) fn sent_at(&self, seq: u64) -> Option<u64> {
        let stamp = self.times[seq as usize % RING].load(Ordering::Acquire);
        let remembered = stamp != 0 && (stamp ^ seq) & ((1 << SEQ_BITS) - 1) == 0;
        remembered.then_some(stamp >> SEQ_BITS)
    }
}

/// A move for the POST pool.
pub struct Move {
    pub(crate) reader: usize,
    pub(crate) session: u64,
    pub(crate) seq: u64,
    pub(crate) pos: f64,
    pub(crate) token: Arc<str>,
    pub(crate) slug: Arc<str>,
}

/// Everything the readers of one run share.
pub struct Shared {
    pub start: std::time::Instant,
    /// The instances; reader `n` uses `addrs[n % len]`, so in cluster mode
    /// the readers of a post are spread over every instance.
    pub addrs: Vec<SocketAddr>,
    pub blocks: u32,
    pub stats: Stats,
    pub(crate) sent: Vec<Sent>,
    next_seat: parking_lot::Mutex<HashMap<Arc<str>, u32>>,
    /// Ghost ids (see `watcher::id_key`) to the readers they belong to. In
    /// shards, so the two harness threads rarely take the same lock's
    /// cache line from each other: one lock for all was a sixth of the
    /// watchers' time at 150,000 frames a second.
    ids: Vec<RwLock<HashMap<u64, usize, Fx>>>,
    pub(crate) posters: Vec<mpsc::Sender<Move>>,
    pub(crate) h2: Option<H2Pool>,
}

impl Shared {
    /// Room for `readers` readers; `posters` keep-alive POST connections;
    /// event streams over HTTP/2 with `h2_streams` per connection, if set.
    pub fn new(
        addrs: Vec<SocketAddr>,
        blocks: u32,
        readers: usize,
        posters: usize,
        h2_streams: Option<usize>,
    ) -> Arc<Shared> {
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..posters.max(1) {
            let (tx, rx) = mpsc::channel(4096);
            senders.push(tx);
            receivers.push(rx);
        }
        let shared = Arc::new(Shared {
            start: std::time::Instant::now(),
            addrs,
            blocks,
            stats: Stats::default(),
            sent: (0..readers).map(|_| Sent::new()).collect(),
            next_seat: parking_lot::Mutex::new(HashMap::new()),
            ids: (0..ID_SHARDS).map(|_| RwLock::default()).collect(),
            posters: senders,
            h2: h2_streams.map(|per| H2Pool {
                per,
                conns: tokio::sync::Mutex::new(Vec::new()),
            }),
        });
        for (n, rx) in receivers.into_iter().enumerate() {
            tokio::spawn(poster(shared.clone(), n, rx));
        }
        shared
    }

    /// The instance reader (or poster) `n` talks to.
    pub(crate) fn addr(&self, n: usize) -> SocketAddr {
        self.addrs[n % self.addrs.len()]
    }

    /// Gives reader `me` the next seat in the room of `slug`: 0, 1, 2… in
    /// the order readers of that post arrived, so a watcher keeps what it
    /// saw of each other reader in a small dense array, not a hash map.
    fn seat(&self, me: usize, slug: &Arc<str>) {
        let mut next = self.next_seat.lock();
        let seat = next.entry(slug.clone()).or_insert(0);
        self.sent[me].seat.store(*seat, Ordering::Release);
        *seat += 1;
    }

    /// The reader whose ghost has this id key (see `watcher::id_key`).
    pub(crate) fn reader_of(&self, key: u64) -> Option<usize> {
        self.ids[key as usize % ID_SHARDS].read().get(&key).copied()
    }

    /// Reader `me`'s ghost has this id key.
    pub(crate) fn learn_id(&self, key: u64, me: usize) {
        self.ids[key as usize % ID_SHARDS].write().insert(key, me);
    }

    pub(crate) fn nanos(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

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
    let mut block = rng.random_range(0..shared.blocks.max(1)) as f64;
    while Instant::now() < plan.end_at {
        let Some((mut stream, mut buf)) = open(&shared, me, &plan.slug, token.as_deref()).await
        else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        shared.stats.open_streams.fetch_add(1, Ordering::Relaxed);
        let session = shared.sent[me].session.fetch_add(1, Ordering::AcqRel) + 1;
        let mut watcher = Watcher::new(me);
        // The first bytes may have come with the response head.
        shared
            .stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        if let Some(new_token) = watcher.consume(&shared, &mut buf) {
            token = Some(new_token);
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
                        block = (block + rng.random_range(0.05..0.4)) % f64::from(shared.blocks.max(1));
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
