//! The actor driven through its handle, with tokio's paused clock: no
//! sockets and no real time, so each rule of the manager is shown in
//! isolation and the whole set runs in milliseconds.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;

use super::commands::{JoinRequest, Settings, StreamEvent, StreamParts};
use super::crowd::CrowdRule;
use super::ghost::Token;
use super::handle::Ghosts;
use super::messages::{Wire, WireRoom};
use crate::blog::Slug;
use crate::metrics::Metrics;
use crate::store::Totals;

const TICK: Duration = Duration::from_millis(10);
const RESUME: Duration = Duration::from_secs(30);
const SAVE_INTERVAL: Duration = Duration::from_millis(20);

/// A data folder of this test's own, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let path = std::env::temp_dir().join(format!(
            "ghostread-actor-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("a temp folder");
        Folder(path)
    }
}

/// Removes the folder when the test's thread ends, not when the test body
/// does: a save still running on the blocking pool then would create it
/// again. The test's runtime waits for that save as it is dropped, and a
/// thread's locals are dropped after that, as libtest's test thread exits.
impl Drop for Folder {
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
    _folder: Folder,
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
        cluster: None,
    }
}

fn start(name: &str) -> Actor {
    start_with(name, |_| {})
}

/// Starts an actor whose settings `adjust` changed from the tests' own.
fn start_with(name: &str, adjust: impl FnOnce(&mut Settings)) -> Actor {
    let folder = Folder::new(name);
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
        remote_parked: None,
        ask_elsewhere: false,
        released_by: None,
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
        .local_snapshot()
        .await
        .expect("the manager is running");
}

#[tokio::test(start_paused = true)]
async fn moves_within_one_tick_reach_the_others_as_one_entry_per_ghost() {
    let actor = start("coalesce");
    let a = join(&actor, "p").await;
    let mut b = join(&actor, "p").await;
    for pos in [1.0, 2.0, 3.5] {
        actor
            .ghosts
            .move_to(a.ghost.clone(), pos)
            .await
            .expect("moved");
    }
    let frame = next_frame(&mut b).await;
    assert_eq!(
        frame,
        format!(
            "event: moves\ndata: {{\"moves\":[{{\"id\":\"{}\",\"pos\":3.5}}]}}\n\n",
            a.ghost
        )
    );
    assert!(nothing_waiting(&mut b), "one frame for the whole tick");
    assert_eq!(actor.metrics.moves_coalesced.get(), 2);

    // The next tick's move is a frame of its own.
    tokio::time::advance(TICK).await;
    actor
        .ghosts
        .move_to(a.ghost.clone(), 4.0)
        .await
        .expect("moved");
    assert!(next_frame(&mut b).await.contains("\"pos\":4.0"));
}

#[tokio::test(start_paused = true)]
async fn a_reader_never_hears_its_own_join_but_the_others_do() {
    let actor = start("join");
    let mut a = join(&actor, "p").await;
    let mut b = join(&actor, "p").await;
    let frame = next_frame(&mut a).await;
    assert!(
        frame.starts_with(&format!("event: join\ndata: {{\"id\":\"{}\"", b.ghost)),
        "{frame}"
    );
    assert!(frame.contains("event: readers\ndata: {\"now\":2,\"total\":2}"));
    settle(&actor).await;
    assert!(nothing_waiting(&mut b));
    let hello = std::str::from_utf8(&b.hello).expect("utf-8");
    assert!(hello.starts_with("retry: 2000\nid: "), "{hello}");
    assert!(hello.contains("event: hello"));
    let state = std::str::from_utf8(&b.state).expect("utf-8");
    assert!(state.starts_with("event: snapshot"), "{state}");
    assert!(state.contains("\"now\":2,\"total\":2"), "{state}");
}

