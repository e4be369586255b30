//! A real redis-server (Debian's package) on a free loopback port.

use std::process::{Child, Command, Stdio};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    _dir: super::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port for Redis");
        let mut redis = Redis {
            child: None,
            port,
            _dir: super::TempDir::new("redis"),
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis at once (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Redis again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server, or run bash .ci/test)");
        self.child = Some(child);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        super::wait_until("Redis listens", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
    }

    /// A fresh connection of the test's own, beside the server's. It waits
    /// out a paused Redis (redis-rs alone would give up after 500 ms).
    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let patient = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        redis::Client::open(self.url())
            .expect("a Redis URL")
            .get_multiplexed_async_connection_with_config(&patient)
            .await
            .expect("connect to Redis")
    }

    /// Whether `key` exists, asked over a fresh connection. A Redis that
    /// does not answer fails the test: "not there" must mean not there.
    pub async fn exists(&self, key: &str) -> bool {
        let mut connection = self.connection().await;
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<u32>(&mut connection)
            .await
            .expect("EXISTS")
            == 1
    }

    /// Makes Redis hold every client's commands for `how_long` (`CLIENT
    /// PAUSE`), as a Redis stuck on a slow disk or a long script would.
    pub async fn stall(&self, how_long: std::time::Duration) {
        let mut connection = self.connection().await;
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(how_long.as_millis() as u64)
            .arg("ALL")
            .query_async::<()>(&mut connection)
            .await
            .expect("CLIENT PAUSE");
    }

    /// How many times Redis has run `command` (lowercase, as `INFO
    /// commandstats` names it) since it started.
    pub async fn calls(&self, command: &str) -> u64 {
        let mut connection = self.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await
            .expect("INFO");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Every message published on `channel` from now on, as text.
    pub async fn listen(&self, channel: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .expect("a pub/sub connection");
        pubsub.subscribe(channel).await.expect("SUBSCRIBE");
        let (sender, messages) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            use tokio_stream::StreamExt;
            let mut stream = pubsub.into_on_message();
            while let Some(message) = stream.next().await {
                let text = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                if sender.send(text).is_err() {
                    return;
                }
            }
        });
        messages
    }

    /// How many clients are subscribed to `channel` now.
    pub async fn subscribers(&self, channel: &str) -> u64 {
        let mut connection = self.connection().await;
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut connection)
            .await
            .expect("PUBSUB NUMSUB");
        n
    }

    /// Writes `value` under `key`, as another program (or an attacker with
    /// access to Redis) could.
    pub async fn set(&self, key: &str, value: &str) {
        let mut connection = self.connection().await;
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut connection)
            .await
            .expect("SET");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
