//! Embed mode at the edge: which requests come from another site's page,
//! whether that site is allowed, the CORS headers an allowed one's answers
//! carry, and `POST /embed/page`, where a page of an allowed site says it
//! shows ghosts and learns the slug its readers meet under. No credentials
//! and no cookies: the token model stays as it is.

use hyper::header::{HeaderValue, HOST, ORIGIN, VARY};
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::fields::Fields;
use super::json_body::read_json;
use super::reply::{self, Body, Keep, Speaks};
use crate::embed::Refused;

/// Methods and headers another site's page may use on the live endpoints.
const CORS_METHODS: &str = "GET, POST, OPTIONS";
const CORS_HEADERS: &str = "content-type, last-event-id";

/// Where a request to a live endpoint comes from.
pub enum From {
    /// This site's own pages, or no browser at all (no `Origin`).
    Here,
    /// An allowed site's page: its answer carries CORS for this origin.
    Allowed(HeaderValue),
}

/// Checks the request's `Origin` in embed mode: this site, an allowed site,
/// or a refusal (logged once per origin; [`refused`] is its answer).
/// Without embed mode every request is from "here", as before it existed.
pub fn check_origin<B>(app: &App, request: &Request<B>) -> Result<From, Refused> {
    let Some(origin) = request.headers().get(ORIGIN) else {
        return Ok(From::Here);
    };
    if !app.embeds.is_on() {
        return Ok(From::Here);
    }
    let text = origin.to_str().unwrap_or_default().to_ascii_lowercase();
    if app.embeds.allows(&text) {
        return Ok(From::Allowed(origin.clone()));
    }
    if is_own(app, request, &text) {
        return Ok(From::Here);
    }
    app.embeds.log_refusal(&text);
    Err(Refused::Origin(text))
}

/// The answer to a page that may not show ghosts here.
pub fn refused(why: Refused) -> Response<Body> {
    let status = match why {
        Refused::Origin(_) | Refused::NotInSitemap(_) => StatusCode::FORBIDDEN,
        Refused::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refused::Url | Refused::Blocks => StatusCode::BAD_REQUEST,
    };
    reply::json_error(status, &why.to_string())
}

/// Gives an allowed site's page what its browser checks: the origin, and
/// for a preflight the methods and headers it may use.
pub fn allow(response: &mut Response<Body>, from: &From, method: &Method) {
    let From::Allowed(origin) = from else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert("access-control-allow-origin", origin.clone());
    headers.append(VARY, HeaderValue::from_static("origin"));
    if *method == Method::OPTIONS {
        headers.insert(
            "access-control-allow-methods",
            HeaderValue::from_static(CORS_METHODS),
        );
        headers.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(CORS_HEADERS),
        );
        headers.insert("access-control-max-age", HeaderValue::from_static("86400"));
    }
}

/// `POST /embed/page` with `{"url":"…","blocks":n}` from a page of an
/// allowed site: `{"slug":"…","blocks":n}`, the slug its readers' stream
/// and positions go to (`/posts/{slug}/…`).
pub async fn show_page<B>(app: &App, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    const ALLOW: &str = "POST, OPTIONS";
    if !app.embeds.is_on() {
        return reply::json_error(
            StatusCode::NOT_FOUND,
            "Embed mode is off: the server's operator turns it on with --embed-origin.",
        );
    }
    match *request.method() {
        Method::POST => {}
        Method::OPTIONS => return reply::options(ALLOW),
        _ => return reply::method_not_allowed(ALLOW, Speaks::Json),
    }
    let origin = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = match read_json(app, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let asked = Fields::parse(&body).and_then(|fields| {
        let url = fields.text("url").ok()??.to_string();
        let blocks = fields.whole("blocks").ok()??;
        Some((url, blocks))
    });
    let Some((url, blocks)) = asked else {
        return reply::json_error(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object like {\"url\":\"https://blog.example/a-post/\",\"blocks\":24}.",
        );
    };
    match app.embeds.show(&origin, &url, blocks) {
        Ok(page) => {
            let json = serde_json::json!({ "slug": page.slug.as_str(), "blocks": page.blocks });
            reply::json(json.to_string(), Keep::Never)
        }
        Err(why) => refused(why),
    }
}

/// Whether `origin` is this server's own: the host the request was sent
/// to (`Host`, or HTTP/2's authority), or the site's `--base-url`.
fn is_own<B>(app: &App, request: &Request<B>, origin: &str) -> bool {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    if host.is_some_and(|host| Some(host.to_ascii_lowercase().as_str()) == origin_host) {
        return true;
    }
    app.site
        .base_url
        .as_deref()
        .is_some_and(|base| base.eq_ignore_ascii_case(origin))
}
