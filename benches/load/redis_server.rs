//! The Redis a cluster run shares: one `redis-server`, or a Redis Cluster
//! of three masters with a replica each (`--redis-cluster`), started on
//! free loopback ports and stopped with the run.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Redis processes, the `--redis` value for the instances, and each
/// node's own URL (to read its statistics).
pub struct Started {
    pub children: Vec<Child>,
    pub url: String,
    pub nodes: Vec<String>,
}

pub fn start(cluster: bool, dir: &std::path::Path) -> Started {
    let count = if cluster { 6 } else { 1 };
    let mut children = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..count {
        let port = loop {
            let port = free_port();
            // A cluster node also listens on its port + 10000.
            if !cluster
                || (port < 55_000
                    && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok())
            {
                break port;
            }
        };
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        if cluster {
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")]);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server for cluster mode (apt-get install redis-server)");
        wait_for(port);
        children.push(child);
        ports.push(port);
    }
    let nodes: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    if !cluster {
        return Started {
            children,
            url: nodes[0].clone(),
            nodes,
        };
    }
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .expect("run redis-cli --cluster create");
    assert!(created.success(), "redis-cli --cluster create failed");
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in &ports {
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the Redis Cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let url = nodes[..3].join(",");
    Started {
        children,
        url,
        nodes,
    }
}

fn wait_for(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
