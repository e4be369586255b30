//! What an author and an operator expect of a blog engine: a feed, a
//! sitemap and robots.txt, link previews, highlighted code, tags, counts
//! for other sites, and logs a shipper can read.

mod common;

use common::binary::Running;
use common::{get, post, sample_blog, start_server, TempDir, TestServer};

/// A small blog: two published posts (one tagged, one with code and a
/// figure) and a draft.
fn blog() -> TempDir {
    let posts = TempDir::new("posts");
    posts.write(
        "code.md",
        "---\ntitle: Code & <things>\ndate: 2026-03-01\nsummary: Some Rust.\ntags: rust, Live Presence\n---\n\
         Intro.\n\n![A map](/web/img/map.svg \"The map\")\n\n```rust\nfn main() {\n    let x = \"hi\"; // say\n}\n```\n\n- [x] done\n- [ ] to do\n",
    );
    posts.write(
        "older.md",
        post("Older", "2025-12-24", "Words.\n\n## A section\n\nMore."),
    );
    posts.write(
        "secret.md",
        "---\ntitle: Secret\ndate: 2026-04-01\ndraft: true\ntags: rust\n---\nNot yet.\n",
    );
    posts
}

/// The sample blog, told its public address (`--base-url`).
async fn blog_at_its_address() -> TestServer {
    start_server(blog(), |c| {
        c.base_url = Some("https://blog.example.com".into());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_atom_listing_exactly_the_published_posts() {
    let server = blog_at_its_address().await;
    let answer = get(server.addr, "/feed.xml").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    let text = answer.text();
    let feed = roxmltree::Document::parse(&text).expect("the feed is well-formed XML");
    let root = feed.root_element();
    assert_eq!(root.tag_name().name(), "feed");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2005/Atom")
    );
    let child = |node: roxmltree::Node, name: &str| {
        node.children()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text().map(str::to_string))
    };
    for required in ["id", "title", "updated"] {
        assert!(child(root, required).is_some(), "feed has <{required}>");
    }
    let entries: Vec<roxmltree::Node> = root
        .children()
        .filter(|n| n.tag_name().name() == "entry")
        .collect();
    let titles: Vec<String> = entries.iter().filter_map(|e| child(*e, "title")).collect();
    assert_eq!(
        titles,
        ["Code & <things>", "Older"],
        "newest first, no draft"
    );
    let first = entries[0];
    assert_eq!(
        child(first, "id").as_deref(),
        Some("https://blog.example.com/posts/code")
    );
    let link = first
        .children()
        .find(|n| n.tag_name().name() == "link")
        .and_then(|n| n.attribute("href"));
    assert_eq!(link, Some("https://blog.example.com/posts/code"));
    let content = child(first, "content").expect("full content");
    assert!(content.contains("hl-"), "the content as the page has it");
    assert!(first
        .children()
        .any(|n| n.attribute("term") == Some("live-presence")));

    // Every page says where the feed is.
    for page in ["/", "/posts/older"] {
        let html = get(server.addr, page).await.text();
        assert!(
            html.contains("<link rel=\"alternate\" type=\"application/atom+xml\" title=\"ghostread\" href=\"/feed.xml\">"),
            "{page}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sitemap_and_robots_answer_and_name_each_other() {
    let server = blog_at_its_address().await;
    let sitemap = get(server.addr, "/sitemap.xml").await;
    assert_eq!(sitemap.status, 200);
    let text = sitemap.text();
    let document = roxmltree::Document::parse(&text).expect("well-formed XML");
    let locations: Vec<&str> = document
        .descendants()
        .filter(|n| n.tag_name().name() == "loc")
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(
        locations,
        [
            "https://blog.example.com/",
            "https://blog.example.com/posts/code",
            "https://blog.example.com/posts/older",
            "https://blog.example.com/tags/live-presence",
            "https://blog.example.com/tags/rust",
        ],
        "no draft"
    );
    let robots = get(server.addr, "/robots.txt").await;
    assert_eq!(robots.status, 200);
    assert!(robots
        .text()
        .contains("Sitemap: https://blog.example.com/sitemap.xml"));
    assert!(robots.text().contains("Disallow: /posts/*/events"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_has_link_preview_cards_highlighted_code_and_tag_pages() {
    let server = blog_at_its_address().await;
    let html = get(server.addr, "/posts/code").await.text();
    let head = html.split("</head>").next().expect("a head");
    for card in [
        "<meta property=\"og:type\" content=\"article\">",
        "<meta property=\"og:title\" content=\"Code &amp; &lt;things&gt;\">",
        "<meta property=\"og:description\" content=\"Some Rust.\">",
        "<meta property=\"og:url\" content=\"https://blog.example.com/posts/code\">",
        "<meta property=\"og:image\" content=\"https://blog.example.com/web/img/map.svg\">",
        "<meta name=\"twitter:card\" content=\"summary_large_image\">",
        "<link rel=\"canonical\" href=\"https://blog.example.com/posts/code\">",
    ] {
        assert!(head.contains(card), "{card} in {head}");
    }
    // The Rust block, coloured by classes on the server.
    assert!(html.contains("<code class=\"language-rust\">"), "{html}");
    assert!(html.contains("<span class=\"hl-storage hl-type hl-function hl-rust\">fn</span>"));
    assert!(html.contains("hl-comment"));
    assert!(
        !html.contains("style=\"color"),
        "classes, not inline colours"
    );
    // Task boxes say what they show.
    assert!(html.contains("aria-label=\"done\""));
    assert!(html.contains("aria-label=\"not done\""));
    // Tags: on the post, on the index, and a page each (drafts left out).
    assert!(html.contains("<a href=\"/tags/live-presence\" rel=\"tag\">#live-presence</a>"));
    assert!(get(server.addr, "/")
        .await
        .text()
        .contains("href=\"/tags/rust\""));
    let tag = get(server.addr, "/tags/rust").await;
    assert_eq!(tag.status, 200);
    assert!(tag.text().contains("href=\"/posts/code\""));
    assert!(!tag.text().contains("Secret"), "no draft on a tag page");
    assert_eq!(get(server.addr, "/tags/nothing").await.status, 404);
    assert_eq!(get(server.addr, "/tags/..%2f").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_base_url_links_stay_relative_and_the_log_says_so() {
    let posts = blog();
    let data = TempDir::new("data");
    let mut server = Running::serve(&posts, &data);
    let warning = server.wait_for_line("no --base-url");
    assert!(warning.contains("--base-url https://"), "{warning}");
    let addr = server.addr();
    let feed = get(addr, "/feed.xml").await.text();
    assert!(feed.contains("href=\"/posts/code\""));
    roxmltree::Document::parse(&feed).expect("still well-formed");
    let html = get(addr, "/posts/code").await.text();
    assert!(
        !html.contains("og:url"),
        "og:url must be absolute; left out"
    );
    assert!(!get(addr, "/robots.txt").await.text().contains("\nSitemap:"));
    server.terminate();
    server.wait_exit(std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_sites_can_read_every_posts_counts() {
    let server = start_server(blog(), |_| {}).await;
    let reader = common::sse::open(server.addr, "older").await;
    let answer = get(server.addr, "/api/posts").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json = answer.json();
    let posts = json["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 2, "listed posts only: {json}");
    let older = posts.iter().find(|p| p["slug"] == "older").expect("older");
    assert_eq!(older["url"], "/posts/older");
    common::wait_until("the reader counts", || async {
        get(server.addr, "/api/posts").await.json()["posts"][1]["now"] == 1
    })
    .await;
    // The preflight a browser sends, and read-only.
    let preflight = common::send(
        server.addr,
        "OPTIONS /api/posts HTTP/1.1\r\nhost: t\r\norigin: https://elsewhere.example\r\naccess-control-request-method: GET\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("GET")));
    let write = common::send(
        server.addr,
        "POST /api/posts HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(write.status, 405);
    drop(reader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_and_text_logs_have_no_colour_codes() {
    let posts = sample_blog();
    let data = TempDir::new("data");
    let mut json = Running::serve_with(&posts, &data, &["--log-format", "json", "--log", "debug"]);
    let addr = json.addr();
    assert_eq!(get(addr, "/healthz").await.status, 200);
    json.wait_for_line("\"path\":\"/healthz\"");
    json.terminate();
    json.wait_exit(std::time::Duration::from_secs(10));
    let lines = json.all_lines();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }

    // Text logs to a pipe (not a terminal), even without NO_COLOR: no escapes.
    let data = TempDir::new("data");
    let mut text = Running::serve_coloured(&posts, &data);
    let addr = text.addr();
    let metrics = get(addr, "/metrics").await.text();
    assert!(metrics.contains(&format!(
        "ghostread_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    text.terminate();
    text.wait_exit(std::time::Duration::from_secs(10));
    for line in text.all_lines() {
        assert!(!line.contains('\u{1b}'), "an escape code in {line:?}");
    }
}
