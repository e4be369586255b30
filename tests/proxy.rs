//! Behind a real nginx with its default buffering: events pass through as
//! they happen, and heartbeats keep an idle stream open past the proxy's
//! read timeout.

mod common;

use std::time::{Duration, Instant};

use common::nginx::Nginx;
use common::sse::{metric, move_to, open, post_position};
use common::{one_post, start_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pass_through_a_buffering_nginx_as_they_happen() {
    let server = start_server(one_post(12), |_| {}).await;
    let nginx = Nginx::proxy(server.addr, "").await;
    let mut a = open(nginx.addr, "p").await;
    let b = open(nginx.addr, "p").await;
    assert_eq!(a.header("content-type"), Some("text/event-stream"));
    a.wait_for("join", |d| d["id"] == b.id.as_str()).await;

    // A single small event arrives while the stream stays open: with
    // buffering it would wait for kilobytes more or for the end.
    let sent = Instant::now();
    move_to(nginx.addr, "p", &b, 5.5).await;
    let (moves, _) = a.wait_for("moves", |_| true).await;
    println!("move through nginx seen after {:?}", sent.elapsed());
    assert_eq!(moves.data["moves"][0]["pos"], 5.5);
    assert_eq!(metric(server.addr, "ghostread_ghosts").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_stream_open_past_the_proxy_read_timeout() {
    let server = start_server(one_post(12), |c| c.heartbeat = Duration::from_secs(2)).await;
    let nginx = Nginx::proxy(server.addr, "proxy_read_timeout 5s;").await;
    let mut idle = open(nginx.addr, "p").await;
    let opened = Instant::now();
    // Three heartbeats: over 6 s of silence otherwise, past the 5 s timeout.
    for _ in 0..3 {
        assert_eq!(idle.wait_comment().await, "ping");
    }
    assert!(opened.elapsed() > Duration::from_secs(5));
    let other = open(server.addr, "p").await;
    let body = format!("{{\"token\":\"{}\",\"pos\":2}}", other.token);
    assert_eq!(post_position(server.addr, "p", &body).await.status, 204);
    let (moves, _) = idle.wait_for("moves", |_| true).await;
    assert_eq!(moves.data["moves"][0]["id"], other.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_per_address_limit_counts_real_clients() {
    let server = start_server(one_post(3), |c| {
        c.max_streams_per_address = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    })
    .await;
    let nginx = Nginx::proxy(server.addr, "").await;
    let headers = |client: &str| format!("x-forwarded-for: {client}\r\n");
    // nginx appends the address it saw (127.0.0.1) after any forwarded one;
    // the server takes the last: the one nginx vouches for.
    let _first = open(nginx.addr, "p").await;
    let refused =
        common::sse::open_with(nginx.addr, "/posts/p/events", &headers("203.0.113.9")).await;
    assert_eq!(
        refused.err().map(|r| r.status),
        Some(429),
        "a forged header does not dodge the limit"
    );
}
