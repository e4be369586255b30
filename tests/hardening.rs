//! What a careful attacker or a bad day can still try, and what the server
//! answers: no redirect off the site, headers that keep other sites'
//! scripts and frames out, and settings that make no sense refused at start.

mod common;

use common::binary::Running;
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
