//! The actor: one task that owns every ghost, room and count. It never awaits
//! a reader: frames go out through each room's broadcast channel, and each
//! reader's stream copies them to its own socket at its own pace.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ghost::{palette_color, pick_color, Color, GhostId, Token};
use super::handle::{Command, JoinRefused, JoinRequest, Joined, Resync, Settings, StreamEvent};
use super::published::{Census, Counts, Directory, Limiter, Seat};
use super::room::{Moved, Room};
use crate::blog::Slug;
use crate::cluster::wire::WireEvent;
use crate::cluster::Outbound;
use crate::metrics::Metrics;
use crate::sse::encode_hello;
use crate::store::{save_counts, Totals};

/// Most commands handled between two looks at the clock, so a flood of moves
/// can delay a tick by at most this many commands' work.
const BATCH: usize = 256;

/// How often expired resume tokens are forgotten.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// A ghost with an open stream.
struct Live {
    token: Token,
    slug: Slug,
    color: Color,
    /// The address the ghost's first stream came from, counted in
    /// `per_address` until the ghost leaves.
    peer: IpAddr,
    /// Which stream of this ghost is current.
    serial: u64,
    /// Dropping this ends the current stream.
    end: oneshot::Sender<()>,
}

/// A ghost whose stream ended, resumable by its token until `expires`.
struct Parked {
    id: GhostId,
    slug: Slug,
    color: Color,
    pos: f64,
    expires: Instant,
}

#[derive(Serialize)]
struct Hello<'a> {
    id: &'a str,
    token: &'a str,
    color: &'a str,
    blocks: u32,
}

pub(super) struct Manager {
    pub(super) settings: Settings,
    commands: mpsc::Receiver<Command>,
    stream_events: mpsc::UnboundedReceiver<StreamEvent>,
    live: HashMap<GhostId, Live>,
    live_tokens: HashMap<Token, GhostId>,
    /// Live ghosts per client address, for the per-address limit. An address
    /// is forgotten as soon as its last ghost leaves.
    per_address: HashMap<IpAddr, usize>,
    parked: HashMap<Token, Parked>,
    pub(super) rooms: HashMap<Slug, Room>,
    pub(super) totals: Totals,
    /// Other instances' ghosts, by instance (cluster mode), so an instance
    /// that dies can be removed whole.
    pub(super) remote: HashMap<Arc<str>, HashMap<GhostId, Slug>>,
    /// Rooms with something to publish at the next tick.
    dirty: Vec<Slug>,
    /// When the next tick is due; `None` while nothing waits, so an idle
    /// server does not wake up at all.
    flush_at: Option<Instant>,
    last_flush: Instant,
    next_serial: u64,
    /// When the changed counts are next saved; `None` while nothing changed.
    /// At most `save_interval` after the first unsaved change, so kill -9
    /// loses at most that much.
    save_at: Option<Instant>,
    last_save: Instant,
    saving: Option<JoinHandle<()>>,
    directory: Arc<Directory>,
    pub(super) census: Arc<Census>,
    pub(super) metrics: Arc<Metrics>,
    /// ChaCha12 seeded from the operating system: a CSPRNG, as tokens need,
    /// and `Send`, as a task's state must be (the thread RNG is not).
    rng: StdRng,
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

