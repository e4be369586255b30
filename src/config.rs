//! Every knob the server has, with defaults that serve the sample blog from a
//! checkout. `main.rs` fills this from the command line; tests and benches
//! build it directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where static assets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebSource {
    /// The files of `web/` compiled into the binary: one file to deploy.
    Embedded,
    /// A folder read on each request, for editing CSS and JS without a rebuild.
    Dir(PathBuf),
}

/// The whole configuration of one server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// The blog's name, in every page's header and title.
    pub site_title: String,
    /// The site's public address (`https://blog.example.com`), for the
    /// absolute links of the feed, the sitemap and link previews. `None`:
    /// links stay relative (a warning at start says what that costs).
    pub base_url: Option<String>,
    /// Folder of Markdown posts, watched for changes.
    pub posts_dir: PathBuf,
    /// Folder for the reader counts; created when missing.
    pub data_dir: PathBuf,
    /// Where `/web/*` is served from.
    pub web: WebSource,
    /// How often the posts folder is checked for changes. Polling (not inotify)
    /// because it sees every editor's save strategy alike and costs a few
    /// `stat` calls per interval.
    pub reload_interval: Duration,
    /// How long a client may take to send a request's headers. Cuts off
    /// slowloris connections that dribble bytes to hold a socket, and (as
    /// hyper starts it while a keep-alive connection waits for its next
    /// request) closes keep-alive connections left idle that long.
    pub header_timeout: Duration,
    /// How long an HTTP/2 connection may stay open with no request or stream
    /// on it before the server closes it (politely, with `GOAWAY`). HTTP/1.1
    /// keep-alive connections are bounded by `header_timeout` instead.
    pub idle_timeout: Duration,
    /// A new reader counts in a post's all-time `total` once it shows it is
    /// one: at its first position, or once its stream has been held this
    /// long. A cross-origin `EventSource` (any web page can open one) is
    /// closed by the browser's CORS check at once and so never counts.
    /// Zero counts every stream when it opens.
    pub count_after: Duration,
    /// Told to pages: a reader who has not scrolled this long is shown
    /// away (dimmed) to the others until it reads on.
    pub away_after: Duration,
    /// Told to pages: a tab hidden this long closes its stream (its ghost
    /// leaves) and opens it again when shown. Also how long the server
    /// holds the ghost of a hidden tab that gave its connection up.
    pub let_go: Duration,
    /// Keep the reading heat map (reader-seconds per paragraph of each
    /// post). On by default; off only to measure what it costs.
    pub heat_map: bool,
    /// How long graceful shutdown waits for in-flight requests before it
    /// closes what is left.
    pub shutdown_grace: Duration,
    /// How many connections may be open at once; over it, new connections get
    /// a `503` and are closed, so the process keeps file descriptors in reserve.
    pub max_connections: usize,
    /// How many connections one client address (its /64 for IPv6) may hold
    /// open at once; trusted proxies are not counted. Generous: an office
    /// behind one address holds a stream and a POST connection per reader.
    pub max_connections_per_address: usize,
    /// Kernel send buffer of each connection, in bytes (0: the kernel's own
    /// autotuning, which lets one stalled reader pin megabytes). An event
    /// stream needs a few KB a second; 64 KiB also sends a page in one go.
    pub socket_send_buffer: usize,
    /// Largest request body accepted anywhere (the position body is far
    /// smaller; this bounds what a client can make the server buffer).
    pub max_body_bytes: usize,
    /// Manager tick: moves are coalesced and sent once per tick.
    pub tick: Duration,
    /// A post with more readers than this is crowded: its readers get the
    /// number of readers per block (`density`) instead of every ghost's
    /// join, leave and move. 0: never. 50 is where the page itself stops
    /// drawing ghosts one by one.
    pub crowd: usize,
    /// The least time between two `density` frames of a crowded post.
    pub crowd_interval: Duration,
    /// How long a long-poll waits for events before answering with none:
    /// under the read timeouts of the proxies in between (often 30–60 s).
    pub poll_wait: Duration,
    /// How long a long-poller may go without polling before its ghost leaves.
    pub poll_gone: Duration,
    /// Interval of `: ping` comments on idle event streams.
    pub heartbeat: Duration,
    /// How long a closed stream's ghost may be resumed with its token.
    pub resume_window: Duration,
    /// Position updates allowed per ghost per second.
    pub moves_per_sec: u32,
    /// Streams one client address (its /64 for IPv6) may open a second, and
    /// at once: opening and dropping streams in a loop must not keep the
    /// manager busy. Generous, as an office can share one address.
    pub joins_per_sec: u32,
    /// Resumes and takeovers of one ghost a second (a reload, a reconnect).
    pub resumes_per_sec: u32,
    /// Readers allowed on the whole server.
    pub max_readers: usize,
    /// Readers allowed on one post.
    pub max_readers_per_post: usize,
    /// Event streams allowed from one client address. Generous, because a
    /// whole office can sit behind one address.
    pub max_streams_per_address: usize,
    /// Proxies whose `X-Forwarded-For` names the real client address (for
    /// the per-address limit). Requests from anywhere else are taken at
    /// their connection's address, so the header cannot be forged.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// HTTPS on the listening port: a PEM certificate chain and its PEM
    /// private key, read again when they change. `None`: plain HTTP only.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Cluster mode: the Redis that instances share readers through
    /// (`redis://host:port`). `None`: this instance is the whole server.
    pub redis: Option<String>,
    /// How often the all-time counts are written to disk (when they changed).
    pub save_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
            site_title: "ghostread".to_string(),
            base_url: None,
            posts_dir: PathBuf::from("posts"),
            data_dir: PathBuf::from("data"),
            web: WebSource::Embedded,
            reload_interval: Duration::from_millis(500),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            count_after: Duration::from_secs(5),
            away_after: Duration::from_secs(90),
            let_go: Duration::from_secs(120),
            heat_map: true,
            shutdown_grace: Duration::from_secs(3),
            max_connections: 19_000,
            max_connections_per_address: 1_000,
            socket_send_buffer: 64 * 1024,
            max_body_bytes: 1024,
            tick: Duration::from_millis(10),
            crowd: 50,
            crowd_interval: Duration::from_millis(250),
            heartbeat: Duration::from_secs(15),
            poll_wait: Duration::from_secs(25),
            poll_gone: Duration::from_secs(10),
            resume_window: Duration::from_secs(30),
            moves_per_sec: 50,
            joins_per_sec: 100,
            resumes_per_sec: 5,
            max_readers: 100_000,
            max_readers_per_post: 20_000,
            max_streams_per_address: 500,
            trusted_proxies: Vec::new(),
            save_interval: Duration::from_secs(1),
            redis: None,
            tls: None,
        }
    }
}
