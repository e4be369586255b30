//! The reading heat map: reader-seconds per block, grown by readers who
//! read (not hidden or away ones), kept across restarts and kill -9, given
//! as JSON and drawn on `/stats` without a script.

mod common;

use std::time::Duration;

use common::binary::Running;
use common::sse::{open, post_position};
use common::{get, one_post, start_server_with_data, TempDir};

fn seconds(heat: &serde_json::Value) -> Vec<f64> {
    heat["seconds"]
        .as_array()
        .map(|s| s.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heat_map_grows_where_readers_read_ignores_away_ones_and_survives_a_restart() {
    let data = TempDir::new("data");
    let server = start_server_with_data(one_post(10), data, |_| {}).await;
    let addr = server.addr;
    let report = |token: String, pos: f64, away: bool| async move {
        let body = format!("{{\"token\":\"{token}\",\"pos\":{pos},\"away\":{away}}}");
        assert_eq!(post_position(addr, "p", &body).await.status, 204);
    };
    let (a, b, c, hidden) = (
        open(addr, "p").await,
        open(addr, "p").await,
        open(addr, "p").await,
        open(addr, "p").await,
    );
    report(a.token.clone(), 4.2, false).await;
    report(b.token.clone(), 4.9, false).await;
    report(c.token.clone(), 7.5, false).await;
    // A hidden tab: at block 9, and away.
    report(hidden.token.clone(), 9.1, true).await;
    // The heat map grows once a second: wait until block 4 has a few.
    common::wait_until("block 4 warms up", || async {
        seconds(&get(addr, "/posts/p/heat").await.json()).get(4) >= Some(&4.0)
    })
    .await;

    let heat = get(addr, "/posts/p/heat").await;
    assert_eq!(heat.status, 200);
    let heat = heat.json();
    assert_eq!(heat["blocks"], 10);
    let strip = seconds(&heat);
    assert_eq!(strip.len(), 10);
    assert!(
        strip[4] >= 4.0,
        "two readers for ~3 s at block 4: {strip:?}"
    );
    assert!(strip[7] >= 2.0 && strip[7] < strip[4], "{strip:?}");
    assert_eq!(strip[9], 0.0, "an away reader adds nothing: {strip:?}");
    assert_eq!(strip[1..4].iter().sum::<f64>(), 0.0, "{strip:?}");
    assert_eq!(get(addr, "/posts/nope/heat").await.status, 404);

    // /stats: every post, its counts, and its strip, with no script.
    let stats = get(addr, "/stats").await;
    assert_eq!(stats.status, 200);
    let html = stats.text();
    assert!(html.contains("<section class=\"post-stats\" data-slug=\"p\">"));
    assert!(html.contains("<span data-now>4</span>"), "{html}");
    assert!(
        html.contains("class=\"heat-9\" data-block=\"4\""),
        "the hottest block: {html}"
    );
    assert!(!html.contains("<script"), "no script");

    drop((a, b, c, hidden));
    let (result, posts, data) = server.stop_keeping_folders().await;
    result.expect("stopped cleanly");
    let again = start_server_with_data(posts, data, |_| {}).await;
    let after = seconds(&get(again.addr, "/posts/p/heat").await.json());
    assert!(
        after[4] >= strip[4],
        "kept across a restart: {after:?} vs {strip:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heat_map_survives_kill_9() {
    let (posts, data) = (one_post(6), TempDir::new("data"));
    let mut server = Running::serve(&posts, &data);
    let addr = server.addr();
    let reader = open(addr, "p").await;
    let body = format!("{{\"token\":\"{}\",\"pos\":2.5}}", reader.token);
    assert_eq!(post_position(addr, "p", &body).await.status, 204);
    let block_2 = |addr| async move { seconds(&get(addr, "/posts/p/heat").await.json())[2] };
    common::wait_until("block 2 warms up", || async { block_2(addr).await >= 3.0 }).await;
    let before = block_2(addr).await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    let mut again = Running::serve(&posts, &data);
    let after = block_2(again.addr()).await;
    // Saved at most a second after it grew, and it grows once a second.
    assert!(
        after > 0.0 && after >= before - 2.5,
        "kill -9 lost at most ~2 reader-seconds: {before} before, {after} after"
    );
    again.terminate();
    again.wait_exit(Duration::from_secs(10));
}
