//! The browser client in real Chromium: readers see each other's ghosts at
//! the right paragraph, whatever their screen widths; ghosts leave, resume
//! and recover; crowds become density bands; no page logs an error.

mod common;

use std::time::Duration;

use common::browser::{Browser, Driver};
use common::sse::{metric, move_to, open};
use common::{sample_blog, start_server, start_server_at, wait_until};
use serde_json::Value;

/// One Chromium set at a time: two cores do not run a dozen well.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LONG: &str = "one-task-to-own-them-all";

/// One browser test's world: its turn at the browsers, a server on the
/// sample blog, and chromedriver.
struct Scene {
    _one: tokio::sync::MutexGuard<'static, ()>,
    server: common::TestServer,
    driver: Driver,
}

impl Scene {
    async fn new(configure: impl FnOnce(&mut ghostread::Config)) -> Scene {
        let one = ONE_AT_A_TIME.lock().await;
        let server = start_server(sample_blog(), configure).await;
        Scene {
            _one: one,
            server,
            driver: Driver::start().await,
        }
    }

    /// A 1280 × 900 browser reading the long post.
    async fn reader(&self) -> Browser {
        let browser = self.driver.browser(1280, 900).await;
        browser
            .goto(&format!("http://{}/posts/{LONG}", self.server.addr))
            .await;
        browser
    }

    /// The same with JavaScript off.
    async fn reader_without_js(&self) -> Browser {
        let browser = self.driver.browser_without_js(1280, 900).await;
        browser
            .goto(&format!("http://{}/posts/{LONG}", self.server.addr))
            .await;
        browser
    }
}

/// A JavaScript expression: the block that ghost `id` is drawn beside in
/// this page's own layout, or -1.
fn block_of(id: &str) -> String {
    format!(
        "(() => {{
            const g = document.querySelector('[data-ghost=\"{id}\"]:not([data-self])');
            if (!g || !g.style.transform) return -1;
            const y = parseFloat(g.style.transform.slice('translateY('.length));
            const top = document.querySelector('.reader').getBoundingClientRect().top;
            for (const b of document.querySelectorAll('[data-block]')) {{
                const r = b.getBoundingClientRect();
                if (y >= r.top - top && y <= r.bottom - top) return Number(b.dataset.block);
            }}
            return -1;
        }})()"
    )
}

const OWN_ID: &str =
    "document.querySelector('[data-self]') && document.querySelector('[data-self]').dataset.ghost";

