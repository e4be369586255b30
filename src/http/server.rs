//! The accept loop: HTTP/1.1, HTTP/2 (h2c by prior knowledge) and HTTPS on
//! one port, connection limits (each connection's life is
//! `connection.rs`), and a graceful shutdown that cannot hang on open
//! event streams.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::app::App;
use super::connection;
use super::peer::block_of;
use super::reply;
use crate::ghosts::Stopped;
use crate::shutdown::Trigger;

/// HTTP/2 streams one connection may open at once. Browsers open one stream
/// per tab's event source, so a reader with many tabs fits comfortably.
const MAX_H2_STREAMS: u32 = 256;

/// How often an idle HTTP/2 connection is pinged, and how long the peer has to
/// answer: finds peers that vanished without closing.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);

/// Accepts connections until `shutdown` resolves (or the ghost manager
/// stops, which is an error: a bug, and the server stops too, so that a
/// supervisor restarts it whole rather than serving pages without live
/// readers), then fires `trigger` (which ends every event
/// stream), lets in-flight requests finish within the grace period, and
/// returns.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    trigger: Trigger,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Stopped> {
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
                outcome = Err(Stopped);
                break;
            }
        };
        tune_socket(&stream, &app.config);
        let guard = ConnectionGuard::enter(&app.metrics);
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
        // The guards go with the connection, not in a task around it: every
        // byte of this task is held for as long as a reader reads.
        tokio::spawn(connection::serve(
            app,
            builder,
            stream,
            peer,
            (guard, address_guard),
        ));
    }

    trigger.fire();
    // Event streams never finish by themselves, and graceful shutdown waits
    // for every response: the manager ends them all (and saves the counts).
    app.ghosts.shutdown().await;
    tracing::info!(
        "shutting down: no new connections; finishing {} open",
        app.metrics.connections_open.get()
    );
    // Each connection saw the trigger and is finishing its last answer.
    let all_closed = async {
        while app.metrics.connections_open.get() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(app.config.shutdown_grace, all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connections were still busy after {:?}; closing them",
            app.metrics.connections_open.get(),
            app.config.shutdown_grace
        );
    }
    outcome
}

/// Socket options that bound what a connection can cost and find peers that
/// vanished. Each is best effort: a platform without one still serves.
fn tune_socket(stream: &TcpStream, config: &crate::config::Config) {
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

/// Counts a connection while it lives, in the gauge `/metrics` shows and
/// `--max-connections` and shutdown read: one counter, so they never differ.
struct ConnectionGuard {
    /// Open connections including this one, when it was accepted.
    count: usize,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ConnectionGuard {
    fn enter(metrics: &Arc<crate::metrics::Metrics>) -> ConnectionGuard {
        let count = metrics.connections_open.inc_and_get();
        ConnectionGuard {
            count: usize::try_from(count).unwrap_or(0),
            metrics: metrics.clone(),
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
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
    let response = match why {
        Refusal::ServerFull => reply::raw_json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            5,
            "The server has too many open connections; try again in a few seconds.",
        ),
        Refusal::AddressFull => reply::raw_json_retry(
            StatusCode::TOO_MANY_REQUESTS,
            5,
            "Too many open connections from your address; close some and try again.",
        ),
    };
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    // The client may be gone already; there is nobody left to tell.
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}
