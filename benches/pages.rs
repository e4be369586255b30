//! Page throughput next to nginx: requests per second for the long sample
//! post over keep-alive, from ghostread and from nginx serving the same
//! rendered HTML as a static file, in the same run with the same load tool.
//!
//! Run: `cargo bench --bench pages [-- --seconds 10 --connections 50]`.
//! Needs `wrk` and `nginx` on PATH (Debian: `apt-get install wrk nginx-light`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLUG: &str = "one-task-to-own-them-all";

fn main() {
    let mut seconds = 10u32;
    let mut connections = 50u32;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value: Option<u32> = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), value) {
            ("--seconds", Some(v)) => seconds = v.clamp(1, 120),
            ("--connections", Some(v)) => connections = v.clamp(1, 1000),
            ("--bench", _) => {
                i += 1;
                continue;
            }
            (other, _) => {
                eprintln!("unknown or incomplete option {other}; use --seconds N --connections N");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    for tool in ["wrk", "nginx"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            eprintln!("this bench needs `{tool}` on PATH: apt-get install wrk nginx-light");
            std::process::exit(2);
        }
    }

    let work = std::env::temp_dir().join(format!("ghostread-bench-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("html/posts")).expect("make the bench folder");

    // ghostread, in process, on its own runtime (two workers, as many as cores).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let posts = Path::new(env!("CARGO_MANIFEST_DIR")).join("posts");
    let data = work.join("data");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ghostread_addr: SocketAddr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = ghostread::Config {
            posts_dir: posts,
            data_dir: data,
            ..ghostread::Config::default()
        };
        tokio::spawn(ghostread::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        addr
    });
    let url = format!("http://{ghostread_addr}/posts/{SLUG}");
    let page = fetch(&url);
    std::fs::write(work.join(format!("html/posts/{SLUG}")), &page).expect("write the static copy");

    let nginx_port = free_port();
    let mut nginx = start_nginx(&work, nginx_port);
    let nginx_url = format!("http://127.0.0.1:{nginx_port}/posts/{SLUG}");
    wait_for(&nginx_url);

    println!(
        "page: /posts/{SLUG} ({} bytes), wrk -t2 -c{connections} -d{seconds}s, keep-alive",
        page.len()
    );
    let ours = wrk(&url, connections, seconds);
    let theirs = wrk(&nginx_url, connections, seconds);
    println!(
        "{:<12} {:>12} {:>12}",
        "server", "requests/s", "p99 latency"
    );
    println!("{:<12} {:>12.0} {:>12}", "ghostread", ours.0, ours.1);
    println!("{:<12} {:>12.0} {:>12}", "nginx", theirs.0, theirs.1);
    println!("ratio ghostread / nginx: {:.2}", ours.0 / theirs.0);

    // SIGTERM lets the nginx master stop its workers; SIGKILL would orphan them.
    let _ = Command::new("kill")
        .args(["-TERM", &nginx.id().to_string()])
        .status();
    let _ = nginx.wait();
    let _ = stop.send(());
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
}

fn start_nginx(work: &Path, port: u16) -> Child {
    let root = work.join("html");
    let conf = format!(
        "daemon off;\nworker_processes auto;\npid {pid};\nerror_log stderr warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
           client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n\
           uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {root}; default_type text/html; }}\n}}\n",
        pid = work.join("nginx.pid").display(),
        tmp = work.display(),
        root = root.display(),
    );
    let conf_path: PathBuf = work.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    Command::new("nginx")
        .args([
            "-c",
            &conf_path.to_string_lossy(),
            "-p",
            &work.to_string_lossy(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start nginx")
}

/// Runs wrk; returns requests per second and the p99 latency as wrk prints it.
fn wrk(url: &str, connections: u32, seconds: u32) -> (f64, String) {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk printed no Requests/sec:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    (rps, p99)
}

fn fetch(url: &str) -> Vec<u8> {
    wait_for(url);
    let output = Command::new("curl")
        .args(["-sf", url])
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl {url} failed");
    output.stdout
}

fn wait_for(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if Command::new("curl")
            .args(["-sf", "-o", "/dev/null", url])
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} did not answer within 10 s");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
