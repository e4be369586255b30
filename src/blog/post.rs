//! One post: its URL name and its rendered article.

use std::fmt;
use std::sync::Arc;

use super::front_matter::{FrontMatter, FrontMatterError};
use super::markdown::render_markdown;

/// A post's URL name: its file name without `.md`, made of lowercase ASCII
/// letters, digits and `-` (`docs/PROTOCOL.md`).
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
    /// The headings: block index, level and text (for the heat map's strip).
    pub outline: Vec<(u32, u8, String)>,
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
            outline: rendered.outline,
        })
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
}
