//! The neighbours' rules on a bare `Neighbours`: who is nearest a block,
//! when a block's frame changes, what a stream reads.

use super::*;

fn id(s: &str) -> GhostId {
    GhostId::for_test(s)
}

fn nearest(near: &Neighbours, block: u32) -> Vec<String> {
    near.nearest(block)
        .iter()
        .map(|id| id.to_string())
        .collect()
}

/// Members `prefix0..prefixN` at `block`, in that order of arrival.
fn arrive(near: &mut Neighbours, prefix: &str, block: u32, n: usize) {
    for i in 0..n {
        near.joined(&id(&format!("{prefix}{i}")), block);
    }
}

#[test]
fn a_block_sees_its_own_readers_first_longest_there_first() {
    let mut near = Neighbours::default();
    near.start(std::iter::empty());
    arrive(&mut near, "a", 3, 9);
    arrive(&mut near, "b", 2, 2);
    assert_eq!(
        nearest(&near, 3),
        ["a0", "a1", "a2", "a3", "a4", "a5", "a6"]
    );
    near.refresh(5, |_| Vec::new());
    // A reader that moves within its block keeps its place...
    assert!(!near.moved(&id("a8"), 3, None), "a8 is nobody's neighbour");
    assert!(near.moved(&id("a1"), 3, None), "a1 is someone's neighbour");
    assert_eq!(nearest(&near, 3)[1], "a1");
    // ...and one that steps out and back comes last.
    assert!(near.moved(&id("a1"), 4, None));
    assert!(near.moved(&id("a1"), 3, None));
    assert_eq!(
        nearest(&near, 3),
        ["a0", "a2", "a3", "a4", "a5", "a6", "a7"]
    );
}

#[test]
fn a_sparse_block_sees_the_nearest_blocks_the_earlier_first_on_a_tie() {
    let mut near = Neighbours::default();
    near.start(std::iter::empty());
    arrive(&mut near, "x", 0, 1);
    arrive(&mut near, "b", 4, 2);
    arrive(&mut near, "c", 6, 3);
    arrive(&mut near, "d", 9, 5);
    assert_eq!(
        nearest(&near, 5),
        ["b0", "b1", "c0", "c1", "c2", "d0", "d1"]
    );
    assert_eq!(
        nearest(&near, 9),
        ["d0", "d1", "d2", "d3", "d4", "c0", "c1"]
    );
    near.left(&id("d2"));
    assert_eq!(
        nearest(&near, 9),
        ["d0", "d1", "d3", "d4", "c0", "c1", "c2"]
    );
    assert_eq!(near.at(9).count(), 4);
}

#[test]
fn a_block_gets_a_new_frame_only_when_what_it_names_changed() {
    let mut near = Neighbours::default();
    near.start(std::iter::empty());
    arrive(&mut near, "a", 0, 2);
    let encode = |ids: &[&GhostId]| {
        let names: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        names.join(",").into_bytes()
    };
    assert_eq!(
        near.refresh(3, encode),
        [0, 1, 2],
        "every block's first frame"
    );
    assert!(!near.dirty());
    {
        let frames = near.board.frames.lock();
        assert_eq!(frames[0], frames[2], "the same readers: one shared frame");
    }
    arrive(&mut near, "b", 2, 1);
    assert_eq!(near.refresh(3, encode), [0, 1, 2], "b0 is near every block");
    arrive(&mut near, "c", 2, 20);
    assert_eq!(near.refresh(3, encode), [0, 1, 2]);
    near.moved(&id("c19"), 2, None);
    assert!(!near.dirty(), "c19 is nobody's neighbour");
    near.stop();
    assert!(!near.dirty());
    assert!(
        near.board.frames.lock().is_empty(),
        "no frames once not crowded"
    );
}

#[test]
fn a_stream_writes_its_blocks_frame_once_and_looks_again_when_it_moves() {
    let mut near = Neighbours::default();
    let view = near.view(0);
    near.start([(&id("a0"), 0, Some(&*view))].into_iter());
    arrive(&mut near, "b", 1, 1);
    let encode = |ids: &[&GhostId]| {
        let names: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        names.join(",").into_bytes()
    };
    near.refresh(2, encode);
    let mut cx = Context::from_waker(Waker::noop());
    let mut sent = 0;
    let first = view.poll_frame(&mut cx, &mut sent);
    assert_eq!(first.as_deref(), Some(&b"a0,b0"[..]));
    assert_eq!(view.poll_frame(&mut cx, &mut sent), None, "written already");
    near.moved(&id("a0"), 1, Some(&view));
    let moved = view.poll_frame(&mut cx, &mut sent);
    assert_eq!(
        moved.as_deref(),
        Some(&b"b0,a0"[..]),
        "block 1's frame, as it was"
    );
}
