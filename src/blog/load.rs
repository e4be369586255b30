//! Reading post files from disk. With `reload.rs`, which watches the
//! folder, the only part of `blog` that does IO.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::front_matter::FrontMatterError;
use super::post::{Post, Slug};

/// Why one post file was skipped. Always names the file.
#[derive(Debug)]
pub struct PostError {
    pub file: PathBuf,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    BadName,
    NotUtf8,
    Io(io::Error),
    FrontMatter(FrontMatterError),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.problem {
            Problem::BadName => write!(
                f,
                "{file}: skipped: a post's file name must be lowercase letters, digits and `-`, ending in `.md` (e.g. `my-first-post.md`)"
            ),
            Problem::NotUtf8 => write!(f, "{file}: skipped: the file is not valid UTF-8; save it as UTF-8"),
            Problem::Io(error) => write!(f, "{file}: skipped: cannot read it: {error}"),
            Problem::FrontMatter(error) => write!(f, "{file}: skipped: {error}"),
        }
    }
}

impl std::error::Error for PostError {}

/// Whether a directory entry is meant as a post: `*.md`, not hidden. Editor
/// leftovers (`.post.md.swp`, `#post.md#`, `post.md~`) do not end in `.md`.
pub fn is_post_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".md") && !name.starts_with('.')
}

/// Reads and renders one post file.
pub fn load_post(path: &Path) -> Result<Post, PostError> {
    let fail = |problem| PostError {
        file: path.to_path_buf(),
        problem,
    };
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".md"));
    let slug = stem
        .and_then(Slug::parse)
        .ok_or_else(|| fail(Problem::BadName))?;
    let bytes = std::fs::read(path).map_err(|e| fail(Problem::Io(e)))?;
    let text = String::from_utf8(bytes).map_err(|_| fail(Problem::NotUtf8))?;
    Post::parse(slug, &text).map_err(|e| fail(Problem::FrontMatter(e)))
}
