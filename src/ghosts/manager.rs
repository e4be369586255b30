//! The actor: one task that owns every ghost, room and count. It never awaits
//! a reader: frames go out through each room's broadcast channel, and each
//! reader's stream copies them to its own socket at its own pace. Its joins
//! and leaves are in `arrivals.rs`, its saves in `saving.rs`, and its side
//! of cluster mode in `remote.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ghost::{Color, GhostId, Token};
use super::handle::{Command, Resync, Settings, StreamEvent};
use super::published::{Census, Counts, Directory};
use super::room::{Moved, Room};
use crate::blog::Slug;
use crate::cluster::wire::WireEvent;
use crate::cluster::Outbound;
use crate::metrics::Metrics;
use crate::store::Totals;

/// Most commands handled between two looks at the clock, so a flood of moves
/// can delay a tick by at most this many commands' work.
const BATCH: usize = 256;

/// How often expired resume tokens are forgotten.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// A ghost with an open stream.
pub(super) struct Live {
    pub(super) token: Token,
    pub(super) slug: Slug,
    pub(super) color: Color,
    /// The address the ghost's first stream came from, counted in
    /// `per_address` until the ghost leaves.
    pub(super) peer: IpAddr,
    /// Which stream of this ghost is current.
    pub(super) serial: u64,
    /// Dropping this ends the current stream.
    pub(super) end: oneshot::Sender<()>,
}

/// A ghost whose stream ended, resumable by its token until `expires`.
pub(super) struct Parked {
    pub(super) id: GhostId,
    pub(super) slug: Slug,
    pub(super) color: Color,
    pub(super) pos: f64,
    pub(super) expires: Instant,
}

#[derive(Serialize)]
pub(super) struct Hello<'a> {
    pub(super) id: &'a str,
    pub(super) token: &'a str,
    pub(super) color: &'a str,
    pub(super) blocks: u32,
}

pub(super) struct Manager {
    pub(super) settings: Settings,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) stream_events: mpsc::UnboundedReceiver<StreamEvent>,
    pub(super) live: HashMap<GhostId, Live>,
    pub(super) live_tokens: HashMap<Token, GhostId>,
    /// Live ghosts per client address, for the per-address limit. An address
    /// is forgotten as soon as its last ghost leaves.
    pub(super) per_address: HashMap<IpAddr, usize>,
    pub(super) parked: HashMap<Token, Parked>,
    pub(super) rooms: HashMap<Slug, Room>,
    pub(super) totals: Totals,
    /// Other instances' ghosts, by instance (cluster mode), so an instance
    /// that dies can be removed whole.
    pub(super) remote: HashMap<Arc<str>, HashMap<GhostId, Slug>>,
    /// Rooms with something to publish at the next tick.
    pub(super) dirty: Vec<Slug>,
    /// When the next tick is due; `None` while nothing waits, so an idle
    /// server does not wake up at all.
    pub(super) flush_at: Option<Instant>,
    pub(super) last_flush: Instant,
    pub(super) next_serial: u64,
    /// When the changed counts are next saved; `None` while nothing changed.
    /// At most `save_interval` after the first unsaved change, so kill -9
    /// loses at most that much.
    pub(super) save_at: Option<Instant>,
    pub(super) last_save: Instant,
    pub(super) saving: Option<JoinHandle<()>>,
    /// Whether the last save failed, so a run of failures is logged once
    /// and the recovery too. Set by the save on the blocking pool.
    pub(super) save_failing: Arc<AtomicBool>,
    pub(super) directory: Arc<Directory>,
    pub(super) census: Arc<Census>,
    pub(super) metrics: Arc<Metrics>,
    /// ChaCha12 seeded from the operating system: a CSPRNG, as tokens need,
    /// and `Send`, as a task's state must be (the thread RNG is not).
    pub(super) rng: StdRng,
}

impl Manager {
    pub(super) fn new(
        settings: Settings,
        totals: Totals,
        commands: mpsc::Receiver<Command>,
        stream_events: mpsc::UnboundedReceiver<StreamEvent>,
        directory: Arc<Directory>,
        census: Arc<Census>,
        metrics: Arc<Metrics>,
    ) -> Manager {
        let census_now = totals
            .iter()
            .filter_map(|(slug, total)| {
                Some((
                    Slug::parse(slug)?,
                    Counts {
                        now: 0,
                        total: *total,
                    },
                ))
            })
            .collect();
        census.set_all(census_now);
        Manager {
            settings,
            commands,
            stream_events,
            live: HashMap::new(),
            live_tokens: HashMap::new(),
            per_address: HashMap::new(),
            parked: HashMap::new(),
            rooms: HashMap::new(),
            remote: HashMap::new(),
            totals,
            dirty: Vec::new(),
            flush_at: None,
            last_flush: Instant::now(),
            next_serial: 0,
            save_at: None,
            last_save: Instant::now(),
            saving: None,
            save_failing: Arc::default(),
            directory,
            census,
            metrics,
            rng: StdRng::from_os_rng(),
        }
    }

