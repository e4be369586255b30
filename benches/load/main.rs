//! The load harness: simulated readers, each with a real event stream and
//! real position POSTs, against a real ghostread.
//!
//! ```text
//! cargo bench --bench load -- <scenario> [options]
//! scenarios: hot-room, blog, idle-crowd, churn, ramp, cluster (two instances and Redis)
//! options:   --url http://HOST:PORT   drive a running server instead of starting one
//!            --posts a,b,c            its posts (default: read from its index)
//!            --readers N --hz F --seconds N --ramp-up N --tick-ms N --seed N
//!            --out DIR                where the JSON and HTML go (target/ghostread-load)
//!            --compare a.json b.json  the change between two runs
//! ```
//!
//! Staleness: a move's POST is sent at t0; for every other reader of that
//! post, the time until it sees that position or a newer one of the ghost.

mod http;
mod ramp;
mod reader;
mod report;
mod scenario;
mod stats;
mod target;
mod transport;
mod watcher;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use reader::{Plan, Shared};
use report::{Percentiles, Report, Sample};
use scenario::{parse, Scenario};
use target::{cpu_seconds, rss_kib, Target};

/// Event-stream frames the server has written, summed over its instances,
/// from `ghostread_frames_sent_total`; 0 where `/metrics` does not say (a
/// server that is gone must not cost the run its report).
/// A counter from the servers' `/metrics`, summed over the instances; 0
/// where one cannot be read.
async fn server_counter(addrs: &[std::net::SocketAddr], name: &str) -> f64 {
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

const FRAMES: &str = "ghostread_frames_sent_total";
const LAG_SNAPSHOTS: &str = "ghostread_lag_snapshots_total";

/// Raises this process's open-file limit as far as it may go, and says how
/// far that is.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

fn main() {
    let cli = parse();
    let fd_limit = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(
        cli.scenario.clone(),
        cli.url.clone(),
        cli.posts.clone(),
        fd_limit,
        &cli.command,
    ));
    print!("\n{}", report.table());
    match report.save(&cli.out) {
        Ok((json, html)) => println!("report: {} and {}", json.display(), html.display()),
        Err(error) => eprintln!("cannot write the report in {}: {error}", cli.out.display()),
    }
    let problems = report.problems();
    if cli.expect_clean && !problems.is_empty() {
        eprintln!("not a clean run: {}", problems.join("; "));
        std::process::exit(1);
    }
}

