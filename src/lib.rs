//! ghostread: a blog server where every reader sees the other readers of a
//! post as ghosts in the margin, live. See `ARCHITECTURE.md` for the map and
//! `docs/PROTOCOL.md` for the wire contract.
//!
//! Four parts, and dependencies run one way, from the top of this list down:
//! - `http`: the HTTP edge (accept loop, routes, the API handlers, the
//!   event stream body, assets).
//! - `cluster`: the Redis link of cluster mode.
//! - `ghosts`: the engine, one manager actor that owns every live reader;
//!   `blog`: posts folder → rendered posts and pages, reloaded on change.
//! - `events`: every event's name and JSON shape, and their SSE encoding.
//!
//! Beside them: `config` (every setting, declared once), `embed` (pages of
//! other sites that show ghosts), `store` (the all-time counts on disk),
//! `metrics` (`/metrics`), `shutdown` (the stop signal).
//!
//! The public surface is [`run`] and [`serve`] with their [`Config`]: what
//! `main`, the tests and anyone embedding the server use. What the benches
//! and the parser tests reach of the inside goes through one door,
//! [`internals`], which is not part of that surface.

mod blog;
mod cluster;
mod config;
mod embed;
mod events;
mod ghosts;
mod http;
mod metrics;
mod shutdown;
mod store;

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{Config, TlsFiles, WebSource};

/// The inside, for the benches (`benches/manager.rs` drives the engine
/// alone) and the parsers' property tests: not a stable interface, and not
/// for anything else. Hidden from the docs; everything here is used by one
/// of them, so dead code inside still shows as a warning.
#[doc(hidden)]
pub mod internals {
    pub use crate::blog::{FrontMatter, Slug};
    pub use crate::ghosts::{CrowdRule, Ghosts, JoinRequest, Settings, StreamParts};
    pub use crate::http::position::parse_position;
    pub use crate::http::stream::EventStream;
    pub use crate::metrics::Metrics;
    pub use crate::store::Totals;
}

/// Binds `config.addr` and serves until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let listener = TcpListener::bind(config.addr).await.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "cannot listen on {}: {error}; pick another with --addr",
                config.addr
            ),
        )
    })?;
    serve(config, listener, shutdown).await
}

/// Serves on an already bound listener until `shutdown` resolves, then stops
/// gracefully. Tests bind `127.0.0.1:0` and pass the listener in.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (trigger, stopping) = shutdown::channel();
    let tls = match &config.tls {
        Some(files) => {
            let tls = http::Tls::load(&files.cert, &files.key).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot serve HTTPS: {error}; give --tls-cert and --tls-key as PEM files (a chain and its key)"),
                )
            })?;
            tls.watch(stopping.clone());
            Some(Arc::new(tls))
        }
        None => None,
    };
    let site = blog::Site {
        title: config.site_title.clone(),
        base_url: config.base_url.clone(),
    };
    if site.base_url.is_none() {
        tracing::warn!(
            "no --base-url: the feed, sitemap and link previews use relative links, which many readers and sites cannot follow; start with --base-url https://your.blog"
        );
    }
    let mut folder = blog::Folder::new(&config.posts_dir, &site);
    let library = folder
        .scan()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot read the posts folder {}: {error}; create it or point --posts at one",
                    config.posts_dir.display()
                ),
            )
        })?
        .unwrap_or_default();
    let posts = library.len();
    let blog = blog::Blog::new(library);
    tokio::spawn(blog::run_reload(
        blog.clone(),
        folder,
        config.reload_interval,
        stopping.clone(),
    ));

    let totals = store::load_counts(&config.data_dir)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let settings = ghosts::Settings::from_config(&config);
    // Cluster mode: the engine tells the other instances through the link,
    // and the link drives the engine with what they say.
    let (ghosts, cluster) = match &config.redis {
        Some(url) => {
            let (cluster, link) =
                cluster::Cluster::open(url, config.resume_window).map_err(|error| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("--redis {url}: {error}; give redis://HOST:PORT"),
                    )
                })?;
            let others = Arc::new(cluster.clone());
            let ghosts =
                ghosts::Ghosts::spawn_in_cluster(settings, totals, metrics.clone(), others);
            link.start(ghosts.clone(), metrics.clone(), stopping.clone());
            (ghosts, Some(cluster))
        }
        None => (
            ghosts::Ghosts::spawn(settings, totals, metrics.clone()),
            None,
        ),
    };

    let addr = listener.local_addr()?;
    tracing::info!(
        "ghostread listening on http://{addr}{} ({posts} posts from {})",
        if tls.is_some() {
            format!(" and https://{addr}")
        } else {
            String::new()
        },
        config.posts_dir.display()
    );
    let embeds = Arc::new(embed::Embeds::new(
        config.embed_origins.clone(),
        config.embed_max_pages,
        config.embed_sitemap.as_deref(),
    ));
    if let Some(sitemap) = &config.embed_sitemap {
        embeds.watch_sitemap(sitemap.clone(), stopping.clone());
    }
    let app = Arc::new(http::App {
        embeds,
        assets: http::Assets::new(&config.web),
        site,
        blog,
        ghosts,
        cluster,
        metrics,
        pollers: Arc::default(),
        tickets: http::Tickets::default(),
        join_limits: http::JoinLimits::new(config.joins_per_sec, config.resumes_per_sec),
        shutdown: stopping,
        tls,
        config,
    });
    let outcome = http::run(listener, app, trigger, shutdown).await;
    tracing::info!("ghostread stopped");
    outcome.map_err(|_| {
        io::Error::other(
            "the ghost manager stopped unexpectedly (a bug: please report the log above); \
             exited so that a supervisor restarts the server",
        )
    })
}
