//! The accept loop: HTTP/1.1 and HTTP/2 (h2c by prior knowledge) on one port,
//! connection limits, timeouts against clients that send nothing, and a
//! graceful shutdown that cannot hang on open event streams.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::app::App;
use super::peer::{block_of, PeerAddr};
use super::reply::Body;
use super::{h1_events, routes};
use crate::shutdown::Trigger;

/// HTTP/2 streams one connection may open at once. Browsers open one stream
/// per tab's event source, so a reader with many tabs fits comfortably.
const MAX_H2_STREAMS: u32 = 256;

/// How often an idle HTTP/2 connection is pinged, and how long the peer has to
/// answer: finds peers that vanished without closing.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);

/// The ghost manager ended while the server was not stopping: a bug. The
/// server stops too, so that a supervisor (systemd, a container runtime)
/// restarts it whole, rather than serving pages without live readers.
#[derive(Debug)]
pub struct ManagerStopped;

/// Accepts connections until `shutdown` resolves (or the ghost manager
/// stops, which is an error), then fires `trigger` (which ends every event
/// stream), lets in-flight requests finish within the grace period, and
/// returns.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    trigger: Trigger,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ManagerStopped> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.header_timeout)
        .max_headers(64)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE)
        .max_header_list_size(16 * 1024);
    let builder = Arc::new(builder);
    let open = Arc::new(AtomicUsize::new(0));
    let per_address = Arc::new(PerAddress::default());
    let mut accept_errors = 0u64;
    tokio::pin!(shutdown);
    let ghosts = app.ghosts.clone();
    let manager_stopped = ghosts.stopped();
    tokio::pin!(manager_stopped);
    let mut outcome = Ok(());

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: out of file descriptors. Back off a little
                    // instead of spinning, and say so without flooding the log.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!("accepting a connection failed ({accept_errors} times so far): {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
            _ = &mut manager_stopped => {
                tracing::error!(
                    "the ghost manager stopped unexpectedly; stopping the server so that its supervisor restarts it"
                );
                outcome = Err(ManagerStopped);
                break;
            }
        };
        tune_socket(&stream, &app.config);
        let guard = ConnectionGuard::enter(&open, &app.metrics);
        if guard.count > app.config.max_connections {
            tokio::spawn(refuse(stream, Refusal::ServerFull));
            continue;
        }
        // Trusted proxies speak for many clients; anyone else holds at most
        // so many connections (an IPv6 client: its /64).
        let from = peer.ip().to_canonical();
        let address_guard = if app.config.trusted_proxies.contains(&from) {
            None
        } else {
            let guard = per_address.enter(block_of(from));
            if guard.count > app.config.max_connections_per_address {
                tokio::spawn(refuse(stream, Refusal::AddressFull));
                continue;
            }
            Some(guard)
        };
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _address_guard = address_guard;
            serve_connection(app, builder, stream, peer).await;
        });
    }

    trigger.fire();
    // Event streams never finish by themselves, and graceful shutdown waits
    // for every response: the manager ends them all (and saves the counts).
    app.ghosts.shutdown().await;
    tracing::info!(
        "shutting down: no new connections; finishing {} open",
        open.load(Ordering::Relaxed)
    );
    // Each connection saw the trigger and is finishing its last answer.
    let all_closed = async {
        while open.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(app.config.shutdown_grace, all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connections were still busy after {:?}; closing them",
            open.load(Ordering::Relaxed),
            app.config.shutdown_grace
        );
    }
    outcome
}

