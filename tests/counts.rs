//! Reader counts and limits: `total` survives restarts and corrupt files,
//! `now` is bounded by the reader limits, and shutdown ends every stream.

mod common;

use std::time::Duration;

use common::sse::{open, open_with};
use common::{one_post, start_server, start_server_with_data, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_survive_a_graceful_restart() {
    let server = start_server(one_post(3), |_| {}).await;
    let readers = [
        open(server.addr, "p").await,
        open(server.addr, "p").await,
        open(server.addr, "p").await,
    ];
    let (result, posts, data) = server.stop_keeping_folders().await;
    result.expect("clean stop");
    drop(readers);
    let saved =
        std::fs::read_to_string(data.path().join("counts.json")).expect("counts saved at shutdown");
    assert!(saved.contains("\"p\": 3"), "{saved}");

    let server = start_server_with_data(posts, data, |_| {}).await;
    let page = common::get(server.addr, "/posts/p").await.text();
    assert!(
        page.contains("Total readers: <span data-total>3</span>"),
        "the total survives"
    );
    let reader = open(server.addr, "p").await;
    assert_eq!(reader.state.data["total"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_counts_file_is_kept_aside_and_the_server_starts() {
    let data = TempDir::new("data");
    data.write("counts.json", "{\"version\":1,\"totals\":{\"p\":");
    let server = start_server_with_data(one_post(3), data, |_| {}).await;
    let reader = open(server.addr, "p").await;
    assert_eq!(reader.state.data["total"], 1, "counts start from zero");
    let kept: Vec<String> = std::fs::read_dir(server.data.path())
        .expect("list data")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("counts.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "the corrupt file is kept: {kept:?}");
    let aside = std::fs::read_to_string(server.data.path().join(&kept[0])).expect("read");
    assert_eq!(
        aside, "{\"version\":1,\"totals\":{\"p\":",
        "and never overwritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_folder_is_created() {
    let parent = TempDir::new("parent");
    let data_dir = parent.path().join("deep/data");
    let dir = data_dir.clone();
    let server = start_server(one_post(3), move |c| c.data_dir = dir).await;
    let _reader = open(server.addr, "p").await;
    server.stop().await.expect("clean stop");
    assert!(data_dir.join("counts.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_reader_limits_get_503_with_retry_after() {
    let posts = one_post(3);
    posts.write("q.md", common::post("Q", "2025-01-01", "Other."));
    let server = start_server(posts, |c| {
        c.max_readers_per_post = 2;
        c.max_readers = 3;
    })
    .await;
    let _p1 = open(server.addr, "p").await;
    let _p2 = open(server.addr, "p").await;
    let refused = open_with(server.addr, "/posts/p/events", "")
        .await
        .err()
        .expect("post full");
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    assert!(refused.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("This post")));

    let _q1 = open(server.addr, "q").await;
    let refused = open_with(server.addr, "/posts/q/events", "")
        .await
        .err()
        .expect("server full");
    assert_eq!(refused.status, 503);
    assert!(refused.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("The server")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_open_stream_and_saves_the_counts() {
    let server = start_server(one_post(3), |_| {}).await;
    let mut readers = Vec::new();
    for _ in 0..50 {
        readers.push(open(server.addr, "p").await);
    }
    let (result, _posts, data) =
        tokio::time::timeout(Duration::from_secs(5), server.stop_keeping_folders())
            .await
            .expect("serve returns within 5 s with streams open");
    result.expect("clean stop");
    for reader in &mut readers {
        reader.wait_closed().await;
    }
    let saved = std::fs::read_to_string(data.path().join("counts.json")).expect("counts saved");
    assert!(saved.contains("\"p\": 50"), "{saved}");
}
