//! What every request handler can reach: one `Arc<App>` per server.

use std::sync::Arc;

use super::assets::Assets;
use super::join_limits::JoinLimits;
use super::poll_sessions::Pollers;
use super::tickets::Tickets;
use crate::blog::{Blog, Site, Slug};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::embed::Embeds;
use crate::ghosts::Ghosts;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub site: Site,
    pub blog: Blog,
    pub assets: Assets,
    pub ghosts: Ghosts,
    /// The link to the other instances, in cluster mode.
    pub cluster: Option<Cluster>,
    pub metrics: Arc<Metrics>,
    /// How often one client may open streams, and resume one ghost.
    pub join_limits: JoinLimits,
    /// One-time tickets for resuming by URL without the token in it.
    pub tickets: Tickets,
    /// Readers on long-polling, whose event streams did not stream.
    pub pollers: Arc<Pollers>,
    pub shutdown: Shutdown,
    /// HTTPS on the same port, when a certificate was given.
    pub tls: Option<Arc<super::tls::Tls>>,
    /// Embed mode: the origins allowed, and their pages that show ghosts.
    pub embeds: Arc<Embeds>,
}

/// What the live endpoints need of a page: a post of this blog, or a page
/// of another site (embed mode).
#[derive(Clone, Debug)]
pub struct LivePage {
    pub slug: Slug,
    pub blocks: u32,
}

impl App {
    /// The page whose readers meet under `slug`: a post here first, then a
    /// page of another site that has shown ghosts.
    pub fn live_page(&self, slug: &str) -> Option<LivePage> {
        if let Some(entry) = self.blog.current().get(slug) {
            let post = &entry.post;
            return Some(LivePage {
                slug: post.slug.clone(),
                blocks: post.blocks,
            });
        }
        let page = self.embeds.page(slug)?;
        Some(LivePage {
            slug: page.slug,
            blocks: page.blocks,
        })
    }
}
