//! A room's rules, shown one at a time on a bare `Room`: no manager, no
//! clock, no sockets.

use super::*;

fn id(s: &str) -> GhostId {
    GhostId::for_test(s)
}

fn frame(room: &mut Room, counts: Counts) -> String {
    String::from_utf8(
        room.take_frame(counts, Instant::now())
            .map(|b| b.to_vec())
            .unwrap_or_default(),
    )
    .expect("utf-8")
}

const C: Color = "c";

#[test]
fn moves_are_coalesced_to_the_newest_position_per_ghost() {
    let mut room = Room::new(Sharing::Alone, CrowdRule::OFF, 8);
    room.add(id("a"), C, 0.0);
    room.add(id("b"), C, 0.0);
    let _ = frame(&mut room, Counts { now: 2, total: 2 });
    assert_eq!(room.moved(&id("a"), 1.0), Moved::Queued);
    assert_eq!(room.moved(&id("b"), 2.0), Moved::Queued);
    assert_eq!(room.moved(&id("a"), 3.5), Moved::Coalesced);
    assert_eq!(room.moved(&id("zz"), 3.5), Moved::Unknown);
    assert_eq!(
        frame(&mut room, Counts { now: 2, total: 2 }),
        "event: moves\ndata: {\"moves\":[{\"id\":\"a\",\"pos\":3.5},{\"id\":\"b\",\"pos\":2.0}]}\n\n"
    );
    assert_eq!(
        frame(&mut room, Counts { now: 2, total: 2 }),
        "",
        "a quiet room publishes nothing"
    );
}

#[test]
fn joins_and_leaves_keep_their_order_with_the_moves_around_them() {
    let mut room = Room::new(Sharing::Alone, CrowdRule::OFF, 8);
    room.add(id("a"), C, 0.0);
    let _ = frame(&mut room, Counts { now: 1, total: 1 });
    room.moved(&id("a"), 1.0);
    room.add(id("b"), C, 0.0);
    room.moved(&id("b"), 2.0);
    room.moved(&id("a"), 4.0);
    room.remove(&id("a"));
    let text = frame(&mut room, Counts { now: 1, total: 2 });
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        order,
        ["moves", "join", "moves", "leave", "readers"],
        "{text}"
    );
    assert!(text.contains("{\"moves\":[{\"id\":\"a\",\"pos\":1.0}]}"));
    assert!(text.contains("{\"moves\":[{\"id\":\"b\",\"pos\":2.0},{\"id\":\"a\",\"pos\":4.0}]}"));
    assert!(text.contains("data: {\"now\":1,\"total\":2}"));
}

#[test]
fn a_shared_room_journals_only_its_own_ghosts_in_order() {
    let mut room = Room::new(Sharing::Cluster, CrowdRule::OFF, 8);
    room.add(id("a"), C, 0.0);
    room.add_remote(id("r"), C, 1.0, Arc::from("other"), false);
    room.moved(&id("a"), 2.0);
    room.moved(&id("r"), 3.0);
    room.remove(&id("r"));
    room.remove(&id("a"));
    let _ = frame(&mut room, Counts { now: 0, total: 2 });
    assert_eq!(
        room.take_journal(),
        [
            WireEvent::Join {
                id: "a".into(),
                color: C.into(),
                pos: 0.0,
                away: false,
            },
            WireEvent::Moves {
                moves: vec![("a".into(), 2.0)],
                away: vec![],
            },
            WireEvent::Leave { id: "a".into() },
        ]
    );
    assert!(room.take_journal().is_empty());
}

#[test]
fn a_snapshot_lists_every_member_and_the_counts() {
    let mut room = Room::new(Sharing::Alone, CrowdRule::OFF, 8);
    room.add(id("a"), "red", 2.25);
    let text = String::from_utf8(room.state(Counts { now: 1, total: 9 })).expect("utf-8");
    assert_eq!(
        text,
        "event: snapshot\ndata: {\"ghosts\":[{\"id\":\"a\",\"color\":\"red\",\"pos\":2.25}],\"now\":1,\"total\":9}\n\n"
    );
}

fn crowd_room(above: usize) -> Room {
    let rule = CrowdRule {
        above,
        interval: std::time::Duration::from_millis(250),
    };
    Room::new(Sharing::Alone, rule, 4)
}

fn names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect()
}

