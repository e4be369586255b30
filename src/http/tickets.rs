//! One-time tickets, so a reader's token never travels in a URL (the route
//! that issues them is `api::ticket`). A reloaded
//! page cannot send `Last-Event-ID`, so it names the ghost to resume in the
//! stream's URL, and URLs end up in proxies' access logs. It asks for a
//! ticket first (`POST /posts/{slug}/ticket`, the token in the body), and
//! opens its stream with `?resume=<ticket>`: a ticket moves no ghost, is
//! good for one stream on one post, and expires in seconds, so a logged one
//! is worthless.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::blog::Slug;
use crate::ghosts::Token;

/// How long a ticket is good for: a page asks for one just before it
/// opens its stream.
const GOOD_FOR: Duration = Duration::from_secs(30);
/// Tickets outstanding at most; past it, expired ones are dropped first
/// and then new ones refused, so nobody can make us hold unbounded memory.
const MOST: usize = 100_000;

/// Tickets not yet used, by ticket.
#[derive(Debug, Default)]
pub struct Tickets {
    open: Mutex<HashMap<Token, Ticket>>,
}

#[derive(Debug)]
struct Ticket {
    token: Token,
    slug: Slug,
    expires: Instant,
}

impl Tickets {
    /// A ticket for `token` on `slug`, or `None` while too many are open.
    pub fn issue(&self, token: Token, slug: Slug) -> Option<Token> {
        let now = Instant::now();
        let mut open = self.open.lock();
        if open.len() >= MOST {
            open.retain(|_, ticket| ticket.expires > now);
            if open.len() >= MOST {
                return None;
            }
        }
        let ticket = Token::random(&mut rand::rng());
        let expires = now + GOOD_FOR;
        open.insert(
            ticket.clone(),
            Ticket {
                token,
                slug,
                expires,
            },
        );
        Some(ticket)
    }

    /// The token a ticket stands for, once: the ticket is spent either way.
    pub fn redeem(&self, ticket: &Token, slug: &str) -> Option<Token> {
        let ticket = self.open.lock().remove(ticket)?;
        (ticket.slug.as_str() == slug && ticket.expires > Instant::now()).then_some(ticket.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ticket_is_good_once_on_its_own_post_and_only_for_a_while() {
        let tickets = Tickets::default();
        let token = Token::random(&mut rand::rng());
        let slug = |s: &str| Slug::parse(s).expect("a slug");
        let ticket = tickets.issue(token.clone(), slug("p")).expect("issued");
        assert_ne!(ticket, token, "a ticket is not the token");
        assert_eq!(tickets.redeem(&ticket, "p"), Some(token.clone()));
        assert_eq!(tickets.redeem(&ticket, "p"), None, "spent");

        let other = tickets.issue(token.clone(), slug("p")).expect("issued");
        assert_eq!(tickets.redeem(&other, "q"), None, "only on its own post");
        assert_eq!(tickets.redeem(&other, "p"), None, "and spent by trying");

        let late = tickets.issue(token, slug("p")).expect("issued");
        tokio::time::advance(GOOD_FOR).await;
        assert_eq!(tickets.redeem(&late, "p"), None, "expired");
    }
}
