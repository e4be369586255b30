//! The `ghostread` binary, started as an operator would, its log lines read
//! as they come.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_ghostread");

/// The binary with `args`, its log (stderr) piped, without colours.
fn spawn(args: &[&str]) -> Child {
    spawn_with(args, true)
}

fn spawn_with(args: &[&str], no_color: bool) -> Child {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("NO_COLOR");
    if no_color {
        command.env("NO_COLOR", "1");
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the ghostread binary")
}

/// A running binary whose log lines arrive on a channel.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(args: &[&str]) -> Running {
        Running::watch(spawn(args))
    }

    /// Like `serve`, without `NO_COLOR`: the binary alone decides colours.
    pub fn serve_coloured(posts: &TempDir, data: &TempDir) -> Running {
        let posts = posts.path().to_string_lossy().into_owned();
        let data = data.path().to_string_lossy().into_owned();
        let args = ["--addr", "127.0.0.1:0", "--posts", &posts, "--data", &data];
        Running::watch(spawn_with(&args, false))
    }

    /// Every log line so far (after the process ended: all of them).
    pub fn all_lines(&mut self) -> Vec<String> {
        self.seen.extend(self.lines.iter());
        self.seen.clone()
    }

    fn watch(mut child: Child) -> Running {
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The binary started with `args` it should refuse: its exit code and
    /// what it said. Killed (and so failing the test) if it still runs
    /// after 10 s.
    pub async fn refused(args: &[&str]) -> (Option<i32>, String) {
        let mut child = spawn(&[&["--addr", "127.0.0.1:0"], args].concat());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (status, stderr)
    }

    /// The server on a free port with these posts and data folders.
    pub fn serve(posts: &TempDir, data: &TempDir) -> Running {
        Running::serve_with(posts, data, &[])
    }

    /// Like `serve`, with more flags. Readers count in `total` when their
    /// stream opens (as in `start_server`), unless `flags` say otherwise.
    pub fn serve_with(posts: &TempDir, data: &TempDir, flags: &[&str]) -> Running {
        let posts = posts.path().to_string_lossy().into_owned();
        let data = data.path().to_string_lossy().into_owned();
        let mut args = vec!["--addr", "127.0.0.1:0", "--posts", &posts, "--data", &data];
        args.extend_from_slice(&["--count-after-secs", "0"]);
        args.extend_from_slice(flags);
        Running::start(&args)
    }

    /// Waits (up to 10 s) for a log line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no log line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// How many log lines so far contain `needle`.
    pub fn lines_containing(&mut self, needle: &str) -> usize {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }

    pub fn addr(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on http://");
        let start = line.find("http://").expect("url") + "http://".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .parse()
            .expect("socket address")
    }

    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