async fn run(
    s: Scenario,
    url: Option<String>,
    posts: Option<Vec<String>>,
    fd_limit: u64,
    command: &str,
) -> Report {
    let target = match &url {
        Some(url) => Target::remote(url, posts).await,
        None => Target::spawn(s.posts, s.tick_ms, s.instances),
    };
    let ramping = s.name == "ramp";
    // Past the open-file limit, readers ride HTTP/2 streams, 200 to a connection.
    let h2 = ramping || s.readers as u64 + 300 > fd_limit;
    let transport = if h2 {
        "HTTP/2, 200 reader streams per connection (as a browser shares one per origin)".to_string()
    } else {
        "HTTP/1.1, one connection per reader stream, POSTs on 64 shared keep-alive connections"
            .to_string()
    };
    let total_readers =
        s.readers + (s.churn_per_sec * (s.seconds + s.ramp_up) as f64) as usize + 16;
    let shared = Shared::new(
        target.addrs.clone(),
        target.blocks,
        total_readers,
        64,
        h2.then_some(200),
    );
    println!("{}: {} readers over {} posts at {} Hz for {} s against {} ({}); open-file limit {fd_limit}",
        s.name, s.readers, target.slugs.len(), s.hz, s.seconds, target.addrs[0], target.mode());

    let mut rng = StdRng::seed_from_u64(s.seed);
    let weights: Vec<f64> = (0..target.slugs.len())
        .map(|i| if s.zipf { 1.0 / (i + 1) as f64 } else { 1.0 })
        .collect();
    let weight_sum: f64 = weights.iter().sum();
    let slugs: Vec<Arc<str>> = target.slugs.iter().map(|s| Arc::from(s.as_str())).collect();
    let pick = move |rng: &mut StdRng| -> Arc<str> {
        let mut x = rng.random_range(0.0..weight_sum);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return slugs[i].clone();
            }
            x -= w;
        }
        slugs[slugs.len() - 1].clone()
    };

    let pids = target.pids();
    let me = ["self".to_string()];
    let started = Instant::now();
    let move_until = started + Duration::from_secs(s.ramp_up + s.seconds);
    let end_at = move_until + Duration::from_secs(1);
    let (server_cpu0, harness_cpu0) = (cpu_seconds(&pids), cpu_seconds(&me));
    let rss0 = rss_kib(&pids).0;
    let frames0 = server_counter(&target.addrs, FRAMES).await;
    let lag0 = server_counter(&target.addrs, LAG_SNAPSHOTS).await;
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_reader = 0usize;
    let mut timeline: Vec<Sample> = Vec::new();
    let mut peak_open = 0u64;
    let mut last = (server_cpu0, harness_cpu0, 0u64, 0u64);
    let mut ramp = ramping.then(|| ramp::Ramp::new(s.readers, s.seconds));
    // The seconds that began with every reader in (see `Report`).
    let mut held = (!ramping).then(stats::histogram);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let spawn_every =
        Duration::from_secs_f64((s.ramp_up as f64 / s.readers.max(1) as f64).max(0.000_01));
    // Skip, not burst: the interval waits through the ramp-up unpolled, and
    // must not then fire every tick it missed at once.
    let mut churn_every = (s.churn_per_sec > 0.0).then(|| {
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / s.churn_per_sec));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        every
    });
    let churn_life = Duration::from_secs_f64(s.readers as f64 / s.churn_per_sec.max(1e-9));
    let mut spawn_tick = tokio::time::interval(spawn_every.max(Duration::from_micros(50)));
    loop {
        tokio::select! {
            _ = spawn_tick.tick(), if next_reader < ramp.as_ref().map_or(s.readers, |r| r.target) && next_reader < total_readers => {
                // Spawn as many as are due, so a short ramp-up is honoured.
                let due = match &ramp {
                    Some(ramp) => ramp.due(),
                    None if s.ramp_up == 0 => s.readers,
                    None => (((started.elapsed().as_secs_f64() / s.ramp_up as f64) * s.readers as f64).ceil() as usize).min(s.readers),
                };
                while next_reader < due {
                    let life_end = if s.churn_per_sec > 0.0 {
                        // The first crowd leaves evenly over one lifetime after the ramp-up,
                        // as the newcomers arrive, so the population holds steady.
                        started + Duration::from_secs(s.ramp_up) + churn_life.mul_f64(rng.random_range(0.0..1.0))
                    } else if ramping { Instant::now() + Duration::from_secs(3600) } else { end_at };
                    let plan = Plan { slug: pick(&mut rng), hz: s.hz, leave_chance: s.leave_chance,
                        move_until: if ramping { life_end } else { move_until }, end_at: life_end.min(if ramping { life_end } else { end_at }), seed: rng.random() };
                    tasks.spawn(reader::run(shared.clone(), next_reader, plan));
                    next_reader += 1;
                }
            }
            _ = async { match churn_every.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } },
                if next_reader >= s.readers && Instant::now() < move_until && next_reader < total_readers => {
                let plan = Plan { slug: pick(&mut rng), hz: s.hz, leave_chance: 0.0, move_until,
                    end_at: (Instant::now() + churn_life).min(end_at), seed: rng.random() };
                tasks.spawn(reader::run(shared.clone(), next_reader, plan));
                next_reader += 1;
            }
            _ = second.tick() => {
                let t = started.elapsed().as_secs_f64();
                let histogram = shared.stats.take_second();
                if let Some(held) = held.as_mut().filter(|_| t - 1.0 >= s.ramp_up as f64) {
                    let _ = held.add(&histogram);
                }
                let q = |q: f64| if histogram.is_empty() { 0.0 } else { histogram.value_at_quantile(q) as f64 / 1000.0 };
                let (server_cpu, harness_cpu) = (cpu_seconds(&pids), cpu_seconds(&me));
                let deliveries = shared.stats.deliveries.load(Ordering::Relaxed);
                let moves = shared.stats.moves_sent.load(Ordering::Relaxed);
                let open = shared.stats.open_streams.load(Ordering::Relaxed);
                peak_open = peak_open.max(open);
                let sample = Sample {
                    t, open, p50_ms: q(0.5), p99_ms: q(0.99),
                    deliveries: deliveries - last.2, moves: moves - last.3,
                    server_cores: server_cpu - last.0, harness_cores: harness_cpu - last.1,
                    server_rss_mib: rss_kib(&pids).0 as f64 / 1024.0,
                };
                last = (server_cpu, harness_cpu, deliveries, moves);
                eprint!("\r[{t:5.0} s] open {open:>6} | p99 {:>8.2} ms | {:>6} moves/s | {:>8} deliveries/s | server {:.2} core | harness {:.2} core   ",
                    sample.p99_ms, sample.moves, sample.deliveries, sample.server_cores, sample.harness_cores);
                timeline.push(sample.clone());
                if let Some(ramp) = ramp.as_mut() {
                    let errors = shared.stats.failed.load(Ordering::Relaxed) + shared.stats.posts_not_204();
                    if !ramp.second(sample.p99_ms, open, moves, errors) {
                        break;
                    }
                } else if Instant::now() >= end_at {
                    break;
                }
            }
        }
    }
    eprintln!();
    let elapsed = started.elapsed().as_secs_f64();
    let window = if ramping {
        elapsed
    } else {
        (s.seconds + s.ramp_up) as f64
    };
    let total = shared.stats.total();
    let server_cpu = cpu_seconds(&pids) - server_cpu0;
    let harness_cpu = cpu_seconds(&me) - harness_cpu0;
    let peak_rss = rss_kib(&pids).1;
    let quantile = |q: f64| {
        if total.is_empty() {
            0.0
        } else {
            total.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let cdf = (0..=200)
        .map(|i| {
            let q = f64::from(i) / 200.0;
            (quantile(q.min(0.9999)), q)
        })
        .collect();
    let moves = shared.stats.moves_sent.load(Ordering::Relaxed);
    let frames = server_counter(&target.addrs, FRAMES).await - frames0;
    let lag_snapshots = server_counter(&target.addrs, LAG_SNAPSHOTS).await - lag0;
    let open_samples: Vec<u64> = timeline.iter().map(|t| t.open).filter(|n| *n > 0).collect();
    let mean_open = open_samples.iter().sum::<u64>() as f64 / open_samples.len().max(1) as f64;
    let report = Report {
        scenario: s.name.clone(),
        command: command.to_string(),
        seed: s.seed,
        transport,
        server: target.mode(),
        posts: target.slugs.len(),
        readers: peak_open,
        hz: s.hz,
        seconds: elapsed,
        connections_opened: shared.stats.opened.load(Ordering::Relaxed),
        connections_failed: shared.stats.failed.load(Ordering::Relaxed),
        resumed: shared.stats.resumed.load(Ordering::Relaxed),
        post_answers: shared.stats.posts(),
        moves_sent: moves,
        moves_per_sec: moves as f64 / window,
        deliveries_per_sec: total.len() as f64 / window,
        bytes_per_sec: shared.stats.bytes.load(Ordering::Relaxed) as f64 / window,
        frames_per_sec: frames / elapsed,
        frames_per_reader_per_sec: frames / elapsed / mean_open.max(1.0),
        lag_snapshots: lag_snapshots as u64,
        staleness_ms: Percentiles::of(&total),
        held_staleness_ms: held.as_ref().map(Percentiles::of),
        server_cpu_cores: server_cpu / elapsed,
        server_peak_rss_mib: peak_rss as f64 / 1024.0,
        server_bytes_per_reader: if peak_open > 0 {
            (peak_rss.saturating_sub(rss0) * 1024) as f64 / peak_open as f64
        } else {
            0.0
        },
        harness_cpu_cores: harness_cpu / elapsed,
        errors: shared.stats.errors(),
        cross_instance_staleness_ms: (target.addrs.len() > 1)
            .then(|| Percentiles::of(&shared.stats.cross())),
        knee: ramp.and_then(|r| r.knee),
        cdf,
        timeline,
    };
    tasks.abort_all();
    drop(target);
    report
}
