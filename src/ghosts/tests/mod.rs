//! The actor driven through its handle, with tokio's paused clock: no
//! sockets and no real time, so each rule of the manager is shown in
//! isolation and the whole set runs in milliseconds. This file is the
//! harness; the tests are in the files named for what they show.

mod cluster;
mod crowds;
mod readers;
mod upkeep;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;

use super::commands::{JoinRequest, Settings, StreamEvent, StreamParts};
use super::crowd::CrowdRule;
use super::ghost::Token;
use super::handle::Ghosts;
use super::messages::{Later, OtherInstances, Outbound, RemoteParked, Wire, WireRoom};
use crate::blog::Slug;
use crate::metrics::Metrics;
use crate::store::Totals;

const TICK: Duration = Duration::from_millis(10);
const RESUME: Duration = Duration::from_secs(30);
const SAVE_INTERVAL: Duration = Duration::from_millis(20);

/// A data folder of this test's own, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        let path = std::env::temp_dir().join(format!(
            "ghostread-actor-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("a temp folder");
        DataDir(path)
    }
}

/// Removes the folder when the test's thread ends, not when the test body
/// does: a save still running on the blocking pool then would create it
/// again. The test's runtime waits for that save as it is dropped, and a
/// thread's locals are dropped after that, as libtest's test thread exits.
impl Drop for DataDir {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.0);
        let deferred = REMOVE_AT_EXIT.try_with(|paths| paths.0.borrow_mut().push(path.clone()));
        if deferred.is_err() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

struct RemoveAtExit(std::cell::RefCell<Vec<PathBuf>>);

impl Drop for RemoveAtExit {
    fn drop(&mut self) {
        for path in self.0.borrow().iter() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

thread_local! {
    static REMOVE_AT_EXIT: RemoveAtExit = const { RemoveAtExit(std::cell::RefCell::new(Vec::new())) };
}

struct Actor {
    ghosts: Ghosts,
    metrics: Arc<Metrics>,
    _folder: DataDir,
}

fn settings(data_dir: PathBuf) -> Settings {
    Settings {
        tick: TICK,
        resume_window: RESUME,
        moves_per_sec: 1000,
        max_readers: 1000,
        max_readers_per_post: 1000,
        max_streams_per_address: 1000,
        data_dir,
        save_interval: SAVE_INTERVAL,
        count_after: Duration::ZERO,
        away_after: Duration::from_secs(90),
        let_go: Duration::from_secs(120),
        heat_map: true,
        crowd: CrowdRule::OFF,
    }
}

fn start(name: &str) -> Actor {
    start_with(name, |_| {})
}

/// Starts an actor as one instance of a cluster, whose other instances are
/// `others`.
fn start_in_cluster(name: &str, others: Arc<dyn OtherInstances>) -> Actor {
    let folder = DataDir::new(name);
    let metrics = Arc::new(Metrics::default());
    let settings = settings(folder.0.clone());
    let ghosts = Ghosts::spawn_in_cluster(settings, Totals::new(), metrics.clone(), others);
    Actor {
        ghosts,
        metrics,
        _folder: folder,
    }
}

/// Other instances that hold one parked ghost, for any token, and nothing
/// live; whatever this instance tells them is dropped.
#[derive(Debug)]
struct ParkedElsewhere(RemoteParked);

impl OtherInstances for ParkedElsewhere {
    fn tell(&self, _: Outbound) {}

    fn parked(&self, _: &Token) -> Later<'_, Option<RemoteParked>> {
        let parked = self.0.clone();
        Box::pin(async move { Some(parked) })
    }

    fn release(&self, _: &Token, _: &Slug, _: String) -> Later<'_, Option<RemoteParked>> {
        Box::pin(async { None })
    }
}

/// Starts an actor whose settings `adjust` changed from the tests' own.
fn start_with(name: &str, adjust: impl FnOnce(&mut Settings)) -> Actor {
    let folder = DataDir::new(name);
    let metrics = Arc::new(Metrics::default());
    let mut settings = settings(folder.0.clone());
    adjust(&mut settings);
    let ghosts = Ghosts::spawn(settings, Totals::new(), metrics.clone());
    Actor {
        ghosts,
        metrics,
        _folder: folder,
    }
}

fn request(slug: &str, resume: Option<&Token>) -> JoinRequest {
    JoinRequest {
        slug: Slug::parse(slug).expect("a valid slug"),
        blocks: 40,
        resume: resume.cloned(),
        peer: IpAddr::from([192, 0, 2, 1]),
        watch: false,
    }
}

async fn join(actor: &Actor, slug: &str) -> StreamParts {
    actor
        .ghosts
        .join(request(slug, None))
        .await
        .expect("joined")
}

/// The token `hello` gave this stream (its `id:` line).
fn token(parts: &StreamParts) -> Token {
    let hello = std::str::from_utf8(&parts.hello).expect("utf-8");
    let line = hello
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id: line");
    Token::parse(line).expect("a token")
}

/// What a stream does when it ends: tell the manager, with its serial.
fn leave(parts: &StreamParts) {
    let left = StreamEvent::Left {
        ghost: parts.ghost.clone(),
        serial: parts.serial,
    };
    parts.to_manager.send(left).expect("the manager is running");
}

async fn next_frame(parts: &mut StreamParts) -> String {
    let frame = parts.events.recv().await.expect("a frame");
    String::from_utf8(frame.to_vec()).expect("utf-8")
}

fn nothing_waiting(parts: &mut StreamParts) -> bool {
    matches!(parts.events.try_recv(), Err(TryRecvError::Empty))
}

/// Lets the manager handle everything sent so far: a round trip through
/// its command queue.
async fn settle(actor: &Actor) {
    actor
        .ghosts
        .serving()
        .await
        .expect("the manager is running");
}
