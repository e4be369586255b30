//! One-time tickets, so a reader's token never travels in a URL (the route
//! that issues them is `api::ticket`). A reloaded
//! page cannot send `Last-Event-ID`, so it names the ghost to resume in the
//! stream's URL, and URLs end up in proxies' access logs. It asks for a
//! ticket first (`POST /posts/{slug}/ticket`, the token in the body), and
//! opens its stream with `?resume=<ticket>`: a ticket moves no ghost, is
//! good for one stream on one post, and expires in seconds, so a logged one
//! is worthless.
//!
//! In cluster mode a ticket is kept in Redis, so a reload whose ticket
//! request and stream land on different instances (a load balancer without
//! sticky sessions) still resumes its ghost, and a ticket is still good
//! once across every instance. While Redis is away, tickets are kept here,
//! good on this instance only.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::blog::Slug;
use crate::cluster::Cluster;
use crate::ghosts::{is_secret_hex, random_hex, Token};

/// How long a ticket is good for: a page asks for one just before it
/// opens its stream.
const GOOD_FOR: Duration = Duration::from_secs(30);
/// Tickets outstanding at most; past it, expired ones are dropped first
/// and then new ones refused, so nobody can make us hold unbounded memory.
const MOST: usize = 100_000;

/// Tickets not yet used, by ticket.
#[derive(Debug, Default)]
pub struct Tickets {
    open: Mutex<HashMap<Ticket, Issued>>,
}

/// A one-time ticket: 128 random bits as 32 hex characters, shaped unlike a
/// token, so a token in the URL is never mistaken for one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ticket(String);

impl Ticket {
    pub fn parse(text: &str) -> Option<Ticket> {
        is_secret_hex(text).then(|| Ticket(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket(…)")
    }
}

#[derive(Debug)]
struct Issued {
    token: Token,
    slug: Slug,
    expires: Instant,
}

/// A ticket as kept in Redis for any instance to redeem. Read back, it is
/// checked like anything from Redis: a token and a slug of the right shape.
#[derive(Serialize, Deserialize)]
struct Shared {
    token: String,
    slug: String,
}

impl Tickets {
    /// A ticket for `token` on `slug`, or `None` while too many are open.
    /// In cluster mode it is answered only once Redis holds it, so the
    /// stream it opens may go to any instance.
    pub async fn issue(
        &self,
        token: Token,
        slug: Slug,
        cluster: Option<&Cluster>,
    ) -> Option<Ticket> {
        if let Some(cluster) = cluster {
            let ticket = Ticket(random_hex(&mut rand::rng()));
            let shared = Shared {
                token: token.as_str().to_string(),
                slug: slug.as_str().to_string(),
            };
            let value = serde_json::to_string(&shared).ok()?;
            if cluster.put_ticket(ticket.as_str(), value, GOOD_FOR).await {
                return Some(ticket);
            }
            // Redis is slow or away: a ticket good on this instance only.
            // A new one, so that if the slow write lands after all, what
            // Redis holds is a ticket nobody was given.
        }
        let ticket = Ticket(random_hex(&mut rand::rng()));
        let now = Instant::now();
        let mut open = self.open.lock();
        if open.len() >= MOST {
            open.retain(|_, ticket| ticket.expires > now);
            if open.len() >= MOST {
                return None;
            }
        }
        let expires = now + GOOD_FOR;
        open.insert(
            ticket.clone(),
            Issued {
                token,
                slug,
                expires,
            },
        );
        Some(ticket)
    }

    /// The token a ticket stands for, once: the ticket is spent either way.
    /// One this instance does not hold is looked for in Redis.
    pub async fn redeem(
        &self,
        ticket: &Ticket,
        slug: &str,
        cluster: Option<&Cluster>,
    ) -> Option<Token> {
        let here = self.open.lock().remove(ticket);
        if let Some(issued) = here {
            return (issued.slug.as_str() == slug && issued.expires > Instant::now())
                .then_some(issued.token);
        }
        let text = cluster?.take_ticket(ticket.as_str()).await?;
        let shared: Shared = serde_json::from_str(&text).ok()?;
        // `slug` is this request's own post, so equal means well formed.
        (shared.slug == slug).then(|| Token::parse(&shared.token))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ticket_is_good_once_on_its_own_post_and_only_for_a_while() {
        let tickets = Tickets::default();
        let mut rng = rand::rng();
        let token = Token::for_ghost(&crate::ghosts::GhostId::random(&mut rng), &mut rng);
        let slug = |s: &str| Slug::parse(s).expect("a slug");
        let ticket = tickets
            .issue(token.clone(), slug("p"), None)
            .await
            .expect("issued");
        assert!(
            Token::parse(ticket.as_str()).is_none(),
            "a ticket is no token"
        );
        assert!(
            Ticket::parse(token.as_str()).is_none(),
            "a token is no ticket"
        );
        assert_eq!(
            tickets.redeem(&ticket, "p", None).await,
            Some(token.clone())
        );
        assert_eq!(tickets.redeem(&ticket, "p", None).await, None, "spent");

        let other = tickets
            .issue(token.clone(), slug("p"), None)
            .await
            .expect("issued");
        assert_eq!(
            tickets.redeem(&other, "q", None).await,
            None,
            "only on its own post"
        );
        assert_eq!(
            tickets.redeem(&other, "p", None).await,
            None,
            "and spent by trying"
        );

        let late = tickets.issue(token, slug("p"), None).await.expect("issued");
        tokio::time::advance(GOOD_FOR).await;
        assert_eq!(tickets.redeem(&late, "p", None).await, None, "expired");
    }
}
