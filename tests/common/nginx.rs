//! A real nginx (Debian's package) as a reverse proxy in front of a test
//! server, on loopback, with a config written by the test.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    _dir: super::TempDir,
}

impl Nginx {
    /// nginx with its defaults (proxy buffering on) proxying to `upstream`,
    /// plus `extra` directives in the proxied location.
    pub async fn proxy(upstream: SocketAddr, extra: &str) -> Nginx {
        let dir = super::TempDir::new("nginx");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port for nginx");
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
               upstream ghostread {{ server {upstream}; keepalive 16; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location / {{\n      proxy_pass http://ghostread;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      {extra}\n    }}\n  }}\n}}\n",
            dir = dir.path().display(),
        );
        let child = start(&dir, &conf);
        // Owned before any wait, so a failed start still stops nginx on drop.
        let nginx = Nginx {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        let addr = nginx.addr;
        super::wait_until("nginx listens", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert_eq!(
            super::get(addr, "/healthz").await.status,
            200,
            "nginx reaches the server"
        );
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A real nginx serving static sites, each folder on its own port (so each
/// is its own origin), every answer with `Content-Security-Policy: csp`.
pub struct Sites {
    child: Child,
    _dir: super::TempDir,
}

impl Sites {
    /// Serves each `(port, folder)`; ports from [`free_port`].
    pub async fn serve(sites: &[(u16, &std::path::Path)], csp: &str) -> Sites {
        let dir = super::TempDir::new("nginx-sites");
        let servers: String = sites
            .iter()
            .map(|(port, root)| {
                format!(
                    "  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    index index.html;\n\
                     add_header Content-Security-Policy \"{csp}\" always;\n\
                     location / {{ try_files $uri $uri/ =404; }}\n  }}\n",
                    root = root.display()
                )
            })
            .collect();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  include /etc/nginx/mime.types;\n\
               client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             {servers}}}\n",
            dir = dir.path().display(),
        );
        let child = start(&dir, &conf);
        let served = Sites { child, _dir: dir };
        for (port, _) in sites {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            super::wait_until("nginx serves the site", || async {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await;
        }
        served
    }
}

impl Drop for Sites {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A port nothing listens on now, for a server the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts nginx with `conf` written in `dir`.
fn start(dir: &super::TempDir, conf: &str) -> Child {
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    Command::new("nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (apt-get install nginx-light, or run bash .ci/test)")
}

/// SIGTERM lets the master stop its worker; SIGKILL would orphan it.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
