//! Cluster mode: several instances share readers through Redis. Each
//! instance's manager still owns its own readers; the link task carries the
//! manager's per-tick room updates to Redis pub/sub and the other
//! instances' updates back, keeps `total` in one Redis hash, parks ghosts in
//! Redis for resumes on another instance, finds instances that died, and
//! keeps one-time resume tickets any instance can redeem.
//! The messages themselves belong to the engine (`ghosts::messages`): this
//! module is only the Redis side.

mod connection;
mod keys;
mod link;
mod lookups;
mod subscriptions;

pub use lookups::Cluster;
