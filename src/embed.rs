//! Embed mode: pages of other sites (a Hugo, Jekyll or WordPress blog)
//! whose readers see each other as ghosts, as on ghostread's own posts.
//! This module holds which origins may, and the pages they have shown:
//! each page is its canonical URL, normalised, and gets a slug derived from
//! that URL (so its counts and heat survive restarts, and every instance of
//! a cluster names it alike); rooms, counts and the heat map then treat it
//! as a post. Nothing a client sends can make the server hold unbounded
//! state: the pages are bounded (`--embed-max-pages`), optionally to those
//! a sitemap lists, and a page's block count is bounded too.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::blog::Slug;
use crate::shutdown::Shutdown;

/// The most blocks a page may say it has: far more than any article, and
/// small enough that a density strip of it stays cheap.
pub const MOST_BLOCKS: u32 = 5_000;
/// The longest page address kept.
const MOST_URL: usize = 2_048;
/// Origins whose refusal is logged (each once); past this, one line says
/// that more were refused, so a client forging origins cannot fill memory
/// or the log.
const MOST_LOGGED: usize = 1_000;
/// How often the sitemap file is checked for a change.
const SITEMAP_EVERY: Duration = Duration::from_secs(2);

/// A page of another site that shows ghosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub slug: Slug,
    /// Its canonical address, normalised.
    pub url: String,
    /// Its top-level blocks, as its script numbered them.
    pub blocks: u32,
}

/// Why a page was not taken; each says what to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The request's origin is not one of `--embed-origin`.
    Origin(String),
    /// The address is not an http(s) URL on the request's own origin.
    Url,
    /// A block count of 0 or over `MOST_BLOCKS`.
    Blocks,
    /// `--embed-sitemap` is given and does not list the page.
    NotInSitemap(String),
    /// The server holds `--embed-max-pages` pages already.
    Full(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Origin(origin) => write!(
                f,
                "Pages of {origin} may not show ghosts here; the server's operator can allow them with --embed-origin {origin}."
            ),
            Refused::Url => write!(
                f,
                "\"url\" must be the page's own http(s) address, on the origin it is shown from."
            ),
            Refused::Blocks => write!(
                f,
                "\"blocks\" must be a whole number from 1 to {MOST_BLOCKS}: the article's top-level blocks."
            ),
            Refused::NotInSitemap(url) => write!(
                f,
                "{url} is not in the site's sitemap, so it shows no ghosts; publish it in the sitemap first."
            ),
            Refused::Full(most) => write!(
                f,
                "The server holds as many pages of other sites as it allows ({most}); its operator can raise --embed-max-pages."
            ),
        }
    }
}

/// The origins allowed, the pages shown, and what was refused.
#[derive(Debug)]
pub struct Embeds {
    origins: Vec<String>,
    most_pages: usize,
    pages: RwLock<HashMap<Slug, Page>>,
    /// With `--embed-sitemap`: the addresses it lists, normalised.
    sitemap: Option<RwLock<HashSet<String>>>,
    /// Origins whose refusal has been logged.
    logged: Mutex<HashSet<String>>,
}

impl Embeds {
    /// `origins` as `--embed-origin` gives them (already normalised by
    /// [`parse_origin`]); with a sitemap, only the pages it lists.
    pub fn new(origins: Vec<String>, most_pages: usize, sitemap: Option<&Path>) -> Embeds {
        Embeds {
            origins,
            most_pages,
            pages: RwLock::default(),
            sitemap: sitemap.map(|path| RwLock::new(read_sitemap(path))),
            logged: Mutex::default(),
        }
    }

    /// Whether embed mode is on at all.
    pub fn is_on(&self) -> bool {
        !self.origins.is_empty()
    }