/// Serves one accepted connection until it closes, the server stops, or it
/// is idle too long.
///
/// A client gets one `header_timeout`, counted from the accept, to send its
/// whole first request head, however it dribbles the bytes: hyper's own
/// header timeout starts only after the first byte (it must see it to tell
/// HTTP/1 from HTTP/2), so on its own a slowloris client would get nearly
/// two. After that, hyper's timeout bounds each next HTTP/1.1 request head
/// (and so an idle keep-alive connection); an HTTP/2 connection, which
/// hyper keeps open for ever, is closed once no request or stream has been
/// open on it for `idle_timeout`.
async fn serve_connection(
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) {
    let first_head_by = Instant::now() + app.config.header_timeout;
    let mut stopping = app.shutdown.clone();
    // Wait for a first byte, bounded, so a silent socket cannot stay open.
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout_at(first_head_by, stream.peek(&mut first)) => {
            if !matches!(peeked, Ok(Ok(n)) if n > 0) { return; }
        }
        _ = stopping.wait() => return,
    }
    // A TLS handshake (its first byte is a handshake record, 0x16) on the
    // same port as plain HTTP: HTTPS, HTTP/2 if the browser offers it.
    if let (Some(tls), 0x16) = (app.tls.clone(), first[0]) {
        let accepted = tokio::time::timeout_at(first_head_by, tls.acceptor.accept(stream)).await;
        let Ok(Ok(stream)) = accepted else {
            return; // A failed or too slow handshake: nothing to answer.
        };
        let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        serve_hyper(app, builder, stream, peer, http2, first_head_by).await;
        return;
    }
    // Only now a buffer to look at the head with: a socket that never
    // sends must not cost 4 KiB while it waits. Data is there, so this
    // peek does not wait.
    let mut peeked = vec![0u8; h1_events::PEEK];
    let length = stream.peek(&mut peeked).await.unwrap_or(0);
    // Most connections are event streams that only write: they
    // skip hyper's buffers (see `h1_events`).
    if let Some((head, request)) = h1_events::parse(&peeked[..length]) {
        drop(peeked);
        h1_events::serve(app, stream, peer, head, request).await;
        return;
    }
    let http2 = peeked[..length].starts_with(H2_PREFACE);
    drop(peeked);
    serve_hyper(app, builder, stream, peer, http2, first_head_by).await;
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
    let mut check_at = first_head_by;
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
            _ = tokio::time::sleep_until(check_at), if !closing => {
                let now = Instant::now();
                if !activity.started() {
                    return; // No whole request head in time: drop it.
                }
                if !http2 {
                    // hyper bounds every later HTTP/1.1 head; nothing more to watch.
                    check_at = now + Duration::from_secs(86_400 * 365);
                    continue;
                }
                match activity.idle_until(now, idle_timeout) {
                    Some(later) => check_at = later,
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

/// What a client sends first on an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

/// Socket options that bound what a connection can cost and find peers that
/// vanished. Each is best effort: a platform without one still serves.
fn tune_socket(stream: &TcpStream, config: &crate::Config) {
    // Moves must reach readers within a tick; small writes must not wait.
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    if config.socket_send_buffer > 0 {
        let _ = socket.set_send_buffer_size(config.socket_send_buffer);
    }
    // Data unacknowledged this long (a peer gone without a FIN, found by the
    // next heartbeat write) or a window closed this long (a reader that
    // stopped reading altogether) ends the connection, and so the ghost.
    let _ = socket.set_tcp_user_timeout(Some((config.heartbeat * 2).max(Duration::from_secs(30))));
    // Idle keep-alive connections have no writes to fail; probes find them.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = socket.set_tcp_keepalive(&keepalive);
}

/// Counts a connection while it lives.
struct ConnectionGuard {
    open: Arc<AtomicUsize>,
    /// Open connections including this one, when it was accepted.
    count: usize,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ConnectionGuard {
    fn enter(open: &Arc<AtomicUsize>, metrics: &Arc<crate::metrics::Metrics>) -> ConnectionGuard {
        let count = open.fetch_add(1, Ordering::Relaxed) + 1;
        metrics.connections_open.set(count as i64);
        ConnectionGuard {
            open: open.clone(),
            count,
            metrics: metrics.clone(),
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let left = self.open.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        self.metrics.connections_open.set(left as i64);
    }
}

/// Open connections per client address, for `--max-connections-per-address`.
#[derive(Default)]
struct PerAddress {
    counts: parking_lot::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl PerAddress {
    fn enter(self: &Arc<Self>, address: std::net::IpAddr) -> AddressGuard {
        let mut counts = self.counts.lock();
        let count = counts.entry(address).or_insert(0);
        *count += 1;
        AddressGuard {
            count: *count,
            address,
            per_address: self.clone(),
        }
    }
}

/// Counts a connection against its address while it lives; an address is
/// forgotten when its last connection closes.
struct AddressGuard {
    /// Connections from this address including this one, when accepted.
    count: usize,
    address: std::net::IpAddr,
    per_address: Arc<PerAddress>,
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let mut counts = self.per_address.counts.lock();
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Why a connection is refused before anything is read from it.
#[derive(Clone, Copy)]
enum Refusal {
    ServerFull,
    AddressFull,
}

/// Over a connection limit: a short answer written by hand (no parsing, no
/// waiting for the request), then close. Bounded so a client that never reads
/// cannot keep the socket.
async fn refuse(mut stream: TcpStream, why: Refusal) {
    let (status, body) = match why {
        Refusal::ServerFull => (
            "503 Service Unavailable",
            "{\"error\":\"The server has too many open connections; try again in a few seconds.\"}",
        ),
        Refusal::AddressFull => (
            "429 Too Many Requests",
            "{\"error\":\"Too many open connections from your address; close some and try again.\"}",
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: 5\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    // The client may be gone already; there is nobody left to tell.
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}
