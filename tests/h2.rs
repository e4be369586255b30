//! Event streams over HTTP/2: many readers and their moves share one
//! connection, and a stream reset on a live connection is a leave.

mod common;

use std::time::Duration;

use common::sse::{metric, open};
use common::{one_post, start_server};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// One event stream read from an HTTP/2 response body.
struct H2Reader {
    body: Incoming,
    buf: Vec<u8>,
    id: String,
    token: String,
}

impl H2Reader {
    async fn open(sender: &mut SendRequest<Full<Bytes>>, addr: std::net::SocketAddr) -> H2Reader {
        let request = hyper::Request::get(format!("http://{addr}/posts/p/events"))
            .body(Full::default())
            .expect("request");
        let response = sender.send_request(request).await.expect("h2 stream");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        let mut reader = H2Reader {
            body: response.into_body(),
            buf: Vec::new(),
            id: String::new(),
            token: String::new(),
        };
        let (name, hello) = reader.next_event().await;
        assert_eq!(name, "hello");
        reader.id = hello["id"].as_str().expect("id").to_string();
        reader.token = hello["token"].as_str().expect("token").to_string();
        assert_eq!(reader.next_event().await.0, "snapshot");
        reader
    }

    async fn next_event(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = common::find(&self.buf, b"\n\n") {
                let block = String::from_utf8(self.buf.drain(..end + 2).collect()).expect("utf-8");
                if block.starts_with(':') {
                    continue;
                }
                let name = block
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .expect("event name")
                    .to_string();
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data line");
                return (name, serde_json::from_str(data).expect("JSON data"));
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("a frame within 10 s")
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

async fn post_move(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: std::net::SocketAddr,
    token: &str,
    pos: f64,
) -> u16 {
    let body = format!("{{\"token\":\"{token}\",\"pos\":{pos}}}");
    let request = hyper::Request::post(format!("http://{addr}/posts/p/position"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    sender
        .send_request(request)
        .await
        .expect("h2 POST")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_streams_and_their_moves_share_one_connection() {
    let server = start_server(one_post(40), |_| {}).await;
    let mut sender = connect(server.addr).await;
    let mut readers = Vec::new();
    for _ in 0..20 {
        readers.push(H2Reader::open(&mut sender, server.addr).await);
    }
    for (i, reader) in readers.iter().enumerate() {
        assert_eq!(
            post_move(&mut sender, server.addr, &reader.token, (i + 1) as f64).await,
            204
        );
    }
    // The first reader sees every other reader arrive at its position.
    let first = &mut readers[0];
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 20 {
        let (name, data) = first.next_event().await;
        if name == "moves" {
            for m in data["moves"].as_array().expect("moves") {
                seen.insert(
                    m["id"].as_str().unwrap_or_default().to_string(),
                    m["pos"].as_f64().unwrap_or_default(),
                );
            }
        }
    }
    for (i, reader) in readers.iter().enumerate() {
        assert_eq!(seen.get(&reader.id), Some(&((i + 1) as f64)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_stream_on_a_live_connection_is_a_leave() {
    let server = start_server(one_post(10), |_| {}).await;
    let mut watcher = open(server.addr, "p").await;
    let mut sender = connect(server.addr).await;
    let mut staying = H2Reader::open(&mut sender, server.addr).await;
    let leaving = H2Reader::open(&mut sender, server.addr).await;
    let leaving_id = leaving.id.clone();
    drop(leaving); // Dropping the body resets just that HTTP/2 stream.

    let (leave, _) =
        tokio::time::timeout(Duration::from_secs(1), watcher.wait_for("leave", |_| true))
            .await
            .expect("leave within 1 s of the reset");
    assert_eq!(leave.data["id"], leaving_id.as_str());
    // The connection and the other stream on it live on.
    assert_eq!(
        post_move(&mut sender, server.addr, &staying.token, 2.0).await,
        204
    );
    loop {
        let (name, data) = staying.next_event().await;
        if name == "moves" && data["moves"][0]["id"] == staying.id.as_str() {
            break;
        }
    }
    assert_eq!(metric(server.addr, "ghostread_ghosts").await, 2.0);
}
