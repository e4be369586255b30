//! Every loaded post, with its page rendered once at load, and the shared
//! handle through which requests see the current set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use super::feeds;
use super::pages::{self, Slotted};
use super::post::{Post, Slug};
use super::site::Site;

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
    /// Each tag's page, by tag (published posts only).
    tags: BTreeMap<String, Bytes>,
    /// The Atom feed, the sitemap and robots.txt, rendered with the posts.
    pub feed: Bytes,
    pub sitemap: Bytes,
    pub robots: Bytes,
}

impl Library {
    pub fn from_posts(posts: impl IntoIterator<Item = Arc<Post>>, site: &Site) -> Library {
        let mut entries = HashMap::new();
        let mut listed = Vec::new();
        for post in posts {
            if !post.meta.draft {
                listed.push(post.clone());
            }
            let page = pages::render_post_page(site, &post);
            entries.insert(post.slug.clone(), Entry { post, page });
        }
        listed.sort_by(|a, b| {
            b.meta
                .date
                .cmp(&a.meta.date)
                .then_with(|| a.meta.title.cmp(&b.meta.title))
        });
        let mut tagged: BTreeMap<&str, Vec<Arc<Post>>> = BTreeMap::new();
        for post in &listed {
            for tag in &post.meta.tags {
                tagged.entry(tag.as_str()).or_default().push(post.clone());
            }
        }
        let names: Vec<&str> = tagged.keys().copied().collect();
        let feed = Bytes::from(feeds::render_feed(site, &listed));
        let sitemap = Bytes::from(feeds::render_sitemap(site, &listed, &names));
        let robots = Bytes::from(feeds::render_robots(site));
        let tags = tagged
            .iter()
            .map(|(tag, posts)| {
                let page = pages::render_tag_page(site, tag, posts);
                (tag.to_string(), Bytes::from(page))
            })
            .collect();
        Library {
            entries,
            listed,
            tags,
            feed,
            sitemap,
            robots,
        }
    }

    /// The page of `tag`, if a published post has it.
    pub fn tag_page(&self, tag: &str) -> Option<&Bytes> {
        self.tags.get(tag)
    }

    pub fn get(&self, slug: &str) -> Option<&Entry> {
        self.entries.get(slug)
    }

    /// Published posts, newest first.
    pub fn listed(&self) -> &[Arc<Post>] {
        &self.listed
    }

    pub fn len(&self) -> usize {
        self.entries.len()
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
            &Site::default(),
        );
        let listed: Vec<&str> = library.listed().iter().map(|p| p.slug.as_str()).collect();
        assert_eq!(listed, ["new", "old"]);
        assert!(library.get("wip").is_some(), "drafts stay reachable by URL");
        assert_eq!(library.len(), 3);
    }
}
