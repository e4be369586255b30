//! The actor's messages: what the handle sends the manager, what streams
//! tell it, and what it answers; and the rules it runs by. Shared by
//! `handle.rs` (the sender) and `manager.rs` (the receiver), so neither
//! imports the other's internals.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::crowd::CrowdRule;
use super::ghost::{GhostId, Token};
use super::messages::{RemoteParked, Wire};
use super::near::NearView;
use crate::blog::Slug;
use crate::config::Config;

/// The manager's rules: the engine's share of the config.
#[derive(Clone, Debug)]
pub struct Settings {
    pub tick: Duration,
    pub resume_window: Duration,
    pub moves_per_sec: u32,
    pub max_readers: usize,
    pub max_readers_per_post: usize,
    pub max_streams_per_address: usize,
    pub data_dir: PathBuf,
    pub save_interval: Duration,
    /// A new reader counts in `total` at its first position, or once its
    /// stream has been held this long; zero counts it when it joins.
    pub count_after: Duration,
    /// Told to every page in `hello`: how long without scrolling makes a
    /// reader away.
    pub away_after: Duration,
    /// Told to every page in `hello`: how long a hidden tab keeps its
    /// stream. Also the longest a ghost is held (away) without a stream.
    pub let_go: Duration,
    /// Whether to keep the reading heat map (`--no-heat-map` turns it off,
    /// to measure what it costs).
    pub heat_map: bool,
    /// When a room sends its density instead of per-ghost events.
    pub crowd: CrowdRule,
}

impl Settings {
    /// The engine's settings, as the config declares them.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            tick: config.tick,
            resume_window: config.resume_window,
            moves_per_sec: config.moves_per_sec,
            max_readers: config.max_readers,
            max_readers_per_post: config.max_readers_per_post,
            max_streams_per_address: config.max_streams_per_address,
            data_dir: config.data_dir.clone(),
            save_interval: config.save_interval,
            count_after: config.count_after,
            away_after: config.away_after,
            let_go: config.let_go,
            heat_map: config.heat_map,
            crowd: CrowdRule {
                above: config.crowd,
                interval: config.crowd_interval,
            },
        }
    }
}

/// A reader asking for a stream.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub slug: Slug,
    /// The post's block count, for `hello`.
    pub blocks: u32,
    /// The token of a ghost to resume or take over.
    pub resume: Option<Token>,
    /// Where the stream comes from, for the per-address limit. Held only
    /// while the stream is open.
    pub peer: IpAddr,
    /// An invisible reader: it sees the room, and nobody sees it (no
    /// member, no `join`, not in `now`).
    pub watch: bool,
}

/// What other instances know of a resuming reader's ghost (cluster mode),
/// as the handle found out before it asked the manager.
#[derive(Clone, Debug)]
pub(super) enum Elsewhere {
    /// Nothing: alone, not resuming, or nobody else has it.
    Nothing,
    /// Not parked elsewhere: if the ghost is live on another instance, the
    /// manager says so (`Refusal::LiveElsewhere`), for the handle to have
    /// that instance release it first.
    Ask,
    /// Parked by another instance: resumed here with its id and colour.
    Parked(RemoteParked),
    /// Released for this join by `by` (a takeover across instances): that
    /// instance's member with this id is this instance's ghost now.
    Released { by: String, parked: RemoteParked },
}

/// Where a join's answer goes.
pub(super) type JoinAnswer = oneshot::Sender<Result<Joined, Refusal>>;

