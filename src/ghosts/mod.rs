//! The ghost engine: one manager task owns every ghost, room and count, and
//! everything else reaches it through the cloneable [`Ghosts`] handle.
//!
//! - `handle.rs`: the API (and, in cluster mode, finding a resuming
//!   reader's ghost on another instance); `commands.rs`: the actor's
//!   messages and its settings.
//! - `manager.rs`: the actor's loop, tick and dispatch, calling into its
//!   parts, each the one owner of its state: `roster.rs` (live, held and
//!   parked ghosts, tokens, addresses, the directory), `rooms.rs` (every
//!   room, when it speaks, the readers waiting for its tick), `tally.rs`
//!   (totals, who is yet to count, the census), `heat.rs` (the reading heat
//!   map), `remote.rs` (other instances' ghosts), `saving.rs` (when counts
//!   are saved). `joins.rs`: what a join decides before it is booked.
//! - `room.rs`: one post's readers and their pending events (pure);
//!   `crowd.rs` when a room is crowded and its readers per block.
//! - What handlers read without asking the manager: `directory.rs` (token →
//!   seat), `census.rs` (counts per post), `limiter.rs` (a seat's rate limit).
//! - `ghost.rs`: ids, tokens, colours. `messages.rs`: what instances
//!   exchange, and `OtherInstances`, the engine's door to them.
//!
//! A part's own struct keeps its fields private. The `pub(super)` fields in
//! this folder are on plain values one part hands another (`Parked`,
//! `Admission`, `Stream`, `Changed`, `Answered`, the manager's `Wiring`):
//! made whole by one side, read by the other, with no invariant to keep.

mod census;
#[cfg(test)]
mod cluster_fuzz;
mod commands;
mod crowd;
mod directory;
mod ghost;
mod handle;
mod heat;
mod joins;
mod limiter;
mod manager;
pub mod messages;
mod near;
mod remote;
mod room;
mod rooms;
mod roster;
mod saving;
mod sight;
mod tally;
#[cfg(test)]
mod tests;

pub use commands::{JoinRefused, JoinRequest, Resync, Settings, Stopped, StreamEvent, StreamParts};
pub use crowd::CrowdRule;
pub use ghost::{base36, is_secret_hex, random_hex, GhostId, Token};
pub use handle::Ghosts;
pub use limiter::Limiter;
pub use near::NearView;
