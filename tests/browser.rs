//! The browser client in real Chromium, readers together: they see each
//! other's ghosts at the right paragraph whatever their screen widths;
//! ghosts leave, resume and recover. Crowds: `browser_crowds.rs`.

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
