//! Static files under `/web/`: compiled in, or read from a folder during
//! development. Every name is checked against a strict pattern before any
//! lookup, so no request path can reach outside `web/`.

use std::collections::HashMap;
use std::path::PathBuf;

use hyper::body::Bytes;

use super::compact;
use crate::config::WebSource;

mod embedded {
    /// Every file of `web/`, by its path below `web/`. A test fails when a
    /// file in `web/` is missing here, so the list cannot drift.
    pub static FILES: &[(&str, &[u8])] = &[
        (
            "client/connection.js",
            include_bytes!("../../web/client/connection.js"),
        ),
        (
            "client/controls.js",
            include_bytes!("../../web/client/controls.js"),
        ),
        (
            "client/crowd.js",
            include_bytes!("../../web/client/crowd.js"),
        ),
        (
            "client/drawing.js",
            include_bytes!("../../web/client/drawing.js"),
        ),
        (
            "client/layout.js",
            include_bytes!("../../web/client/layout.js"),
        ),
        (
            "client/presence.js",
            include_bytes!("../../web/client/presence.js"),
        ),
        ("client/room.js", include_bytes!("../../web/client/room.js")),
        (
            "client/session.js",
            include_bytes!("../../web/client/session.js"),
        ),
        (
            "client/start.js",
            include_bytes!("../../web/client/start.js"),
        ),
        (
            "client/storage.js",
            include_bytes!("../../web/client/storage.js"),
        ),
        ("client/tabs.js", include_bytes!("../../web/client/tabs.js")),
        ("embed.js", include_bytes!("../../web/embed.js")),
        ("favicon.svg", include_bytes!("../../web/favicon.svg")),
        ("ghostread.css", include_bytes!("../../web/ghostread.css")),
        ("ghosts.css", include_bytes!("../../web/ghosts.css")),
        ("ghosts.js", include_bytes!("../../web/ghosts.js")),
        (
            "img/actor-mailbox.svg",
            include_bytes!("../../web/img/actor-mailbox.svg"),
        ),
    ];
}

/// One file, ready to send.
#[derive(Clone, Debug)]
pub struct Asset {
    pub bytes: Bytes,
    pub content_type: &'static str,
    /// A strong validator: a hash of the bytes, quoted.
    pub etag: String,
    pub cache_control: &'static str,
    /// The same bytes gzipped, with their own validator (a strong `ETag`
    /// names one representation): compiled-in text files only.
    pub gzipped: Option<(Bytes, String)>,
}

#[derive(Debug)]
pub enum Assets {
    Embedded(HashMap<&'static str, Asset>),
    Dir(PathBuf),
}

impl Assets {
    pub fn new(source: &WebSource) -> Assets {
        match source {
            WebSource::Embedded => Assets::Embedded(
                embedded::FILES
                    .iter()
                    .map(|(name, bytes)| (*name, compiled_in(name, bytes)))
                    .collect(),
            ),
            WebSource::Dir(dir) => Assets::Dir(dir.clone()),
        }
    }

