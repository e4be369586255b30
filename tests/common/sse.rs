//! A test reader: one raw HTTP/1.1 event stream, decoded as it arrives.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{find, Response};

/// One Server-Sent Event, or a comment (`name` is `:` and `data` its text).
#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    pub retry: Option<String>,
    pub data: Value,
}

/// A reader with an open stream: its ghost's hello and first snapshot.
pub struct Reader {
    stream: TcpStream,
    /// Bytes read but not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet parsed into events.
    body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub hello: Event,
    /// The room when this stream opened: `snapshot`, or `density` if crowded.
    pub state: Event,
    pub id: String,
    pub token: String,
    pub color: String,
    /// Every comment line seen (heartbeats).
    pub comments: Vec<String>,
    ended: bool,
}

/// Opens `/posts/{slug}/events` and reads `hello` and `snapshot`.
pub async fn open(addr: SocketAddr, slug: &str) -> Reader {
    open_with(addr, &format!("/posts/{slug}/events"), "")
        .await
        .unwrap_or_else(|r| panic!("stream refused: {r:?}"))
}

/// Opens `/posts/{slug}/events` from source address `source` (any of
/// 127.0.0.0/8), as readers on many machines would.
pub async fn open_from(addr: SocketAddr, slug: &str, source: std::net::Ipv4Addr) -> Reader {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    let stream = socket.connect(addr).await.expect("connect");
    open_on(stream, &format!("/posts/{slug}/events"), "")
        .await
        .unwrap_or_else(|r| panic!("stream refused: {r:?}"))
}

/// The `n`th of many loopback source addresses: 127.0.<n / 250>.<n % 250 + 2>.
pub fn source(n: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, (n / 250 % 250) as u8, (n % 250 + 2) as u8)
}

/// Opens `/posts/{slug}/events` resuming `token`, as `EventSource` does
/// when it reconnects (`Last-Event-ID`).
pub async fn resume(addr: SocketAddr, slug: &str, token: &str) -> Reader {
    let header = format!("last-event-id: {token}\r\n");
    open_with(addr, &format!("/posts/{slug}/events"), &header)
        .await
        .unwrap_or_else(|r| panic!("resume refused: {r:?}"))
}

/// A one-time ticket for `token`'s ghost on `slug`, as a reloaded page
/// asks for one (the token in the body, never in a URL).
pub async fn ticket_for(addr: SocketAddr, slug: &str, token: &str) -> String {
    let body = format!("{{\"token\":\"{token}\"}}");
    let answer = super::send(
        addr,
        &format!(
            "POST /posts/{slug}/ticket HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    answer.json()["ticket"]
        .as_str()
        .expect("a ticket")
        .to_string()
}

/// Opens `/posts/{slug}/events?resume=<ticket>`, as a reloaded page does.
pub async fn resume_by_ticket(addr: SocketAddr, slug: &str, ticket: &str) -> Reader {
    open_with(addr, &format!("/posts/{slug}/events?resume={ticket}"), "")
        .await
        .unwrap_or_else(|r| panic!("stream refused: {r:?}"))
}

/// Opens a stream at `path` with extra raw header lines; a non-200 answer is
/// returned as the error.
pub async fn open_with(
    addr: SocketAddr,
    path: &str,
    extra_headers: &str,
) -> Result<Reader, Response> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    open_on(stream, path, extra_headers).await
}

pub async fn open_on(
    mut stream: TcpStream,
    path: &str,
    extra_headers: &str,
) -> Result<Reader, Response> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\n{extra_headers}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&raw, b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response head within 10 s")
            .expect("read");
        assert!(n > 0, "closed before the response head");
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if status != 200 {
        let mut rest = raw[head_end + 4..].to_vec();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while rest.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read body");
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        return Err(Response {
            status,
            headers,
            body: rest,
        });
    }
    let raw = raw[head_end + 4..].to_vec();
    let placeholder = Event {
        name: String::new(),
        id: None,
        retry: None,
        data: Value::Null,
    };
    let mut reader = Reader {
        stream,
        raw,
        body: Vec::new(),
        headers,
        hello: placeholder.clone(),
        state: placeholder,
        id: String::new(),
        token: String::new(),
        color: String::new(),
        comments: Vec::new(),
        ended: false,
    };
    reader.dechunk();
    let hello = reader.next_event().await.expect("a hello event");
    assert_eq!(hello.name, "hello");
    // The room's state: every ghost, or in a crowded room the density.
    let state = reader
        .next_event()
        .await
        .expect("a snapshot or density event");
    assert!(
        ["snapshot", "density"].contains(&state.name.as_str()),
        "{}",
        state.name
    );
    reader.id = hello.data["id"].as_str().expect("hello.id").to_string();
    reader.token = hello.data["token"]
        .as_str()
        .expect("hello.token")
        .to_string();
    reader.color = hello.data["color"]
        .as_str()
        .expect("hello.color")
        .to_string();
    reader.hello = hello;
    reader.state = state;
    Ok(reader)
}

