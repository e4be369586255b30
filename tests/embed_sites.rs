//! Ghosts on blogs ghostread does not serve, for real: a Hugo site and a
//! Jekyll site (Debian's `hugo` and `jekyll`), built by the test from
//! `tests/sites/`, with the one script tag added as each generator's users
//! add things (a partial, an include), served by nginx on origins of their
//! own with a Content-Security-Policy that names ghostread, and read in
//! Chromium. The readers see each other at the right paragraph at two
//! widths, a reload keeps the ghost, a closed tab's ghost goes, a crowd
//! shows bands, a site that is not allowed gets no ghosts and the log says
//! why, the console stays clean, and axe-core finds nothing serious.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::axe;
use common::binary::Running;
use common::browser::{block_in, console_errors, Browser, Driver, ONE_AT_A_TIME};
use common::nginx::{free_port, Sites};
use common::{post, TempDir};
use serde_json::json;

/// A JavaScript expression: the embed's shadow root, or null.
const SHADOW: &str =
    "(document.querySelector('#ghostread-embed') && document.querySelector('#ghostread-embed').shadowRoot)";

/// This reader's own ghost's id, once the embed has drawn it.
fn own_id_js() -> String {
    format!("({SHADOW} && {SHADOW}.querySelector('[data-self]') && {SHADOW}.querySelector('[data-self]').dataset.ghost) || null")
}

/// Whether the ghost `id` is drawn for another reader.
fn shows(id: &str) -> String {
    format!("!!({SHADOW} && {SHADOW}.querySelector('[data-ghost=\"{id}\"]:not([data-self])'))")
}

/// The block (as the embed numbered them) ghost `id` is drawn beside, or -1.
fn block_of(id: &str) -> String {
    block_in(SHADOW, "ghostread-block", id)
}

async fn own_id(browser: &Browser) -> String {
    browser
        .wait_for("the embed draws this reader's ghost", &own_id_js())
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Scrolls so the reading line (a third down) is in the middle of block `i`.
async fn read_block(browser: &Browser, i: usize) {
    browser
        .js(
            "const el = document.querySelector('[data-ghostread-block=\"' + arguments[0] + '\"]');
             const r = el.getBoundingClientRect();
             window.scrollTo(0, r.top + window.scrollY + r.height * 0.5 - window.innerHeight / 3);",
            vec![json!(i)],
        )
        .await;
}

async fn close_tab(browser: Browser) {
    browser.goto("about:blank").await;
    browser.close().await;
}

/// The Hugo site built for `site` (its origin), its script from `ghostread`.
fn build_hugo(out: &Path, site: &str, ghostread: &str) {
    let source = TempDir::new("hugo-source");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sites/hugo"),
        source.path(),
    );
    let status = Command::new("hugo")
        .env("HUGO_PARAMS_GHOSTREAD", ghostread)
        .args(["--quiet", "--source"])
        .arg(source.path())
        .arg("--destination")
        .arg(out)
        .args(["--baseURL", &format!("{site}/")])
        .status()
        .expect("run hugo (apt-get install hugo, or run bash .ci/test)");
    assert!(status.success(), "hugo built the site");
}

