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

use hyper::{Request, Response, StatusCode};
use tokio::sync::oneshot;

use super::api;
use super::app::App;
use super::fields::Fields;
use super::join_limits::resuming;
use super::json_body::read_post;
use super::poll_sessions::{Answer, Poll, Timing};
use super::reply::{self, Body};
use super::stream::EventStream;
use crate::ghosts::{JoinRequest, Token};

/// `POST /posts/{slug}/poll` with `{"token":"…","seen":n}`: the events of
/// this reader's ghost since its answer `seen`. With `{}` it joins, and with
/// `{"resume":"…"}` (a reloaded page) it resumes or takes over that ghost,
/// as a stream's `Last-Event-ID` does; those answers start with `hello`.
pub async fn poll<B>(app: &App, slug: &str, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (post, peer, body) = match read_post(app, slug, request).await {
        Ok(accepted) => accepted,
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
        app.pollers.forget(resume);
    }
    let token = asked.token.as_deref().and_then(Token::parse);
    let session = token.as_ref().and_then(|token| app.pollers.get(token));
    if token.is_some() && session.is_none() && resume.is_none() {
        return gone();
    }
    let session = match session {
        Some(session) => session,
        None => {
            if let Err(wait) = app
                .join_limits
                .check(peer, resuming(&app.ghosts, resume.as_ref()))
            {
                return api::too_many_joins(wait);
            }
            let request = JoinRequest {
                slug: post.slug.clone(),
                blocks: post.blocks,
                resume,
                peer,
                watch: asked.watch,
            };
            let parts = match app.ghosts.join(request).await {
                Ok(parts) => parts,
                Err(refused) => return api::refused(refused),
            };
            let token = parts.token.clone();
            let stream = EventStream::new(parts, app.config.heartbeat, app.metrics.clone());
            let timing = Timing {
                wait: app.config.poll_wait,
                gone_after: app.config.poll_gone,
            };
            app.pollers.open(stream, token, timing, app.metrics.clone())
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
    /// A new session that watches without a ghost (an invisible reader).
    watch: bool,
}

fn parse_poll(body: &[u8]) -> Option<Asked> {
    let fields = Fields::parse(body)?;
    Some(Asked {
        token: fields.text("token").ok()?.map(str::to_string),
        resume: fields.text("resume").ok()?.map(str::to_string),
        seen: fields.whole("seen").ok()?.unwrap_or(0),
        watch: fields.flag("watch").ok()?.unwrap_or(false),
    })
}

fn json_answer(answer: &Answer) -> Response<Body> {
    // Serializing a plain struct of a number, a bool and a string cannot fail.
    let json = serde_json::to_vec(answer).unwrap_or_default();
    // Every answer is this reader's alone, and only once.
    reply::json(json, reply::Keep::Never)
}

fn gone() -> Response<Body> {
    reply::json_error(
        StatusCode::GONE,
        "This reader's ghost is gone; poll again without a token to start anew.",
    )
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
