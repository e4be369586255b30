//! What the cluster keeps in Redis, by name, and the one way it runs a
//! command: with a deadline, so a Redis that stops answering is a lost link
//! and never a stuck instance.

use std::time::Duration;

use crate::blog::Slug;

/// Longest wait for one Redis command before the link counts as lost.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Every post's all-time readers: one hash, a field per slug.
pub(super) const TOTALS: &str = "ghostread:totals";

/// A post's reader-seconds per block, summed over the instances.
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
