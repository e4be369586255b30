//! What other programs read: the Atom feed, the sitemap and robots.txt,
//! rendered once per load like the pages. Drafts appear in none of them.

use std::fmt::Write as _;
use std::sync::Arc;

use super::escape::escape_html;
use super::post::Post;
use super::site::Site;

/// The newest posts the feed carries, with their whole text.
pub const FEED_ENTRIES: usize = 20;

/// The Atom feed (RFC 4287) of the newest published posts, each with its
/// summary and full content. Without a base URL its links are relative
/// (resolved against the feed's own address by readers that support
/// `xml:base`-less relative links) and its ids are `urn:` names.
pub fn render_feed(site: &Site, listed: &[Arc<Post>]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    match &site.base_url {
        Some(base) => {
            let _ = writeln!(
                out,
                "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"{}/\">",
                xml(base)
            );
        }
        None => out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n"),
    }
    let _ = writeln!(out, "  <title>{}</title>", xml(&site.title));
    let _ = writeln!(out, "  <id>{}</id>", xml(&id(site, "/")));
    let _ = writeln!(
        out,
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
        xml(&site.link("/"))
    );
    let _ = writeln!(
        out,
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>",
        xml(&site.link("/feed.xml"))
    );
    let updated = listed
        .first()
        .map_or_else(|| "1970-01-01".to_string(), |p| p.meta.date.to_string());
    let _ = writeln!(out, "  <updated>{updated}T00:00:00Z</updated>");
    let _ = writeln!(out, "  <author><name>{}</name></author>", xml(&site.title));
    let _ = writeln!(out, "  <generator>ghostread</generator>");
    for post in listed.iter().take(FEED_ENTRIES) {
        let path = format!("/posts/{}", post.slug);
        let date = post.meta.date;
        out.push_str("  <entry>\n");
        let _ = writeln!(out, "    <title>{}</title>", xml(&post.meta.title));
        let _ = writeln!(out, "    <id>{}</id>", xml(&id(site, &path)));
        let _ = writeln!(
            out,
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
            xml(&site.link(&path))
        );
        let _ = writeln!(out, "    <published>{date}T00:00:00Z</published>");
        let _ = writeln!(out, "    <updated>{date}T00:00:00Z</updated>");
        for tag in &post.meta.tags {
            let _ = writeln!(out, "    <category term=\"{}\"/>", xml(tag));
        }
        if let Some(summary) = &post.meta.summary {
            let _ = writeln!(out, "    <summary>{}</summary>", xml(summary));
        }
        let _ = writeln!(
            out,
            "    <content type=\"html\">{}</content>",
            xml(&post.html)
        );
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out
}

/// Every published page a search engine should know: the index, each
/// post, each tag. A sitemap needs absolute addresses, so without a base
/// URL it lists paths (and the start-up warning says so).
pub fn render_sitemap(site: &Site, listed: &[Arc<Post>], tags: &[&str]) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n");
    let newest = listed.first().map(|p| p.meta.date.to_string());
    let mut url = |path: &str, modified: Option<String>| {
        let _ = write!(out, "  <url><loc>{}</loc>", xml(&site.link(path)));
        if let Some(modified) = modified {
            let _ = write!(out, "<lastmod>{modified}</lastmod>");
        }
        out.push_str("</url>\n");
    };
    url("/", newest);
    for post in listed {
        url(
            &format!("/posts/{}", post.slug),
            Some(post.meta.date.to_string()),
        );
    }
    for tag in tags {
        url(&format!("/tags/{tag}"), None);
    }
    out.push_str("</urlset>\n");
    out
}

/// Everything may be crawled but the live API; the sitemap is named when
/// its absolute address is known (robots.txt needs one).
pub fn render_robots(site: &Site) -> String {
    let mut out =
        String::from("User-agent: *\nDisallow: /posts/*/events\nDisallow: /api/\nAllow: /\n");
    match &site.base_url {
        Some(_) => {
            let _ = writeln!(out, "\nSitemap: {}", site.link("/sitemap.xml"));
        }
        None => out.push_str(
            "\n# Sitemap: /sitemap.xml (start the server with --base-url to name it here)\n",
        ),
    }
    out
}

/// A stable id for a page: its address, or a `urn:` name without one.
fn id(site: &Site, path: &str) -> String {
    match &site.base_url {
        Some(base) => format!("{base}{path}"),
        None => format!("urn:ghostread:{}", path.trim_matches('/').replace('/', ":")),
    }
}

/// Text for XML: escaped as for HTML (which XML reads alike), without the
/// control characters XML 1.0 cannot hold at all.
fn xml(text: &str) -> String {
    let allowed = |c: &char| (*c as u32) >= 0x20 || matches!(c, '\t' | '\n' | '\r');
    if text.chars().all(|c| allowed(&c)) {
        escape_html(text)
    } else {
        escape_html(&text.chars().filter(allowed).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blog::Slug;

    fn post(slug: &str, date: &str, extra: &str) -> Arc<Post> {
        let text = format!("---\ntitle: A & B <{slug}>\ndate: {date}\n{extra}---\nOne <b>x</b>.\n");
        Arc::new(Post::parse(Slug::parse(slug).expect("slug"), &text).expect("post"))
    }

    #[test]
    fn the_feed_escapes_everything_and_links_absolutely_with_a_base() {
        let site = Site {
            title: "T & co".into(),
            base_url: Some("https://b.example".into()),
        };
        let posts = [
            post("new", "2026-02-03", "summary: S <s>\ntags: rust, live\n"),
            post("old", "2025-01-01", ""),
        ];
        let feed = render_feed(&site, &posts);
        assert!(feed.contains("<title>T &amp; co</title>"));
        assert!(feed.contains("<updated>2026-02-03T00:00:00Z</updated>"));
        assert!(feed.contains(
            "<link rel=\"alternate\" type=\"text/html\" href=\"https://b.example/posts/new\"/>"
        ));
        assert!(feed.contains("<id>https://b.example/posts/old</id>"));
        assert!(feed.contains("<summary>S &lt;s&gt;</summary>"));
        assert!(feed.contains("<category term=\"live\"/>"));
        assert!(
            feed.contains("&lt;b&gt;x&lt;/b&gt;"),
            "content as escaped HTML"
        );
        let bare = render_feed(
            &Site {
                title: "T".into(),
                base_url: None,
            },
            &posts,
        );
        assert!(bare.contains("<id>urn:ghostread:posts:new</id>"));
        assert!(bare.contains("href=\"/posts/new\""));
    }

    #[test]
    fn the_sitemap_and_robots_name_every_page_and_each_other() {
        let site = Site {
            title: "T".into(),
            base_url: Some("https://b.example".into()),
        };
        let sitemap = render_sitemap(&site, &[post("a", "2026-01-01", "")], &["rust"]);
        assert!(sitemap
            .contains("<url><loc>https://b.example/</loc><lastmod>2026-01-01</lastmod></url>"));
        assert!(sitemap.contains("<loc>https://b.example/posts/a</loc>"));
        assert!(sitemap.contains("<loc>https://b.example/tags/rust</loc>"));
        assert!(render_robots(&site).contains("Sitemap: https://b.example/sitemap.xml"));
        assert!(!render_robots(&Site::default()).contains("\nSitemap:"));
    }
}
