//! What every request handler can reach: one `Arc<App>` per server.

use std::sync::Arc;

use super::assets::Assets;
use super::join_limits::JoinLimits;
use super::poll_sessions::Pollers;
use super::tickets::Tickets;
use crate::blog::{Blog, Site};
use crate::cluster::Cluster;
use crate::config::Config;
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
}
