//! The reader endpoints of `docs/PROTOCOL.md`: the event stream a reader's
//! ghost lives on, the POST that moves it, the goodbye, the one-time
//! ticket for a reload, and `GET /api/posts` for other sites. Each parses,
//! limits and replies; where a ghost lives is the engine's to decide.
//! Errors are JSON sentences.

use std::time::Duration;

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::fields::Fields;
use super::join_limits::resuming;
use super::json_body::read_post;
use super::peer::client_block;
use super::position::parse_position;
use super::reply::{self, Body, Keep, Speaks};
use super::stream::EventStream;
use super::tickets::Ticket;
use crate::ghosts::{JoinRefused, JoinRequest, Stopped, Token};

/// Methods the event stream answers.
pub const EVENTS_ALLOW: &str = "GET, HEAD, OPTIONS";

/// `GET /posts/{slug}/events`.
pub async fn events<B>(app: &App, slug: &str, request: &Request<B>) -> Response<Body> {
    let Some(post) = app.live_page(slug) else {
        return no_such_post(slug);
    };
    match *request.method() {
        Method::GET => {}
        Method::HEAD => return stream_response(reply::empty()),
        Method::OPTIONS => return reply::options(EVENTS_ALLOW),
        _ => return reply::method_not_allowed(EVENTS_ALLOW, Speaks::Json),
    }
    // The address's limit first: redeeming a ticket may ask Redis.
    let peer = client_block(&app.config.trusted_proxies, request);
    if let Err(wait) = app.join_limits.check_address(peer) {
        return too_many_joins(wait);
    }
    let resume = resume_token(app, slug, request).await;
    if let Err(wait) = app
        .join_limits
        .check_resume(resuming(&app.ghosts, resume.as_ref()))
    {
        return too_many_joins(wait);
    }
    let request_to_join = JoinRequest {
        slug: post.slug.clone(),
        blocks: post.blocks,
        resume,
        peer,
        watch: watching(request),
    };
    match app.ghosts.join(request_to_join).await {
        Ok(parts) => {
            let stream = EventStream::new(parts, app.config.heartbeat, app.metrics.clone());
            stream_response(http_body_util::BodyExt::boxed_unsync(stream))
        }
        Err(why) => refused(why),
    }
}

/// Over a join rate limit (see `join_limits.rs`).
pub(super) fn too_many_joins(wait: Duration) -> Response<Body> {
    reply::json_retry(
        StatusCode::TOO_MANY_REQUESTS,
        retry_secs(wait),
        "Too many streams opened from your address, or resumes of this reader; wait a moment and reconnect.",
    )
}

/// Why a reader was not let in, as the answer to its request.
pub(super) fn refused(why: JoinRefused) -> Response<Body> {
    match why {
        JoinRefused::ServerFull => reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            10,
            "The server has as many readers as it allows; try again in a little while.",
        ),
        JoinRefused::PostFull => reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            10,
            "This post has as many live readers as it allows; try again in a little while.",
        ),
        JoinRefused::AddressFull => reply::json_retry(
            StatusCode::TOO_MANY_REQUESTS,
            30,
            "Too many open streams from your address; close some tabs and try again.",
        ),
        JoinRefused::Stopped => reply::restarting("reconnect in a few seconds"),
    }
}

fn stream_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Asks nginx (and proxies that copy it) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Whether the stream asks to watch without a ghost (`?watch=1`): an
/// invisible reader.
fn watching<B>(request: &Request<B>) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "watch=1"))
}

/// The token a reconnecting reader sends back: `Last-Event-ID` from
/// `EventSource` itself, or from a reloaded page `?resume=` with a one-time
/// ticket (see `tickets.rs`), never the token itself, which would end up
/// in proxies' logs.
async fn resume_token<B>(app: &App, slug: &str, request: &Request<B>) -> Option<Token> {
    let from_header = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Token::parse);
    if from_header.is_some() {
        return from_header;
    }
    let ticket = request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("resume="))
        .and_then(Ticket::parse)?;
    app.tickets
        .redeem(&ticket, slug, app.cluster.as_ref())
        .await
}

/// `POST /posts/{slug}/position`.
pub async fn position<B>(app: &App, slug: &str, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = move_ghost(app, slug, request).await;
    app.metrics.position_answer(response.status().as_u16());
    response
}

