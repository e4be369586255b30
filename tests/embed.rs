//! Embed mode over the wire: a page of an allowed site says it shows
//! ghosts and gets the slug its readers meet under, and its readers'
//! stream, positions and goodbye are answered with CORS for that site
//! only. Another site's page is refused, and the log says why once.

mod common;

use std::time::Duration;

use common::binary::Running;
use common::sse::{open_with, Reader};
use common::{get, one_post, send, start_server, TempDir};

const SITE: &str = "https://blog.example";
const EVIL: &str = "https://evil.example";

/// `POST /embed/page` from `origin`.
async fn show(addr: std::net::SocketAddr, origin: &str, body: &str) -> common::Response {
    post_from(addr, origin, "/embed/page", body).await
}

/// A POST to one of a page's endpoints from `origin`.
async fn post_from(
    addr: std::net::SocketAddr,
    origin: &str,
    path: &str,
    body: &str,
) -> common::Response {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nhost: ghosts.test\r\norigin: {origin}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    send(addr, &raw).await
}

/// A reader's position, sent from `origin`.
async fn position_from(
    addr: std::net::SocketAddr,
    origin: &str,
    slug: &str,
    token: &str,
    pos: f64,
) -> common::Response {
    let body = format!(r#"{{"token":"{token}","pos":{pos}}}"#);
    post_from(addr, origin, &format!("/posts/{slug}/position"), &body).await
}

async fn reader_from(addr: std::net::SocketAddr, origin: &str, slug: &str) -> Reader {
    open_with(
        addr,
        &format!("/posts/{slug}/events"),
        &format!("origin: {origin}\r\n"),
    )
    .await
    .unwrap_or_else(|answer| panic!("the stream opens: {} {}", answer.status, answer.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_an_allowed_site_see_each_other_across_origins() {
    let server = start_server(one_post(4), |c| c.embed_origins = vec![SITE.into()]).await;
    let addr = server.addr;
    let shown = show(
        addr,
        SITE,
        r#"{"url":"https://blog.example/posts/hello/?utm=x#top","blocks":12}"#,
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.header("access-control-allow-origin"), Some(SITE));
    let page = shown.json();
    let slug = page["slug"].as_str().expect("a slug").to_string();
    assert_eq!(page["blocks"], 12);
    // The same page, however its address is written, is the same room.
    let again = show(
        addr,
        SITE,
        r#"{"url":"HTTPS://Blog.Example:443/posts/hello/","blocks":12}"#,
    )
    .await;
    assert_eq!(again.json()["slug"], slug.as_str());

    let mut first = reader_from(addr, SITE, &slug).await;
    let second = reader_from(addr, SITE, &slug).await;
    assert_eq!(first.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(first.hello.data["blocks"], 12, "the page's own length");
    first
        .wait_for("join", |data| data["id"] == second.id.as_str())
        .await;

    let moved = position_from(addr, SITE, &slug, &second.token, 7.5).await;
    assert_eq!(moved.status, 204, "{}", moved.text());
    assert_eq!(moved.header("access-control-allow-origin"), Some(SITE));
    first.wait_for_ghost_in_block(&second.id, 7).await;

    // A position past the page's end is refused, as on a post.
    let beyond = position_from(addr, SITE, &slug, &second.token, 13.0).await;
    assert_eq!(beyond.status, 400, "{}", beyond.text());

    // The browser's preflight for a JSON POST.
    let preflight = send(
        addr,
        &format!("OPTIONS /posts/{slug}/position HTTP/1.1\r\nhost: ghosts.test\r\norigin: {SITE}\r\naccess-control-request-method: POST\r\naccess-control-request-headers: content-type\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(preflight.header("access-control-allow-origin"), Some(SITE));
    assert!(preflight
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("content-type")));
    assert!(preflight
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));

    let left = post_from(
        addr,
        SITE,
        &format!("/posts/{slug}/leave"),
        &format!(r#"{{"token":"{}"}}"#, second.token),
    )
    .await;
    assert_eq!(left.status, 204, "{}", left.text());
    first
        .wait_for("leave", |data| data["id"] == second.id.as_str())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_page_is_refused_and_this_sites_own_pages_are_not() {
    let server = start_server(one_post(4), |c| c.embed_origins = vec![SITE.into()]).await;
    let addr = server.addr;
    let refused = show(addr, EVIL, r#"{"url":"https://evil.example/a","blocks":3}"#).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .text()
            .contains("--embed-origin https://evil.example"),
        "{}",
        refused.text()
    );
    assert_eq!(refused.header("access-control-allow-origin"), None);
    let stream = open_with(addr, "/posts/p/events", &format!("origin: {EVIL}\r\n")).await;
    let answer = stream.err().expect("refused");
    assert_eq!(answer.status, 403, "{}", answer.text());

    // This site's own page sends its own origin: as before embed mode.
    let own = open_with(addr, "/posts/p/events", "origin: http://test\r\n").await;
    assert!(own.is_ok(), "this site's own pages keep their ghosts");
    let plain = open_with(addr, "/posts/p/events", "").await;
    assert!(plain.is_ok(), "no origin, no browser: as before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_sends_cannot_make_the_server_hold_unbounded_pages() {
    let server = start_server(one_post(4), |c| {
        c.embed_origins = vec![SITE.into()];
        c.embed_max_pages = 2;
    })
    .await;
    let addr = server.addr;
    for (body, status) in [
        (r#"{"url":"https://blog.example/a","blocks":3}"#, 200),
        (r#"{"url":"https://blog.example/b","blocks":3}"#, 200),
        (r#"{"url":"https://blog.example/c","blocks":3}"#, 503),
        (r#"{"url":"https://blog.example/a","blocks":9}"#, 200),
        (r#"{"url":"https://evil.example/a","blocks":3}"#, 400),
        (r#"{"url":"javascript:alert(1)","blocks":3}"#, 400),
        (r#"{"url":"https://blog.example/d","blocks":0}"#, 400),
        (r#"{"url":"https://blog.example/d","blocks":1000000}"#, 400),
        (r#"{"url":"https://blog.example/d"}"#, 400),
        (r#"["https://blog.example/d",3]"#, 400),
        ("not json", 400),
    ] {
        let answer = show(addr, SITE, body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text());
        assert!(
            answer.status == 200 || answer.json()["error"].is_string(),
            "{body}"
        );
    }
    // An unknown page's slug has no room.
    let unknown = open_with(
        addr,
        "/posts/x-0000000000000/events",
        &format!("origin: {SITE}\r\n"),
    )
    .await;
    assert_eq!(unknown.err().expect("no such page").status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_mode_off_keeps_every_request_as_it_was() {
    let server = start_server(one_post(4), |_| {}).await;
    let answer = show(
        server.addr,
        SITE,
        r#"{"url":"https://blog.example/a","blocks":3}"#,
    )
    .await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.text().contains("--embed-origin"),
        "{}",
        answer.text()
    );
    let stream = open_with(
        server.addr,
        "/posts/p/events",
        &format!("origin: {EVIL}\r\n"),
    )
    .await;
    assert!(stream.is_ok(), "no origin is checked without embed mode");
}

#[test]
fn a_refused_origin_is_logged_once_and_a_sitemap_change_is_read() {
    let posts = TempDir::new("posts");
    posts.write("p.md", common::post("P", "2025-01-01", "One."));
    let data = TempDir::new("data");
    let site = TempDir::new("site");
    let sitemap = site.path().join("sitemap.xml");
    std::fs::write(
        &sitemap,
        "<urlset><url><loc>https://blog.example/a/</loc></url></urlset>",
    )
    .expect("sitemap");
    let sitemap_arg = sitemap.display().to_string();
    let mut server = Running::serve_with(
        &posts,
        &data,
        &["--embed-origin", SITE, "--embed-sitemap", &sitemap_arg],
    );
    let addr = server.addr();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        for _ in 0..3 {
            let answer = show(addr, EVIL, r#"{"url":"https://evil.example/a","blocks":3}"#).await;
            assert_eq!(answer.status, 403);
        }
        let listed = show(
            addr,
            SITE,
            r#"{"url":"https://blog.example/a/","blocks":3}"#,
        )
        .await;
        assert_eq!(listed.status, 200, "{}", listed.text());
        let unlisted = show(
            addr,
            SITE,
            r#"{"url":"https://blog.example/b/","blocks":3}"#,
        )
        .await;
        assert_eq!(unlisted.status, 403, "{}", unlisted.text());
        assert!(unlisted.text().contains("sitemap"), "{}", unlisted.text());
    });
    server.wait_for_line("refused a request from https://evil.example");
    // The site publishes the page: the sitemap changes, and it may show ghosts.
    // Not a wait for the server: a file system that keeps whole seconds
    // must see the next write as a change.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &sitemap,
        "<urlset><url><loc>https://blog.example/a/</loc></url><url><loc>https://blog.example/b/</loc></url></urlset>",
    )
    .expect("sitemap");
    server.wait_for_line("2 pages may show ghosts");
    runtime.block_on(async {
        let listed = show(
            addr,
            SITE,
            r#"{"url":"https://blog.example/b/","blocks":3}"#,
        )
        .await;
        assert_eq!(listed.status, 200, "{}", listed.text());
    });
    assert_eq!(
        server.lines_containing("refused a request from https://evil.example"),
        1,
        "logged once per origin"
    );
    server.terminate();
}

/// A GET of `path` from a browser that takes gzip.
async fn get_gzipped(addr: std::net::SocketAddr, path: &str) -> common::Response {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: t\r\naccept-encoding: gzip, br\r\nconnection: close\r\n\r\n"),
    )
    .await
}

fn inflate(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip body that inflates to text");
    text
}

/// The modules `text` imports, as `/web/client/` paths.
fn imports(text: &str) -> Vec<String> {
    text.split("from \"./")
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .map(|(name, _)| format!("/web/client/{name}"))
        .collect()
}

#[tokio::test]
async fn the_embed_adds_at_most_15_kib_gzipped_to_a_page() {
    let server = start_server(one_post(4), |c| c.embed_origins = vec![SITE.into()]).await;
    // What an embedded page loads: the tag's script, the ghosts' styles,
    // and the client, module by module, as its imports name them.
    let mut todo = vec![
        "/embed.js".to_string(),
        "/web/ghosts.css".to_string(),
        "/web/client/start.js".to_string(),
    ];
    let mut loaded = std::collections::BTreeMap::new();
    while let Some(path) = todo.pop() {
        if loaded.contains_key(&path) {
            continue;
        }
        let packed = get_gzipped(server.addr, &path).await;
        assert_eq!(packed.status, 200, "{path}");
        assert_eq!(packed.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(packed.header("vary"), Some("accept-encoding"), "{path}");
        let text = inflate(&packed.body);
        // The same text as a client without gzip gets.
        let plain = get(server.addr, &path).await;
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(plain.text(), text, "{path}");
        assert_ne!(plain.header("etag"), packed.header("etag"), "{path}");
        todo.extend(imports(&text));
        loaded.insert(path, packed.body.len());
    }
    assert!(loaded.len() >= 8, "the client's modules: {loaded:?}");
    let total: usize = loaded.values().sum();
    assert!(
        total <= 15 * 1024,
        "the embed weighs {total} bytes gzipped, over 15 KiB: {loaded:?}"
    );
}
