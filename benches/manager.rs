//! The manager alone, through its handle, no sockets: commands per second
//! for join, move and leave mixes, and the cost of one tick when 1, 100 or
//! 10,000 rooms changed.
//!
//! `cargo bench --bench manager`

use std::sync::Arc;
use std::time::{Duration, Instant};

use ghostread::internals::{CrowdRule, Ghosts, JoinRequest, Settings};
use ghostread::internals::{EventStream, Metrics, Slug, StreamParts, Totals};

fn settings(tick: Duration, dir: &std::path::Path) -> Settings {
    Settings {
        tick,
        resume_window: Duration::from_secs(30),
        moves_per_sec: 1_000_000,
        max_readers: 10_000_000,
        max_readers_per_post: 10_000_000,
        max_streams_per_address: 10_000_000,
        data_dir: dir.to_path_buf(),
        save_interval: Duration::from_secs(1),
        count_after: Duration::from_secs(5),
        away_after: Duration::from_secs(90),
        let_go: Duration::from_secs(120),
        heat_map: true,
        crowd: CrowdRule::OFF,
    }
}

fn slug(n: usize) -> Slug {
    Slug::parse(&format!("post-{n}")).expect("valid slug")
}

fn request(n: usize) -> JoinRequest {
    JoinRequest {
        slug: slug(n),
        blocks: 60,
        resume: None,
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        watch: false,
    }
}

async fn wait_for(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !what() {
        assert!(
            Instant::now() < deadline,
            "the manager did not catch up within 120 s"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Joins `count` ghosts over `rooms` posts from `tasks` concurrent callers.
async fn join_many(ghosts: &Ghosts, count: usize, rooms: usize, tasks: usize) -> Vec<StreamParts> {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let ghosts = ghosts.clone();
        set.spawn(async move {
            let mut parts = Vec::new();
            for i in (t..count).step_by(tasks) {
                parts.push(ghosts.join(request(i % rooms)).await.expect("join"));
            }
            parts
        });
    }
    let mut all = Vec::new();
    while let Some(parts) = set.join_next().await {
        all.extend(parts.expect("join task"));
    }
    all
}

fn rate(label: &str, count: usize, took: Duration) {
    println!(
        "{label:<44} {count:>9} in {:>7.1} ms = {:>10.0}/s",
        took.as_secs_f64() * 1e3,
        count as f64 / took.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("ghostread-bench-manager-{}", std::process::id()));
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::default());
        let ghosts = Ghosts::spawn(settings(Duration::from_millis(10), &dir), Totals::new(), metrics.clone());

        // Joins: 20,000 readers over 100 posts.
        let started = Instant::now();
        let parts = join_many(&ghosts, 20_000, 100, 4).await;
        rate("join (20,000 readers, 100 posts)", parts.len(), started.elapsed());
        let ids: Vec<_> = parts.iter().map(|p| p.ghost.clone()).collect();

        // Moves: 1,000,000 from 4 senders, random ghosts.
        let moves = 1_000_000;
        let before = metrics.moves_received.get();
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for t in 0..4usize {
            let ghosts = ghosts.clone();
            let ids = ids.clone();
            set.spawn(async move {
                let mut x = t as u64 + 1;
                for i in 0..moves / 4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = ids[(x % ids.len() as u64) as usize].clone();
                    ghosts.move_to(id, (i % 60) as f64).await.expect("move");
                }
            });
        }
        while set.join_next().await.is_some() {}
        wait_for(|| metrics.moves_received.get() - before >= moves as u64).await;
        rate("move (1,000,000, 4 senders)", moves, started.elapsed());
        println!(
            "    coalesced away: {:.1} %",
            100.0 * metrics.moves_coalesced.get() as f64 / metrics.moves_received.get() as f64
        );

        // Leaves: every stream dropped at once.
        let started = Instant::now();
        let count = parts.len();
        drop(parts.into_iter().map(|p| EventStream::new(p, Duration::from_secs(15), metrics.clone())).collect::<Vec<_>>());
        wait_for(|| metrics.ghosts.get() == 0).await;
        rate("leave (20,000 streams dropped)", count, started.elapsed());

        // Churn: join, 8 moves, leave, 20,000 times from 4 callers.
        let started = Instant::now();
        let leaves_before = metrics.leaves.get();
        let mut set = tokio::task::JoinSet::new();
        for t in 0..4usize {
            let ghosts = ghosts.clone();
            let metrics = metrics.clone();
            set.spawn(async move {
                for i in 0..5_000usize {
                    let parts = ghosts.join(request((t * 5_000 + i) % 100)).await.expect("join");
                    for m in 0..8 {
                        ghosts.move_to(parts.ghost.clone(), m as f64).await.expect("move");
                    }
                    drop(EventStream::new(parts, Duration::from_secs(15), metrics.clone()));
                }
            });
        }
        while set.join_next().await.is_some() {}
        wait_for(|| metrics.leaves.get() - leaves_before >= 20_000).await;
        rate("churn commands (join + 8 moves + leave) x 20,000", 20_000 * 10, started.elapsed());
        ghosts.shutdown().await;

        // Tick cost by the number of rooms that changed.
        for rooms in [1usize, 100, 10_000] {
            let metrics = Arc::new(Metrics::default());
            let ghosts = Ghosts::spawn(settings(Duration::from_millis(50), &dir), Totals::new(), metrics.clone());
            let parts = join_many(&ghosts, rooms, rooms, 1).await;
            let rounds = 20;
            let (count_before, sum_before) = (metrics.tick_seconds.count(), metrics.tick_seconds.sum());
            for round in 0..rounds {
                let target = metrics.moves_received.get() + rooms as u64;
                for p in &parts {
                    ghosts.move_to(p.ghost.clone(), (round % 60) as f64).await.expect("move");
                }
                wait_for(|| metrics.moves_received.get() >= target).await;
                // Let the tick that carries these moves run.
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            let ticks = metrics.tick_seconds.count() - count_before;
            let spent = metrics.tick_seconds.sum() - sum_before;
            let per_tick = spent / ticks.max(1) as u32;
            println!(
                "tick with {rooms:>6} changed rooms: {ticks:>3} ticks, mean {:>9.1} µs = {:>6.3} µs per room",
                per_tick.as_secs_f64() * 1e6,
                spent.as_secs_f64() * 1e6 / (rounds * rooms) as f64
            );
            drop(parts);
            ghosts.shutdown().await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