    /// Whether pages of `origin` may show ghosts.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|allowed| allowed == origin)
    }

    /// The page of this slug, if one was shown.
    pub fn page(&self, slug: &str) -> Option<Page> {
        self.pages.read().get(slug).cloned()
    }

    /// Every page shown since the server started, by address.
    pub fn pages(&self) -> Vec<Page> {
        let mut pages: Vec<Page> = self.pages.read().values().cloned().collect();
        pages.sort_by(|a, b| a.url.cmp(&b.url));
        pages
    }

    /// A page of `origin` at `url` with `blocks` blocks shows ghosts: its
    /// slug (the same every time for the same address). A page shown again
    /// with another block count (edited since) takes the new count.
    pub fn show(&self, origin: &str, url: &str, blocks: u64) -> Result<Page, Refused> {
        if !self.allows(origin) {
            return Err(Refused::Origin(origin.to_string()));
        }
        let url = normalise(url)
            .filter(|url| origin_of(url) == Some(origin))
            .ok_or(Refused::Url)?;
        let blocks = u32::try_from(blocks)
            .ok()
            .filter(|b| (1..=MOST_BLOCKS).contains(b))
            .ok_or(Refused::Blocks)?;
        if let Some(sitemap) = &self.sitemap {
            if !sitemap.read().contains(&url) {
                return Err(Refused::NotInSitemap(url));
            }
        }
        let slug = slug_of(&url);
        let mut pages = self.pages.write();
        if !pages.contains_key(&slug) && pages.len() >= self.most_pages {
            return Err(Refused::Full(self.most_pages));
        }
        let page = Page {
            slug: slug.clone(),
            url,
            blocks,
        };
        pages.insert(slug, page.clone());
        Ok(page)
    }

    /// Logs that `origin` was refused, once per origin (and, past
    /// `MOST_LOGGED` origins, once for all the rest).
    pub fn log_refusal(&self, origin: &str) {
        let mut logged = self.logged.lock();
        if logged.contains(origin) {
            return;
        }
        if logged.len() < MOST_LOGGED {
            logged.insert(origin.to_string());
            tracing::warn!(
                "refused a request from {origin}: not an allowed origin; pages there get no ghosts (allow them with --embed-origin {origin})"
            );
        } else if logged.insert("*".to_string()) {
            tracing::warn!(
                "refused requests from more than {MOST_LOGGED} origins that are not allowed; no more are logged"
            );
        }
    }

    /// Reads the sitemap again whenever its file changes, until `stopping`.
    pub fn watch_sitemap(self: &std::sync::Arc<Self>, path: PathBuf, mut stopping: Shutdown) {
        let embeds = self.clone();
        tokio::spawn(async move {
            let mut seen = modified(&path);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SITEMAP_EVERY) => {}
                    _ = stopping.wait() => return,
                }
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                let listed = read_sitemap(&path);
                tracing::info!(
                    "sitemap {}: {} pages may show ghosts",
                    path.display(),
                    listed.len()
                );
                if let Some(sitemap) = &embeds.sitemap {
                    *sitemap.write() = listed;
                }
            }
        });
    }
}

/// `--embed-origin`: an origin as browsers send it (`https://blog.example`,
/// a port only when not the scheme's own), lowercased.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let url = crate::blog::parse_base_url(text)?;
    normalise(&url)
        .and_then(|url| origin_of(&url).map(str::to_string))
        .ok_or_else(|| format!("{text} is not an origin; give it as https://blog.example"))
}

/// A page's address as it is kept: an absolute http(s) URL, scheme and host
/// lowercased, the scheme's own port dropped, without query or fragment.
pub fn normalise(url: &str) -> Option<String> {
    let url = url.trim();
    let url = url.split(['#', '?']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (host, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix(default_port).unwrap_or(&host);
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    let valid_path = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b));
    let url = format!("{scheme}://{host}{path}");
    (valid_host && valid_path && url.len() <= MOST_URL).then_some(url)
}

/// The origin of a normalised address: its scheme and host.
fn origin_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |at| after_scheme + at);
    Some(&url[..end])
}

