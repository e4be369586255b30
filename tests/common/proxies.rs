//! The real proxies of the operating guide (docs/OPERATING.md) (Debian's packages), started on
//! loopback with the guide's own files from `docs/proxies/`: each file is
//! used as it stands, with only its example ports (`8080` for the proxy,
//! `127.0.0.1:4000` for ghostread) set to the test's. What wraps it here is
//! only what a process needs to run as a test (pid and log files, a
//! scratch folder), never a setting that changes how it proxies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::TempDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Haproxy,
    Caddy,
    Apache,
    Varnish,
    /// A forward proxy: the browser is configured to use it.
    Squid,
    /// A proxy as many corporate and antivirus proxies behave: it delivers a
    /// response only once it has all of it (Varnish told not to stream), so
    /// an event stream never arrives. Not in the guide: what the client's
    /// long-polling fallback is for.
    Buffering,
}

pub struct Proxy {
    child: Child,
    pub kind: Kind,
    pub addr: SocketAddr,
    dir: TempDir,
}

fn guide(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/proxies")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Proxy {
    /// `kind` in front of the ghostread at `upstream`.
    pub async fn start(kind: Kind, upstream: SocketAddr) -> Proxy {
        let dir = TempDir::new("proxy");
        // Proxies that drop their privileges must still reach their files.
        let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
        let port = free_port();
        let fill = |text: String| {
            text.replace("127.0.0.1:4000", &upstream.to_string())
                .replace("\"4000\"", &format!("\"{}\"", upstream.port()))
                .replace("8080", &port.to_string())
        };
        let d = dir.path().display().to_string();
        let mut command = match kind {
            Kind::Nginx => {
                std::fs::write(dir.path().join("site.conf"), fill(guide("nginx.conf")))
                    .expect("write site.conf");
                let conf = format!(
                    "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
                     events {{ worker_connections 1024; }}\n\
                     http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                     fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                     include {d}/site.conf;\n}}\n"
                );
                std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
                let mut command = Command::new("nginx");
                command.args(["-c", &format!("{d}/nginx.conf"), "-p", &d]);
                command
            }
            Kind::Haproxy => {
                let conf = format!(
                    "global\n    pidfile {d}/haproxy.pid\n\n{}",
                    fill(guide("haproxy.cfg"))
                );
                std::fs::write(dir.path().join("haproxy.cfg"), conf).expect("write haproxy.cfg");
                let mut command = Command::new("haproxy");
                command.args(["-db", "-f", &format!("{d}/haproxy.cfg")]);
                command
            }
            Kind::Caddy => {
                let conf = format!(
                    "{{\n    admin off\n    storage file_system {d}/caddy\n}}\n\n{}",
                    fill(guide("Caddyfile"))
                );
                std::fs::write(dir.path().join("Caddyfile"), conf).expect("write Caddyfile");
                let mut command = Command::new("caddy");
                command
                    .args([
                        "run",
                        "--adapter",
                        "caddyfile",
                        "--config",
                        &format!("{d}/Caddyfile"),
                    ])
                    .env("HOME", &d)
                    .env("XDG_DATA_HOME", &d)
                    .env("XDG_CONFIG_HOME", &d);
                command
            }
            Kind::Apache => {
                let modules = "/usr/lib/apache2/modules";
                let conf = format!(
                    "ServerRoot {d}\nServerName localhost\nPidFile {d}/apache.pid\nErrorLog {d}/error.log\n\
                     DefaultRuntimeDir {d}\nMutex file:{d} default\nUser www-data\nGroup www-data\n\
                     LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
                     LoadModule authz_core_module {modules}/mod_authz_core.so\n\
                     LoadModule proxy_module {modules}/mod_proxy.so\n\
                     LoadModule proxy_http_module {modules}/mod_proxy_http.so\n\n{}",
                    fill(guide("apache.conf"))
                );
                std::fs::write(dir.path().join("apache.conf"), conf).expect("write apache.conf");
                let mut command = Command::new("apache2");
                command.args(["-DFOREGROUND", "-f", &format!("{d}/apache.conf")]);
                command
            }
            Kind::Varnish | Kind::Buffering => {
                let mut vcl = fill(guide("varnish.vcl"));
                if kind == Kind::Buffering {
                    vcl.push_str(
                        "\nsub vcl_backend_response {\n    set beresp.do_stream = false;\n}\n",
                    );
                }
                std::fs::write(dir.path().join("ghostread.vcl"), vcl).expect("write the VCL");
                let mut command = Command::new("varnishd");
                command.args([
                    "-F",
                    "-j",
                    "none",
                    "-n",
                    &format!("{d}/varnish"),
                    "-a",
                    &format!("127.0.0.1:{port}"),
                    "-f",
                    &format!("{d}/ghostread.vcl"),
                    "-s",
                    "malloc,16m",
                ]);
                command
            }
            Kind::Squid => {
                let conf = format!(
                    "pid_filename {d}/squid.pid\ncache_log {d}/cache.log\naccess_log none\ncoredump_dir {d}\n\
                     cache_effective_user proxy\n\n{}",
                    fill(guide("squid.conf"))
                );
                std::fs::write(dir.path().join("squid.conf"), conf).expect("write squid.conf");
                let mut command = Command::new("squid");
                command.args(["-N", "-f", &format!("{d}/squid.conf")]);
                command
            }
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {kind:?}: {e} (run bash .ci/test, which installs it)")
            });
        // Owned before any wait, so a failed start still stops it on drop.
        let proxy = Proxy {
            child,
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let addr = proxy.addr;
        super::wait_until(&format!("{kind:?} listens"), || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        proxy
    }

    /// What the proxy logged, for a failing test's message.
    pub fn log(&self) -> String {
        ["error.log", "cache.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM lets a master stop its workers; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
