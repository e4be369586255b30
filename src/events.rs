//! Every event of `docs/PROTOCOL.md`: its name, its JSON shape, and how it is
//! written on an event stream. A protocol change touches this file (and the
//! client, and the tests); the engine only fills these shapes in.
//!
//! Pure: no IO, no ghost state. Ids, colours and counts come in as plain
//! values, so this module depends on nothing else in the crate.

use serde::Serialize;

/// How long the browser waits before reconnecting by itself, in ms.
pub const RETRY_MS: u32 = 2000;

/// The heartbeat: a comment, ignored by `EventSource`, that keeps proxies
/// from timing the stream out and finds peers that vanished.
pub const PING: &[u8] = b": ping\n\n";

/// An event: its `event:` name and its `data:` JSON, declared together.
pub trait Event: Serialize {
    const NAME: &'static str;
}

/// A ghost as `snapshot` and `join` show it. `away` (its reader's tabs
/// are hidden, or it has not scrolled for a while) is only written when true.
#[derive(Serialize)]
pub struct Ghost<'a> {
    pub id: &'a str,
    pub color: &'a str,
    pub pos: f64,
    #[serde(skip_serializing_if = "is_false")]
    pub away: bool,
}

/// One entry of `moves`: where the ghost is now, and whether it is away
/// (written only when true: an entry without it means present).
#[derive(Serialize)]
pub struct Move<'a> {
    pub id: &'a str,
    pub pos: f64,
    #[serde(skip_serializing_if = "is_false")]
    pub away: bool,
}

/// First, once per stream: who this reader is, and the server's manners.
#[derive(Serialize)]
pub struct Hello<'a> {
    pub id: &'a str,
    pub token: &'a str,
    pub color: &'a str,
    pub blocks: u32,
    /// The stream watches without a ghost (an invisible reader); written
    /// only when true.
    #[serde(skip_serializing_if = "is_false")]
    pub watching: bool,
    /// Seconds without scrolling after which a page reports itself away.
    pub away_after: u64,
    /// Seconds a tab may stay hidden before it closes its stream.
    pub let_go: u64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The whole room, right after `hello` and for a reader that fell behind.
#[derive(Serialize)]
pub struct Snapshot<'a> {
    pub ghosts: Vec<Ghost<'a>>,
    pub now: u64,
    pub total: u64,
}

/// Another reader opened this post.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Join<'a>(pub Ghost<'a>);

/// Another reader's stream ended.
#[derive(Serialize)]
pub struct Leave<'a> {
    pub id: &'a str,
}

/// Other ghosts moved: at most one entry per ghost.
#[derive(Serialize)]
pub struct Moves<'a> {
    pub moves: Vec<Move<'a>>,
}

/// A crowded room's readers: how many are at each block (`counts[i]` for
/// block `i`, the reader itself included), with the live and all-time
/// counts. Always the whole state: it replaces any earlier `snapshot` or
/// `density`, so the first one also says the room is now crowded.
#[derive(Serialize)]
pub struct Density<'a> {
    pub counts: &'a [u32],
    pub now: u64,
    pub total: u64,
}

/// In a crowded room: the readers nearest this reader's block, drawn as
/// ghosts over the bands (the page leaves itself out).
#[derive(Serialize)]
pub struct Near<'a> {
    pub ghosts: Vec<Ghost<'a>>,
}

/// The post's live or all-time count changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Readers {
    pub now: u64,
    pub total: u64,
}

impl Event for Hello<'_> {
    const NAME: &'static str = "hello";
}
impl Event for Snapshot<'_> {
    const NAME: &'static str = "snapshot";
}
impl Event for Join<'_> {
    const NAME: &'static str = "join";
}
impl Event for Leave<'_> {
    const NAME: &'static str = "leave";
}
impl Event for Moves<'_> {
    const NAME: &'static str = "moves";
}
impl Event for Density<'_> {
    const NAME: &'static str = "density";
}
impl Event for Near<'_> {
    const NAME: &'static str = "near";
}
impl Event for Readers {
    const NAME: &'static str = "readers";
}

