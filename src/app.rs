//! What every request handler can reach: one `Arc<App>` per server.

use crate::assets::Assets;
use crate::blog::Blog;
use crate::config::Config;
use crate::shutdown::Shutdown;

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub site_title: String,
    pub blog: Blog,
    pub assets: Assets,
    pub shutdown: Shutdown,
}
