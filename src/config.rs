//! Every setting of the server, each declared once: its field, flag,
//! environment twin, default, range and help text are the one declaration
//! below (clap's derive on `Config` itself). `main` parses it from the
//! command line; tests and benches start from [`Config::default`], which is
//! the same declaration with nothing given; the engine's settings are
//! derived from it by one conversion (`ghosts::Settings::from_config`).
//!
//! A field's first doc paragraph is its `--help` line; the paragraphs after
//! it say why, and show in `--help` (not `-h`).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{ArgAction, Args, FromArgMatches};

/// Where static assets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebSource {
    /// The files of `web/` compiled into the binary: one file to deploy.
    Embedded,
    /// A folder read on each request, for editing CSS and JS without a rebuild.
    Dir(PathBuf),
}

impl WebSource {
    /// `--web DIR`; empty (the default) is the copy built into the binary.
    fn parse(text: &str) -> Result<WebSource, std::convert::Infallible> {
        Ok(match text {
            "" => WebSource::Embedded,
            dir => WebSource::Dir(PathBuf::from(dir)),
        })
    }
}

/// HTTPS on the listening port: a PEM certificate chain and its key.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Serve HTTPS (and HTTP/2 to browsers, by ALPN) on the same port with
    /// this PEM certificate chain; read again when the file changes.
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "GHOSTREAD_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key",
        required = false
    )]
    pub cert: PathBuf,
    /// The PEM private key of --tls-cert.
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "GHOSTREAD_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert",
        required = false
    )]
    pub key: PathBuf,
}

