//! The reading heat map over HTTP: `GET /posts/{slug}/heat` as JSON, and
//! the `/stats` page. Public, like the counts every page shows: it is an
//! anonymous sum over all readers, nothing about any one of them.

use hyper::{Response, StatusCode};

use super::app::App;
use super::reply::{self, Body, Keep};
use crate::blog::pages::{self, Stats};
use crate::blog::Slug;
use crate::store::Heat;

/// These pages' heat as the whole site knows it: summed over the cluster
/// through Redis, or this instance's own when alone (or Redis is away).
async fn heat_of(app: &App, slugs: &[Slug]) -> Heat {
    let mut heat = Heat::new();
    if let Some(cluster) = &app.cluster {
        if let Some(strips) = cluster.heat(slugs.to_vec()).await {
            for (slug, strip) in slugs.iter().zip(strips) {
                heat.insert(slug.to_string(), strip);
            }
        }
    }
    let missing: Vec<String> = slugs
        .iter()
        .map(|slug| slug.to_string())
        .filter(|slug| !heat.contains_key(slug))
        .collect();
    if !missing.is_empty() {
        heat.extend(app.ghosts.heat(missing).await.unwrap_or_default());
    }
    heat
}

/// A page's strip, one number per block of the page as it is now.
fn strip(heat: &Heat, slug: &str, blocks: u32) -> Vec<f64> {
    let mut strip = heat.get(slug).cloned().unwrap_or_default();
    strip.resize(blocks.max(1) as usize, 0.0);
    strip
}

/// `GET /posts/{slug}/heat`: a post's, or a page's of another site.
pub async fn heat(app: &App, slug: &str) -> Response<Body> {
    let Some(page) = app.live_page(slug) else {
        return reply::json_error(StatusCode::NOT_FOUND, "No post has that name.");
    };
    let library = app.blog.current();
    let outline = library
        .get(slug)
        .map(|entry| entry.post.outline.clone())
        .unwrap_or_default();
    let heat = heat_of(app, std::slice::from_ref(&page.slug)).await;
    let seconds: Vec<f64> = strip(&heat, slug, page.blocks)
        .into_iter()
        .map(|s| (s * 10.0).round() / 10.0)
        .collect();
    let outline: Vec<serde_json::Value> = outline
        .iter()
        .map(|(block, level, text)| serde_json::json!({ "block": block, "level": level, "text": text }))
        .collect();
    let body = serde_json::json!({
        "slug": page.slug.as_str(),
        "blocks": page.blocks,
        "total_seconds": (seconds.iter().sum::<f64>() * 10.0).round() / 10.0,
        "seconds": seconds,
        "headings": outline,
    })
    .to_string();
    reply::json(body, Keep::AskAgain)
}

/// `GET /stats`: this blog's posts, then the pages of other sites that
/// have shown ghosts since the server started.
pub async fn page(app: &App) -> Response<Body> {
    let library = app.blog.current();
    let others = app.embeds.pages();
    let slugs: Vec<Slug> = library
        .listed()
        .iter()
        .map(|post| post.slug.clone())
        .chain(others.iter().map(|page| page.slug.clone()))
        .collect();
    let heat = heat_of(app, &slugs).await;
    let hrefs: Vec<String> = library
        .listed()
        .iter()
        .map(|post| format!("/posts/{}", post.slug))
        .collect();
    let mut rows: Vec<Stats> = library
        .listed()
        .iter()
        .zip(&hrefs)
        .map(|(post, href)| {
            let counts = app.ghosts.counts(post.slug.as_str());
            Stats {
                slug: post.slug.as_str(),
                title: &post.meta.title,
                href,
                blocks: post.blocks,
                outline: &post.outline,
                now: counts.now,
                total: counts.total,
                heat: strip(&heat, post.slug.as_str(), post.blocks),
            }
        })
        .collect();
    rows.extend(others.iter().map(|page| {
        let counts = app.ghosts.counts(page.slug.as_str());
        Stats {
            slug: page.slug.as_str(),
            title: &page.url,
            href: &page.url,
            blocks: page.blocks,
            outline: &[],
            now: counts.now,
            total: counts.total,
            heat: strip(&heat, page.slug.as_str(), page.blocks),
        }
    }));
    reply::html(StatusCode::OK, pages::render_stats(&app.site, &rows))
}
