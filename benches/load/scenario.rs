//! The named scenarios and the command line (clap, like the server's) that
//! picks and adjusts them.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// How readers come and go in a scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Every reader arrives during the ramp-up and stays to the end.
    Steady,
    /// As `Steady`, and then `per_sec` readers join (and as many leave)
    /// every second, so the population holds while it turns over.
    Churn { per_sec: f64 },
    /// Readers are added a step at a time until a step fails its limits
    /// (see `ramp.rs`); readers stay until the run ends.
    Ramp,
}

/// One scenario's shape; the command line can override most of it.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub kind: Kind,
    pub posts: usize,
    pub readers: usize,
    pub hz: f64,
    pub seconds: u64,
    pub ramp_up: u64,
    /// Pick posts by a Zipf law (a few popular, a long tail) or evenly.
    pub zipf: bool,
    pub leave_chance: f64,
    pub tick_ms: u64,
    pub seed: u64,
    /// Server instances; more than one share readers through Redis.
    pub instances: usize,
    /// Plays the rest of a big cluster: moves a second that other
    /// instances make on posts these do not serve, published on those
    /// posts' channels. `Some` puts even one instance in cluster mode.
    pub elsewhere: Option<f64>,
    /// The instances share a Redis Cluster (3 masters, 3 replicas) rather
    /// than one Redis.
    pub redis_cluster: bool,
    /// The share of readers (0 to 1) that long-poll instead of streaming.
    pub pollers: f64,
    /// The share of readers (0 to 1) on pages of another site (embed
    /// mode): each post has a twin page there, whose readers send that
    /// site's `Origin` and are answered with CORS.
    pub embedded: f64,
    /// The server's `--crowd` and `--crowd-interval-ms`; `None`: its default.
    pub crowd: Option<usize>,
    pub crowd_interval_ms: Option<u64>,
    /// More flags for the server, as given (`--server-arg=--no-heat-map`).
    pub server_args: Vec<String>,
    /// Seconds a real Chromium scrolls the first post once all are in,
    /// timing its frames (`browser.rs`); `None`: no browser.
    pub browser_frames: Option<u64>,
}

/// The scenarios, by name.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Name {
    /// 200 readers on one post at 10 Hz.
    HotRoom,
    /// 2,000 readers over 50 posts (Zipf) at 2 Hz, some leaving and resuming.
    Blog,
    /// 18,000 readers over 180 posts at 0.1 Hz.
    IdleCrowd,
    /// `blog` at 1 Hz with 200 readers a second arriving and as many leaving.
    Churn,
    /// Steps of 5,000 readers over 1,000 posts at 0.1 Hz, over HTTP/2, until
    /// staleness or errors say stop.
    Ramp,
    /// 400 readers over 10 posts on two instances sharing one Redis.
    Cluster,
    /// One post going viral: 18,000 readers arriving at 1,000 a second, at
    /// 0.1 Hz.
    Viral,
    /// `blog` with half its readers behind a proxy that buffers, so they
    /// long-poll.
    Proxied,
}

impl Name {
    pub fn scenario(self) -> Scenario {
        let base = Scenario {
            name: "hot-room",
            kind: Kind::Steady,
            posts: 1,
            readers: 200,
            hz: 10.0,
            seconds: 20,
            ramp_up: 2,
            zipf: false,
            leave_chance: 0.0,
            tick_ms: 10,
            seed: 1,
            instances: 1,
            elsewhere: None,
            redis_cluster: false,
            crowd: None,
            crowd_interval_ms: None,
            pollers: 0.0,
            embedded: 0.0,
            server_args: Vec::new(),
            browser_frames: None,
        };
        match self {
            Name::HotRoom => base,
            Name::Blog => Scenario {
                name: "blog",
                posts: 50,
                readers: 2000,
                hz: 2.0,
                ramp_up: 5,
                zipf: true,
                leave_chance: 0.02,
                ..base
            },
            Name::IdleCrowd => Scenario {
                name: "idle-crowd",
                posts: 180,
                readers: 18_000,
                hz: 0.1,
                seconds: 30,
                ramp_up: 15,
                ..base
            },
            Name::Churn => Scenario {
                name: "churn",
                kind: Kind::Churn { per_sec: 200.0 },
                posts: 50,
                readers: 2000,
                hz: 1.0,
                ramp_up: 5,
                zipf: true,
                ..base
            },
            Name::Cluster => Scenario {
                name: "cluster",
                posts: 10,
                readers: 400,
                hz: 2.0,
                ramp_up: 3,
                instances: 2,
                ..base
            },
            Name::Viral => Scenario {
                name: "viral",
                posts: 1,
                readers: 18_000,
                hz: 0.1,
                seconds: 20,
                ramp_up: 18,
                ..base
            },
            Name::Proxied => Scenario {
                name: "proxied",
                posts: 50,
                readers: 2000,
                hz: 2.0,
                ramp_up: 5,
                zipf: true,
                leave_chance: 0.02,
                pollers: 0.5,
                ..base
            },
            Name::Ramp => Scenario {
                name: "ramp",
                kind: Kind::Ramp,
                posts: 1000,
                readers: 120_000,
                hz: 0.1,
                seconds: 5,
                ramp_up: 0,
                ..base
            },
        }
    }
}

