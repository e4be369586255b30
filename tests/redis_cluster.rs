//! Cluster mode on a real Redis Cluster (three masters, three replicas):
//! given the seed nodes, instances share readers through sharded pub/sub,
//! resume each other's ghosts and sum the heat map, with every command on
//! one slot; and a post's shard failing over to its replica is survived.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{heat_at, reader_seeing, sees, sees_at, two_instances};
use common::redis_cluster::RedisCluster;
use common::sse::{move_to, open, resume};
use common::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_on_two_instances_meet_through_a_redis_cluster_on_sharded_channels() {
    let redis = RedisCluster::start().await;
    let (a_server, b_server) = two_instances(redis.url()).await;
    let mut a = open(a_server.addr, "p").await;
    let b = reader_seeing(&b_server, &mut a).await;
    sees(&mut a, &b.id).await;

    move_to(b_server.addr, "p", &b, 4.5).await;
    sees_at(&mut a, &b.id, 4.5).await;
    // The post's messages went on its shard's channel, never to every node.
    assert!(redis.calls("spublish").await > 0, "sharded publishes");
    assert_eq!(redis.calls("publish").await, 0, "no cluster-wide publish");

    let b_id = b.id.clone();
    b.close();
    a.wait_for("leave", |d| d["id"] == b_id.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_resumes_on_another_instance_and_the_heat_map_sums_over_a_redis_cluster() {
    let redis = RedisCluster::start().await;
    let (a_server, b_server) = two_instances(redis.url()).await;
    let mut a = open(a_server.addr, "p").await;
    let b = reader_seeing(&b_server, &mut a).await;
    move_to(a_server.addr, "p", &a, 3.5).await;
    move_to(b_server.addr, "p", &b, 5.2).await;
    wait_until("A's heat map has B's reader's block", || async {
        heat_at(a_server.addr, 5).await >= 1.0
    })
    .await;

    let (id, color, token) = (b.id.clone(), b.color.clone(), b.token.clone());
    b.close();
    a.wait_for("leave", |d| d["id"] == id.as_str()).await;
    // Parked in Redis by B, taken by A: a resume through the other instance.
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        let back = resume(a_server.addr, "p", &token).await;
        if back.id == id || Instant::now() > deadline {
            break back;
        }
        back.close();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (back.id.as_str(), back.color.as_str()),
        (id.as_str(), color.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_posts_shard_failing_over_to_its_replica_is_survived_within_ten_seconds() {
    let mut redis = RedisCluster::start().await;
    let (a_server, b_server) = two_instances(redis.url()).await;
    let mut a = open(a_server.addr, "p").await;
    let b = reader_seeing(&b_server, &mut a).await;
    sees(&mut a, &b.id).await;

    // The master of the post's channel dies mid-run.
    redis.kill_master_of("ghostread:room:{p}").await;
    let killed = Instant::now();
    // B's reader keeps reading; A sees it move again once the replica has
    // taken over and both instances hear the post through it.
    let mut step = 0u32;
    let seen = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "A did not see B's reader move within 10 s of the failover"
        );
        step += 1;
        // A new position each time, within the post's 12 blocks.
        let pos = f64::from(step % 11) + f64::from(step / 11 % 4) * 0.25;
        move_to(b_server.addr, "p", &b, pos).await;
        let heard =
            tokio::time::timeout(Duration::from_millis(700), sees_at(&mut a, &b.id, pos)).await;
        if heard.is_ok() {
            break killed.elapsed();
        }
    };
    eprintln!("A saw B's reader again {seen:?} after its shard's master died");
    redis.wait_until_healed().await;
    // A newcomer on B after the failover is seen on A too.
    let c = open(b_server.addr, "p").await;
    sees(&mut a, &c.id).await;
}
