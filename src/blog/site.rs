//! What the whole site is: its name, and (when the operator gives it) the
//! public address that absolute links, the feed, the sitemap and link
//! previews need.

/// The site's name and public address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Site {
    pub title: String,
    /// `https://blog.example.com` (no trailing slash), or `None`: links
    /// stay relative, and the feed, sitemap and cards say less (a warning
    /// at start says so).
    pub base_url: Option<String>,
}

impl Site {
    /// `path` (starting with `/`) as a link: absolute when the site's
    /// address is known.
    pub fn link(&self, path: &str) -> String {
        match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None => path.to_string(),
        }
    }

    /// `src` of an image or link in a post, made absolute when it is a
    /// path on this site and the address is known; full URLs stay as they
    /// are.
    pub fn resolve(&self, src: &str) -> String {
        if src.starts_with('/') && !src.starts_with("//") {
            self.link(src)
        } else {
            src.to_string()
        }
    }
}

/// A `--base-url` as given: an http(s) URL with a host and no path, query
/// or fragment (a trailing `/` is dropped). The error says what to give.
pub fn parse_base_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or("it must start with https:// (or http://), e.g. https://blog.example.com")?;
    if rest.is_empty() {
        return Err("it has no host name, e.g. https://blog.example.com".into());
    }
    if rest.contains(['/', '?', '#', ' ', '"', '<', '>', '\'']) {
        return Err(
            "give the site's address only (no path, query, spaces or quotes), e.g. https://blog.example.com"
                .into(),
        );
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_an_origin_and_links_follow_them() {
        assert_eq!(
            parse_base_url("https://blog.example.com/"),
            Ok("https://blog.example.com".into())
        );
        assert_eq!(
            parse_base_url("http://localhost:4000"),
            Ok("http://localhost:4000".into())
        );
        for bad in [
            "",
            "blog.example.com",
            "ftp://x",
            "https://",
            "https://x/blog",
            "https://x?a",
            "https://x\"><script>",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
        let site = Site {
            title: "T".into(),
            base_url: Some("https://b.example".into()),
        };
        assert_eq!(site.link("/posts/a"), "https://b.example/posts/a");
        assert_eq!(
            site.resolve("/web/img/x.svg"),
            "https://b.example/web/img/x.svg"
        );
        assert_eq!(
            site.resolve("https://elsewhere/x.png"),
            "https://elsewhere/x.png"
        );
        assert_eq!(site.resolve("//evil/x"), "//evil/x");
        let bare = Site {
            title: "T".into(),
            base_url: None,
        };
        assert_eq!(bare.link("/feed.xml"), "/feed.xml");
    }
}
