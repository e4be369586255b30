//! Just enough HTTP/1.1 for the harness: a GET for pages, and a keep-alive
//! POST connection that reads each answer whole so the next one lines up.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects from `source` (any of 127.0.0.0/8), so tens of thousands of
/// connections do not run out of ephemeral ports on one address.
pub async fn connect_from(addr: SocketAddr, source: Ipv4Addr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if addr.ip().is_loopback() {
        socket.bind(SocketAddr::from((source, 0)))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The `n`th loopback source address, 127.1.x.y.
pub fn source(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        1 + (n / 62_500 % 200) as u8,
        (n / 250 % 250) as u8,
        (n % 250 + 2) as u8,
    )
}

pub async fn get(addr: SocketAddr, path: &str) -> String {
    try_get(addr, path)
        .await
        .unwrap_or_else(|| panic!("cannot GET {path} from {addr}: is the server running?"))
}

/// A GET that may fail: at the end of a run the server may have gone.
pub async fn try_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: load\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The origin of the pages of another site that embedded readers read
/// (`--embedded`).
pub const EMBED_ORIGIN: &str = "http://embed.load";

/// The `Origin` header a request about `slug` carries: an embedded page's
/// (their slugs start with `x-`), or none.
pub fn origin_header(slug: &str) -> &'static str {
    if slug.starts_with("x-") {
        "origin: http://embed.load\r\n"
    } else {
        ""
    }
}

/// Sends one POST on a keep-alive connection and returns the status. On an
/// error, `buf` holds whatever of the answer came (empty: none did).
pub async fn post(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    path: &str,
    body: &str,
) -> std::io::Result<u16> {
    let slug = path.split('/').nth(2).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: load\r\n{}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        origin_header(slug),
        body.len()
    );
    buf.clear();
    stream.write_all(request.as_bytes()).await?;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                read_more(stream, buf).await?;
            }
            if head.contains("connection: close") {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "server closed",
                ));
            }
            return Ok(status);
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Registers the twin of each post on the embedded site (`POST
/// /embed/page`); the slug each twin's readers meet under, by post.
pub async fn embed_twins(
    addr: SocketAddr,
    slugs: &[String],
    blocks: u32,
) -> std::collections::HashMap<String, String> {
    let mut twins = std::collections::HashMap::new();
    for slug in slugs {
        let body = format!("{{\"url\":\"{EMBED_ORIGIN}/{slug}/\",\"blocks\":{blocks}}}");
        let request = format!(
            "POST /embed/page HTTP/1.1\r\nhost: load\r\norigin: {EMBED_ORIGIN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to register a twin");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("register a twin");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        let answer = String::from_utf8_lossy(&out);
        let twin = answer
            .split("\"slug\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the server took no twin of {slug}: {answer}"));
        twins.insert(slug.clone(), twin.to_string());
    }
    twins
}
