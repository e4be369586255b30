//! Each post's reader counts as of the manager's last publish, for pages to
//! read without asking the manager. Only the manager writes it.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::blog::Slug;
use crate::events::Readers;

/// Readers now and ever, per post: exactly the `readers` event's data.
pub type Counts = Readers;

/// Each post's counts as of the manager's last tick, for pages.
#[derive(Debug, Default)]
pub struct Census {
    posts: RwLock<HashMap<Slug, Counts>>,
}

impl Census {
    pub fn get(&self, slug: &str) -> Counts {
        self.posts.read().get(slug).copied().unwrap_or_default()
    }

    pub(super) fn set(&self, slug: &Slug, counts: Counts) {
        self.posts.write().insert(slug.clone(), counts);
    }

    pub(super) fn set_all(&self, all: HashMap<Slug, Counts>) {
        *self.posts.write() = all;
    }
}
