//! HTML pages, as maud templates. Pure: data in, markup out. The post page is
//! rendered once per post load into a [`Slotted`] page whose live numbers are
//! filled in per request, so serving a post copies bytes and formats nothing.

use std::sync::Arc;

use bytes::Bytes;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::post::Post;
use super::site::Site;
use crate::events::count_text;

/// A page with holes for a few values that change between requests.
#[derive(Clone, Debug)]
pub struct Slotted {
    parts: Vec<Bytes>,
}

/// Marks a hole while rendering; never appears in a finished page.
const SLOT: &str = "\u{0}slot\u{0}";

/// The browser client's modules below `web/`, which a post page preloads:
/// without the list a browser learns each import only once it has the
/// module importing it. A test of `http::assets` holds it to `web/client/`.
pub const CLIENT_MODULES: &[&str] = &[
    "client/start.js",
    "client/connection.js",
    "client/controls.js",
    "client/crowd.js",
    "client/drawing.js",
    "client/layout.js",
    "client/presence.js",
    "client/room.js",
    "client/session.js",
    "client/storage.js",
    "client/tabs.js",
];

impl Slotted {
    fn from_markup(markup: Markup) -> Slotted {
        let html = markup.into_string();
        Slotted {
            parts: html
                .split(SLOT)
                .map(|part| Bytes::copy_from_slice(part.as_bytes()))
                .collect(),
        }
    }

    /// The page with `values` in its holes, in order.
    pub fn fill(&self, values: &[&str]) -> Bytes {
        let extra: usize = values.iter().map(|v| v.len()).sum();
        let mut out = Vec::with_capacity(self.parts.iter().map(Bytes::len).sum::<usize>() + extra);
        for (i, part) in self.parts.iter().enumerate() {
            out.extend_from_slice(part);
            if let Some(value) = values.get(i).filter(|_| i + 1 < self.parts.len()) {
                out.extend_from_slice(value.as_bytes());
            }
        }
        Bytes::from(out)
    }
}

/// The post page, with two holes: readers now, then readers ever.
pub fn render_post_page(site: &Site, post: &Post) -> Slotted {
    let meta = &post.meta;
    let cards = cards(site, post);
    let body = html! {
        main.post-main {
            div.reader {
                // The ghosts' lane: the browser client draws readers here.
                aside.ghost-lane aria-hidden="true" data-ghost-lane {}
                article.post data-slug=(post.slug) data-blocks=(post.blocks) {
                    header.post-header {
                        h1 { (meta.title) }
                        p.meta {
                            time datetime=(meta.date) { (meta.date.human()) }
                            " · " (post.reading_minutes) " min read"
                            @if meta.draft { " · " span.draft-badge { "draft" } }
                            @if !meta.tags.is_empty() { " · " (tag_list(&meta.tags)) }
                        }
                    }
                    div.prose { (PreEscaped(&post.html)) }
                }
            }
        }
        footer.post-footer {
            p {
                span.live { span data-now { (PreEscaped(SLOT)) } " reading now" }
                " · "
                span { "Total readers: " span data-total { (PreEscaped(SLOT)) } }
            }
            p { a href="/" { "← All posts" } }
        }
        // Without JavaScript the page is a plain, complete article. The
        // client's modules are fetched at once, not one import at a time.
        @for module in CLIENT_MODULES {
            link rel="modulepreload" href={ "/web/" (module) };
        }
        script type="module" src="/web/ghosts.js" {}
    };
    Slotted::from_markup(layout(
        site,
        Some(&meta.title),
        meta.summary.as_deref(),
        cards,
        body,
    ))
}

/// Link previews (OpenGraph, read by most sites and chat apps, and
/// Twitter's cards): title, summary, address, and the post's first figure.
fn cards(site: &Site, post: &Post) -> Markup {
    let meta = &post.meta;
    let image = first_image(&post.html).map(|src| site.resolve(&src));
    html! {
        meta property="og:type" content="article";
        meta property="og:site_name" content=(site.title);
        meta property="og:title" content=(meta.title);
        @if let Some(summary) = &meta.summary { meta property="og:description" content=(summary); }
        // og:url must be absolute: only with --base-url.
        @if site.base_url.is_some() {
            meta property="og:url" content=(site.link(&format!("/posts/{}", post.slug)));
            link rel="canonical" href=(site.link(&format!("/posts/{}", post.slug)));
        }
        @if let Some(image) = &image { meta property="og:image" content=(image); }
        meta property="article:published_time" content=(meta.date);
        @for tag in &meta.tags { meta property="article:tag" content=(tag); }
        meta name="twitter:card" content=(if image.is_some() { "summary_large_image" } else { "summary" });
        meta name="twitter:title" content=(meta.title);
        @if let Some(summary) = &meta.summary { meta name="twitter:description" content=(summary); }
        @if let Some(image) = &image { meta name="twitter:image" content=(image); }
    }
}

