//! HTTP/1.1 connections that open with an event stream, served without
//! hyper's per-connection machinery.
//!
//! Event streams are nearly every connection a busy server holds, and all
//! they do is write. Through hyper each one keeps an 8 KiB read buffer, an
//! 8 KiB header buffer and a dispatcher: 27 KiB per reader, measured, for a
//! ghost that itself takes a few hundred bytes. So a connection whose first
//! request is a plain `GET /posts/{slug}/events` is answered here instead:
//!
//! - its head is parsed from a peek with httparse (the parser hyper uses), so
//!   anything unusual goes to hyper untouched, nothing having been consumed;
//! - the same [`routes::handle`] makes the response, so limits, resumes and
//!   errors are decided in one place;
//! - this module writes it: chunked, one `writev` per batch of ready frames
//!   (the frames themselves, shared with every reader of the room, never
//!   copied), and reads only to notice the peer leaving.
//!
//! The connection closes when the response ends, as an event stream's does.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::Empty;
use hyper::body::{Body as _, Bytes};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::app::App;
use super::peer::PeerAddr;
use super::reply::Body;
use super::routes;

/// How much of a connection's first bytes are looked at. An event stream's
/// request is a few hundred bytes; a longer head goes to hyper, whose limits
/// and `431` then apply.
const PEEK: usize = 4096;

/// Headers a head handled here may have; more goes to hyper.
const MAX_HEADERS: usize = 32;

/// Most frames gathered into one write. With the chunk framing around each,
/// this bounds what a stalled reader holds of its own here: this many frame
/// handles (the frames are the room's, shared) and their chunk headers,
/// about 7 KiB, whatever the room's size or the frames' length.
const MAX_FRAMES: usize = 64;

/// Slices in one `writev`: three per frame (chunk size, frame, CRLF), ten
/// frames. Nearly every write carries one frame; a reader catching up
/// sends the rest in the next. Kept small because the array is set up on
/// the stack for every write, on the path every frame takes.
const MAX_SLICES: usize = 30;

/// Pending bytes up to this many are copied into one buffer on the stack
/// and sent with one plain write (see `Writing::write`).
const COPY_UP_TO: usize = 2048;

/// Bytes a client may send after its request before it is cut off: it has
/// nothing more to say on this connection.
const MAX_IGNORED: usize = 16 * 1024;

