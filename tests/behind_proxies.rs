//! Readers behind every proxy of the operating guide (docs/OPERATING.md), for real: in Chromium,
//! one reader direct and one behind the proxy (run with the guide's own
//! file from `docs/proxies/`). They see each other at once, a scroll through
//! the proxy shows within a second, a quiet stream stays open on heartbeats,
//! a reload resumes the same ghost, and a closed tab's ghost is gone within
//! a second (the page says goodbye; the proxy may keep its stream open).
//! Behind a proxy that buffers whole responses, the page falls back to
//! long-polling and all of that still holds.

mod common;

use std::time::{Duration, Instant};

use common::browser::{block_of, console_errors, own_id, Browser, Driver, LONG, ONE_AT_A_TIME};
use common::proxies::{Kind, Proxy};
use common::sse::open_with;
use common::{sample_blog, start_server};

/// A ghost one page shows, by id, as a JavaScript expression.
fn shows(id: &str) -> String {
    format!("!!document.querySelector('[data-ghost=\"{id}\"]:not([data-self])')")
}

/// One reader direct, one behind `kind`: every promise of the guide.
async fn readers_behind(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = start_server(sample_blog(), |c| {
        c.heartbeat = Duration::from_secs(1);
        c.poll_wait = Duration::from_secs(5);
    })
    .await;
    let proxy = Proxy::start(kind, server.addr).await;
    heartbeats_pass(&proxy).await;

    let driver = Driver::start().await;
    let direct = driver.browser(1280, 900).await;
    let behind = match kind {
        Kind::Squid => driver.browser_behind(1280, 900, proxy.addr).await,
        _ => driver.browser(1280, 900).await,
    };
    // Through a forward proxy the page has the server's own address.
    let through = match kind {
        Kind::Squid => server.addr,
        _ => proxy.addr,
    };
    direct
        .goto(&format!("http://{}/posts/{LONG}", server.addr))
        .await;
    behind.goto(&format!("http://{through}/posts/{LONG}")).await;
    let direct_id = own_id(&direct).await;
    let behind_id = own_id(&behind).await;
    if kind == Kind::Buffering {
        behind
            .wait_for(
                "the fallback to long-polling",
                "performance.getEntriesByType('resource').some((r) => r.name.endsWith('/poll'))",
            )
            .await;
    }
    behind
        .wait_for("the direct reader's ghost", &shows(&direct_id))
        .await;
    direct
        .wait_for("the proxied reader's ghost", &shows(&behind_id))
        .await;

    // A scroll behind the proxy shows to the direct reader within a second.
    behind.read_block(20, 0.5).await;
    let scrolled = Instant::now();
    direct
        .wait_for_within(
            "the proxied reader at block 20",
            &format!("{} === 20", block_of(&behind_id)),
            Duration::from_secs(1),
        )
        .await;
    println!(
        "{kind:?}: a scroll behind it seen after {:?}",
        scrolled.elapsed()
    );

    // A reload behind the proxy comes back as the same ghost.
    behind.client.refresh().await.expect("reload");
    assert_eq!(
        own_id(&behind).await,
        behind_id,
        "{kind:?}: the reload resumed"
    );
    direct
        .wait_for("the resumed ghost", &shows(&behind_id))
        .await;

    let errors = console_errors(&behind, &[]).await;
    assert!(errors.is_empty(), "{kind:?}: {errors:?}");

    // The tab closes; its ghost goes within a second, whatever the proxy
    // does with the stream.
    close_tab(behind).await;
    let closed = Instant::now();
    direct
        .wait_for_within(
            "the closed tab's ghost gone",
            &format!("!{}", shows(&behind_id)),
            Duration::from_secs(1),
        )
        .await;
    println!(
        "{kind:?}: a closed tab's ghost gone after {:?}",
        closed.elapsed()
    );
    direct.close().await;
    drop(proxy);
}

/// The reader leaves the page for good, as closing the tab or following a
/// link away does: `pagehide`. (Ending the WebDriver session instead kills
/// Chromium without letting the page know.)
async fn close_tab(browser: Browser) {
    browser.goto("about:blank").await;
    browser.close().await;
}

/// With nothing to say, the stream stays open through the proxy on
/// heartbeats (1 s here), each arriving as it is sent.
async fn heartbeats_pass(proxy: &Proxy) {
    if matches!(proxy.kind, Kind::Squid | Kind::Buffering) {
        return; // A forward proxy is the browser's; a buffering one holds them all.
    }
    let mut reader = open_with(proxy.addr, &format!("/posts/{LONG}/events"), "")
        .await
        .unwrap_or_else(|e| panic!("{:?}: {} {}", proxy.kind, e.status, proxy.log()));
    for _ in 0..3 {
        assert_eq!(reader.wait_comment().await, "ping", "{:?}", proxy.kind);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx() {
    readers_behind(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy() {
    readers_behind(Kind::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy() {
    readers_behind(Kind::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_apache() {
    readers_behind(Kind::Apache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_varnish() {
    readers_behind(Kind::Varnish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_squid_as_the_browsers_forward_proxy() {
    readers_behind(Kind::Squid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_that_buffers_whole_responses_the_page_polls() {
    readers_behind(Kind::Buffering).await;
}

#[test]
fn the_operating_guide_shows_each_tested_proxy_file_as_it_stands() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/OPERATING.md")).expect("docs/OPERATING.md");
    for file in [
        "nginx.conf",
        "haproxy.cfg",
        "Caddyfile",
        "apache.conf",
        "varnish.vcl",
        "squid.conf",
    ] {
        let text = std::fs::read_to_string(root.join("docs/proxies").join(file)).expect(file);
        assert!(
            guide.contains(&text),
            "docs/OPERATING.md must show docs/proxies/{file} exactly as the tests run it"
        );
    }
}
