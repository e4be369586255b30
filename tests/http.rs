//! HTTP behaviour: static assets and their caching, path tricks, methods,
//! HTTP/2 by prior knowledge, slow clients and graceful shutdown.

mod common;

use std::time::Duration;

use common::{get, send, send_bytes, start_server, TempDir};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_have_types_etags_and_answer_304_when_unchanged() {
    let server = start_server(TempDir::new("posts"), |_| {}).await;
    let css = get(server.addr, "/web/ghostread.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css
        .header("cache-control")
        .is_some_and(|v| v.contains("max-age")));
    let etag = css.header("etag").expect("etag").to_string();
    // The embedded copy is web/'s, sent without comments and indentation.
    let source = std::fs::read_to_string("web/ghostread.css").expect("read css");
    let source_lines: std::collections::HashSet<&str> = source.lines().map(str::trim).collect();
    let sent = css.text();
    assert!(
        sent.lines().all(|line| source_lines.contains(line)),
        "{sent}"
    );
    assert!(sent.contains(".ghost-lane {"), "{sent}");
    assert!(!sent.contains("/*"), "comments are left out: {sent}");

    let again = send(
        server.addr,
        &format!("GET /web/ghostread.css HTTP/1.1\r\nhost: t\r\nif-none-match: {etag}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    let stale = send(
        server.addr,
        "GET /web/ghostread.css HTTP/1.1\r\nhost: t\r\nif-none-match: \"other\"\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(stale.status, 200);

    let svg = get(server.addr, "/web/img/actor-mailbox.svg").await;
    assert_eq!(
        (svg.status, svg.header("content-type")),
        (200, Some("image/svg+xml"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_dir_serves_assets_from_disk_for_development() {
    let web = TempDir::new("web");
    web.write("site.css", "body { color: red }");
    let web_path = web.path().to_path_buf();
    let server = start_server(TempDir::new("posts"), move |c| {
        c.web = ghostread::WebSource::Dir(web_path)
    })
    .await;
    let css = get(server.addr, "/web/site.css").await;
    assert_eq!(
        (css.status, css.text().as_str()),
        (200, "body { color: red }")
    );
    assert_eq!(css.header("cache-control"), Some("no-cache"));
    web.write("site.css", "body { color: blue }");
    assert_eq!(
        get(server.addr, "/web/site.css").await.text(),
        "body { color: blue }",
        "edits show at once"
    );
    assert_eq!(
        get(server.addr, "/web/ghostread.css").await.status,
        404,
        "only the folder is served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_trick_reads_outside_web() {
    let web = TempDir::new("web");
    web.write("ok.css", "ok");
    std::fs::create_dir_all(web.path().join("sub")).expect("mkdir");
    web.write("sub/inner.css", "inner");
    // A secret beside the web folder, as Cargo.toml is beside web/.
    let secret = web
        .path()
        .parent()
        .expect("parent")
        .join(format!("secret-{}.txt", std::process::id()));
    std::fs::write(&secret, "TOP SECRET").expect("write secret");
    let secret_name = secret
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let web_path = web.path().to_path_buf();
    let server = start_server(TempDir::new("posts"), move |c| {
        c.web = ghostread::WebSource::Dir(web_path)
    })
    .await;
    assert_eq!(get(server.addr, "/web/sub/inner.css").await.text(), "inner");

    let tricks = [
        format!("/web/../{secret_name}"),
        format!("/web/sub/../../{secret_name}"),
        format!("/web/..%2f{secret_name}"),
        format!("/web/..%2F{secret_name}"),
        format!("/web/%2e%2e/{secret_name}"),
        format!("/web/%2E%2E%2F{secret_name}"),
        format!("/web/..%5c{secret_name}"),
        format!("/web/..\\{secret_name}"),
        format!("/web/sub%2f..%2f..%2f{secret_name}"),
        format!("/web/{}", secret.display()),
        format!("/web//{}", secret.display()),
        "/web/ok.css%00".to_string(),
        "/web/ok.css%00.png".to_string(),
        "/web/.".to_string(),
        "/web/..".to_string(),
        "/web/".to_string(),
        "/web/sub".to_string(),
        "/web/%c0%ae%c0%ae/Cargo.toml".to_string(),
        "/web/../../../../../../etc/passwd".to_string(),
    ];
    for path in &tricks {
        let answer = get(server.addr, path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert!(!answer.text().contains("TOP SECRET"), "{path}");
    }
    // Bytes that are not legal in a request line at all are refused by the
    // HTTP parser before routing: 400, and still nothing read.
    for raw in [
        &b"GET /web/ok.css\0 HTTP/1.1\r\nhost: t\r\n\r\n"[..],
        b"GET /web/\xff\xfe HTTP/1.1\r\nhost: t\r\n\r\n",
    ] {
        let answer = send_bytes(server.addr, raw).await;
        assert!(
            matches!(answer.status, 400 | 404),
            "{:?} → {}",
            String::from_utf8_lossy(raw),
            answer.status
        );
        assert!(!answer.text().contains("TOP SECRET"));
    }
    let _ = std::fs::remove_file(secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body() {
    let posts = TempDir::new("posts");
    posts.write("p.md", common::post("P", "2025-01-01", "Text."));
    let server = start_server(posts, |_| {}).await;
    for path in ["/", "/posts/p", "/web/ghostread.css", "/healthz"] {
        let full = get(server.addr, path).await;
        let head = send(
            server.addr,
            &format!("HEAD {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(
            head.header("content-type"),
            full.header("content-type"),
            "{path}"
        );
        assert_eq!(
            head.header("content-length"),
            Some(full.body.len().to_string().as_str()),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_get_405_with_allow_and_options_lists_them() {
    let posts = TempDir::new("posts");
    posts.write("p.md", common::post("P", "2025-01-01", "Text."));
    let server = start_server(posts, |_| {}).await;
    for (method, path) in [
        ("POST", "/"),
        ("DELETE", "/posts/p"),
        ("PUT", "/web/ghostread.css"),
        ("PATCH", "/healthz"),
    ] {
        let answer = send(
            server.addr,
            &format!("{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(
            answer.header("allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method} {path}"
        );
    }
    let options = send(
        server.addr,
        "OPTIONS / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        (options.status, options.header("allow")),
        (204, Some("GET, HEAD, OPTIONS"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_slash_redirects_to_the_canonical_address() {
    let posts = TempDir::new("posts");
    posts.write("p.md", common::post("P", "2025-01-01", "Text."));
    let server = start_server(posts, |_| {}).await;
    let answer = get(server.addr, "/posts/p/").await;
    assert_eq!(
        (answer.status, answer.header("location")),
        (308, Some("/posts/p"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_serves_pages_on_the_same_port() {
    let posts = TempDir::new("posts");
    posts.write("p.md", common::post("Over h2", "2025-01-01", "Text."));
    let server = start_server(posts, |_| {}).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    for path in ["/", "/posts/p", "/web/ghostread.css"] {
        let request = hyper::Request::get(format!("http://{}{path}", server.addr))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("h2 response");
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.status(), 200, "{path}");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(!body.is_empty());
    }
}

/// A server that allows 300 ms for a request's headers.
async fn quick_to_hang_up() -> common::TestServer {
    start_server(TempDir::new("posts"), |c| {
        c.header_timeout = Duration::from_millis(300)
    })
    .await
}

/// A kept-alive connection that has had one `200` answer.
async fn kept_alive(server: &common::TestServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .expect("write");
    let first = common::read_response(&mut stream, false).await;
    assert_eq!(first.status, 200);
    assert_ne!(first.header("connection"), Some("close"));
    stream
}

/// What the server sent before it closed `stream`; `None` if it was still
/// open after `secs` seconds.
async fn until_closed(stream: &mut TcpStream, secs: u64) -> Option<Vec<u8>> {
    let mut rest = Vec::new();
    let within = Duration::from_secs(secs);
    let closed = tokio::time::timeout(within, stream.read_to_end(&mut rest)).await;
    closed.ok().map(|_| rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_silent_sockets_are_cut_off_by_the_header_timeout() {
    let server = quick_to_hang_up().await;
    // One socket says nothing; another dribbles half a request line.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut dribbling = TcpStream::connect(server.addr).await.expect("connect");
    dribbling.write_all(b"GET / HT").await.expect("write");
    for stream in [&mut silent, &mut dribbling] {
        assert!(
            until_closed(stream, 10).await.is_some(),
            "the server closed the connection"
        );
    }
    // Meanwhile the server still serves everyone else.
    assert_eq!(get(server.addr, "/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_closes_after_the_header_timeout() {
    let server = quick_to_hang_up().await;
    let mut idle = kept_alive(&server).await;
    // Kept alive, then closed once it has sat idle past the timeout: the
    // README's flag table says so, and hyper starts its header timer while a
    // kept-alive connection waits for its next request.
    let rest = until_closed(&mut idle, 10).await;
    assert_eq!(rest, Some(Vec::new()), "closed, without another answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_with_retry_after() {
    let server = start_server(TempDir::new("posts"), |c| c.max_connections = 2).await;
    let _held: Vec<TcpStream> = vec![
        TcpStream::connect(server.addr).await.expect("connect"),
        TcpStream::connect(server.addr).await.expect("connect"),
    ];
    common::wait_until("the extra connection is refused", || async {
        let answer = get(server.addr, "/healthz").await;
        answer.status == 503 && answer.header("retry-after").is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
    let server = start_server(TempDir::new("posts"), |_| {}).await;
    let mut idle = kept_alive(&server).await;
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown within 5 s")
        .expect("serve returned Ok");
    // Well within the 10 s header timeout, which would close it too.
    let closed = until_closed(&mut idle, 5).await;
    assert!(closed.is_some(), "the idle connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_that_exists_but_cannot_be_read_is_a_500_page_not_a_404() {
    let web = TempDir::new("web");
    // A file the kernel lists but refuses to read from the start (EIO):
    // what a failing disk or a bad mount looks like to the server.
    std::os::unix::fs::symlink("/proc/self/mem", web.path().join("broken.css")).expect("symlink");
    let web_path = web.path().to_path_buf();
    let server = start_server(TempDir::new("posts"), move |c| {
        c.web = ghostread::WebSource::Dir(web_path)
    })
    .await;
    let answer = get(server.addr, "/web/broken.css").await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(answer.text().contains("Something broke on our side"));
    assert_eq!(
        get(server.addr, "/healthz").await.status,
        200,
        "and the server carries on"
    );
}
