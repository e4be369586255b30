//! Cluster mode against a real Redis: readers on different instances see
//! each other as if on one; counts are shared; an instance that dies, and
//! Redis itself going away, are survived.

mod common;

use std::time::{Duration, Instant};

use common::binary::Running;
use common::cluster::{heat_at, instance, reader_seeing, sees, sees_at};
use common::redis::Redis;
use common::sse::{metric, move_to, open, resume, resume_by_ticket, ticket_for};
use common::{one_post, start_server, wait_until, TempDir, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_on_two_instances_see_each_other_join_move_and_leave() {
    let redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    let mut a = open(a_server.addr, "p").await;
    let b = reader_seeing(&b_server, &mut a).await;
    sees(&mut a, &b.id).await;

    move_to(b_server.addr, "p", &b, 4.5).await;
    let (moves, _) = a
        .wait_for("moves", |d| {
            d["moves"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["pos"] == 4.5))
        })
        .await;
    assert!(moves.data["moves"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["id"] == b.id.as_str())));
    let reading_now = |n: u64| {
        let addr = a_server.addr;
        async move {
            common::get(addr, "/posts/p")
                .await
                .text()
                .contains(&format!("<span data-now>{n}</span>"))
        }
    };
    wait_until("A counts both instances' readers", || reading_now(2)).await;

    let b_id = b.id.clone();
    b.close();
    a.wait_for("leave", |d| d["id"] == b_id.as_str()).await;
    wait_until("A counts one reader", || reading_now(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_hears_only_the_posts_it_serves_readers_of() {
    let redis = Redis::start().await;
    let two_posts = || {
        let posts = one_post(12);
        posts.write("q.md", common::post("Q", "2025-01-02", "One.\n\nTwo."));
        posts
    };
    let url = redis.url();
    let a_server = start_server(two_posts(), |c| c.redis = Some(url.clone())).await;
    let b_server = start_server(two_posts(), |c| c.redis = Some(url.clone())).await;
    let (p, q) = ("ghostread:room:{p}", "ghostread:room:{q}");
    let _a = open(a_server.addr, "p").await;
    wait_until("A hears p", || async { redis.subscribers(p).await == 1 }).await;
    assert_eq!(redis.subscribers(q).await, 0, "nobody serves q yet");
    let _b = open(b_server.addr, "q").await;
    wait_until("B hears q", || async { redis.subscribers(q).await == 1 }).await;
    // Each hears its own post only: p's moves never reach B, nor q's A.
    assert_eq!(redis.subscribers(p).await, 1);
    let _b_on_p = open(b_server.addr, "p").await;
    wait_until("B hears p too", || async {
        redis.subscribers(p).await == 2
    })
    .await;
    assert_eq!(redis.subscribers(q).await, 1, "A still does not hear q");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_counts_each_reader_once_and_a_resume_on_another_instance_keeps_the_ghost() {
    let redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    let mut a = open(a_server.addr, "p").await;
    let b = reader_seeing(&b_server, &mut a).await;
    // Only readers count: `reader_seeing` may have opened and dropped some
    // on B while the instances found each other, so read what Redis holds.
    let total_before = |server: &TestServer| {
        let addr = server.addr;
        async move {
            let page = common::get(addr, "/posts/p").await.text();
            page.split("data-total>")
                .nth(1)
                .and_then(|t| t.split('<').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    wait_until("both instances agree on the total", || async {
        total_before(&a_server).await == total_before(&b_server).await
            && total_before(&a_server).await >= 2
    })
    .await;
    let total = total_before(&a_server).await;

    let (id, color, token) = (b.id.clone(), b.color.clone(), b.token.clone());
    b.close();
    a.wait_for("leave", |d| d["id"] == id.as_str()).await;
    let key = format!("ghostread:park:{token}");
    wait_until("the ghost is parked in Redis", || async {
        redis.exists(&key).await
    })
    .await;

    let back = resume(a_server.addr, "p", &token).await;
    assert_eq!(
        (back.id.as_str(), back.color.as_str()),
        (id.as_str(), color.as_str()),
        "same ghost on the other instance"
    );
    assert_eq!(
        back.state.data["total"], total,
        "a resume is not a new reader"
    );
    assert_eq!(
        metric(a_server.addr, "ghostread_joins_total").await,
        1.0,
        "A counted only its own first reader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_with_sigkill_loses_its_ghosts_everywhere_within_five_seconds() {
    let redis = Redis::start().await;
    let a_server = instance(&redis).await;
    let posts = TempDir::new("posts");
    posts.write(
        "p.md",
        common::post("P", "2025-01-01", "One.\n\nTwo.\n\nThree."),
    );
    let data = TempDir::new("data");
    let url = redis.url();
    let mut b_process = Running::serve_with(&posts, &data, &["--redis", &url]);
    let b_addr = b_process.addr();
    b_process.wait_for_line("joined through Redis");
    let mut a = open(a_server.addr, "p").await;
    let b = open(b_addr, "p").await;
    sees(&mut a, &b.id).await;
    b_process.child.kill().expect("kill -9 B");
    let killed = Instant::now();
    a.wait_for("leave", |d| d["id"] == b.id.as_str()).await;
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "gone after {:?}",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_keep_serving_while_redis_is_down_and_resync_when_it_is_back() {
    let mut redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    let mut a = open(a_server.addr, "p").await;
    let _b = reader_seeing(&b_server, &mut a).await;

    redis.kill();
    // Each instance still serves its own readers.
    let mut local = open(a_server.addr, "p").await;
    move_to(a_server.addr, "p", &a, 3.0).await;
    local
        .wait_for("moves", |d| {
            d["moves"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["pos"] == 3.0))
        })
        .await;
    let total_while_down = local.state.data["total"].as_u64().unwrap_or(0);
    // A reload while Redis is away still resumes, on the instance that
    // issued its ticket.
    let (id, token) = (local.id.clone(), local.token.clone());
    local.close();
    let ticket = ticket_for(a_server.addr, "p", &token).await;
    let local = resume_by_ticket(a_server.addr, "p", &ticket).await;
    assert_eq!(local.id, id, "resumed by a ticket kept on A alone");

    redis.restart().await;
    // Back: a new reader on B reaches A again, and no count went backwards.
    let b2 = reader_seeing(&b_server, &mut a).await;
    sees(&mut a, &b2.id).await;
    let again = open(a_server.addr, "p").await;
    assert!(
        again.state.data["total"].as_u64().unwrap_or(0) > total_while_down,
        "the total only grows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowded_room_counts_every_instances_readers() {
    let redis = Redis::start().await;
    let crowded = |redis: &Redis| {
        let url = redis.url();
        start_server(one_post(12), move |c| {
            c.redis = Some(url);
            c.crowd = 2;
        })
    };
    let (a_server, b_server) = (crowded(&redis).await, crowded(&redis).await);
    let mut a1 = open(a_server.addr, "p").await;
    let mut b1 = reader_seeing(&b_server, &mut a1).await;

    // A third reader, on A: three in the room, over two instances.
    let a2 = open(a_server.addr, "p").await;
    let summed = |d: &serde_json::Value| {
        d["counts"]
            .as_array()
            .map_or(0, |c| c.iter().filter_map(|n| n.as_u64()).sum::<u64>())
    };
    b1.wait_for("density", |d| summed(d) == 3 && d["now"] == 3)
        .await;

    // Moves on A show in B's density, and what crosses Redis is A's
    // counts, at most one message a crowd interval, never its moves.
    let mut channel = redis.listen("ghostread:room:{p}").await;
    for (n, pos) in [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5].into_iter().enumerate() {
        move_to(a_server.addr, "p", &a2, pos).await;
        move_to(a_server.addr, "p", &a1, 11.0 - n as f64).await;
    }
    let (density, _) = b1
        .wait_for("density", |d| d["counts"][7] == 1 && d["counts"][5] == 1)
        .await;
    assert_eq!(summed(&density.data), 3, "{:?}", density.data);
    let mut heard = Vec::new();
    let is_counts = |m: &String| m.contains("\"kind\":\"counts\"");
    while !heard.iter().any(is_counts) {
        let message = tokio::time::timeout(Duration::from_secs(5), channel.recv())
            .await
            .expect("A's counts on the post's channel")
            .expect("the listener runs");
        heard.push(message);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(message) = channel.try_recv() {
        heard.push(message);
    }
    assert!(
        heard.iter().all(|m| !m.contains("\"moves\"")),
        "no moves of a crowded room cross Redis: {heard:?}"
    );
    assert!(
        heard.iter().filter(|m| is_counts(m)).count() <= 4,
        "counts at most once a crowd interval: {heard:?}"
    );
    a1.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resuming_on_another_instance_while_its_stream_is_open_is_taken_over_not_shown_twice(
) {
    let redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    // A reader on B, and a phone whose stream is on A, each seeing the other.
    let mut on_b = open(b_server.addr, "p").await;
    let mut phone = reader_seeing(&a_server, &mut on_b).await;
    sees(&mut on_b, &phone.id).await;

    // The phone changes networks: its EventSource reconnects, through the
    // load balancer to B, while A still holds its old stream open.
    let moved = resume(b_server.addr, "p", &phone.token).await;
    assert_eq!(
        (moved.id.as_str(), moved.color.as_str()),
        (phone.id.as_str(), phone.color.as_str()),
        "the same ghost, now on B"
    );
    // A ended the old stream, and counts it as a takeover.
    phone.wait_closed().await;
    assert_eq!(
        metric(a_server.addr, "ghostread_takeovers_total").await,
        1.0
    );

    // Both instances show two readers, and the ghost once, from B. The
    // reader on B keeps seeing the phone's ghost move.
    let reading_now = |addr: std::net::SocketAddr| async move {
        common::get(addr, "/posts/p")
            .await
            .text()
            .contains("<span data-now>2</span>")
    };
    wait_until("A shows two readers", || reading_now(a_server.addr)).await;
    wait_until("B shows two readers", || reading_now(b_server.addr)).await;
    move_to(b_server.addr, "p", &moved, 6.5).await;
    sees_at(&mut on_b, &moved.id, 6.5).await;
    let fresh = open(a_server.addr, "p").await;
    let ghosts = fresh.state.data["ghosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ghosts
            .iter()
            .filter(|g| g["id"] == moved.id.as_str())
            .count(),
        1,
        "A shows the ghost once: {ghosts:?}"
    );
    // The old token's stream is over on A, and nobody is counted twice.
    assert_eq!(metric(b_server.addr, "ghostread_joins_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heat_map_sums_every_instances_readers() {
    let redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    let (a, b) = (
        open(a_server.addr, "p").await,
        open(b_server.addr, "p").await,
    );
    // Each at a block only they read: a block's seconds on the other
    // instance can only have come through the cluster.
    move_to(a_server.addr, "p", &a, 3.5).await;
    move_to(b_server.addr, "p", &b, 5.2).await;
    wait_until("A shows B's reader's block", || async {
        heat_at(a_server.addr, 5).await >= 1.0 && heat_at(a_server.addr, 3).await >= 1.0
    })
    .await;
    wait_until("B shows A's reader's block", || async {
        heat_at(b_server.addr, 3).await >= 1.0 && heat_at(b_server.addr, 5).await >= 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_of_many_posts_answers_while_redis_is_stalled() {
    let redis = Redis::start().await;
    let posts = TempDir::new("posts");
    for n in 0..40 {
        posts.write(
            &format!("p{n}.md"),
            common::post(&format!("Post {n}"), "2025-01-01", "Text."),
        );
    }
    let url = redis.url();
    let server = start_server(posts, move |c| c.redis = Some(url)).await;
    assert_eq!(common::get(server.addr, "/stats").await.status, 200);

    // Every Redis command now waits 8 s. The page waits a bounded time for
    // Redis, then shows this instance's own heat.
    redis.stall(Duration::from_secs(8)).await;
    let asked = Instant::now();
    let page = tokio::time::timeout(Duration::from_secs(6), common::get(server.addr, "/stats"))
        .await
        .unwrap_or_else(|_| panic!("/stats still waiting after {:?}", asked.elapsed()));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Post 39"));
    println!(
        "/stats of 40 posts with Redis stalled: {:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_pauses_for_a_second_and_a_half_is_slow_not_lost() {
    let redis = Redis::start().await;
    let (posts, data) = (one_post(4), TempDir::new("data"));
    let url = redis.url();
    let mut server = Running::serve_with(&posts, &data, &["--redis", &url]);
    let addr = server.addr();
    server.wait_for_line("joined through Redis");
    let _reader = open(addr, "p").await;
    // Every command waits 1.5 s: under the link's deadline (2 s), over
    // redis-rs's own reply timeout (500 ms), which used to make the link
    // drop Redis and re-sync everything (seen on every try). The link
    // publishes a heartbeat every second, so it meets the pause.
    redis.stall(Duration::from_millis(1500)).await;
    // Anything asked of Redis now waits for the pause to end. A link that
    // gave up would have said so before it could publish again.
    let after_pause = redis.calls("publish").await;
    wait_until("the link publishes twice more", || async {
        redis.calls("publish").await >= after_pause + 2
    })
    .await;
    assert_eq!(
        server.lines_containing("lost Redis"),
        0,
        "a pause under the deadline counted as a lost Redis"
    );
}
