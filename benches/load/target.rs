//! The server under load: a ghostread child process serving a generated blog
//! (so its CPU and memory are its own, read from /proc), or a running server
//! given by `--url`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Target {
    pub addr: SocketAddr,
    pub slugs: Vec<String>,
    pub blocks: u32,
    child: Option<Child>,
    dir: Option<std::path::PathBuf>,
}

/// Blocks in each generated post.
pub const BLOCKS: u32 = 60;

impl Target {
    /// Starts ghostread on a free port with `posts` generated posts.
    pub fn spawn(posts: usize, tick_ms: u64) -> Target {
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_ghostread"))
            .args(["--addr", "127.0.0.1:0", "--log", "info"])
            .arg("--posts")
            .arg(dir.join("posts"))
            .arg("--data")
            .arg(dir.join("data"))
            .args(["--tick-ms", &tick_ms.to_string()])
            .args([
                "--max-connections",
                "19500",
                "--max-readers",
                "1000000",
                "--max-readers-per-post",
                "1000000",
            ])
            .args(["--max-streams-per-address", "1000000"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the ghostread binary");
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
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("server: {line}");
                }
            }
        });
        Target {
            addr,
            slugs,
            blocks: BLOCKS,
            child: Some(child),
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
            addr,
            slugs,
            blocks,
            child: None,
            dir: None,
        }
    }

    pub fn pid(&self) -> Option<String> {
        self.child.as_ref().map(|c| c.id().to_string())
    }

    pub fn mode(&self) -> &'static str {
        if self.child.is_some() {
            "child process (release build)"
        } else {
            "running server (--url)"
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
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

/// CPU seconds (user + system) of a process, from /proc ("self" works).
pub fn cpu_seconds(pid: &str) -> f64 {
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

/// Resident memory now and at its peak, in KiB.
pub fn rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
