//! Rate limits on opening streams (and polls that join), checked before the
//! manager does any work: per client address (its /64 for IPv6), and per
//! token for resumes and takeovers. Without them a client opening and
//! cancelling streams again and again made the manager book and unbook a
//! ghost, and tell the room, every time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::ghosts::{Ghosts, Limiter, Token};

/// What a resume by `token` is counted against: the live ghost's id (stable
/// across the takeovers that change its token), or the token itself.
pub fn resuming(ghosts: &Ghosts, token: Option<&Token>) -> Option<String> {
    let token = token?;
    Some(match ghosts.seat(token) {
        Some(seat) => seat.id.to_string(),
        None => token.as_str().to_string(),
    })
}

/// Entries kept before idle ones are forgotten: bounds the memory a client
/// inventing addresses or tokens can make us hold.
const MOST_KEPT: usize = 20_000;
/// An entry unused this long is forgotten (its bucket is full again by then).
const IDLE: Duration = Duration::from_secs(60);

/// The limits, shared by every request.
#[derive(Debug)]
pub struct JoinLimits {
    per_address: u32,
    per_token: u32,
    addresses: Mutex<HashMap<IpAddr, Entry>>,
    /// By the ghost a resume or takeover is for (its id while it is live,
    /// as its token changes with every takeover; else the token).
    ghosts: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    limiter: Limiter,
    used: Instant,
}

impl JoinLimits {
    /// `per_address` joins a second from one client (and as many at once),
    /// and `per_token` resumes or takeovers a second of one ghost.
    pub fn new(per_address: u32, per_token: u32) -> JoinLimits {
        JoinLimits {
            per_address,
            per_token,
            addresses: Mutex::default(),
            ghosts: Mutex::default(),
        }
    }

    /// Takes one join for `peer`, resuming the ghost `resuming` names (see
    /// `ghosts`), if any; `Err(wait)` says how long until one is allowed.
    pub fn check(&self, peer: IpAddr, resuming: Option<String>) -> Result<(), Duration> {
        self.check_address(peer)?;
        self.check_resume(resuming)
    }

    /// Takes one join for `peer` alone: checked before anything that costs
    /// (a ticket's Redis round trip), when the ghost is not known yet.
    pub fn check_address(&self, peer: IpAddr) -> Result<(), Duration> {
        take(&self.addresses, peer, self.per_address)
    }

    /// Takes one resume or takeover of the ghost `resuming` names, if any.
    pub fn check_resume(&self, resuming: Option<String>) -> Result<(), Duration> {
        match resuming {
            Some(ghost) => take(&self.ghosts, ghost, self.per_token),
            None => Ok(()),
        }
    }
}

fn take<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Entry>>,
    key: K,
    rate: u32,
) -> Result<(), Duration> {
    let now = Instant::now();
    let mut map = map.lock();
    if map.len() >= MOST_KEPT {
        map.retain(|_, entry| now.duration_since(entry.used) < IDLE);
    }
    let entry = map.entry(key).or_insert_with(|| Entry {
        limiter: Limiter::per_second(rate),
        used: now,
    });
    entry.used = now;
    entry.limiter.check()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_address_and_a_token_each_get_their_own_allowance() {
        let limits = JoinLimits::new(3, 1);
        let a: IpAddr = "192.0.2.1".parse().expect("an address");
        let b: IpAddr = "192.0.2.2".parse().expect("an address");
        for _ in 0..3 {
            assert!(limits.check(a, None).is_ok());
        }
        assert!(limits.check(a, None).is_err(), "a's burst is spent");
        assert!(limits.check(b, None).is_ok(), "b is another client");
        let ghost = Some("k3x9q2".to_string());
        assert!(limits.check(b, ghost.clone()).is_ok());
        assert!(limits.check(b, ghost).is_err(), "one takeover a second");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            limits.check(a, None).is_ok(),
            "a second later, allowed again"
        );
    }
}
