//! Readers behind proxies, on the server's side: a page that says goodbye
//! leaves at once, whatever keeps its stream open; a reader whose stream
//! does not stream polls instead, as the same ghost with the same events.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::sse::{metric, move_to, open, Reader};
use common::{one_post, send, start_server, wait_until, Response};
use serde_json::{json, Value};

/// `POST /posts/{slug}/{what}` with a JSON body, on a fresh connection.
async fn post_json(addr: SocketAddr, path: &str, body: &str) -> Response {
    post_typed(addr, path, "application/json", body).await
}

async fn post_typed(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> Response {
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    send(addr, &request).await
}

async fn goodbye(addr: SocketAddr, reader: &Reader) -> Response {
    let body = json!({ "token": reader.token }).to_string();
    post_json(addr, "/posts/p/leave", &body).await
}

#[tokio::test]
async fn a_goodbye_makes_the_ghost_leave_at_once_and_ends_its_stream() {
    let server = start_server(one_post(8), |_| {}).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;
    let mut leaving = open(addr, "p").await;
    watcher
        .wait_for("join", |d| d["id"] == leaving.id.as_str())
        .await;

    // Its stream stays open, as a proxy would keep it; the goodbye is enough.
    let answer = goodbye(addr, &leaving).await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    watcher
        .wait_for("leave", |d| d["id"] == leaving.id.as_str())
        .await;
    leaving.wait_closed().await;
    assert_eq!(metric(addr, "ghostread_goodbyes_total").await, 1.0);
    assert_eq!(metric(addr, "ghostread_ghosts").await, 1.0);

    // The token no longer moves anything, nor says goodbye twice.
    assert_eq!(goodbye(addr, &leaving).await.status, 410);
}

#[tokio::test]
async fn a_goodbye_from_a_forged_stale_or_foreign_token_is_refused_and_changes_nothing() {
    let server = start_server(one_post(8), |_| {}).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;
    let reader = open(addr, "p").await;
    watcher
        .wait_for("join", |d| d["id"] == reader.id.as_str())
        .await;
    let cases: [(&str, &str, &str, u16); 8] = [
        (
            "/posts/p/leave",
            "application/json",
            "{\"token\":\"k3x9q2-0123456789abcdef0123456789abcdef\"}",
            410,
        ),
        (
            "/posts/p/leave",
            "application/json",
            "{\"token\":\"not-a-token\"}",
            410,
        ),
        ("/posts/p/leave", "application/json", "{\"token\":7}", 400),
        ("/posts/p/leave", "application/json", "{}", 400),
        ("/posts/p/leave", "application/json", "not json", 400),
        ("/posts/p/leave", "text/plain", "{\"token\":\"x\"}", 415),
        (
            "/posts/nope/leave",
            "application/json",
            "{\"token\":\"x\"}",
            404,
        ),
        ("/posts/p/leave", "application/json", &"x".repeat(5000), 413),
    ];
    for (path, content_type, body, status) in cases {
        let answer = post_typed(addr, path, content_type, body).await;
        assert_eq!(
            answer.status,
            status,
            "{path} {body:.40}: {}",
            answer.text()
        );
        let error: Value = serde_json::from_str(&answer.text()).expect("a JSON error");
        assert!(error["error"].as_str().is_some_and(|e| e.len() > 10));
    }
    // Another post's reader's token does not end this one.
    let other = start_server(one_post(8), |_| {}).await;
    let stranger = open(other.addr, "p").await;
    assert_eq!(goodbye(addr, &stranger).await.status, 410);
    assert_eq!(metric(addr, "ghostread_ghosts").await, 2.0, "nobody left");
    assert_eq!(metric(addr, "ghostread_goodbyes_total").await, 0.0);
}

/// One poll: the answer's JSON.
async fn poll(addr: SocketAddr, body: Value) -> Value {
    let answer = post_json(addr, "/posts/p/poll", &body.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    serde_json::from_str(&answer.text()).expect("JSON")
}

/// The events of a poll answer, by name and data.
fn events(answer: &Value) -> Vec<(String, Value)> {
    let text = answer["events"].as_str().expect("events text");
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).expect("data is JSON"));
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[tokio::test]
async fn a_poller_is_a_ghost_with_the_same_events_in_the_same_order() {
    let server = start_server(one_post(8), |c| c.poll_wait = Duration::from_secs(2)).await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;

    let first = poll(addr, json!({})).await;
    let got = events(&first);
    assert_eq!(got[0].0, "hello", "{got:?}");
    assert_eq!(got[1].0, "snapshot");
    let token = got[0].1["token"].as_str().expect("token").to_string();
    let id = got[0].1["id"].as_str().expect("id").to_string();
    assert!(got[1].1["ghosts"]
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g["id"] == watcher.id.as_str())));
    watcher.wait_for("join", |d| d["id"] == id.as_str()).await;
    assert_eq!(metric(addr, "ghostread_pollers").await, 1.0);

    // The poller moves like any reader, and sees the others move.
    let body = json!({ "token": token, "pos": 5.25 }).to_string();
    assert_eq!(
        post_json(addr, "/posts/p/position", &body).await.status,
        204
    );
    watcher.wait_for_ghost_in_block(&id, 5).await;
    move_to(addr, "p", &watcher, 3.5).await;
    let mut seq = first["seq"].as_u64().expect("seq");
    let mut seen = Vec::new();
    let watcher_moved = |(name, d): &(String, Value)| {
        name == "moves"
            && d["moves"].as_array().is_some_and(|m| {
                m.iter()
                    .any(|m| m["id"] == watcher.id.as_str() && m["pos"] == 3.5)
            })
    };
    let second = loop {
        let answer = poll(addr, json!({ "token": token, "seen": seq })).await;
        assert_eq!(
            answer["seq"].as_u64(),
            Some(seq + 1),
            "one answer after another"
        );
        seq += 1;
        seen.extend(events(&answer));
        if seen.iter().any(watcher_moved) {
            break answer;
        }
        assert!(seq < 10, "the watcher's move never came: {seen:?}");
    };
    let seq = seq - 1;

    // An answer lost on the way comes again: the poll says it has not seen it.
    let again = poll(addr, json!({ "token": token, "seen": seq })).await;
    assert_eq!(again, second);

    // Nothing new: the poll waits, then answers with nothing.
    let quiet = poll(addr, json!({ "token": token, "seen": seq + 1 })).await;
    assert_eq!(quiet["seq"].as_u64(), Some(seq + 2));
    assert_eq!(quiet["events"], "");
}