    fn join(&mut self, request: JoinRequest) -> Result<Joined, JoinRefused> {
        let JoinRequest {
            slug,
            blocks,
            resume,
            peer,
            remote_parked: request_parked,
        } = request;
        // A ghost whose stream is still open: the newer stream takes over,
        // silently for everyone else.
        if let Some(joined) = resume
            .as_ref()
            .and_then(|token| self.take_over(token, &slug, blocks))
        {
            return Ok(joined);
        }
        let over_total = self.live.len() >= self.settings.max_readers;
        let over_post = self
            .rooms
            .get(&slug)
            .is_some_and(|r| r.len() >= self.settings.max_readers_per_post);
        if over_total || over_post {
            return Err(if over_total {
                JoinRefused::ServerFull
            } else {
                JoinRefused::PostFull
            });
        }
        let from_peer = self.per_address.get(&peer).copied().unwrap_or(0);
        if from_peer >= self.settings.max_streams_per_address {
            return Err(JoinRefused::AddressFull);
        }
        let resumed = resume.and_then(|token| match self.parked.remove(&token) {
            Some(parked) if parked.slug == slug => Some((token, parked)),
            Some(parked) => {
                self.parked.insert(token, parked);
                None
            }
            // Parked on another instance: same id and colour here.
            None => {
                let remote = request_parked.filter(|p| p.slug == slug.as_str())?;
                let id = GhostId::parse(&remote.id)?;
                let color = palette_color(&remote.color);
                Some((
                    token,
                    Parked {
                        id,
                        slug: slug.clone(),
                        color,
                        pos: remote.pos,
                        expires: Instant::now(),
                    },
                ))
            }
        });
        let shared = self.settings.cluster.is_some();
        let room = self.rooms.entry(slug.clone()).or_insert_with(|| {
            if shared {
                Room::shared()
            } else {
                Room::new()
            }
        });
        let (token, id, color, pos) = match resumed {
            Some((token, parked)) => {
                self.metrics.resumes.inc();
                // Ids are random: in the rare case that a live ghost took this
                // one meanwhile, the resumed ghost gets a new id, same colour.
                let id = if self.live.contains_key(&parked.id) {
                    fresh_id(&self.live, &mut self.rng)
                } else {
                    parked.id
                };
                (token, id, parked.color, parked.pos)
            }
            None => {
                *self.totals.entry(slug.to_string()).or_insert(0) += 1;
                if self.save_at.is_none() {
                    self.save_at =
                        Some((self.last_save + self.settings.save_interval).max(Instant::now()));
                }
                self.metrics.joins.inc();
                if let Some(cluster) = &self.settings.cluster {
                    // If Redis is far behind, the count waits for the next snapshot of totals.
                    let _ = cluster.try_send(Outbound::NewReader { slug: slug.clone() });
                }
                let color = pick_color(room.colors(), &mut self.rng);
                (
                    Token::random(&mut self.rng),
                    fresh_id(&self.live, &mut self.rng),
                    color,
                    0.0,
                )
            }
        };
        room.add(id.clone(), color, pos.min(f64::from(blocks)));
        let counts = Counts {
            now: room.len() as u64,
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        };
        // Publish now, before this reader subscribes: the others hear the
        // join (after any moves queued before it), and the reader does not.
        if room.publish(counts) > 0 {
            self.metrics.frames_published.inc();
        }
        let journal = room.take_journal();
        self.census.set(&slug, counts);
        self.share(&slug, journal);
        self.next_serial += 1;
        let room = match self.rooms.get(&slug) {
            Some(room) => room,
            None => return Err(JoinRefused::Stopped), // Cannot happen: the room was made above.
        };
        let serial = self.next_serial;
        let (end, end_rx) = oneshot::channel();
        let joined = joined(room, counts, &id, &token, color, blocks, serial, end_rx);
        let seat = Seat {
            id: id.clone(),
            slug: slug.clone(),
            limiter: Limiter::per_second(self.settings.moves_per_sec),
        };
        self.directory.insert(token.clone(), Arc::new(seat));
        self.live_tokens.insert(token.clone(), id.clone());
        *self.per_address.entry(peer).or_insert(0) += 1;
        self.live.insert(
            id,
            Live {
                peer,
                token,
                slug,
                color,
                serial,
                end,
            },
        );
        self.metrics.ghosts.set(self.live.len() as i64);
        self.metrics.rooms.set(self.rooms.len() as i64);
        self.metrics.parked.set(self.parked.len() as i64);
        Ok(joined)
    }

    /// Hands a live ghost to a newer stream on the same post; `None` if the
    /// token has no live ghost there.
    fn take_over(&mut self, token: &Token, slug: &Slug, blocks: u32) -> Option<Joined> {
        let id = self.live_tokens.get(token)?;
        let live = self.live.get_mut(id).filter(|live| live.slug == *slug)?;
        let room = self.rooms.get(slug)?;
        self.next_serial += 1;
        let serial = self.next_serial;
        let (end, end_rx) = oneshot::channel();
        live.serial = serial;
        // Replacing the sender drops the old one, which ends the old stream;
        // its leave then carries an old serial and is ignored.
        live.end = end;
        self.metrics.takeovers.inc();
        let counts = Counts {
            now: room.len() as u64,
            total: self.totals.get(slug.as_str()).copied().unwrap_or(0),
        };
        Some(joined(
            room, counts, id, token, live.color, blocks, serial, end_rx,
        ))
    }