/// The slug of a page of another site: `x-` and 13 base-36 digits of the
/// 64-bit FNV-1a hash of its address. Stable across restarts and instances.
pub fn slug_of(url: &str) -> Slug {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut digits = Vec::with_capacity(13);
    for _ in 0..13 {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(hash % 36) as usize]);
        hash /= 36;
    }
    digits.reverse();
    let text = format!("x-{}", String::from_utf8_lossy(&digits));
    Slug::parse(&text).expect("x- and base-36 digits are a slug") // ok: built from a-z, 0-9 and -
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The addresses a sitemap lists (`<loc>` elements), normalised; none if
/// it cannot be read, which is logged.
fn read_sitemap(path: &Path) -> HashSet<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!(
                "cannot read the sitemap {}: {error}; no page of another site shows ghosts until it can be read",
                path.display()
            );
            return HashSet::new();
        }
    };
    text.split("<loc>")
        .skip(1)
        .filter_map(|rest| rest.split("</loc>").next())
        .map(|loc| loc.trim().replace("&amp;", "&"))
        .filter_map(|loc| normalise(&loc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_in_one_form() {
        let cases = [
            (
                "https://Blog.Example/posts/a/?utm=x#top",
                Some("https://blog.example/posts/a/"),
            ),
            ("https://blog.example:443/a", Some("https://blog.example/a")),
            (
                "http://blog.example:8080",
                Some("http://blog.example:8080/"),
            ),
            ("HTTP://127.0.0.1:80/x", Some("http://127.0.0.1/x")),
            ("javascript:alert(1)", None),
            ("ftp://blog.example/a", None),
            ("https:///a", None),
            ("https://blog.example/a b", None),
            ("https://blog.example/<script>", None),
        ];
        for (url, kept) in cases {
            assert_eq!(normalise(url).as_deref(), kept, "{url}");
        }
    }

    #[test]
    fn origins_are_given_as_browsers_send_them() {
        assert_eq!(
            parse_origin("https://Blog.Example/"),
            Ok("https://blog.example".into())
        );
        assert_eq!(
            parse_origin("http://localhost:8080"),
            Ok("http://localhost:8080".into())
        );
        assert!(parse_origin("blog.example").is_err());
    }

    #[test]
    fn a_page_is_shown_only_from_its_own_allowed_origin_and_within_bounds() {
        let embeds = Embeds::new(vec!["https://blog.example".into()], 2, None);
        let page = embeds
            .show("https://blog.example", "https://blog.example/a?x=1", 12)
            .expect("shown");
        assert_eq!(page.url, "https://blog.example/a");
        assert_eq!(page.slug, slug_of("https://blog.example/a"));
        assert!(page.slug.as_str().starts_with("x-"));
        assert_eq!(embeds.page(page.slug.as_str()), Some(page.clone()));
        let refusals = [
            (
                "https://evil.example",
                "https://evil.example/a",
                3,
                Refused::Origin("https://evil.example".into()),
            ),
            (
                "https://blog.example",
                "https://evil.example/a",
                3,
                Refused::Url,
            ),
            (
                "https://blog.example",
                "https://blog.example/b",
                0,
                Refused::Blocks,
            ),
            (
                "https://blog.example",
                "https://blog.example/b",
                5_001,
                Refused::Blocks,
            ),
        ];
        for (origin, url, blocks, why) in refusals {
            assert_eq!(
                embeds.show(origin, url, blocks),
                Err(why),
                "{origin} {url} {blocks}"
            );
        }
        embeds
            .show("https://blog.example", "https://blog.example/b", 3)
            .expect("second page");
        assert_eq!(
            embeds.show("https://blog.example", "https://blog.example/c", 3),
            Err(Refused::Full(2)),
            "bounded"
        );
        let again = embeds
            .show("https://blog.example", "https://blog.example/a", 20)
            .expect("a page shown before");
        assert_eq!(again.blocks, 20, "an edited page takes its new length");
    }

    #[test]
    fn with_a_sitemap_only_the_pages_it_lists_are_shown() {
        let dir = std::env::temp_dir().join(format!("ghostread-sitemap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let path = dir.join("sitemap.xml");
        std::fs::write(
            &path,
            "<urlset><url><loc>https://blog.example/a/</loc></url><url><loc> https://blog.example/b?x=1&amp;y=2 </loc></url></urlset>",
        )
        .expect("a sitemap");
        let embeds = Embeds::new(vec!["https://blog.example".into()], 10, Some(&path));
        assert!(embeds
            .show("https://blog.example", "https://blog.example/a/", 3)
            .is_ok());
        assert!(embeds
            .show("https://blog.example", "https://blog.example/b", 3)
            .is_ok());
        assert_eq!(
            embeds.show("https://blog.example", "https://blog.example/c", 3),
            Err(Refused::NotInSitemap("https://blog.example/c".into()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
