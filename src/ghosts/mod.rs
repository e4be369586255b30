//! The ghost engine: one manager task owns every ghost, room and count, and
//! everything else reaches it through the cloneable [`Ghosts`] handle.
//!
//! - [`handle`]: the API; [`commands`]: the actor's messages.
//! - `manager.rs`: the actor's loop, ticks and publishing; `joins.rs` its
//!   joins and leaves; `presence.rs` away and held ghosts; `counting.rs`
//!   who counts in `total`; `heat.rs` the reading heat map; `remote.rs`
//!   its side of cluster mode; `roster.rs` who
//!   is live or parked; `saving.rs` when the counts are saved.
//! - `room.rs`: one post's readers and their pending events (pure);
//!   `crowd.rs` when a room is crowded and its readers per block.
//! - What handlers read without asking the manager: `directory.rs` (token →
//!   seat), `census.rs` (counts per post), `limiter.rs` (a seat's rate limit).
//! - [`ghost`]: ids, tokens, colours. [`messages`]: what instances exchange.

mod census;
#[cfg(test)]
mod cluster_fuzz;
mod commands;
mod counting;
mod crowd;
mod directory;
pub mod ghost;
mod handle;
mod heat;
mod joins;
mod limiter;
mod manager;
pub mod messages;
mod presence;
mod remote;
mod room;
mod roster;
mod saving;
#[cfg(test)]
mod tests;

pub use commands::{JoinRefused, JoinRequest, Resync, Settings, StreamEvent, StreamParts};
pub use crowd::CrowdRule;
pub use ghost::{base36, is_secret_hex, random_hex, GhostId, Token};
pub use handle::Ghosts;
pub use limiter::Limiter;
