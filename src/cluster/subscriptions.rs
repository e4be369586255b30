//! Which posts this instance hears: those it serves a reader of, and for a
//! while after its last one left (a reader who reloads, or the next one to
//! come, should not make it unsubscribe and ask the room's state again).
//! The link subscribes and unsubscribes as this says.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::blog::Slug;

/// How long a post is still heard after its last reader here left.
const LINGER: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Subscriptions {
    /// Each post heard, and since when it has had no reader here (`None`
    /// while it has).
    posts: HashMap<Slug, Option<Instant>>,
}

impl Subscriptions {
    /// A reader of `slug` arrived: whether the post is new here, to be
    /// subscribed to.
    pub(super) fn serve(&mut self, slug: &Slug) -> bool {
        self.posts.insert(slug.clone(), None).is_none()
    }

    /// Whether this instance hears `slug`.
    pub(super) fn hears(&self, slug: &Slug) -> bool {
        self.posts.contains_key(slug)
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Slug> {
        self.posts.keys()
    }

    /// Given the posts that have a reader here now: the posts without one
    /// for longer than `LINGER`, no longer heard and to be unsubscribed.
    pub(super) fn review(&mut self, serving: &HashSet<Slug>, now: Instant) -> Vec<Slug> {
        let mut dropped = Vec::new();
        self.posts.retain(|slug, idle| {
            if serving.contains(slug) {
                *idle = None;
                return true;
            }
            let since = *idle.get_or_insert(now);
            let keep = now.duration_since(since) < LINGER;
            if !keep {
                dropped.push(slug.clone());
            }
            keep
        });
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).expect("a slug")
    }

    #[test]
    fn a_post_is_heard_from_its_first_reader_until_a_while_after_its_last() {
        let mut posts = Subscriptions::default();
        let start = Instant::now();
        assert!(posts.serve(&slug("p")));
        assert!(!posts.serve(&slug("p")), "already heard");
        let none = HashSet::new();
        assert!(posts.review(&none, start).is_empty(), "idle from now");
        assert!(posts.review(&none, start + LINGER / 2).is_empty());
        // A reader came back meanwhile: the wait starts again.
        let p: HashSet<Slug> = [slug("p")].into();
        assert!(posts.review(&p, start + LINGER / 2).is_empty());
        assert!(posts.review(&none, start + LINGER).is_empty());
        assert_eq!(
            posts.review(&none, start + LINGER * 2 + Duration::from_secs(1)),
            vec![slug("p")]
        );
        assert!(!posts.hears(&slug("p")));
    }
}
