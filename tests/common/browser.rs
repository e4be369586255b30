//! Real Chromium, driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`), for the browser client's tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// One chromedriver process; each [`Browser`] is a session (a Chromium) on it.
pub struct Driver {
    child: Child,
    pub port: u16,
    profiles: super::TempDir,
}

impl Driver {
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port for chromedriver");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium chromium-driver, or run bash .ci/test)");
        let driver = Driver {
            child,
            port,
            profiles: super::TempDir::new("chrome"),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        super::wait_until("chromedriver answers", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        driver
    }

    /// A fresh headless Chromium with its own profile, at `width` × `height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        self.browser_with(width, height, json!({})).await
    }

    /// A browser whose every request goes through the forward proxy at
    /// `proxy` (loopback included, which Chromium otherwise never proxies).
    pub async fn browser_behind(
        &self,
        width: u32,
        height: u32,
        proxy: std::net::SocketAddr,
    ) -> Browser {
        self.launch(
            width,
            height,
            json!({}),
            &[
                format!("--proxy-server=http://{proxy}"),
                "--proxy-bypass-list=<-loopback>".to_string(),
            ],
        )
        .await
    }

    /// A browser started with more command-line flags.
    pub async fn browser_with_args(&self, width: u32, height: u32, args: &[String]) -> Browser {
        self.launch(width, height, json!({}), args).await
    }

    /// A browser whose reader asked for reduced motion.
    pub async fn browser_reduced_motion(&self, width: u32, height: u32) -> Browser {
        self.launch(
            width,
            height,
            json!({}),
            &["--force-prefers-reduced-motion".to_string()],
        )
        .await
    }

    /// A browser with JavaScript turned off, as some readers have it.
    pub async fn browser_without_js(&self, width: u32, height: u32) -> Browser {
        self.browser_with(
            width,
            height,
            json!({ "profile.managed_default_content_settings.javascript": 2 }),
        )
        .await
    }

    async fn browser_with(&self, width: u32, height: u32, prefs: Value) -> Browser {
        self.launch(width, height, prefs, &[]).await
    }

    async fn launch(&self, width: u32, height: u32, prefs: Value, extra: &[String]) -> Browser {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = self.profiles.path().join(format!("profile-{n}"));
        let mut capabilities = serde_json::Map::new();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--window-size={width},{height}"));
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().cloned());
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": args,
                "prefs": prefs,
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver_port: self.port,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed before closing its browser leaves Chromium
        // running without its chromedriver: end whatever uses our profiles.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profiles.path())
            .status();
    }
}

