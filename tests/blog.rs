//! The blog as a reader sees it: the index, post pages with block markers,
//! drafts, broken post files, and posts changing on disk while it runs.

mod common;

use common::{get, post, start_server, wait_until, TempDir};

fn blocks_in(html: &str) -> (u32, Vec<u32>) {
    let declared = html
        .split("data-blocks=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("the article declares data-blocks");
    let markers = html
        .split("data-block=\"")
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("numeric data-block")
        })
        .collect();
    (declared, markers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_lists_published_posts_newest_first_with_summary_and_reading_time() {
    let posts = TempDir::new("posts");
    posts.write(
        "older.md",
        "---\ntitle: Older post\ndate: 2024-01-01\nsummary: The first one.\n---\nHello.\n",
    );
    posts.write("newer.md", post("Newer post", "2025-06-30", "Hi."));
    posts.write(
        "secret.md",
        "---\ntitle: Secret draft\ndate: 2026-01-01\ndraft: true\n---\nWIP.\n",
    );
    let server = start_server(posts, |_| {}).await;

    let index = get(server.addr, "/").await;
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = index.text();
    let newer = html.find("Newer post").expect("newer post listed");
    let older = html.find("Older post").expect("older post listed");
    assert!(newer < older, "newest first");
    assert!(html.contains("href=\"/posts/newer\""));
    assert!(html.contains("The first one."), "summary shown");
    assert!(html.contains("1 January 2024"), "date shown for people");
    assert!(html.contains("1 min read"), "reading time shown");
    assert!(
        !html.contains("Secret draft"),
        "drafts are hidden from the index"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_are_reachable_by_url() {
    let posts = TempDir::new("posts");
    posts.write(
        "secret.md",
        "---\ntitle: Secret draft\ndate: 2026-01-01\ndraft: true\n---\nWIP.\n",
    );
    let server = start_server(posts, |_| {}).await;
    let page = get(server.addr, "/posts/secret").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Secret draft"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_of_the_article_is_marked_and_counted() {
    let posts = TempDir::new("posts");
    posts.write(
        "blocks.md",
        post("Blocks", "2025-01-01", "# One\n\npara\n\n- a\n- b\n\n```\ncode\n```\n\n> quote\n\n|a|\n|-|\n|1|\n\n---\n\n![fig](/web/favicon.svg)"),
    );
    let server = start_server(posts, |_| {}).await;
    let page = get(server.addr, "/posts/blocks").await;
    let (declared, markers) = blocks_in(&page.text());
    assert_eq!(declared, 8);
    assert_eq!(markers, (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_blog_has_a_long_read_with_every_kind_of_block() {
    let posts = common::sample_blog();
    let server = start_server(posts, |_| {}).await;
    let index = get(server.addr, "/").await.text();
    let listed = index.matches("<li data-slug=").count();
    assert!(
        (4..=6).contains(&listed),
        "4–6 sample posts, found {listed}"
    );

    let long = get(server.addr, "/posts/one-task-to-own-them-all").await;
    assert_eq!(long.status, 200);
    let html = long.text();
    let (declared, markers) = blocks_in(&html);
    assert!(declared >= 40, "the long read has {declared} blocks");
    assert_eq!(markers.len() as u32, declared);
    let source =
        std::fs::read_to_string(common::sample_posts().join("one-task-to-own-them-all.md"))
            .expect("read");
    assert!(
        source.split_whitespace().count() >= 3000,
        "the long read has 3,000+ words"
    );
    for kind in [
        "<h2",
        "<pre",
        "<ul",
        "<ol",
        "<table",
        "<blockquote",
        "<figure",
        "<figcaption",
    ] {
        assert!(html.contains(kind), "the long read has {kind}");
    }
    assert!(
        html.contains("Total readers: <span data-total>"),
        "footer has the total slot"
    );
    assert!(
        html.contains("reading now"),
        "footer has the reading-now slot"
    );
    assert!(
        html.contains("data-ghost-lane"),
        "the page has a lane for ghosts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_posts_get_the_404_page() {
    let server = start_server(TempDir::new("posts"), |_| {}).await;
    for path in [
        "/posts/nope",
        "/posts/UPPER",
        "/posts/a.b",
        "/posts/..",
        "/nothing/here",
        "/posts/a%2fb",
    ] {
        let page = get(server.addr, path).await;
        assert_eq!(page.status, 404, "{path}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert!(page.text().contains("Nothing here"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_post_files_are_skipped_and_the_rest_are_served() {
    let posts = TempDir::new("posts");
    posts.write("good.md", post("Good", "2025-01-01", "Fine."));
    posts.write("no-front-matter.md", "# Just markdown\n");
    posts.write("no-title.md", "---\ndate: 2025-01-01\n---\nx\n");
    posts.write(
        "bad-date.md",
        "---\ntitle: Bad date\ndate: 2025-02-30\n---\nx\n",
    );
    posts.write(
        "not-utf8.md",
        b"---\ntitle: \xff\xfe\ndate: 2025-01-01\n---\n".as_slice(),
    );
    posts.write("Bad_Name.md", post("Bad name", "2025-01-01", "x"));
    posts.write("notes.txt", "not a post");
    let server = start_server(posts, |_| {}).await;
    assert_eq!(get(server.addr, "/posts/good").await.status, 200);
    for slug in ["no-front-matter", "no-title", "bad-date", "not-utf8"] {
        assert_eq!(
            get(server.addr, &format!("/posts/{slug}")).await.status,
            404,
            "{slug}"
        );
    }
    let index = get(server.addr, "/").await.text();
    assert!(index.contains("Good") && !index.contains("Bad date") && !index.contains("Bad name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_editing_and_deleting_posts_shows_up_without_a_restart() {
    let server = start_server(TempDir::new("posts"), |_| {}).await;
    let addr = server.addr;

    server.posts.write(
        "fresh.md",
        post("Fresh post", "2025-01-01", "First version."),
    );
    wait_until("the new post is served", || async {
        get(addr, "/posts/fresh").await.status == 200
    })
    .await;
    wait_until("the index lists it", || async {
        get(addr, "/").await.text().contains("Fresh post")
    })
    .await;

    server.posts.write(
        "fresh.md",
        post(
            "Fresh post, edited",
            "2025-01-01",
            "Second version, longer.",
        ),
    );
    wait_until("the edit is served", || async {
        get(addr, "/posts/fresh")
            .await
            .text()
            .contains("Second version")
    })
    .await;
    assert!(get(addr, "/").await.text().contains("Fresh post, edited"));

    // Half-saved: the front matter is cut off. The last good version stays.
    server.posts.write("fresh.md", "---\ntitle: Fresh");
    server.posts.write(
        "marker.md",
        post("Marker", "2025-01-01", "Proves a scan happened."),
    );
    wait_until("the next scan ran", || async {
        get(addr, "/posts/marker").await.status == 200
    })
    .await;
    assert!(
        get(addr, "/posts/fresh")
            .await
            .text()
            .contains("Second version"),
        "a broken edit keeps the post up"
    );

    std::fs::remove_file(server.posts.path().join("fresh.md")).expect("delete post");
    wait_until("the deleted post is gone", || async {
        get(addr, "/posts/fresh").await.status == 404
    })
    .await;
    assert!(!get(addr, "/").await.text().contains("Fresh post"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_posts_folder_is_a_clear_start_up_error() {
    let missing = TempDir::new("gone");
    let config = ghostread::Config {
        posts_dir: missing.path().join("nope"),
        ..ghostread::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = ghostread::serve(config, listener, async {})
        .await
        .expect_err("no posts folder");
    assert!(error.to_string().contains("--posts"), "{error}");
}
