//! A reader that stops reading never slows the others: it falls behind,
//! skips what it missed, and is correct again after a fresh snapshot.

mod common;

use std::time::{Duration, Instant};

use common::sse::{metric, move_to, open, open_on};
use common::{one_post, start_server};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// Sends moves for `tokens` round-robin on one keep-alive connection until
/// `stop` is set.
async fn keep_moving(
    addr: std::net::SocketAddr,
    tokens: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut i = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let body = format!(
            "{{\"token\":\"{}\",\"pos\":{}}}",
            tokens[i % tokens.len()],
            (i % 40) as f64 + 0.5
        );
        let request = format!(
            "POST /posts/p/position HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send move");
        let answer = common::read_response(&mut stream, false).await;
        assert_eq!(answer.status, 204, "{}", answer.text());
        i += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_does_not_slow_fifty_others_and_recovers_with_a_snapshot() {
    let server = start_server(one_post(40), |c| {
        // Per-ghost events, whose frames grow with the room: the hard case.
        c.crowd = 0;
        // Small buffers on the way let the slow reader fall behind sooner.
        c.socket_send_buffer = 16 * 1024;
        c.tick = Duration::from_millis(1);
        c.moves_per_sec = 1_000_000;
    })
    .await;
    let addr = server.addr;
    let mut fast = Vec::new();
    for _ in 0..50 {
        fast.push(open(addr, "p").await);
    }
    // The slow reader: a tiny receive buffer, and it stops reading now.
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(2048)
        .expect("small receive buffer");
    let mut slow = open_on(
        socket.connect(addr).await.expect("connect"),
        "/posts/p/events",
        "",
    )
    .await
    .expect("200");

    let tokens: Vec<String> = fast.iter().map(|r| r.token.clone()).collect();
    let sentinel_id = fast[0].id.clone();
    let sentinel_token = fast[0].token.clone();
    let mut readers = tokio::task::JoinSet::new();
    for mut reader in fast {
        let sentinel_id = sentinel_id.clone();
        readers.spawn(async move {
            let mut snapshots = 0;
            loop {
                let event = reader.next_event().await.expect("the stream stays open");
                if event.name == "snapshot" {
                    snapshots += 1;
                }
                let is_sentinel = event.name == "moves"
                    && event.data["moves"].as_array().is_some_and(|m| {
                        m.iter()
                            .any(|m| m["id"] == sentinel_id.as_str() && m["pos"] == 7.777)
                    });
                if is_sentinel {
                    return snapshots;
                }
            }
        });
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let movers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(keep_moving(addr, tokens.clone(), stop.clone())))
        .collect();
    // Enough for the slow reader to fill every buffer on its way and then
    // fall more than the room's backlog behind: about 200 KB and 1,000
    // frames per reader. Bounded in time like every load loop.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let per_reader_bytes = metric(addr, "ghostread_bytes_sent_total").await / 51.0;
        let frames = metric(addr, "ghostread_frames_published_total").await;
        if per_reader_bytes > 200_000.0 && frames > 1_000.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the movers did not push enough within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for mover in movers {
        mover.await.expect("mover");
    }

    // The slow reader reads again: stale frames, then a fresh snapshot.
    let (snapshot, _) = slow.wait_for("snapshot", |_| true).await;
    assert_eq!(snapshot.data["ghosts"].as_array().map(Vec::len), Some(51));
    assert!(metric(addr, "ghostread_lag_snapshots_total").await >= 1.0);

    // From there it is correct: it sees the next move like everyone else.
    let body = format!("{{\"token\":\"{sentinel_token}\",\"pos\":7.777}}");
    assert_eq!(
        common::sse::post_position(addr, "p", &body).await.status,
        204
    );
    slow.wait_for("moves", |d| {
        d["moves"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["pos"] == 7.777))
    })
    .await;
    let mut fast_snapshots = 0;
    while let Some(done) = readers.join_next().await {
        fast_snapshots += done.expect("every fast reader saw the final move");
    }
    println!("fast readers that needed a snapshot: {fast_snapshots}");
    let _ = move_to; // The helper is shared with other test files.
}
