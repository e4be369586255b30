//! Staleness in a crowded room, where no reader sees another's moves, only
//! how many readers are at each block. The last block of every post is kept
//! free of simulated readers; one marker reader per post steps into it and
//! out again once a second, at known times. A reader's staleness is the
//! time until its `density` shows the marker's newest step.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::http::{connect_from, post, source};
use crate::shared::{Marker, Shared};
use crate::transport::open;

/// How often a marker steps in or out of its block, on average. Each pause
/// is drawn between 0.7 and 1.3 of it, so steps fall at every phase of the
/// server's crowd interval, not at one phase for a whole run. Every step
/// costs its room a `density` frame to each reader: the measuring must not
/// become the load, so steps are few and (see `sampled`) so are markers.
const EVERY: Duration = Duration::from_secs(2);

/// Reader numbers for markers' source addresses, clear of the readers'.
const MARKER_BASE: usize = 800_000;

/// Marker `n` of post `slug`: holds a stream like any reader (and reads it,
/// so the server never sees it stall), and steps until `until`.
pub async fn run(
    shared: Arc<Shared>,
    n: usize,
    slug: Arc<str>,
    marker: Arc<Marker>,
    until: Instant,
) {
    let me = MARKER_BASE + n;
    let Some((mut stream, mut buf)) = open(&shared, me, &slug, None).await else {
        return;
    };
    let mut token = None;
    let mut connection: Option<TcpStream> = None;
    let mut answer = Vec::with_capacity(1024);
    // Markers of different posts step at different moments.
    let first = EVERY.mul_f64(rand::rng().random_range(0.0..1.0));
    let timer = tokio::time::sleep(first);
    tokio::pin!(timer);
    while Instant::now() < until {
        tokio::select! {
            read = stream.chunk(&mut buf) => {
                if read.is_none() { return; }
                // Only the hello matters; the rest is read and dropped.
                if token.is_none() {
                    token = token_in(&buf);
                }
                if token.is_some() || buf.len() > 64 * 1024 {
                    buf.clear();
                }
            }
            _ = &mut timer => {
                let pause = EVERY.mul_f64(rand::rng().random_range(0.7..1.3));
                timer.as_mut().reset(Instant::now() + pause);
                let Some(token) = &token else { continue };
                let (steps, _, _) = marker.newest().unwrap_or((0, false, 0));
                let block = if steps.is_multiple_of(2) { shared.marker_block() } else { 0 };
                let body = format!("{{\"token\":\"{token}\",\"pos\":{block}.5}}");
                let path = format!("/posts/{slug}/position");
                if connection.is_none() {
                    connection = connect_from(shared.addr(me), source(me)).await.ok();
                }
                let Some(stream) = connection.as_mut() else {
                    shared.stats.error("marker: POST connection failed");
                    continue;
                };
                marker.step(shared.nanos() / 1000);
                match post(stream, &mut answer, &path, &body).await {
                    Ok(status) => shared.stats.post_answer(status),
                    Err(_) => connection = None, // The next step reconnects.
                }
            }
        }
    }
}

/// The token of a `hello` event in `buf`, if one is there whole.
fn token_in(buf: &[u8]) -> Option<Arc<str>> {
    let text = std::str::from_utf8(buf).ok()?;
    let at = text.find("\"token\":\"")? + 9;
    let end = text[at..].find('"')?;
    Some(Arc::from(&text[at..at + end]))
}
