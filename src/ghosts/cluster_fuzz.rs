//! The cluster's message handling fuzzed as a whole, as the position parser
//! is: proptest makes sequences of messages another instance (or anything
//! else on the channel) could send: well-formed ones with hostile fields,
//! the same with a byte changed, and plain noise. Each goes through
//! `decode`, as the link does, into a running manager that also has local
//! readers. Whatever arrives, the manager keeps running, a local reader is
//! never removed or moved by another instance (short of a release with its
//! own token), counts stay within bounds, and what readers are sent is
//! what the protocol allows.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

use super::commands::{JoinRequest, Settings};
use super::crowd::CrowdRule;
use super::ghost::{GhostId, Token};
use super::handle::Ghosts;
use super::messages::{
    decode, Later, OtherInstances, Outbound, RemoteParked, Wire, WireEvent, WireRoom,
};
use super::tally::MAX_TOTAL;
use crate::blog::Slug;
use crate::metrics::Metrics;
use crate::store::Totals;

const BLOCKS: u32 = 40;
const MOST_PER_POST: usize = 8;
/// Stands for the local reader's id or token, filled in when sent.
const LOCAL_ID: &str = "@id";
const LOCAL_TOKEN: &str = "@token";

/// One thing arriving on the channel (or happening meanwhile).
#[derive(Clone, Debug)]
enum Step {
    Message(Wire),
    /// A well-formed message with one byte replaced.
    Mangled(Wire, usize, u8),
    Noise(Vec<u8>),
    Silent(String),
    /// The link stops hearing a post, or asks its instances again.
    Forget(String),
    Asked(String),
    Tick,
    /// Long enough for an ask's answers to be overdue.
    Wait,
}

fn instance() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("i1".to_string()),
        2 => Just("i2".to_string()),
        1 => Just(String::new()),
        1 => "[a-z0-9]{0,12}",
    ]
}

fn slug() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("p".to_string()),
        2 => Just("q".to_string()),
        1 => Just("../etc".to_string()),
        1 => Just("P".to_string()),
        1 => ".{0,12}",
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(LOCAL_ID.to_string()),
        4 => "[a-e]{6}",
        1 => Just("ZZZZZZ".to_string()),
        1 => ".{0,8}",
    ]
}

fn pos() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..45.0,
        1 => Just(-1.0),
        1 => Just(1e300),
        1 => Just(f64::NAN),
        1 => any::<f64>(),
    ]
}

fn event() -> impl Strategy<Value = WireEvent> {
    prop_oneof![
        (id(), ".{0,30}", pos(), any::<bool>()).prop_map(|(id, color, pos, away)| {
            WireEvent::Join {
                id,
                color,
                pos,
                away,
            }
        }),
        id().prop_map(|id| WireEvent::Leave { id }),
        (
            prop::collection::vec((id(), pos()), 0..6),
            prop::collection::vec(id(), 0..3)
        )
            .prop_map(|(moves, away)| WireEvent::Moves { moves, away }),
    ]
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        6 => (instance(), slug(), prop::collection::vec(event(), 0..8))
            .prop_map(|(instance, slug, events)| Wire::Room { instance, slug, events }),
        2 => (
            instance(),
            (
                slug(),
                prop::collection::vec((id(), ".{0,10}", pos()), 0..12),
                prop::collection::vec(id(), 0..3)
            )
                .prop_map(|(slug, ghosts, away)| WireRoom { slug, ghosts, away }),
        )
            .prop_map(|(instance, room)| Wire::Snapshot { instance, room }),
        1 => (instance(), slug()).prop_map(|(instance, slug)| Wire::Ask { instance, slug }),
        2 => (
            instance(),
            slug(),
            prop::collection::vec(prop_oneof![0u32..4, Just(u32::MAX)], 0..60)
        )
            .prop_map(|(instance, slug, counts)| Wire::Counts { instance, slug, counts }),
        2 => (slug(), prop_oneof![any::<u64>(), Just(u64::MAX), 0u64..10])
            .prop_map(|(slug, total)| Wire::Total { slug, total }),
        1 => instance().prop_map(|instance| Wire::Bye { instance }),
        1 => instance().prop_map(|instance| Wire::Heartbeat { instance }),
        1 => (instance(), instance(), prop_oneof![Just(LOCAL_TOKEN.to_string()), ".{0,40}"])
            .prop_map(|(instance, to, token)| Wire::Release { instance, to, token }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => wire().prop_map(Step::Message),
        2 => (wire(), any::<usize>(), any::<u8>()).prop_map(|(w, at, b)| Step::Mangled(w, at, b)),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Step::Noise),
        1 => instance().prop_map(Step::Silent),
        1 => slug().prop_map(Step::Forget),
        1 => slug().prop_map(Step::Asked),
        2 => Just(Step::Tick),
        1 => Just(Step::Wait),
    ]
}

/// The message as bytes on the channel, the local reader's id and token
/// put in where it names them.
fn on_the_wire(wire: &Wire, id: &str, token: &str) -> Vec<u8> {
    let text = serde_json::to_string(wire).unwrap_or_default();
    text.replace(LOCAL_ID, id)
        .replace(LOCAL_TOKEN, token)
        .into_bytes()
}

/// Cluster mode, with nobody reading what the manager shares and no other
/// instance holding any ghost.
#[derive(Debug)]
struct Deaf;

impl OtherInstances for Deaf {
    fn tell(&self, _: Outbound) {}

    fn parked(&self, _: &Token) -> Later<'_, Option<RemoteParked>> {
        Box::pin(async { None })
    }

    fn release(&self, _: &Token, _: &Slug, _: String) -> Later<'_, Option<RemoteParked>> {
        Box::pin(async { None })
    }
}

