//! The reading heat map over HTTP: `GET /posts/{slug}/heat` as JSON, and
//! the `/stats` page. Public, like the counts every page shows: it is an
//! anonymous sum over all readers, nothing about any one of them.

use hyper::{Response, StatusCode};

use super::app::App;
use super::reply::{self, Body, Keep};
use crate::blog::pages::{self, Stats};
use crate::blog::Post;
use crate::store::Heat;

/// Every post's heat as the whole site knows it: summed over the cluster
/// through Redis, or this instance's own when alone (or Redis is away).
async fn heat_of(app: &App, posts: &[&Post]) -> Heat {
    let mut heat = Heat::new();
    if let Some(cluster) = &app.cluster {
        let slugs = posts.iter().map(|post| post.slug.clone()).collect();
        if let Some(strips) = cluster.heat(slugs).await {
            for (post, strip) in posts.iter().zip(strips) {
                heat.insert(post.slug.to_string(), strip);
            }
        }
    }
    let missing: Vec<String> = posts
        .iter()
        .map(|post| post.slug.to_string())
        .filter(|slug| !heat.contains_key(slug))
        .collect();
    if !missing.is_empty() {
        heat.extend(app.ghosts.heat(missing).await.unwrap_or_default());
    }
    heat
}

/// A post's strip, one number per block of the post as it is now.
fn strip(heat: &Heat, post: &Post) -> Vec<f64> {
    let mut strip = heat.get(post.slug.as_str()).cloned().unwrap_or_default();
    strip.resize(post.blocks.max(1) as usize, 0.0);
    strip
}

/// `GET /posts/{slug}/heat`.
pub async fn heat(app: &App, slug: &str) -> Response<Body> {
    let library = app.blog.current();
    let Some(entry) = library.get(slug) else {
        return reply::json_error(StatusCode::NOT_FOUND, "No post has that name.");
    };
    let post = &entry.post;
    let heat = heat_of(app, &[post]).await;
    let seconds: Vec<f64> = strip(&heat, post)
        .into_iter()
        .map(|s| (s * 10.0).round() / 10.0)
        .collect();
    let outline: Vec<serde_json::Value> = post
        .outline
        .iter()
        .map(|(block, level, text)| serde_json::json!({ "block": block, "level": level, "text": text }))
        .collect();
    let body = serde_json::json!({
        "slug": post.slug.as_str(),
        "blocks": post.blocks,
        "total_seconds": (seconds.iter().sum::<f64>() * 10.0).round() / 10.0,
        "seconds": seconds,
        "headings": outline,
    })
    .to_string();
    reply::json(body, Keep::AskAgain)
}

/// `GET /stats`.
pub async fn page(app: &App) -> Response<Body> {
    let library = app.blog.current();
    let listed: Vec<&Post> = library.listed().iter().map(AsRef::as_ref).collect();
    let heat = heat_of(app, &listed).await;
    let rows: Vec<Stats> = library
        .listed()
        .iter()
        .map(|post| {
            let counts = app.ghosts.counts(post.slug.as_str());
            Stats {
                post,
                now: counts.now,
                total: counts.total,
                heat: strip(&heat, post),
            }
        })
        .collect();
    reply::html(StatusCode::OK, pages::render_stats(&app.site, &rows))
}
