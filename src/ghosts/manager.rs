//! The actor: one task that owns every ghost, room and count. It never awaits
//! a reader: frames go out through each room's broadcast channel, and each
//! reader's stream copies them to its own socket at its own pace. Its joins
//! and leaves (and the answers that wait for a tick) are in `joins.rs`, its side of cluster mode in `remote.rs`;
//! who is live is kept by `Roster`, and when to save by `Saver`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::census::{Census, Counts};
use super::commands::{Command, Settings, StreamEvent, Waiting};
use super::directory::Directory;
use super::ghost::GhostId;
use super::messages::{Outbound, WireEvent};
use super::room::{Moved, Room, Sharing};
use super::roster::Roster;
use super::saving::Saver;
use crate::blog::Slug;
use crate::metrics::Metrics;
use crate::store::{load_heat, Heat, Totals};

/// Most commands handled between two looks at the clock, so a flood of moves
/// can delay a tick by at most this many commands' work.
const BATCH: usize = 256;

/// How often expired resume tokens are forgotten.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

pub(super) struct Manager {
    pub(super) settings: Settings,
    commands: mpsc::Receiver<Command>,
    stream_events: mpsc::UnboundedReceiver<StreamEvent>,
    /// Live and parked ghosts, their tokens and addresses, kept in step.
    pub(super) roster: Roster,
    pub(super) rooms: HashMap<Slug, Room>,
    pub(super) totals: Totals,
    /// Reader-seconds per block per post: where readers actually read.
    pub(super) heat: Heat,
    /// When the heat map last grew.
    pub(super) heat_at: Instant,
    /// Other instances' ghosts, by instance (cluster mode), so an instance
    /// that dies can be removed whole.
    pub(super) remote: HashMap<Arc<str>, HashMap<GhostId, Slug>>,
    /// Rooms with something to publish at the next tick, or (crowded rooms)
    /// when their interval is up.
    dirty: Vec<Slug>,
    /// Readers waiting for their room's next tick: newcomers for their first
    /// state, readers who fell behind for a fresh one. One state per room
    /// per tick serves them all.
    pub(super) waiting: HashMap<Slug, Vec<Waiting>>,
    /// When the next tick is due; `None` while nothing waits, so an idle
    /// server does not wake up at all.
    flush_at: Option<Instant>,
    last_flush: Instant,
    next_serial: u64,
    pub(super) saver: Saver,
    /// New readers not yet in their post's `total`, oldest first, with when
    /// their held stream counts them.
    pub(super) uncounted: std::collections::VecDeque<(Instant, GhostId)>,
    /// Ghosts held (away) for a page that gave its stream up, until it
    /// comes back or `let_go` passes.
    pub(super) held: std::collections::HashSet<GhostId>,
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
        let heat = match settings.heat_map {
            true => load_heat(&settings.data_dir),
            false => Heat::new(),
        };
        Manager {
            saver: Saver::new(
                settings.data_dir.clone(),
                settings.save_interval,
                metrics.clone(),
            ),
            settings,
            commands,
            stream_events,
            roster: Roster::new(directory),
            rooms: HashMap::new(),
            remote: HashMap::new(),
            totals,
            heat,
            heat_at: Instant::now(),
            dirty: Vec::new(),
            waiting: HashMap::new(),
            flush_at: None,
            last_flush: Instant::now(),
            next_serial: 0,
            uncounted: std::collections::VecDeque::new(),
            held: std::collections::HashSet::new(),
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
            self.saver.save_if_due(now, &self.totals, &self.heat);
            let wake = [self.flush_at, self.saver.due()]
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
                if let Err(refused) = self.join(request, respond_to) {
                    self.metrics.streams_refused.inc();
                    // The requester may have given up; then nobody is told.
                    let _ = refused.respond_to.send(Err(refused.why));
                }
            }
            Command::Move {
                ghost,
                pos,
                away,
                hold,
                applied,
            } => {
                self.move_ghost(&ghost, pos);
                if away.is_some() || hold {
                    self.mark_away(&ghost, away, hold);
                }
                if let Some(applied) = applied {
                    let _ = applied.send(()); // The asker may be gone; the hold stands.
                }
            }
            Command::Goodbye { ghost } => {
                // Leaving drops the stream's `end`, which ends the stream;
                // its own leave then comes for a ghost already gone.
                if let Some(serial) = self.roster.get(&ghost).map(|live| live.serial) {
                    self.metrics.goodbyes.inc();
                    self.leave(&ghost, serial);
                }
            }
            Command::Remote(wire) => self.apply_remote(wire),
            Command::InstanceGone(instance) => self.instance_gone(&instance),
            Command::Heat { slugs, respond_to } => {
                let heat = slugs
                    .into_iter()
                    .filter_map(|slug| Some((slug.clone(), self.heat.get(&slug)?.clone())))
                    .collect();
                // The asker may have given up; then nobody needs it.
                let _ = respond_to.send(heat);
            }
            Command::LocalSnapshot { respond_to } => {
                // The cluster task may have given up waiting; then it asks again later.
                let _ = respond_to.send(self.local_snapshot());
            }
            Command::Shutdown { .. } => {}
            #[cfg(test)]
            Command::Crash => panic!("the manager crashed, as a test asked"),
        }
    }

    fn on_stream_event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Left { ghost, serial } => self.stream_ended(&ghost, serial),
            StreamEvent::Lagged {
                ghost,
                serial,
                respond_to,
            } => {
                let Some(live) = self.roster.get(&ghost).filter(|l| l.serial == serial) else {
                    return;
                };
                let slug = live.slug.clone();
                self.wait_for_tick(&slug, Waiting::Resync { respond_to });
            }
        }
    }

    fn move_ghost(&mut self, id: &GhostId, pos: f64) {
        // A position is what a reader sends: it counts now, if new.
        self.count_if_new(id);
        let Some(live) = self.roster.get(id) else {
            return;
        };
        let slug = live.slug.clone();
        let Some(room) = self.rooms.get_mut(&slug) else {
            return;
        };
        match room.moved(id, pos) {
            Moved::Queued | Moved::Recounted => self.mark_dirty(&slug),
            Moved::Coalesced => self.metrics.moves_coalesced.inc(),
            Moved::Unknown => return,
        }
        self.metrics.moves_received.inc();
    }

    /// The room has something to publish: at the next tick, or for a
    /// crowded room at the end of its interval, whichever is later; a
    /// change never waits more than one tick (or one interval) to go out.
    pub(super) fn mark_dirty(&mut self, slug: &Slug) {
        if !self.dirty.contains(slug) {
            self.dirty.push(slug.clone());
        }
        let now = Instant::now();
        // A lone change goes out at once if the last tick was long ago.
        let tick = (self.last_flush + self.settings.tick).max(now);
        let due = match self.rooms.get(slug) {
            Some(room) if !self.waiting.contains_key(slug) => room.publish_due(now).max(tick),
            _ => tick,
        };
        self.flush_at = Some(self.flush_at.map_or(due, |at| at.min(due)));
    }

    /// One tick: each changed room that is due publishes one frame, then
    /// answers its waiting readers. Crowded rooms not yet due wait on.
    fn flush(&mut self, now: Instant) {
        let started = std::time::Instant::now();
        let mut later = Vec::new();
        let mut next: Option<Instant> = None;
        for slug in std::mem::take(&mut self.dirty) {
            let due = self
                .rooms
                .get(&slug)
                .map_or(now, |room| room.publish_due(now));
            if due > now {
                next = Some(next.map_or(due, |at| at.min(due)));
                later.push(slug.clone());
            } else {
                self.publish(&slug);
            }
            self.answer_waiting(&slug);
            if self.rooms.get(&slug).is_some_and(Room::is_unused) && due <= now {
                self.rooms.remove(&slug);
                self.metrics.rooms.set(self.rooms.len() as i64);
            }
        }
        self.dirty = later;
        self.flush_at = next;
        self.last_flush = now;
        self.metrics.tick_seconds.observe(started.elapsed());
    }

    /// Publishes whatever a room has to say (one frame to its readers, one
    /// message to the cluster) and the counts for pages. The one place a
    /// room publishes.
    fn publish(&mut self, slug: &Slug) {
        let counts = self.counts(slug);
        let Some(room) = self.rooms.get_mut(slug) else {
            return;
        };
        if !room.has_news(counts) {
            return;
        }
        if room.publish(counts, Instant::now()) > 0 {
            self.metrics.frames_published.inc();
        }
        let journal = room.take_journal();
        self.census.set(slug, counts);
        self.share(slug, journal);
    }

    /// Hands a room's own events of this tick to the cluster task: one
    /// message per changed room per tick. Never waits: if Redis is so far
    /// behind that the queue is full, the next snapshot corrects the others.
    fn share(&self, slug: &Slug, events: Vec<WireEvent>) {
        if !events.is_empty() {
            self.tell_cluster(Outbound::Room {
                slug: slug.clone(),
                events,
            });
        }
    }

    /// Hands the cluster task a message, in cluster mode. Never waits: a
    /// message lost to a full queue is corrected by the next snapshot (or,
    /// for a parked ghost, costs a resume elsewhere its id).
    pub(super) fn tell_cluster(&self, message: Outbound) {
        if let Some(cluster) = &self.settings.cluster {
            let _ = cluster.try_send(message);
        }
    }

    /// A post's counts as the manager knows them: its room's members (local
    /// and remote) and its all-time total. The only place they are computed.
    pub(super) fn counts(&self, slug: &Slug) -> Counts {
        Counts {
            now: self.rooms.get(slug).map_or(0, |r| r.len() as u64),
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        }
    }

    /// A new room, as rooms are made on this server: shared with the
    /// cluster or not, crowded above the configured size.
    pub(super) fn new_room(&self, blocks: Option<u32>) -> Room {
        let sharing = match self.settings.cluster {
            Some(_) => Sharing::Cluster,
            None => Sharing::Alone,
        };
        Room::new(sharing, self.settings.crowd, blocks)
    }

    pub(super) fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    fn housekeeping(&mut self, now: Instant) {
        self.count_held(now);
        self.warm(now);
        self.let_go_of_held(now);
        if self.roster.expire(now) {
            self.metrics.parked.set(self.roster.parked_count() as i64);
        }
    }

    async fn shutdown(&mut self) {
        // Dropping every `end` sender and room ends every stream, and every
        // waiting reader's answer.
        self.roster.clear();
        self.uncounted.clear();
        self.held.clear();
        self.waiting.clear();
        self.rooms.clear();
        self.metrics.ghosts.set(0);
        self.metrics.rooms.set(0);
        self.metrics.parked.set(0);
        self.saver.finish(&self.totals, &self.heat).await;
    }
}