/// A request head this module serves: its length in the peeked bytes, and
/// the request. `None` leaves the connection to hyper: not a complete
/// `GET .../events` over HTTP/1.1, or anything a plain one would not have
/// (a body, an upgrade, `Expect`, a header hyper would refuse).
pub fn parse(peeked: &[u8]) -> Option<(usize, Request<Empty<Bytes>>)> {
    if !peeked.starts_with(b"GET /posts/") {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = head.parse(peeked).ok()? else {
        return None;
    };
    let path = head.path?;
    if head.method != Some("GET") || head.version != Some(1) || !is_events_path(path) {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .version(Version::HTTP_11);
    for header in head.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        if [
            CONTENT_LENGTH,
            TRANSFER_ENCODING,
            hyper::header::UPGRADE,
            hyper::header::EXPECT,
        ]
        .contains(&name)
        {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    Some((length, request.body(Empty::new()).ok()?))
}

/// `/posts/{slug}/events`, with or without a query.
fn is_events_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let mut segments = path.split('/');
    matches!(
        (segments.next(), segments.next(), segments.next(), segments.next(), segments.next()),
        (Some(""), Some("posts"), Some(slug), Some("events"), None) if !slug.is_empty()
    )
}

/// What became of a connection's first request.
pub enum Answer {
    /// An event stream, answered here: its head is out, its body to write
    /// with [`stream_body`].
    Streaming(OutBody),
    /// Not a request this module serves: for hyper, nothing consumed.
    NotMine { http2: bool },
    /// The peer went while it was being answered.
    Gone,
}

/// A response body and how it is framed.
pub struct OutBody {
    body: Body,
    chunked: bool,
}

/// Looks at the connection's first request (data is there: this peek does
/// not wait) and, if it is a plain event stream's, answers it: reads its
/// head off the socket, makes the response with the router and writes the
/// response's head.
///
/// Only now a buffer to look at the head with: a socket that never sends
/// must not cost 4 KiB while it waits.
pub async fn answer(app: Arc<App>, stream: &mut TcpStream, peer: SocketAddr) -> Answer {
    let mut peeked = vec![0u8; PEEK];
    let length = stream.peek(&mut peeked).await.unwrap_or(0);
    let Some((length, mut request)) = parse(&peeked[..length]) else {
        let http2 = peeked[..length].starts_with(H2_PREFACE);
        return Answer::NotMine { http2 };
    };
    drop(peeked);
    let mut head = vec![0u8; length];
    if stream.read_exact(&mut head).await.is_err() {
        return Answer::Gone;
    }
    drop(head);
    request.extensions_mut().insert(PeerAddr(peer));
    let response = routes::handle(&app, request).await;
    let (head, body, chunked) = response_head(response);
    if stream.write_all(&head).await.is_err() {
        return Answer::Gone;
    }
    Answer::Streaming(OutBody { body, chunked })
}

/// What a client sends first on an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Writes the body [`answer`] began until it ends or the peer leaves;
/// `guards` (the connection's place in the server's counts) go then.
/// This is the task that waits for the reader's whole visit, so it holds
/// little: the socket, the body, and [`Writing`].
pub async fn stream_body(stream: TcpStream, out: OutBody, guards: impl Send + 'static) {
    let _guards = guards;
    let OutBody { mut body, chunked } = out;
    let mut state = Writing {
        pending: VecDeque::new(),
        ignored: 0,
        finished: false,
        chunked,
    };
    let ended = std::future::poll_fn(|cx| state.poll(cx, &stream, &mut body)).await;
    if let Err(error) = ended {
        tracing::debug!("event stream connection ended: {error}");
        return;
    }
    // Every byte is out: say so with a FIN. The peer may be gone already.
    let mut stream = stream;
    let _ = stream.shutdown().await;
}

/// The status line and headers, with the framing this module writes:
/// `Content-Length` for a body of known size, else chunked; and `close`.
fn response_head(response: Response<Body>) -> (Vec<u8>, Body, bool) {
    let (parts, body) = response.into_parts();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION].contains(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    head.extend_from_slice(b"\r\nconnection: close\r\n");
    let chunked = match body.size_hint().exact() {
        Some(length) => {
            head.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
            false
        }
        None => {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
            true
        }
    };
    head.extend_from_slice(b"\r\n");
    (head, body, chunked)
}

/// A response body on its way out. Holds nothing while the socket keeps
/// up, which is nearly always.
struct Writing {
    /// What the socket has not taken yet, in order: the frames themselves
    /// (shared `Bytes`, not copies) and their chunk framing. The body is not
    /// polled until they are out, so a reader that stops reading falls
    /// behind in the broadcast channel (and later gets a fresh state), not
    /// in memory here.
    pending: VecDeque<Bytes>,
    /// Bytes the client sent after its request, thrown away.
    ignored: usize,
    /// The body ended; its last bytes are in `pending` or out.
    finished: bool,
    chunked: bool,
}

impl Writing {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        stream: &TcpStream,
        body: &mut Body,
    ) -> Poll<io::Result<()>> {
        // Once per wake-up: nothing below touches the read side.
        if let Poll::Ready(gone) = self.poll_peer(cx, stream) {
            return Poll::Ready(Err(gone));
        }
        loop {
            if !self.pending.is_empty() {
                match self.write(stream) {
                    // Drained: its buffer goes too. Thousands of idle
                    // readers would each keep one sized for their busiest
                    // moment (half a KiB, measured).
                    Ok(()) if self.pending.is_empty() => self.pending = VecDeque::new(),
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        std::task::ready!(stream.poll_write_ready(cx))?;
                    }
                    Err(error) => return Poll::Ready(Err(error)),
                }
                continue;
            }
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            if !self.gather(cx, body) {
                return Poll::Pending;
            }
        }
    }

    /// One write of what is pending; drops what the socket took.
    ///
    /// What is pending is nearly always one small frame and its chunk
    /// framing: copied together on the stack, it goes out in one `send`,
    /// which costs the kernel less than a `writev` of three slices (perf:
    /// `vfs_writev` and `fdget_pos` were 10 % of the server's CPU with 18,000
    /// readers, more than the copy of a few hundred bytes). Anything bigger
    /// goes by `writev`, uncopied.
    fn write(&mut self, stream: &TcpStream) -> io::Result<()> {
        let total: usize = self.pending.iter().map(Bytes::len).sum();
        let mut written = if total <= COPY_UP_TO {
            let mut joined = [0u8; COPY_UP_TO];
            let mut at = 0;
            for bytes in &self.pending {
                joined[at..at + bytes.len()].copy_from_slice(bytes);
                at += bytes.len();
            }
            stream.try_write(&joined[..at])?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, bytes) in slices.iter_mut().zip(&self.pending) {
                *slot = IoSlice::new(bytes);
                count += 1;
            }
            stream.try_write_vectored(&slices[..count])?
        };
        while written > 0 {
            let Some(front) = self.pending.front_mut() else {
                break;
            };
            if front.len() <= written {
                written -= front.len();
                self.pending.pop_front();
            } else {
                *front = front.slice(written..);
                written = 0;
            }
        }
        Ok(())
    }

    /// Every frame the body has ready, framed, up to [`MAX_FRAMES`]: a
    /// reader behind by several ticks catches up in one write. Whether
    /// anything was gathered.
    fn gather(&mut self, cx: &mut Context<'_>, body: &mut Body) -> bool {
        let mut frames = 0;
        while frames < MAX_FRAMES {
            match std::pin::Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    frames += 1;
                    if self.chunked {
                        let size = format!("{:x}\r\n", data.len());
                        self.pending.push_back(Bytes::from(size));
                        self.pending.push_back(data);
                        self.pending.push_back(Bytes::from_static(b"\r\n"));
                    } else {
                        self.pending.push_back(data);
                    }
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => {
                    if self.chunked {
                        self.pending.push_back(Bytes::from_static(b"0\r\n\r\n"));
                    }
                    self.finished = true;
                    return true;
                }
                Poll::Pending => break,
            }
        }
        frames > 0
    }

    /// Ready when the peer closed, reset, or talks too much: hyper would end
    /// the response then too, and a ghost's stream ending is what makes it
    /// leave promptly.
    fn poll_peer(&mut self, cx: &mut Context<'_>, stream: &TcpStream) -> Poll<io::Error> {
        loop {
            if let Err(error) = std::task::ready!(stream.poll_read_ready(cx)) {
                return Poll::Ready(error);
            }
            let mut scratch = [0u8; 512];
            match stream.try_read(&mut scratch) {
                Ok(0) => return Poll::Ready(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.ignored += n;
                    if self.ignored > MAX_IGNORED {
                        return Poll::Ready(io::Error::other("the client kept sending"));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(error),
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
