//! `POST /posts/{slug}/position`: every answer in the protocol's table, each
//! error a JSON sentence, and a token that moves only its own ghost.

mod common;

use common::sse::{metric, open, post_position, post_raw};
use common::{one_post, send, start_server};

fn body(token: &str, pos: &str) -> String {
    format!("{{\"token\":\"{token}\",\"pos\":{pos}}}")
}

/// Every error is JSON with one sentence a person can act on.
fn assert_error(answer: &common::Response, status: u16, mentions: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let error = answer.json()["error"]
        .as_str()
        .expect("an error string")
        .to_string();
    assert!(error.ends_with('.'), "a sentence: {error}");
    assert!(error.contains(mentions), "{error:?} mentions {mentions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_move_answers_204() {
    let server = start_server(one_post(12), |_| {}).await;
    let reader = open(server.addr, "p").await;
    for pos in ["0", "12", "5.5", "11.999"] {
        let answer = post_position(server.addr, "p", &body(&reader.token, pos)).await;
        assert_eq!(answer.status, 204, "{pos}: {}", answer.text());
        assert!(answer.body.is_empty());
    }
    assert_eq!(
        metric(
            server.addr,
            "ghostread_position_responses_total{status=\"204\"}"
        )
        .await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_positions_answer_400() {
    let server = start_server(one_post(12), |_| {}).await;
    let reader = open(server.addr, "p").await;
    let token = reader.token.as_str();
    let cases = [
        ("not json".to_string(), "JSON"),
        ("[]".to_string(), "JSON"),
        (format!("{{\"token\":\"{token}\"}}"), "pos"),
        (body(token, "\"3\""), "number"),
        (body(token, "null"), "number"),
        (body(token, "-1"), "between 0 and 12"),
        (body(token, "12.5"), "between 0 and 12"),
        (body(token, "1e400"), "JSON"),
        ("{\"pos\":1}".to_string(), "token"),
    ];
    for (body, mentions) in &cases {
        assert_error(&post_position(server.addr, "p", body).await, 400, mentions);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_posts_other_methods_big_bodies_and_wrong_types_are_refused() {
    let server = start_server(one_post(12), |_| {}).await;
    let reader = open(server.addr, "p").await;
    let valid = body(&reader.token, "1");
    assert_error(
        &post_position(server.addr, "nope", &valid).await,
        404,
        "nope",
    );

    let get = send(
        server.addr,
        "GET /posts/p/position HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_error(&get, 405, "POST");
    assert_eq!(get.header("allow"), Some("POST, OPTIONS"));

    let huge = format!(
        "{{\"token\":\"{}\",\"pos\":1,\"pad\":\"{}\"}}",
        reader.token,
        "x".repeat(2000)
    );
    assert_error(
        &post_position(server.addr, "p", &huge).await,
        413,
        "1024 bytes",
    );

    // Chunked, with no length announced: the limit still holds while reading.
    let chunked = format!(
        "POST /posts/p/position HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{huge}\r\n0\r\n\r\n",
        huge.len()
    );
    assert_error(&send(server.addr, &chunked).await, 413, "1024 bytes");

    assert_error(
        &post_raw(server.addr, "p", "text/plain", &valid).await,
        415,
        "application/json",
    );
    assert_eq!(
        post_raw(server.addr, "p", "application/json; charset=utf-8", &valid)
            .await
            .status,
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_moves_only_its_own_ghost_on_its_own_post() {
    let posts = one_post(12);
    posts.write("q.md", common::post("Q", "2025-01-01", "Another post."));
    let server = start_server(posts, |_| {}).await;
    let on_p = open(server.addr, "p").await;
    let forged = "k3x9q2-0123456789abcdef0123456789abcdef";
    assert_error(
        &post_position(server.addr, "p", &body(forged, "1")).await,
        410,
        "reopen",
    );
    assert_error(
        &post_position(server.addr, "p", &body("short", "1")).await,
        410,
        "reopen",
    );
    assert_error(
        &post_position(server.addr, "q", &body(&on_p.token, "1")).await,
        410,
        "reopen",
    );

    // A token replayed after its stream ended is refused too.
    let token = on_p.token.clone();
    on_p.close();
    common::wait_until("the ghost left", || async {
        metric(server.addr, "ghostread_ghosts").await == 0.0
    })
    .await;
    assert_error(
        &post_position(server.addr, "p", &body(&token, "1")).await,
        410,
        "reopen",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_that_moves_too_fast_gets_429_with_retry_after() {
    let server = start_server(one_post(12), |c| c.moves_per_sec = 50).await;
    let reader = open(server.addr, "p").await;
    let mut accepted = 0;
    let mut limited = None;
    for i in 0..200 {
        let answer = post_position(
            server.addr,
            "p",
            &body(&reader.token, &format!("{}", i % 12)),
        )
        .await;
        match answer.status {
            204 => accepted += 1,
            429 => {
                limited = Some(answer);
                break;
            }
            other => panic!("unexpected {other}: {}", answer.text()),
        }
    }
    let limited = limited.expect("a 429 within 200 rapid moves");
    assert!(
        accepted >= 50,
        "the first burst of 50 is allowed, got {accepted}"
    );
    assert_error(&limited, 429, "50 per second");
    assert!(limited.header("retry-after").is_some());
    // Other ghosts are not limited by this one.
    let other = open(server.addr, "p").await;
    assert_eq!(
        post_position(server.addr, "p", &body(&other.token, "1"))
            .await
            .status,
        204
    );
}
