//! Cluster mode: several instances share readers through Redis. Each
//! instance's manager still owns its own readers; this task carries the
//! manager's per-tick room updates to Redis pub/sub and the other
//! instances' updates back, keeps `total` in one Redis hash, parks ghosts in
//! Redis for resumes on another instance, and finds instances that died.

mod link;
pub mod wire;

pub use link::Cluster;

use crate::blog::Slug;
use crate::ghosts::{Color, GhostId, Token};
use wire::WireEvent;

/// Room updates waiting for Redis: about a second of a busy instance's
/// ticks. If Redis falls further behind, updates are dropped and the next
/// snapshot (every 10 s, and on reconnect) corrects the other instances.
pub const OUTBOUND_CAPACITY: usize = 8192;

/// What the manager hands the cluster task; sent with `try_send` so the
/// manager never waits for Redis.
#[derive(Debug)]
pub enum Outbound {
    /// One room's own events of one tick.
    Room { slug: Slug, events: Vec<WireEvent> },
    /// A new reader: `total` + 1 in Redis.
    NewReader { slug: Slug },
    /// A ghost whose stream ended, resumable for the resume window.
    Parked {
        token: Token,
        id: GhostId,
        color: Color,
        slug: Slug,
        pos: f64,
    },
}