/// The Jekyll site built for `site`, its script from `ghostread`.
fn build_jekyll(out: &Path, site: &str, ghostread: &str) {
    let source = TempDir::new("jekyll-source");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sites/jekyll"),
        source.path(),
    );
    let extra = source.path().join("_test.yml");
    std::fs::write(
        &extra,
        format!("url: \"{site}\"\nghostread: \"{ghostread}\"\nexclude: [_test.yml]\n"),
    )
    .expect("the test's config");
    let configs = format!(
        "{},{}",
        source.path().join("_config.yml").display(),
        extra.display()
    );
    let status = Command::new("jekyll")
        .args(["build", "--quiet", "--disable-disk-cache", "--source"])
        .arg(source.path())
        .arg("--destination")
        .arg(out)
        .args(["--config", &configs])
        .status()
        .expect("run jekyll (apt-get install jekyll, or run bash .ci/test)");
    assert!(status.success(), "jekyll built the site");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a folder");
    for entry in std::fs::read_dir(from).expect("the site's source") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_hugo_and_a_jekyll_blog_see_each_other_and_other_sites_get_none() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (hugo_port, jekyll_port, stranger_port) = (free_port(), free_port(), free_port());
    let hugo = format!("http://127.0.0.1:{hugo_port}");
    let jekyll = format!("http://127.0.0.1:{jekyll_port}");
    let stranger = format!("http://127.0.0.1:{stranger_port}");

    let posts = TempDir::new("posts");
    posts.write("p.md", post("P", "2025-01-01", "One."));
    let data = TempDir::new("data");
    let origins = format!("{hugo},{jekyll}");
    let mut server =
        Running::serve_with(&posts, &data, &["--embed-origin", &origins, "--crowd", "3"]);
    let addr = server.addr();
    let ghostread = format!("http://{addr}");

    let built = TempDir::new("sites");
    build_hugo(&built.path().join("hugo"), &hugo, &ghostread);
    build_jekyll(&built.path().join("jekyll"), &jekyll, &ghostread);
    build_hugo(&built.path().join("stranger"), &stranger, &ghostread);
    // What a site using ghostread must allow: its script and its requests.
    let csp = format!(
        "default-src 'self'; script-src 'self' {ghostread}; connect-src 'self' {ghostread}"
    );
    let _sites = Sites::serve(
        &[
            (hugo_port, &built.path().join("hugo")),
            (jekyll_port, &built.path().join("jekyll")),
            (stranger_port, &built.path().join("stranger")),
        ],
        &csp,
    )
    .await;

    let driver = Driver::start().await;
    let hugo_post = format!("{hugo}/posts/first/");
    let first = driver.browser(1280, 900).await;
    first.goto(&hugo_post).await;
    let first_id = own_id(&first).await;
    let second = driver.browser(1280, 900).await;
    second.goto(&hugo_post).await;
    let second_id = own_id(&second).await;
    first
        .wait_for("the second reader's ghost", &shows(&second_id))
        .await;
    second
        .wait_for("the first reader's ghost", &shows(&first_id))
        .await;

    // At the right paragraph, wide and (the window made narrow) narrow.
    read_block(&second, 8).await;
    first
        .wait_for(
            "the second reader at block 8",
            &format!("{} === 8", block_of(&second_id)),
        )
        .await;
    // A picture of it, for people to look at (target/ghostread-screenshots).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ghostread-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join("embed-hugo.png"), first.screenshot().await).expect("write screenshot");
    first
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await;
    first
        .wait_for(
            "the second reader still at block 8, narrow",
            &format!("{} === 8", block_of(&second_id)),
        )
        .await;
    read_block(&second, 4).await;
    first
        .wait_for(
            "the second reader at block 4, narrow",
            &format!("{} === 4", block_of(&second_id)),
        )
        .await;

    // A reload keeps the ghost.
    second.client.refresh().await.expect("reload");
    assert_eq!(
        own_id(&second).await,
        second_id,
        "the reload resumed the ghost"
    );
    first
        .wait_for("the resumed ghost", &shows(&second_id))
        .await;

    // Nothing on the page broke: no console error, nothing axe finds serious.
    for browser in [&first, &second] {
        let errors = console_errors(browser, &[]).await;
        assert!(errors.is_empty(), "the host page's console: {errors:?}");
    }
    let violations = axe::serious_violations(&second, &axe::source()).await;
    assert!(
        violations.is_empty(),
        "axe on the Hugo page: {violations:?}"
    );

    // A crowd (over --crowd 3): bands instead of ghosts.
    let slug = first
        .js(
            "return document.querySelector('#ghostread-embed').dataset.slug;",
            vec![],
        )
        .await;
    let slug = slug.as_str().expect("the page's slug").to_string();
    let mut crowd = Vec::new();
    for _ in 0..3 {
        crowd.push(common::sse::open(addr, &slug).await);
    }
    first
        .wait_for(
            "bands for a crowd",
            &format!("!!({SHADOW}.querySelector('.ghost-density:not([hidden])'))"),
        )
        .await;
    drop(crowd);

    // The tab closes; its ghost goes within a second.
    close_tab(second).await;
    let closed = Instant::now();
    first
        .wait_for_within(
            "the closed tab's ghost gone",
            &format!("!{}", shows(&second_id)),
            Duration::from_secs(1),
        )
        .await;
    println!("a closed tab's ghost gone after {:?}", closed.elapsed());

    // Jekyll: two readers meet there too.
    let jekyll_post = format!("{jekyll}/2025/01/01/read-together.html");
    let third = driver.browser(1280, 900).await;
    third.goto(&jekyll_post).await;
    let third_id = own_id(&third).await;
    first.goto(&jekyll_post).await;
    first
        .wait_for("the Jekyll reader's ghost", &shows(&third_id))
        .await;
    read_block(&third, 6).await;
    first
        .wait_for(
            "the Jekyll reader at block 6",
            &format!("{} === 6", block_of(&third_id)),
        )
        .await;
    let errors = console_errors(&third, &[]).await;
    assert!(errors.is_empty(), "the Jekyll page's console: {errors:?}");

    // A site that is not allowed: its page stays as it is, with no ghosts,
    // and the server's log says why.
    third.goto(&format!("{stranger}/posts/first/")).await;
    let stranger_origin = stranger.clone();
    let line = tokio::task::spawn_blocking(move || {
        server.wait_for_line(&format!("refused a request from {stranger_origin}"))
    })
    .await
    .expect("the log");
    assert!(line.contains("--embed-origin"), "{line}");
    let embedded = third
        .js(
            "return !!document.querySelector('#ghostread-embed');",
            vec![],
        )
        .await;
    assert_eq!(
        embedded,
        json!(false),
        "no ghosts on a site that is not allowed"
    );

    first.close().await;
    third.close().await;
}