fn settings(crowd: usize) -> Settings {
    Settings {
        tick: Duration::from_millis(10),
        resume_window: Duration::from_secs(30),
        moves_per_sec: 1000,
        max_readers: 1000,
        max_readers_per_post: MOST_PER_POST,
        max_streams_per_address: 1000,
        data_dir: std::env::temp_dir().join(format!("ghostread-fuzz-{}", std::process::id())),
        save_interval: Duration::from_secs(3600),
        count_after: Duration::ZERO,
        away_after: Duration::from_secs(90),
        let_go: Duration::from_secs(120),
        heat_map: true,
        crowd: CrowdRule {
            above: crowd,
            interval: Duration::from_millis(50),
        },
    }
}

fn join(slug: &str) -> JoinRequest {
    JoinRequest {
        slug: Slug::parse(slug).expect("a slug"),
        blocks: BLOCKS,
        resume: None,
        peer: IpAddr::from([192, 0, 2, 7]),
        watch: false,
    }
}

/// The JSON of an SSE event's `data:` line.
fn data(event: &[u8]) -> Value {
    let text = String::from_utf8_lossy(event);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or("null");
    serde_json::from_str(line).unwrap_or(Value::Null)
}

async fn run(steps: Vec<Step>, crowd: usize) -> Result<(), TestCaseError> {
    let metrics = Arc::new(Metrics::default());
    let ghosts = Ghosts::spawn_in_cluster(settings(crowd), Totals::new(), metrics, Arc::new(Deaf));
    let local = ghosts
        .join(join("p"))
        .await
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let hello = data(&local.hello);
    let id = hello["id"].as_str().unwrap_or_default().to_string();
    let token = hello["token"].as_str().unwrap_or_default().to_string();
    ghosts.move_to(local.ghost.clone(), 12.5).await.ok();
    let mut released = false;

    for step in steps {
        let bytes = match step {
            Step::Message(wire) => {
                released |= matches!(&wire, Wire::Release { token: t, .. } if t == LOCAL_TOKEN);
                on_the_wire(&wire, &id, &token)
            }
            Step::Mangled(wire, at, byte) => {
                let mut bytes = on_the_wire(&wire, &id, &token);
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                // A mangled release may still name the local token.
                released |= matches!(&wire, Wire::Release { .. });
                bytes
            }
            Step::Noise(bytes) => bytes,
            Step::Silent(instance) => {
                ghosts.instance_gone(instance).await.ok();
                continue;
            }
            Step::Forget(slug) => {
                if let Some(slug) = Slug::parse(&slug) {
                    ghosts.forget(slug).await.ok();
                }
                continue;
            }
            Step::Asked(slug) => {
                if let Some(slug) = Slug::parse(&slug) {
                    ghosts.asked(slug).await.ok();
                }
                continue;
            }
            Step::Tick => {
                tokio::time::advance(Duration::from_millis(60)).await;
                continue;
            }
            Step::Wait => {
                tokio::time::advance(Duration::from_millis(3500)).await;
                continue;
            }
        };
        if let Some(wire) = decode(&bytes) {
            ghosts.remote(wire).await.ok();
        }
        // A round trip: the manager has handled the message, and lives.
        let serving = ghosts.serving().await;
        prop_assert!(serving.is_ok(), "the manager stopped");
        for slug in ["p", "q"] {
            let counts = ghosts.counts(slug);
            prop_assert!(counts.total <= MAX_TOTAL, "{slug}: total {}", counts.total);
            prop_assert!(
                counts.now as usize <= MOST_PER_POST,
                "{slug}: now {}",
                counts.now
            );
        }
    }

    tokio::time::advance(Duration::from_millis(200)).await;
    // A newcomer's first state: only what the protocol allows.
    let newcomer = ghosts.join(join("p")).await;
    let newcomer = match newcomer {
        Ok(newcomer) => newcomer,
        // The post may be full of other instances' ghosts: refused, fine.
        Err(super::JoinRefused::PostFull) => return Ok(()),
        Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
    };
    let state = data(&newcomer.state);
    if let Some(ghosts) = state["ghosts"].as_array() {
        prop_assert!(ghosts.len() <= MOST_PER_POST);
        prop_assert_eq!(state["now"].as_u64(), Some(ghosts.len() as u64));
        for ghost in ghosts {
            let ghost_id = ghost["id"].as_str().unwrap_or_default();
            prop_assert!(GhostId::parse(ghost_id).is_some(), "id {ghost}");
            let pos = ghost["pos"].as_f64().unwrap_or(-1.0);
            prop_assert!((0.0..=f64::from(BLOCKS)).contains(&pos), "pos {ghost}");
        }
        let mine: Vec<&Value> = ghosts.iter().filter(|g| g["id"] == id.as_str()).collect();
        if !released {
            // Nobody else can remove or move this instance's own reader.
            prop_assert_eq!(mine.len(), 1, "the local reader is there: {:?}", ghosts);
            prop_assert_eq!(mine[0]["pos"].as_f64(), Some(12.5));
        }
    } else {
        let counts = state["counts"].as_array();
        prop_assert!(counts.is_some(), "a snapshot or a density: {state}");
        let sum: u64 = counts.into_iter().flatten().filter_map(Value::as_u64).sum();
        prop_assert_eq!(state["now"].as_u64(), Some(sum));
        prop_assert_eq!(counts.map(Vec::len), Some(BLOCKS as usize));
    }
    drop(local);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn nothing_on_the_channel_breaks_the_manager_or_its_local_readers(
        steps in prop::collection::vec(step(), 1..40),
        crowd in prop_oneof![Just(0usize), Just(3usize)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(run(steps, crowd))?;
    }
}
