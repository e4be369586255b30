//! How simulated readers reach the server: an event stream over HTTP/1.1 or
//! as a stream on a shared HTTP/2 connection, and the pool of keep-alive
//! connections that carries every reader's POSTs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::http::{connect_from, post, source};
use crate::shared::{H2Pool, Move, Shared};

/// One keep-alive POST connection, fed by the readers that hash to it.
pub(crate) async fn poster(shared: Arc<Shared>, n: usize, mut moves: mpsc::Receiver<Move>) {
    let mut connection: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    while let Some(m) = moves.recv().await {
        if connection.is_none() {
            match connect_from(shared.addr(n), source(900_000 + n)).await {
                Ok(stream) => connection = Some(stream),
                Err(error) => {
                    shared
                        .stats
                        .error(&connect_error("POST connection", &error));
                    continue;
                }
            }
        }
        let Some(stream) = connection.as_mut() else {
            continue;
        };
        let sent = &shared.sent[m.reader];
        if sent.session.load(Ordering::Acquire) != m.session {
            continue; // Its stream has closed since: the tab is gone.
        }
        sent.sending(m.seq, shared.nanos() / 1000);
        sent.count.fetch_max(m.seq + 1, Ordering::AcqRel);
        shared.stats.moves_sent.fetch_add(1, Ordering::Relaxed);
        let body = format!("{{\"token\":\"{}\",\"pos\":{}}}", m.token, m.pos);
        let path = format!("/posts/{}/position", m.slug);
        let mut answer = post(stream, &mut buf, &path, &body).await;
        if answer.as_ref().is_err_and(|_| buf.is_empty()) {
            // The server closed the connection while it sat idle (its
            // header timeout) just as this request went out: nothing was
            // answered, so send it once more on a fresh connection, as
            // browsers do with a reused connection that turns out closed.
            answer = match connect_from(shared.addr(n), source(900_000 + n)).await {
                Ok(fresh) => {
                    let stream = connection.insert(fresh);
                    post(stream, &mut buf, &path, &body).await
                }
                Err(error) => Err(error),
            };
        }
        match answer {
            Ok(status) => shared.stats.post_answer(status),
            Err(error) => {
                shared
                    .stats
                    .error(&format!("POST connection lost: {}", error.kind()));
                connection = None;
            }
        }
    }
}

/// A reader's event stream, over either protocol, or (a reader behind a
/// proxy that buffers) long-polling that yields the same event text.
pub(crate) enum Stream {
    H1(TcpStream),
    H2(Incoming),
    Poll(Box<Poller>),
}

/// A long-polling reader: one keep-alive connection, one poll after another.
/// Cancel-safe, as a reader's `select!` needs: a poll once sent is read to
/// its answer by the next call, never sent again.
pub(crate) struct Poller {
    connection: TcpStream,
    path: String,
    token: Option<String>,
    seen: u64,
    /// The answer so far to the poll in flight, if one is.
    answer: Vec<u8>,
    in_flight: bool,
}

impl Poller {
    /// The next poll's events, appended to `buf`; `None` once the ghost is
    /// gone or the connection broke.
    async fn next(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        if !self.in_flight {
            let body = match &self.token {
                Some(token) => format!("{{\"token\":\"{token}\",\"seen\":{}}}", self.seen),
                None => "{}".to_string(),
            };
            self.send(&body).await?;
        }
        let (status, body) = self.read_answer().await?;
        if status != 200 {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            seq: u64,
            #[serde(default)]
            ended: bool,
            events: String,
        }
        let answer: Answer = serde_json::from_slice(&body).ok()?;
        if self.token.is_none() {
            let at = answer.events.find("\"token\":\"")? + 9;
            let end = answer.events[at..].find('"')?;
            self.token = Some(answer.events[at..at + end].to_string());
        }
        self.seen = answer.seq;
        buf.extend_from_slice(answer.events.as_bytes());
        if answer.ended {
            return None;
        }
        Some(answer.events.len())
    }

    async fn send(&mut self, body: &str) -> Option<()> {
        let request = format!(
            "POST {} HTTP/1.1\r\nhost: load\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.path,
            body.len()
        );
        self.answer.clear();
        self.in_flight = true;
        self.connection.write_all(request.as_bytes()).await.ok()
    }

    /// Reads the answer in flight to its end: its status and body.
    async fn read_answer(&mut self) -> Option<(u16, Vec<u8>)> {
        loop {
            if let Some(end) = self.answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.answer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.answer.len() >= end + 4 + length {
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let body = self.answer[end + 4..end + 4 + length].to_vec();
                    self.in_flight = false;
                    return Some((status, body));
                }
            }
            // A read is cancel-safe: nothing is lost if this is dropped here.
            let mut chunk = [0u8; 4096];
            match self.connection.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.answer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

impl Stream {
    /// Appends what arrived; `None` when the stream ended.
    pub(crate) async fn chunk(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        match self {
            Stream::H1(stream) => {
                // Straight into the buffer's spare room: zeroing a scratch
                // array first cost more than the read's copy.
                buf.reserve(8192);
                match stream.read_buf(buf).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => Some(n),
                }
            }
            Stream::Poll(poller) => poller.next(buf).await,
            Stream::H2(body) => loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(&data);
                            return Some(data.len());
                        }
                    }
                    _ => return None,
                }
            },
        }
    }
}

