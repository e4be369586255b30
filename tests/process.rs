//! The `ghostread` binary as an operator runs it: flags, start-up warnings,
//! and SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::binary::{Running, BIN};
use common::{get, post, TempDir};

#[test]
fn help_explains_every_flag_and_its_default() {
    let output = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--addr",
        "--posts",
        "--data",
        "--web",
        "[default: 127.0.0.1:4000]",
        "GHOSTREAD_ADDR",
        "GHOSTREAD_POSTS",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_warns_once_per_bad_post_naming_the_file_and_the_fix() {
    let posts = TempDir::new("posts");
    posts.write("good.md", post("Good", "2025-01-01", "Fine."));
    posts.write("undated.md", "---\ntitle: Undated\n---\nx\n");
    posts.write("Bad Name.md", post("Bad", "2025-01-01", "x"));
    let data = TempDir::new("data");
    let mut server = Running::serve(&posts, &data);
    let undated = server.wait_for_line("undated.md");
    assert!(
        undated.contains("WARN") && undated.contains("date: ..."),
        "{undated}"
    );
    let bad_name = server.wait_for_line("Bad Name.md");
    assert!(bad_name.contains("lowercase letters"), "{bad_name}");
    let listening = server.wait_for_line("listening on");
    assert!(listening.contains("1 posts"), "{listening}");
    let addr = server.addr();
    assert_eq!(get(addr, "/posts/good").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly_within_five_seconds() {
    let posts = TempDir::new("posts");
    posts.write("p.md", post("P", "2025-01-01", "Text."));
    let data = TempDir::new("data");
    let mut server = Running::serve(&posts, &data);
    let addr = server.addr();
    assert_eq!(get(addr, "/posts/p").await.status, 200);
    // An idle keep-alive connection must not hold the shutdown up.
    let _idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    server.wait_for_line("ghostread stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_last_second_of_counts() {
    let posts = TempDir::new("posts");
    posts.write("p.md", post("P", "2025-01-01", "Text."));
    let data = TempDir::new("data");
    let mut server = Running::serve(&posts, &data);
    let addr = server.addr();
    let _readers = [
        common::sse::open(addr, "p").await,
        common::sse::open(addr, "p").await,
    ];
    // Saved within about a second, with no shutdown to trigger it.
    let counts = data.path().join("counts.json");
    common::wait_until("the counts reach the disk", || async {
        std::fs::read_to_string(&counts).is_ok_and(|text| text.contains("\"p\": 2"))
    })
    .await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();

    let mut again = Running::serve(&posts, &data);
    let addr = again.addr();
    let reader = common::sse::open(addr, "p").await;
    assert_eq!(reader.state.data["total"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_that_start_failing_later_are_logged_once_and_so_is_the_recovery() {
    let posts = TempDir::new("posts");
    posts.write("p.md", post("P", "2025-01-01", "Text."));
    let data = TempDir::new("data");
    let mut server = Running::serve_with(&posts, &data, &["--save-interval-ms", "20"]);
    let addr = server.addr();
    let counts = data.path().join("counts.json");
    let saved = |n: u32| {
        let counts = counts.clone();
        async move { std::fs::read_to_string(&counts).is_ok_and(|t| t.contains(&format!("\"p\": {n}"))) }
    };
    let _first = common::sse::open(addr, "p").await;
    common::wait_until("a first save", || saved(1)).await;
    // Now the counts file's path is taken by a folder: every save fails at
    // its rename, as a full or read-only disk would refuse it (root ignores
    // permissions).
    let blocker = data.path().join("counts.json");
    std::fs::remove_file(&blocker).expect("the first save's file");
    std::fs::create_dir_all(&blocker).expect("block saves");
    let _second = common::sse::open(addr, "p").await;
    common::wait_until("several saves failed", || async {
        common::sse::metric(addr, "ghostread_counts_save_errors_total").await >= 3.0
    })
    .await;
    server.wait_for_line("cannot save the reader counts");
    std::fs::remove_dir(&blocker).expect("unblock saves");
    server.wait_for_line("the reader counts are saved in");
    common::wait_until("the counts reach the disk", || saved(2)).await;
    let warnings = server.lines_containing("cannot save the reader counts");
    assert_eq!(warnings, 1, "one warning for the run of failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_thousand_open_streams_exits_within_five_seconds_and_saves() {
    // A thousand readers over twenty posts, as on a real blog.
    let posts = TempDir::new("posts");
    for n in 0..20 {
        posts.write(&format!("p{n}.md"), post("P", "2025-01-01", "Text."));
    }
    let data = TempDir::new("data");
    let mut server = Running::serve(&posts, &data);
    let addr = server.addr();
    let mut opening = tokio::task::JoinSet::new();
    for worker in 0..10 {
        opening.spawn(async move {
            let mut readers = Vec::new();
            for i in 0..100 {
                let n = worker * 100 + i;
                let reader =
                    common::sse::open_from(addr, &format!("p{}", n % 20), common::sse::source(n))
                        .await;
                readers.push(reader);
            }
            readers
        });
    }
    let mut readers = Vec::new();
    while let Some(batch) = opening.join_next().await {
        readers.extend(batch.expect("opening streams"));
    }
    assert_eq!(readers.len(), 1000);
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    for reader in &mut readers {
        reader.wait_closed().await;
    }
    let saved = std::fs::read_to_string(data.path().join("counts.json")).expect("counts saved");
    for n in 0..20 {
        assert!(saved.contains(&format!("\"p{n}\": 50")), "{saved}");
    }
}