#[test]
fn a_room_above_the_threshold_sends_its_density_instead_of_its_ghosts() {
    let mut room = crowd_room(2);
    room.add(id("a"), C, 0.0);
    room.add(id("b"), C, 1.0);
    let _ = frame(&mut room, Counts { now: 2, total: 2 });
    room.add(id("c"), C, 1.5);
    room.moved(&id("a"), 3.0);
    let text = frame(&mut room, Counts { now: 3, total: 3 });
    assert!(room.crowded());
    assert_eq!(
        text, "event: density\ndata: {\"counts\":[0,2,0,1],\"now\":3,\"total\":3}\n\n",
        "the switch replaces the tick's join and moves with the whole state"
    );

    // A move within a block changes nothing; one across blocks does.
    assert_eq!(room.moved(&id("b"), 1.2), Moved::Coalesced);
    assert_eq!(frame(&mut room, Counts { now: 3, total: 3 }), "");
    assert_eq!(room.moved(&id("b"), 2.0), Moved::Recounted);
    room.add(id("d"), C, 0.0);
    let text = frame(&mut room, Counts { now: 4, total: 4 });
    assert_eq!(names(&text), ["density"], "no join, no moves: {text}");
    assert!(text.contains("\"counts\":[1,1,1,1]"), "{text}");
}

#[test]
fn a_crowded_room_goes_back_only_a_fifth_below_the_threshold() {
    let mut room = crowd_room(10);
    for i in 0..11 {
        room.add(id(&format!("g{i}")), C, 0.0);
    }
    let _ = frame(&mut room, Counts { now: 11, total: 11 });
    assert!(room.crowded());
    for i in 0..2 {
        room.remove(&id(&format!("g{i}")));
    }
    let text = frame(&mut room, Counts { now: 9, total: 11 });
    assert!(room.crowded(), "9 of 10: still crowded");
    assert_eq!(names(&text), ["density"]);
    room.remove(&id("g2"));
    let text = frame(&mut room, Counts { now: 8, total: 11 });
    assert!(!room.crowded());
    assert_eq!(names(&text), ["snapshot"], "the whole state: {text}");
    assert_eq!(text.matches("\"id\"").count(), 8, "{text}");
    room.moved(&id("g3"), 2.0);
    let text = frame(&mut room, Counts { now: 8, total: 11 });
    assert_eq!(names(&text), ["moves"], "per-ghost events again");
}

#[test]
fn a_crowded_room_speaks_once_per_interval() {
    let mut room = crowd_room(1);
    let start = Instant::now();
    room.add(id("a"), C, 0.0);
    room.add(id("b"), C, 0.0);
    assert_eq!(room.publish_due(start), start, "a switch is due at once");
    room.publish(Counts { now: 2, total: 2 }, start);
    assert!(room.crowded());
    let later = start + std::time::Duration::from_millis(10);
    assert_eq!(room.publish_due(later), start + room.rule.interval);
    room.remove(&id("b"));
    assert_eq!(
        room.publish_due(later),
        start + room.rule.interval,
        "one left: still crowded"
    );
    room.remove(&id("a"));
    assert_eq!(room.publish_due(later), later, "going back is due at once");
}

#[test]
fn a_crowded_room_in_a_cluster_tells_its_own_counts_not_its_moves() {
    let rule = CrowdRule {
        above: 1,
        interval: std::time::Duration::from_millis(250),
    };
    let mut room = Room::new(Sharing::Cluster, rule, 4);
    room.add(id("a"), C, 0.0);
    room.add_remote(id("r"), C, 0.0, Arc::from("other"), false);
    let _ = frame(&mut room, Counts { now: 2, total: 2 });
    let _ = room.take_journal();
    assert!(room.crowded());
    assert_eq!(room.take_switch(), Some(true));
    assert_eq!(
        room.take_local_counts(tokio::time::Instant::now()),
        Some(vec![1, 0, 0, 0]),
        "owed at the switch: this instance's own reader only"
    );
    assert_eq!(
        room.take_local_counts(tokio::time::Instant::now()),
        None,
        "told once"
    );
    assert_eq!(room.moved(&id("a"), 0.5), Moved::Coalesced, "same block");
    assert_eq!(room.moved(&id("a"), 2.5), Moved::Recounted);
    assert_eq!(room.moved(&id("r"), 3.0), Moved::Recounted);
    let text = frame(&mut room, Counts { now: 2, total: 2 });
    assert!(text.contains("\"counts\":[0,0,1,1]"), "{text}");
    assert!(room.take_journal().is_empty(), "no moves for the cluster");
    assert_eq!(
        room.take_local_counts(tokio::time::Instant::now()),
        Some(vec![0, 0, 1, 0])
    );
    // Another instance's counts add in, block by block.
    room.shared_mut().set(Arc::from("third"), vec![2, 0, 0, 0]);
    assert_eq!(room.len(), 4);
    let text = frame(&mut room, Counts { now: 4, total: 4 });
    assert!(text.contains("\"counts\":[2,0,1,1]"), "{text}");
}