/// The `src` of the first image in a post's HTML, if any.
fn first_image(html: &str) -> Option<String> {
    let at = html.find("<img ")?;
    let rest = &html[at..];
    let end = rest.find('>')?;
    let src = rest[..end].split(" src=\"").nth(1)?.split('"').next()?;
    // The HTML is escaped; the attribute goes back through maud, which
    // escapes again.
    Some(src.replace("&amp;", "&").replace("&quot;", "\""))
}

/// A post's tags, each a link to its page (inline: it sits in a line of
/// metadata, where a list could not).
fn tag_list(tags: &[String]) -> Markup {
    html! {
        span.tags {
            span.visually-hidden { "Tags: " }
            @for (i, tag) in tags.iter().enumerate() {
                @if i > 0 { " " }
                a href={ "/tags/" (tag) } rel="tag" { "#" (tag) }
            }
        }
    }
}

/// The page of one tag: its published posts, newest first.
pub fn render_tag_page(site: &Site, tag: &str, posts: &[Arc<Post>]) -> String {
    let body = html! {
        main.index {
            h1 { "Posts tagged " span.tag-name { "#" (tag) } }
            ol.post-list {
                @for post in posts {
                    li data-slug=(post.slug) {
                        h2 { a href={ "/posts/" (post.slug) } { (post.meta.title) } }
                        p.meta {
                            time datetime=(post.meta.date) { (post.meta.date.human()) }
                            " · " (post.reading_minutes) " min read"
                            " · " (tag_list(&post.meta.tags))
                        }
                        @if let Some(summary) = &post.meta.summary { p.summary { (summary) } }
                    }
                }
            }
            p { a href="/" { "← All posts" } }
        }
    };
    layout(site, Some(&format!("#{tag}")), None, html! {}, body).into_string()
}

/// One row of the index.
pub struct Listed<'a> {
    pub post: &'a Arc<Post>,
    /// Readers on the post right now.
    pub now: u64,
}

pub fn render_index(site: &Site, posts: &[Listed]) -> String {
    let body = html! {
        main.index {
            h1.visually-hidden { (site.title) }
            @if posts.is_empty() {
                p.empty { "No posts yet. Add a Markdown file to the posts folder; it appears here within a second or two." }
            }
            ol.post-list {
                @for listed in posts {
                    @let post = listed.post;
                    li data-slug=(post.slug) {
                        h2 { a href={ "/posts/" (post.slug) } { (post.meta.title) } }
                        p.meta {
                            time datetime=(post.meta.date) { (post.meta.date.human()) }
                            " · " (post.reading_minutes) " min read"
                            @if !post.meta.tags.is_empty() { " · " (tag_list(&post.meta.tags)) }
                            span.live hidden[listed.now == 0] {
                                " · " span data-now { (count_text(listed.now)) } " reading now"
                            }
                        }
                        @if let Some(summary) = &post.meta.summary { p.summary { (summary) } }
                    }
                }
            }
        }
    };
    layout(site, None, None, html! {}, body).into_string()
}

/// One page on the stats page: a post of this blog, or a page of another
/// site that shows ghosts (embed mode).
pub struct Stats<'a> {
    pub slug: &'a str,
    pub title: &'a str,
    /// Where the page is read: a path here, or the other site's address.
    pub href: &'a str,
    pub blocks: u32,
    /// Its headings (block, level, text); none known for another site's page.
    pub outline: &'a [(u32, u8, String)],
    pub now: u64,
    pub total: u64,
    /// Reader-seconds per block.
    pub heat: Vec<f64>,
}

