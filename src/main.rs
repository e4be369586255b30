//! The `ghostread` binary: command line → [`Config`] → [`ghostread::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ghostread::{Config, WebSource};

/// A blog server where readers see each other as ghosts in the margin, live.
///
/// Every flag has an environment twin (GHOSTREAD_ADDR for --addr, and so on).
#[derive(Parser, Debug)]
#[command(name = "ghostread", version)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "GHOSTREAD_ADDR", default_value = "127.0.0.1:4000")]
    addr: SocketAddr,
    /// Folder of Markdown posts; changes show up without a restart.
    #[arg(long, env = "GHOSTREAD_POSTS", default_value = "posts")]
    posts: PathBuf,
    /// Folder for the all-time reader counts (created when missing).
    #[arg(long, env = "GHOSTREAD_DATA", default_value = "data")]
    data: PathBuf,
    /// Serve /web/ from this folder instead of the copy built into the binary
    /// (for editing CSS and JS without rebuilding).
    #[arg(long, env = "GHOSTREAD_WEB")]
    web: Option<PathBuf>,
    /// The blog's name, shown in every page's header.
    #[arg(long, env = "GHOSTREAD_TITLE", default_value = "ghostread")]
    title: String,
    /// The site's public address, e.g. https://blog.example.com: the feed,
    /// the sitemap and link previews need absolute links.
    #[arg(long, env = "GHOSTREAD_BASE_URL", value_parser = ghostread::parse_base_url)]
    base_url: Option<String>,
    /// Seconds a client may take to send a request's headers, and that an
    /// idle keep-alive connection stays open.
    #[arg(long, env = "GHOSTREAD_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_secs: u64,
    /// Seconds an HTTP/2 connection with no request or stream open stays
    /// open before the server closes it.
    #[arg(long, env = "GHOSTREAD_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_secs: u64,
    /// Seconds a new reader's stream must be held before it counts in the
    /// post's all-time total, unless it sends a position sooner (which
    /// counts it at once). Keeps streams that no reader holds (a
    /// cross-origin page's EventSource) out of the count. 0: count at once.
    #[arg(long, env = "GHOSTREAD_COUNT_AFTER_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    count_after_secs: u64,
    /// Seconds without scrolling after which a reader is shown away
    /// (dimmed) to the others; told to every page.
    #[arg(long, env = "GHOSTREAD_AWAY_AFTER_SECS", default_value_t = 90,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    away_after_secs: u64,
    /// Seconds a hidden tab keeps its stream before it lets go (its ghost
    /// leaves, and comes back when the tab is shown); told to every page.
    #[arg(long, env = "GHOSTREAD_LET_GO_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    let_go_secs: u64,
    /// Do not keep the reading heat map (to measure what it costs).
    #[arg(long, env = "GHOSTREAD_NO_HEAT_MAP")]
    no_heat_map: bool,
    /// Most connections open at once; more are answered 503.
    #[arg(long, env = "GHOSTREAD_MAX_CONNECTIONS", default_value_t = 19_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Most connections open at once from one client address (IPv6: its
    /// /64), trusted proxies aside; more are answered 429.
    #[arg(long, env = "GHOSTREAD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_address: u64,
    /// Milliseconds per tick: moves are coalesced and sent once per tick.
    #[arg(long, env = "GHOSTREAD_TICK_MS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    tick_ms: u64,
    /// A post with more live readers than this is crowded: its readers get
    /// the number of readers at each paragraph instead of every ghost's
    /// moves. 0 turns crowd mode off.
    #[arg(long, env = "GHOSTREAD_CROWD", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    crowd: u64,
    /// Least milliseconds between two updates of a crowded post's readers.
    #[arg(long, env = "GHOSTREAD_CROWD_INTERVAL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    crowd_interval_ms: u64,
    /// Seconds a long-poll (the fallback for proxies that hold back event
    /// streams) waits for events; keep it under your proxies' read timeout.
    #[arg(long, env = "GHOSTREAD_POLL_WAIT_SECS", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    poll_wait_secs: u64,
    /// Seconds a long-poller may go without polling before its ghost leaves.
    #[arg(long, env = "GHOSTREAD_POLL_GONE_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    poll_gone_secs: u64,
    /// Seconds between heartbeat comments on an idle event stream; keep it
    /// under your proxy's or load balancer's idle timeout.
    #[arg(long, env = "GHOSTREAD_HEARTBEAT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_secs: u64,
    /// Seconds a closed stream's ghost can be resumed (same id and colour).
    #[arg(long, env = "GHOSTREAD_RESUME_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    resume_secs: u64,
    /// Position updates allowed per reader per second; more get 429.
    #[arg(long, env = "GHOSTREAD_MOVES_PER_SEC", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    moves_per_sec: u32,
    /// Event streams one client address (IPv6: its /64) may open a second,
    /// and at once; more get 429.
    #[arg(long, env = "GHOSTREAD_JOINS_PER_SEC", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    joins_per_sec: u32,
    /// Resumes or takeovers of one reader's ghost a second; more get 429.
    #[arg(long, env = "GHOSTREAD_RESUMES_PER_SEC", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    resumes_per_sec: u32,
    /// Most live readers on the whole server; more get 503.
    #[arg(long, env = "GHOSTREAD_MAX_READERS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_readers: u64,
    /// Most live readers on one post; more get 503.
    #[arg(long, env = "GHOSTREAD_MAX_READERS_PER_POST", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_readers_per_post: u64,
    /// Most live event streams from one client address; more get 429.
    #[arg(long, env = "GHOSTREAD_MAX_STREAMS_PER_ADDRESS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_streams_per_address: u64,
    /// A reverse proxy whose X-Forwarded-For header is trusted for the client
    /// address (repeat for several; comma-separated in the environment).
    #[arg(
        long = "trust-proxy",
        env = "GHOSTREAD_TRUST_PROXY",
        value_delimiter = ','
    )]
    trust_proxy: Vec<std::net::IpAddr>,
    /// Milliseconds between saves of the reader counts (when they changed).
    #[arg(long, env = "GHOSTREAD_SAVE_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    save_interval_ms: u64,
    /// Serve HTTPS (and HTTP/2 to browsers, by ALPN) on the same port with
    /// this PEM certificate chain; reloaded when the file changes.
    #[arg(
        long,
        env = "GHOSTREAD_TLS_CERT",
        requires = "tls_key",
        value_name = "PEM"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "GHOSTREAD_TLS_KEY",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    tls_key: Option<PathBuf>,
    /// Cluster mode: share readers with other instances through this Redis
    /// (redis://HOST:PORT). Off by default: one instance needs nothing else.
    #[arg(long, env = "GHOSTREAD_REDIS")]
    redis: Option<String>,
    /// Log level: error, warn, info, debug (every request) or trace.
    #[arg(long, env = "GHOSTREAD_LOG", default_value = "info")]
    log: tracing::Level,
    /// Log lines as text for people, or one JSON object per line for log
    /// shippers. Text has colours only when it goes to a terminal.
    #[arg(long, env = "GHOSTREAD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl Args {
    fn into_config(self) -> Config {
        let defaults = Config::default();
        Config {
            addr: self.addr,
            site_title: self.title,
            base_url: self.base_url,
            posts_dir: self.posts,
            data_dir: self.data,
            web: self.web.map_or(WebSource::Embedded, WebSource::Dir),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            count_after: Duration::from_secs(self.count_after_secs),
            away_after: Duration::from_secs(self.away_after_secs),
            let_go: Duration::from_secs(self.let_go_secs),
            heat_map: !self.no_heat_map,
            max_connections: whole(self.max_connections),
            max_connections_per_address: whole(self.max_connections_per_address),
            tick: Duration::from_millis(self.tick_ms),
            crowd: whole(self.crowd),
            crowd_interval: Duration::from_millis(self.crowd_interval_ms),
            poll_wait: Duration::from_secs(self.poll_wait_secs),
            poll_gone: Duration::from_secs(self.poll_gone_secs),
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            resume_window: Duration::from_secs(self.resume_secs),
            moves_per_sec: self.moves_per_sec,
            joins_per_sec: self.joins_per_sec,
            resumes_per_sec: self.resumes_per_sec,
            max_readers: whole(self.max_readers),
            max_readers_per_post: whole(self.max_readers_per_post),
            max_streams_per_address: whole(self.max_streams_per_address),
            trusted_proxies: self.trust_proxy,
            save_interval: Duration::from_millis(self.save_interval_ms),
            redis: self.redis,
            tls: self.tls_cert.zip(self.tls_key),
            ..defaults
        }
    }
}

/// A count from the command line, already bounded by its flag's range.
fn whole(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_max_level(args.log)
        .with_target(false)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => {
            // A log file or journal gets no colour codes; NO_COLOR is heeded.
            use std::io::IsTerminal;
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
    }
    let config = args.into_config();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ghostread::run(config, stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await; // If even Ctrl-C cannot be watched, stopping is all that is left.
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
