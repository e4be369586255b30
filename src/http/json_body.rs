//! The body of a JSON `POST` (a position, a goodbye, a poll), read with the
//! same limits everywhere: `Content-Type: application/json`, at most
//! `max_body_bytes`, arriving within the header timeout. Each refusal is the
//! answer to send.

use std::net::IpAddr;

use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::app::{App, LivePage};
use super::peer::client_block;
use super::reply::{self, Body, Speaks};

/// Methods the JSON `POST` endpoints answer.
const POST_ALLOW: &str = "POST, OPTIONS";

/// A JSON `POST` to one of a post's endpoints, checked the same way for each:
/// the post exists, the method is `POST` (`OPTIONS` answered), and the body
/// passes `read_json`. The post, the client (for the per-address limits)
/// and the body; or the answer that refuses it.
pub async fn read_post<B>(
    app: &App,
    slug: &str,
    request: Request<B>,
) -> Result<(LivePage, IpAddr, Vec<u8>), Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(post) = app.live_page(slug) else {
        return Err(reply::json_error(
            StatusCode::NOT_FOUND,
            &format!("There is no post \"{slug}\"; check the address."),
        ));
    };
    match *request.method() {
        Method::POST => {}
        Method::OPTIONS => return Err(reply::options(POST_ALLOW)),
        _ => return Err(reply::method_not_allowed(POST_ALLOW, Speaks::Json)),
    }
    let peer = client_block(&app.config.trusted_proxies, &request);
    let body = read_json(app, request).await?;
    Ok((post, peer, body))
}

/// The body's bytes, or the error response that refuses it.
pub(super) async fn read_json<B>(app: &App, request: Request<B>) -> Result<Vec<u8>, Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(reply::json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the body with Content-Type: application/json.",
        ));
    }
    let limit = app.config.max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64)
        || request.body().size_hint().lower() > limit as u64
    {
        return Err(body_too_large(limit));
    }
    let read = tokio::time::timeout(
        app.config.header_timeout,
        read_body(request.into_body(), limit),
    )
    .await;
    match read {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(BodyTooLarge)) => Err(body_too_large(limit)),
        Err(_) => Err(reply::json_error(
            StatusCode::REQUEST_TIMEOUT,
            "The request body took too long to arrive; send it in one go.",
        )),
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
        &format!("The body is over {limit} bytes; what this address takes needs far fewer."),
    )
}
