//! `--browser-frames SECONDS`: once every simulated reader is in, a real
//! Chromium (Debian's `chromium` and `chromium-driver`, headless) opens the
//! first post, a page in the room the run has filled, and scrolls it up
//! and down for that long while it draws what the room sends (bands,
//! neighbours, counts). The page times every frame from
//! `requestAnimationFrame` to the next: what a reader would feel as jank.
//! The browser shares the machine with the server and the harness, as a
//! reader's laptop would not: a frame time it meets here it meets there.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::ClientBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::report::Percentiles;

/// Scrolls the page, a few pixels a frame, turning at either end, for
/// `arguments[0]` seconds, then answers every frame's time (ms).
const SCROLL_AND_TIME: &str = "
    const done = arguments[arguments.length - 1];
    const seconds = arguments[0];
    const frames = [];
    let last = 0;
    let step = 6;
    const end = performance.now() + seconds * 1000;
    function frame(t) {
        if (last) frames.push(t - last);
        last = t;
        const bottom = document.documentElement.scrollHeight - innerHeight;
        if (scrollY + step > bottom || scrollY + step < 0) step = -step;
        window.scrollBy(0, step);
        if (t < end) requestAnimationFrame(frame); else done(frames);
    }
    requestAnimationFrame(frame);";

/// The frame times of a page of `slug` scrolled for `seconds`; `None` if
/// Chromium could not be started (said on stderr).
pub async fn frame_times(addr: SocketAddr, slug: &str, seconds: u64) -> Option<Percentiles> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()?;
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("--browser-frames: cannot start chromedriver ({e}); apt-get install chromium chromium-driver"))
            .ok()?,
    );
    let profile =
        std::env::temp_dir().join(format!("ghostread-load-chrome-{}", std::process::id()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-extensions",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(connected) = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            client = Some(connected);
            break;
        }
    }
    let Some(client) = client else {
        eprintln!("--browser-frames: no Chromium session");
        return None;
    };
    let measured = async {
        client
            .goto(&format!("http://{addr}/posts/{slug}"))
            .await
            .ok()?;
        // Until the room has drawn itself: its bands are on the page.
        for _ in 0..100 {
            let drawn = client
                .execute(
                    "return !!document.querySelector('.ghost-density:not([hidden])')",
                    vec![],
                )
                .await
                .ok()?;
            if drawn == Value::Bool(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let frames = client
            .execute_async(SCROLL_AND_TIME, vec![json!(seconds)])
            .await
            .ok()?;
        let mut histogram = crate::stats::histogram();
        for ms in frames.as_array()? {
            let _ = histogram.record((ms.as_f64()? * 1000.0).max(1.0) as u64);
        }
        Some(Percentiles::of(&histogram))
    }
    .await;
    let _ = client.close().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    if measured.is_none() {
        eprintln!("--browser-frames: the page could not be timed");
    }
    measured
}

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
