//! What a careful attacker or a bad day can still try, and what the server
//! answers: no redirect off the site, headers that keep other sites'
//! scripts and frames out, and settings that make no sense refused at start.

mod common;

use common::binary::Running;
use common::sse::{metric, move_to, open, open_with};
use common::{get, one_post, send, start_server};

#[tokio::test]
async fn no_answer_points_a_browser_at_another_origin() {
    let server = start_server(one_post(4), |_| {}).await;
    for raw in [
        "//evil.com/",
        "///evil.com/",
        "//evil.com//",
        "/%2Fevil.com/",
        "/posts/p/",
    ] {
        let answer = send(
            server.addr,
            &format!("GET {raw} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"),
        )
        .await;
        if let Some(location) = answer.header("location") {
            assert!(
                location.starts_with('/')
                    && !location.starts_with("//")
                    && !location.starts_with("/\\"),
                "{raw} redirects to {location}"
            );
        }
    }
    let answer = send(
        server.addr,
        "GET //evil.com/ HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 308);
    assert_eq!(answer.header("location"), Some("/evil.com"));
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = start_server(one_post(4), |_| {}).await;
    for path in [
        "/",
        "/posts/p",
        "/web/ghosts.js",
        "/web/ghostread.css",
        "/no-such-page",
        "/healthz",
    ] {
        let answer = get(server.addr, path).await;
        let csp = answer.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp:?}");
        assert!(csp.contains("frame-ancestors 'self'"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp:?}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            answer.header("referrer-policy"),
            Some("same-origin"),
            "{path}"
        );
        assert_eq!(
            answer.header("x-frame-options"),
            Some("SAMEORIGIN"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn absurd_settings_are_refused_at_start_with_exit_code_2() {
    let huge = u64::MAX.to_string();
    for (flag, value) in [
        ("--resume-secs", huge.as_str()),
        ("--heartbeat-secs", huge.as_str()),
        ("--heartbeat-secs", "0"),
        ("--header-timeout-secs", huge.as_str()),
        ("--save-interval-ms", huge.as_str()),
        ("--tick-ms", "0"),
        ("--moves-per-sec", "0"),
        ("--max-connections", "0"),
        ("--crowd-interval-ms", "0"),
        ("--poll-wait-secs", "100000"),
    ] {
        let (status, stderr) = Running::refused(&[flag, value]).await;
        assert_eq!(status, Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{flag} {value}: the error names the flag: {stderr}"
        );
    }
}

#[tokio::test]
async fn an_ipv6_client_is_limited_by_its_64_not_by_each_address_in_it() {
    // Behind a trusted proxy, so the test can speak for IPv6 clients.
    let server = start_server(one_post(4), |c| {
        c.max_streams_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
    })
    .await;
    let from = |address: &str| format!("x-forwarded-for: {address}\r\n");
    let _first = open_with(server.addr, "/posts/p/events", &from("2001:db8:7:7::1"))
        .await
        .expect("the first from its /64");
    let _second = open_with(server.addr, "/posts/p/events", &from("2001:db8:7:7::2"))
        .await
        .expect("the second from its /64");
    // Any other address of the same /64 is the same client.
    let refused = open_with(
        server.addr,
        "/posts/p/events",
        &from("2001:db8:7:7:ffff:ffff:ffff:ffff"),
    )
    .await
    .err()
    .expect("a third from the same /64 is refused");
    assert_eq!(refused.status, 429);
    // Another /64 is another client.
    let _other = open_with(server.addr, "/posts/p/events", &from("2001:db8:7:8::1"))
        .await
        .expect("another /64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_churning_streams_is_refused_before_the_manager_works_and_others_move_on() {
    let server = start_server(one_post(8), |c| {
        c.joins_per_sec = 20;
        c.resumes_per_sec = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
    })
    .await;
    let addr = server.addr;
    let reader = open(addr, "p").await;
    let churner = "x-forwarded-for: 198.51.100.66\r\n";
    let (mut refused, mut retry_after) = (0, None);
    for _ in 0..60 {
        match open_with(addr, "/posts/p/events", churner).await {
            Ok(stream) => drop(stream), // Opened and dropped at once, again and again.
            Err(answer) => {
                assert_eq!(answer.status, 429);
                retry_after = answer.header("retry-after").map(str::to_string);
                refused += 1;
            }
        }
    }
    assert!(refused >= 30, "only {refused} of 60 refused");
    assert!(retry_after.is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s >= 1)));
    let joins = metric(addr, "ghostread_joins_total").await;
    assert!(
        joins <= 1.0 + 20.0 + 5.0,
        "the manager booked {joins} ghosts for 60 tries"
    );
    // The reader who just reads moves on as ever.
    move_to(addr, "p", &reader, 4.5).await;

    // One token resumed again and again is held back too.
    let token = reader.token.clone();
    let resume = format!("last-event-id: {token}\r\nx-forwarded-for: 198.51.100.67\r\n");
    let mut held_back = 0;
    let mut last = token;
    let mut streams = Vec::new();
    for _ in 0..6 {
        match open_with(
            addr,
            "/posts/p/events",
            &resume.replace(&reader.token, &last),
        )
        .await
        {
            Ok(stream) => {
                // Each takeover ends the one before; the newest stays open.
                last = stream.token.clone();
                streams.push(stream);
            }
            Err(answer) => {
                assert_eq!(answer.status, 429);
                held_back += 1;
            }
        }
    }
    let _ = last;
    assert!(held_back >= 1, "takeovers of one token are limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_only_so_many_connections_and_gets_them_back() {
    let server = start_server(one_post(4), |c| c.max_connections_per_address = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    // The sixth from the same address is told at once, and closed.
    let refused = get(server.addr, "/healthz").await;
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert!(refused.text().contains("your address"));
    // Another address is another client.
    let other = common::sse::open_from(server.addr, "p", common::sse::source(3)).await;
    drop(other);
    // Closing one gives the address a connection back.
    drop(held.pop());
    common::wait_until("a connection is free again", || async {
        get(server.addr, "/healthz").await.status == 200
    })
    .await;
}
