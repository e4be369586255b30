//! The ghost engine: one manager task owns every ghost, room and count, and
//! everything else reaches it through the cloneable [`Ghosts`] handle.
//!
//! - [`ghost`]: ids, tokens, colours.
//! - [`room`]: one post's readers and their pending events (pure).
//! - [`published`]: what the manager publishes for handlers to read.
//! - [`handle`]: the API. [`manager`]: the actor.

mod arrivals;
pub mod ghost;
mod handle;
mod manager;
pub mod published;
mod remote;
pub mod room;
mod saving;

pub use ghost::{base36, palette_color, Color, GhostId, Token};
pub use handle::{Ghosts, JoinRefused, JoinRequest, Resync, Settings, Stopped, StreamEvent};
pub use published::{Counts, Seat};