fn connect_error(what: &str, error: &std::io::Error) -> String {
    if error.raw_os_error() == Some(libc::EMFILE) || error.raw_os_error() == Some(libc::ENFILE) {
        format!("harness out of file descriptors opening a {what} (the harness, not the server, is the limit)")
    } else {
        format!("{what} failed: {}", error.kind())
    }
}

/// Opens reader `me`'s event stream: the stream, and its first bytes if
/// they came with the response head.
pub(crate) async fn open(
    shared: &Shared,
    me: usize,
    slug: &str,
    resume: Option<&str>,
) -> Option<(Stream, Vec<u8>)> {
    let path = format!("/posts/{slug}/events");
    let stream = if shared.polls(me) {
        open_poll(shared, me, slug, resume).await
    } else {
        match &shared.h2 {
            Some(pool) => open_h2(shared, pool, me, &path, resume)
                .await
                .map(|stream| (stream, Vec::with_capacity(8192))),
            None => open_h1(shared, me, &path, resume).await,
        }
    };
    match &stream {
        Some(_) => {
            shared.stats.opened.fetch_add(1, Ordering::Relaxed);
            if resume.is_some() {
                shared.stats.resumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    stream
}

/// A reader that polls: its first answer (`hello` and the room's state)
/// comes back as a stream's first bytes would.
async fn open_poll(
    shared: &Shared,
    me: usize,
    slug: &str,
    resume: Option<&str>,
) -> Option<(Stream, Vec<u8>)> {
    let connection = match connect_from(shared.addr(me), source(me)).await {
        Ok(connection) => connection,
        Err(error) => {
            shared
                .stats
                .error(&connect_error("poll connection", &error));
            return None;
        }
    };
    let mut poller = Poller {
        connection,
        path: format!("/posts/{slug}/poll"),
        token: None,
        seen: 0,
        answer: Vec::with_capacity(4096),
        in_flight: false,
    };
    let mut first = Vec::with_capacity(4096);
    if let Some(token) = resume {
        // A reader coming back resumes its ghost, as a reloaded page does.
        poller.send(&format!("{{\"resume\":\"{token}\"}}")).await?;
        poller.token = Some(token.to_string());
    }
    if poller.next(&mut first).await.is_none() {
        shared.stats.error("first poll failed");
        return None;
    }
    Some((Stream::Poll(Box::new(poller)), first))
}

async fn open_h1(
    shared: &Shared,
    me: usize,
    path: &str,
    resume: Option<&str>,
) -> Option<(Stream, Vec<u8>)> {
    let mut stream = match connect_from(shared.addr(me), source(me)).await {
        Ok(stream) => stream,
        Err(error) => {
            shared.stats.error(&connect_error("stream", &error));
            return None;
        }
    };
    let last_event_id = resume
        .map(|t| format!("last-event-id: {t}\r\n"))
        .unwrap_or_default();
    let origin = crate::http::origin_header(path.split('/').nth(2).unwrap_or_default());
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: load\r\naccept: text/event-stream\r\n{origin}{last_event_id}\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        shared.stats.error("stream request failed");
        return None;
    }
    // Read in chunks, not a byte per call: 1,200 readers a second arrive in
    // idle-crowd, and the head is 200 bytes. What follows the head is the
    // stream's first bytes, handed on with it.
    let mut head = Vec::with_capacity(8192);
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read_buf(&mut head).await {
            Ok(n) if n > 0 => {}
            _ => {
                shared.stats.error("stream closed before its response head");
                return None;
            }
        }
    };
    let status = String::from_utf8_lossy(&head[..end])
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    if status != "200" {
        shared.stats.error(&format!("stream answered {status}"));
        return None;
    }
    head.drain(..end);
    Some((Stream::H1(stream), head))
}

/// Opens HTTP/2 connection `n` of the pool.
async fn open_h2_connection(shared: &Shared, n: usize) -> Option<SendRequest<Empty<Bytes>>> {
    let stream = match connect_from(shared.addr(0), source(500_000 + n)).await {
        Ok(stream) => stream,
        Err(error) => {
            shared
                .stats
                .error(&connect_error("HTTP/2 connection", &error));
            return None;
        }
    };
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(256 * 1024)
        .max_concurrent_reset_streams(1024);
    let Ok((sender, connection)) = builder.handshake(TokioIo::new(stream)).await else {
        shared.stats.error("HTTP/2 handshake failed");
        return None;
    };
    tokio::spawn(connection);
    Some(sender)
}

async fn open_h2(
    shared: &Shared,
    pool: &H2Pool,
    me: usize,
    path: &str,
    resume: Option<&str>,
) -> Option<Stream> {
    let index = me / pool.per.max(1);
    let mut sender = {
        let mut conns = pool.conns.lock().await;
        match conns.get(&index).filter(|sender| !sender.is_closed()) {
            Some(sender) => sender.clone(),
            None => {
                let sender = open_h2_connection(shared, index).await?;
                conns.insert(index, sender.clone());
                sender
            }
        }
    };
    let mut request = hyper::Request::get(format!("http://{}{path}", shared.addr(0)));
    if let Some(token) = resume {
        request = request.header("last-event-id", token);
    }
    let request = request.body(Empty::new()).ok()?;
    if sender.ready().await.is_err() {
        shared.stats.error("HTTP/2 connection closed");
        return None;
    }
    match sender.send_request(request).await {
        Ok(response) if response.status() == 200 => Some(Stream::H2(response.into_body())),
        Ok(response) => {
            shared
                .stats
                .error(&format!("stream answered {}", response.status().as_u16()));
            None
        }
        Err(_) => {
            shared.stats.error("HTTP/2 stream failed");
            None
        }
    }
}
