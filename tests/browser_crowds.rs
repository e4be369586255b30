//! Crowds in real Chromium: a room above `--crowd` is drawn as density
//! bands, with the readers nearest the page's own as ghosts over them
//! (docs/PROTOCOL.md, "Crowded rooms"); the switch between modes, and
//! neighbours coming, moving and going, never flash.

mod common;

use common::browser::{block_of, console_errors, own_id, Driver, Scene, LONG, ONE_AT_A_TIME};
use common::sse::{move_to, open};
use common::{sample_blog, start_server};

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
    // Over them, not a pile of overlapping tags: its six nearest readers.
    let shown = browser
        .wait_for(
            "six neighbours",
            &format!("(() => {{ const s = {SHOWN_GHOSTS}; return s.length === 6 ? s : null; }})()"),
        )
        .await;
    assert_eq!(shown.as_array().map(Vec::len), Some(6), "{shown:?}");
    browser.close().await;
}

/// Records, after every change to the ghost lane, any moment at which the
/// page shows what no mode draws: in a crowd, a ghost that is not a
/// neighbour, or more than six; outside one, a band. And every ghost that
/// vanished while its reader was still in the room (its element removed
/// without fading out): what a reader would see as a flash.
const WATCH_FOR_FLASHES: &str = "
    window.__flashes = [];
    const lane = document.querySelector('[data-ghost-lane]');
    const shown = (selector) => Array.from(lane.querySelectorAll(selector))
        .filter((el) => getComputedStyle(el).display !== 'none').length;
    new MutationObserver((records) => {
        const crowded = lane.classList.contains('crowded');
        const strays = shown('[data-ghost]:not([data-self]):not([data-near])');
        const neighbours = shown('[data-ghost][data-near]:not([data-leaving])');
        const bands = shown('.ghost-density');
        if ((crowded && (strays > 0 || neighbours > 6)) || (!crowded && bands > 0)) {
            window.__flashes.push({ crowded, strays, neighbours, bands });
        }
        for (const record of records) for (const gone of record.removedNodes) {
            if (gone.dataset && gone.dataset.ghost && !('leaving' in gone.dataset)
                && (window.__staying || []).includes(gone.dataset.ghost)) {
                window.__flashes.push({ vanished: gone.dataset.ghost });
            }
        }
    }).observe(lane, { subtree: true, childList: true, attributes: true });";

/// The ids of the other readers' ghosts the page shows one by one (not
/// those fading out).
const SHOWN_GHOSTS: &str =
    "Array.from(document.querySelectorAll('[data-ghost]:not([data-self]):not([data-leaving])'))
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

    // Those two stay on the page through every switch: their elements are
    // marked, and none may be removed or replaced.
    browser
        .js(
            &format!(
                "window.__staying = {SHOWN_GHOSTS};
                 for (const g of document.querySelectorAll('[data-ghost]:not([data-self])')) g.__kept = true;"
            ),
            vec![],
        )
        .await;

    // A third other makes four: crowded. Bands come, and the three others,
    // all of them near, stay as ghosts over the bands.
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
    browser
        .wait_for(
            "the three others as neighbours",
            &format!("{SHOWN_GHOSTS}.length === 3 && document.querySelectorAll('[data-ghost][data-near]').length === 3"),
        )
        .await;
    let kept = browser
        .js(
            "return window.__staying.every((id) => document.querySelector(`[data-ghost=\"${id}\"]`).__kept)",
            vec![],
        )
        .await;
    assert_eq!(
        kept, true,
        "the ghosts shown before the switch are the same elements after it"
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
    browser.js("window.__staying = []", vec![]).await;
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

/// Whether the page shows `id` as a neighbour over the bands.
fn neighbour(id: &str) -> String {
    format!(
        "(() => {{ const g = document.querySelector('[data-ghost=\"{id}\"][data-near]');
            return !!g && !('leaving' in g.dataset) && getComputedStyle(g).display !== 'none'; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_crowd_the_readers_nearest_you_appear_move_and_leave() {
    let scene = Scene::new(|c| c.crowd = 3).await;
    let addr = scene.server.addr;
    let browser = scene.reader().await;
    own_id(&browser).await;
    browser.read_block(1, 0.5).await;
    // Far off, at block 40: eight readers, longest there first.
    let mut far = Vec::new();
    for _ in 0..8 {
        let reader = open(addr, LONG).await;
        move_to(addr, LONG, &reader, 40.5).await;
        far.push(reader);
    }
    browser
        .wait_for(
            "crowd mode",
            "document.querySelector('[data-ghost-lane]').classList.contains('crowded')",
        )
        .await;
    // Nobody is nearer: the page shows the first six of block 40.
    for reader in &far[..6] {
        browser
            .wait_for("a far neighbour", &neighbour(&reader.id))
            .await;
    }
    browser.js(WATCH_FOR_FLASHES, vec![]).await;

    // Someone steps into the page's own block: it appears, and the sixth
    // of block 40 makes room for it.
    let near = open(addr, LONG).await;
    move_to(addr, LONG, &near, 1.2).await;
    browser
        .wait_for("the newcomer, near", &neighbour(&near.id))
        .await;
    browser
        .wait_for(
            "the sixth far one gone",
            &format!("!{}", neighbour(&far[5].id)),
        )
        .await;
    browser
        .wait_for(
            "the newcomer at block 1",
            &format!("{} === 1", block_of(&near.id)),
        )
        .await;

    // It moves on, still the nearest: its ghost follows, to block 3.
    move_to(addr, LONG, &near, 3.5).await;
    browser
        .wait_for(
            "the neighbour at block 3",
            &format!("{} === 3", block_of(&near.id)),
        )
        .await;
    let still = browser
        .js(&format!("return {}", neighbour(&near.id)), vec![])
        .await;
    assert_eq!(still, true);

    // It leaves: its ghost fades out, and the sixth far reader comes back.
    let gone = near.id.clone();
    near.close();
    browser
        .wait_for(
            "the neighbour gone",
            &format!("!document.querySelector('[data-ghost=\"{gone}\"]')"),
        )
        .await;
    browser
        .wait_for("the sixth far one back", &neighbour(&far[5].id))
        .await;
    let flashes = browser.js("return window.__flashes", vec![]).await;
    assert_eq!(
        flashes,
        serde_json::json!([]),
        "never more than six, never a stray ghost"
    );
    let shown = browser
        .js(&format!("return {SHOWN_GHOSTS}.length"), vec![])
        .await;
    assert_eq!(shown, 6);
    assert!(console_errors(&browser, &[]).await.is_empty());
    browser.close().await;
}
