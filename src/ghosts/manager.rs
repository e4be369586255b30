//! The actor: one task that owns every ghost, room and count, through the
//! parts that each own one piece and keep its invariant: `Roster` (live,
//! held and parked ghosts), `Rooms` (every room and when it speaks),
//! `Tally` (totals and the census), `HeatMap`, `Others` (other instances'
//! ghosts) and `Saver`. The manager keeps the loop, the tick and the
//! dispatch, and calls into the parts; the parts never call back.
//!
//! It never awaits a reader: frames go out through each room's broadcast
//! channel, and each reader's stream copies them to its own socket at its
//! own pace.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::census::Census;
use super::commands::{Command, Settings, StreamEvent, Waiting};
use super::directory::Directory;
use super::ghost::GhostId;
use super::heat::HeatMap;
use super::joins::{Booked, Desk};
use super::messages::{OtherInstances, Outbound};
use super::remote::Others;
use super::room::{Moved, Sharing};
use super::rooms::Rooms;
use super::roster::{Parked, Roster};
use super::saving::Saver;
use super::tally::Tally;
use crate::blog::Slug;
use crate::metrics::Metrics;
use crate::store::Totals;

mod cluster;

/// Most commands handled between two looks at the clock, so a flood of moves
/// can delay a tick by at most this many commands' work.
const BATCH: usize = 256;

/// How often expired resume tokens are forgotten.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// The channels the manager reads, and what it writes for others to read.
pub(super) struct Wiring {
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) stream_events: mpsc::UnboundedReceiver<StreamEvent>,
    pub(super) directory: Arc<Directory>,
    pub(super) census: Arc<Census>,
    pub(super) metrics: Arc<Metrics>,
    /// Cluster mode: where this instance's own events go.
    pub(super) elsewhere: Option<Arc<dyn OtherInstances>>,
}

pub(super) struct Manager {
    settings: Settings,
    commands: mpsc::Receiver<Command>,
    stream_events: mpsc::UnboundedReceiver<StreamEvent>,
    roster: Roster,
    rooms: Rooms,
    tally: Tally,
    heat: HeatMap,
    others: Others,
    saver: Saver,
    elsewhere: Option<Arc<dyn OtherInstances>>,
    metrics: Arc<Metrics>,
    /// ChaCha12 seeded from the operating system: a CSPRNG, as tokens need,
    /// and `Send`, as a task's state must be (the thread RNG is not).
    rng: StdRng,
}

