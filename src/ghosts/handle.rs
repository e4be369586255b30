//! The only way into the manager: a cheap, cloneable handle whose methods
//! send commands and await the answers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::ghost::{GhostId, Token};
use super::manager::Manager;
use super::published::{Census, Counts, Directory, Seat};
use crate::blog::Slug;
use crate::cluster::wire::{RemoteParked, Wire, WireRoom};
use crate::cluster::Outbound;
use crate::metrics::Metrics;
use crate::sse::StreamParts;
use crate::store::Totals;

/// Commands waiting for the manager. A command costs the manager well under
/// a microsecond, so 4,096 is a few milliseconds of the heaviest load: enough
/// to ride out a burst, small enough that a full queue means overload and
/// slows the senders (backpressure) instead of growing memory.
pub const COMMAND_CAPACITY: usize = 4096;

/// The manager's rules, from the config.
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
    /// In cluster mode, where this instance's own events go to be shared.
    pub cluster: Option<mpsc::Sender<Outbound>>,
}

/// A reader asking for a stream.
#[derive(Debug)]
pub struct JoinRequest {
    pub slug: Slug,
    /// The post's block count, for `hello`.
    pub blocks: u32,
    /// The token of a ghost to resume or take over.
    pub resume: Option<Token>,
    /// Where the stream comes from, for the per-address limit. Held only
    /// while the stream is open.
    pub peer: IpAddr,
    /// In cluster mode, the ghost this token parked on another instance.
    pub remote_parked: Option<RemoteParked>,
}

pub(super) enum Command {
    Join {
        request: JoinRequest,
        respond_to: oneshot::Sender<Result<Joined, JoinRefused>>,
    },
    Move {
        ghost: GhostId,
        pos: f64,
    },
    Shutdown {
        respond_to: oneshot::Sender<()>,
    },
    /// A message from another instance (cluster mode).
    Remote(Wire),
    /// An instance stopped sending heartbeats: its ghosts are gone.
    InstanceGone(String),
    /// This instance's own ghosts, for a cluster snapshot.
    LocalSnapshot {
        respond_to: oneshot::Sender<Vec<WireRoom>>,
    },
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

pub(super) struct Joined {
    pub ghost: GhostId,
    pub serial: u64,
    pub first: Bytes,
    pub events: broadcast::Receiver<Bytes>,
    pub end: oneshot::Receiver<()>,
}

/// Why a stream was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinRefused {
    ServerFull,
    PostFull,
    AddressFull,
    Stopped,
}

/// The manager has stopped (the server is shutting down).
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped;

/// The handle. Clones share one manager.
#[derive(Clone, Debug)]
pub struct Ghosts {
    commands: mpsc::Sender<Command>,
    stream_events: mpsc::UnboundedSender<StreamEvent>,
    directory: Arc<Directory>,
    census: Arc<Census>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Join { .. } => "Join",
            Command::Move { .. } => "Move",
            Command::Shutdown { .. } => "Shutdown",
            Command::Remote(_) => "Remote",
            Command::InstanceGone(_) => "InstanceGone",
            Command::LocalSnapshot { .. } => "LocalSnapshot",
        })
    }
}

impl Ghosts {
    /// Starts the manager with the all-time counts loaded from disk.
    pub fn spawn(settings: Settings, totals: Totals, metrics: Arc<Metrics>) -> Ghosts {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (stream_events, stream_event_rx) = mpsc::unbounded_channel();
        let directory = Arc::new(Directory::default());
        let census = Arc::new(Census::default());
        let manager = Manager::new(
            settings,
            totals,
            command_rx,
            stream_event_rx,
            directory.clone(),
            census.clone(),
            metrics.clone(),
        );
        tokio::spawn(manager.run());
        Ghosts {
            commands,
            stream_events,
            directory,
            census,
            metrics,
        }
    }

    /// Opens a reader's stream, resuming the ghost of `request.resume` when
    /// it may be.
    pub async fn join(&self, request: JoinRequest) -> Result<StreamParts, JoinRefused> {
        let (respond_to, answer) = oneshot::channel();
        let command = Command::Join {
            request,
            respond_to,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| JoinRefused::Stopped)?;
        let joined = answer.await.map_err(|_| JoinRefused::Stopped)??;
        Ok(StreamParts {
            ghost: joined.ghost,
            serial: joined.serial,
            first: joined.first,
            events: joined.events,
            end: joined.end,
            to_manager: self.stream_events.clone(),
        })
    }

    /// The live ghost holding `token`, if any (a fast read; see `published`).
    pub fn seat(&self, token: &Token) -> Option<Arc<Seat>> {
        self.directory.get(token)
    }

    /// Moves a ghost. Waits only when the manager's queue is full.
    pub async fn move_to(&self, ghost: GhostId, pos: f64) -> Result<(), Stopped> {
        self.commands
            .send(Command::Move { ghost, pos })
            .await
            .map_err(|_| Stopped)
    }

    /// A post's counts as of the last tick.
    pub fn counts(&self, slug: &str) -> Counts {
        self.census.get(slug)
    }

    /// Hands the manager a message from another instance.
    pub async fn remote(&self, wire: Wire) -> Result<(), Stopped> {
        self.commands
            .send(Command::Remote(wire))
            .await
            .map_err(|_| Stopped)
    }

    /// Removes every ghost of an instance that went silent.
    pub async fn instance_gone(&self, instance: String) -> Result<(), Stopped> {
        self.commands
            .send(Command::InstanceGone(instance))
            .await
            .map_err(|_| Stopped)
    }

    /// This instance's own ghosts, room by room.
    pub async fn local_snapshot(&self) -> Result<Vec<WireRoom>, Stopped> {
        let (respond_to, answer) = oneshot::channel();
        self.commands
            .send(Command::LocalSnapshot { respond_to })
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Ends every stream, saves the counts and stops the manager.
    pub async fn shutdown(&self) {
        let (respond_to, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { respond_to })
            .await
            .is_ok()
        {
            // An error means the manager already stopped, which is the goal.
            let _ = done.await;
        }
    }

    /// Commands waiting, for `/metrics`.
    pub fn queue_depth(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
