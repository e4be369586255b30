//! One-time resume tickets in cluster mode, against a real Redis: a
//! reload's ticket is good on whichever instance its stream reaches, once;
//! a slow Redis never makes a ticket good twice; made-up tickets are
//! refused before they cost Redis anything.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{instance, reader_seeing};
use common::redis::Redis;
use common::sse::{open, open_with, resume_by_ticket, ticket_for};
use common::{one_post, start_server, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_ticket_and_stream_reach_different_instances_keeps_its_ghost_once() {
    let redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    let mut on_b = open(b_server.addr, "p").await;
    let page = reader_seeing(&a_server, &mut on_b).await;
    let (id, color, token) = (page.id.clone(), page.color.clone(), page.token.clone());

    // The page reloads behind a load balancer without sticky sessions: its
    // ticket request reaches A, and its new stream reaches B.
    page.close();
    on_b.wait_for("leave", |d| d["id"] == id.as_str()).await;
    let ticket = ticket_for(a_server.addr, "p", &token).await;
    assert!(
        redis.exists(&format!("ghostread:ticket:{ticket}")).await,
        "A answered once Redis held the ticket"
    );
    let back = resume_by_ticket(b_server.addr, "p", &ticket).await;
    assert_eq!(
        (back.id.as_str(), back.color.as_str()),
        (id.as_str(), color.as_str()),
        "the ticket from A resumed the ghost on B"
    );
    assert!(
        !redis.exists(&format!("ghostread:ticket:{ticket}")).await,
        "a redeemed ticket is gone from Redis"
    );

    // Spent everywhere: the logged URL resumes nothing on either instance.
    for server in [&a_server, &b_server] {
        let replayed = resume_by_ticket(server.addr, "p", &ticket).await;
        assert_ne!(replayed.id, id, "a used ticket is worthless anywhere");
    }
    // What Redis holds is checked before it moves a ghost: a ticket for
    // the live ghost's real token but another post, or for a token of the
    // wrong shape (another program's, or a forged write), resumes nothing.
    let forged = [
        format!(r#"{{"token":"{}","slug":"q"}}"#, back.token),
        r#"{"token":"not a token","slug":"p"}"#.to_string(),
        "not even JSON".to_string(),
    ];
    for (n, value) in forged.iter().enumerate() {
        let ticket = format!("{n:032x}");
        redis
            .set(&format!("ghostread:ticket:{ticket}"), value)
            .await;
        let stream = resume_by_ticket(b_server.addr, "p", &ticket).await;
        assert_ne!(stream.id, id, "{value} resumed the ghost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_issued_while_redis_is_slow_is_good_once_on_its_own_instance() {
    let redis = Redis::start().await;
    let (a_server, b_server) = (instance(&redis).await, instance(&redis).await);
    let mut on_b = open(b_server.addr, "p").await;
    let page = reader_seeing(&a_server, &mut on_b).await;
    let (id, token) = (page.id.clone(), page.token.clone());
    page.close();
    on_b.wait_for("leave", |d| d["id"] == id.as_str()).await;

    // Redis holds every command for 1.5 s: A gives up waiting for the
    // ticket's write after half a second and keeps a ticket itself. The
    // write lands later, but under another ticket, given to nobody.
    redis.stall(Duration::from_millis(1500)).await;
    let ticket = ticket_for(a_server.addr, "p", &token).await;
    wait_until("the late write lands in Redis", || async {
        redis.calls("psetex").await >= 1
    })
    .await;
    assert!(
        !redis.exists(&format!("ghostread:ticket:{ticket}")).await,
        "the ticket A gave out is not also good through Redis"
    );
    let elsewhere = resume_by_ticket(b_server.addr, "p", &ticket).await;
    assert_ne!(elsewhere.id, id, "not good on B");
    let back = resume_by_ticket(a_server.addr, "p", &ticket).await;
    assert_eq!(back.id, id, "good once on A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_with_made_up_tickets_are_refused_before_they_cost_redis_a_lookup() {
    let redis = Redis::start().await;
    let url = redis.url();
    let server = start_server(one_post(4), move |c| {
        c.redis = Some(url);
        c.joins_per_sec = 5;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
    })
    .await;
    let before = redis.calls("getdel").await;
    let (mut refused, opening) = (0u32, Instant::now());
    for n in 0..30u32 {
        let path = format!(
            "/posts/p/events?resume={:032x}",
            0xdead_0000u128 + u128::from(n)
        );
        match open_with(server.addr, &path, "x-forwarded-for: 198.51.100.90\r\n").await {
            Ok(stream) => drop(stream),
            Err(answer) => {
                assert_eq!(answer.status, 429);
                refused += 1;
            }
        }
    }
    let lookups = redis.calls("getdel").await - before;
    // The bucket holds 5 and refills 5 a second, however slow the machine.
    let allowed = 5.0 + 5.0 * opening.elapsed().as_secs_f64() + 1.0;
    assert!(
        f64::from(refused) >= 30.0 - allowed,
        "only {refused} of 30 refused in {:?}",
        opening.elapsed()
    );
    // Each admitted stream looks its ticket up (and its ghost's parking
    // place when it resumes); a refused one asks Redis nothing.
    assert!(
        lookups <= u64::from(2 * (30 - refused)),
        "{lookups} Redis lookups for {} admitted streams",
        30 - refused
    );
}
