//! Faults: kill -9 in the middle of saving, a data folder that refuses
//! writes, SIGTERM with ten thousand readers, a post deleted under its
//! readers. The goal in each: nothing lost that was promised.

mod common;

use std::time::{Duration, Instant};

use common::binary::Running;
use common::sse::{metric, open, open_from, source};
use common::{one_post, post, start_server, wait_until, TempDir};

/// Reads counts.json as the server left it: it must always be a whole,
/// valid file (or not exist yet).
fn saved_total(data: &TempDir, slug: &str) -> Option<u64> {
    let text = std::fs::read_to_string(data.path().join("counts.json")).ok()?;
    let file: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("counts.json is torn ({e}): {text:?}"));
    assert_eq!(file["version"], 1, "{text}");
    Some(file["totals"][slug].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_saving_always_leaves_a_valid_file() {
    let posts = TempDir::new("posts");
    posts.write("p.md", post("P", "2025-01-01", "Text."));
    let data = TempDir::new("data");
    let mut joined = 0u64;
    let mut last_saved = 0u64;
    for round in 0..12u64 {
        // Saves as often as the counts change: every join, every millisecond.
        let mut server = Running::serve_with(&posts, &data, &["--save-interval-ms", "1"]);
        let addr = server.addr();
        let until = Instant::now() + Duration::from_millis(100 + round * 23 % 150);
        let mut readers = Vec::new();
        while Instant::now() < until {
            readers.push(open(addr, "p").await);
            joined += 1;
        }
        server.child.kill().expect("kill -9");
        let _ = server.child.wait();
        let saved = saved_total(&data, "p").unwrap_or(0);
        assert!(
            saved <= joined,
            "never more than really joined: {saved} > {joined}"
        );
        assert!(
            saved >= last_saved,
            "never backwards: {saved} < {last_saved}"
        );
        last_saved = saved;
    }
    let leftovers: Vec<String> = std::fs::read_dir(data.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "counts.json")
        .collect();
    assert!(
        leftovers.len() <= 1,
        "at most the last cut-short temp file remains: {leftovers:?}"
    );
    assert!(last_saved > 0, "saves happened between the kills");
    println!("12 kills: {joined} readers joined, {last_saved} saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_that_refuses_writes_keeps_counts_in_memory_and_saves_later() {
    let server = start_server(one_post(3), |c| c.save_interval = Duration::from_millis(20)).await;
    // The counts file's path is taken by a folder: every save fails at its
    // rename, as on a full or read-only disk (root ignores permissions).
    let blocker = server.data.path().join("counts.json");
    std::fs::create_dir_all(&blocker).expect("block saves");
    let _readers = [open(server.addr, "p").await, open(server.addr, "p").await];
    wait_until("a save failed", || async {
        metric(server.addr, "ghostread_counts_save_errors_total").await >= 1.0
    })
    .await;
    // Still serving, still counting.
    assert_eq!(common::get(server.addr, "/posts/p").await.status, 200);
    let third = open(server.addr, "p").await;
    assert_eq!(third.state.data["total"], 3);

    std::fs::remove_dir(&blocker).expect("unblock saves");
    wait_until("the counts reach the disk", || async {
        std::fs::read_to_string(server.data.path().join("counts.json"))
            .is_ok_and(|t| t.contains("\"p\": 3"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_ten_thousand_open_streams_closes_them_all_saves_and_exits_within_five_seconds(
) {
    let posts = TempDir::new("posts");
    for n in 0..200 {
        posts.write(&format!("p{n}.md"), post("P", "2025-01-01", "Text."));
    }
    let data = TempDir::new("data");
    let mut server = Running::serve(&posts, &data);
    let addr = server.addr();
    let mut opening = tokio::task::JoinSet::new();
    for worker in 0..20 {
        opening.spawn(async move {
            let mut readers = Vec::new();
            for i in 0..500 {
                let n = worker * 500 + i;
                readers.push(open_from(addr, &format!("p{}", n % 200), source(n)).await);
            }
            readers
        });
    }
    let mut readers = Vec::new();
    while let Some(batch) = opening.join_next().await {
        readers.extend(batch.expect("opening streams"));
    }
    assert_eq!(readers.len(), 10_000);
    assert_eq!(metric(addr, "ghostread_streams_open").await, 10_000.0);

    server.terminate();
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    for reader in &mut readers {
        reader.wait_closed().await;
    }
    for n in 0..200 {
        assert_eq!(saved_total(&data, &format!("p{n}")), Some(50), "p{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_deleted_under_its_readers_keeps_them_connected_and_404s_for_new_ones() {
    let server = start_server(one_post(3), |c| c.heartbeat = Duration::from_millis(200)).await;
    let mut reader = open(server.addr, "p").await;
    std::fs::remove_file(server.posts.path().join("p.md")).expect("delete the post");
    wait_until("the page is gone", || async {
        common::get(server.addr, "/posts/p").await.status == 404
    })
    .await;
    assert_eq!(
        common::sse::open_with(server.addr, "/posts/p/events", "")
            .await
            .err()
            .map(|r| r.status),
        Some(404)
    );
    // The reader is still connected: its stream keeps beating.
    assert_eq!(reader.wait_comment().await, "ping");
    assert_eq!(metric(server.addr, "ghostread_ghosts").await, 1.0);
}
