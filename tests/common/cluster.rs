//! Instances of a cluster on one real Redis, for the cluster tests.

use std::time::{Duration, Instant};

use super::redis::Redis;
use super::sse::{open, Reader};
use super::{one_post, start_server, TestServer};

/// An in-process instance serving one post `p` (12 blocks) through `redis`.
pub async fn instance(redis: &Redis) -> TestServer {
    instance_on(redis.url()).await
}

/// An in-process instance serving one post `p` (12 blocks) through the
/// Redis (or the Redis Cluster's seed nodes) at `url`.
pub async fn instance_on(url: String) -> TestServer {
    start_server(one_post(12), move |c| c.redis = Some(url)).await
}

/// Two instances serving post `p` through the Redis (or Redis Cluster) at
/// `url`.
pub async fn two_instances(url: String) -> (TestServer, TestServer) {
    (instance_on(url.clone()).await, instance_on(url).await)
}

/// Waits until `reader` is told that ghost `id` moved to `pos`.
pub async fn sees_at(reader: &mut Reader, id: &str, pos: f64) {
    reader
        .wait_for("moves", |d| {
            d["moves"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["id"] == id && m["pos"] == pos))
        })
        .await;
}

/// The reader-seconds `addr`'s heat map of post `p` shows at `block`.
pub async fn heat_at(addr: std::net::SocketAddr, block: usize) -> f64 {
    super::get(addr, "/posts/p/heat").await.json()["seconds"][block]
        .as_f64()
        .unwrap_or(0.0)
}

/// Waits until `reader` knows ghost `id`: in its snapshot, or by a `join`.
pub async fn sees(reader: &mut Reader, id: &str) {
    let in_snapshot = reader.state.data["ghosts"]
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g["id"] == id));
    if !in_snapshot {
        reader.wait_for("join", |d| d["id"] == id).await;
    }
}

/// Opens a reader on `server` that sees `other`'s ghost, retrying while the
/// instances are still finding each other through Redis.
pub async fn reader_seeing(server: &TestServer, other: &mut Reader) -> Reader {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut reader = open(server.addr, "p").await;
        let known = reader.state.data["ghosts"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["id"] == other.id.as_str()));
        if known
            || reader
                .next_event_within(Duration::from_millis(1500))
                .await
                .ok()
                .flatten()
                .is_some_and(|e| e.name == "join" && e.data["id"] == other.id.as_str())
        {
            return reader;
        }
        assert!(
            Instant::now() < deadline,
            "the instances never saw each other through Redis"
        );
        drop(reader);
    }
}
