//! The manager's side of cluster mode: other instances' snapshots, joins
//! and departures, checked before they touch this instance's state.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_remote_snapshot_changes_only_what_differs() {
    let actor = start("snapshot");
    let mut local = join(&actor, "p").await;
    let color = crate::ghosts::ghost::PALETTE[3].to_string();
    let snapshot = |ghosts: &[(&str, f64)]| Wire::Snapshot {
        instance: "other".into(),
        room: WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: ghosts
                .iter()
                .map(|(id, pos)| (id.to_string(), color.clone(), *pos))
                .collect(),
        },
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
        room: WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: vec![(id.into(), "c".into(), 1.0)],
        },
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
        frame.contains(&format!("\"total\":{}", crate::ghosts::tally::MAX_TOTAL)),
        "{frame}"
    );
    let _another = join(&actor, "p").await;
    assert_eq!(
        actor.ghosts.counts("p").total,
        crate::ghosts::tally::MAX_TOTAL
    );

    // Positions are made sane, and remote joins respect the post's limit.
    let snapshot = |ghosts: Vec<(String, String, f64)>| Wire::Snapshot {
        instance: "other".into(),
        room: WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts,
        },
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
        room: WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: ghosts_of(3),
        },
    };
    ghosts.remote(snapshot).await.expect("sent");
    ghosts.serving().await.expect("settled");
    tokio::time::advance(TICK * 2).await;
    ghosts.serving().await.expect("settled");
    assert_eq!(
        ghosts.counts("p").now,
        2,
        "one local and one remote, no more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_ghost_never_takes_a_remote_id_and_outlives_that_instance() {
    let remote_id = "eeeee1";
    // A reader parked by another instance under that same id comes back here.
    let parked = crate::ghosts::messages::RemoteParked {
        id: remote_id.into(),
        color: "c".into(),
        slug: "p".into(),
        pos: 2.0,
        counted: true,
    };
    let actor = start_in_cluster("clash", Arc::new(ParkedElsewhere(parked)));
    let mut watcher = join(&actor, "p").await;
    actor
        .ghosts
        .remote(Wire::Snapshot {
            instance: "one".into(),
            room: WireRoom {
                slug: "p".into(),
                away: Vec::new(),
                ghosts: vec![(remote_id.into(), "c".into(), 1.0)],
            },
        })
        .await
        .expect("sent");
    let mut rng = rand::rng();
    let token = Token::for_ghost(&crate::ghosts::GhostId::random(&mut rng), &mut rng);
    let resumed = actor
        .ghosts
        .join(request("p", Some(&token)))
        .await
        .expect("joined");
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

/// The next frame of `parts` that contains `what`, advancing the clock
/// a tick at a time.
async fn frame_with(parts: &mut StreamParts, what: &str) -> String {
    for _ in 0..40 {
        tokio::time::advance(TICK * 5).await;
        while let Ok(frame) = parts.events.try_recv() {
            let frame = String::from_utf8(frame.to_vec()).expect("utf-8");
            if frame.contains(what) {
                return frame;
            }
        }
    }
    panic!("no frame with {what}");
}

#[tokio::test(start_paused = true)]
async fn another_instances_counts_replace_its_ghosts_and_leave_with_it() {
    let actor = start_with("counts", |s| {
        s.crowd = CrowdRule {
            above: 2,
            interval: Duration::from_millis(250),
        }
    });
    let mut local = join(&actor, "p").await;
    let color = crate::ghosts::ghost::PALETTE[3].to_string();
    let ghost = Wire::Snapshot {
        instance: "other".into(),
        room: WireRoom {
            slug: "p".into(),
            away: Vec::new(),
            ghosts: vec![("aaaaa1".into(), color, 1.0)],
        },
    };
    actor.ghosts.remote(ghost).await.expect("sent");
    let frame = frame_with(&mut local, "event: join").await;
    assert!(frame.contains("aaaaa1"), "{frame}");

    // Crowded there: its five readers come as counts, and its ghost goes.
    let counts = Wire::Counts {
        instance: "other".into(),
        slug: "p".into(),
        counts: vec![0, 0, 0, 5],
    };
    actor.ghosts.remote(counts).await.expect("sent");
    let frame = frame_with(&mut local, "event: density").await;
    assert!(
        frame.contains("\"now\":6"),
        "one here and five there: {frame}"
    );
    assert!(frame.contains("\"counts\":[1,0,0,5,"), "{frame}");

    // That instance is gone: its counts leave with it.
    actor
        .ghosts
        .instance_gone("other".into())
        .await
        .expect("sent");
    let frame = frame_with(&mut local, "\"now\":1").await;
    assert!(!frame.contains("aaaaa1"), "{frame}");
}