#[tokio::test]
async fn a_poller_that_stops_polling_leaves_and_one_that_says_goodbye_leaves_at_once() {
    let server = start_server(one_post(8), |c| {
        c.poll_wait = Duration::from_secs(1);
        c.poll_gone = Duration::from_secs(1);
    })
    .await;
    let addr = server.addr;
    let mut watcher = open(addr, "p").await;

    let vanished = poll(addr, json!({})).await;
    let id = events(&vanished)[0].1["id"]
        .as_str()
        .expect("id")
        .to_string();
    watcher.wait_for("join", |d| d["id"] == id.as_str()).await;
    // It never polls again.
    watcher.wait_for("leave", |d| d["id"] == id.as_str()).await;
    wait_until("the session is gone", || async {
        metric(addr, "ghostread_pollers").await == 0.0
    })
    .await;
    let token = events(&vanished)[0].1["token"]
        .as_str()
        .expect("token")
        .to_string();
    let answer = post_json(
        addr,
        "/posts/p/position",
        &json!({"token": token, "pos": 1}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 410, "its token moves nothing");

    // A poller's goodbye works as a stream's does.
    let polite = poll(addr, json!({})).await;
    let hello = &events(&polite)[0].1;
    let id = hello["id"].as_str().expect("id").to_string();
    watcher.wait_for("join", |d| d["id"] == id.as_str()).await;
    let answer = post_json(
        addr,
        "/posts/p/leave",
        &json!({ "token": hello["token"] }).to_string(),
    )
    .await;
    assert_eq!(answer.status, 204);
    watcher.wait_for("leave", |d| d["id"] == id.as_str()).await;
}

#[tokio::test]
async fn bad_polls_get_clear_errors_and_change_nothing() {
    let server = start_server(one_post(8), |_| {}).await;
    let addr = server.addr;
    let cases: [(&str, &str, &str, u16); 6] = [
        ("/posts/p/poll", "application/json", "[]", 400),
        ("/posts/p/poll", "application/json", "{\"seen\":-1}", 400),
        ("/posts/p/poll", "application/json", "{\"token\":5}", 400),
        ("/posts/p/poll", "text/plain", "{}", 415),
        ("/posts/nope/poll", "application/json", "{}", 404),
        ("/posts/p/poll", "application/json", &"x".repeat(5000), 413),
    ];
    for (path, content_type, body, status) in cases {
        let answer = post_typed(addr, path, content_type, body).await;
        assert_eq!(
            answer.status,
            status,
            "{path} {body:.40}: {}",
            answer.text()
        );
    }
    let get = common::get(addr, "/posts/p/poll").await;
    assert_eq!(get.status, 405);
    assert_eq!(metric(addr, "ghostread_ghosts").await, 0.0);
    assert_eq!(metric(addr, "ghostread_pollers").await, 0.0);
}