/// Appends one event: `event:` and exactly one `data:` line of JSON (JSON
/// from serde never contains a raw newline), then the blank line.
pub fn encode<T: Event>(out: &mut Vec<u8>, event: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(T::NAME.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing our own plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, event);
    out.extend_from_slice(b"\n\n");
}

/// The first bytes of every stream: the reconnect delay, then `hello`,
/// whose `id:` is the token so `EventSource` sends it back as
/// `Last-Event-ID` when it reconnects.
pub fn encode_hello(out: &mut Vec<u8>, hello: &Hello<'_>) {
    out.extend_from_slice(format!("retry: {RETRY_MS}\nid: {}\n", hello.token).as_bytes());
    encode(out, hello);
}

/// A count as a page shows it (`ghosts::sight::shown`): exact below
/// 1,000, then "10.2k", then "1.3M". The server's own pages use it; the
/// browser client writes the same (`web/client/controls.js`).
pub fn count_text(n: u64) -> String {
    let tenths = |unit: u64| {
        let whole = n / unit;
        let tenth = n % unit * 10 / unit;
        if tenth == 0 {
            format!("{whole}")
        } else {
            format!("{whole}.{tenth}")
        }
    };
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{}k", tenths(1_000)),
        _ => format!("{}M", tenths(1_000_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(event: &impl Event) -> String {
        let mut out = Vec::new();
        encode(&mut out, event);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn each_event_has_its_name_and_exactly_one_data_line() {
        let ghost = || Ghost {
            id: "a\nb",
            color: "red",
            pos: 2.25,
            away: false,
        };
        let cases: [(String, &str); 6] = [
            (
                encoded(&Density {
                    counts: &[0, 3, 1],
                    now: 4,
                    total: 9,
                }),
                "event: density\ndata: {\"counts\":[0,3,1],\"now\":4,\"total\":9}\n\n",
            ),
            (
                encoded(&Leave { id: "a\nb" }),
                "event: leave\ndata: {\"id\":\"a\\nb\"}\n\n",
            ),
            (
                encoded(&Join(ghost())),
                "event: join\ndata: {\"id\":\"a\\nb\",\"color\":\"red\",\"pos\":2.25}\n\n",
            ),
            (
                encoded(&Moves {
                    moves: vec![
                        Move {
                            id: "a",
                            pos: 3.5,
                            away: false,
                        },
                        Move {
                            id: "b",
                            pos: 1.0,
                            away: true,
                        },
                    ],
                }),
                "event: moves\ndata: {\"moves\":[{\"id\":\"a\",\"pos\":3.5},{\"id\":\"b\",\"pos\":1.0,\"away\":true}]}\n\n",
            ),
            (
                encoded(&Readers { now: 1, total: 9 }),
                "event: readers\ndata: {\"now\":1,\"total\":9}\n\n",
            ),
            (
                encoded(&Snapshot {
                    ghosts: vec![ghost()],
                    now: 1,
                    total: 9,
                }),
                "event: snapshot\ndata: {\"ghosts\":[{\"id\":\"a\\nb\",\"color\":\"red\",\"pos\":2.25}],\"now\":1,\"total\":9}\n\n",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn the_stream_starts_with_retry_then_hello_whose_id_is_the_token() {
        let mut out = Vec::new();
        encode_hello(
            &mut out,
            &Hello {
                id: "k3x9q2",
                token: "tok",
                color: "red",
                blocks: 4,
                watching: false,
                away_after: 90,
                let_go: 120,
            },
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "retry: 2000\nid: tok\nevent: hello\ndata: {\"id\":\"k3x9q2\",\"token\":\"tok\",\"color\":\"red\",\"blocks\":4,\"away_after\":90,\"let_go\":120}\n\n"
        );
    }
}
