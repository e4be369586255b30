//! The HTTP edge: everything that speaks HTTP, and nothing else does. The
//! accept loop and its limits (`server.rs`), one connection's life
//! (`connection.rs`, with TLS in `tls.rs`), the HTTP/1.1 event-stream path
//! (`h1_events.rs`), the router (`routes.rs`) and its replies (`reply.rs`),
//! the reader endpoints (`api.rs`: stream, position, goodbye, ticket, and
//! `/api/posts`) with their limits (`join_limits.rs`, `tickets.rs`), the
//! JSON body's limits (`json_body.rs`) and its one reader (`fields.rs`),
//! the position parser (`position.rs`), embed mode's origins, CORS and
//! page endpoint (`embed.rs`), long-polling for streams that do
//! not stream (`polling.rs`, `poll_sessions.rs`), the `web/` files
//! (`assets.rs`, sent compacted and gzipped: `compact.rs`), the event
//! stream body (`stream.rs`), the client's address (`peer.rs`), the heat map and the stats page (`stats.rs`) and what
//! handlers can reach (`app.rs`). It calls into the engine and the blog;
//! neither knows about HTTP.

mod api;
mod app;
mod assets;
mod compact;
mod connection;
mod embed;
mod fields;
mod h1_events;
mod join_limits;
mod json_body;
mod peer;
mod poll_sessions;
mod polling;
pub mod position;
mod reply;
mod routes;
mod server;
mod stats;
pub mod stream;
mod tickets;
mod tls;

pub use app::App;
pub use assets::Assets;
pub use join_limits::JoinLimits;
pub use server::run;
pub use tickets::Tickets;
pub use tls::Tls;
