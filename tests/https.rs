//! HTTPS without a proxy: TLS on the same port as plain HTTP, HTTP/2 by
//! ALPN so Chromium's tabs share one connection (and so more streams than
//! HTTP/1.1's six per site), and a renewed certificate picked up without a
//! restart. The certificate is made here with `openssl`, and Chromium
//! trusts exactly its key.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::binary::Running;
use common::browser::{own_id, Scene};
use common::sse::metric;
use common::{get, wait_until, TempDir};

/// A self-signed certificate for 127.0.0.1 and localhost, and its key.
fn make_certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (apt-get install openssl)");
    assert!(status.success(), "openssl made the certificate");
    (cert, key)
}

/// `sh -c` with a pipeline of openssl commands; its output, trimmed.
fn shell(script: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The base64 SHA-256 of the certificate's public key, as Chromium's
/// `--ignore-certificate-errors-spki-list` wants it.
fn spki_hash(cert: &Path) -> String {
    shell(&format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    ))
}

/// The fingerprint of the certificate the server presents now.
fn served_fingerprint(addr: std::net::SocketAddr) -> String {
    shell(&format!(
        "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    ))
}

fn file_fingerprint(cert: &Path) -> String {
    shell(&format!(
        "openssl x509 -in '{}' -noout -fingerprint -sha256",
        cert.display()
    ))
}

/// Eight posts, so eight tabs can each read a different one.
fn eight_posts() -> TempDir {
    let posts = TempDir::new("posts");
    for n in 1..=8 {
        posts.write(
            &format!("p{n}.md"),
            common::post(
                &format!("Post {n}"),
                "2026-01-01",
                "One.\n\nTwo.\n\nThree.\n\nFour.",
            ),
        );
    }
    posts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tabs_over_https_hold_eight_streams_on_one_http2_connection() {
    let certs = TempDir::new("certs");
    let (cert, key) = make_certificate(certs.path(), "first");
    let tls = Some(ghostread::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
    });
    // A short header timeout: on a busy machine Chromium may open a spare
    // connection beside the first and never send a request on it; the
    // server drops such a socket one header timeout after accepting it.
    let scene = Scene::with_posts(eight_posts(), move |c| {
        c.tls = tls;
        c.header_timeout = Duration::from_secs(3);
    })
    .await;
    let addr = scene.server.addr;
    // Plain HTTP still answers on the same port.
    assert_eq!(get(addr, "/healthz").await.status, 200);

    let browser = scene
        .driver
        .browser_with_args(
            1000,
            800,
            &[format!(
                "--ignore-certificate-errors-spki-list={}",
                spki_hash(&cert)
            )],
        )
        .await;
    browser
        .goto(&format!("https://127.0.0.1:{}/posts/p1", addr.port()))
        .await;
    own_id(&browser).await;
    let protocol = browser
        .js(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
            vec![],
        )
        .await;
    assert_eq!(protocol, "h2", "HTTP/2 by ALPN");
    for n in 2..=8 {
        browser
            .open_tab(&format!("https://127.0.0.1:{}/posts/p{n}", addr.port()))
            .await;
        own_id(&browser).await;
    }
    // Every tab holds its stream at once, hidden or not: over HTTP/2 they
    // cost no connection.
    wait_until("eight streams open at once", || async {
        metric(addr, "ghostread_streams_open").await == 8.0
    })
    .await;
    // One for the browser and one for this metrics request. Waited for, not
    // read once: a spare connection Chromium opened and never used lasts
    // until the header timeout drops it, and the previous metrics request's
    // connection is counted until the server has seen it close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let connections = metric(addr, "ghostread_connections_open").await;
        if connections <= 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "one connection for the browser (and this metrics request): {connections}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let errors = common::browser::console_errors(&browser, &[]).await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_bad_files_are_refused() {
    let certs = TempDir::new("certs");
    let (cert, key) = make_certificate(certs.path(), "live");
    let (posts, data) = (eight_posts(), TempDir::new("data"));
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut server = Running::serve_with(
        &posts,
        &data,
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
    );
    let line = server.wait_for_line("listening on");
    assert!(line.contains("https://"), "{line}");
    let addr = server.addr();
    let first = served_fingerprint(addr);
    assert_eq!(first, file_fingerprint(&cert));

    // A renewal: a new pair written over the old files.
    let (new_cert, new_key) = make_certificate(certs.path(), "renewed");
    std::fs::copy(&new_key, &key).expect("new key");
    std::fs::copy(&new_cert, &cert).expect("new certificate");
    let renewed = file_fingerprint(&cert);
    assert_ne!(renewed, first);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while served_fingerprint(addr) != renewed {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.wait_for_line("reloaded the TLS certificate");
    // A broken renewal keeps the last good certificate.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("break it");
    server.wait_for_line("still serving the previous one");
    assert_eq!(served_fingerprint(addr), renewed);
    server.terminate();
    server.wait_exit(Duration::from_secs(10));

    // Files that are not a certificate and key: a clear error, at start.
    let nothing = certs.path().join("missing.pem");
    let (code, log) = Running::refused(&[
        "--tls-cert",
        &nothing.display().to_string(),
        "--tls-key",
        &key_arg,
    ])
    .await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("cannot serve HTTPS") && log.contains("missing.pem"),
        "{log}"
    );
    let (code, log) = Running::refused(&["--tls-cert", &cert_arg]).await;
    assert_eq!(code, Some(2), "--tls-cert needs --tls-key: {log}");
}
