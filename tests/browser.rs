//! The browser client in real Chromium, readers together: they see each
//! other's ghosts at the right paragraph whatever their screen widths;
//! ghosts leave, resume and recover; crowds become density bands.

mod common;

use std::time::Duration;

use common::browser::{
    block_of, console_errors, own_id, Driver, Scene, LONG, ONE_AT_A_TIME, OWN_ID,
};
use common::sse::{metric, move_to, open, post_position};
use common::{sample_blog, start_server, start_server_at};

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
    // One of them is away (its tab hidden): drawn dimmed.
    let away = &others[3];
    let body = format!(
        "{{\"token\":\"{}\",\"pos\":32.73,\"away\":true}}",
        away.token
    );
    assert_eq!(post_position(server.addr, LONG, &body).await.status, 204);
    wide.wait_for(
        "the away ghost dimmed",
        &format!(
            "!!document.querySelector('[data-ghost=\"{}\"][data-away]')",
            away.id
        ),
    )
    .await;
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
    watcher.wait_for_ghost_in_block(&new_id, 20).await;
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
    // The page's own reader is drawn apart: once it has said where it is,
    // block 0's band counts the 49 others.
    let bands = browser
        .wait_for(
            "the bands of 49 and 10 readers",
            "(() => {
                const bands = Array.from(document.querySelectorAll('.ghost-density:not([hidden])'))
                    .map(b => [Number(b.dataset.block), Number(b.dataset.count)]);
                const has = (block, count) => bands.some(b => b[0] === block && b[1] === count);
                return has(3, 10) && has(0, 49) ? bands : null;
            })()",
        )
        .await;
    assert!(bands.is_array(), "{bands:?}");
    let shown = browser.js("return Array.from(document.querySelectorAll('[data-ghost]:not([data-self])')).filter(g => getComputedStyle(g).display !== 'none').length", vec![]).await;
    assert_eq!(shown, 0, "no pile of overlapping tags");
    browser.close().await;
}

/// Records, after every change to the ghost lane, any moment at which the
/// page shows ghosts one by one and density bands together, or the lane's
/// mode disagrees with what it shows: what a reader would see as a flash.
const WATCH_FOR_FLASHES: &str = "
    window.__flashes = [];
    const lane = document.querySelector('[data-ghost-lane]');
    const shown = (selector) => Array.from(lane.querySelectorAll(selector))
        .filter((el) => getComputedStyle(el).display !== 'none').length;
    new MutationObserver(() => {
        const crowded = lane.classList.contains('crowded');
        const ghosts = shown('[data-ghost]:not([data-self])');
        const bands = shown('.ghost-density');
        if ((crowded && ghosts > 0) || (!crowded && bands > 0)) {
            window.__flashes.push({ crowded, ghosts, bands });
        }
    }).observe(lane, { subtree: true, childList: true, attributes: true });";

/// The ids of the other readers' ghosts the page shows one by one.
const SHOWN_GHOSTS: &str = "Array.from(document.querySelectorAll('[data-ghost]:not([data-self])'))
    .filter((g) => getComputedStyle(g).display !== 'none').map((g) => g.dataset.ghost)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_crossing_the_crowd_threshold_switches_modes_both_ways_without_a_flash() {
    let scene = Scene::new(|c| c.crowd = 3).await;
    let addr = scene.server.addr;
    let browser = scene.reader().await;
    own_id(&browser).await;
    browser.js(WATCH_FOR_FLASHES, vec![]).await;

    // Two others: three readers, not crowded; each ghost is drawn.
    let first = open(addr, LONG).await;
    let second = open(addr, LONG).await;
    move_to(addr, LONG, &second, 6.5).await;
    browser
        .wait_for("two ghosts", &format!("{SHOWN_GHOSTS}.length === 2"))
        .await;

    // A third other makes four: crowded. Bands replace the ghosts.
    let third = open(addr, LONG).await;
    move_to(addr, LONG, &third, 6.2).await;
    browser
        .wait_for(
            "crowd mode",
            "document.querySelector('[data-ghost-lane]').classList.contains('crowded')
             && document.querySelector('.ghost-density[data-block=\"6\"]:not([hidden])')
             && document.querySelector('.ghost-density[data-block=\"6\"]').dataset.count === '2'",
        )
        .await;
    assert_eq!(
        browser.js(&format!("return {SHOWN_GHOSTS}"), vec![]).await,
        serde_json::json!([]),
        "no ghost is drawn one by one in a crowd"
    );

    // Down to three: still crowded (a room at the threshold must not flap).
    third.close();
    browser
        .wait_for(
            "one reader fewer at block 6",
            "document.querySelector('.ghost-density[data-block=\"6\"]').dataset.count === '1'",
        )
        .await;
    assert_eq!(
        browser
            .js(
                "return document.querySelector('[data-ghost-lane]').classList.contains('crowded')",
                vec![]
            )
            .await,
        true
    );

    // Down to two: every ghost again, at its paragraph.
    first.close();
    browser
        .wait_for(
            "per-ghost mode",
            "!document.querySelector('[data-ghost-lane]').classList.contains('crowded')",
        )
        .await;
    let shown = browser.js(&format!("return {SHOWN_GHOSTS}"), vec![]).await;
    assert_eq!(shown, serde_json::json!([second.id.clone()]));
    browser
        .wait_for(
            "the ghost at block 6",
            &format!("{} === 6", block_of(&second.id)),
        )
        .await;
    let bands = browser
        .js(
            "return document.querySelectorAll('.ghost-density:not([hidden])').length",
            vec![],
        )
        .await;
    assert_eq!(bands, 0);
    let flashes = browser.js("return window.__flashes", vec![]).await;
    assert_eq!(
        flashes,
        serde_json::json!([]),
        "ghosts and bands never shown together"
    );
    assert!(console_errors(&browser, &[]).await.is_empty());
    browser.close().await;
}