/// `cargo bench --bench load -- <scenario> [options]`, or `--compare a b`.
#[derive(Parser, Debug)]
#[command(
    bin_name = "cargo bench --bench load --",
    about = "Simulated readers, each with a real event stream and real position POSTs, against a real ghostread"
)]
pub struct Cli {
    #[arg(value_enum, required_unless_present = "compare")]
    pub scenario: Option<Name>,
    /// Drive a running server instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// Its posts, comma-separated (default: read from its index).
    #[arg(long, value_delimiter = ',')]
    pub posts: Option<Vec<String>>,
    /// Readers (in `ramp`, the most it adds).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub readers: Option<u32>,
    /// Average moves per reader per second, 0.01 to 10.
    #[arg(long)]
    pub hz: Option<f64>,
    /// How long the readers move once all are in (in `ramp`, each step's hold).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: Option<u64>,
    /// Seconds over which the readers arrive.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub ramp_up: Option<u64>,
    /// The server's tick, when the harness starts it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub tick_ms: Option<u64>,
    /// The seed of every random choice, so runs can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The server's --crowd: rooms above this many readers get their
    /// density instead of every ghost (0: never).
    #[arg(long, conflicts_with = "url")]
    pub crowd: Option<usize>,
    /// The server's --crowd-interval-ms.
    #[arg(long, conflicts_with = "url", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub crowd_interval_ms: Option<u64>,
    /// The share of readers (0 to 1) that long-poll, as behind a proxy that
    /// buffers whole responses.
    #[arg(long)]
    pub pollers: Option<f64>,
    /// The share of readers (0 to 1) on embedded pages: each post gets a
    /// twin on another origin, as a Hugo or WordPress page with the script
    /// tag (the server is started with --embed-origin for it).
    #[arg(long, conflicts_with = "url")]
    pub embedded: Option<f64>,
    /// One more flag for the server (repeat for several), e.g.
    /// `--server-arg=--no-heat-map` to measure what the heat map costs.
    #[arg(
        long = "server-arg",
        value_name = "FLAG",
        allow_hyphen_values = true,
        conflicts_with = "url"
    )]
    pub server_args: Vec<String>,
    /// Moves a second the rest of a (simulated) cluster makes on 180 posts
    /// these instances do not serve; with it even one instance runs in
    /// cluster mode, with a Redis.
    #[arg(long = "elsewhere-moves", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub elsewhere: Option<u32>,
    /// Share a Redis Cluster of three masters with a replica each (sharded
    /// pub/sub) instead of one Redis.
    #[arg(long)]
    pub redis_cluster: bool,
    /// Server instances sharing one Redis.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub instances: Option<u64>,
    /// The ghostread binary to start (default: this build's), to compare
    /// builds in runs taken close together.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub server: Option<PathBuf>,
    /// Once every reader is in, a real Chromium scrolls the first post for
    /// this many seconds and times its frames (keep `--seconds` longer).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=120))]
    pub browser_frames: Option<u64>,
    /// Another ghostread binary to compare with (a build of an older
    /// commit): both run the scenario `--rounds` times, alternated, and the
    /// medians are compared.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub against: Option<PathBuf>,
    /// Runs of each build with `--against`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub rounds: u32,
    /// With `--against`: fail if this build's memory per reader or server
    /// CPU (medians) is more than this many percent over the other's.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub worse_than: f64,
    /// Where the JSON and HTML reports go.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ghostread-load"))]
    pub out: PathBuf,
    /// Exit with status 1 unless the run was clean (see `Report::problems`).
    #[arg(long)]
    pub expect_clean: bool,
    /// The change between two runs' JSON reports.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "scenario")]
    pub compare: Option<Vec<PathBuf>>,
}

impl Cli {
    /// The command line, minus the `--bench` cargo adds.
    pub fn parse_args() -> (Cli, String) {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        let command = format!("cargo bench --bench load -- {}", args.join(" "));
        let cli = Cli::parse_from(std::iter::once("load".to_string()).chain(args));
        (cli, command)
    }

    /// The chosen scenario with this command line's overrides.
    pub fn scenario(&self) -> Option<Scenario> {
        let mut s = self.scenario?.scenario();
        if let Some(readers) = self.readers {
            s.readers = readers as usize;
        }
        if let Some(hz) = self.hz {
            s.hz = hz.clamp(0.01, 10.0);
        }
        s.seconds = self.seconds.unwrap_or(s.seconds);
        s.ramp_up = self.ramp_up.unwrap_or(s.ramp_up);
        s.tick_ms = self.tick_ms.unwrap_or(s.tick_ms);
        s.seed = self.seed.unwrap_or(s.seed);
        if let Some(instances) = self.instances {
            s.instances = instances as usize;
        }
        s.elsewhere = self.elsewhere.map(f64::from).or(s.elsewhere);
        s.redis_cluster |= self.redis_cluster;
        s.crowd = self.crowd.or(s.crowd);
        if let Some(pollers) = self.pollers {
            s.pollers = pollers.clamp(0.0, 1.0);
        }
        if let Some(embedded) = self.embedded {
            s.embedded = embedded.clamp(0.0, 1.0);
        }
        s.crowd_interval_ms = self.crowd_interval_ms.or(s.crowd_interval_ms);
        s.server_args = self.server_args.clone();
        s.browser_frames = self.browser_frames;
        Some(s)
    }
}