async fn move_ghost<B>(app: &App, slug: &str, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (post, _, body) = match read_post(app, slug, request).await {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    let update = match parse_position(&body, post.blocks) {
        Ok(update) => update,
        Err(error) => return reply::json_error(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let Some(seat) = update
        .token
        .and_then(|token| app.ghosts.seat(&token))
        .filter(|s| s.slug.as_str() == slug)
    else {
        return reply::json_error(
            StatusCode::GONE,
            "No live reader on this post has that token; reopen the event stream to get a new one.",
        );
    };
    if let Err(wait) = seat.limiter.check() {
        return reply::json_retry(
            StatusCode::TOO_MANY_REQUESTS,
            retry_secs(wait),
            &format!(
                "Too many moves; send at most {} per second.",
                app.config.moves_per_sec
            ),
        );
    }
    let presence = update.presence;
    match app
        .ghosts
        .report(seat.id.clone(), update.pos, presence.away, presence.hold)
        .await
    {
        Ok(()) => reply::no_content(),
        Err(Stopped) => reply::restarting("try again shortly"),
    }
}

/// `POST /posts/{slug}/leave`: the reader's page is gone for good, so its
/// ghost leaves now, whatever sits between it and the server (a proxy that
/// keeps the stream open after the browser left). Its token comes in the
/// body, never the URL. The ghost is parked, as after any leave.
pub async fn goodbye<B>(app: &App, slug: &str, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = match read_post(app, slug, request).await {
        Ok((_, _, body)) => body,
        Err(refused) => return refused,
    };
    let Some(token) = parse_token(&body) else {
        return reply::json_error(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object like {\"token\":\"…\"}, with this stream's token.",
        );
    };
    let Some(seat) = Token::parse(&token)
        .and_then(|token| app.ghosts.seat(&token))
        .filter(|s| s.slug.as_str() == slug)
    else {
        return reply::json_error(
            StatusCode::GONE,
            "No live reader on this post has that token; it has left already.",
        );
    };
    match app.ghosts.goodbye(seat.id.clone()).await {
        Ok(()) => reply::no_content(),
        Err(Stopped) => reply::restarting("the stream ends with it"),
    }
}

/// The `token` string of a JSON object body, if it has one.
pub fn parse_token(body: &[u8]) -> Option<String> {
    let fields = Fields::parse(body)?;
    fields.text("token").ok()?.map(str::to_string)
}

pub(super) fn no_such_post(slug: &str) -> Response<Body> {
    let message = format!("There is no post \"{slug}\"; check the address.");
    reply::json_error(StatusCode::NOT_FOUND, &message)
}

/// How long `Retry-After` asks a client to wait, at least one second.
fn retry_secs(wait: Duration) -> u32 {
    u32::try_from(wait.as_secs())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// `POST /posts/{slug}/ticket` with `{"token":"…"}`: a one-time ticket to
/// resume that reader's ghost with `GET …/events?resume=<ticket>`.
pub async fn ticket<B>(app: &App, slug: &str, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (post, peer, body) = match read_post(app, slug, request).await {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    let Some(token) = parse_token(&body).as_deref().and_then(Token::parse) else {
        return reply::json_error(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object like {\"token\":\"…\"}, with the token of the reader to resume.",
        );
    };
    // A ticket is the first half of a join, and in cluster mode it takes
    // Redis memory for a while: it counts against the address's joins.
    if let Err(wait) = app.join_limits.check_address(peer) {
        return too_many_joins(wait);
    }
    let issued = app
        .tickets
        .issue(token, post.slug.clone(), app.cluster.as_ref())
        .await;
    let Some(ticket) = issued else {
        return reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            5,
            "Too many tickets are waiting to be used; open the stream without one.",
        );
    };
    let json = format!("{{\"ticket\":\"{}\"}}", ticket.as_str());
    reply::json(json, Keep::Never)
}

/// `GET /api/posts`: every listed post's live and all-time counts, for
/// other sites to show ("12 reading now"). Read-only and anonymous, so any
/// origin may read it.
pub fn posts(app: &App, method: &Method) -> Response<Body> {
    let mut response = match *method {
        Method::GET | Method::HEAD => {
            let library = app.blog.current();
            let posts: Vec<serde_json::Value> = library
                .listed()
                .iter()
                .map(|post| {
                    let counts = app.ghosts.counts(post.slug.as_str());
                    serde_json::json!({
                        "slug": post.slug.as_str(),
                        "title": post.meta.title,
                        "url": format!("/posts/{}", post.slug),
                        "now": counts.now,
                        "total": counts.total,
                    })
                })
                .collect();
            let body = serde_json::json!({ "posts": posts }).to_string();
            reply::json(body, Keep::AskAgain)
        }
        // The CORS preflight a browser may send first.
        Method::OPTIONS => {
            let mut response = reply::options(READ_ONLY);
            response.headers_mut().insert(
                "access-control-allow-methods",
                HeaderValue::from_static(READ_ONLY),
            );
            response
                .headers_mut()
                .insert("access-control-max-age", HeaderValue::from_static("86400"));
            response
        }
        _ => reply::method_not_allowed(READ_ONLY, Speaks::Json),
    };
    response
        .headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    response
}

const READ_ONLY: &str = "GET, HEAD, OPTIONS";