/// The whole configuration of one server.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "GHOSTREAD_ADDR", default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,
    /// The blog's name, shown in every page's header and title.
    #[arg(
        long = "title",
        env = "GHOSTREAD_TITLE",
        value_name = "NAME",
        default_value = "ghostread"
    )]
    pub site_title: String,
    /// The site's public address, e.g. https://blog.example.com: the feed,
    /// the sitemap and link previews need absolute links.
    ///
    /// Without it, links stay relative, and a warning at start says what
    /// that costs.
    #[arg(long, env = "GHOSTREAD_BASE_URL", value_name = "URL",
          value_parser = crate::blog::parse_base_url)]
    pub base_url: Option<String>,
    /// Folder of Markdown posts; changes show up without a restart.
    #[arg(
        long = "posts",
        env = "GHOSTREAD_POSTS",
        value_name = "DIR",
        default_value = "posts"
    )]
    pub posts_dir: PathBuf,
    /// Folder for the all-time reader counts and the heat map (created
    /// when missing).
    #[arg(
        long = "data",
        env = "GHOSTREAD_DATA",
        value_name = "DIR",
        default_value = "data"
    )]
    pub data_dir: PathBuf,
    /// Serve /web/ from this folder instead of the copy built into the
    /// binary (for editing CSS and JS without rebuilding).
    #[arg(long, env = "GHOSTREAD_WEB", value_name = "DIR", default_value = "",
          hide_default_value = true, value_parser = WebSource::parse)]
    pub web: WebSource,
    /// How often the posts folder is checked for changes.
    ///
    /// Polling, not inotify, because it sees every editor's save strategy
    /// alike and costs a few `stat` calls per interval.
    #[arg(skip = Duration::from_millis(500))]
    pub reload_interval: Duration,
    /// Seconds a client may take to send a request's headers, counted from
    /// connecting; also how long an idle HTTP/1.1 keep-alive connection
    /// stays open.
    ///
    /// Cuts off slowloris connections that dribble bytes to hold a socket.
    #[arg(long = "header-timeout-secs", env = "GHOSTREAD_HEADER_TIMEOUT_SECS",
          value_name = "SECS", default_value = "10", value_parser = secs(1..=3600))]
    pub header_timeout: Duration,
    /// Seconds an HTTP/2 connection with no request or stream open stays
    /// open before the server closes it (with GOAWAY).
    #[arg(long = "idle-timeout-secs", env = "GHOSTREAD_IDLE_TIMEOUT_SECS",
          value_name = "SECS", default_value = "60", value_parser = secs(1..=86_400))]
    pub idle_timeout: Duration,
    /// Seconds a new reader's stream must be held before it counts in the
    /// post's all-time total, unless it sends a position sooner (which
    /// counts it at once); 0 counts every stream when it opens.
    ///
    /// Keeps streams that no reader holds (a cross-origin page's
    /// EventSource, closed by the browser's CORS check at once) out of the
    /// count.
    #[arg(long = "count-after-secs", env = "GHOSTREAD_COUNT_AFTER_SECS",
          value_name = "SECS", default_value = "5", value_parser = secs(0..=3600))]
    pub count_after: Duration,
    /// Seconds without scrolling after which a reader is shown away
    /// (dimmed) to the others; told to every page.
    #[arg(long = "away-after-secs", env = "GHOSTREAD_AWAY_AFTER_SECS",
          value_name = "SECS", default_value = "90", value_parser = secs(1..=86_400))]
    pub away_after: Duration,
    /// Seconds a hidden tab keeps its stream before it lets go (its ghost
    /// leaves, and comes back when the tab is shown); told to every page.
    ///
    /// Also the longest the server holds (away) the ghost of a hidden tab
    /// that gave its connection up.
    #[arg(long = "let-go-secs", env = "GHOSTREAD_LET_GO_SECS",
          value_name = "SECS", default_value = "120", value_parser = secs(1..=86_400))]
    pub let_go: Duration,
    /// Do not keep the reading heat map (to measure what it costs).
    #[arg(long = "no-heat-map", env = "GHOSTREAD_NO_HEAT_MAP", action = ArgAction::SetFalse)]
    pub heat_map: bool,
    /// How long graceful shutdown waits for in-flight requests before it
    /// closes what is left.
    #[arg(skip = Duration::from_secs(3))]
    pub shutdown_grace: Duration,
    /// Most connections open at once; more are answered 503 and closed.
    ///
    /// Keeps file descriptors in reserve under the process's limit.
    #[arg(long, env = "GHOSTREAD_MAX_CONNECTIONS", value_name = "N",
          default_value = "19000", value_parser = count(1..=1_000_000))]
    pub max_connections: usize,
    /// Most connections open at once from one client address (IPv6: its
    /// /64), trusted proxies aside; more are answered 429.
    ///
    /// Generous: an office behind one address holds a stream and a POST
    /// connection per reader.
    #[arg(long, env = "GHOSTREAD_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N",
          default_value = "1000", value_parser = count(1..=1_000_000))]
    pub max_connections_per_address: usize,
    /// Kernel send buffer of each connection, in bytes (0: the kernel's own
    /// autotuning, which lets one stalled reader pin megabytes).
    ///
    /// An event stream needs a few KB a second; 64 KiB also sends a page in
    /// one go.
    #[arg(skip = 64 * 1024_usize)]
    pub socket_send_buffer: usize,
    /// Largest request body accepted anywhere (the position body is far
    /// smaller; this bounds what a client can make the server buffer).
    #[arg(skip = 1024_usize)]
    pub max_body_bytes: usize,
    /// Milliseconds per tick: moves are coalesced and sent once per tick.
    #[arg(long = "tick-ms", env = "GHOSTREAD_TICK_MS", value_name = "MS",
          default_value = "10", value_parser = millis(1..=1000))]
    pub tick: Duration,
    /// A post with more live readers than this is crowded: its readers get
    /// the number of readers at each paragraph instead of every ghost's
    /// moves; 0 never.
    ///
    /// 50 is where the page itself stops drawing ghosts one by one.
    #[arg(long, env = "GHOSTREAD_CROWD", value_name = "N",
          default_value = "50", value_parser = count(0..=10_000_000))]
    pub crowd: usize,
    /// Least milliseconds between two updates of a crowded post's readers.
    #[arg(long = "crowd-interval-ms", env = "GHOSTREAD_CROWD_INTERVAL_MS",
          value_name = "MS", default_value = "250", value_parser = millis(1..=60_000))]
    pub crowd_interval: Duration,
    /// Seconds a long-poll (the fallback for proxies that hold back event
    /// streams) waits for events; keep it under your proxies' read timeout.
    #[arg(long = "poll-wait-secs", env = "GHOSTREAD_POLL_WAIT_SECS",
          value_name = "SECS", default_value = "25", value_parser = secs(1..=300))]
    pub poll_wait: Duration,
    /// Seconds a long-poller may go without polling before its ghost leaves.
    #[arg(long = "poll-gone-secs", env = "GHOSTREAD_POLL_GONE_SECS",
          value_name = "SECS", default_value = "10", value_parser = secs(1..=300))]
    pub poll_gone: Duration,
    /// Seconds between heartbeat comments on an idle event stream; keep it
    /// under your proxy's or load balancer's idle timeout.
    #[arg(long = "heartbeat-secs", env = "GHOSTREAD_HEARTBEAT_SECS",
          value_name = "SECS", default_value = "15", value_parser = secs(1..=3600))]
    pub heartbeat: Duration,
    /// Seconds a closed stream's ghost can be resumed (same id and colour).
    #[arg(long = "resume-secs", env = "GHOSTREAD_RESUME_SECS",
          value_name = "SECS", default_value = "30", value_parser = secs(0..=86_400))]
    pub resume_window: Duration,
    /// Position updates allowed per reader per second; more get 429.
    #[arg(long, env = "GHOSTREAD_MOVES_PER_SEC", value_name = "N", default_value = "50",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub moves_per_sec: u32,
    /// Event streams one client address (IPv6: its /64) may open a second,
    /// and at once; more get 429.
    ///
    /// Opening and dropping streams in a loop must not keep the manager
    /// busy. Generous, as an office can share one address.
    #[arg(long, env = "GHOSTREAD_JOINS_PER_SEC", value_name = "N", default_value = "100",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub joins_per_sec: u32,
    /// Resumes or takeovers of one reader's ghost a second (a reload, a
    /// reconnect); more get 429.
    #[arg(long, env = "GHOSTREAD_RESUMES_PER_SEC", value_name = "N", default_value = "5",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub resumes_per_sec: u32,
    /// Most live readers on the whole server; more get 503.
    #[arg(long, env = "GHOSTREAD_MAX_READERS", value_name = "N",
          default_value = "100000", value_parser = count(1..=10_000_000))]
    pub max_readers: usize,
    /// Most live readers on one post; more get 503.
    #[arg(long, env = "GHOSTREAD_MAX_READERS_PER_POST", value_name = "N",
          default_value = "20000", value_parser = count(1..=10_000_000))]
    pub max_readers_per_post: usize,
    /// Most live event streams from one client address; more get 429.
    ///
    /// Generous, because a whole office can sit behind one address.
    #[arg(long, env = "GHOSTREAD_MAX_STREAMS_PER_ADDRESS", value_name = "N",
          default_value = "500", value_parser = count(1..=10_000_000))]
    pub max_streams_per_address: usize,
    /// A reverse proxy whose X-Forwarded-For header is trusted for the
    /// client address (repeat for several; comma-separated in the
    /// environment).
    ///
    /// Requests from anywhere else are taken at their connection's address,
    /// so the header cannot be forged.
    #[arg(
        long = "trust-proxy",
        env = "GHOSTREAD_TRUST_PROXY",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// Milliseconds between saves of the reader counts (when they changed);
    /// kill -9 loses at most this much.
    #[arg(long = "save-interval-ms", env = "GHOSTREAD_SAVE_INTERVAL_MS",
          value_name = "MS", default_value = "1000", value_parser = millis(1..=3_600_000))]
    pub save_interval: Duration,
    /// HTTPS on the listening port. `None`: plain HTTP only.
    #[command(flatten)]
    pub tls: Option<TlsFiles>,
    /// Cluster mode: share readers with other instances through this Redis
    /// (redis://HOST:PORT), or a Redis Cluster's seed nodes, comma-separated.
    /// Off by default: one instance needs nothing else.
    #[arg(long, env = "GHOSTREAD_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Embed mode: pages of this origin (e.g. https://blog.example) may show
    /// ghosts (repeat for several; comma-separated in the environment).
    ///
    /// Their readers' requests are answered with CORS for that origin only;
    /// a request from any other site's page is refused, and logged once
    /// per origin.
    #[arg(long = "embed-origin", env = "GHOSTREAD_EMBED_ORIGIN", value_name = "ORIGIN",
          value_delimiter = ',', value_parser = crate::embed::parse_origin)]
    pub embed_origins: Vec<String>,
    /// Most pages of other sites the server keeps rooms and counts for;
    /// more are refused.
    ///
    /// A client can claim any address on an allowed origin, so the pages
    /// held are bounded.
    #[arg(long = "embed-max-pages", env = "GHOSTREAD_EMBED_MAX_PAGES", value_name = "N",
          default_value = "1000", value_parser = count(1..=1_000_000))]
    pub embed_max_pages: usize,
    /// Only the pages this sitemap lists (a sitemap.xml file) may show
    /// ghosts; read at start and again when it changes.
    #[arg(
        long = "embed-sitemap",
        env = "GHOSTREAD_EMBED_SITEMAP",
        value_name = "FILE"
    )]
    pub embed_sitemap: Option<PathBuf>,
}

