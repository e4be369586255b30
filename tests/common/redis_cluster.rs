//! A real Redis Cluster of three masters, each with a replica (Debian's
//! `redis-server` with `cluster-enabled yes`, joined by `redis-cli
//! --cluster create`), on free loopback ports.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisCluster {
    nodes: Vec<(u16, Option<Child>)>,
    _dir: super::TempDir,
}

/// A port free for a node and for its cluster bus (the port + 10000).
fn free_node_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let dir = super::TempDir::new("redis-cluster");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_node_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                // A master silent this long is failed over to its replica.
                .args(["--cluster-node-timeout", "2000"])
                // A replica may take over however long ago it last synced:
                // the test's cluster is seconds old.
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server (apt-get install redis-server, or run bash .ci/test)");
            nodes.push((port, Some(child)));
        }
        for (port, _) in &nodes {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            super::wait_until("a cluster node listens", || async {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await;
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes, _dir: dir };
        for (port, _) in &cluster.nodes {
            let port = *port;
            super::wait_until("the cluster is formed", || async move {
                node_says(port, &["CLUSTER", "INFO"])
                    .await
                    .contains("cluster_state:ok")
            })
            .await;
        }
        cluster
    }

    /// The seed nodes, as `--redis` takes them: every master.
    pub fn url(&self) -> String {
        self.nodes[..3]
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills (as a crash would) the master that holds `key`'s slot now;
    /// its replica takes over after the node timeout. Its port.
    pub async fn kill_master_of(&mut self, key: &str) -> u16 {
        let alive = self.alive_port();
        let slot: u16 = node_says(alive, &["CLUSTER", "KEYSLOT", key])
            .await
            .trim()
            .parse()
            .expect("a slot");
        let nodes = node_says(alive, &["CLUSTER", "NODES"]).await;
        let port = nodes
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .find(|line| {
                line.split_whitespace().skip(8).any(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    let (from, to) = (from.parse().unwrap_or(u16::MAX), to.parse().unwrap_or(0));
                    (from..=to).contains(&slot)
                })
            })
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|address| address.split(['@', ':']).nth(1))
            .and_then(|port| port.parse().ok())
            .expect("the master of the key's slot");
        for (node, child) in &mut self.nodes {
            if *node == port {
                if let Some(mut child) = child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        port
    }

    /// Waits until every live node says the cluster is whole again.
    pub async fn wait_until_healed(&self) {
        for (port, child) in &self.nodes {
            if child.is_none() {
                continue;
            }
            let port = *port;
            super::wait_until("the cluster heals", || async move {
                node_says(port, &["CLUSTER", "INFO"])
                    .await
                    .contains("cluster_state:ok")
            })
            .await;
        }
    }

    /// How many times every live node together ran `command` (lowercase).
    pub async fn calls(&self, command: &str) -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        let mut calls = 0;
        for (port, child) in &self.nodes {
            if child.is_none() {
                continue;
            }
            let info = node_says(*port, &["INFO", "commandstats"]).await;
            calls += info
                .lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        calls
    }

    fn alive_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
            .expect("a live node")
    }
}

/// One node's answer to a command, as text ("" if it does not answer).
async fn node_says(port: u16, args: &[&str]) -> String {
    let ask = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        match cmd
            .query_async::<redis::Value>(&mut connection)
            .await
            .ok()?
        {
            redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            redis::Value::VerbatimString { text, .. } => Some(text),
            redis::Value::Int(n) => Some(n.to_string()),
            other => Some(format!("{other:?}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
