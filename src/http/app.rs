//! What every request handler can reach: one `Arc<App>` per server.

use std::sync::Arc;

use super::assets::Assets;
use super::polling::Pollers;
use crate::blog::Blog;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::ghosts::Ghosts;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub site_title: String,
    pub blog: Blog,
    pub assets: Assets,
    pub ghosts: Ghosts,
    /// The link to the other instances, in cluster mode.
    pub cluster: Option<Cluster>,
    pub metrics: Arc<Metrics>,
    /// Readers on long-polling, whose event streams did not stream.
    pub pollers: Arc<Pollers>,
    pub shutdown: Shutdown,
}
