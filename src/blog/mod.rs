//! The blog: a folder of Markdown posts, loaded into an immutable [`Library`]
//! that is swapped whole when the folder changes, so a request always sees one
//! consistent set of posts.

mod front_matter;
mod load;
mod markdown;
mod reload;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

pub use front_matter::{Date, FrontMatter, FrontMatterError};
pub use load::{load_library, PostError};
pub use markdown::{escape_html, render_markdown, Rendered};
pub use reload::{run as run_reload, Folder};

use crate::pages::{self, Slotted};

/// A post's URL name: its file name without `.md`, made of lowercase ASCII
/// letters, digits and `-` (PROTOCOL.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(Arc<str>);

impl Slug {
    /// The longest slug accepted; bounds what a request can make us hash.
    pub const MAX_LEN: usize = 100;

    pub fn parse(text: &str) -> Option<Slug> {
        let valid = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        valid.then(|| Slug(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Slug {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// One post, rendered.
#[derive(Debug)]
pub struct Post {
    pub slug: Slug,
    pub meta: FrontMatter,
    /// The article body, every top-level block marked with `data-block`.
    pub html: String,
    /// The number of marked blocks: positions range over `0..=blocks`.
    pub blocks: u32,
    pub reading_minutes: u32,
}

impl Post {
    /// Renders a post from its slug and file text.
    pub fn parse(slug: Slug, text: &str) -> Result<Post, FrontMatterError> {
        let (meta, body) = FrontMatter::parse(text)?;
        let rendered = render_markdown(body);
        // 230 words a minute is a common figure for adults reading on screen.
        let reading_minutes = u32::try_from(rendered.words.div_ceil(230))
            .unwrap_or(u32::MAX)
            .max(1);
        Ok(Post {
            slug,
            meta,
            html: rendered.html,
            blocks: rendered.blocks,
            reading_minutes,
        })
    }
}

/// A post and its page, rendered once when the post was loaded.
#[derive(Debug)]
pub struct Entry {
    pub post: Arc<Post>,
    /// The whole post page with slots for the live counts.
    pub page: Slotted,
}

/// Every loaded post. Immutable: a change on disk builds a new one.
#[derive(Debug, Default)]
pub struct Library {
    entries: HashMap<Slug, Entry>,
    /// Published posts, newest first (drafts left out).
    listed: Vec<Arc<Post>>,
}

impl Library {
    pub fn from_posts(posts: impl IntoIterator<Item = Arc<Post>>, site_title: &str) -> Library {
        let mut entries = HashMap::new();
        let mut listed = Vec::new();
        for post in posts {
            if !post.meta.draft {
                listed.push(post.clone());
            }
            let page = pages::render_post_page(site_title, &post);
            entries.insert(post.slug.clone(), Entry { post, page });
        }
        listed.sort_by(|a, b| {
            b.meta
                .date
                .cmp(&a.meta.date)
                .then_with(|| a.meta.title.cmp(&b.meta.title))
        });
        Library { entries, listed }
    }

    pub fn get(&self, slug: &str) -> Option<&Entry> {
        self.entries.get(slug)
    }

    /// Published posts, newest first.
    pub fn listed(&self) -> &[Arc<Post>] {
        &self.listed
    }

    /// Every post, drafts included.
    pub fn posts(&self) -> impl Iterator<Item = &Arc<Post>> {
        self.entries.values().map(|entry| &entry.post)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The shared handle to the current library. Readers take a cheap `Arc`
/// clone under a read lock held for nanoseconds; only the reload task writes.
#[derive(Clone, Debug, Default)]
pub struct Blog {
    library: Arc<RwLock<Arc<Library>>>,
}

impl Blog {
    pub fn new(library: Library) -> Blog {
        Blog {
            library: Arc::new(RwLock::new(Arc::new(library))),
        }
    }

    pub fn current(&self) -> Arc<Library> {
        self.library.read().clone()
    }

    pub fn replace(&self, library: Library) {
        *self.library.write() = Arc::new(library);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_letters_digits_and_dashes() {
        for good in ["a", "hello-world", "2026-notes", "x".repeat(100).as_str()] {
            assert!(Slug::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "Hello",
            "a_b",
            "a.b",
            "a/b",
            "..",
            "é",
            "a b",
            "x".repeat(101).as_str(),
        ] {
            assert!(Slug::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_index_lists_published_posts_newest_first() {
        let post = |slug: &str, date: &str, draft: bool| {
            let text = format!("---\ntitle: {slug}\ndate: {date}\ndraft: {draft}\n---\nBody.\n");
            Arc::new(Post::parse(Slug::parse(slug).expect("slug"), &text).expect("post"))
        };
        let library = Library::from_posts(
            [
                post("old", "2020-01-01", false),
                post("new", "2024-05-01", false),
                post("wip", "2025-01-01", true),
            ],
            "Test",
        );
        let listed: Vec<&str> = library.listed().iter().map(|p| p.slug.as_str()).collect();
        assert_eq!(listed, ["new", "old"]);
        assert!(library.get("wip").is_some(), "drafts stay reachable by URL");
        assert_eq!(library.len(), 3);
    }
}
