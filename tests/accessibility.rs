//! The pages checked with axe-core (Deque's engine, as browsers' own
//! audits use it) in real Chromium: the index and every sample post, at a
//! desktop's width and a phone's, in light and dark mode, have no serious
//! or critical violation.
//! (`common::axe` says where axe-core comes from.)

mod common;

use common::axe;
use common::browser::{own_id, Scene, LONG};
use serde_json::json;

/// The index and every post of the sample blog, by address.
fn sample_pages() -> Vec<String> {
    let posts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("posts");
    let mut pages = vec!["/".to_string()];
    for entry in std::fs::read_dir(&posts).expect("the sample posts folder") {
        let name = entry.expect("a sample post").file_name();
        if let Some(slug) = name.to_str().and_then(|n| n.strip_suffix(".md")) {
            pages.push(format!("/posts/{slug}"));
        }
    }
    pages.sort();
    assert!(pages.len() > 2, "the sample blog has posts: {pages:?}");
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_page_has_no_serious_violation_wide_or_narrow_in_light_or_dark_mode() {
    let axe = axe::source();
    let scene = Scene::new(|_| {}).await;
    let base = format!("http://{}", scene.server.addr);
    let pages = sample_pages();
    let mut report = Vec::new();
    // A desktop's window, and a phone's, where code blocks and tables
    // are wider than the column and scroll.
    for width in [1280, 420] {
        let browser = scene.driver.browser(width, 900).await;
        for scheme in ["light", "dark"] {
            browser
                .cdp(
                    "Emulation.setEmulatedMedia",
                    json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
                )
                .await;
            for page in &pages {
                browser.goto(&format!("{base}{page}")).await;
                if page.starts_with("/posts/") {
                    own_id(&browser).await; // The client has drawn its switches.
                }
                let dark = browser
                    .js(
                        "return matchMedia('(prefers-color-scheme: dark)').matches",
                        vec![],
                    )
                    .await;
                assert_eq!(dark, json!(scheme == "dark"), "the scheme is emulated");
                for violation in axe::serious_violations(&browser, &axe).await {
                    report.push(format!("{width} px, {scheme}, {page}: {violation}"));
                }
            }
        }
        browser.close().await;
    }
    assert!(
        report.is_empty(),
        "serious or critical violations:\n{}",
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_draws_the_heat_map_accessibly_and_is_pictured_for_the_readme() {
    let axe = axe::source();
    let scene = Scene::new(|_| {}).await;
    let addr = scene.server.addr;
    // Readers spread over the long post, most in its first half.
    let mut readers = Vec::new();
    for (i, block) in [3.5f64, 4.2, 4.8, 9.1, 12.5, 12.7, 13.1, 20.4, 31.0, 44.0]
        .into_iter()
        .enumerate()
    {
        let slug = if i % 4 == 3 {
            "reading-together-apart"
        } else {
            LONG
        };
        let reader = common::sse::open(addr, slug).await;
        common::sse::move_to(
            addr,
            slug,
            &reader,
            block.min(if slug == LONG { 60.0 } else { 8.0 }),
        )
        .await;
        readers.push(reader);
    }
    // Until the heat map has grown on both posts (once a second).
    common::wait_until("both posts have heat", || async {
        let mut warm = true;
        for slug in [LONG, "reading-together-apart"] {
            let heat = common::get(addr, &format!("/posts/{slug}/heat"))
                .await
                .json();
            warm &= heat["total_seconds"].as_f64().is_some_and(|s| s >= 2.0);
        }
        warm
    })
    .await;
    let browser = scene.driver.browser(1100, 1400).await;
    browser.goto(&format!("http://{addr}/stats")).await;
    let bars = browser
        .js(
            "return document.querySelectorAll('.heat-strip .heat-9').length",
            vec![],
        )
        .await;
    assert!(
        bars.as_u64().is_some_and(|n| n >= 1),
        "a hottest block is drawn"
    );
    let violations = axe::serious_violations(&browser, &axe).await;
    assert!(violations.is_empty(), "on /stats: {violations:?}");
    let png = browser.screenshot().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ghostread-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join("stats.png"), png).expect("write screenshot");
    browser.close().await;
}
