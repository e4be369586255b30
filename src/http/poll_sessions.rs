//! The long-pollers' sessions (see `polling.rs` for the endpoint): one task
//! per poller, holding an ordinary [`EventStream`] so it is the same ghost
//! with the same events, answering one poll at a time, keeping its last
//! answer until the next poll shows it arrived, and ending when polls stop
//! coming: dropping the stream is then what makes the ghost leave.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::stream::EventStream;
use crate::events::PING;
use crate::ghosts::Token;
use crate::metrics::Metrics;

/// Polls waiting for one session: a client sends one at a time, and a
/// retry or two when an answer is lost.
const POLLS_WAITING: usize = 4;

/// The live poll sessions, by token. Each has a number, so a session that
/// was taken over (a reload resumed its ghost) removes only itself.
#[derive(Debug, Default)]
pub struct Pollers {
    sessions: Mutex<HashMap<Token, (u64, mpsc::Sender<Poll>)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Pollers {
    /// The session of `token`, if it has one.
    pub(super) fn get(&self, token: &Token) -> Option<mpsc::Sender<Poll>> {
        self.sessions.lock().get(token).map(|(_, s)| s.clone())
    }

    /// Forgets `token`'s session: a new page of the same reader takes its
    /// ghost over, and the old session ends when its stream does.
    pub(super) fn forget(&self, token: &Token) {
        self.sessions.lock().remove(token);
    }

    /// Starts a session for a new poller's stream; where its polls go.
    pub(super) fn open(
        self: &Arc<Self>,
        stream: EventStream,
        token: Token,
        timing: Timing,
        metrics: Arc<Metrics>,
    ) -> mpsc::Sender<Poll> {
        let (polls, inbox) = mpsc::channel(POLLS_WAITING);
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sessions
            .lock()
            .insert(token.clone(), (number, polls.clone()));
        tokio::spawn(run_session(
            stream,
            inbox,
            timing,
            (token, number),
            self.clone(),
            metrics,
        ));
        polls
    }
}

/// One poll, handed to its session.
pub(super) struct Poll {
    /// The `seq` of the last answer the client has.
    pub(super) seen: u64,
    pub(super) respond_to: oneshot::Sender<Answer>,
}

/// What a poll gets: the events since the last answer, as event-stream text.
#[derive(Clone, Serialize)]
pub(super) struct Answer {
    /// This answer's number; the next poll sends it back as `seen`.
    seq: u64,
    /// Set when the ghost is gone (the server ended it): poll no more.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ended: bool,
    events: String,
}

/// How long a poll may wait for events, and how long a session lives
/// without one.
pub(super) struct Timing {
    pub(super) wait: Duration,
    pub(super) gone_after: Duration,
}

async fn run_session(
    mut stream: EventStream,
    mut polls: mpsc::Receiver<Poll>,
    timing: Timing,
    (token, number): (Token, u64),
    pollers: Arc<Pollers>,
    metrics: Arc<Metrics>,
) {
    metrics.pollers.inc();
    let mut last = Answer {
        seq: 0,
        ended: false,
        events: String::new(),
    };
    let mut ended = false;
    loop {
        let poll = match tokio::time::timeout(timing.gone_after, polls.recv()).await {
            Ok(Some(poll)) => poll,
            // Nobody polls any more: the reader is gone, and so is its ghost.
            _ => break,
        };
        if poll.seen < last.seq || ended {
            // The last answer did not arrive (or there is nothing after it):
            // the same again. The poller may be gone; the next poll asks again.
            let _ = poll.respond_to.send(last.clone());
            continue;
        }
        let (events, stream_ended) = next_events(&mut stream, timing.wait).await;
        ended = stream_ended;
        last = Answer {
            seq: last.seq + 1,
            ended,
            events,
        };
        let _ = poll.respond_to.send(last.clone());
    }
    {
        let mut sessions = pollers.sessions.lock();
        if sessions.get(&token).is_some_and(|(n, _)| *n == number) {
            sessions.remove(&token);
        }
    }
    metrics.pollers.dec();
    // Dropping the stream here tells the manager the ghost left.
}

/// Waits up to `wait` for the stream's next frames, then takes every frame
/// already there; heartbeats are left out (the poll itself is one). Whether
/// the stream ended.
async fn next_events(stream: &mut EventStream, wait: Duration) -> (String, bool) {
    let mut events = Vec::new();
    let deadline = Instant::now() + wait;
    loop {
        // Until the first event, wait; after it, take only what is ready now
        // (a deadline already past still polls the frame once first).
        let until = if events.is_empty() {
            deadline
        } else {
            Instant::now()
        };
        match tokio::time::timeout_at(until, stream.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if data != PING {
                        events.extend_from_slice(&data);
                    }
                }
            }
            Ok(Some(Err(never))) => match never {},
            Ok(None) => return (into_text(events), true),
            Err(_) => return (into_text(events), false),
        }
    }
}

/// The server's own events are UTF-8 (JSON and ASCII names).
fn into_text(events: Vec<u8>) -> String {
    String::from_utf8(events).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
