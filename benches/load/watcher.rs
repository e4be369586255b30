//! What one simulated reader sees: its stream's events, parsed without
//! allocating, and the staleness of every other reader's move in them.

use std::hash::Hasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::shared::Marker;
use crate::shared::{FxHasher, Shared, RING};

/// The events a watcher tells apart.
#[derive(Clone, Copy)]
enum Kind {
    Hello,
    Snapshot,
    Moves,
    Density,
    Near,
    Other,
}

/// What a watcher saw last of ghost `ghost`, in its `last_seen`.
fn seen<'a>(last_seen: &'a mut Vec<u64>, shared: &Shared, ghost: usize) -> &'a mut u64 {
    let seat = shared.sent[ghost].seat.load(Ordering::Acquire) as usize;
    if seat >= last_seen.len() {
        last_seen.resize(seat + 1, u64::MAX);
    }
    &mut last_seen[seat]
}

/// Reads one stream's events and times the moves it sees.
pub(crate) struct Watcher {
    me: usize,
    /// This read's samples that crossed instances (cluster mode).
    cross: Vec<u64>,
    /// The newest move seen of each ghost of the room, by seat
    /// (`u64::MAX`: none yet).
    last_seen: Vec<u64>,
    event: Kind,
    samples: Vec<u64>,
    /// This post's marker, and how many of its steps this reader has seen
    /// (`None` until its first `density`, which is the room's state, not
    /// news).
    marker: Option<Arc<Marker>>,
    marker_seen: Option<u64>,
    crowd: Vec<u64>,
    /// This read's samples of neighbours' moves.
    near: Vec<u64>,
    /// The neighbours the last `near` named: only their moves since are
    /// deliveries (another ghost's were nobody's news to this reader).
    neighbours: Vec<usize>,
}

impl Watcher {
    pub(crate) fn new(me: usize, marker: Option<Arc<Marker>>) -> Watcher {
        Watcher {
            me,
            cross: Vec::new(),
            last_seen: Vec::new(),
            event: Kind::Other,
            samples: Vec::new(),
            marker,
            marker_seen: None,
            crowd: Vec::new(),
            near: Vec::new(),
            neighbours: Vec::new(),
        }
    }

    /// Consumes whole lines from `buf`; returns the token if `hello` came.
    pub(crate) fn consume(&mut self, shared: &Shared, buf: &mut Vec<u8>) -> Option<Arc<str>> {
        let mut token = None;
        let mut start = 0;
        let now = shared.nanos() / 1000;
        while let Some(end) = buf[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| start + p)
        {
            let line = &buf[start..end];
            start = end + 1;
            if let Some(name) = line.strip_prefix(b"event: ") {
                self.event = match name {
                    b"moves" => Kind::Moves,
                    b"snapshot" => Kind::Snapshot,
                    b"density" => Kind::Density,
                    b"near" => Kind::Near,
                    b"hello" => Kind::Hello,
                    _ => Kind::Other,
                };
            } else if let Some(data) = line.strip_prefix(b"data: ") {
                match self.event {
                    Kind::Moves => self.moves(shared, data, now),
                    Kind::Snapshot => self.snapshot(shared, data),
                    Kind::Density => self.density(shared, data, now),
                    Kind::Near => self.near(shared, data, now),
                    Kind::Hello => token = self.hello(shared, data),
                    Kind::Other => {}
                }
            }
        }
        buf.drain(..start);
        shared.stats.record(&self.samples);
        shared.stats.record_cross(&self.cross);
        shared.stats.record_crowd(&self.crowd);
        shared.stats.near.record(&self.near);
        self.near.clear();
        self.samples.clear();
        self.cross.clear();
        self.crowd.clear();
        token
    }

    fn hello(&mut self, shared: &Shared, data: &[u8]) -> Option<Arc<str>> {
        let hello: serde_json::Value = serde_json::from_slice(data).ok()?;
        let id = hello["id"].as_str()?.to_string();
        shared.learn_id(id_key(id.as_bytes()), self.me);
        hello["token"].as_str().map(Arc::from)
    }

    fn snapshot(&mut self, shared: &Shared, data: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Snapshot {
            ghosts: Vec<Entry>,
        }
        let Ok(snapshot) = serde_json::from_slice::<Snapshot>(data) else {
            return;
        };
        for entry in snapshot.ghosts {
            if let Some((ghost, seq)) = decode(shared, &entry) {
                *seen(&mut self.last_seen, shared, ghost) = seq;
            }
        }
    }

    /// Times the marker's newest step if this `density` is the first to
    /// show it.
    fn density(&mut self, shared: &Shared, data: &[u8], now: u64) {
        let Some(marker) = &self.marker else {
            return;
        };
        let Some(count) = count_at(data, shared.marker_block()) else {
            return;
        };
        let (steps, inside, at) = marker.newest().unwrap_or((0, false, 0));
        let shows_newest = inside == (count > 0);
        match self.marker_seen {
            // The room's state on joining, or on becoming crowded: where
            // this reader starts from, not a delivery.
            None => self.marker_seen = Some(if shows_newest { steps } else { 0 }),
            Some(seen) if shows_newest && steps > seen => {
                if now >= at && steps > 0 {
                    self.crowd.push(now - at);
                }
                self.marker_seen = Some(steps);
            }
            Some(_) => {}
        }
    }