pub(super) enum Command {
    Join {
        request: JoinRequest,
        elsewhere: Elsewhere,
        respond_to: JoinAnswer,
    },
    Move {
        ghost: GhostId,
        pos: f64,
        /// `Some`: the reader is away, or back.
        away: Option<bool>,
        /// Keep the ghost (away) when its stream closes, for `let_go`.
        hold: bool,
        /// Told once the manager has applied it (a hold must be in place
        /// before the page closes its stream, whose end comes by another
        /// queue that the manager reads first).
        applied: Option<oneshot::Sender<()>>,
    },
    /// The reader's page is gone: its ghost leaves now, its stream ends.
    Goodbye {
        ghost: GhostId,
    },
    Shutdown {
        respond_to: oneshot::Sender<()>,
    },
    /// A message from another instance (cluster mode).
    Remote(Wire),
    /// An instance stopped sending heartbeats: its ghosts are gone.
    InstanceGone(String),
    /// The heat map of these posts as this instance knows it.
    Heat {
        slugs: Vec<String>,
        respond_to: oneshot::Sender<crate::store::Heat>,
    },
    /// Another instance has just begun hearing this post: tell it this
    /// instance's ghosts there (or, crowded, its counts).
    Announce(Slug),
    /// The posts with a reader (a ghost or a watcher) on this instance.
    Serving {
        respond_to: oneshot::Sender<Vec<Slug>>,
    },
    /// This instance no longer hears the post: the others' ghosts in it
    /// leave here.
    Forget(Slug),
    /// This instance asked the post's instances for their ghosts in it:
    /// any instance's ghosts there that no answer confirms within a few
    /// seconds leave (it left the post while this instance was not
    /// hearing).
    Asked(Slug),
    /// Tests only: the manager panics, as a bug would make it.
    #[cfg(test)]
    Crash,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Join { .. } => "Join",
            Command::Move { .. } => "Move",
            Command::Goodbye { .. } => "Goodbye",
            Command::Shutdown { .. } => "Shutdown",
            Command::Remote(_) => "Remote",
            Command::InstanceGone(_) => "InstanceGone",
            Command::Announce(_) => "Announce",
            Command::Serving { .. } => "Serving",
            Command::Forget(_) => "Forget",
            Command::Asked(_) => "Asked",
            Command::Heat { .. } => "Heat",
            #[cfg(test)]
            Command::Crash => "Crash",
        })
    }
}

/// What a stream tells the manager. Sent on an unbounded channel because a
/// stream's `Drop` cannot wait; each stream sends at most one `Left` and has
/// at most one `Lagged` outstanding, so the channel never holds more than
/// two messages per open stream.
pub enum StreamEvent {
    Left {
        ghost: GhostId,
        serial: u64,
    },
    Lagged {
        ghost: GhostId,
        serial: u64,
        respond_to: oneshot::Sender<Resync>,
    },
}

/// A fresh start for a reader that fell behind: the room now, and a receiver
/// that gets exactly the frames published after it.
pub struct Resync {
    pub snapshot: Bytes,
    pub events: broadcast::Receiver<Bytes>,
}

/// The manager's answer to a join: everything a stream needs but the way
/// back to the manager, which the handle adds (see [`StreamParts`]).
pub(super) struct Joined {
    pub ghost: GhostId,
    pub token: Token,
    pub serial: u64,
    pub hello: Bytes,
    pub state: Bytes,
    pub events: broadcast::Receiver<Bytes>,
    pub end: oneshot::Receiver<()>,
    pub near: Option<Arc<NearView>>,
}

/// What a stream needs to start: its first bytes (`retry` and `hello`, its
/// own; then the room's state, shared by every reader who joined or fell
/// behind in the same tick), the room's frames from then on, the signal
/// that ends it, and the channel its leave goes to.
pub struct StreamParts {
    pub ghost: GhostId,
    /// The reader's secret, as its `hello` gave it.
    pub token: Token,
    /// Which stream of this ghost this is; a newer one (a takeover) has a
    /// higher serial, so the manager ignores this one's leave.
    pub serial: u64,
    pub hello: Bytes,
    pub state: Bytes,
    pub events: broadcast::Receiver<Bytes>,
    /// Resolves when the manager ends the stream (takeover, shutdown).
    pub end: oneshot::Receiver<()>,
    /// In a crowded room, where the stream finds the readers nearest its
    /// reader (`None` for an invisible reader).
    pub near: Option<Arc<NearView>>,
    pub to_manager: mpsc::UnboundedSender<StreamEvent>,
}

/// A reader the next tick answers.
pub(super) enum Waiting {
    /// A newcomer (or a takeover): its own `hello` is ready, the room's
    /// state and its subscription come at the tick.
    Joined {
        respond_to: JoinAnswer,
        ghost: GhostId,
        token: Token,
        serial: u64,
        hello: Bytes,
        end: oneshot::Receiver<()>,
    },
    /// A reader that fell behind.
    Resync { respond_to: oneshot::Sender<Resync> },
}

/// Why a stream was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinRefused {
    ServerFull,
    PostFull,
    AddressFull,
    /// The engine has stopped (the server is shutting down).
    Stopped,
}

/// The manager's answer to a join it did not book.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Refused(JoinRefused),
    /// The token's ghost is live on this other instance (cluster mode;
    /// only when the join asked, with `Elsewhere::Ask`).
    LiveElsewhere(String),
}

/// The engine has stopped (the server is shutting down, or the manager
/// failed): the one name for it, whoever notices.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped;
