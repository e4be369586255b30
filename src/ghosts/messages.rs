//! What the engine says to other instances in cluster mode: the messages
//! instances exchange over Redis pub/sub, as JSON (one message per changed
//! room per tick, a room's ghosts for an instance that begins hearing it,
//! heartbeats, totals), what the
//! manager hands the link to send, and [`OtherInstances`], the door the
//! engine asks them through. The link (`crate::cluster`) is that door's one
//! implementation; the manager's side of the messages is `remote.rs`.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::ghost::{Color, GhostId, Token};
use crate::blog::Slug;

/// A future the link answers in, boxed so the door can be a trait object.
pub type Later<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The engine's door to the other instances of a cluster. The engine tells
/// them what changed here, and asks for a resuming reader's ghost wherever
/// it is; each question is bounded in time by the link, and "nothing" is
/// always an answer the engine can go on with (a new ghost).
pub trait OtherInstances: Send + Sync + std::fmt::Debug {
    /// Hands the link a message to send. Never waits: a message lost to a
    /// full queue is corrected by the next snapshot (or, for a parked
    /// ghost, costs a resume elsewhere its id).
    fn tell(&self, message: Outbound);
    /// The ghost this token parked on any instance, taken (so it resumes
    /// once).
    fn parked(&self, token: &Token) -> Later<'_, Option<RemoteParked>>;
    /// Has `instance`, where this token's ghost is live in `slug`'s room,
    /// end its stream and hand the ghost over; the ghost, taken, or `None`
    /// if that instance does not answer in time or does not hold the token.
    fn release(
        &self,
        token: &Token,
        slug: &Slug,
        instance: String,
    ) -> Later<'_, Option<RemoteParked>>;
}

/// What the manager hands the cluster task; sent with `try_send` so the
/// manager never waits for Redis.
#[derive(Debug)]
pub enum Outbound {
    /// One room's own events of one tick.
    Room { slug: Slug, events: Vec<WireEvent> },
    /// A reader of this post arrived here: the instance must hear the
    /// post's channel (it may already).
    Serving { slug: Slug },
    /// A crowded room's readers here per block, changed (or asked for).
    Counts { slug: Slug, counts: Vec<u32> },
    /// Every ghost of this instance in one room: it is no longer crowded,
    /// or another instance asked.
    Snapshot { room: WireRoom },
    /// A new reader: `total` + 1 in Redis.
    NewReader { slug: Slug },
    /// Reader-seconds this instance's readers added to a post's heat map
    /// since the last such message, per block.
    Heat { slug: Slug, grown: Vec<f64> },
    /// A ghost whose stream ended, resumable for the resume window.
    Parked {
        token: Token,
        id: GhostId,
        color: Color,
        slug: Slug,
        pos: f64,
        counted: bool,
        /// Parked because this instance was asked to release it: tell that
        /// instance (named here) once it is in Redis.
        released_to: Option<String>,
    },
}

/// The largest cluster message parsed: a room of 100,000 ghosts is about
/// 6 MiB.
pub const MAX_MESSAGE: usize = 32 * 1024 * 1024;

/// A message from a channel, if it is one of ours. Anything far larger
/// than the biggest room's snapshot is not parsed at all. What the message
/// says is checked where it is applied (`remote.rs`).
pub fn decode(payload: &[u8]) -> Option<Wire> {
    if payload.len() > MAX_MESSAGE {
        tracing::warn!(
            "ignored a cluster message of {} bytes (more than {MAX_MESSAGE})",
            payload.len()
        );
        return None;
    }
    let wire = serde_json::from_slice::<Wire>(payload);
    if wire.is_err() {
        tracing::debug!("ignored a cluster message that is not ghostread's");
    }
    wire.ok()
}

/// A message between instances. Those about one post go on that post's
/// channel, heard only by the instances serving its readers; liveness goes
/// on one control channel every instance hears (see `crate::cluster`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wire {
    /// What changed in one room on one instance during one tick, in order.
    Room {
        instance: String,
        slug: String,
        events: Vec<WireEvent>,
    },
    /// "I have just begun hearing this post (or heard it again after Redis
    /// came back): tell me your ghosts in it." Every instance that serves
    /// the post answers with its `Snapshot`.
    Ask { instance: String, slug: String },
    /// Every ghost `instance` holds in one post, replacing what the others
    /// knew of its ghosts (or counts) there.
    Snapshot { instance: String, room: WireRoom },
    /// `instance`'s readers of a crowded post, per block, replacing what
    /// the others knew of its ghosts (or counts) there: a crowded room
    /// shares counts, at most once per crowd interval, not moves.
    Counts {
        instance: String,
        slug: String,
        counts: Vec<u32>,
    },
    /// "I am alive"; an instance not heard for a few seconds is gone.
    Heartbeat { instance: String },
    /// The instance is shutting down: its ghosts leave now.
    Bye { instance: String },
    /// A post's all-time count, as Redis holds it.
    Total { slug: String, total: u64 },
    /// "A reader resuming here holds this token; if its ghost is live on
    /// you (`to`), end its stream and park it in Redis": a takeover across
    /// instances (a phone that changed networks).
    Release {
        instance: String,
        to: String,
        token: String,
    },
    /// "The ghost of this token is parked in Redis for you (`to`)."
    Released {
        instance: String,
        to: String,
        token: String,
    },
}

impl Wire {
    /// The instance that sent it, if it says.
    pub fn sender(&self) -> Option<&str> {
        match self {
            Wire::Room { instance, .. }
            | Wire::Ask { instance, .. }
            | Wire::Snapshot { instance, .. }
            | Wire::Counts { instance, .. }
            | Wire::Heartbeat { instance }
            | Wire::Bye { instance }
            | Wire::Release { instance, .. }
            | Wire::Released { instance, .. } => Some(instance),
            Wire::Total { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum WireEvent {
    Join {
        id: String,
        color: String,
        pos: f64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        away: bool,
    },
    Leave {
        id: String,
    },
    /// Moves, each entry the ghost's newest position; `away` lists the
    /// ghosts among them that are away (the others are present).
    Moves {
        moves: Vec<(String, f64)>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        away: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireRoom {
    pub slug: String,
    /// `(id, color, pos)` of each ghost.
    pub ghosts: Vec<(String, String, f64)>,
    /// The ids of the ghosts that are away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub away: Vec<String>,
}

/// A ghost parked in Redis for its resume window, so a reader that comes
/// back through another instance keeps its id and colour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteParked {
    pub id: String,
    pub color: String,
    pub slug: String,
    pub pos: f64,
    /// Whether the reader is in `total` already; parked by an older
    /// version (which counted at once), it is.
    #[serde(default = "yes")]
    pub counted: bool,
}

fn yes() -> bool {
    true
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
                    away: false,
                },
                WireEvent::Moves {
                    moves: vec![("a".into(), 2.5)],
                    away: vec!["a".into()],
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
