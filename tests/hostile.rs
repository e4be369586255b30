//! Hostile clients, each while honest readers keep working: slowloris,
//! floods, malformed HTTP, forged addresses, bodies that never end.

mod common;

use std::time::Duration;

use common::sse::{metric, move_to, open, open_with};
use common::{one_post, send, send_bytes, start_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slowloris_sockets_do_not_stop_new_readers() {
    let server = start_server(one_post(3), |c| {
        c.header_timeout = Duration::from_millis(800);
        // All from one address here: the per-address cap is tested apart.
        c.max_connections_per_address = 100_000;
    })
    .await;
    let mut watcher = open(server.addr, "p").await;
    let mut dribblers = Vec::new();
    for i in 0..2000 {
        let mut socket = TcpStream::connect(server.addr).await.expect("connect");
        // Half start a request line and stop; half say nothing at all.
        if i % 2 == 0 {
            socket
                .write_all(b"GET /posts/p HTTP/1.1\r\nHost: x\r\nX-a: ")
                .await
                .expect("dribble");
        }
        dribblers.push(socket);
    }
    // New readers still join, and the existing one still hears them.
    let newcomer = open(server.addr, "p").await;
    watcher
        .wait_for("join", |d| d["id"] == newcomer.id.as_str())
        .await;
    move_to(server.addr, "p", &newcomer, 2.0).await;
    watcher.wait_for("moves", |_| true).await;
    // And the dribblers are cut off by the header timeout.
    for socket in dribblers.iter_mut().take(20) {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a slowloris socket was closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_per_address_limit_get_429_and_forged_forwarding_does_not_help() {
    let server = start_server(one_post(3), |c| c.max_streams_per_address = 3).await;
    let _held = [
        open(server.addr, "p").await,
        open(server.addr, "p").await,
        open(server.addr, "p").await,
    ];
    let refused = open_with(
        server.addr,
        "/posts/p/events",
        "x-forwarded-for: 198.51.100.7\r\n",
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert!(refused.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("your address")));
    // The page itself is still served to that address.
    assert_eq!(common::get(server.addr, "/posts/p").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_clear_errors_and_never_a_crash() {
    let server = start_server(one_post(3), |_| {}).await;
    let addr = server.addr;
    let reader = open(addr, "p").await;

    let huge_header = format!(
        "GET / HTTP/1.1\r\nhost: t\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let answer = status_or_closed(addr, huge_header.as_bytes()).await;
    assert!(
        matches!(answer, Some(431) | None),
        "a huge header: {answer:?}"
    );
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    assert_eq!(
        send(
            addr,
            &format!("GET / HTTP/1.1\r\nhost: t\r\n{many}connection: close\r\n\r\n")
        )
        .await
        .status,
        431
    );
    assert_eq!(
        common::get(addr, "/posts/%zz%").await.status,
        404,
        "bad percent-encoding"
    );
    assert_eq!(
        common::get(addr, "/web/%ff%fe").await.status,
        404,
        "percent-encoded invalid UTF-8"
    );
    assert_eq!(
        send_bytes(addr, b"GET /posts/\xff HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .status,
        400,
        "raw invalid UTF-8"
    );
    let smuggle = "POST /posts/p/position HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(
        send(addr, smuggle).await.status,
        400,
        "Content-Length with Transfer-Encoding"
    );
    let bad_te = "POST /posts/p/position HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ntransfer-encoding: gzip\r\n\r\n";
    assert_eq!(
        send(addr, bad_te).await.status,
        400,
        "a Transfer-Encoding that is not chunked"
    );

    // Pipelined requests are answered in order on one connection.
    let mut pipelined = TcpStream::connect(addr).await.expect("connect");
    pipelined
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\nGET /posts/nope HTTP/1.1\r\nhost: t\r\n\r\nGET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .expect("pipeline");
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), pipelined.read_to_end(&mut all))
        .await
        .expect("answers")
        .expect("read");
    let text = std::str::from_utf8(&all).expect("answers are text");
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"]);

    // Through all of it the reader's stream lives on.
    move_to(addr, "p", &reader, 1.0).await;
    assert_eq!(metric(addr, "ghostread_ghosts").await, 1.0);
}

/// The status of the answer to `raw`, or `None` if the server closed the
/// connection first. A server that refuses a request it has not finished
/// reading closes with unread bytes, and TCP then resets the connection,
/// which can discard the answer before the client reads it.
async fn status_or_closed(addr: std::net::SocketAddr, raw: &[u8]) -> Option<u16> {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let _ = socket.write_all(raw).await;
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut head)).await;
    String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_body_that_never_ends_times_out_with_408() {
    let server = start_server(one_post(3), |c| {
        c.header_timeout = Duration::from_millis(500)
    })
    .await;
    let reader = open(server.addr, "p").await;
    let mut socket = TcpStream::connect(server.addr).await.expect("connect");
    let start = format!(
        "POST /posts/p/position HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"token\":\"{}\"",
        reader.token
    );
    socket
        .write_all(start.as_bytes())
        .await
        .expect("send part of a body");
    let answer = common::read_response(&mut socket, false).await;
    assert_eq!(answer.status, 408);
    assert!(answer.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("too long")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_flood_is_refused_cheaply_while_others_move_freely() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let flooder = open(addr, "p").await;
    let honest = open(addr, "p").await;
    let mut watcher = open(addr, "p").await;
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let body = format!("{{\"token\":\"{}\",\"pos\":1}}", flooder.token);
    let request = format!(
        "POST /posts/p/position HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut limited = 0;
    for _ in 0..1000 {
        socket.write_all(request.as_bytes()).await.expect("flood");
        if common::read_response(&mut socket, false).await.status == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 900, "the flood was limited: {limited} of 1000");
    move_to(addr, "p", &honest, 7.0).await;
    watcher
        .wait_for("moves", |d| {
            d["moves"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["pos"] == 7.0))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_never_compressed() {
    let server = start_server(one_post(3), |_| {}).await;
    let reader = open_with(
        server.addr,
        "/posts/p/events",
        "accept-encoding: gzip, br, deflate\r\n",
    )
    .await
    .expect("200");
    assert_eq!(reader.header("content-encoding"), None);
    assert_eq!(reader.header("content-type"), Some("text/event-stream"));
}
