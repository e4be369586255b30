//! What the cluster keeps in Redis, by name, and the one way it runs a
//! command: with a deadline, so a Redis that stops answering is a lost link
//! and never a stuck instance.

use std::time::Duration;

use crate::blog::Slug;

/// Longest wait for one Redis command before the link counts as lost.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Every post's all-time readers: one hash, a field per slug. Touched once
/// per new reader and read whole when an instance (re)connects: small, and
/// the one key that is not a post's (on a Redis Cluster it lives on one
/// shard, which a reader's arrival, not its moves, costs one command).
pub(super) const TOTALS: &str = "ghostread:totals";

/// Liveness: heartbeats and goodbyes, which every instance hears. Its cost
/// grows with the instances, not the readers.
pub(super) const CONTROL: &str = "ghostread:control";

/// The channel of one post's room: its moves, asks and answers, heard only
/// by the instances that serve its readers. The braces are a hash tag: on
/// a Redis Cluster the channel's slot is the slug's.
pub(super) fn room_channel(slug: &Slug) -> String {
    format!("ghostread:room:{{{slug}}}")
}

/// The post a room channel is of.
pub(super) fn slug_of_channel(channel: &[u8]) -> Option<Slug> {
    let text = std::str::from_utf8(channel).ok()?;
    let slug = text.strip_prefix("ghostread:room:{")?.strip_suffix('}')?;
    Slug::parse(slug)
}

/// A post's reader-seconds per block, summed over the instances. Every
/// command names one key (a post's heat, a token's parked ghost, a
/// ticket), so none crosses slots on a Redis Cluster; the keys of one
/// post's many readers spread over the shards rather than load one.
pub(super) fn heat(slug: &Slug) -> String {
    format!("ghostread:heat:{slug}")
}

/// A ghost parked for the resume window, under its reader's token.
pub(super) fn parked(token: &str) -> String {
    format!("ghostread:park:{token}")
}

/// A one-time resume ticket any instance may redeem (`http/tickets.rs`).
pub(super) fn ticket(ticket: &str) -> String {
    format!("ghostread:ticket:{ticket}")
}

/// Runs one Redis command with a deadline; any failure is a lost link.
pub(super) async fn command<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("a command timed out".into()),
    }
}
