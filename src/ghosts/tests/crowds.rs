//! Crowded rooms: joins of one tick batched, lagging readers sharing one
//! state, and rooms switching to crowd mode and back.

use super::*;

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