    pub(super) async fn run(mut self) {
        let mut commands = Vec::with_capacity(BATCH);
        let mut events = Vec::with_capacity(BATCH);
        let timer = tokio::time::sleep(HOUSEKEEPING);
        tokio::pin!(timer);
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        loop {
            tokio::select! {
                // Leaves first: a flood of moves must never delay a departure.
                biased;
                n = self.stream_events.recv_many(&mut events, BATCH) => {
                    if n == 0 { break; }
                    for event in events.drain(..) {
                        self.on_stream_event(event);
                    }
                }
                n = self.commands.recv_many(&mut commands, BATCH) => {
                    if n == 0 { break; }
                    let mut batch = std::mem::take(&mut commands);
                    for command in batch.drain(..) {
                        if let Command::Shutdown { respond_to } = command {
                            self.shutdown().await;
                            // The caller may have stopped waiting; the work is done either way.
                            let _ = respond_to.send(());
                            return;
                        }
                        self.apply(command);
                    }
                    commands = batch;
                }
                _ = &mut timer => {}
            }
            let now = Instant::now();
            if self.flush_at.is_some_and(|at| at <= now) {
                self.flush(now);
            }
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING;
            }
            self.save_if_due(now);
            let wake = [self.flush_at, self.save_at]
                .into_iter()
                .flatten()
                .fold(next_housekeeping, Instant::min);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            self.metrics
                .manager_queue_depth
                .set(self.commands.len() as i64);
        }
        self.shutdown().await;
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Join {
                request,
                respond_to,
            } => {
                let joined = self.join(request);
                if joined.is_err() {
                    self.metrics.streams_refused.inc();
                }
                // If the requester gave up, the stream parts it would have got
                // are dropped here, and the ghost's `end` with them... except
                // that the manager still holds the ghost: its stream never
                // existed, so nothing would send its leave. Undo the join.
                if let Err(Ok(joined)) = respond_to.send(joined) {
                    self.leave(&joined.ghost, joined.serial);
                }
            }
            Command::Move { ghost, pos } => self.move_ghost(&ghost, pos),
            Command::Remote(wire) => self.apply_remote(wire),
            Command::InstanceGone(instance) => self.instance_gone(&instance),
            Command::LocalSnapshot { respond_to } => {
                // The cluster task may have given up waiting; then it asks again later.
                let _ = respond_to.send(self.local_snapshot());
            }
            Command::Shutdown { .. } => {}
        }
    }

    fn on_stream_event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Left { ghost, serial } => self.leave(&ghost, serial),
            StreamEvent::Lagged {
                ghost,
                serial,
                respond_to,
            } => {
                let Some(live) = self.live.get(&ghost).filter(|l| l.serial == serial) else {
                    return;
                };
                let Some(room) = self.rooms.get(&live.slug) else {
                    return;
                };
                let counts = self.counts(&live.slug);
                let resync = Resync {
                    snapshot: Bytes::from(room.snapshot(counts)),
                    events: room.subscribe(),
                };
                self.metrics.lag_snapshots.inc();
                // The stream may have closed meanwhile; then it needs nothing.
                let _ = respond_to.send(resync);
            }
        }
    }

    fn move_ghost(&mut self, id: &GhostId, pos: f64) {
        let Some(live) = self.live.get(id) else {
            return;
        };
        let slug = live.slug.clone();
        let Some(room) = self.rooms.get_mut(&slug) else {
            return;
        };
        match room.moved(id, pos) {
            Moved::Queued => self.mark_dirty(&slug),
            Moved::Coalesced => self.metrics.moves_coalesced.inc(),
            Moved::Unknown => return,
        }
        self.metrics.moves_received.inc();
    }

    pub(super) fn mark_dirty(&mut self, slug: &Slug) {
        if !self.dirty.contains(slug) {
            self.dirty.push(slug.clone());
        }
        if self.flush_at.is_none() {
            // A lone change goes out at once if the last tick was long ago,
            // else at the next tick: never more than one tick of delay.
            self.flush_at = Some((self.last_flush + self.settings.tick).max(Instant::now()));
        }
    }

    /// One tick: each changed room publishes one frame.
    fn flush(&mut self, now: Instant) {
        let started = std::time::Instant::now();
        for slug in std::mem::take(&mut self.dirty) {
            let counts = self.counts(&slug);
            self.publish(&slug, counts);
            if self.rooms.get(&slug).is_some_and(Room::is_empty) {
                self.rooms.remove(&slug);
                self.metrics.rooms.set(self.rooms.len() as i64);
            }
        }
        self.flush_at = None;
        self.last_flush = now;
        self.metrics.tick_seconds.observe(started.elapsed());
    }

    fn publish(&mut self, slug: &Slug, counts: Counts) {
        let Some(room) = self.rooms.get_mut(slug) else {
            return;
        };
        if !room.has_news(counts) {
            return;
        }
        if room.publish(counts) > 0 {
            self.metrics.frames_published.inc();
        }
        let journal = room.take_journal();
        self.census.set(slug, counts);
        self.share(slug, journal);
    }

    /// Hands a room's own events of this tick to the cluster task: one
    /// message per changed room per tick. Never waits: if Redis is so far
    /// behind that the queue is full, the next snapshot corrects the others.
    pub(super) fn share(&self, slug: &Slug, events: Vec<WireEvent>) {
        if let (Some(cluster), false) = (&self.settings.cluster, events.is_empty()) {
            let _ = cluster.try_send(Outbound::Room {
                slug: slug.clone(),
                events,
            });
        }
    }

    fn counts(&self, slug: &Slug) -> Counts {
        Counts {
            now: self.rooms.get(slug).map_or(0, |r| r.len() as u64),
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let before = self.parked.len();
        // Forgetting expired tokens is what keeps nothing about a reader
        // past its resume window.
        self.parked.retain(|_, parked| parked.expires > now);
        if self.parked.len() != before {
            self.metrics.parked.set(self.parked.len() as i64);
        }
    }
}
