//! One accepted connection, from its first byte to its end: TLS or plain,
//! the HTTP/1.1 event-stream path or hyper (HTTP/1.1 or HTTP/2), one
//! header timeout for the first head, idle HTTP/2 connections closed, and
//! a graceful end when the server stops.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::app::App;
use super::h1_events::{self, Answer};
use super::peer::PeerAddr;
use super::reply::Body;
use super::routes;

/// Serves one accepted connection until it closes, the server stops, or it
/// is idle too long; `guards` are dropped then.
///
/// A client gets one `header_timeout`, counted from the accept, to send its
/// whole first request head, however it dribbles the bytes: hyper's own
/// header timeout starts only after the first byte (it must see it to tell
/// HTTP/1 from HTTP/2), so on its own a slowloris client would get nearly
/// two. After that, hyper's timeout bounds each next HTTP/1.1 request head
/// (and so an idle keep-alive connection); an HTTP/2 connection, which
/// hyper keeps open for ever, is closed once no request or stream has been
/// open on it for `idle_timeout`.
pub(super) async fn serve(
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    guards: impl Send + 'static,
) {
    // Counted as open (and against its address) until it ends: the guards
    // end with this task, or with the event stream's, below.
    let first_head_by = Instant::now() + app.config.header_timeout;
    let Some(first) = first_byte(&app, &stream, first_head_by).await else {
        return;
    };
    // A TLS handshake (its first byte is a handshake record, 0x16) on the
    // same port as plain HTTP: HTTPS, HTTP/2 if the browser offers it.
    //
    // A task is as big as its largest state, for its whole life. An event
    // stream's writing gets a task of its own, and the TLS and hyper paths
    // are boxed, so that the event streams of `h1_events`, nearly every
    // connection, are not sized for a TLS session's state, hyper's or the
    // answer's (4.5 KiB a reader when they were).
    if let (Some(tls), 0x16) = (app.tls.clone(), first) {
        Box::pin(serve_tls(app, builder, tls, stream, peer, first_head_by)).await;
        return;
    }
    // Most connections are event streams that only write: they skip
    // hyper's buffers (see `h1_events`).
    match h1_events::answer(app.clone(), &mut stream, peer).await {
        // Its own task from here, holding only what writing needs: this
        // one, sized for everything before, ends and is freed.
        Answer::Streaming(out) => {
            tokio::spawn(h1_events::stream_body(stream, out, guards));
        }
        Answer::NotMine { http2 } => {
            Box::pin(serve_hyper(
                app,
                builder,
                stream,
                peer,
                http2,
                first_head_by,
            ))
            .await;
        }
        Answer::Gone => {}
    }
}

/// Completes a TLS handshake, bounded by the first head's deadline, and
/// serves what comes over it with hyper (HTTP/2 if the client chose it).
async fn serve_tls(
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Arc<super::tls::Tls>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    first_head_by: Instant,
) {
    let accepted = tokio::time::timeout_at(first_head_by, tls.acceptor.accept(stream)).await;
    let Ok(Ok(stream)) = accepted else {
        return; // A failed or too slow handshake: nothing to answer.
    };
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_hyper(app, builder, stream, peer, http2, first_head_by).await;
}

/// The connection's first byte, looked at but left unread; `None` if none
/// came by `by` (a silent socket cannot stay open) or the server stops.
async fn first_byte(app: &App, stream: &TcpStream, by: Instant) -> Option<u8> {
    let mut stopping = app.shutdown.clone();
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout_at(by, stream.peek(&mut first)) => {
            matches!(peeked, Ok(Ok(n)) if n > 0).then_some(first[0])
        }
        _ = stopping.wait() => None,
    }
}

/// Serves a connection with hyper (HTTP/1.1 or HTTP/2, in clear or over
/// TLS) until it ends, the server stops, or it idles out.
async fn serve_hyper<I>(
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: I,
    peer: std::net::SocketAddr,
    http2: bool,
    first_head_by: Instant,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut stopping = app.shutdown.clone();
    let activity = Arc::new(Activity::new());
    let seen = activity.clone();
    let idle_timeout = app.config.idle_timeout;
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(PeerAddr(peer));
        let app = app.clone();
        let open = seen.begin();
        async move {
            let response = routes::handle(&app, request).await;
            // An HTTP/2 request is open until its body is sent or dropped
            // (an event stream: for as long as it streams).
            Ok::<_, Infallible>(match http2 {
                true => response.map(|body| InFlight { body, _open: open }.boxed_unsync()),
                false => response,
            })
        }
    });
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    // Boxed, so the tasks of event streams served by `h1_events` are not
    // sized for hyper's connection state.
    let mut connection = Box::pin(connection);
    // When to look at the connection next: for its first head, then (HTTP/2
    // only) for idleness; `None` once there is nothing left to watch.
    let mut check_at = Some(first_head_by);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!("connection ended with an error: {error}");
                }
                return;
            }
            _ = stopping.wait(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = sleep_until_some(check_at), if !closing && check_at.is_some() => {
                let now = Instant::now();
                if !activity.started() {
                    return; // No whole request head in time: drop it.
                }
                if !http2 {
                    // hyper bounds every later HTTP/1.1 head; nothing more to watch.
                    check_at = None;
                    continue;
                }
                match activity.idle_until(now, idle_timeout) {
                    Some(later) => check_at = Some(later),
                    None => {
                        tracing::debug!("closing an HTTP/2 connection idle for {idle_timeout:?}");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`; never wakes for `None` (its branch is disabled then).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Requests open on one connection, and when the last one ended.
struct Activity {
    started: AtomicBool,
    open: AtomicUsize,
    since: parking_lot::Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            since: parking_lot::Mutex::new(Instant::now()),
        }
    }

    /// A request's head is in: the connection is no longer waiting for one.
    fn begin(self: &Arc<Self>) -> OpenRequest {
        self.started.store(true, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenRequest {
            activity: self.clone(),
        }
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// `None` if the connection has had nothing open for `idle`; otherwise
    /// when to look again.
    fn idle_until(&self, now: Instant, idle: Duration) -> Option<Instant> {
        if self.open.load(Ordering::Relaxed) > 0 {
            return Some(now + idle);
        }
        let until = *self.since.lock() + idle;
        (until > now).then_some(until)
    }
}

/// One request (and its response body) open on a connection.
struct OpenRequest {
    activity: Arc<Activity>,
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        *self.activity.since.lock() = Instant::now();
        self.activity.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as open until it ends.
struct InFlight {
    body: Body,
    _open: OpenRequest,
}

impl HttpBody for InFlight {
    type Data = hyper::body::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