/// One browser window.
pub struct Browser {
    pub client: Client,
    driver_port: u16,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns
    /// its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `expression` (a JavaScript expression) until it is truthy;
    /// returns its value. Fails the test after `limit`.
    pub async fn wait_for_within(&self, what: &str, expression: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        let script = format!("return ({expression});");
        loop {
            let value = self.js(&script, vec![]).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        self.wait_for_within(what, expression, Duration::from_secs(10))
            .await
    }

    /// POSTs `body` to one of chromedriver's own endpoints of this session
    /// (those fantoccini has no method for); the answer's `value`.
    async fn driver_post(&self, endpoint: &str, body: &Value) -> Value {
        let session = self
            .client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("session id");
        let body = body.to_string();
        let request = format!(
            "POST /session/{session}/{endpoint} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.driver_port));
        super::send(addr, &request).await.json()["value"].clone()
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        let body = json!({ "cmd": command, "params": params });
        self.driver_post("goog/cdp/execute", &body).await
    }

    /// Everything the page logged to the console since the last call.
    pub async fn console(&self) -> Vec<Value> {
        let body = json!({ "type": "browser" });
        let logged = self.driver_post("se/log", &body).await;
        logged.as_array().cloned().unwrap_or_default()
    }

    /// Scrolls so the reading line (a third down the viewport) is `fraction`
    /// into block `index`.
    pub async fn read_block(&self, index: usize, fraction: f64) {
        self.js(
            "const el = document.querySelector('[data-block=\"' + arguments[0] + '\"]');
             const r = el.getBoundingClientRect();
             window.scrollTo(0, r.top + window.scrollY + r.height * arguments[1] - window.innerHeight / 3);",
            vec![json!(index), json!(fraction)],
        )
        .await;
    }

    /// Opens a new tab (shown; the current one is hidden) at `url`, and
    /// returns its handle.
    pub async fn open_tab(&self, url: &str) -> fantoccini::wd::WindowHandle {
        let tab = self.client.new_window(true).await.expect("a new tab");
        self.client
            .switch_to_window(tab.handle.clone())
            .await
            .expect("switch to the new tab");
        self.goto(url).await;
        tab.handle
    }

    /// Shows tab `handle` (the shown one is hidden).
    pub async fn show_tab(&self, handle: &fantoccini::wd::WindowHandle) {
        self.client
            .switch_to_window(handle.clone())
            .await
            .expect("switch tabs");
    }

    /// The handle of the tab shown now.
    pub async fn this_tab(&self) -> fantoccini::wd::WindowHandle {
        self.client.window().await.expect("the current tab")
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("screenshot")
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

// --- What the browser tests share ---------------------------------------

/// One Chromium set at a time: two cores do not run a dozen well.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const LONG: &str = "one-task-to-own-them-all";

/// One browser test's world: its turn at the browsers, a server on the
/// sample blog, and chromedriver.
pub struct Scene {
    _one: tokio::sync::MutexGuard<'static, ()>,
    pub server: super::TestServer,
    pub driver: Driver,
}

impl Scene {
    pub async fn new(configure: impl FnOnce(&mut ghostread::Config)) -> Scene {
        Scene::with_posts(super::sample_blog(), configure).await
    }

    /// The same with these posts.
    pub async fn with_posts(
        posts: super::TempDir,
        configure: impl FnOnce(&mut ghostread::Config),
    ) -> Scene {
        let one = ONE_AT_A_TIME.lock().await;
        let server = super::start_server(posts, configure).await;
        Scene {
            _one: one,
            server,
            driver: Driver::start().await,
        }
    }

    /// A 1280 × 900 browser reading the long post.
    pub async fn reader(&self) -> Browser {
        self.reading(self.driver.browser(1280, 900).await).await
    }

    /// The same with JavaScript off.
    pub async fn reader_without_js(&self) -> Browser {
        self.reading(self.driver.browser_without_js(1280, 900).await)
            .await
    }

    async fn reading(&self, browser: Browser) -> Browser {
        browser
            .goto(&format!("http://{}/posts/{LONG}", self.server.addr))
            .await;
        browser
    }
}

/// A JavaScript expression: the block that ghost `id` is drawn beside in
/// this page's own layout, or -1.
pub fn block_of(id: &str) -> String {
    block_in("document", "block", id)
}

/// The same where the ghosts are drawn inside `root` (a JavaScript
/// expression: `document`, or an embed's shadow root) and the page's
/// blocks carry `data-{attribute}` (`dataset` names them in camel case).
pub fn block_in(root: &str, attribute: &str, id: &str) -> String {
    let dataset: String = attribute
        .split('-')
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_string(),
            _ => part[..1].to_uppercase() + &part[1..],
        })
        .collect();
    format!(
        "(() => {{
            const root = {root};
            const g = root && root.querySelector('[data-ghost=\"{id}\"]:not([data-self])');
            if (!g || !g.style.transform) return -1;
            const y = parseFloat(g.style.transform.slice('translateY('.length));
            const top = root.querySelector('.reader').getBoundingClientRect().top;
            for (const b of document.querySelectorAll('[data-{attribute}]')) {{
                const r = b.getBoundingClientRect();
                if (y >= r.top - top && y <= r.bottom - top) return Number(b.dataset.{dataset});
            }}
            return -1;
        }})()"
    )
}

pub const OWN_ID: &str =
    "document.querySelector('[data-self]') && document.querySelector('[data-self]').dataset.ghost";

pub async fn own_id(browser: &Browser) -> String {
    browser
        .wait_for("the reader's own ghost", OWN_ID)
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Console entries at SEVERE level, except what `allowed` matches.
pub async fn console_errors(browser: &Browser, allowed: &[&str]) -> Vec<Value> {
    browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            !allowed
                .iter()
                .any(|a| entry["message"].as_str().unwrap_or("").contains(a))
        })
        .collect()
}
