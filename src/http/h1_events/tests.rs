//! The HTTP/1.1 event-stream path's parser and writer, one case at a time.

use super::*;

fn taken(head: &str) -> bool {
    parse(head.as_bytes()).is_some()
}

#[test]
fn a_plain_event_stream_request_is_taken_with_its_headers() {
    let head =
        "GET /posts/hello/events?resume=abc HTTP/1.1\r\nhost: x\r\nlast-event-id: t0k\r\n\r\n";
    let (length, request) = parse(head.as_bytes()).expect("taken");
    assert_eq!(length, head.len());
    assert_eq!(request.uri().path(), "/posts/hello/events");
    assert_eq!(request.uri().query(), Some("resume=abc"));
    assert_eq!(request.headers()["last-event-id"], "t0k");
}

#[test]
fn anything_else_is_left_to_hyper() {
    for head in [
        "GET /posts/hello HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET /posts/hello/position HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET /posts//events HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET /posts/a/events/more HTTP/1.1\r\nhost: x\r\n\r\n",
        "HEAD /posts/hello/events HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET /posts/hello/events HTTP/1.0\r\nhost: x\r\n\r\n",
        "GET /posts/hello/events HTTP/1.1\r\nhost: x\r\n",
        "GET /posts/hello/events HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
        "GET /posts/hello/events HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        "GET /posts/hello/events HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
        "GET /posts/hello/events HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
        "GET /posts/hello/events HTTP/1.1\r\nbad header: x\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert!(!taken(head), "{head:?}");
    }
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("x-{i}: y\r\n"))
        .collect();
    assert!(!taken(&format!(
        "GET /posts/a/events HTTP/1.1\r\n{many}\r\n"
    )));
}

#[test]
fn a_full_body_gets_a_length_and_every_answer_closes() {
    let message = "No such post.";
    let (head, _, chunked) = response_head(crate::http::reply::json_error(
        hyper::StatusCode::NOT_FOUND,
        message,
    ));
    let head = String::from_utf8(head).expect("ascii");
    let length = format!("{{\"error\":\"{message}\"}}").len();
    assert!(!chunked);
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\ncontent-length: {length}\r\n")),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"));
}

#[tokio::test]
async fn a_reader_that_stops_reading_holds_handles_to_shared_frames_not_copies() {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let _client_never_reads = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .expect("a small send buffer");
    // A room's frame far larger than any batch, a thousand times over.
    let frame = Bytes::from(vec![b'x'; 256 * 1024]);
    let frames = (0..1000).map({
        let frame = frame.clone();
        move |_| Ok::<_, std::convert::Infallible>(Frame::data(frame.clone()))
    });
    let mut body: Body = StreamBody::new(tokio_stream::iter(frames)).boxed_unsync();
    let mut writing = Writing {
        pending: VecDeque::new(),
        ignored: 0,
        finished: false,
        chunked: true,
    };
    let polled = std::future::poll_fn(|cx| Poll::Ready(writing.poll(cx, &server, &mut body))).await;
    assert!(polled.is_pending(), "the socket is full: {polled:?}");

    let start = frame.as_ptr() as usize;
    let shared = |b: &Bytes| {
        let at = b.as_ptr() as usize;
        at >= start && at + b.len() <= start + frame.len()
    };
    let frames_held = writing.pending.iter().filter(|b| shared(b)).count();
    let own: usize = writing
        .pending
        .iter()
        .filter(|b| !shared(b))
        .map(Bytes::len)
        .sum();
    assert!(frames_held <= MAX_FRAMES, "{frames_held} frames held");
    assert!(own <= 8 * MAX_FRAMES, "{own} bytes of framing");
    assert!(writing.pending.len() <= 3 * MAX_FRAMES + 1);
    // What it holds of its own: the handles and the framing.
    let handles = writing.pending.len() * std::mem::size_of::<Bytes>();
    assert!(handles + own < 8 * 1024, "{} bytes", handles + own);
}