    /// The asset at `name` (the URL path after `/web/`, still percent-encoded),
    /// or `None` for anything that is not a plain file name inside `web/`.
    /// `Err` only when a file that exists in the folder cannot be read (a
    /// permission or disk problem the operator must fix): a 500, not a 404.
    pub async fn get(&self, name: &str) -> std::io::Result<Option<Asset>> {
        if !is_safe_name(name) {
            return Ok(None);
        }
        match self {
            Assets::Embedded(files) => Ok(files.get(name).cloned()),
            Assets::Dir(dir) => {
                let path = dir.join(name);
                match tokio::fs::metadata(&path).await {
                    Ok(meta) if meta.is_file() => {}
                    Ok(_) => return Ok(None),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(error) => return Err(error),
                };
                let bytes = tokio::fs::read(&path).await?;
                Ok(Some(asset(name, Bytes::from(bytes), DEV_CACHE)))
            }
        }
    }
}

/// Compiled-in files change only with a new binary; an hour of caching plus
/// `ETag` revalidation keeps pages fast without serving stale code for long.
const EMBEDDED_CACHE: &str = "public, max-age=3600";
/// Files served from a folder are being edited: always revalidate.
const DEV_CACHE: &str = "no-cache";

fn asset(name: &str, bytes: Bytes, cache_control: &'static str) -> Asset {
    Asset {
        etag: format!("\"{:016x}\"", fnv1a(&bytes)),
        content_type: content_type(name),
        bytes,
        cache_control,
        gzipped: None,
    }
}

/// A compiled-in file as it is sent: scripts and stylesheets without their
/// comments and indentation, and text gzipped beside (see `compact`).
/// Files served from a `--web` folder are being edited and go as they are.
fn compiled_in(name: &str, bytes: &'static [u8]) -> Asset {
    let extension = name.rsplit_once('.').map(|(_, ext)| ext);
    let text = std::str::from_utf8(bytes).ok();
    let bytes = match (extension, text) {
        (Some("js"), Some(text)) => Bytes::from(compact::strip(text, true)),
        (Some("css"), Some(text)) => Bytes::from(compact::strip(text, false)),
        _ => Bytes::from_static(bytes),
    };
    let mut asset = asset(name, bytes, EMBEDDED_CACHE);
    if matches!(
        extension,
        Some("js" | "css" | "svg" | "html" | "txt" | "json")
    ) {
        asset.gzipped = compact::gzip(&asset.bytes).map(|packed| {
            let etag = format!("\"{:016x}-gz\"", fnv1a(&asset.bytes));
            (Bytes::from(packed), etag)
        });
    }
    asset
}

/// Segments of letters, digits, `.`, `_` and `-`, each starting with a letter
/// or digit: this rules out `..`, hidden files, percent-encoding, backslashes,
/// NUL, empty segments and absolute paths in one rule.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.split('/').all(|segment| {
            segment
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        _ => "application/octet-stream",
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, which `DefaultHasher`
/// does not promise, and plenty for telling file versions apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison,
/// as RFC 9110 asks for `If-None-Match`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    if_none_match.trim() == "*" || if_none_match.split(',').any(|tag| bare(tag) == bare(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_inside_web_are_accepted() {
        for good in ["ghostread.css", "img/ghost-1.svg", "a_b.js"] {
            assert!(is_safe_name(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "../Cargo.toml",
            "img/../../x",
            "%2e%2e/x",
            "..%2fCargo.toml",
            "a\\b",
            "/etc/passwd",
            "a//b",
            ".hidden",
            "a/.git",
            "x\0y",
            "img/",
            "é.css",
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let etag = "\"abc\"";
        for (header, want) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
        ] {
            assert_eq!(etag_matches(header, etag), want, "{header}");
        }
    }

    #[test]
    fn post_pages_preload_every_module_of_the_client() {
        let mut modules: Vec<&str> = embedded::FILES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| name.starts_with("client/"))
            .collect();
        let mut preloaded = crate::blog::pages::CLIENT_MODULES.to_vec();
        modules.sort_unstable();
        preloaded.sort_unstable();
        assert_eq!(
            modules, preloaded,
            "list each web/client/ module in CLIENT_MODULES"
        );
    }

    #[test]
    fn every_file_in_web_is_compiled_in_byte_for_byte() {
        fn walk(root: &std::path::Path, dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read web/") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(root, &path, found);
                } else {
                    let relative = path.strip_prefix(root).expect("below web/");
                    found.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let embedded: Vec<String> = embedded::FILES
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        assert_eq!(
            on_disk, embedded,
            "add each web/ file to embedded::FILES, sorted"
        );
        for (name, bytes) in embedded::FILES {
            assert_eq!(
                std::fs::read(root.join(name)).expect("read asset"),
                *bytes,
                "{name}"
            );
        }
    }
}
