//! One instance's readers: moves coalesced per tick, joins, resumes,
//! takeovers, who counts in `total`, and held ghosts.

use super::*;

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