    /// Times the neighbours' moves a `near` shows. A ghost that the last
    /// `near` did not name is where this reader starts from, not a
    /// delivery: it may have stood still for minutes, or moved while it was
    /// nobody's neighbour here.
    fn near(&mut self, shared: &Shared, data: &[u8], now: u64) {
        #[derive(serde::Deserialize)]
        struct Near {
            ghosts: Vec<Entry>,
        }
        let Ok(near) = serde_json::from_slice::<Near>(data) else {
            return;
        };
        let before = std::mem::take(&mut self.neighbours);
        for entry in near.ghosts {
            let Some((ghost, seq)) = decode(shared, &entry) else {
                continue;
            };
            if ghost == self.me {
                continue;
            }
            self.neighbours.push(ghost);
            let seen = seen(&mut self.last_seen, shared, ghost);
            if *seen != u64::MAX && seq > *seen && before.contains(&ghost) {
                let sent = &shared.sent[ghost];
                for s in (*seen + 1).max(seq.saturating_sub(RING as u64 - 1))..=seq {
                    if let Some(at) = sent.sent_at(s).filter(|at| now >= *at) {
                        self.near.push(now - at);
                    }
                }
            }
            if *seen == u64::MAX || seq > *seen {
                *seen = seq;
            }
        }
    }

    /// Times the moves in a `moves` event seen `now` (µs since the start).
    fn moves(&mut self, shared: &Shared, data: &[u8], now: u64) {
        for (id, residue) in move_entries(data) {
            let Some(ghost) = shared.reader_of(id_key(id)) else {
                continue;
            };
            let Some(seq) = decode_seq(shared, ghost, residue) else {
                continue;
            };
            if ghost == self.me {
                continue;
            }
            let seen = seen(&mut self.last_seen, shared, ghost);
            let from = if *seen == u64::MAX { seq } else { *seen + 1 };
            let sent = &shared.sent[ghost];
            let instances = shared.addrs.len();
            let crossed = instances > 1 && ghost % instances != self.me % instances;
            for s in from.max(seq.saturating_sub(RING as u64 - 1))..=seq {
                let Some(at) = sent.sent_at(s).filter(|at| now >= *at) else {
                    continue;
                };
                self.samples.push(now - at);
                if crossed {
                    self.cross.push(now - at);
                }
            }
            if *seen == u64::MAX || seq > *seen {
                *seen = seq;
            }
        }
    }
}

/// The `(id, thousandths)` pairs of a `moves` event's data, read straight
/// through without searching or allocating: the harness reads hundreds of
/// thousands a second and must not become the thing it measures. Expects the
/// server's own compact JSON, `{"moves":[{"id":"…","pos":1.5},…]}`, and stops
/// at anything else.
fn move_entries(data: &[u8]) -> impl Iterator<Item = (&[u8], u64)> {
    let mut rest = data.strip_prefix(b"{\"moves\":[").unwrap_or(b"");
    std::iter::from_fn(move || {
        let entry = rest.strip_prefix(b"{\"id\":\"")?;
        let quote = entry.iter().position(|b| *b == b'"')?;
        let (id, after) = entry.split_at(quote);
        let number = after.strip_prefix(b"\",\"pos\":")?;
        let end = number.iter().position(|b| *b == b'}')?;
        let thousandths = thousandths(std::str::from_utf8(&number[..end]).ok()?)?;
        rest = number[end + 1..].strip_prefix(b",").unwrap_or(b"");
        Some((id, thousandths))
    })
}

/// `counts[block]` of a `density` event's data, read straight through: it
/// expects the server's own compact JSON, `{"counts":[0,3,1],…}`.
fn count_at(data: &[u8], block: u32) -> Option<u64> {
    let counts = data.strip_prefix(b"{\"counts\":[")?;
    let end = counts.iter().position(|b| *b == b']')?;
    let field = counts[..end].split(|b| *b == b',').nth(block as usize)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The thousandths of a position as the server writes it (`12.37` → 370),
/// read from its digits; anything unusual goes through a float.
fn thousandths(number: &str) -> Option<u64> {
    let fraction = number.split_once('.').map_or("", |(_, f)| f);
    if fraction.len() <= 3 && fraction.bytes().all(|b| b.is_ascii_digit()) {
        let digits = fraction
            .bytes()
            .fold(0, |n, b| n * 10 + u64::from(b - b'0'));
        return Some(digits * 10u64.pow(3 - fraction.len() as u32));
    }
    let pos: f64 = number.parse().ok()?;
    Some(((pos - pos.floor()) * 1000.0).round() as u64 % 1000)
}

/// A ghost id as a number: its bytes when it has at most 8 (the server's
/// have 6), else a hash of them (63 bits: a clash among 100,000 ids is a one
/// in a billion chance). No string to hash or compare per delivery.
fn id_key(id: &[u8]) -> u64 {
    if id.len() <= 8 {
        let mut word = [0u8; 8];
        word[..id.len()].copy_from_slice(id);
        return u64::from_le_bytes(word);
    }
    let mut hasher = FxHasher::default();
    hasher.write(id);
    hasher.finish() | 1 << 63
}

#[derive(serde::Deserialize)]
struct Entry {
    id: String,
    pos: f64,
}

/// Which reader and which of its moves a position is.
fn decode(shared: &Shared, entry: &Entry) -> Option<(usize, u64)> {
    let ghost = shared.reader_of(id_key(entry.id.as_bytes()))?;
    let residue = ((entry.pos - entry.pos.floor()) * 1000.0).round() as u64 % 1000;
    Some((ghost, decode_seq(shared, ghost, residue)?))
}

/// Which of ghost `ghost`'s moves put it at a position with these
/// thousandths: the newest one sent whose sequence number matches them.
fn decode_seq(shared: &Shared, ghost: usize, residue: u64) -> Option<u64> {
    let count = shared.sent.get(ghost)?.count.load(Ordering::Acquire);
    let last = count.checked_sub(1)?;
    let back = (last + 1000 - residue) % 1000;
    last.checked_sub(back)
}