impl Default for Config {
    /// The declaration above with nothing given: every default, and no
    /// environment twin read (a `GHOSTREAD_*` variable in a developer's
    /// shell must not change what tests and benches start from).
    fn default() -> Self {
        let command =
            Config::augment_args(clap::Command::new("ghostread")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["ghostread"])
            .expect("every setting has a default"); // ok: no argument given, checked by a test
        Config::from_arg_matches(&matches).expect("the defaults parse") // ok: as above
    }
}

/// A whole number of seconds within `range`, as a duration.
fn secs(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64)
        .range(range)
        .map(Duration::from_secs)
}

/// A whole number of milliseconds within `range`, as a duration.
fn millis(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64)
        .range(range)
        .map(Duration::from_millis)
}

/// A count within `range` (bounded far below `usize::MAX`).
fn count(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = usize> {
    clap::value_parser!(u64)
        .range(range)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_declared_ones() {
        let config = Config::default();
        assert_eq!(config.addr, SocketAddr::from(([127, 0, 0, 1], 4000)));
        assert_eq!(config.web, WebSource::Embedded);
        assert_eq!(config.tick, Duration::from_millis(10));
        assert_eq!(config.crowd, 50);
        assert!(config.heat_map);
        assert_eq!(config.tls, None);
        assert_eq!(config.reload_interval, Duration::from_millis(500));
    }

    #[test]
    fn flags_fill_the_fields_they_name() {
        let command = Config::augment_args(clap::Command::new("ghostread"));
        let matches = command
            .try_get_matches_from([
                "ghostread",
                "--tick-ms=20",
                "--web=site",
                "--no-heat-map",
                "--tls-cert=c.pem",
                "--tls-key=k.pem",
                "--trust-proxy=10.0.0.1,::1",
            ])
            .expect("valid flags");
        let config = Config::from_arg_matches(&matches).expect("a config");
        assert_eq!(config.tick, Duration::from_millis(20));
        assert_eq!(config.web, WebSource::Dir(PathBuf::from("site")));
        assert!(!config.heat_map);
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn absurd_settings_are_refused_with_the_range() {
        for (flag, says) in [
            ("--tick-ms=0", "0 is not in 1..=1000"),
            (
                "--crowd-interval-ms=99999999",
                "99999999 is not in 1..=60000",
            ),
            ("--tls-cert=c.pem", "--tls-key"),
        ] {
            let command = Config::augment_args(clap::Command::new("ghostread"));
            let error = command
                .try_get_matches_from(["ghostread", flag])
                .expect_err(flag)
                .to_string();
            assert!(error.contains(says), "{flag}: {error}");
        }
    }
}
