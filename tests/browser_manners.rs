//! Ghosts with manners, in real Chromium as a reader uses it: a hidden tab
//! is away for the others and back when shown; a long-hidden tab lets its
//! stream go; ghosts fade; a reader can be invisible; the tabs of one post
//! are one reader; and tabs never keep a page from loading over HTTP/1.1
//! (the test server speaks plain HTTP/1.1 to Chromium, as
//! `cargo run --release` does).

mod common;

use std::time::{Duration, Instant};

use common::browser::{console_errors, own_id, Browser, Scene, LONG};
use common::sse::metric;
use common::wait_until;

/// The expression for whether ghost `id` is drawn (not fading out).
fn shows(id: &str) -> String {
    format!(
        "!!document.querySelector('[data-ghost=\"{id}\"]:not([data-self]):not([data-leaving])')"
    )
}

fn away(id: &str) -> String {
    format!("!!document.querySelector('[data-ghost=\"{id}\"][data-away]')")
}

fn present(id: &str) -> String {
    format!("!!document.querySelector('[data-ghost=\"{id}\"]:not([data-self]):not([data-away])')")
}

async fn no_errors(browsers: &[&Browser]) {
    for browser in browsers {
        let errors = console_errors(browser, &[]).await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_tab_is_away_for_the_others_and_back_when_shown() {
    let scene = Scene::new(|_| {}).await;
    let base = format!("http://{}", scene.server.addr);
    let reader = scene.reader().await;
    let id = own_id(&reader).await;
    let post = reader.this_tab().await;
    let other = scene.reader().await;
    other.wait_for("the reader's ghost", &present(&id)).await;

    // The reader looks at another tab: its ghost dims for the others.
    reader.open_tab(&format!("{base}/")).await;
    let hidden_at = Instant::now();
    other
        .wait_for_within("the ghost is away", &away(&id), Duration::from_secs(5))
        .await;
    println!("away after {:?}", hidden_at.elapsed());

    // Back to the post: it undims at once.
    reader.show_tab(&post).await;
    let shown_at = Instant::now();
    other
        .wait_for_within("the ghost is back", &present(&id), Duration::from_secs(2))
        .await;
    println!("back after {:?}", shown_at.elapsed());
    assert_eq!(own_id(&reader).await, id, "the same ghost");
    no_errors(&[&reader, &other]).await;
    reader.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_hidden_for_long_lets_its_stream_go_and_comes_back_when_shown() {
    let scene = Scene::new(|c| c.let_go = Duration::from_secs(2)).await;
    let addr = scene.server.addr;
    let base = format!("http://{addr}");
    let reader = scene.reader().await;
    let id = own_id(&reader).await;
    let post = reader.this_tab().await;
    let other = scene.reader().await;
    other.wait_for("the reader's ghost", &present(&id)).await;
    let streams = "ghostread_streams_open";
    assert_eq!(metric(addr, streams).await, 2.0);

    // Hidden: over HTTP/1.1 the stream goes at once (the ghost is held,
    // away); once hidden for `let_go`, the ghost leaves for the others.
    reader.open_tab(&format!("{base}/")).await;
    wait_until("the hidden tab's stream closed", || async {
        metric(addr, streams).await == 1.0
    })
    .await;
    other.wait_for("the ghost is away", &away(&id)).await;
    other
        .wait_for_within(
            "the ghost left",
            &format!("!{}", shows(&id)),
            Duration::from_secs(6),
        )
        .await;

    // Shown again within the resume window: the stream opens again and
    // the same ghost comes back.
    reader.show_tab(&post).await;
    other.wait_for("the ghost is back", &present(&id)).await;
    assert_eq!(own_id(&reader).await, id);
    assert_eq!(metric(addr, streams).await, 2.0);
    no_errors(&[&reader, &other]).await;
    reader.close().await;
    other.close().await;
}

/// Records, in `browser`, what happens to ghost elements: each fade-out
/// (`data-leaving` set) and each removal, with their times.
async fn watch_ghost_elements(browser: &Browser) {
    browser
        .js(
            "window.seen = [];
             new MutationObserver(function (records) {
               for (const r of records) {
                 if (r.type === 'attributes' && r.target.hasAttribute('data-leaving'))
                   seen.push(['leaving', r.target.dataset.ghost, performance.now()]);
                 for (const n of r.removedNodes)
                   if (n.dataset && n.dataset.ghost) seen.push(['removed', n.dataset.ghost, performance.now()]);
                 for (const n of r.addedNodes)
                   if (n.dataset && n.dataset.ghost) seen.push(['added', n.dataset.ghost, performance.now()]);
               }
             }).observe(document.querySelector('[data-ghost-lane]'),
                        { subtree: true, childList: true, attributes: true, attributeFilter: ['data-leaving'] });",
            vec![],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_ghost_fades_out_and_under_reduced_motion_simply_goes() {
    let scene = Scene::new(|_| {}).await;
    let base = format!("http://{}", scene.server.addr);
    for reduced in [false, true] {
        let watcher = if reduced {
            scene.driver.browser_reduced_motion(1280, 900).await
        } else {
            scene.driver.browser(1280, 900).await
        };
        watcher.goto(&format!("{base}/posts/{LONG}")).await;
        own_id(&watcher).await;
        let leaving = scene.reader().await;
        let id = own_id(&leaving).await;
        watcher.wait_for("the ghost", &shows(&id)).await;
        watch_ghost_elements(&watcher).await;
        leaving.close().await;
        let seen = watcher
            .wait_for(
                "the ghost removed",
                &format!("seen.some(s => s[0] === 'removed' && s[1] === '{id}') && seen"),
            )
            .await;
        let events: Vec<(String, f64)> = seen
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s[1] == id.as_str())
            .map(|s| {
                (
                    s[0].as_str().unwrap_or("").to_string(),
                    s[2].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        let faded = events
            .iter()
            .find(|(what, _)| what == "leaving")
            .map(|(_, at)| *at);
        let removed = events
            .iter()
            .find(|(what, _)| what == "removed")
            .map(|(_, at)| *at);
        if reduced {
            assert_eq!(faded, None, "no fade under reduced motion: {events:?}");
        } else {
            let (faded, removed) = (faded.expect("it faded"), removed.expect("removed"));
            assert!(removed - faded >= 300.0, "faded over ~400 ms: {events:?}");
            let opacity = watcher
                .js(
                    "const g = document.createElement('div'); g.className = 'ghost'; g.dataset.leaving = '';
                     document.querySelector('[data-ghost-lane]').appendChild(g);
                     const o = getComputedStyle(g).transitionProperty; g.remove(); return o;",
                    vec![],
                )
                .await;
            assert!(
                opacity.as_str().unwrap_or("").contains("opacity"),
                "{opacity}"
            );
        }
        no_errors(&[&watcher]).await;
        watcher.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invisible_reader_is_never_seen_and_still_sees_the_others() {
    let scene = Scene::new(|_| {}).await;
    let addr = scene.server.addr;
    let base = format!("http://{addr}");
    let shy = scene.reader().await;
    let shy_id = own_id(&shy).await;
    let first_tab = shy.this_tab().await;
    // A second tab of the same browser on another post, open already.
    let second_tab = shy
        .open_tab(&format!("{base}/posts/reading-together-apart"))
        .await;
    shy.show_tab(&first_tab).await;
    let other = scene.reader().await;
    let other_id = own_id(&other).await;
    other
        .wait_for("the shy reader's ghost", &present(&shy_id))
        .await;
    watch_ghost_elements(&other).await;

    let switch = "document.querySelector('[data-toggle=\"invisible\"]')";
    shy.js(&format!("{switch}.click()"), vec![]).await;
    other
        .wait_for(
            "the shy reader's ghost is gone",
            &format!("!{}", shows(&shy_id)),
        )
        .await;
    // The shy reader still sees the other one read.
    other.read_block(24, 0.5).await;
    shy.wait_for(
        "the other ghost at block 24",
        &format!("{} === 24", common::browser::block_of(&other_id)),
    )
    .await;
    // Scrolling, reloading: never seen again, by any new reader either.
    shy.read_block(30, 0.5).await;
    shy.client.refresh().await.expect("reload");
    own_id(&shy).await;
    shy.read_block(12, 0.5).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let late = scene.reader().await;
    own_id(&late).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for browser in [&other, &late] {
        let count = browser
            .js(
                &format!("return document.querySelectorAll('[data-ghost=\"{shy_id}\"]:not([data-self])').length"),
                vec![],
            )
            .await;
        assert_eq!(count, 0);
    }
    let appeared = other
        .js(
            &format!("return seen.filter(s => s[0] === 'added' && s[1] === '{shy_id}').length"),
            vec![],
        )
        .await;
    assert_eq!(appeared, 0, "never drawn again after the switch");
    // The choice is the browser's: the other tab shows it at once.
    shy.show_tab(&second_tab).await;
    shy.wait_for(
        "the switch is on in the other tab too",
        &format!("{switch}.getAttribute('aria-pressed') === 'true'"),
    )
    .await;
    assert_eq!(
        shy.js(&format!("return {switch}.textContent"), vec![])
            .await,
        "Don't show me"
    );
    no_errors(&[&shy, &other, &late]).await;
    for browser in [shy, other, late] {
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_of_one_post_are_one_reader_and_a_closed_leader_hands_over() {
    let scene = Scene::new(|_| {}).await;
    let addr = scene.server.addr;
    let url = format!("http://{addr}/posts/{LONG}");
    let reader = scene.reader().await;
    let id = own_id(&reader).await;
    let leader_tab = reader.this_tab().await;
    let second_tab = reader.open_tab(&url).await;
    assert_eq!(
        own_id(&reader).await,
        id,
        "the second tab is the same reader"
    );
    let other = scene.reader().await;
    other.wait_for("the reader's ghost", &shows(&id)).await;
    wait_until("one ghost, one now", || async {
        metric(addr, "ghostread_ghosts").await == 2.0
    })
    .await;
    other
        .wait_for(
            "now counts two readers",
            "document.querySelector('[data-now]').textContent === '2'",
        )
        .await;
    let others_seen = other
        .js(
            "return document.querySelectorAll('[data-ghost]:not([data-self])').length",
            vec![],
        )
        .await;
    assert_eq!(
        others_seen, 1,
        "the other reader sees one ghost for both tabs"
    );
    // The shown tab reports the position.
    reader.read_block(20, 0.5).await;
    other
        .wait_for(
            "the ghost follows the shown tab",
            &format!("{} === 20", common::browser::block_of(&id)),
        )
        .await;

    // Closing the leader tab: the other takes over within 2 s.
    reader.show_tab(&leader_tab).await;
    reader
        .client
        .close_window()
        .await
        .expect("close the leader tab");
    reader.show_tab(&second_tab).await;
    let closed_at = Instant::now();
    // The closing tab asks for its ghost to be held while it goes; if the
    // page is gone before that request is out, its stream's end parks the
    // ghost instead. Either way the second tab takes the same ghost.
    wait_until("the second tab holds the stream", || async {
        let taken = metric(addr, "ghostread_takeovers_total").await
            + metric(addr, "ghostread_resumes_total").await;
        taken >= 1.0 && metric(addr, "ghostread_streams_open").await == 2.0
    })
    .await;
    let handed_over = closed_at.elapsed();
    println!("handed over after {handed_over:?}");
    assert!(handed_over < Duration::from_secs(2), "{handed_over:?}");
    reader.read_block(26, 0.5).await;
    other
        .wait_for(
            "the same ghost, from the new leader",
            &format!("{} === 26", common::browser::block_of(&id)),
        )
        .await;
    assert_eq!(metric(addr, "ghostread_ghosts").await, 2.0);
    no_errors(&[&reader, &other]).await;
    reader.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tabs_on_several_posts_over_http1_all_load_and_the_shown_one_has_its_ghosts() {
    let scene = Scene::new(|_| {}).await;
    let addr = scene.server.addr;
    let base = format!("http://{addr}");
    let posts = [
        LONG,
        "reading-together-apart",
        "notes-on-coalescing",
        "server-sent-events-are-underrated",
        "saving-a-file-that-survives-a-crash",
    ];
    // Another reader on every post, so each tab has a ghost to show.
    let mut company = Vec::new();
    for post in posts {
        let reader = scene.driver.browser(1000, 800).await;
        reader.goto(&format!("{base}/posts/{post}")).await;
        company.push((post, own_id(&reader).await, reader));
    }
    let reader = scene.reader().await;
    own_id(&reader).await;
    let mut tabs = vec![(LONG, reader.this_tab().await)];
    for i in 1..8 {
        let post = posts[i % posts.len()];
        // Each navigation must finish: fantoccini's goto waits for the load.
        let started = Instant::now();
        let tab = tokio::time::timeout(
            Duration::from_secs(10),
            reader.open_tab(&format!("{base}/posts/{post}")),
        )
        .await
        .unwrap_or_else(|_| panic!("tab {} never loaded: a connection was held", i + 1));
        println!("tab {} loaded in {:?}", i + 1, started.elapsed());
        own_id(&reader).await;
        tabs.push((post, tab));
    }
    // Whichever tab is shown has its ghosts within 1 s or so.
    for (post, tab) in [&tabs[2], &tabs[0], &tabs[6]] {
        reader.show_tab(tab).await;
        let shown_at = Instant::now();
        let (_, their_id, _) = company.iter().find(|(p, ..)| p == post).expect("company");
        reader
            .wait_for_within(
                "the shown tab's ghosts",
                &shows(their_id),
                Duration::from_secs(3),
            )
            .await;
        println!("{post}: ghosts after {:?}", shown_at.elapsed());
    }
    no_errors(&[&reader]).await;
    reader.close().await;
    for (_, _, browser) in company {
        browser.close().await;
    }
}

/// Samples, for ~1.2 s of animation frames, where ghost `id` is drawn.
async fn samples_of(browser: &Browser, id: &str) -> Vec<f64> {
    let script = format!(
        "const done = arguments[0];
         const el = document.querySelector('[data-ghost=\"{id}\"]');
         const ys = []; const until = performance.now() + 1200;
         (function frame() {{
           ys.push(parseFloat(el.style.transform.slice('translateY('.length)));
           if (performance.now() < until) requestAnimationFrame(frame); else done(ys);
         }})();"
    );
    let value = browser
        .client
        .execute_async(&script, vec![])
        .await
        .expect("sampling frames");
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_f64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_glide_toward_their_newest_position_and_jump_under_reduced_motion() {
    let scene = Scene::new(|_| {}).await;
    let addr = scene.server.addr;
    for reduced in [false, true] {
        let watcher = if reduced {
            scene.driver.browser_reduced_motion(1280, 900).await
        } else {
            scene.driver.browser(1280, 900).await
        };
        watcher.goto(&format!("http://{addr}/posts/{LONG}")).await;
        own_id(&watcher).await;
        let mover = common::sse::open(addr, LONG).await;
        common::sse::move_to(addr, LONG, &mover, 4.5).await;
        watcher
            .wait_for(
                "the ghost at block 4",
                &format!("{} === 4", common::browser::block_of(&mover.id)),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // A second update a while later: it glides (over up to a second).
        common::sse::move_to(addr, LONG, &mover, 14.5).await;
        let ys = samples_of(&watcher, &mover.id).await;
        let mut distinct = ys.clone();
        distinct.dedup();
        let last = *ys.last().expect("frames");
        assert!(
            ys.windows(2).all(|w| w[1] >= w[0]),
            "always toward it: {ys:?}"
        );
        if reduced {
            assert!(
                distinct.len() <= 2,
                "under reduced motion it jumps: {distinct:?}"
            );
        } else {
            assert!(
                distinct.len() >= 5,
                "it glides through many frames: {distinct:?}"
            );
        }
        assert_eq!(
            watcher
                .js(
                    &format!("return {}", common::browser::block_of(&mover.id)),
                    vec![]
                )
                .await,
            14,
            "and arrives ({last})"
        );
        no_errors(&[&watcher]).await;
        watcher.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switches_and_the_reading_now_count_are_accessible() {
    let scene = Scene::new(|_| {}).await;
    let addr = scene.server.addr;
    let reader = scene.reader().await;
    own_id(&reader).await;
    let switches = reader
        .js(
            "return Array.from(document.querySelectorAll('button[data-toggle]'))
                 .map(b => [b.dataset.toggle, b.textContent, b.getAttribute('aria-pressed')]);",
            vec![],
        )
        .await;
    assert_eq!(
        switches,
        serde_json::json!([
            ["ghosts", "Hide ghosts", "false"],
            ["invisible", "Don't show me", "false"]
        ])
    );
    // The visible count is not a live region; one polite region says it,
    // once at first and then not on every change.
    let live = reader
        .wait_for(
            "the announcement",
            "(() => { const l = document.querySelectorAll('[aria-live]');
                      return l.length === 1 && l[0].getAttribute('aria-live') === 'polite'
                          && !l[0].querySelector('[data-now]') && l[0].textContent; })()",
        )
        .await;
    assert_eq!(live, "1 reader reading now");
    reader
        .js(
            "window.said = [];
             new MutationObserver(() => said.push(document.querySelector('[aria-live]').textContent))
                 .observe(document.querySelector('[aria-live]'), { childList: true, characterData: true, subtree: true });",
            vec![],
        )
        .await;
    let mut comers = Vec::new();
    for _ in 0..4 {
        comers.push(common::sse::open(addr, LONG).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    reader
        .wait_for(
            "the count shows five",
            "document.querySelector('[data-now]').textContent === '5'",
        )
        .await;
    let said = reader.js("return said", vec![]).await;
    assert_eq!(said, serde_json::json!([]), "not announced on every change");
    reader.close().await;
}