impl Reader {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next event (comments are recorded, not returned); `None` once the
    /// server ended the stream. Fails the test after 10 s of silence.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.next_event_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    /// Like `next_event`, but `Err(())` when nothing arrives within `limit`.
    pub async fn next_event_within(&mut self, limit: Duration) -> Result<Option<Event>, ()> {
        loop {
            match self.next_item_within(limit).await? {
                Some(event) if event.name == ":" => {
                    self.comments
                        .push(event.data.as_str().unwrap_or_default().to_string());
                }
                other => return Ok(other),
            }
        }
    }

    /// The next event or comment.
    async fn next_item_within(&mut self, limit: Duration) -> Result<Option<Event>, ()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(event) = self.parse_event() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            let mut chunk = vec![0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| ())?;
            match read {
                Ok(0) | Err(_) => self.ended = true,
                Ok(n) => {
                    self.raw.extend_from_slice(&chunk[..n]);
                    self.dechunk();
                }
            }
        }
    }

    /// Reads until an event with `name` satisfying `check` arrives, returning
    /// it and the events skipped on the way.
    pub async fn wait_for(
        &mut self,
        name: &str,
        check: impl Fn(&Value) -> bool,
    ) -> (Event, Vec<Event>) {
        let mut skipped = Vec::new();
        loop {
            let event = self
                .next_event()
                .await
                .unwrap_or_else(|| panic!("stream ended before {name}: {skipped:#?}"));
            if event.name == name && check(&event.data) {
                return (event, skipped);
            }
            skipped.push(event);
        }
    }

    /// Waits until `moves` puts ghost `id` somewhere in block `block`.
    pub async fn wait_for_ghost_in_block(&mut self, id: &str, block: u32) {
        let block = f64::from(block);
        self.wait_for("moves", |d| {
            d["moves"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["id"] == id
                        && m["pos"]
                            .as_f64()
                            .is_some_and(|p| (block..block + 1.0).contains(&p))
                })
            })
        })
        .await;
    }

    /// Reads until the server closes the stream; fails after 10 s.
    pub async fn wait_closed(&mut self) {
        while self.next_event().await.is_some() {}
    }

    /// Waits for the next comment line (a heartbeat), failing on any event.
    pub async fn wait_comment(&mut self) -> String {
        match self.next_item_within(Duration::from_secs(10)).await {
            Ok(Some(event)) if event.name == ":" => {
                event.data.as_str().unwrap_or_default().to_string()
            }
            other => panic!("expected a comment, got {other:?}"),
        }
    }

    /// Closes the connection (the tab is gone).
    pub fn close(self) {
        drop(self);
    }

    /// The connection itself, for a test that misbehaves on it.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    fn dechunk(&mut self) {
        loop {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
                panic!("bad chunk header {size_text:?}");
            };
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    fn parse_event(&mut self) -> Option<Event> {
        let end = find(&self.body, b"\n\n")?;
        let block = String::from_utf8(self.body[..end].to_vec()).expect("events are UTF-8");
        self.body.drain(..end + 2);
        let mut event = Event {
            name: "message".into(),
            id: None,
            retry: None,
            data: Value::Null,
        };
        let mut data_lines = 0;
        for line in block.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                return Some(Event {
                    name: ":".into(),
                    id: None,
                    retry: None,
                    data: Value::from(comment.trim()),
                });
            }
            let (field, value) = line.split_once(": ").unwrap_or((line, ""));
            match field {
                "event" => event.name = value.to_string(),
                "id" => event.id = Some(value.to_string()),
                "retry" => event.retry = Some(value.to_string()),
                "data" => {
                    data_lines += 1;
                    event.data = serde_json::from_str(value)
                        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {value}"));
                }
                other => panic!("unexpected field {other:?} in {block:?}"),
            }
        }
        assert_eq!(data_lines, 1, "exactly one data line per event: {block:?}");
        Some(event)
    }
}

/// `POST /posts/{slug}/position` on a fresh connection.
pub async fn post_position(addr: SocketAddr, slug: &str, body: &str) -> Response {
    post_raw(addr, slug, "application/json", body).await
}

pub async fn post_raw(addr: SocketAddr, slug: &str, content_type: &str, body: &str) -> Response {
    let request = format!(
        "POST /posts/{slug}/position HTTP/1.1\r\nhost: t\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    super::send(addr, &request).await
}

/// Moves `reader`'s ghost, expecting `204`.
pub async fn move_to(addr: SocketAddr, slug: &str, reader: &Reader, pos: f64) {
    let body = format!("{{\"token\":\"{}\",\"pos\":{pos}}}", reader.token);
    let answer = post_position(addr, slug, &body).await;
    assert_eq!(
        answer.status,
        204,
        "move answered {}: {}",
        answer.status,
        answer.text()
    );
}

/// A gauge or counter from `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = super::get(addr, "/metrics").await.text();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}
