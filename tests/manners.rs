//! Presence manners on the wire (docs/PROTOCOL.md): a reader can be away
//! and back, a page giving its connection up can have its ghost held, and
//! an invisible reader watches without a ghost.

mod common;

use std::time::Duration;

use common::sse::{open, open_with, post_position, resume, Reader};
use common::{one_post, start_server, wait_until};

/// Reports `reader` at `pos` with whatever else `extra` says (JSON fields).
async fn report(addr: std::net::SocketAddr, reader: &Reader, pos: f64, extra: &str) -> u16 {
    let body = format!("{{\"token\":\"{}\",\"pos\":{pos}{extra}}}", reader.token);
    post_position(addr, "p", &body).await.status
}

/// The moves entry `watcher` gets next for ghost `id`.
async fn next_move_of(watcher: &mut Reader, id: &str) -> serde_json::Value {
    let (moves, _) = watcher
        .wait_for("moves", |d| {
            d["moves"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["id"] == id))
        })
        .await;
    moves.data["moves"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == id).cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_is_away_and_back_for_the_others_and_for_newcomers() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let reader = open(addr, "p").await;
    let mut watcher = open(addr, "p").await;

    assert_eq!(report(addr, &reader, 3.0, ",\"away\":true").await, 204);
    let entry = next_move_of(&mut watcher, &reader.id).await;
    assert_eq!(
        (entry["pos"].as_f64(), entry["away"].as_bool()),
        (Some(3.0), Some(true))
    );
    let newcomer = open(addr, "p").await;
    let shown = newcomer.state.data["ghosts"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == reader.id.as_str()).cloned())
        .unwrap_or_default();
    assert_eq!(shown["away"], true, "a newcomer sees it away: {shown}");

    // Back: an entry without `away` means present.
    assert_eq!(report(addr, &reader, 3.0, ",\"away\":false").await, 204);
    let entry = next_move_of(&mut watcher, &reader.id).await;
    assert!(entry.get("away").is_none(), "{entry}");
    // A position that does not say keeps the state as it is.
    assert_eq!(report(addr, &reader, 4.0, "").await, 204);
    let entry = next_move_of(&mut watcher, &reader.id).await;
    assert!(entry.get("away").is_none(), "{entry}");

    for bad in [",\"away\":\"yes\"", ",\"away\":1", ",\"hold\":\"x\""] {
        let body = format!("{{\"token\":\"{}\",\"pos\":1{bad}}}", reader.token);
        let answer = post_position(addr, "p", &body).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.text().contains("true or false"), "{}", answer.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_ghost_stays_away_without_its_stream_until_its_page_is_back_or_lets_go() {
    let server = start_server(one_post(12), |c| c.let_go = Duration::from_secs(2)).await;
    let addr = server.addr;
    let reader = open(addr, "p").await;
    let mut watcher = open(addr, "p").await;

    // A hidden tab on HTTP/1.1 asks to be held, then frees its connection.
    assert_eq!(
        report(addr, &reader, 5.0, ",\"away\":true,\"hold\":true").await,
        204
    );
    next_move_of(&mut watcher, &reader.id).await;
    let (id, token, color) = (
        reader.id.clone(),
        reader.token.clone(),
        reader.color.clone(),
    );
    reader.close();
    let nothing = watcher.next_event_within(Duration::from_millis(800)).await;
    assert!(
        !matches!(&nothing, Ok(Some(e)) if e.name == "leave"),
        "a held ghost does not leave when its stream closes: {nothing:?}"
    );
    // Shown again: its new stream takes the ghost over, silently.
    let back = resume(addr, "p", &token).await;
    assert_eq!(
        (back.id.as_str(), back.color.as_str()),
        (id.as_str(), color.as_str())
    );
    assert_eq!(report(addr, &back, 5.0, ",\"away\":false").await, 204);
    let entry = next_move_of(&mut watcher, &id).await;
    assert!(entry.get("away").is_none(), "back: {entry}");

    // Held again, and never back: after let_go it leaves like any other.
    assert_eq!(
        report(addr, &back, 5.0, ",\"away\":true,\"hold\":true").await,
        204
    );
    back.close();
    let started = std::time::Instant::now();
    watcher.wait_for("leave", |d| d["id"] == id.as_str()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "held for let_go first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invisible_reader_sees_the_others_and_nobody_sees_it() {
    let server = start_server(one_post(12), |_| {}).await;
    let addr = server.addr;
    let mut visible = open(addr, "p").await;
    let mut invisible = open_with(addr, "/posts/p/events?watch=1", "")
        .await
        .expect("200");
    assert_eq!(invisible.hello.data["watching"], true);
    let ghosts = invisible.state.data["ghosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ghosts.len(),
        1,
        "it sees the visible reader only: {ghosts:?}"
    );
    assert_eq!(invisible.state.data["now"], 1, "and is not counted in now");

    // It sees the others move; they never hear of it, even when it tries.
    assert_eq!(report(addr, &visible, 7.0, "").await, 204);
    next_move_of(&mut invisible, &visible.id).await;
    let _ = report(addr, &invisible, 2.0, "").await;
    let later = open(addr, "p").await;
    let ids: Vec<String> = later.state.data["ghosts"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(!ids.contains(&invisible.id), "{ids:?}");
    assert_eq!(later.state.data["now"], 2);
    // The visible reader hears the newcomer join, and never of the
    // invisible one (only `total` counts it, as a reader it is).
    let mut heard = Vec::new();
    while let Ok(Some(event)) = visible.next_event_within(Duration::from_millis(500)).await {
        heard.push(event);
    }
    assert!(
        heard
            .iter()
            .any(|e| e.name == "join" && e.data["id"] == later.id.as_str()),
        "{heard:?}"
    );
    assert!(
        !heard
            .iter()
            .any(|e| e.data.to_string().contains(&invisible.id)),
        "{heard:?}"
    );

    // Choosing to be seen: the same ghost, now joining the others.
    let token = invisible.token.clone();
    let id = invisible.id.clone();
    let seen = resume(addr, "p", &token).await;
    assert_eq!(seen.id, id);
    assert!(seen.hello.data.get("watching").is_none());
    visible.wait_for("join", |d| d["id"] == id.as_str()).await;
    wait_until("now counts it", || async {
        common::get(addr, "/posts/p")
            .await
            .text()
            .contains("<span data-now>3</span>")
    })
    .await;
}
