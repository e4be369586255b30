//! The two live endpoints of `docs/PROTOCOL.md`: the event stream a reader's ghost
//! lives on, and the POST that moves it. Errors are JSON sentences.

use std::time::Duration;

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::peer::client_address;
use super::position::parse_position;
use super::reply::{self, Body, Speaks};
use super::stream::EventStream;
use crate::ghosts::{JoinRefused, JoinRequest, Token};

/// Methods the event stream answers.
pub const EVENTS_ALLOW: &str = "GET, HEAD, OPTIONS";
/// Methods the position endpoint answers.
pub const POSITION_ALLOW: &str = "POST, OPTIONS";

/// `GET /posts/{slug}/events`.
pub async fn events<B>(app: &App, slug: &str, request: &Request<B>) -> Response<Body> {
    let library = app.blog.current();
    let Some(entry) = library.get(slug) else {
        return no_such_post(slug);
    };
    match *request.method() {
        Method::GET => {}
        Method::HEAD => return stream_response(reply::empty()),
        Method::OPTIONS => return reply::options(EVENTS_ALLOW),
        _ => return reply::method_not_allowed(EVENTS_ALLOW, Speaks::Json),
    }
    let post = &entry.post;
    let resume = resume_token(request);
    // In cluster mode the ghost may have been parked by another instance.
    let remote_parked = match (&app.cluster, &resume) {
        (Some(cluster), Some(token)) => cluster.parked(token).await,
        _ => None,
    };
    let request_to_join = JoinRequest {
        slug: post.slug.clone(),
        blocks: post.blocks,
        resume,
        peer: client_address(&app.config.trusted_proxies, request),
        remote_parked,
    };
    match app.ghosts.join(request_to_join).await {
        Ok(parts) => {
            let stream = EventStream::new(parts, app.config.heartbeat, app.metrics.clone());
            stream_response(http_body_util::BodyExt::boxed_unsync(stream))
        }
        Err(JoinRefused::ServerFull) => reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            10,
            "The server has as many readers as it allows; try again in a little while.",
        ),
        Err(JoinRefused::PostFull) => reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            10,
            "This post has as many live readers as it allows; try again in a little while.",
        ),
        Err(JoinRefused::AddressFull) => reply::json_retry(
            StatusCode::TOO_MANY_REQUESTS,
            30,
            "Too many open streams from your address; close some tabs and try again.",
        ),
        Err(JoinRefused::Stopped) => reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "The server is restarting; reconnect in a few seconds.",
        ),
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

/// The token a reconnecting reader sends back: `Last-Event-ID` from
/// `EventSource` itself, or `?resume=` from a reloaded page.
fn resume_token<B>(request: &Request<B>) -> Option<Token> {
    let from_header = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Token::parse);
    from_header.or_else(|| {
        request
            .uri()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("resume="))
            .and_then(Token::parse)
    })
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
    let library = app.blog.current();
    let Some(entry) = library.get(slug) else {
        return no_such_post(slug);
    };
    match *request.method() {
        Method::POST => {}
        Method::OPTIONS => return reply::options(POSITION_ALLOW),
        _ => return reply::method_not_allowed(POSITION_ALLOW, Speaks::Json),
    }
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return reply::json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the position with Content-Type: application/json.",
        );
    }
    let limit = app.config.max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64)
        || request.body().size_hint().lower() > limit as u64
    {
        return body_too_large(limit);
    }
    let read = tokio::time::timeout(
        app.config.header_timeout,
        read_body(request.into_body(), limit),
    )
    .await;
    let body = match read {
        Ok(Ok(body)) => body,
        Ok(Err(BodyTooLarge)) => return body_too_large(limit),
        Err(_) => {
            return reply::json_error(
                StatusCode::REQUEST_TIMEOUT,
                "The request body took too long to arrive; send it in one go.",
            )
        }
    };
    let update = match parse_position(&body, entry.post.blocks) {
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
    match app.ghosts.move_to(seat.id.clone(), update.pos).await {
        Ok(()) => reply::no_content(),
        Err(_) => reply::json_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "The server is restarting; try again shortly.",
        ),
    }
}

struct BodyTooLarge;

/// Reads at most `limit` bytes; a body that breaks off counts as empty (and
/// then fails to parse), one that runs over is refused.
async fn read_body<B>(body: B, limit: usize) -> Result<Vec<u8>, BodyTooLarge>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyTooLarge),
        Err(_) => Ok(Vec::new()),
    }
}

fn body_too_large(limit: usize) -> Response<Body> {
    reply::json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("The body is over {limit} bytes; a position needs far fewer."),
    )
}

fn no_such_post(slug: &str) -> Response<Body> {
    let message = format!("There is no post \"{slug}\"; check the address.");
    reply::json_error(StatusCode::NOT_FOUND, &message)
}

/// How long `Retry-After` asks a client to wait, at least one second.
fn retry_secs(wait: Duration) -> u32 {
    u32::try_from(wait.as_secs())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}
