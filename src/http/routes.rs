//! Request → handler, by one `match` on the path; no framework. Handlers
//! answer with HTML for pages and JSON for the API; `HEAD` is `GET` without
//! the body.

use std::time::Instant;

use hyper::body::Body as _;
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH, VARY,
};
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::assets::etag_matches;
use super::compact::accepts_gzip;
use super::reply::{self, Body, Speaks};
use super::{api, embed, polling, stats};
use crate::blog::pages::{self, Listed};
use crate::events::count_text;

/// Methods each kind of resource answers, for `Allow` and `405`.
const READ_ONLY: &str = "GET, HEAD, OPTIONS";

/// Answers one request. Never fails: every error becomes a response.
pub async fn handle<B>(app: &App, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = route(app, request).await;
    if method == Method::HEAD {
        strip_body(&mut response);
    }
    reply::secure(&mut response);
    // The path only: query strings can carry resume tokens, never logged.
    tracing::debug!(
        method = %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn route<B>(app: &App, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path().to_string();
    let method = request.method();
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(4, '/').collect();
    match segments.as_slice() {
        [""] => read_only(method, || async { index(app) }).await,
        ["healthz"] => read_only(method, || async { health(app) }).await,
        ["metrics"] => read_only(method, || async { metrics(app) }).await,
        ["api", "posts"] => api::posts(app, method),
        // The one tag a site of another origin adds (embed mode).
        ["embed.js"] => read_only(method, || asset(app, "embed.js", &request)).await,
        ["web", rest @ ..] if !rest.is_empty() => {
            let name = path.trim_start_matches("/web/");
            read_only(method, || asset(app, name, &request)).await
        }
        ["posts", slug] => read_only(method, || async { post_page(app, slug) }).await,
        ["feed.xml"] => read_only(method, || async { published(app, Published::Feed) }).await,
        ["sitemap.xml"] => read_only(method, || async { published(app, Published::Sitemap) }).await,
        ["robots.txt"] => read_only(method, || async { published(app, Published::Robots) }).await,
        ["tags", tag] => read_only(method, || async { tag_page(app, tag) }).await,
        ["stats"] => read_only(method, || stats::page(app)).await,
        ["posts", slug, "heat"] => read_only(method, || stats::heat(app, slug)).await,
        ["posts", slug, "events"] => live(app, slug, Live::Events, request).await,
        ["posts", slug, "position"] => live(app, slug, Live::Position, request).await,
        ["posts", slug, "leave"] => live(app, slug, Live::Leave, request).await,
        ["posts", slug, "poll"] => live(app, slug, Live::Poll, request).await,
        ["posts", slug, "ticket"] => live(app, slug, Live::Ticket, request).await,
        ["embed", "page"] => live(app, "", Live::ShowPage, request).await,
        _ if path.len() > 1 && path.ends_with('/') => reply::redirect(&same_site(&path)),
        _ => not_found(app),
    }
}

/// The endpoints a reader's page talks to.
enum Live {
    Events,
    Position,
    Leave,
    Poll,
    Ticket,
    /// `POST /embed/page`.
    ShowPage,
}

/// The endpoints a reader's page talks to, which another site's page may
/// too in embed mode: refused for an origin that is not allowed, answered
/// with CORS for one that is.
async fn live<B>(app: &App, slug: &str, endpoint: Live, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let from = match embed::check_origin(app, &request) {
        Ok(from) => from,
        Err(why) => return embed::refused(why),
    };
    let method = request.method().clone();
    let mut response = match endpoint {
        Live::Events => api::events(app, slug, &request).await,
        Live::Position => api::position(app, slug, request).await,
        Live::Leave => api::goodbye(app, slug, request).await,
        Live::Poll => polling::poll(app, slug, request).await,
        Live::Ticket => api::ticket(app, slug, request).await,
        Live::ShowPage => embed::show_page(app, request).await,
    };
    embed::allow(&mut response, &from, &method);
    response
}

/// Runs `handler` for GET and HEAD; answers OPTIONS and refuses the rest.
async fn read_only<F, Fut>(method: &Method, handler: F) -> Response<Body>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    match *method {
        Method::GET | Method::HEAD => handler().await,
        Method::OPTIONS => reply::options(READ_ONLY),
        _ => reply::method_not_allowed(READ_ONLY, Speaks::Text),
    }
}

fn index(app: &App) -> Response<Body> {
    let library = app.blog.current();
    let listed: Vec<Listed> = library
        .listed()
        .iter()
        .map(|post| Listed {
            post,
            now: app.ghosts.counts(post.slug.as_str()).now,
        })
        .collect();
    reply::html(StatusCode::OK, pages::render_index(&app.site, &listed))
}

/// The documents other programs read, rendered with the posts.
enum Published {
    Feed,
    Sitemap,
    Robots,
}

fn published(app: &App, which: Published) -> Response<Body> {
    let library = app.blog.current();
    let (body, content_type) = match which {
        Published::Feed => (library.feed.clone(), "application/atom+xml; charset=utf-8"),
        Published::Sitemap => (library.sitemap.clone(), "application/xml; charset=utf-8"),
        Published::Robots => (library.robots.clone(), "text/plain; charset=utf-8"),
    };
    let mut response = Response::new(reply::full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // They change when a post does: a cache asks again, cheaply.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn tag_page(app: &App, tag: &str) -> Response<Body> {
    let library = app.blog.current();
    match library.tag_page(tag) {
        Some(page) => reply::html(StatusCode::OK, page.clone()),
        None => not_found(app),
    }
}

fn post_page(app: &App, slug: &str) -> Response<Body> {
    let library = app.blog.current();
    let Some(entry) = library.get(slug) else {
        return not_found(app);
    };
    let counts = app.ghosts.counts(slug);
    reply::html(
        StatusCode::OK,
        entry
            .page
            .fill(&[&count_text(counts.now), &count_text(counts.total)]),
    )
}

fn metrics(app: &App) -> Response<Body> {
    app.metrics
        .manager_queue_depth
        .set(app.ghosts.queue_depth() as i64);
    let mut response = reply::text(StatusCode::OK, app.metrics.render());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn health(app: &App) -> Response<Body> {
    if app.shutdown.is_started() {
        reply::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if !app.ghosts.is_alive() {
        reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the ghost manager has stopped; the server is stopping to be restarted\n",
        )
    } else {
        reply::text(StatusCode::OK, "ok\n")
    }
}

async fn asset<B>(app: &App, name: &str, request: &Request<B>) -> Response<Body> {
    let asset = match app.assets.get(name).await {
        Ok(Some(asset)) => asset,
        Ok(None) => return not_found(app),
        Err(error) => {
            tracing::error!(
                "cannot read web/{name}: {error}; check the --web folder's files and permissions"
            );
            return server_error(app);
        }
    };
    // The gzipped copy, to a client that takes it; a cache keeps one per
    // `Accept-Encoding` (the `Vary` below).
    let gzip = request
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(accepts_gzip);
    let varies = asset.gzipped.is_some();
    let (bytes, etag, encoding) = match asset.gzipped {
        Some((packed, etag)) if gzip => (packed, etag, Some("gzip")),
        _ => (asset.bytes, asset.etag, None),
    };
    let fresh = request
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| etag_matches(value, &etag));
    let mut response = if fresh {
        let mut response = Response::new(reply::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(reply::full(bytes));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        if let Some(encoding) = encoding {
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        response
    };
    let etag = HeaderValue::from_str(&etag).ok();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(asset.cache_control));
    if varies {
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(etag) = etag {
        headers.insert(ETAG, etag);
    }
    // Public files, read by pages of other sites in embed mode (embed.js
    // fetches the ghosts' stylesheet), which also learn the protocol they
    // were served over (HTTP/1.1 or not: see the client's `http1`).
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert("timing-allow-origin", HeaderValue::from_static("*"));
    response
}

/// Something on the server's side failed; the log says what.
pub fn server_error(app: &App) -> Response<Body> {
    error_page(
        app,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something broke on our side",
        "The server could not answer this request. Please try again in a moment; the operator has the details in the log.",
    )
}

pub fn not_found(app: &App) -> Response<Body> {
    error_page(
        app,
        StatusCode::NOT_FOUND,
        "Nothing here",
        "This page does not exist, or the post was moved or unpublished.",
    )
}

fn error_page(app: &App, status: StatusCode, title: &str, advice: &str) -> Response<Body> {
    let page = pages::render_error(&app.site, status.as_u16(), title, advice);
    reply::html(status, page)
}

/// `path` without its trailing slashes, as a path on this site: leading
/// slashes and backslashes become one slash, so `//evil.com/` (which a
/// browser reads as another host) redirects to `/evil.com`, a page here.
fn same_site(path: &str) -> String {
    let inner = path.trim_start_matches(['/', '\\']).trim_end_matches('/');
    format!("/{inner}")
}

/// `HEAD` gets `GET`'s headers, including the length of the body it omits.
fn strip_body(response: &mut Response<Body>) {
    if let Some(length) = response.body().size_hint().exact() {
        response
            .headers_mut()
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(length));
    }
    *response.body_mut() = reply::empty();
}

#[cfg(test)]
mod tests {
    use super::same_site;

    #[test]
    fn a_trailing_slash_redirect_never_leaves_the_site() {
        let cases = [
            ("/posts/hello/", "/posts/hello"),
            ("//evil.com/", "/evil.com"),
            ("///evil.com//", "/evil.com"),
            ("/\\evil.com/", "/evil.com"),
            ("/\\/evil.com/", "/evil.com"),
            ("//", "/"),
        ];
        for (path, want) in cases {
            let got = same_site(path);
            assert_eq!(got, want, "{path}");
            assert!(!got.starts_with("//") && !got.starts_with("/\\"), "{got}");
        }
    }
}
