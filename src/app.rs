//! What every request handler can reach: one `Arc<App>` per server.

use std::sync::Arc;

use crate::assets::Assets;
use crate::blog::Blog;
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
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
}
