//! The server under load: ghostread child processes serving a generated blog
//! (one, or several sharing a Redis child in cluster mode), so their CPU and
//! memory are their own, read from /proc; or a running server (`--url`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;

use crate::scenario::Scenario;
use std::process::{Child, Command, Stdio};

pub struct Target {
    /// Where readers connect: one address per instance.
    pub addrs: Vec<SocketAddr>,
    pub slugs: Vec<String>,
    pub blocks: u32,
    /// The ghostread instances, then Redis, if this harness started them.
    children: Vec<Child>,
    /// The Redis the instances share, if any: its `--redis` value (a
    /// Redis Cluster's seed nodes, comma-separated), and each node's URL.
    pub redis: Option<String>,
    pub redis_nodes: Vec<String>,
    instances: usize,
    dir: Option<std::path::PathBuf>,
}

/// Blocks in each generated post.
pub const BLOCKS: u32 = 60;

impl Target {
    /// Starts `instances` ghostread processes on free ports with `posts`
    /// generated posts; with more than one, they share a Redis it starts too.
    /// `binary` is the server to start; `None` is this build's. The
    /// scenario says how many posts, instances, and the server's settings.
    pub fn spawn(binary: Option<&Path>, scenario: &Scenario) -> Target {
        let (posts, tick_ms, instances) = (scenario.posts, scenario.tick_ms, scenario.instances);
        let dir = std::env::temp_dir().join(format!("ghostread-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("posts")).expect("make the posts folder");
        let body: Vec<String> = (0..BLOCKS)
            .map(|i| format!("Paragraph {i}: words for a reader to read."))
            .collect();
        let slugs: Vec<String> = (0..posts).map(|n| format!("post-{n}")).collect();
        for slug in &slugs {
            let text = format!(
                "---\ntitle: {slug}\ndate: 2026-01-01\n---\n{}\n",
                body.join("\n\n")
            );
            std::fs::write(dir.join("posts").join(format!("{slug}.md")), text)
                .expect("write a post");
        }
        let mut children = Vec::new();
        let redis = (instances > 1 || scenario.elsewhere.is_some() || scenario.redis_cluster)
            .then(|| crate::redis_server::start(scenario.redis_cluster, &dir));
        let mut addrs = Vec::new();
        for n in 0..instances.max(1) {
            let mut command =
                Command::new(binary.unwrap_or(Path::new(env!("CARGO_BIN_EXE_ghostread"))));
            command
                .args(["--addr", "127.0.0.1:0", "--log", "info"])
                .arg("--posts")
                .arg(dir.join("posts"))
                .arg("--data")
                .arg(dir.join(format!("data-{n}")))
                .args([
                    "--tick-ms",
                    &tick_ms.to_string(),
                    "--max-connections",
                    "19500",
                ])
                .args([
                    "--max-readers",
                    "1000000",
                    "--max-readers-per-post",
                    "1000000",
                ])
                // The harness speaks for thousands of readers from a few
                // addresses (over HTTP/2, 200 on one connection).
                .args(["--max-streams-per-address", "1000000"])
                .args(["--joins-per-sec", "1000000"])
                .args(["--max-connections-per-address", "1000000"])
                .args(
                    scenario
                        .crowd
                        .map(|n| ["--crowd".to_string(), n.to_string()])
                        .into_iter()
                        .flatten(),
                )
                .args(
                    scenario
                        .crowd_interval_ms
                        .map(|ms| ["--crowd-interval-ms".to_string(), ms.to_string()])
                        .into_iter()
                        .flatten(),
                )
                .args(&scenario.server_args)
                .stderr(Stdio::piped());
            if scenario.embedded > 0.0 {
                command.args(["--embed-origin", crate::http::EMBED_ORIGIN]);
            }
            if let Some(redis) = &redis {
                command.args(["--redis", &redis.url]);
            }
            if let Some(binary) = binary {
                command = without_unknown_flags(command, binary);
            }
            let mut child = command.spawn().expect("start the ghostread binary");
            let stderr = child.stderr.take().expect("piped stderr");
            let mut lines = BufReader::new(stderr).lines();
            let addr = loop {
                let line = lines
                    .next()
                    .expect("the server printed its address")
                    .expect("read its log");
                if let Some(at) = line.find("http://") {
                    break line[at + 7..]
                        .split_whitespace()
                        .next()
                        .expect("address")
                        .parse()
                        .expect("socket address");
                }
            };
            let cluster = redis.is_some();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if line.contains("WARN")
                        || line.contains("ERROR")
                        || (cluster && line.contains("joined through Redis"))
                    {
                        eprintln!("server {n}: {line}");
                    }
                }
            });
            addrs.push(addr);
            children.push(child);
        }
        let instances = children.len();
        let (url, redis_nodes) = match redis {
            Some(redis) => {
                children.extend(redis.children);
                (Some(redis.url), redis.nodes)
            }
            None => (None, Vec::new()),
        };
        Target {
            addrs,
            slugs,
            blocks: BLOCKS,
            children,
            redis: url,
            redis_nodes,
            instances,
            dir: Some(dir),
        }
    }

    /// A running server: its posts from `--posts` or from its index page.
    pub async fn remote(url: &str, posts: Option<Vec<String>>) -> Target {
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let addr: SocketAddr = tokio::net::lookup_host(host)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {host}; give --url http://HOST:PORT"));
        let slugs = match posts {
            Some(slugs) => slugs,
            None => {
                let index = crate::http::get(addr, "/").await;
                index
                    .split("data-slug=\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next())
                    .map(str::to_string)
                    .collect()
            }
        };
        assert!(
            !slugs.is_empty(),
            "no posts found on {url}; pass --posts a,b,c"
        );
        let page = crate::http::get(addr, &format!("/posts/{}", slugs[0])).await;
        let blocks = page
            .split("data-blocks=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Target {
            addrs: vec![addr],
            slugs,
            blocks,
            children: Vec::new(),
            redis: None,
            redis_nodes: Vec::new(),
            instances: 0,
            dir: None,
        }
    }

    /// The processes whose CPU and memory count as the server's.
    pub fn pids(&self) -> Vec<String> {
        self.children.iter().map(|c| c.id().to_string()).collect()
    }

    /// Each instance's process, in the order of `addrs`.
    pub fn instance_pids(&self) -> Vec<String> {
        self.children[..self.instances]
            .iter()
            .map(|c| c.id().to_string())
            .collect()
    }

    /// The Redis processes this harness started.
    pub fn redis_pids(&self) -> Vec<String> {
        self.children[self.instances..]
            .iter()
            .map(|c| c.id().to_string())
            .collect()
    }

    pub fn mode(&self) -> String {
        match self.children.len() {
            0 => "running server (--url)".into(),
            1 => "child process (release build)".into(),
            _ if self.redis_nodes.len() > 1 => format!(
                "{} instance(s) (release build) sharing a Redis Cluster",
                self.instances
            ),
            n => format!("{} instance(s) (release build) sharing one Redis", n - 1),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// CPU seconds (user + system) of processes, from /proc ("self" works).
pub fn cpu_seconds(pids: &[String]) -> f64 {
    pids.iter()
        .map(|pid| {
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
        })
        .sum()
}

/// Resident memory now and at its peak, in KiB, summed over processes.
pub fn rss_kib(pids: &[String]) -> (u64, u64) {
    pids.iter().fold((0, 0), |(now, peak), pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (now + field("VmRSS:"), peak + field("VmHWM:"))
    })
}

/// `command` without the flags `binary` does not know (each with its
/// value: every flag the harness passes takes one), so an older build,
/// from before a flag, can be compared with this one. Says which went.
fn without_unknown_flags(command: Command, binary: &Path) -> Command {
    let help = Command::new(binary)
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let known = |flag: &str| {
        help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[')
            .any(|word| word == flag)
    };
    let mut kept = Command::new(command.get_program());
    let mut dropped = Vec::new();
    let mut args = command.get_args().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        if arg.starts_with("--") && !known(&arg) {
            let _value = args.next();
            dropped.push(arg);
        } else {
            kept.arg(arg);
        }
    }
    if !dropped.is_empty() {
        eprintln!(
            "{} predates {}: started without them",
            binary.display(),
            dropped.join(", ")
        );
    }
    kept.stderr(Stdio::piped());
    kept
}
