//! The event stream as docs/PROTOCOL.md describes it, over real sockets: what a
//! reader receives, in what order, and what happens when streams end, resume,
//! take over, or fall behind.

mod common;

use std::time::Duration;

use common::sse::{metric, move_to, open, open_on, open_with, resume, ticket_for};
use common::{one_post, start_server, wait_until};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_starts_with_retry_hello_and_a_snapshot_that_holds_the_reader() {
    let server = start_server(one_post(12), |_| {}).await;
    let reader = open(server.addr, "p").await;
    assert_eq!(reader.header("content-type"), Some("text/event-stream"));
    assert_eq!(reader.header("cache-control"), Some("no-cache"));
    assert_eq!(reader.header("x-accel-buffering"), Some("no"));
    assert!(
        reader.header("content-encoding").is_none(),
        "never compressed"
    );
    assert_eq!(reader.hello.retry.as_deref(), Some("2000"));
    assert_eq!(
        reader.hello.id.as_deref(),
        Some(reader.token.as_str()),
        "hello's id: field is the token"
    );
    assert_eq!(reader.id.len(), 6);
    assert!(reader
        .id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let (issued_to, secret) = reader.token.split_once('-').expect("id-secret");
    assert_eq!(
        issued_to, reader.id,
        "the token names the ghost it was issued to"
    );
    assert_eq!(secret.len(), 32, "and has 128 secret bits as hex");
    assert!(reader.color.starts_with("rgba("));
    assert_eq!(reader.hello.data["blocks"], 12);
    let snapshot = &reader.state.data;
    assert_eq!(snapshot["now"], 1);
    assert_eq!(snapshot["total"], 1);
    assert_eq!(snapshot["ghosts"][0]["id"], reader.id.as_str());
    assert_eq!(snapshot["ghosts"][0]["pos"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_each_other_join_move_and_leave_in_order() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let mut a = open(addr, "p").await;
    let mut b = open(addr, "p").await;
    assert_eq!(
        b.state.data["ghosts"].as_array().map(Vec::len),
        Some(2),
        "b's snapshot holds a and b"
    );

    let (join, _) = a.wait_for("join", |_| true).await;
    assert_eq!(join.data["id"], b.id.as_str());
    assert_eq!(join.data["color"], b.color.as_str());
    let (readers, _) = a.wait_for("readers", |_| true).await;
    assert_eq!(
        (readers.data["now"].as_u64(), readers.data["total"].as_u64()),
        (Some(2), Some(2))
    );

    move_to(addr, "p", &b, 4.25).await;
    let (moves, skipped) = a.wait_for("moves", |_| true).await;
    assert!(skipped.is_empty(), "nothing between: {skipped:?}");
    assert_eq!(moves.data["moves"][0]["id"], b.id.as_str());
    assert_eq!(moves.data["moves"][0]["pos"], 4.25);

    // b never hears its own join: the first thing after its snapshot is a's move.
    move_to(addr, "p", &a, 1.5).await;
    let first = b.next_event().await.expect("an event");
    assert_eq!(first.name, "moves", "{first:?}");

    let b_id = b.id.clone();
    b.close();
    let (leave, skipped) =
        tokio::time::timeout(Duration::from_secs(1), a.wait_for("leave", |_| true))
            .await
            .expect("leave within 1 s of the connection closing");
    assert_eq!(leave.data["id"], b_id.as_str());
    assert!(skipped.iter().all(|e| e.name == "moves"), "{skipped:?}");
    let (readers, _) = a.wait_for("readers", |_| true).await;
    assert_eq!(
        (readers.data["now"].as_u64(), readers.data["total"].as_u64()),
        (Some(1), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_are_coalesced_to_one_entry_per_ghost_and_the_newest_wins() {
    let server = start_server(one_post(100), |c| c.tick = Duration::from_millis(50)).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;
    let movers = [open(addr, "p").await, open(addr, "p").await];
    for mover in &movers {
        for step in 1..=10 {
            move_to(addr, "p", mover, f64::from(step)).await;
        }
    }
    let mut last = std::collections::HashMap::new();
    while last.len() < 2 || last.values().any(|p| *p != 10.0) {
        let event = watcher.next_event().await.expect("event");
        if event.name != "moves" {
            continue;
        }
        let moves = event.data["moves"].as_array().expect("moves array");
        let mut ids: Vec<&str> = moves.iter().filter_map(|m| m["id"].as_str()).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            count,
            "at most one entry per ghost per event: {moves:?}"
        );
        for m in moves {
            last.insert(
                m["id"].as_str().unwrap_or_default().to_string(),
                m["pos"].as_f64().unwrap_or_default(),
            );
        }
    }
    assert!(
        metric(addr, "ghostread_moves_coalesced_total").await > 0.0,
        "some moves were coalesced away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_stream_alive() {
    let server = start_server(one_post(3), |c| c.heartbeat = Duration::from_millis(200)).await;
    let mut reader = open(server.addr, "p").await;
    assert_eq!(reader.wait_comment().await, "ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_reconnects_with_last_event_id_keeps_its_ghost_and_is_not_counted_again() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;
    let reader = open(addr, "p").await;
    move_to(addr, "p", &reader, 6.0).await;
    let (id, color, token) = (
        reader.id.clone(),
        reader.color.clone(),
        reader.token.clone(),
    );
    reader.close();
    watcher.wait_for("leave", |d| d["id"] == id.as_str()).await;

    let back = resume(addr, "p", &token).await;
    assert_eq!(
        (back.id.as_str(), back.color.as_str(), back.token.as_str()),
        (id.as_str(), color.as_str(), token.as_str())
    );
    assert_eq!(
        back.state.data["total"], 2,
        "a resumed stream is not a new reader"
    );
    let (join, _) = watcher.wait_for("join", |_| true).await;
    assert_eq!(
        (join.data["id"].as_str(), join.data["pos"].as_f64()),
        (Some(id.as_str()), Some(6.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_page_resumes_with_a_one_time_ticket_never_its_token_in_the_url() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let reader = open(addr, "p").await;
    let (id, token) = (reader.id.clone(), reader.token.clone());
    reader.close();
    wait_until("the ghost left", || async {
        metric(addr, "ghostread_ghosts").await == 0.0
    })
    .await;

    // The token itself in a URL (where proxies log it) resumes nothing.
    let in_url = open_with(addr, &format!("/posts/p/events?resume={token}"), "")
        .await
        .expect("200");
    assert_ne!(in_url.id, id, "a token in the URL is not taken");
    in_url.close();

    // The page asks for a ticket (the token in the body), and resumes with it.
    let ticket = ticket_for(addr, "p", &token).await;
    assert_ne!(ticket, token);
    let back = open_with(addr, &format!("/posts/p/events?resume={ticket}"), "")
        .await
        .expect("200");
    assert_eq!(back.id, id, "the ticket resumed the ghost");
    back.close();
    wait_until("the ghost left again", || async {
        metric(addr, "ghostread_ghosts").await == 0.0
    })
    .await;

    // A ticket is spent once used: the logged URL resumes nothing again.
    let replayed = open_with(addr, &format!("/posts/p/events?resume={ticket}"), "")
        .await
        .expect("200");
    assert_ne!(replayed.id, id, "a used ticket is worthless");

    // Bad ticket requests get clear errors.
    let bad = common::send(
        addr,
        "POST /posts/p/ticket HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_or_foreign_tokens_get_a_new_ghost() {
    let posts = one_post(3);
    posts.write("q.md", common::post("Q", "2025-01-01", "Other post."));
    let server = start_server(posts, |c| c.resume_window = Duration::from_millis(1)).await;
    let addr = server.addr;
    let forged = "k3x9q2-0123456789abcdef0123456789abcdef";
    let fresh = open_with(addr, &format!("/posts/p/events?resume={forged}"), "")
        .await
        .expect("200");
    assert_ne!(fresh.token, forged);

    let on_q = open(addr, "q").await;
    let foreign = resume(addr, "p", &on_q.token).await;
    assert_ne!(
        foreign.id, on_q.id,
        "a token from another post is not this post's ghost"
    );

    let (id, token) = (fresh.id.clone(), fresh.token.clone());
    fresh.close();
    // First the leave, then the expiry: checking only the parked count could
    // pass before the leave was even handled.
    wait_until("the ghost left and its token expired", || async {
        metric(addr, "ghostread_leaves_total").await == 1.0
            && metric(addr, "ghostread_parked_ghosts").await == 0.0
    })
    .await;
    let after = resume(addr, "p", &token).await;
    assert_ne!(after.id, id, "an expired token gets a new ghost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_stream_takes_over_without_leave_or_join_for_the_others() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;
    let mut old = open(addr, "p").await;
    watcher.wait_for("readers", |d| d["now"] == 2).await;

    let new = resume(addr, "p", &old.token).await;
    assert_eq!(new.id, old.id);
    old.wait_closed().await;
    move_to(addr, "p", &new, 3.0).await;
    let (moves, skipped) = watcher.wait_for("moves", |_| true).await;
    assert!(
        skipped.is_empty(),
        "no leave or join around a takeover: {skipped:?}"
    );
    assert_eq!(moves.data["moves"][0]["id"], new.id.as_str());
    assert_eq!(metric(addr, "ghostread_ghosts").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_the_stream_creates_no_ghost() {
    let server = start_server(one_post(3), |_| {}).await;
    let head = common::send(
        server.addr,
        "HEAD /posts/p/events HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        (head.status, head.header("content-type")),
        (200, Some("text/event-stream"))
    );
    assert_eq!(metric(server.addr, "ghostread_joins_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_for_an_unknown_post_is_a_json_404() {
    let server = start_server(one_post(3), |_| {}).await;
    let answer = open_with(server.addr, "/posts/nope/events", "")
        .await
        .err()
        .expect("refused");
    assert_eq!(answer.status, 404);
    assert!(answer.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("nope")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ghost_outlives_its_stream_after_a_thousand_connect_disconnect_cycles() {
    // A thousand streams from one address in a second or two: far over the
    // join rate limit, which is not what this test is about.
    let server = start_server(one_post(3), |c| c.joins_per_sec = 1_000_000).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;
    let mut cycles = tokio::task::JoinSet::new();
    for worker in 0..20 {
        cycles.spawn(async move {
            for i in 0..50 {
                let reader = open(addr, "p").await;
                if (worker + i) % 2 == 0 {
                    reader.close();
                } else {
                    // Half of them reset the connection instead of closing it.
                    let _ = reader;
                }
            }
        });
    }
    while let Some(done) = cycles.join_next().await {
        done.expect("a cycle worker panicked");
    }
    wait_until("every other ghost left", || async {
        metric(addr, "ghostread_ghosts").await == 1.0
            && metric(addr, "ghostread_streams_open").await == 1.0
    })
    .await;
    assert_eq!(metric(addr, "ghostread_joins_total").await, 1001.0);
    watcher
        .wait_for("readers", |d| d["now"] == 1 && d["total"] == 1001)
        .await;
    drop(watcher);
    // The empty room goes at the tick after the last leave, so all three are
    // waited for together: the room count, asserted as soon as the ghosts
    // were gone, was sometimes still 1.
    wait_until("no ghost, stream or room is left", || async {
        metric(addr, "ghostread_ghosts").await == 0.0
            && metric(addr, "ghostread_streams_open").await == 0.0
            && metric(addr, "ghostread_rooms").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_and_the_post_page_show_live_and_total_readers() {
    let server = start_server(one_post(3), |_| {}).await;
    let _a = open(server.addr, "p").await;
    let _b = open(server.addr, "p").await;
    let page = common::get(server.addr, "/posts/p").await.text();
    assert!(
        page.contains("<span data-now>2</span> reading now"),
        "{page}"
    );
    assert!(page.contains("Total readers: <span data-total>2</span>"));
    let index = common::get(server.addr, "/").await.text();
    assert!(
        index.contains("<span data-now>2</span> reading now"),
        "{index}"
    );
}

/// A stream opened as a connection's first request skips hyper (see
/// `h1_events`); one opened after a page on a kept-alive connection goes
/// through hyper. Readers must not be able to tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_after_a_page_on_the_same_connection_is_the_same_stream() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
    first
        .write_all(b"GET /posts/p HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(common::read_response(&mut first, false).await.status, 200);
    let mut kept = open_on(first, "/posts/p/events", "")
        .await
        .expect("a stream on the kept-alive connection");
    let mut fresh = open(addr, "p").await;
    assert_eq!(kept.header("content-type"), Some("text/event-stream"));
    for name in ["content-type", "cache-control", "x-accel-buffering"] {
        assert_eq!(kept.header(name), fresh.header(name), "{name}");
    }
    assert_eq!(fresh.header("transfer-encoding"), Some("chunked"));
    assert!(fresh.header("date").is_some());

    move_to(addr, "p", &kept, 3.5).await;
    fresh
        .wait_for("moves", |m| m["moves"][0]["id"] == kept.id.as_str())
        .await;
    move_to(addr, "p", &fresh, 7.25).await;
    kept.wait_for("moves", |m| m["moves"][0]["id"] == fresh.id.as_str())
        .await;
    let fresh_id = fresh.id.clone();
    fresh.close();
    kept.wait_for("leave", |l| l["id"] == fresh_id.as_str())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_talking_on_its_stream_is_cut_off_and_its_ghost_leaves() {
    let server = start_server(one_post(3), |_| {}).await;
    let mut watcher = open(server.addr, "p").await;
    let talker = open(server.addr, "p").await;
    let id = talker.id.clone();
    let mut socket = talker.into_stream();
    let noise = vec![b'x'; 64 * 1024];
    // The server stops reading once it has cut the client off, so the
    // write may fail part-way; either way the ghost must go.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.write_all(&noise)).await;
    watcher.wait_for("leave", |l| l["id"] == id.as_str()).await;
}
