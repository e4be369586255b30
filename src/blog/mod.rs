//! The blog: a folder of Markdown posts, loaded into an immutable [`Library`]
//! that is swapped whole when the folder changes, so a request always sees one
//! consistent set of posts.
//!
//! `front_matter.rs` parses and validates a post's header, `markdown.rs`
//! renders its body, `post.rs` holds the result, `pages.rs` lays out the
//! HTML pages, `library.rs` holds every post with its page, `load.rs` reads
//! the folder and `reload.rs` watches it.

mod escape;
mod feeds;
mod front_matter;
mod highlight;
mod library;
mod load;
mod markdown;
pub mod pages;
mod post;
mod reload;
mod site;

pub use front_matter::FrontMatter;
pub use library::Blog;
pub use post::Slug;
pub use reload::{run as run_reload, Folder};
pub use site::{parse_base_url, Site};
