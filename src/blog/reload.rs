//! Keeps the library in step with the posts folder by polling it. A file is
//! re-read only when its size or modification time changed, and a post whose
//! new text is broken (say, half-saved) keeps its last good version online.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::library::{Blog, Library};
use super::load::{is_post_file, load_post};
use super::post::Post;
use super::site::Site;
use crate::shutdown::Shutdown;

/// What was last seen of each post file.
#[derive(Debug)]
pub struct Folder {
    dir: PathBuf,
    site: Site,
    files: HashMap<PathBuf, Seen>,
}

#[derive(Debug)]
struct Seen {
    stamp: Stamp,
    /// The last version of the file that rendered; `None` if it never did.
    post: Option<Arc<Post>>,
}

type Stamp = (Option<SystemTime>, u64);

impl Folder {
    pub fn new(dir: &Path, site: &Site) -> Folder {
        Folder {
            dir: dir.to_path_buf(),
            site: site.clone(),
            files: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks at the folder once; returns a new library when anything changed.
    /// Skipped files are logged once per change, not once per poll.
    pub fn scan(&mut self) -> io::Result<Option<Library>> {
        let mut present: HashMap<PathBuf, Stamp> = HashMap::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if !is_post_file(&path) {
                continue;
            }
            // A file deleted between listing and stat is simply not there.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                present.insert(path, (meta.modified().ok(), meta.len()));
            }
        }

        let before = self.files.len();
        self.files.retain(|path, _| present.contains_key(path));
        let mut changed = self.files.len() != before;
        for (path, stamp) in present {
            if self
                .files
                .get(&path)
                .is_some_and(|seen| seen.stamp == stamp)
            {
                continue;
            }
            changed = true;
            let previous = self.files.remove(&path).and_then(|seen| seen.post);
            let post = match load_post(&path) {
                Ok(post) => Some(Arc::new(post)),
                Err(error) if previous.is_some() => {
                    tracing::warn!("{error} (still serving its last good version)");
                    previous
                }
                Err(error) => {
                    tracing::warn!("{error}");
                    None
                }
            };
            self.files.insert(path, Seen { stamp, post });
        }
        if !changed {
            return Ok(None);
        }
        let posts = self.files.values().filter_map(|seen| seen.post.clone());
        Ok(Some(Library::from_posts(posts, &self.site)))
    }
}

/// Polls the folder every `interval` until shutdown, swapping in each new
/// library. Scans run on the blocking pool so a slow disk never stalls a
/// request.
pub async fn run(blog: Blog, mut folder: Folder, interval: Duration, mut shutdown: Shutdown) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait() => return,
        }
        let scanned = tokio::task::spawn_blocking(move || {
            let result = folder.scan();
            (folder, result)
        })
        .await;
        let Ok((returned, result)) = scanned else {
            tracing::error!("the posts folder scan panicked; reloading has stopped");
            return;
        };
        folder = returned;
        match result {
            Ok(Some(library)) => {
                tracing::info!("posts folder changed: {} posts loaded", library.len());
                blog.replace(library);
                failing = false;
            }
            Ok(None) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    "cannot read the posts folder {}: {error}; serving the posts already loaded",
                    folder.dir().display()
                );
            }
            Err(_) => {}
        }
    }
}
