//! The only way into the manager: a cheap, cloneable handle whose methods
//! send commands and await the answers.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::census::{Census, Counts};
use super::commands::{
    Command, JoinRefused, JoinRequest, Settings, Stopped, StreamEvent, StreamParts,
};
use super::directory::{Directory, Seat};
use super::ghost::{GhostId, Token};
use super::manager::Manager;
use super::messages::{Wire, WireRoom};
use crate::metrics::Metrics;
use crate::store::Totals;

/// Commands waiting for the manager. A command costs the manager well under
/// a microsecond, so 4,096 is a few milliseconds of the heaviest load: enough
/// to ride out a burst, small enough that a full queue means overload and
/// slows the senders (backpressure) instead of growing memory.
pub const COMMAND_CAPACITY: usize = 4096;

/// The handle. Clones share one manager.
#[derive(Clone, Debug)]
pub struct Ghosts {
    commands: mpsc::Sender<Command>,
    stream_events: mpsc::UnboundedSender<StreamEvent>,
    directory: Arc<Directory>,
    census: Arc<Census>,
    metrics: Arc<Metrics>,
    /// `true` while the manager task runs; `false` once it ended, for
    /// whatever reason (shutdown, or a panic nothing else would notice).
    alive: watch::Receiver<bool>,
}

/// Says the manager ended when it is dropped: on a normal return, and when
/// a panic unwinds the task.
struct Alive(watch::Sender<bool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.send_replace(false);
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
        let (alive_tx, alive) = watch::channel(true);
        let guard = Alive(alive_tx);
        tokio::spawn(async move {
            let _guard = guard;
            manager.run().await;
        });
        Ghosts {
            commands,
            stream_events,
            directory,
            census,
            metrics,
            alive,
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
            token: joined.token,
            serial: joined.serial,
            hello: joined.hello,
            state: joined.state,
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
        self.report(ghost, pos, None, false).await
    }

    /// A reader's report: where it is, whether it is away (`None`: not
    /// said), and whether its ghost should be held while its stream closes.
    /// A hold returns once it is in place, so the page may close its
    /// stream as soon as it hears back.
    pub async fn report(
        &self,
        ghost: GhostId,
        pos: f64,
        away: Option<bool>,
        hold: bool,
    ) -> Result<(), Stopped> {
        let (applied, done) = match hold {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        self.commands
            .send(Command::Move {
                ghost,
                pos,
                away,
                hold,
                applied,
            })
            .await
            .map_err(|_| Stopped)?;
        match done {
            Some(done) => done.await.map_err(|_| Stopped),
            None => Ok(()),
        }
    }

    /// The ghost's reader said goodbye: it leaves now, and its stream ends.
    pub async fn goodbye(&self, ghost: GhostId) -> Result<(), Stopped> {
        self.commands
            .send(Command::Goodbye { ghost })
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

    /// Reader-seconds per block of these posts, as this instance counts them.
    pub async fn heat(&self, slugs: Vec<String>) -> Result<crate::store::Heat, Stopped> {
        let (respond_to, answer) = oneshot::channel();
        self.commands
            .send(Command::Heat { slugs, respond_to })
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
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

    /// Tests only: makes the manager panic, as a bug would.
    #[cfg(test)]
    pub async fn crash(&self) {
        let _ = self.commands.send(Command::Crash).await;
    }

    /// Whether the manager task still runs.
    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// Resolves once the manager task has ended, for whatever reason.
    pub async fn stopped(&self) {
        let mut alive = self.alive.clone();
        // An error means the sender is gone: the manager has ended too.
        let _ = alive.wait_for(|alive| !alive).await;
    }

    /// Commands waiting, for `/metrics`.
    pub fn queue_depth(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