impl Manager {
    pub(super) fn new(settings: Settings, totals: Totals, wiring: Wiring) -> Manager {
        let sharing = match wiring.elsewhere {
            Some(_) => Sharing::Cluster,
            None => Sharing::Alone,
        };
        Manager {
            saver: Saver::new(
                settings.data_dir.clone(),
                settings.save_interval,
                wiring.metrics.clone(),
            ),
            roster: Roster::new(wiring.directory),
            rooms: Rooms::new(settings.tick, sharing, settings.crowd),
            tally: Tally::new(totals, wiring.census, settings.count_after),
            heat: HeatMap::load(&settings.data_dir, settings.heat_map),
            others: Others::new(settings.max_readers_per_post),
            settings,
            commands: wiring.commands,
            stream_events: wiring.stream_events,
            elsewhere: wiring.elsewhere,
            metrics: wiring.metrics,
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
                    for command in commands.drain(..) {
                        if let Command::Shutdown { respond_to } = command {
                            self.shutdown().await;
                            // The caller may have stopped waiting; the work is done either way.
                            let _ = respond_to.send(());
                            return;
                        }
                        self.apply(command);
                    }
                }
                _ = &mut timer => {}
            }
            let now = Instant::now();
            self.tick(now);
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING;
            }
            self.saver
                .save_if_due(now, self.tally.totals(), self.heat.all());
            let wake = [self.rooms.flush_at(), self.saver.due()]
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
                elsewhere,
                respond_to,
            } => {
                let slug = request.slug.clone();
                let mut desk = Desk::new(
                    &self.settings,
                    &mut self.roster,
                    &mut self.rooms,
                    &mut self.tally,
                    &mut self.others,
                    &self.metrics,
                    &mut self.rng,
                );
                let booked = desk.book(request, elsewhere, respond_to);
                if booked.is_ok() {
                    self.tell(Outbound::Serving { slug });
                }
                match booked {
                    Ok(Booked::Counted(slug)) => self.count_reader(&slug),
                    Ok(Booked::Uncounted) => {}
                    Err((respond_to, refusal)) => {
                        self.metrics.streams_refused.inc();
                        // The requester may have given up; then nobody is told.
                        let _ = respond_to.send(Err(refusal));
                    }
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
                if let Some(serial) = self.roster.get(&ghost).map(|live| live.serial()) {
                    self.metrics.goodbyes.inc();
                    self.depart(&ghost, serial, None);
                }
            }
            Command::Heat { slugs, respond_to } => {
                // The asker may have given up; then nobody needs it.
                let _ = respond_to.send(self.heat.of(slugs));
            }
            command @ (Command::Remote(_)
            | Command::InstanceGone(_)
            | Command::Announce(_)
            | Command::Serving { .. }
            | Command::Forget(_)
            | Command::Asked(_)) => self.apply_cluster(command),
            Command::Shutdown { .. } => {}
            #[cfg(test)]
            Command::Crash => panic!("the manager crashed, as a test asked"),
        }
    }

    fn on_stream_event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Left { ghost, serial } => {
                // A stream its page closed on purpose, to be back, keeps
                // its ghost (held, away) until the page returns or lets go.
                if !self.roster.is_held(&ghost, serial, Instant::now()) {
                    self.depart(&ghost, serial, None);
                }
            }
            StreamEvent::Lagged {
                ghost,
                serial,
                respond_to,
            } => {
                let Some(live) = self.roster.get(&ghost).filter(|l| l.serial() == serial) else {
                    return;
                };
                let slug = live.slug().clone();
                self.rooms.wait(&slug, Waiting::Resync { respond_to });
            }
        }
    }

    fn move_ghost(&mut self, id: &GhostId, pos: f64) {
        // A position is what a reader sends: it counts now, if new.
        self.count_if_new(id);
        let Some(slug) = self.roster.get(id).map(|live| live.slug().clone()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&slug) else {
            return;
        };
        match room.moved(id, pos) {
            Moved::Queued | Moved::Recounted | Moved::Seen => self.rooms.mark(&slug),
            Moved::Coalesced => self.metrics.moves_coalesced.inc(),
            Moved::Unknown => return,
        }
        self.metrics.moves_received.inc();
    }

    /// The reader is away (its tabs hidden, or not reading), or back. A
    /// page that is about to give its connection up asks for its ghost to
    /// be held until it comes back, for at most `let_go`.
    fn mark_away(&mut self, id: &GhostId, away: Option<bool>, hold: bool) {
        let until = hold.then(|| Instant::now() + self.settings.let_go);
        self.roster.hold(id, until);
        let (Some(away), Some(slug)) = (away, self.roster.get(id).map(|l| l.slug().clone())) else {
            return;
        };
        let changed = self
            .rooms
            .get_mut(&slug)
            .is_some_and(|room| room.set_away(id, away) != Moved::Unknown);
        if changed {
            self.rooms.mark(&slug);
        }
    }

    /// One tick, if one is due: each changed room that is due publishes one
    /// frame, then answers its waiting readers. Crowded rooms not yet due
    /// wait on.
    fn tick(&mut self, now: Instant) {
        let Some(slugs) = self.rooms.start_tick(now) else {
            return;
        };
        let started = std::time::Instant::now();
        for slug in slugs {
            let publishes = self.rooms.publishes_now(&slug, now);
            let frame_due = self
                .rooms
                .get(&slug)
                .is_none_or(|room| room.frame_due(now) <= now);
            if publishes && frame_due {
                self.publish(&slug);
            } else if publishes {
                // Only this instance's counts are due, to the cluster; the
                // room's readers get their frame at its interval.
                self.share_room(&slug, false);
                self.rooms.mark(&slug);
            }
            let counts = self.tally.counts(&slug, self.rooms.readers(&slug));
            let answered = self.rooms.answer_waiting(&slug, counts);
            self.metrics.lag_snapshots.add(answered.resyncs);
            // Their requesters gave up: the ghosts they would have held leave.
            for (ghost, serial) in answered.gave_up {
                self.depart(&ghost, serial, None);
            }
            if self.rooms.drop_if_unused(&slug, publishes) {
                self.metrics.rooms.set(self.rooms.len() as i64);
            }
        }
        self.metrics.tick_seconds.observe(started.elapsed());
    }

    /// Publishes whatever a room has to say (one frame to its readers, one
    /// message to the cluster) and the counts for pages. The one place a
    /// room publishes.
    fn publish(&mut self, slug: &Slug) {
        let counts = self.tally.counts(slug, self.rooms.readers(slug));
        let Some(room) = self.rooms.get_mut(slug) else {
            return;
        };
        if !room.has_news(counts) {
            return;
        }
        if room.publish(counts, Instant::now()) > 0 {
            self.metrics.frames_published.inc();
        }
        let events = room.take_journal();
        self.tally.show(slug, counts);
        if !events.is_empty() {
            let slug = slug.clone();
            self.tell(Outbound::Room { slug, events });
        }
        self.share_room(slug, false);
    }

    /// Hands the other instances a message, in cluster mode; never waits.
    fn tell(&self, message: Outbound) {
        if let Some(elsewhere) = &self.elsewhere {
            elsewhere.tell(message);
        }
    }

    /// Stream `serial` of ghost `id` ended (or its reader said goodbye):
    /// the ghost leaves its room and is parked for the resume window, here
    /// and in Redis; or, `released_to` another instance that has its reader
    /// now, in Redis only, for that instance to take with its id and colour.
    fn depart(&mut self, id: &GhostId, serial: u64, released_to: Option<String>) {
        let Some(gone) = self.roster.remove(id, serial) else {
            return; // An older stream of a ghost that was taken over, or already gone.
        };
        let pos = match self.rooms.get_mut(&gone.slug) {
            Some(room) if gone.watching => {
                room.watch(false);
                0.0
            }
            Some(room) => room.remove(id).map_or(0.0, |m| m.pos),
            None => 0.0,
        };
        self.rooms.mark(&gone.slug);
        // Lost only if Redis is far behind; then a resume elsewhere gets a new ghost.
        self.tell(Outbound::Parked {
            token: gone.token.clone(),
            id: id.clone(),
            color: gone.color,
            slug: gone.slug.clone(),
            pos,
            counted: gone.counted,
            released_to: released_to.clone(),
        });
        self.metrics.leaves.inc();
        self.metrics.ghosts.set(self.roster.live_count() as i64);
        if released_to.is_some() {
            return; // Resumed elsewhere; never here.
        }
        let parked = Parked {
            id: id.clone(),
            slug: gone.slug,
            color: gone.color,
            pos,
            expires: Instant::now() + self.settings.resume_window,
            counted: gone.counted,
        };
        self.roster.park(gone.token, parked);
        self.metrics.parked.set(self.roster.parked_count() as i64);
    }

    /// A reader has shown it is one: it counts in its post's all-time
    /// `total`, here and (through Redis) on every instance.
    fn count_reader(&mut self, slug: &Slug) {
        self.tally.count(slug);
        self.saver.changed();
        self.metrics.readers_counted.inc();
        // If Redis is far behind, the count waits for the next snapshot of totals.
        self.tell(Outbound::NewReader { slug: slug.clone() });
        if self.rooms.get(slug).is_some() {
            self.rooms.mark(slug);
        }
    }

    /// Counts the live reader `id` if it is not counted yet.
    fn count_if_new(&mut self, id: &GhostId) {
        if let Some(slug) = self.roster.mark_counted(id) {
            self.count_reader(&slug);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        for id in self.tally.due(now) {
            self.count_if_new(&id);
        }
        if let Some(grown) = self.heat.warm(now, &self.rooms, self.elsewhere.is_some()) {
            self.saver.changed();
            for (slug, grown) in grown {
                self.tell(Outbound::Heat { slug, grown });
            }
        }
        for slug in self.rooms.refresh_due(now) {
            self.rooms.mark(&slug);
        }
        let unconfirmed = self.others.sweep(&mut self.rooms, now);
        self.mark_changed(unconfirmed);
        // Held ghosts whose page never came back within `let_go` leave.
        for (id, serial) in self.roster.let_go(now) {
            self.depart(&id, serial, None);
        }
        if self.roster.expire(now) {
            self.metrics.parked.set(self.roster.parked_count() as i64);
        }
    }

    async fn shutdown(&mut self) {
        // Dropping every `end` sender and room ends every stream, and every
        // waiting reader's answer.
        self.roster.clear();
        self.tally.forget_uncounted();
        self.rooms.clear();
        self.metrics.ghosts.set(0);
        self.metrics.rooms.set(0);
        self.metrics.parked.set(0);
        self.saver
            .finish(self.tally.totals(), self.heat.all())
            .await;
    }
}