#[test]
fn a_crowded_room_sends_what_a_page_would_draw_differently_and_refreshes_the_rest() {
    use crate::ghosts::sight::REFRESH;
    let rule = CrowdRule {
        above: 1,
        interval: std::time::Duration::from_millis(250),
    };
    let mut room = Room::new(Sharing::Alone, rule, 4);
    for (name, pos) in [("a", 0.5), ("b", 0.5), ("c", 0.5), ("d", 1.5), ("e", 1.5)] {
        room.add(id(name), C, pos);
    }
    let counts = Counts { now: 5, total: 5 };
    let t0 = Instant::now();
    let at = |room: &mut Room, when: Instant| {
        String::from_utf8(
            room.take_frame(counts, when)
                .map(|b| b.to_vec())
                .unwrap_or_default(),
        )
        .expect("utf-8")
    };
    assert!(at(&mut room, t0).contains("\"counts\":[3,2,0,0]"));
    // 3 and 2 readers become 2 and 3: both bands stay at level 2.
    assert_eq!(room.moved(&id("a"), 1.5), Moved::Recounted);
    let quarter = std::time::Duration::from_millis(250);
    assert_eq!(
        at(&mut room, t0 + quarter),
        "",
        "nothing a page would draw differently"
    );
    assert!(!room.refresh_due(t0 + quarter));
    assert!(
        room.refresh_due(t0 + REFRESH),
        "the exact counts, a while later"
    );
    assert!(at(&mut room, t0 + REFRESH).contains("\"counts\":[2,3,0,0]"));
    // A reader steps into an empty block: sent at once.
    assert_eq!(room.moved(&id("b"), 3.5), Moved::Recounted);
    assert!(at(&mut room, t0 + REFRESH + quarter).contains("\"counts\":[1,3,0,1]"));
}

/// What a member's stream would write now of its neighbours, if anything.
fn near_frame(room: &Room, who: &str, sent: &mut u64) -> Option<String> {
    let view = room.near_view(&id(who)).expect("a local member has a view");
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let frame = view.poll_frame(&mut cx, sent)?;
    Some(String::from_utf8(frame.to_vec()).expect("utf-8"))
}

#[test]
fn a_crowded_rooms_readers_see_the_readers_nearest_them_move_live() {
    let mut room = crowd_room(3);
    let counts = Counts { now: 12, total: 12 };
    for i in 0..10 {
        room.add(id(&format!("a{i}")), C, 1.5);
    }
    room.add(id("far"), C, 3.0);
    room.add(id("me"), C, 3.2);
    let mut sent = 0;
    assert_eq!(
        near_frame(&room, "me", &mut sent),
        None,
        "per-ghost mode: no neighbours"
    );
    room.publish(counts, Instant::now());
    assert!(room.crowded());
    let first = near_frame(&room, "me", &mut sent).expect("the switch sends neighbours");
    assert!(first.starts_with("event: near\n"), "{first}");
    assert!(
        first.contains("\"id\":\"far\"") && first.contains("\"id\":\"me\""),
        "{first}"
    );
    assert_eq!(near_frame(&room, "me", &mut sent), None, "written once");

    // A neighbour moving within its block moves in the frame.
    assert_eq!(room.moved(&id("far"), 3.7), Moved::Seen);
    room.publish(counts, Instant::now() + std::time::Duration::from_secs(1));
    let moved = near_frame(&room, "me", &mut sent).expect("far moved");
    assert!(
        moved.contains("\"id\":\"far\",\"color\":\"c\",\"pos\":3.7"),
        "{moved}"
    );

    // A reader nobody sees as a neighbour moves unseen: block 1 has ten,
    // and its frame (the nearest of every block, here) names seven.
    let block_1 = near_frame(&room, "a0", &mut 0).expect("block 1's frame");
    let unseen = (0..10)
        .map(|i| format!("a{i}"))
        .find(|a| !block_1.contains(&format!("\"id\":\"{a}\"")))
        .expect("three of block 1 are nobody's neighbours");
    assert_eq!(room.moved(&id(&unseen), 1.9), Moved::Coalesced);
    assert!(!room.neighbours.dirty());

    // Leaving, a neighbour leaves the frame; the next nearest come in.
    room.remove(&id("far"));
    room.publish(counts, Instant::now() + std::time::Duration::from_secs(2));
    let left = near_frame(&room, "me", &mut sent).expect("far left");
    assert!(!left.contains("\"id\":\"far\""), "{left}");
    assert_eq!(left.matches("\"id\":").count(), 7, "{left}");

    // Back below the threshold, the room sends every ghost, no neighbours.
    for i in 0..10 {
        room.remove(&id(&format!("a{i}")));
    }
    room.publish(counts, Instant::now() + std::time::Duration::from_secs(3));
    assert!(!room.crowded());
    assert_eq!(near_frame(&room, "me", &mut sent), None);
}
