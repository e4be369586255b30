//! Long-polling, for readers whose event stream does not stream: behind a
//! proxy that buffers responses, an event stream's first bytes never reach
//! the page. Such a reader asks with plain `POST /posts/{slug}/poll`
//! requests instead, and each answer carries the events that came since
//! the last, in the same order and the same encoding as on a stream.
//!
//! Each poller is a session task holding an ordinary [`EventStream`], so it
//! is the same ghost with the same events; the task answers one poll at a
//! time, keeps its last answer until the next poll shows it arrived (so a
//! lost answer is sent again), and ends when polls stop coming: dropping
//! the stream is then what makes the ghost leave, as for a closed stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::api::{self, POSITION_ALLOW};
use super::app::App;
use super::json_body::read_json;
use super::peer::client_block;
use super::reply::{self, Body, Speaks};
use super::stream::EventStream;
use crate::events::PING;
use crate::ghosts::{JoinRequest, Token};
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

/// One poll, handed to its session.
struct Poll {
    /// The `seq` of the last answer the client has.
    seen: u64,
    respond_to: oneshot::Sender<Answer>,
}

/// What a poll gets: the events since the last answer, as event-stream text.
#[derive(Clone, Serialize)]
struct Answer {
    /// This answer's number; the next poll sends it back as `seen`.
    seq: u64,
    /// Set when the ghost is gone (the server ended it): poll no more.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ended: bool,
    events: String,
}

/// `POST /posts/{slug}/poll` with `{"token":"…","seen":n}`: the events of
/// this reader's ghost since its answer `seen`. With `{}` it joins, and with
/// `{"resume":"…"}` (a reloaded page) it resumes or takes over that ghost,
/// as a stream's `Last-Event-ID` does; those answers start with `hello`.
pub async fn poll<B>(app: &App, slug: &str, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let library = app.blog.current();
    let Some(entry) = library.get(slug) else {
        return api::no_such_post(slug);
    };
    match *request.method() {
        Method::POST => {}
        Method::OPTIONS => return reply::options(POSITION_ALLOW),
        _ => return reply::method_not_allowed(POSITION_ALLOW, Speaks::Json),
    }
    let peer = client_block(&app.config.trusted_proxies, &request);
    let body = match read_json(app, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let Some(asked) = parse_poll(&body) else {
        return reply::json_error(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object like {\"token\":\"…\",\"seen\":3}, {\"resume\":\"…\"}, or {} to start.",
        );
    };
    let resume = asked.resume.as_deref().and_then(Token::parse);
    if let Some(resume) = &resume {
        // A new page of the same reader: its old session (if any) ends once
        // the manager hands the ghost to the new one.
        app.pollers.sessions.lock().remove(resume);
    }
    let token = asked.token.as_deref().and_then(Token::parse);
    let session = token.as_ref().and_then(|token| {
        app.pollers
            .sessions
            .lock()
            .get(token)
            .map(|(_, s)| s.clone())
    });
    if token.is_some() && session.is_none() && resume.is_none() {
        return gone();
    }
    let session = match session {
        Some(session) => session,
        None => {
            let request = JoinRequest {
                slug: entry.post.slug.clone(),
                blocks: entry.post.blocks,
                resume,
                peer,
                remote_parked: None,
            };
            let parts = match app.ghosts.join(request).await {
                Ok(parts) => parts,
                Err(refused) => return api::refused(refused),
            };
            let token = parts.token.clone();
            let stream = EventStream::new(parts, app.config.heartbeat, app.metrics.clone());
            let (polls, inbox) = mpsc::channel(POLLS_WAITING);
            let number = app
                .pollers
                .next
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            app.pollers
                .sessions
                .lock()
                .insert(token.clone(), (number, polls.clone()));
            tokio::spawn(run_session(
                stream,
                inbox,
                Timing {
                    wait: app.config.poll_wait,
                    gone_after: app.config.poll_gone,
                },
                (token, number),
                app.pollers.clone(),
                app.metrics.clone(),
            ));
            polls
        }
    };
    let (respond_to, answer) = oneshot::channel();
    let asked = Poll {
        seen: asked.seen,
        respond_to,
    };
    if session.send(asked).await.is_err() {
        return gone();
    }
    match answer.await {
        Ok(answer) => json_answer(&answer),
        Err(_) => gone(),
    }
}

/// The fields a poll may carry; anything else is ignored.
struct Asked {
    token: Option<String>,
    resume: Option<String>,
    seen: u64,
}

fn parse_poll(body: &[u8]) -> Option<Asked> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let text = |key: &str| match object.get(key) {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(value) => Some(Some(value.as_str()?.to_string())),
    };
    let (token, resume) = (text("token")?, text("resume")?);
    let seen = match object.get("seen") {
        None | Some(serde_json::Value::Null) => 0,
        Some(value) => value.as_u64()?,
    };
    Some(Asked {
        token,
        resume,
        seen,
    })
}

fn json_answer(answer: &Answer) -> Response<Body> {
    // Serializing a plain struct of a number, a bool and a string cannot fail.
    let json = serde_json::to_vec(answer).unwrap_or_default();
    let mut response = Response::new(reply::full(Bytes::from(json)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Every answer is this reader's alone, and only once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn gone() -> Response<Body> {
    reply::json_error(
        StatusCode::GONE,
        "This reader's ghost is gone; poll again without a token to start anew.",
    )
}

/// How long a poll may wait for events, and how long a session lives
/// without one.
struct Timing {
    wait: Duration,
    gone_after: Duration,
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
    while events.is_empty() {
        match tokio::time::timeout_at(deadline, stream.frame()).await {
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
    // Whatever else is ready now goes in the same answer: a timeout of zero
    // still polls the frame once first.
    loop {
        match tokio::time::timeout(Duration::ZERO, stream.frame()).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_body_has_an_optional_token_and_seen() {
        /// A body, and the token and `seen` it should give (`None`: refused).
        type Case<'a> = (&'a str, Option<(Option<&'a str>, u64)>);
        let cases: [Case; 8] = [
            ("{\"resume\":7}", None),
            ("{}", Some((None, 0))),
            ("{\"token\":null,\"seen\":null}", Some((None, 0))),
            (
                "{\"token\":\"abc\",\"seen\":3,\"other\":1}",
                Some((Some("abc"), 3)),
            ),
            ("{\"token\":5}", None),
            ("{\"seen\":-1}", None),
            ("{\"seen\":1.5}", None),
            ("[]", None),
        ];
        for (body, want) in cases {
            let got = parse_poll(body.as_bytes()).map(|a| (a.token, a.seen));
            let want = want.map(|(t, s)| (t.map(str::to_string), s));
            assert_eq!(got, want, "{body}");
        }
    }
}
