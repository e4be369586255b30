//! The only way into the manager: a cheap, cloneable handle whose methods
//! send commands and await the answers. In cluster mode it also finds a
//! resuming reader's ghost wherever it is, before the manager books it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::census::{Census, Counts};
use super::commands::{
    Command, Elsewhere, JoinRefused, JoinRequest, Joined, Refusal, Settings, Stopped, StreamEvent,
    StreamParts,
};
use super::directory::{Directory, Seat};
use super::ghost::{GhostId, Token};
use super::manager::{Manager, Wiring};
use super::messages::{OtherInstances, Wire};
use crate::blog::Slug;
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
    /// Cluster mode: the other instances, asked for resuming readers' ghosts.
    elsewhere: Option<Arc<dyn OtherInstances>>,
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
    /// Starts the manager of a server on its own, with the all-time counts
    /// loaded from disk.
    pub fn spawn(settings: Settings, totals: Totals, metrics: Arc<Metrics>) -> Ghosts {
        Ghosts::start(settings, totals, metrics, None)
    }

    /// Starts the manager of one instance of a cluster: it tells the other
    /// instances what changes here, and asks them for resuming readers.
    pub fn spawn_in_cluster(
        settings: Settings,
        totals: Totals,
        metrics: Arc<Metrics>,
        others: Arc<dyn OtherInstances>,
    ) -> Ghosts {
        Ghosts::start(settings, totals, metrics, Some(others))
    }

    fn start(
        settings: Settings,
        totals: Totals,
        metrics: Arc<Metrics>,
        elsewhere: Option<Arc<dyn OtherInstances>>,
    ) -> Ghosts {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (stream_events, stream_event_rx) = mpsc::unbounded_channel();
        let directory = Arc::new(Directory::default());
        let census = Arc::new(Census::default());
        let wiring = Wiring {
            commands: command_rx,
            stream_events: stream_event_rx,
            directory: directory.clone(),
            census: census.clone(),
            metrics,
            elsewhere: elsewhere.clone(),
        };
        let manager = Manager::new(settings, totals, wiring);
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
            elsewhere,
            alive,
        }
    }

    /// Opens a reader's stream, resuming the ghost of `request.resume` when
    /// it may be. In cluster mode that ghost is found wherever it is: parked
    /// in Redis by another instance, or still live on another instance (a
    /// phone that changed networks), which then ends its stream there and
    /// hands the ghost over, so the reader keeps its id and colour and is
    /// never shown twice.
    pub async fn join(&self, request: JoinRequest) -> Result<StreamParts, JoinRefused> {
        let joined = match (&self.elsewhere, request.resume.clone()) {
            (Some(others), Some(token)) => self.join_in_cluster(request, &**others, &token).await,
            _ => self.ask_to_join(request, Elsewhere::Nothing).await,
        };
        joined.map_err(|refusal| match refusal {
            Refusal::Refused(why) => why,
            // Only an `Ask` is answered so, and a second try never asks.
            Refusal::LiveElsewhere(_) => JoinRefused::Stopped,
        })
    }

    /// A resuming reader in cluster mode: its ghost parked elsewhere comes
    /// back here; one live elsewhere is released there first.
    async fn join_in_cluster(
        &self,
        request: JoinRequest,
        others: &dyn OtherInstances,
        token: &Token,
    ) -> Result<StreamParts, Refusal> {
        let first_try = match others.parked(token).await {
            Some(parked) => Elsewhere::Parked(parked),
            None => Elsewhere::Ask,
        };
        let instance = match self.ask_to_join(request.clone(), first_try).await {
            Err(Refusal::LiveElsewhere(instance)) => instance,
            answered => return answered,
        };
        // Not released (that instance is gone, or the token was not its):
        // a new ghost, as for any token nobody holds.
        let again = match others.release(token, &request.slug, instance.clone()).await {
            Some(parked) => Elsewhere::Released {
                by: instance,
                parked,
            },
            None => Elsewhere::Nothing,
        };
        self.ask_to_join(request, again).await
    }

    async fn ask_to_join(
        &self,
        request: JoinRequest,
        elsewhere: Elsewhere,
    ) -> Result<StreamParts, Refusal> {
        let stopped = || Refusal::Refused(JoinRefused::Stopped);
        let (respond_to, answer) = oneshot::channel();
        let command = Command::Join {
            request,
            elsewhere,
            respond_to,
        };
        self.commands.send(command).await.map_err(|_| stopped())?;
        let joined: Joined = answer.await.map_err(|_| stopped())??;
        Ok(StreamParts {
            ghost: joined.ghost,
            token: joined.token,
            serial: joined.serial,
            hello: joined.hello,
            state: joined.state,
            events: joined.events,
            end: joined.end,
            near: joined.near,
            to_manager: self.stream_events.clone(),
        })
    }

    /// The live ghost holding `token`, if any: a fast read of the
    /// directory, which the manager keeps (see `directory.rs`).
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

    /// Has this instance tell the others its ghosts (or counts) in one
    /// post, through the link.
    pub async fn announce(&self, slug: Slug) -> Result<(), Stopped> {
        self.commands
            .send(Command::Announce(slug))
            .await
            .map_err(|_| Stopped)
    }

    /// The posts with a reader on this instance.
    pub async fn serving(&self) -> Result<Vec<Slug>, Stopped> {
        let (respond_to, answer) = oneshot::channel();
        self.commands
            .send(Command::Serving { respond_to })
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// This instance stopped hearing a post: the others' ghosts in it leave.
    pub async fn forget(&self, slug: Slug) -> Result<(), Stopped> {
        self.commands
            .send(Command::Forget(slug))
            .await
            .map_err(|_| Stopped)
    }

    /// This instance asked a post's instances for their ghosts in it.
    pub async fn asked(&self, slug: Slug) -> Result<(), Stopped> {
        self.commands
            .send(Command::Asked(slug))
            .await
            .map_err(|_| Stopped)
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
}