#[tokio::test(start_paused = true)]
async fn a_ghost_resumes_within_its_window_and_not_after() {
    let actor = start("resume");
    let first = join(&actor, "p").await;
    let token = token(&first);
    leave(&first);
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").total, 1);

    tokio::time::advance(RESUME - Duration::from_secs(1)).await;
    let resumed = actor
        .ghosts
        .join(request("p", Some(&token)))
        .await
        .expect("joined");
    assert_eq!(
        resumed.ghost, first.ghost,
        "the same ghost within the window"
    );
    assert_eq!(
        actor.ghosts.counts("p").total,
        1,
        "a resume is not a new reader"
    );
    leave(&resumed);
    settle(&actor).await;

    // Exactly at the end of the window, even before housekeeping runs.
    tokio::time::advance(RESUME).await;
    let fresh = actor
        .ghosts
        .join(request("p", Some(&token)))
        .await
        .expect("joined");
    assert_ne!(fresh.ghost, first.ghost, "a new ghost after the window");
    assert_ne!(self::token(&fresh), token, "with a new token");
    assert_eq!(actor.ghosts.counts("p").total, 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_resumes_only_on_its_own_post() {
    let actor = start("other-post");
    let first = join(&actor, "p").await;
    let token = token(&first);
    leave(&first);
    settle(&actor).await;
    let elsewhere = actor
        .ghosts
        .join(request("q", Some(&token)))
        .await
        .expect("joined");
    assert_ne!(elsewhere.ghost, first.ghost);
    let back = actor
        .ghosts
        .join(request("p", Some(&token)))
        .await
        .expect("joined");
    assert_eq!(back.ghost, first.ghost, "still parked on its own post");
}

#[tokio::test(start_paused = true)]
async fn a_takeover_ends_the_old_stream_and_ignores_its_leave() {
    let actor = start("takeover");
    let mut watcher = join(&actor, "p").await;
    let mut old = join(&actor, "p").await;
    let token = token(&old);
    let _ = next_frame(&mut watcher).await; // old's join
    let new = actor
        .ghosts
        .join(request("p", Some(&token)))
        .await
        .expect("joined");
    assert_eq!(new.ghost, old.ghost, "the same ghost");
    assert!(new.serial > old.serial, "a newer serial");
    assert!((&mut old.end).await.is_err(), "the old stream is ended");

    leave(&old);
    settle(&actor).await;
    assert!(
        actor.ghosts.seat(&token).is_some(),
        "the old leave is ignored"
    );
    assert!(nothing_waiting(&mut watcher), "silently for the others");
    assert_eq!(actor.metrics.takeovers.get(), 1);

    leave(&new);
    let frame = next_frame(&mut watcher).await;
    assert!(
        frame.starts_with(&format!("event: leave\ndata: {{\"id\":\"{}\"}}", new.ghost)),
        "{frame}"
    );
    assert!(actor.ghosts.seat(&token).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_is_retried_until_one_succeeds() {
    let folder = Folder::new("save");
    // A file where the data folder should be: every save fails.
    let data_dir = folder.0.join("data");
    std::fs::write(&data_dir, b"not a folder").expect("a file");
    let metrics = Arc::new(Metrics::default());
    let ghosts = Ghosts::spawn(settings(data_dir.clone()), Totals::new(), metrics.clone());
    let _reader = ghosts.join(request("p", None)).await.expect("joined");

    // No reader arrives after the first, yet the manager keeps trying.
    while metrics.counts_save_errors.get() < 3 {
        tokio::time::sleep(SAVE_INTERVAL).await;
    }
    assert_eq!(metrics.counts_saved.get(), 0);

    std::fs::remove_file(&data_dir).expect("removed");
    std::fs::create_dir(&data_dir).expect("a folder");
    while metrics.counts_saved.get() == 0 {
        tokio::time::sleep(SAVE_INTERVAL).await;
    }
    let saved = crate::store::load_counts(&data_dir).expect("readable");
    assert_eq!(saved.get("p"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn a_remote_snapshot_changes_only_what_differs() {
    let actor = start("snapshot");
    let mut local = join(&actor, "p").await;
    let color = super::ghost::PALETTE[3].to_string();
    let snapshot = |ghosts: &[(&str, f64)]| Wire::Snapshot {
        instance: "other".into(),
        rooms: vec![WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: ghosts
                .iter()
                .map(|(id, pos)| (id.to_string(), color.clone(), *pos))
                .collect(),
        }],
    };
    actor
        .ghosts
        .remote(snapshot(&[
            ("aaaaa1", 1.0),
            ("aaaaa2", 2.0),
            ("aaaaa3", 3.0),
        ]))
        .await
        .expect("sent");
    let frame = next_frame(&mut local).await;
    assert_eq!(frame.matches("event: join").count(), 3, "{frame}");
    assert!(frame.contains("\"now\":4"), "{frame}");

    // One stays, one moved, one is gone.
    actor
        .ghosts
        .remote(snapshot(&[("aaaaa1", 1.0), ("aaaaa2", 5.0)]))
        .await
        .expect("sent");
    let frame = next_frame(&mut local).await;
    let names: Vec<&str> = frame
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names, ["leave", "moves", "readers"], "{frame}");
    assert!(frame.contains("{\"id\":\"aaaaa3\"}"), "{frame}");
    assert!(
        frame.contains("{\"moves\":[{\"id\":\"aaaaa2\",\"pos\":5.0}]}"),
        "{frame}"
    );

    // The same snapshot again changes nothing and publishes nothing.
    actor
        .ghosts
        .remote(snapshot(&[("aaaaa1", 1.0), ("aaaaa2", 5.0)]))
        .await
        .expect("sent");
    settle(&actor).await;
    tokio::time::advance(TICK * 2).await;
    settle(&actor).await;
    assert!(nothing_waiting(&mut local));
}

#[tokio::test(start_paused = true)]
async fn an_instance_gone_takes_only_its_own_ghosts() {
    let actor = start("gone");
    let mut local = join(&actor, "p").await;
    let other = join(&actor, "p").await;
    let _ = next_frame(&mut local).await;
    let room = |instance: &str, id: &str| Wire::Snapshot {
        instance: instance.into(),
        rooms: vec![WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: vec![(id.into(), "c".into(), 1.0)],
        }],
    };
    actor
        .ghosts
        .remote(room("one", "bbbbb1"))
        .await
        .expect("sent");
    actor
        .ghosts
        .remote(room("two", "bbbbb2"))
        .await
        .expect("sent");
    let _ = next_frame(&mut local).await;
    actor
        .ghosts
        .instance_gone("one".into())
        .await
        .expect("sent");
    let frame = next_frame(&mut local).await;
    assert!(
        frame.contains("event: leave\ndata: {\"id\":\"bbbbb1\"}"),
        "{frame}"
    );
    assert!(!frame.contains("bbbbb2"), "{frame}");
    assert!(!frame.contains(other.ghost.as_str()), "{frame}");
    assert!(frame.contains("\"now\":3"), "{frame}");
}

/// Starts an actor whose rooms are crowded above `above` readers.
fn start_crowded(name: &str, above: usize) -> Actor {
    start_with(name, |s| {
        s.crowd = CrowdRule {
            above,
            interval: CROWD_INTERVAL,
        }
    })
}

const CROWD_INTERVAL: Duration = Duration::from_millis(250);

/// `n` readers join `slug` at once, as a crowd arriving does.
async fn join_together(actor: &Actor, slug: &str, n: usize) -> Vec<StreamParts> {
    let mut joins = tokio::task::JoinSet::new();
    for _ in 0..n {
        let ghosts = actor.ghosts.clone();
        let request = request(slug, None);
        joins.spawn(async move { ghosts.join(request).await.expect("joined") });
    }
    joins.join_all().await
}

#[tokio::test(start_paused = true)]
async fn the_joins_of_one_tick_are_one_frame_and_share_one_state() {
    let actor = start("batch");
    let mut watcher = join(&actor, "p").await;
    let frames_before = actor.metrics.frames_published.get();
    let newcomers = join_together(&actor, "p", 5).await;
    let frame = next_frame(&mut watcher).await;
    assert_eq!(frame.matches("event: join").count(), 5, "{frame}");
    assert!(frame.contains("\"now\":6"), "{frame}");
    assert!(nothing_waiting(&mut watcher), "one frame for the five");
    assert_eq!(actor.metrics.frames_published.get() - frames_before, 1);
    let state = &newcomers[0].state;
    for parts in &newcomers {
        assert_eq!(parts.state.as_ptr(), state.as_ptr(), "one state, shared");
    }
    let hellos: std::collections::HashSet<_> = newcomers.iter().map(|p| &p.hello).collect();
    assert_eq!(hellos.len(), 5, "each its own hello");
    assert_eq!(
        std::str::from_utf8(state)
            .expect("utf-8")
            .matches("\"id\"")
            .count(),
        6
    );
}

#[tokio::test(start_paused = true)]
async fn readers_who_fell_behind_in_one_tick_share_one_state() {
    let actor = start("lagged");
    let readers = join_together(&actor, "p", 3).await;
    let mut answers = Vec::new();
    for parts in &readers {
        let (respond_to, answer) = tokio::sync::oneshot::channel();
        let lagged = StreamEvent::Lagged {
            ghost: parts.ghost.clone(),
            serial: parts.serial,
            respond_to,
        };
        parts
            .to_manager
            .send(lagged)
            .expect("the manager is running");
        answers.push(answer);
    }
    let mut states = Vec::new();
    for answer in answers {
        states.push(answer.await.expect("a resync").snapshot);
    }
    assert!(states.iter().all(|s| s.as_ptr() == states[0].as_ptr()));
    assert_eq!(actor.metrics.lag_snapshots.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_room_that_crosses_the_threshold_switches_both_ways() {
    let actor = start_crowded("crowd", 3);
    let mut watcher = join(&actor, "p").await;
    let mut others = join_together(&actor, "p", 2).await;
    let frame = next_frame(&mut watcher).await;
    assert!(frame.contains("event: join"), "3 of 3: per ghost: {frame}");

    // The fourth reader makes the room crowded: the others get the density,
    // and the newcomer starts with it.
    let fourth = join(&actor, "p").await;
    let frame = next_frame(&mut watcher).await;
    assert!(
        frame.starts_with("event: density\ndata: {\"counts\":[4,0,"),
        "{frame}"
    );
    assert!(!frame.contains("event: join"), "{frame}");
    let state = std::str::from_utf8(&fourth.state).expect("utf-8");
    assert!(state.starts_with("event: density"), "{state}");

    // Moves in a crowded room go out as one density per interval.
    let started = tokio::time::Instant::now();
    for pos in [5.0, 6.0, 7.0] {
        actor
            .ghosts
            .move_to(fourth.ghost.clone(), pos)
            .await
            .expect("moved");
        tokio::time::advance(TICK).await;
    }
    let frame = next_frame(&mut watcher).await;
    assert!(
        started.elapsed() >= CROWD_INTERVAL - TICK * 3,
        "waited for the interval"
    );
    assert!(
        frame.contains("\"counts\":[3,0,0,0,0,0,0,1,"),
        "the newest only: {frame}"
    );
    assert!(nothing_waiting(&mut watcher));

    // 3 of 3 is still crowded (hysteresis); 2 is not.
    leave(&fourth);
    let frame = next_frame(&mut watcher).await;
    assert!(frame.starts_with("event: density"), "{frame}");
    let last = others.pop().expect("two others");
    leave(&last);
    let frame = next_frame(&mut watcher).await;
    assert!(frame.starts_with("event: snapshot"), "{frame}");
    assert_eq!(frame.matches("\"id\"").count(), 2, "{frame}");
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_dies_is_noticed_and_joins_are_refused() {
    let actor = start("crash");
    let _reader = join(&actor, "p").await;
    assert!(actor.ghosts.is_alive());
    actor.ghosts.crash().await;
    actor.ghosts.stopped().await;
    assert!(!actor.ghosts.is_alive());
    let refused = actor.ghosts.join(request("p", None)).await.err();
    assert_eq!(refused, Some(super::commands::JoinRefused::Stopped));
}

#[tokio::test(start_paused = true)]
async fn messages_from_other_instances_are_checked_before_they_touch_state() {
    let actor = start("untrusted");
    let mut local = join(&actor, "p").await;
    let total = |slug: &str, total: u64| Wire::Total {
        slug: slug.into(),
        total,
    };
    // A slug no post can have is never stored; a total past what a browser
    // shows exactly is clamped, and a join after it does not overflow.
    actor.ghosts.remote(total("../etc", 5)).await.expect("sent");
    actor
        .ghosts
        .remote(total("p", u64::MAX))
        .await
        .expect("sent");
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("../etc").total, 0);
    let frame = next_frame(&mut local).await;
    assert!(
        frame.contains(&format!("\"total\":{}", super::remote::MAX_TOTAL)),
        "{frame}"
    );
    let _another = join(&actor, "p").await;
    assert_eq!(actor.ghosts.counts("p").total, super::remote::MAX_TOTAL);

    // Positions are made sane, and remote joins respect the post's limit.
    let snapshot = |ghosts: Vec<(String, String, f64)>| Wire::Snapshot {
        instance: "other".into(),
        rooms: vec![WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts,
        }],
    };
    actor
        .ghosts
        .remote(snapshot(vec![("ccccc1".into(), "c".into(), -5.0)]))
        .await
        .expect("sent");
    let mut frame = next_frame(&mut local).await;
    while !frame.contains("ccccc1") {
        frame = next_frame(&mut local).await;
    }
    assert!(frame.contains("{\"id\":\"ccccc1\",\"color\":"), "{frame}");
    assert!(
        frame.contains("\"pos\":0.0"),
        "no negative position: {frame}"
    );
}

#[tokio::test(start_paused = true)]
async fn remote_joins_respect_the_posts_limit_as_local_ones_do() {
    let actor = start_with("remote-limit", |s| s.max_readers_per_post = 2);
    let ghosts = &actor.ghosts;
    let _local = ghosts.join(request("p", None)).await.expect("joined");
    let ghosts_of = |n: usize| -> Vec<(String, String, f64)> {
        (0..n)
            .map(|i| (format!("ddddd{i}"), "c".to_string(), 1.0))
            .collect()
    };
    let snapshot = Wire::Snapshot {
        instance: "other".into(),
        rooms: vec![WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: ghosts_of(3),
        }],
    };
    ghosts.remote(snapshot).await.expect("sent");
    ghosts.local_snapshot().await.expect("settled");
    tokio::time::advance(TICK * 2).await;
    ghosts.local_snapshot().await.expect("settled");
    assert_eq!(
        ghosts.counts("p").now,
        2,
        "one local and one remote, no more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_ghost_never_takes_a_remote_id_and_outlives_that_instance() {
    let actor = start("clash");
    let mut watcher = join(&actor, "p").await;
    let remote_id = "eeeee1";
    actor
        .ghosts
        .remote(Wire::Snapshot {
            instance: "one".into(),
            rooms: vec![WireRoom {
                slug: "p".into(),
                away: Vec::new(),
                ghosts: vec![(remote_id.into(), "c".into(), 1.0)],
            }],
        })
        .await
        .expect("sent");
    // A reader parked by another instance under that same id comes back here.
    let mut rng = rand::rng();
    let token = Token::for_ghost(&super::GhostId::random(&mut rng), &mut rng);
    let request = JoinRequest {
        remote_parked: Some(super::messages::RemoteParked {
            id: remote_id.into(),
            color: "c".into(),
            slug: "p".into(),
            pos: 2.0,
            counted: true,
        }),
        ..request("p", Some(&token))
    };
    let resumed = actor.ghosts.join(request).await.expect("joined");
    assert_ne!(resumed.ghost.as_str(), remote_id, "a clash gets a new id");
    actor
        .ghosts
        .instance_gone("one".into())
        .await
        .expect("sent");
    let frame = loop {
        let frame = next_frame(&mut watcher).await;
        if frame.contains("event: leave") {
            break frame;
        }
    };
    assert!(frame.contains(remote_id), "{frame}");
    assert!(!frame.contains(resumed.ghost.as_str()), "{frame}");
    assert_eq!(
        actor.ghosts.counts("p").now,
        2,
        "the watcher and the resumed reader"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_counts_at_its_first_position_or_once_its_stream_is_held() {
    const AFTER: Duration = Duration::from_secs(5);
    let actor = start_with("count-after", |s| s.count_after = AFTER);

    // A stream opened and dropped at once (a cross-origin EventSource that
    // the browser's CORS check closes) never counts.
    let drive_by = join(&actor, "p").await;
    leave(&drive_by);
    settle(&actor).await;
    tokio::time::advance(AFTER * 2).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").total, 0, "a drive-by stream");

    // A reader that sends a position counts at once, and once.
    let mover = join(&actor, "p").await;
    actor
        .ghosts
        .move_to(mover.ghost.clone(), 3.0)
        .await
        .expect("running");
    actor
        .ghosts
        .move_to(mover.ghost.clone(), 4.0)
        .await
        .expect("running");
    settle(&actor).await;
    tokio::time::advance(TICK * 2).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").total, 1, "at the first position");

    // A reader that only holds its stream counts once it has held it.
    let sitter = join(&actor, "p").await;
    tokio::time::advance(AFTER - Duration::from_secs(1)).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").total, 1, "not yet");
    tokio::time::advance(Duration::from_secs(2)).await;
    settle(&actor).await;
    tokio::time::advance(TICK * 2).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").total, 2, "held long enough");

    // Neither counts again when it resumes.
    let token = token(&sitter);
    leave(&sitter);
    settle(&actor).await;
    let back = actor
        .ghosts
        .join(request("p", Some(&token)))
        .await
        .expect("joined");
    assert_eq!(back.ghost, sitter.ghost);
    actor
        .ghosts
        .move_to(back.ghost.clone(), 1.0)
        .await
        .expect("running");
    tokio::time::advance(AFTER * 2).await;
    settle(&actor).await;
    assert_eq!(
        actor.ghosts.counts("p").total,
        2,
        "a resume is not a reader"
    );
    assert_eq!(actor.metrics.readers_counted.get(), 2);
    assert_eq!(actor.metrics.joins.get(), 3, "three new ghosts joined");
    drop(mover);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_held_ghost_outlives_its_stream_for_let_go_and_a_watcher_is_nobody() {
    let actor = start("held");
    let held = join(&actor, "p").await;
    let mut other = join(&actor, "p").await;
    let watcher = actor
        .ghosts
        .join(JoinRequest {
            watch: true,
            ..request("p", None)
        })
        .await
        .expect("joined");
    settle(&actor).await;
    tokio::time::advance(TICK * 2).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").now, 2, "the watcher is not in now");
    assert!(std::str::from_utf8(&watcher.hello)
        .expect("utf-8")
        .contains("\"watching\":true"));

    // Away and held, then its stream ends: it stays, away.
    actor
        .ghosts
        .report(held.ghost.clone(), 3.0, Some(true), true)
        .await
        .expect("running");
    // Its stream ends, as a stream does: it says so, and drops its parts.
    leave(&held);
    drop(held);
    settle(&actor).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").now, 2, "held for let_go");
    let mut heard = String::new();
    while let Ok(frame) = other.events.try_recv() {
        heard.push_str(std::str::from_utf8(&frame).expect("utf-8"));
    }
    assert!(heard.contains("\"away\":true"), "{heard}");
    assert!(!heard.contains("event: leave"), "{heard}");

    // Never back: after let_go (120 s here) it leaves.
    tokio::time::advance(Duration::from_secs(61)).await;
    settle(&actor).await;
    tokio::time::advance(TICK * 2).await;
    settle(&actor).await;
    assert_eq!(actor.ghosts.counts("p").now, 1);
    let frame = next_frame(&mut other).await;
    assert!(frame.contains("event: leave"), "{frame}");
    drop(watcher);
}
