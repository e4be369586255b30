//! What every simulated reader of one run shares: the send times of each
//! reader's moves (what its watchers time deliveries against), the ghost
//! ids, the seats in each room, the POST queues and the HTTP/2 pool.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::stats::Stats;

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
    /// The share of readers (0 to 1) that long-poll, as behind a proxy that
    /// buffers whole responses.
    pub(crate) poll_share: f64,
    /// The markers of the posts that have one (see `marker.rs`).
    pub(crate) markers: HashMap<Arc<str>, Arc<Marker>>,
}

impl Shared {
    /// Room for `readers` readers; `posters` keep-alive POST connections;
    /// event streams over HTTP/2 with `h2_streams` per connection, if set.
    /// The moves for each POST connection come out of its receiver, which
    /// the caller hands to `transport::poster`.
    pub fn new(
        addrs: Vec<SocketAddr>,
        blocks: u32,
        slugs: &[String],
        poll_share: f64,
        readers: usize,
        posters: usize,
        h2_streams: Option<usize>,
    ) -> (Arc<Shared>, Vec<mpsc::Receiver<Move>>) {
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
            poll_share,
            markers: slugs
                .iter()
                .enumerate()
                .filter(|(n, _)| sampled(*n))
                .map(|(_, slug)| (Arc::from(slug.as_str()), Arc::new(Marker::new())))
                .collect(),
            h2: h2_streams.map(|per| H2Pool {
                per,
                conns: tokio::sync::Mutex::new(HashMap::new()),
            }),
        });
        (shared, receivers)
    }

    /// The block kept for markers: the last. Simulated readers never enter
    /// it, so a marker's steps are all that change its count.
    pub(crate) fn marker_block(&self) -> u32 {
        self.blocks.saturating_sub(1)
    }

    /// The blocks simulated readers read in: all but the marker block.
    pub(crate) fn reading_blocks(&self) -> u32 {
        self.marker_block().max(1)
    }

    /// Whether reader `n` long-polls: spread evenly over the readers.
    pub(crate) fn polls(&self, n: usize) -> bool {
        let share = self.poll_share.clamp(0.0, 1.0);
        ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
    }

    /// The instance reader (or poster) `n` talks to.
    pub(crate) fn addr(&self, n: usize) -> SocketAddr {
        self.addrs[n % self.addrs.len()]
    }

    /// Gives reader `me` the next seat in the room of `slug`: 0, 1, 2… in
    /// the order readers of that post arrived, so a watcher keeps what it
    /// saw of each other reader in a small dense array, not a hash map.
    pub(crate) fn seat(&self, me: usize, slug: &Arc<str>) {
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

/// Shared HTTP/2 connections, `per` streams each, as browsers share one
/// connection per origin across tabs. A connection is opened when its
/// first stream needs it, never ahead (a server drops a connection that
/// sends no request within its header timeout, as ghostread does), and
/// opened again when the server closed it (an idle one, after its last
/// stream ended), as a browser does.
pub struct H2Pool {
    pub(crate) per: usize,
    pub(crate) conns: tokio::sync::Mutex<HashMap<usize, SendRequest<Empty<Bytes>>>>,
}

/// FxHash, as rustc uses it. The keys are the server's random ids and
/// reader numbers, so SipHash's guard against chosen keys buys nothing here,
/// and it cost a watcher a fifth of its time.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

pub(crate) type Fx = BuildHasherDefault<FxHasher>;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

// --- Markers (see `marker.rs`) ---------------------------------------------

/// Steps remembered; a reader further behind than this many seconds of
/// steps leaves them untimed.
const STEPS: usize = 16;
/// One post in this many gets a marker (and the first always does): enough
/// rooms to sample every kind of room, few enough that their steps are a
/// small part of what the server sends.
const ONE_IN: usize = 10;

/// Whether post number `n` (in the target's order) gets a marker.
pub fn sampled(n: usize) -> bool {
    n.is_multiple_of(ONE_IN)
}
/// One post's marker: how many steps it took, and when.
pub struct Marker {
    steps: AtomicU64,
    /// Step `k` at `k % STEPS`: µs since the run's start. Even steps go into
    /// the marker block, odd ones out of it.
    times: [AtomicU64; STEPS],
}

impl Marker {
    pub fn new() -> Marker {
        Marker {
            steps: AtomicU64::new(0),
            times: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The newest step: how many there have been, whether it put the marker
    /// in its block, and when (µs since the start). `None` before the first.
    pub fn newest(&self) -> Option<(u64, bool, u64)> {
        let steps = self.steps.load(Ordering::Acquire);
        let k = steps.checked_sub(1)?;
        let at = self.times[k as usize % STEPS].load(Ordering::Acquire);
        Some((steps, k.is_multiple_of(2), at))
    }

    /// Only the marker's own task steps, so a plain store is enough.
    pub(crate) fn step(&self, micros: u64) {
        let k = self.steps.load(Ordering::Relaxed);
        self.times[k as usize % STEPS].store(micros, Ordering::Release);
        self.steps.store(k + 1, Ordering::Release);
    }
}
