//! What the engine says to other instances in cluster mode: the messages
//! instances exchange over Redis pub/sub, as JSON (one message per changed
//! room per tick, heartbeats, snapshots for re-syncing, totals), and what the
//! manager hands the link to send. The link (`crate::cluster`) carries them;
//! the manager's side of them is `remote.rs`.

use serde::{Deserialize, Serialize};

use super::ghost::{Color, GhostId, Token};
use crate::blog::Slug;

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

/// Every instance publishes and listens on this one channel.
pub const CHANNEL: &str = "ghostread:cluster";

/// A message on the channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wire {
    /// What changed in one room on one instance during one tick, in order.
    Room {
        instance: String,
        slug: String,
        events: Vec<WireEvent>,
    },
    /// Every ghost an instance holds, so the others can correct their view
    /// (after Redis came back, and every few seconds against lost messages).
    Snapshot {
        instance: String,
        rooms: Vec<WireRoom>,
    },
    /// "I am alive"; an instance not heard for a few seconds is gone.
    Heartbeat { instance: String },
    /// "I have just (re)joined": every other instance answers with a
    /// snapshot, so a newcomer sees every ghost at once.
    Hello { instance: String },
    /// The instance is shutting down: its ghosts leave now.
    Bye { instance: String },
    /// A post's all-time count, as Redis holds it.
    Total { slug: String, total: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum WireEvent {
    Join { id: String, color: String, pos: f64 },
    Leave { id: String },
    Moves { moves: Vec<(String, f64)> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireRoom {
    pub slug: String,
    /// `(id, color, pos)` of each ghost.
    pub ghosts: Vec<(String, String, f64)>,
}

/// A ghost parked in Redis for its resume window, so a reader that comes
/// back through another instance keeps its id and colour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteParked {
    pub id: String,
    pub color: String,
    pub slug: String,
    pub pos: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let room = Wire::Room {
            instance: "i1".into(),
            slug: "p".into(),
            events: vec![
                WireEvent::Join {
                    id: "a".into(),
                    color: "c".into(),
                    pos: 0.0,
                },
                WireEvent::Moves {
                    moves: vec![("a".into(), 2.5)],
                },
                WireEvent::Leave { id: "a".into() },
            ],
        };
        let text = serde_json::to_string(&room).expect("serialize");
        assert!(text.starts_with("{\"kind\":\"room\""), "{text}");
        assert_eq!(serde_json::from_str::<Wire>(&text).expect("parse"), room);
        assert!(serde_json::from_str::<Wire>("{\"kind\":\"nonsense\"}").is_err());
    }
}