    fn leave(&mut self, id: &GhostId, serial: u64) {
        if self.live.get(id).is_none_or(|l| l.serial != serial) {
            return; // An older stream of a ghost that was taken over, or already gone.
        }
        let Some(live) = self.live.remove(id) else {
            return;
        };
        self.live_tokens.remove(&live.token);
        self.directory.remove(&live.token);
        if let Some(count) = self.per_address.get_mut(&live.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&live.peer);
            }
        }
        let pos = match self.rooms.get_mut(&live.slug) {
            Some(room) => room.remove(id).map_or(0.0, |m| m.pos),
            None => 0.0,
        };
        self.mark_dirty(&live.slug);
        let expires = Instant::now() + self.settings.resume_window;
        self.parked.insert(
            live.token.clone(),
            Parked {
                id: id.clone(),
                slug: live.slug.clone(),
                color: live.color,
                pos,
                expires,
            },
        );
        if let Some(cluster) = &self.settings.cluster {
            let parked = Outbound::Parked {
                token: live.token.clone(),
                id: id.clone(),
                color: live.color,
                slug: live.slug.clone(),
                pos,
            };
            // Lost only if Redis is far behind; then a resume elsewhere gets a new ghost.
            let _ = cluster.try_send(parked);
        }
        self.metrics.leaves.inc();
        self.metrics.ghosts.set(self.live.len() as i64);
        self.metrics.parked.set(self.parked.len() as i64);
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

    /// Starts a save if one is due and none is running; a save still running
    /// (a slow disk) pushes the next one back a little instead of piling up.
    fn save_if_due(&mut self, now: Instant) {
        if self.save_at.is_none_or(|at| at > now) {
            return;
        }
        if self
            .saving
            .as_ref()
            .is_some_and(|saving| !saving.is_finished())
        {
            self.save_at = Some(now + Duration::from_millis(10));
            return;
        }
        self.save_at = None;
        self.last_save = now;
        self.saving = Some(self.spawn_save());
    }

    /// Saves on the blocking pool: the manager never waits for a disk.
    fn spawn_save(&mut self) -> JoinHandle<()> {
        let totals = self.totals.clone();
        let dir = self.settings.data_dir.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || match save_counts(&dir, &totals) {
            Ok(()) => metrics.counts_saved.inc(),
            Err(error) => {
                // Log the first failure of a run of failures, not every second.
                if metrics.counts_save_errors.get() == metrics.counts_saved.get() {
                    tracing::warn!(
                        "cannot save the reader counts in {}: {error}; keeping them in memory and retrying",
                        dir.display()
                    );
                }
                metrics.counts_save_errors.inc();
            }
        })
    }

    async fn shutdown(&mut self) {
        // Dropping every `end` sender and room ends every stream.
        self.live.clear();
        self.per_address.clear();
        self.live_tokens.clear();
        self.parked.clear();
        self.rooms.clear();
        self.directory.clear();
        self.metrics.ghosts.set(0);
        self.metrics.rooms.set(0);
        self.metrics.parked.set(0);
        if let Some(saving) = self.saving.take() {
            let _ = saving.await; // A failed save was logged by the save itself.
        }
        let totals = self.totals.clone();
        let dir = self.settings.data_dir.clone();
        match tokio::task::spawn_blocking(move || save_counts(&dir, &totals)).await {
            Ok(Ok(())) => self.metrics.counts_saved.inc(),
            Ok(Err(error)) => tracing::error!(
                "cannot save the reader counts in {} at shutdown: {error}; the last second of counts is lost",
                self.settings.data_dir.display()
            ),
            Err(_) => tracing::error!("saving the reader counts panicked at shutdown"),
        }
    }
}

/// The first bytes of a stream (`retry`, `hello`, `snapshot`) and its
/// subscription, taken together so no frame falls between them.
#[allow(clippy::too_many_arguments)]
fn joined(
    room: &Room,
    counts: Counts,
    id: &GhostId,
    token: &Token,
    color: Color,
    blocks: u32,
    serial: u64,
    end: oneshot::Receiver<()>,
) -> Joined {
    let mut first = Vec::with_capacity(512);
    let hello = Hello {
        id: id.as_str(),
        token: token.as_str(),
        color,
        blocks,
    };
    encode_hello(&mut first, token.as_str(), &hello);
    first.extend_from_slice(&room.snapshot(counts));
    Joined {
        ghost: id.clone(),
        serial,
        first: Bytes::from(first),
        events: room.subscribe(),
        end,
    }
}

/// A random id no live ghost has.
fn fresh_id(live: &HashMap<GhostId, Live>, rng: &mut StdRng) -> GhostId {
    loop {
        let id = GhostId::random(rng);
        if !live.contains_key(&id) {
            return id;
        }
    }
}
