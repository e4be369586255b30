//! The browser client in real Chromium, on its manners: no page logs an
//! error, the toggle is remembered, a hidden tab is silent, a 429 is heeded,
//! and with JavaScript off the page is whole.

mod common;

use std::time::Duration;

use common::browser::{console_errors, own_id, Browser, Driver, Scene, LONG, ONE_AT_A_TIME};
use common::sse::{metric, open};
use common::{sample_blog, start_server, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_logs_an_error_and_the_ghost_toggle_is_remembered() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = start_server(sample_blog(), |_| {}).await;
    let driver = Driver::start().await;
    let browser = driver.browser(1280, 900).await;
    let base = format!("http://{}", server.addr);
    let mut pages = vec!["/".to_string()];
    for entry in std::fs::read_dir(common::sample_posts()).expect("posts") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .replace(".md", "");
        pages.push(format!("/posts/{name}"));
    }
    for page in &pages {
        browser.goto(&format!("{base}{page}")).await;
        if page.starts_with("/posts/") {
            own_id(&browser).await;
        }
        let errors = console_errors(&browser, &[]).await;
        assert!(errors.is_empty(), "{page}: {errors:?}");
    }
    browser.goto(&format!("{base}/posts/no-such-post")).await;
    let errors = console_errors(&browser, &["no-such-post - Failed to load resource"]).await;
    assert!(errors.is_empty(), "the 404 page: {errors:?}");

    // The toggle hides the ghosts, and the choice survives a reload.
    browser.goto(&format!("{base}/posts/{LONG}")).await;
    own_id(&browser).await;
    let switch = "document.querySelector('[data-toggle=\"ghosts\"]')";
    let state = format!("return [{switch}.textContent, {switch}.getAttribute('aria-pressed')]");
    assert_eq!(
        browser.js(&state, vec![]).await,
        serde_json::json!(["Hide ghosts", "false"])
    );
    browser.js(&format!("{switch}.click()"), vec![]).await;
    browser.client.refresh().await.expect("reload");
    browser
        .wait_for(
            "ghosts hidden after reload",
            "document.documentElement.classList.contains('ghosts-hidden')",
        )
        .await;
    // One fixed label; the state is in aria-pressed.
    assert_eq!(
        browser.js(&state, vec![]).await,
        serde_json::json!(["Hide ghosts", "true"])
    );
    browser.close().await;
}

/// Makes the page believe its tab was hidden or shown again.
async fn set_hidden(browser: &Browser, hidden: bool) {
    browser
        .js(
            "Object.defineProperty(document, 'hidden', { configurable: true, get: () => arguments[0] });
             document.dispatchEvent(new Event('visibilitychange'));",
            vec![serde_json::json!(hidden)],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_tab_says_it_is_away_then_nothing_and_reports_its_position_when_shown() {
    let scene = Scene::new(|_| {}).await;
    let server = &scene.server;
    let browser = scene.reader().await;
    let id = own_id(&browser).await;
    let accepted = "ghostread_position_responses_total{status=\"204\"}";
    wait_until("the first position arrived", || async {
        metric(server.addr, accepted).await >= 1.0
    })
    .await;

    let before = metric(server.addr, accepted).await;
    set_hidden(&browser, true).await;
    wait_until("the hidden tab said it is away", || async {
        metric(server.addr, accepted).await == before + 1.0
    })
    .await;
    for block in [10, 15, 20, 25] {
        browser.read_block(block, 0.5).await;
    }
    let mut watcher = open(server.addr, LONG).await;
    set_hidden(&browser, false).await;
    watcher.wait_for_ghost_in_block(&id, 25).await;
    assert_eq!(
        metric(server.addr, accepted).await - before,
        2.0,
        "one POST saying away on hiding, one with the position on showing, none while hidden"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_429_the_client_backs_off_and_still_delivers_its_last_position() {
    let scene = Scene::new(|c| c.moves_per_sec = 1).await;
    let server = &scene.server;
    let browser = scene.reader().await;
    let id = own_id(&browser).await;
    let mut watcher = open(server.addr, LONG).await;
    // Scroll on and on, far faster than one move a second.
    for block in 5..=20 {
        browser.read_block(block, 0.5).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    watcher.wait_for_ghost_in_block(&id, 20).await;
    let limited = metric(
        server.addr,
        "ghostread_position_responses_total{status=\"429\"}",
    )
    .await;
    assert!(
        (1.0..=3.0).contains(&limited),
        "it backed off after a 429 instead of hammering: {limited} refused"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_javascript_off_the_post_is_a_complete_readable_page() {
    let scene = Scene::new(|_| {}).await;
    let server = &scene.server;
    let browser = scene.reader_without_js().await;
    let text = browser.client.source().await.expect("page source");
    assert!(
        text.contains("Never wait for a reader"),
        "the whole article is there"
    );
    assert!(
        text.contains("Total readers:") && text.contains("reading now"),
        "the counts are there as served"
    );
    assert!(
        !text.contains("ghost-toggle"),
        "no controls that cannot work"
    );
    assert!(console_errors(&browser, &[]).await.is_empty());
    assert_eq!(
        metric(server.addr, "ghostread_joins_total").await,
        0.0,
        "no stream was opened"
    );
    browser.close().await;
}

/// PROTOCOL.md: large counts are shown as people read them, the same in
/// the browser as on the server's own pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_counts_are_shown_as_people_read_them() {
    let scene = Scene::new(|_| {}).await;
    let browser = scene.reader().await;
    browser
        .js(
            "import('/web/client/controls.js').then(m => { window.shownCounts = arguments[0].map(m.countText); });",
            vec![serde_json::json!([0, 999, 1000, 1250, 10234, 999999, 1000000, 1350000])],
        )
        .await;
    let shown = browser
        .wait_for("the client's module answered", "window.shownCounts")
        .await;
    assert_eq!(
        shown,
        serde_json::json!(["0", "999", "1k", "1.2k", "10.2k", "999.9k", "1M", "1.3M"])
    );
}
