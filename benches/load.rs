//! The load harness: real readers (an SSE stream and a keep-alive POST
//! connection each) against a real ghostread process, measuring how stale
//! the positions are that readers see, and what it costs the server.
//!
//! `cargo bench --bench load -- hot-room [--readers 200] [--hz 10] [--seconds 20] [--tick-ms 10]`
//!
//! Staleness: a move's POST is sent at t0; for every other reader, the time
//! until it sees that position or a newer one of the same ghost.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Options {
    scenario: String,
    readers: usize,
    hz: f64,
    seconds: u64,
    tick_ms: u64,
}

fn parse_options() -> Options {
    let mut options = Options {
        scenario: String::new(),
        readers: 200,
        hz: 10.0,
        seconds: 20,
        tick_ms: 10,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let bad = |what: &str| -> ! {
            eprintln!("{what} needs a number, got {value:?}");
            std::process::exit(2)
        };
        match args[i].as_str() {
            "--readers" => options.readers = value.parse().unwrap_or_else(|_| bad("--readers")),
            "--hz" => options.hz = value.parse().unwrap_or_else(|_| bad("--hz")),
            "--seconds" => options.seconds = value.parse().unwrap_or_else(|_| bad("--seconds")),
            "--tick-ms" => options.tick_ms = value.parse().unwrap_or_else(|_| bad("--tick-ms")),
            name if !name.starts_with('-') && options.scenario.is_empty() => {
                options.scenario = name.to_string();
                i += 1;
                continue;
            }
            other => {
                eprintln!("unknown option {other}; usage: load hot-room [--readers N] [--hz F] [--seconds N] [--tick-ms N]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    match options.scenario.as_str() {
        "hot-room" => {}
        "" => {
            eprintln!("name a scenario: hot-room");
            std::process::exit(2);
        }
        other => {
            eprintln!("unknown scenario {other}; this harness runs: hot-room");
            std::process::exit(2);
        }
    }
    options.readers = options.readers.clamp(2, 5_000);
    options.hz = options.hz.clamp(0.1, 50.0);
    options.seconds = options.seconds.clamp(1, 600);
    options
}

/// The server under test, as its own process so its CPU is its own.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: std::path::PathBuf,
}

fn start_server(tick_ms: u64) -> Server {
    let dir = std::env::temp_dir().join(format!("ghostread-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("posts")).expect("make the posts folder");
    let body: Vec<String> = (0..60)
        .map(|i| format!("Paragraph {i} of the hot post."))
        .collect();
    let post = format!(
        "---\ntitle: Hot\ndate: 2026-01-01\n---\n{}\n",
        body.join("\n\n")
    );
    std::fs::write(dir.join("posts/hot.md"), post).expect("write the post");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghostread"))
        .args(["--addr", "127.0.0.1:0", "--log", "info"])
        .arg("--posts")
        .arg(dir.join("posts"))
        .arg("--data")
        .arg(dir.join("data"))
        .args([
            "--tick-ms",
            &tick_ms.to_string(),
            "--max-connections",
            "19000",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the ghostread binary");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .expect("read stderr");
        if let Some(at) = line.find("http://") {
            break line[at + 7..]
                .split_whitespace()
                .next()
                .expect("address")
                .parse()
                .expect("socket address");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        addr,
        _dir: dir,
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0 // USER_HZ is 100 on Linux.
}

fn peak_rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What every reader shares: when each ghost's moves were sent, and which
/// ghost id is which reader.
struct Shared {
    start: Instant,
    /// `sent[reader][seq]`: nanoseconds after `start` that move `seq` was sent.
    sent: Vec<Vec<AtomicU64>>,
    ids: RwLock<HashMap<String, usize>>,
    posts_ok: AtomicU64,
    posts_failed: AtomicU64,
    /// Moves whose POST was sent, over all readers.
    moves_sent: AtomicU64,
}

fn main() {
    let options = parse_options();
    let server = start_server(options.tick_ms);
    let pid = server.child.id().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let max_moves = (options.hz * options.seconds as f64) as usize + 16;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        sent: (0..options.readers)
            .map(|_| (0..max_moves).map(|_| AtomicU64::new(u64::MAX)).collect())
            .collect(),
        ids: RwLock::new(HashMap::new()),
        posts_ok: AtomicU64::new(0),
        posts_failed: AtomicU64::new(0),
        moves_sent: AtomicU64::new(0),
    });
    println!(
        "scenario hot-room: {} readers on one post, {} Hz each, {} s, tick {} ms, server pid {pid} on {}",
        options.readers, options.hz, options.seconds, options.tick_ms, server.addr
    );
    let report = runtime.block_on(run(&options, server.addr, shared.clone(), &pid));
    let mut server = server;
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = server.child.wait();
    print!("{report}");
}

async fn run(options: &Options, addr: SocketAddr, shared: Arc<Shared>, pid: &str) -> String {
    // Everyone joins first, so every move has every other reader watching.
    let mut streams = Vec::new();
    for index in 0..options.readers {
        let (stream, token) = open_stream(addr, index, &shared).await;
        streams.push((stream, token));
    }
    let period = Duration::from_secs_f64(1.0 / options.hz);
    let moving_until = Instant::now() + Duration::from_secs(options.seconds);
    let cpu_before = cpu_seconds(pid);
    let harness_before = cpu_seconds("self");
    let wall = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (stream, token)) in streams.into_iter().enumerate() {
        let shared = shared.clone();
        tasks.spawn(watch(
            stream,
            index,
            shared.clone(),
            moving_until + Duration::from_secs(1),
        ));
        tasks.spawn(async move {
            move_loop(addr, index, token, shared, period, moving_until).await;
            Histogram::<u64>::new(3).expect("histogram")
        });
    }
    let mut staleness = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    while let Some(done) = tasks.join_next().await {
        if let Ok(histogram) = done {
            let _ = staleness.add(histogram);
        }
    }
    let elapsed = wall.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(pid) - cpu_before;
    let harness_cpu = cpu_seconds("self") - harness_before;
    let ms = |q: f64| staleness.value_at_quantile(q) as f64 / 1000.0;
    let moves = shared.moves_sent.load(Ordering::Relaxed);
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "moves sent           {moves} ({:.0}/s)",
        moves as f64 / options.seconds as f64
    );
    let _ = writeln!(
        out,
        "POST answers         {} ok, {} not 204",
        shared.posts_ok.load(Ordering::Relaxed),
        shared.posts_failed.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "positions seen       {} ({:.0}/s)",
        staleness.len(),
        staleness.len() as f64 / elapsed
    );
    let _ = writeln!(
        out,
        "staleness ms         p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        staleness.max() as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "server CPU           {server_cpu:.2} s over {elapsed:.1} s = {:.2} of a core",
        server_cpu / elapsed
    );
    let _ = writeln!(out, "server peak RSS      {} KiB", peak_rss_kib(pid));
    let _ = writeln!(
        out,
        "harness CPU          {:.2} of a core",
        harness_cpu / elapsed
    );
    out
}

async fn open_stream(addr: SocketAddr, index: usize, shared: &Shared) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect for the stream");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(b"GET /posts/hot/events HTTP/1.1\r\nhost: load\r\n\r\n")
        .await
        .expect("open the stream");
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.expect("read hello");
        assert!(n > 0, "the stream closed before hello");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(at) = text.find("event: hello\ndata: ") {
            let line = text[at + 19..].lines().next().unwrap_or("");
            if let Ok(hello) = serde_json::from_str::<serde_json::Value>(line) {
                let id = hello["id"].as_str().expect("hello.id").to_string();
                let token = hello["token"].as_str().expect("hello.token").to_string();
                shared.ids.write().insert(id, index);
                return (stream, token);
            }
        }
    }
}

/// Moves one reader's ghost `hz` times a second; each position encodes the
/// move's sequence number so watchers can tell which move they see.
async fn move_loop(
    addr: SocketAddr,
    index: usize,
    token: String,
    shared: Arc<Shared>,
    period: Duration,
    until: Instant,
) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    // Spread the readers' phases over the period.
    tokio::time::sleep(period.mul_f64((index as f64 * 0.618_034) % 1.0)).await;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0usize;
    let mut response = vec![0u8; 1024];
    while Instant::now() < until && seq < shared.sent[index].len() {
        ticker.tick().await;
        let pos = seq as f64 / 1000.0;
        let body = format!("{{\"token\":\"{token}\",\"pos\":{pos}}}");
        let request = format!(
            "POST /posts/hot/position HTTP/1.1\r\nhost: load\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = shared.start.elapsed().as_nanos() as u64;
        shared.sent[index][seq].store(sent, Ordering::Relaxed);
        shared.moves_sent.fetch_add(1, Ordering::Relaxed);
        if stream.write_all(request.as_bytes()).await.is_err() {
            shared.posts_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let n = stream.read(&mut response).await.unwrap_or(0);
        if response[..n].starts_with(b"HTTP/1.1 204") {
            shared.posts_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.posts_failed.fetch_add(1, Ordering::Relaxed);
        }
        seq += 1;
    }
}

/// Reads one reader's stream until `until`, recording the staleness of every
/// other ghost's moves in microseconds.
async fn watch(
    mut stream: TcpStream,
    me: usize,
    shared: Arc<Shared>,
    until: Instant,
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut last_seen: Vec<Option<usize>> = vec![None; shared.sent.len()];
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return histogram,
        };
        let now = shared.start.elapsed().as_nanos() as u64;
        buf.extend_from_slice(&chunk[..n]);
        // Chunk headers and SSE framing are skipped by looking for data lines.
        let mut consumed = 0;
        while let Some(end) = buf[consumed..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| consumed + p)
        {
            let line = &buf[consumed..end];
            consumed = end + 1;
            let Some(json) = line.strip_prefix(b"data: {\"moves\":") else {
                continue;
            };
            let Ok(moves) =
                serde_json::from_slice::<Vec<Move>>(&json[..json.len().saturating_sub(1)])
            else {
                continue;
            };
            let ids = shared.ids.read();
            for m in moves {
                let Some(&ghost) = ids.get(m.id.as_str()) else {
                    continue;
                };
                if ghost == me {
                    continue;
                }
                let seq = (m.pos * 1000.0).round() as usize;
                let from = last_seen[ghost].map_or(0, |s| s + 1);
                for s in from..=seq.min(shared.sent[ghost].len() - 1) {
                    let sent = shared.sent[ghost][s].load(Ordering::Relaxed);
                    if sent != u64::MAX && now >= sent {
                        let _ = histogram.record(((now - sent) / 1000).max(1));
                    }
                }
                if last_seen[ghost].is_none_or(|s| seq > s) {
                    last_seen[ghost] = Some(seq);
                }
            }
        }
        buf.drain(..consumed);
    }
}

#[derive(serde::Deserialize)]
struct Move {
    id: String,
    pos: f64,
}
