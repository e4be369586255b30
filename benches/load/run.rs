//! One run of a scenario, as steps: `start` takes the baselines, `drive`
//! spawns readers as they are due and samples every second until the run
//! ends, and `report` turns what was measured into a `Report`. What differs
//! between scenarios is their `Kind`, asked in one place each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::http;
use crate::marker;
use crate::ramp::Ramp;
use crate::reader::{self, Plan};
use crate::report::{ClusterFigures, Percentiles, Report, Sample};
use crate::scenario::{Kind, Scenario};
use crate::shared::Shared;
use crate::stats;
use crate::target::{cpu_seconds, rss_kib, Target};
use crate::transport;

/// Event-stream frames the server has written, from its `/metrics`.
const FRAMES: &str = "ghostread_frames_sent_total";
/// Snapshots sent to readers who fell behind (their moves are never timed).
const LAG_SNAPSHOTS: &str = "ghostread_lag_snapshots_total";
/// Readers per HTTP/2 connection, as a browser shares one per origin.
const H2_STREAMS: usize = 200;
/// Keep-alive connections the POSTs share.
const POST_CONNECTIONS: usize = 64;

/// A counter from the servers' `/metrics`, summed over the instances; 0
/// where one cannot be read (a server that is gone must not cost the run
/// its report).
async fn server_counter(addrs: &[SocketAddr], name: &str) -> f64 {
    let mut total = 0.0;
    for addr in addrs {
        let page = http::try_get(*addr, "/metrics").await.unwrap_or_default();
        total += page
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    total
}

/// What was true when the run began, to subtract at its end.
struct Baseline {
    /// Each instance's bytes heard from Redis.
    instances_in: Vec<f64>,
    /// Each instance's CPU seconds, then Redis's, and Redis's bytes out.
    instances_cpu: Vec<f64>,
    redis_cpu: f64,
    redis_out: u64,
    server_cpu: f64,
    harness_cpu: f64,
    rss_kib: u64,
    frames: f64,
    lag_snapshots: f64,
}

/// Picks each reader's post: evenly, or by a Zipf law.
struct Posts {
    slugs: Vec<Arc<str>>,
    weights: Vec<f64>,
    sum: f64,
}

impl Posts {
    fn new(slugs: &[String], zipf: bool) -> Posts {
        let weights: Vec<f64> = (0..slugs.len())
            .map(|i| if zipf { 1.0 / (i + 1) as f64 } else { 1.0 })
            .collect();
        Posts {
            slugs: slugs.iter().map(|s| Arc::from(s.as_str())).collect(),
            sum: weights.iter().sum(),
            weights,
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Arc<str> {
        let mut x = rng.random_range(0.0..self.sum);
        for (i, w) in self.weights.iter().enumerate() {
            if x < *w {
                return self.slugs[i].clone();
            }
            x -= w;
        }
        self.slugs[self.slugs.len() - 1].clone()
    }
}

pub struct Run {
    s: Scenario,
    target: Target,
    transport: String,
    shared: Arc<Shared>,
    posts: Posts,
    rng: StdRng,
    tasks: JoinSet<()>,
    /// Readers spawned so far, and the most the run may spawn.
    spawned: usize,
    most: usize,
    pids: Vec<String>,
    started: Instant,
    /// Readers stop moving at `move_until` and leave at `end_at`.
    move_until: Instant,
    end_at: Instant,
    baseline: Baseline,
    timeline: Vec<Sample>,
    peak_open: u64,
    /// Totals at the last sample: server and harness CPU, deliveries, moves.
    last: (f64, f64, u64, u64),
    ramp: Option<Ramp>,
    /// The staleness of the seconds that began with every reader in.
    held: Option<Histogram<u64>>,
    held_crowd: Option<Histogram<u64>>,
    held_near: Option<Histogram<u64>>,
    /// With `--browser-frames`: Chromium timing its frames, once started.
    browser: Option<tokio::task::JoinHandle<Option<Percentiles>>>,
    /// With `--embedded`: each post's twin on the embedded site.
    twins: HashMap<String, Arc<str>>,
}

impl Run {
    pub async fn start(s: Scenario, target: Target, fd_limit: u64) -> Run {
        // Past the open-file limit, readers ride HTTP/2 streams.
        let h2 = s.kind == Kind::Ramp || s.readers as u64 + 300 > fd_limit;
        let mut transport = if h2 {
            "HTTP/2, 200 reader streams per connection (as a browser shares one per origin)"
        } else {
            "HTTP/1.1, one connection per reader stream, POSTs on 64 shared keep-alive connections"
        }
        .to_string();
        let twins = match s.embedded > 0.0 {
            true => crate::http::embed_twins(target.addrs[0], &target.slugs, target.blocks)
                .await
                .into_iter()
                .map(|(post, twin)| (post, Arc::from(twin.as_str())))
                .collect(),
            false => HashMap::new(),
        };
        if s.embedded > 0.0 {
            transport.push_str(&format!(
                "; {:.0} % of readers on embedded pages (another origin, CORS)",
                s.embedded * 100.0
            ));
        }
        if s.pollers > 0.0 {
            transport.push_str(&format!(
                "; {:.0} % of readers long-poll (POST …/poll) instead",
                s.pollers * 100.0
            ));
        }
        let churners = match s.kind {
            Kind::Churn { per_sec } => (per_sec * (s.seconds + s.ramp_up) as f64) as usize,
            _ => 0,
        };
        let most = s.readers + churners + 16;
        let (shared, posts) = Shared::new(
            target.addrs.clone(),
            target.blocks,
            &target.slugs,
            s.pollers,
            most,
            POST_CONNECTIONS,
            h2.then_some(H2_STREAMS),
        );
        for (n, moves) in posts.into_iter().enumerate() {
            tokio::spawn(transport::poster(shared.clone(), n, moves));
        }
        let mut tasks = JoinSet::new();
        if let (Some(url), Some(per_sec)) = (target.redis.clone(), s.elsewhere) {
            let until = Instant::now() + Duration::from_secs(s.ramp_up + s.seconds);
            tasks.spawn(crate::elsewhere::publish(url, per_sec, until));
        }
        let markers_until = Instant::now() + Duration::from_secs(s.ramp_up + s.seconds);
        for (n, (slug, marker)) in shared.markers.iter().enumerate() {
            let until = match s.kind {
                Kind::Ramp => Instant::now() + Duration::from_secs(3600),
                _ => markers_until,
            };
            tasks.spawn(marker::run(
                shared.clone(),
                n,
                slug.clone(),
                marker.clone(),
                until,
            ));
        }
        println!(
            "{}: {} readers over {} posts at {} Hz for {} s against {} ({}); open-file limit {fd_limit}",
            s.name, s.readers, target.slugs.len(), s.hz, s.seconds, target.addrs[0], target.mode()
        );
        let pids = target.pids();
        let baseline = Baseline {
            instances_cpu: target
                .instance_pids()
                .iter()
                .map(|p| cpu_seconds(std::slice::from_ref(p)))
                .collect(),
            redis_cpu: cpu_seconds(&target.redis_pids()),
            instances_in: cluster_bytes_in(&target.addrs).await,
            redis_out: redis_bytes_out(&target.redis_nodes).await,
            server_cpu: cpu_seconds(&pids),
            harness_cpu: cpu_seconds(&me()),
            rss_kib: rss_kib(&pids).0,
            frames: server_counter(&target.addrs, FRAMES).await,
            lag_snapshots: server_counter(&target.addrs, LAG_SNAPSHOTS).await,
        };
        let started = Instant::now();
        let move_until = started + Duration::from_secs(s.ramp_up + s.seconds);
        Run {
            posts: Posts::new(&target.slugs, s.zipf),
            rng: StdRng::seed_from_u64(s.seed),
            tasks,
            spawned: 0,
            most,
            pids,
            started,
            move_until,
            end_at: move_until + Duration::from_secs(1),
            last: (baseline.server_cpu, baseline.harness_cpu, 0, 0),
            baseline,
            timeline: Vec::new(),
            peak_open: 0,
            ramp: (s.kind == Kind::Ramp).then(|| Ramp::new(s.readers, s.seconds)),
            held: (s.kind != Kind::Ramp).then(stats::histogram),
            held_crowd: (s.kind != Kind::Ramp).then(stats::histogram),
            held_near: (s.kind != Kind::Ramp).then(stats::histogram),
            browser: None,
            transport,
            shared,
            twins,
            target,
            s,
        }
    }

    /// Spawns readers as they are due and samples every second, until the
    /// scenario is over.
    pub async fn drive(&mut self) {
        let mut second = tokio::time::interval(Duration::from_secs(1));
        let spawn_every = Duration::from_secs_f64(
            (self.s.ramp_up as f64 / self.s.readers.max(1) as f64).max(0.000_01),
        );
        let mut spawn_tick = tokio::time::interval(spawn_every.max(Duration::from_micros(50)));
        let mut churn = self.churn_interval();
        loop {
            tokio::select! {
                _ = spawn_tick.tick(), if self.spawned < self.arrivals_target() => self.spawn_due(),
                _ = tick(churn.as_mut()), if self.churn_due() => self.spawn_churner(),
                _ = second.tick() => if !self.second().await { break },
            }
        }
        eprintln!();
    }

    /// How many readers the run wants spawned by now, at most.
    fn arrivals_target(&self) -> usize {
        let wanted = self.ramp.as_ref().map_or(self.s.readers, |r| r.target);
        wanted.min(self.most)
    }

    /// Spawns every reader of the crowd that is due, so a short ramp-up is
    /// honoured.
    fn spawn_due(&mut self) {
        let due = match &self.ramp {
            Some(ramp) => ramp.due(),
            None if self.s.ramp_up == 0 => self.s.readers,
            None => {
                let share = self.started.elapsed().as_secs_f64() / self.s.ramp_up as f64;
                ((share * self.s.readers as f64).ceil() as usize).min(self.s.readers)
            }
        };
        while self.spawned < due.min(self.most) {
            let plan = self.crowd_plan();
            self.spawn(plan);
        }
    }

    /// A reader of the first crowd: how long it stays depends on the kind.
    fn crowd_plan(&mut self) -> Plan {
        let (move_until, end_at) = match self.s.kind {
            Kind::Steady => (self.move_until, self.end_at),
            // Readers stay until the ramp stops.
            Kind::Ramp => {
                let end = Instant::now() + Duration::from_secs(3600);
                (end, end)
            }
            // The first crowd leaves evenly over one lifetime after the
            // ramp-up, as the newcomers arrive, so the population holds.
            Kind::Churn { per_sec } => {
                let life = self.churn_life(per_sec);
                let end = self.started
                    + Duration::from_secs(self.s.ramp_up)
                    + life.mul_f64(self.rng.random_range(0.0..1.0));
                (self.move_until, end.min(self.end_at))
            }
        };
        Plan {
            slug: self.posts.pick(&mut self.rng),
            hz: self.s.hz,
            leave_chance: self.s.leave_chance,
            move_until,
            end_at,
            seed: self.rng.random(),
        }
    }

    fn churn_life(&self, per_sec: f64) -> Duration {
        Duration::from_secs_f64(self.s.readers as f64 / per_sec.max(1e-9))
    }

    /// In `Churn`, when the next newcomer is due. Skip, not burst: the
    /// interval waits through the ramp-up unpolled, and must not then fire
    /// every tick it missed at once.
    fn churn_interval(&self) -> Option<Interval> {
        let Kind::Churn { per_sec } = self.s.kind else {
            return None;
        };
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(1e-9)));
        every.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Some(every)
    }

    /// Newcomers arrive once the first crowd is in, until readers stop moving.
    fn churn_due(&self) -> bool {
        matches!(self.s.kind, Kind::Churn { .. })
            && self.spawned >= self.s.readers
            && Instant::now() < self.move_until
            && self.spawned < self.most
    }

    fn spawn_churner(&mut self) {
        let Kind::Churn { per_sec } = self.s.kind else {
            return;
        };
        let plan = Plan {
            slug: self.posts.pick(&mut self.rng),
            hz: self.s.hz,
            leave_chance: 0.0,
            move_until: self.move_until,
            end_at: (Instant::now() + self.churn_life(per_sec)).min(self.end_at),
            seed: self.rng.random(),
        };
        self.spawn(plan);
    }

    fn spawn(&mut self, mut plan: Plan) {
        // Embedded readers, spread evenly: on the twin of the post.
        let share = self.s.embedded;
        let n = self.spawned as f64;
        if ((n + 1.0) * share).floor() > (n * share).floor() {
            if let Some(twin) = self.twins.get(&*plan.slug) {
                plan.slug = twin.clone();
            }
        }
        self.tasks
            .spawn(reader::run(self.shared.clone(), self.spawned, plan));
        self.spawned += 1;
    }

    /// One second's sample; whether the run goes on.
    async fn second(&mut self) -> bool {
        let t = self.started.elapsed().as_secs_f64();
        let stats = &self.shared.stats;
        let histogram = stats.take_second();
        let crowd = stats.crowd.take_second();
        let near = stats.near.take_second();
        if let (Some(seconds), None, true) = (
            self.s.browser_frames,
            &self.browser,
            t - 1.0 >= self.s.ramp_up as f64,
        ) {
            let (addr, slug) = (self.target.addrs[0], self.target.slugs[0].clone());
            self.browser = Some(tokio::spawn(async move {
                crate::browser::frame_times(addr, &slug, seconds).await
            }));
        }
        if t - 1.0 >= self.s.ramp_up as f64 {
            if let Some(held) = self.held_near.as_mut() {
                let _ = held.add(&near);
            }
            if let Some(held) = self.held.as_mut() {
                let _ = held.add(&histogram);
            }
            if let Some(held) = self.held_crowd.as_mut() {
                let _ = held.add(&crowd);
            }
        }
        let crowd_p99_ms = if crowd.is_empty() {
            0.0
        } else {
            crowd.value_at_quantile(0.99) as f64 / 1000.0
        };
        let q = |q: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                histogram.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let (server_cpu, harness_cpu) = (cpu_seconds(&self.pids), cpu_seconds(&me()));
        let deliveries = stats.deliveries.load(Ordering::Relaxed);
        let moves = stats.moves_sent.load(Ordering::Relaxed);
        let open = stats.open_streams.load(Ordering::Relaxed);
        self.peak_open = self.peak_open.max(open);
        let sample = Sample {
            t,
            open,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            crowd_p99_ms,
            deliveries: deliveries - self.last.2,
            moves: moves - self.last.3,
            server_cores: server_cpu - self.last.0,
            harness_cores: harness_cpu - self.last.1,
            server_rss_mib: rss_kib(&self.pids).0 as f64 / 1024.0,
        };
        self.last = (server_cpu, harness_cpu, deliveries, moves);
        eprint!(
            "\r[{t:5.0} s] open {open:>6} | p99 {:>8.2} ms | crowd p99 {:>7.1} ms | {:>6} moves/s | {:>8} deliveries/s | server {:.2} core | harness {:.2} core   ",
            sample.p99_ms, sample.crowd_p99_ms, sample.moves, sample.deliveries, sample.server_cores, sample.harness_cores
        );
        let errors = stats.failed.load(Ordering::Relaxed) + stats.posts_not_204();
        self.timeline.push(sample.clone());
        match self.ramp.as_mut() {
            Some(ramp) => ramp.second(sample.p99_ms, sample.crowd_p99_ms, open, moves, errors),
            None => Instant::now() < self.end_at,
        }
    }

    /// What the run measured, with the command that made it.
    pub async fn report(mut self, command: &str) -> Report {
        let elapsed = self.started.elapsed().as_secs_f64();
        let window = match self.s.kind {
            Kind::Ramp => elapsed,
            _ => (self.s.seconds + self.s.ramp_up) as f64,
        };
        let stats = &self.shared.stats;
        let total = stats.total();
        let crowd = stats.crowd.total();
        // The chart shows the moves' staleness, or where every room was
        // crowded, the density's.
        let charted = match &crowd {
            Some(crowd) if total.is_empty() => crowd,
            _ => &total,
        };
        let server_cpu = cpu_seconds(&self.pids) - self.baseline.server_cpu;
        let harness_cpu = cpu_seconds(&me()) - self.baseline.harness_cpu;
        let peak_rss = rss_kib(&self.pids).1;
        let quantile = |q: f64| {
            if charted.is_empty() {
                0.0
            } else {
                charted.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let cdf = (0..=200)
            .map(|i| {
                let q = f64::from(i) / 200.0;
                (quantile(q.min(0.9999)), q)
            })
            .collect();
        let moves = stats.moves_sent.load(Ordering::Relaxed);
        let frames = server_counter(&self.target.addrs, FRAMES).await - self.baseline.frames;
        let lag_snapshots =
            server_counter(&self.target.addrs, LAG_SNAPSHOTS).await - self.baseline.lag_snapshots;
        let open_samples: Vec<u64> = self
            .timeline
            .iter()
            .map(|t| t.open)
            .filter(|n| *n > 0)
            .collect();
        let mean_open = open_samples.iter().sum::<u64>() as f64 / open_samples.len().max(1) as f64;
        let cluster = match &self.target.redis {
            Some(_) => Some(ClusterFigures {
                instance_cores: self
                    .target
                    .instance_pids()
                    .iter()
                    .zip(&self.baseline.instances_cpu)
                    .map(|(pid, before)| {
                        (cpu_seconds(std::slice::from_ref(pid)) - before) / elapsed
                    })
                    .collect(),
                redis_cores: (cpu_seconds(&self.target.redis_pids()) - self.baseline.redis_cpu)
                    / elapsed,
                redis_out_bytes_per_sec: redis_bytes_out(&self.target.redis_nodes)
                    .await
                    .saturating_sub(self.baseline.redis_out)
                    as f64
                    / elapsed,
                instance_bytes_in_per_sec: cluster_bytes_in(&self.target.addrs)
                    .await
                    .iter()
                    .zip(&self.baseline.instances_in)
                    .map(|(now, before)| (now - before) / elapsed)
                    .collect(),
                elsewhere_moves_per_sec: self.s.elsewhere.unwrap_or(0.0),
            }),
            None => None,
        };
        let report = Report {
            cluster,
            scenario: self.s.name.to_string(),
            command: command.to_string(),
            seed: self.s.seed,
            transport: self.transport.clone(),
            server: self.target.mode(),
            posts: self.target.slugs.len(),
            readers: self.peak_open,
            hz: self.s.hz,
            seconds: elapsed,
            connections_opened: stats.opened.load(Ordering::Relaxed),
            connections_failed: stats.failed.load(Ordering::Relaxed),
            resumed: stats.resumed.load(Ordering::Relaxed),
            post_answers: stats.posts(),
            moves_sent: moves,
            moves_per_sec: moves as f64 / window,
            deliveries_per_sec: (total.len() + crowd.as_ref().map_or(0, |c| c.len())) as f64
                / window,
            bytes_per_sec: stats.bytes.load(Ordering::Relaxed) as f64 / window,
            frames_per_sec: frames / elapsed,
            frames_per_reader_per_sec: frames / elapsed / mean_open.max(1.0),
            lag_snapshots: lag_snapshots as u64,
            staleness_ms: Percentiles::of(&total),
            held_staleness_ms: self.held.as_ref().map(Percentiles::of),
            server_cpu_cores: server_cpu / elapsed,
            server_peak_rss_mib: peak_rss as f64 / 1024.0,
            server_bytes_per_reader: if self.peak_open > 0 {
                (peak_rss.saturating_sub(self.baseline.rss_kib) * 1024) as f64
                    / self.peak_open as f64
            } else {
                0.0
            },
            harness_cpu_cores: harness_cpu / elapsed,
            errors: stats.errors(),
            cross_instance_staleness_ms: (self.target.addrs.len() > 1)
                .then(|| Percentiles::of(&stats.cross())),
            crowd_staleness_ms: crowd.as_ref().map(Percentiles::of),
            held_crowd_staleness_ms: self.held_crowd.as_ref().map(Percentiles::of),
            near_staleness_ms: stats.near.total().as_ref().map(Percentiles::of),
            browser_frame_ms: match self.browser.take() {
                Some(task) => tokio::time::timeout(Duration::from_secs(60), task)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten(),
                None => None,
            },
            held_near_staleness_ms: self
                .held_near
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(Percentiles::of),
            hello_ms: stats.hello().as_ref().map(Percentiles::of),
            knee: self.ramp.take().and_then(|r| r.knee),
            cdf,
            timeline: std::mem::take(&mut self.timeline),
        };
        self.tasks.abort_all();
        report
    }
}

/// Each instance's bytes heard from Redis so far.
async fn cluster_bytes_in(addrs: &[SocketAddr]) -> Vec<f64> {
    let mut each = Vec::new();
    for addr in addrs {
        each.push(
            server_counter(
                std::slice::from_ref(addr),
                "ghostread_cluster_bytes_in_total",
            )
            .await,
        );
    }
    each
}

/// Bytes every Redis node has sent to its clients since it started
/// (`INFO stats`), summed.
async fn redis_bytes_out(nodes: &[String]) -> u64 {
    let mut total = 0;
    for url in nodes {
        let ask = async {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            let info: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut connection)
                .await
                .ok()?;
            info.lines()
                .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        };
        total += ask.await.unwrap_or(0);
    }
    total
}

/// This process, for `cpu_seconds`.
fn me() -> [String; 1] {
    ["self".to_string()]
}

/// The next tick of an interval that may not exist (then: never).
async fn tick(interval: Option<&mut Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