async fn own_id(browser: &Browser) -> String {
    browser
        .wait_for("the reader's own ghost", OWN_ID)
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Console entries at SEVERE level, except what `allowed` matches.
async fn console_errors(browser: &Browser, allowed: &[&str]) -> Vec<Value> {
    browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            !allowed
                .iter()
                .any(|a| entry["message"].as_str().unwrap_or("").contains(a))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_readers_at_different_widths_see_each_other_at_the_right_paragraph() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = start_server(sample_blog(), |_| {}).await;
    let driver = Driver::start().await;
    let wide = driver.browser(1280, 900).await;
    let narrow = driver.browser(390, 844).await;
    let url = format!("http://{}/posts/{LONG}", server.addr);
    wide.goto(&url).await;
    narrow.goto(&url).await;
    let wide_id = own_id(&wide).await;
    let narrow_id = own_id(&narrow).await;
    assert_ne!(wide_id, narrow_id);
    wide.wait_for(
        "the narrow reader's ghost",
        &format!("document.querySelector('[data-ghost=\"{narrow_id}\"]:not([data-self])')"),
    )
    .await;
    narrow
        .wait_for(
            "the wide reader's ghost",
            &format!("document.querySelector('[data-ghost=\"{wide_id}\"]:not([data-self])')"),
        )
        .await;
    assert_eq!(
        wide.js(
            "return document.querySelector('[data-ghost-lane]').getAttribute('aria-hidden')",
            vec![]
        )
        .await,
        "true"
    );
    wide.wait_for(
        "live counts",
        "document.querySelector('[data-now]').textContent === '2'",
    )
    .await;

    // The narrow reader reads block 30: the wide one sees it there, in its
    // own (very different) layout. And the other way round.
    narrow.read_block(30, 0.5).await;
    wide.wait_for(
        "the narrow reader's ghost at block 30",
        &format!("{} === 30", block_of(&narrow_id)),
    )
    .await;
    wide.read_block(12, 0.25).await;
    narrow
        .wait_for(
            "the wide reader's ghost at block 12",
            &format!("{} === 12", block_of(&wide_id)),
        )
        .await;
    // On a phone the ghosts are thin marks at the edge, clear of the text.
    let overlaps = narrow
        .js(
            "const text = document.querySelector('article').getBoundingClientRect().left;
             return Array.from(document.querySelectorAll('.ghost'))
                 .filter(g => g.getBoundingClientRect().width > 0 && g.getBoundingClientRect().right > text).length;",
            vec![],
        )
        .await;
    assert_eq!(overlaps, 0, "no ghost covers the text on a narrow screen");

    // A few more readers near block 30, for the picture in the README.
    let mut others = Vec::new();
    for (i, block) in [28.3, 29.6, 31.2, 32.7].into_iter().enumerate() {
        let reader = open(server.addr, LONG).await;
        move_to(server.addr, LONG, &reader, block + i as f64 * 0.01).await;
        others.push(reader);
    }
    wide.read_block(29, 0.2).await;
    wide.wait_for(
        "the extra ghosts",
        "document.querySelectorAll('[data-ghost]:not([data-self])').length === 5",
    )
    .await;
    // Let the CSS transitions settle before the picture.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let png = wide.screenshot().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ghostread-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join("ghosts.png"), png).expect("write screenshot");

    // Closing a tab removes its ghost from the others within 2 s.
    narrow.close().await;
    wide.wait_for_within(
        "the closed tab's ghost is gone",
        &format!("!document.querySelector('[data-ghost=\"{narrow_id}\"]')"),
        Duration::from_secs(2),
    )
    .await;
    assert!(console_errors(&wide, &[]).await.is_empty());
    wide.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_readers_ghost_and_colour() {
    let scene = Scene::new(|_| {}).await;
    let server = &scene.server;
    let browser = scene.reader().await;
    let id = own_id(&browser).await;
    let color = browser
        .js(
            "return document.querySelector('[data-self]').style.getPropertyValue('--ghost')",
            vec![],
        )
        .await;
    browser.client.refresh().await.expect("reload");
    browser
        .wait_for("the resumed ghost", &format!("{OWN_ID} === '{id}'"))
        .await;
    let again = browser
        .js(
            "return document.querySelector('[data-self]').style.getPropertyValue('--ghost')",
            vec![],
        )
        .await;
    assert_eq!(again, color);
    assert_eq!(
        metric(server.addr, "ghostread_joins_total").await,
        1.0,
        "a reload is not a new reader"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_a_410_reconnects_the_reader_by_itself() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = start_server(sample_blog(), |_| {}).await;
    let addr = server.addr;
    let driver = Driver::start().await;
    let browser = driver.browser(1280, 900).await;
    browser.goto(&format!("http://{addr}/posts/{LONG}")).await;
    let old_id = own_id(&browser).await;

    let (result, posts, data) = server.stop_keeping_folders().await;
    result.expect("clean stop");
    let server = start_server_at(addr, posts, data, |_| {}).await;
    // Scrolling now posts with the old token, which the new server does not
    // know: 410, and the client reopens its stream.
    browser.read_block(8, 0.5).await;
    let new_id = browser
        .wait_for(
            "a new ghost",
            &format!("{OWN_ID} !== '{old_id}' && {OWN_ID}"),
        )
        .await;
    let new_id = new_id.as_str().unwrap_or_default().to_string();
    assert!(metric(addr, "ghostread_position_responses_total{status=\"410\"}").await >= 1.0);

    let mut watcher = open(addr, LONG).await;
    browser.read_block(20, 0.5).await;
    watcher
        .wait_for("moves", |d| {
            d["moves"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["id"] == new_id.as_str()
                        && m["pos"].as_f64().is_some_and(|p| (20.0..21.0).contains(&p))
                })
            })
        })
        .await;
    drop(server);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_readers_on_one_post_are_drawn_as_a_density_band() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = start_server(sample_blog(), |_| {}).await;
    let mut readers = Vec::new();
    for i in 0..59 {
        let reader = open(server.addr, LONG).await;
        if i < 10 {
            move_to(server.addr, LONG, &reader, 3.5).await;
        }
        readers.push(reader);
    }
    let driver = Driver::start().await;
    let browser = driver.browser(1280, 900).await;
    browser
        .goto(&format!("http://{}/posts/{LONG}", server.addr))
        .await;
    browser
        .wait_for(
            "crowd mode",
            "document.querySelector('[data-ghost-lane]').classList.contains('crowded')",
        )
        .await;
    let bands = browser
        .js(
            "return Array.from(document.querySelectorAll('.ghost-density:not([hidden])'))
                .map(b => [Number(b.dataset.block), Number(b.dataset.count)]);",
            vec![],
        )
        .await;
    let bands: Vec<(u64, u64)> = bands
        .as_array()
        .expect("bands")
        .iter()
        .map(|b| (b[0].as_u64().unwrap_or(999), b[1].as_u64().unwrap_or(0)))
        .collect();
    assert!(bands.contains(&(3, 10)), "{bands:?}");
    assert!(bands.contains(&(0, 49)), "{bands:?}");
    let shown = browser.js("return Array.from(document.querySelectorAll('[data-ghost]:not([data-self])')).filter(g => getComputedStyle(g).display !== 'none').length", vec![]).await;
    assert_eq!(shown, 0, "no pile of overlapping tags");
    browser.close().await;
}

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
    browser
        .js("document.querySelector('.ghost-toggle').click()", vec![])
        .await;
    browser.client.refresh().await.expect("reload");
    browser
        .wait_for(
            "ghosts hidden after reload",
            "document.documentElement.classList.contains('ghosts-hidden')",
        )
        .await;
    let label = browser
        .js(
            "return document.querySelector('.ghost-toggle').textContent",
            vec![],
        )
        .await;
    assert_eq!(label, "Show ghosts");
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
async fn a_hidden_tab_sends_nothing_and_reports_its_position_when_shown() {
    let scene = Scene::new(|_| {}).await;
    let server = &scene.server;
    let browser = scene.reader().await;
    let id = own_id(&browser).await;
    let accepted = "ghostread_position_responses_total{status=\"204\"}";
    wait_until("the first position arrived", || async {
        metric(server.addr, accepted).await >= 1.0
    })
    .await;

    set_hidden(&browser, true).await;
    let before = metric(server.addr, accepted).await;
    for block in [10, 15, 20, 25] {
        browser.read_block(block, 0.5).await;
    }
    let mut watcher = open(server.addr, LONG).await;
    set_hidden(&browser, false).await;
    watcher
        .wait_for("moves", |d| {
            d["moves"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["id"] == id.as_str()
                        && m["pos"].as_f64().is_some_and(|p| (25.0..26.0).contains(&p))
                })
            })
        })
        .await;
    assert_eq!(
        metric(server.addr, accepted).await - before,
        1.0,
        "one POST, sent on showing, none while hidden"
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
    watcher
        .wait_for("moves", |d| {
            d["moves"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["id"] == id.as_str()
                        && m["pos"].as_f64().is_some_and(|p| (20.0..21.0).contains(&p))
                })
            })
        })
        .await;
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
