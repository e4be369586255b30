//! How the server answers: the one body type, and builders for the kinds of
//! response every handler uses. JSON errors and HTML pages are made only here.

use std::convert::Infallible;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// Full pages and endless event streams share one body type.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The content security policy of every answer: scripts, styles, fonts and
/// frames from this site only (the client is one script file, the styles
/// one sheet, nothing inline); images also from `data:` and any https site,
/// as posts may show them.
const CSP: &str = "default-src 'self'; img-src 'self' data: https:; object-src 'none'; \
                   base-uri 'self'; form-action 'self'; frame-ancestors 'self'";

/// The headers every answer carries against content sniffing, framing by
/// other sites, leaking addresses, and any script but our own.
pub fn secure(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        hyper::header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        hyper::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
}

pub fn html(status: StatusCode, page: impl Into<Bytes>) -> Response<Body> {
    let mut response = with_type(status, "text/html; charset=utf-8", full(page));
    // Pages carry live counts, so a cache must ask again each time.
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub fn text(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = with_type(status, "text/plain; charset=utf-8", full(text));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// How long a JSON answer may be kept by a cache.
#[derive(Clone, Copy)]
pub enum Keep {
    /// It changes all the time: a cache must ask again (`no-cache`).
    AskAgain,
    /// It is this client's alone, and only once (`no-store`).
    Never,
}

/// A `200` JSON answer.
pub fn json(body: impl Into<Bytes>, keep: Keep) -> Response<Body> {
    let mut response = with_type(StatusCode::OK, "application/json", full(body));
    let cache = match keep {
        Keep::AskAgain => "no-cache",
        Keep::Never => "no-store",
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `{"error":"..."}`: every API error, one sentence a person can act on.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = with_type(status, "application/json", full(body));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A whole HTTP/1.1 JSON error, as bytes for a socket no HTTP library
/// serves (a connection refused at accept): the same `{"error":"..."}`,
/// with `Retry-After`, and the connection closed after it.
pub fn raw_json_retry(status: StatusCode, retry_after_secs: u32, message: &str) -> String {
    let body = serde_json::json!({ "error": message }).to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: no-store\r\nretry-after: {retry_after_secs}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A JSON error that tells the client when to try again.
pub fn json_retry(status: StatusCode, retry_after_secs: u32, message: &str) -> Response<Body> {
    let mut response = json_error(status, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// `503` while the engine has stopped (the server is shutting down, to be
/// restarted): the one way every endpoint says so, with what to do.
pub fn restarting(what_to_do: &str) -> Response<Body> {
    let message = format!("The server is restarting; {what_to_do}.");
    json_retry(StatusCode::SERVICE_UNAVAILABLE, 2, &message)
}

pub fn no_content() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// How a resource words its errors: the API's in JSON, the pages' in text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    Json,
    Text,
}

/// `allow` lists the methods the resource does take.
pub fn method_not_allowed(allow: &'static str, speaks: Speaks) -> Response<Body> {
    let message = format!("This address only answers {allow}.");
    let mut response = match speaks {
        Speaks::Json => json_error(StatusCode::METHOD_NOT_ALLOWED, &message),
        Speaks::Text => with_type(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            full(message),
        ),
    };
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// `OPTIONS`: what the resource takes, and nothing else.
pub fn options(allow: &'static str) -> Response<Body> {
    let mut response = no_content();
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// A permanent redirect to `location`, a path on this site. Anything else
/// (another origin, or `//host` which browsers read as one) is refused
/// here, whoever asks: no answer of ours points a browser elsewhere.
pub fn redirect(location: &str) -> Response<Body> {
    let on_this_site =
        location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\");
    if !on_this_site {
        return json_error(StatusCode::NOT_FOUND, "There is nothing at this address.");
    }
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    response
}