/// `/stats`: every post with its readers now, all time, and where they
/// read: a strip with one bar per block, darker where readers spent more
/// time, beside the post's headings. No script.
pub fn render_stats(site: &Site, posts: &[Stats]) -> String {
    let body = html! {
        main.index.stats {
            h1 { "Readers" }
            p.lede {
                "Where readers spend their time, block by block: reader-minutes in
                 shown tabs, summed over every reader; nothing about any one reader."
            }
            @for stats in posts {
                @let most = stats.heat.iter().copied().fold(0.0, f64::max);
                @let minutes = stats.heat.iter().sum::<f64>() / 60.0;
                section.post-stats data-slug=(stats.slug) {
                    h2 { a href=(stats.href) { (stats.title) } }
                    p.meta {
                        span data-now { (count_text(stats.now)) } " reading now · "
                        span data-total { (stats.total) } " readers in all · "
                        span data-minutes { (format!("{minutes:.1}")) } " reader-minutes"
                    }
                    @if most > 0.0 {
                        ol.heat-strip aria-label={ "Reading time per block of " (stats.title) } {
                            @for block in 0..stats.blocks.max(1) {
                                @let seconds = stats.heat.get(block as usize).copied().unwrap_or(0.0);
                                @let level = ((seconds / most) * 9.0).round() as u32;
                                @let heading = stats.outline.iter().position(|(b, _, _)| *b == block);
                                li class={ "heat-" (level) @if heading.is_some() { " heading" } }
                                    data-block=(block) data-seconds=(format!("{seconds:.1}")) {
                                    span.bar {}
                                    @if let Some(at) = heading {
                                        span.label {
                                            (stats.outline[at].2) " · "
                                            (format!("{:.1}", section_seconds(&stats.heat, stats.outline, at) / 60.0))
                                            " min"
                                        }
                                    }
                                }
                            }
                        }
                    } @else {
                        p.empty { "Nobody has read it yet." }
                    }
                }
            }
        }
    };
    layout(site, Some("Readers"), None, html! {}, body).into_string()
}

/// Reader-seconds of the section that heading `at` starts, up to the next
/// heading of any level.
fn section_seconds(heat: &[f64], outline: &[(u32, u8, String)], at: usize) -> f64 {
    let start = outline[at].0 as usize;
    let end = outline
        .get(at + 1)
        .map_or(heat.len(), |(block, _, _)| *block as usize);
    heat.get(start..end.min(heat.len()))
        .map_or(0.0, |s| s.iter().sum())
}

/// An error page; `status` is shown to people, e.g. "404".
pub fn render_error(site: &Site, status: u16, title: &str, advice: &str) -> String {
    let body = html! {
        main.error-page {
            p.status { (status) }
            h1 { (title) }
            p { (advice) }
            p { a href="/" { "← Back to all posts" } }
        }
    };
    layout(site, Some(title), None, html! {}, body).into_string()
}

fn layout(
    site: &Site,
    page_title: Option<&str>,
    description: Option<&str>,
    head: Markup,
    body: Markup,
) -> Markup {
    let site_title = site.title.as_str();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                @if let Some(description) = description { meta name="description" content=(description); }
                title {
                    @if let Some(page_title) = page_title { (page_title) " · " }
                    (site_title)
                }
                link rel="stylesheet" href="/web/ghostread.css";
                link rel="stylesheet" href="/web/ghosts.css";
                link rel="icon" href="/web/favicon.svg" type="image/svg+xml";
                link rel="alternate" type="application/atom+xml" title=(site_title) href="/feed.xml";
                (head)
            }
            body {
                header.site-header { a.site-title href="/" { (site_title) } }
                (body)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blog::Slug;

    fn post(text: &str) -> Post {
        Post::parse(Slug::parse("a-post").expect("slug"), text).expect("valid post")
    }

    #[test]
    fn the_post_page_fills_its_live_counts_and_escapes_its_title() {
        let post = post("---\ntitle: Tags <b> & more\ndate: 2026-01-02\n---\nOne.\n\nTwo.\n");
        let site = Site {
            title: "Site".into(),
            base_url: None,
        };
        let page = render_post_page(&site, &post).fill(&["3", "1835"]);
        let html = std::str::from_utf8(&page).expect("utf-8");
        assert!(html.contains("<h1>Tags &lt;b&gt; &amp; more</h1>"));
        assert!(html.contains("<span data-now>3</span> reading now"));
        assert!(html.contains("Total readers: <span data-total>1835</span>"));
        assert!(html.contains("data-blocks=\"2\""));
        assert!(!html.contains('\u{0}'));
    }

    #[test]
    fn missing_slot_values_leave_the_holes_empty() {
        let post = post("---\ntitle: T\ndate: 2026-01-02\n---\nOne.\n");
        let page = render_post_page(&Site::default(), &post).fill(&[]);
        assert!(std::str::from_utf8(&page)
            .expect("utf-8")
            .contains("<span data-now></span>"));
    }
}
