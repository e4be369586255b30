//! Shared test helpers: start a real server on a free port, talk raw HTTP to
//! it, and make throwaway folders. Every test goes through real sockets.
#![allow(dead_code)] // Each test binary uses a different part of this file.

pub mod axe;
pub mod binary;
pub mod browser;
pub mod cluster;
pub mod nginx;
pub mod proxies;
pub mod redis;
pub mod redis_cluster;
pub mod sse;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ghostread::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ghostread-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A placeholder that owns nothing.
    fn empty() -> TempDir {
        TempDir(PathBuf::new())
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.0.join(name), contents).expect("write test file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A posts folder with one post `p` of `blocks` paragraphs.
pub fn one_post(blocks: usize) -> TempDir {
    let posts = TempDir::new("posts");
    let body: Vec<String> = (0..blocks).map(|i| format!("Paragraph {i}.")).collect();
    posts.write("p.md", post("P", "2025-01-01", &body.join("\n\n")));
    posts
}

/// A post file's text.
pub fn post(title: &str, date: &str, body: &str) -> String {
    format!("---\ntitle: {title}\ndate: {date}\n---\n{body}\n")
}

/// A copy of the repository's sample posts.
pub fn sample_blog() -> TempDir {
    let posts = TempDir::new("posts");
    for entry in std::fs::read_dir(sample_posts()).expect("posts/ exists") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, posts.path().join(path.file_name().expect("name")))
            .expect("copy sample post");
    }
    posts
}

/// The repository's sample posts.
pub fn sample_posts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("posts")
}

/// A server running in this test's runtime, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub posts: TempDir,
    pub data: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts a server on `127.0.0.1:0` with its own posts and data folders,
/// after `configure` has adjusted the config, and waits until `/healthz`
/// answers.
pub async fn start_server(posts: TempDir, configure: impl FnOnce(&mut Config)) -> TestServer {
    start_server_with_data(posts, TempDir::new("data"), configure).await
}

/// Like `start_server`, with a data folder kept from an earlier server.
pub async fn start_server_with_data(
    posts: TempDir,
    data: TempDir,
    configure: impl FnOnce(&mut Config),
) -> TestServer {
    start_server_at(
        "127.0.0.1:0".parse().expect("address"),
        posts,
        data,
        configure,
    )
    .await
}

/// Like `start_server_with_data`, on a given address (to restart a server
/// where its clients expect it).
pub async fn start_server_at(
    addr: SocketAddr,
    posts: TempDir,
    data: TempDir,
    configure: impl FnOnce(&mut Config),
) -> TestServer {
    let mut config = Config {
        posts_dir: posts.path().to_path_buf(),
        data_dir: data.path().to_path_buf(),
        reload_interval: Duration::from_millis(100),
        // Most tests count a reader when its stream opens; the rule that
        // waits for proof of a reader has its own tests.
        count_after: Duration::ZERO,
        ..Config::default()
    };
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ghostread::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    let server = TestServer {
        addr,
        posts,
        data,
        stop: Some(stop),
        task: Some(task),
    };
    wait_until("the server answers /healthz", || async {
        get(server.addr, "/healthz").await.status == 200
    })
    .await;
    server
}

impl TestServer {
    /// Stops the server and waits for `serve` to return.
    pub async fn stop(self) -> std::io::Result<()> {
        self.stop_keeping_folders().await.0
    }

    /// Stops the server and hands back its folders, for a restart.
    pub async fn stop_keeping_folders(mut self) -> (std::io::Result<()>, TempDir, TempDir) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(task) => task.await.expect("serve task did not panic"),
            None => Ok(()),
        };
        let posts = std::mem::replace(&mut self.posts, TempDir::empty());
        let data = std::mem::replace(&mut self.data, TempDir::empty());
        (result, posts, data)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The server saves its counts as it stops, making its data folder
        // again if it is gone: let it finish before the folders are
        // removed, or every test leaves one behind in the temp folder.
        // Only a multi-threaded runtime can wait here.
        let Some(task) = self.task.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| {
                runtime.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
                })
            });
        }
    }
}

/// Polls `check` every 20 ms until it holds, failing the test after 10 s.
/// This is readiness by polling, never a fixed sleep.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n"),
    )
    .await
}

/// Sends raw bytes as one request on a fresh connection and reads the answer.
pub async fn send(addr: SocketAddr, raw: &str) -> Response {
    send_bytes(addr, raw.as_bytes()).await
}

pub async fn send_bytes(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    stream.write_all(raw).await.expect("send request");
    let head_only = raw.starts_with(b"HEAD ");
    read_response(&mut stream, head_only).await
}

/// Reads one response from a connection (content-length, chunked, or until
/// close), failing the test if none comes within 10 s.
pub async fn read_response(stream: &mut TcpStream, head_only: bool) -> Response {
    tokio::time::timeout(
        Duration::from_secs(10),
        read_response_inner(stream, head_only),
    )
    .await
    .expect("a response within 10 s")
}

async fn read_response_inner(stream: &mut TcpStream, head_only: bool) -> Response {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read response head");
        assert!(
            n > 0,
            "connection closed before a full response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if head_only || status == 204 || status == 304 {
        Vec::new()
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().expect("numeric content-length");
        while rest.len() < length {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "connection closed mid-body");
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(length);
        rest
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(stream, rest).await
    } else {
        let _ = stream.read_to_end(&mut rest).await;
        rest
    };
    Response {
        status,
        headers,
        body,
    }
}

async fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        while find(&buf, b"\r\n").is_none() {
            fill(stream, &mut buf).await;
        }
        let line_end = find(&buf, b"\r\n").expect("checked above");
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        while buf.len() < line_end + 2 + size + 2 {
            fill(stream, &mut buf).await;
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..line_end + 2 + size + 2);
        if size == 0 {
            return body;
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.expect("read chunk");
    assert!(n > 0, "connection closed mid-chunk");
    buf.extend_from_slice(&chunk[..n]);
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
