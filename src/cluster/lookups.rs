//! What request handlers ask of Redis while they answer: a ghost parked by
//! another instance, a ghost live on another instance, a post's summed heat
//! map, and one-time tickets any instance can redeem. Each question goes to
//! the link task (the one Redis connection) and waits a bounded time; a
//! Redis that is slow or away is answered as "nothing there", and the
//! handler goes on with what this instance knows.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::{mpsc, oneshot};

use super::connection::Connection;
use super::keys::{self, command};
use crate::blog::Slug;
use crate::ghosts::messages::{Later, OtherInstances, Outbound, RemoteParked};
use crate::ghosts::Token;

/// Questions waiting for the link. A handful is plenty: each takes one
/// Redis round trip.
const CAPACITY: usize = 256;
/// How long a handler waits for a Redis round trip before going on alone.
const QUICK: Duration = Duration::from_millis(500);
/// How long a resume waits for another instance to release a ghost that
/// is live there: one round trip through Redis each way, usually.
const RELEASE_WAIT: Duration = Duration::from_secs(1);
/// The most blocks a heat map from Redis may claim (another program's
/// field must not make us allocate gigabytes).
const MOST_BLOCKS: usize = 100_000;

/// Where a parked ghost taken from Redis goes.
pub(super) type ParkedTo = oneshot::Sender<Option<RemoteParked>>;

/// What request handlers ask the link for.
#[derive(Debug)]
pub(super) enum Lookup {
    /// A question Redis alone answers.
    Query(Query),
    /// Ask `instance` to release this token's live ghost, and take it.
    /// The link answers it from its own state, when `instance` says
    /// `Released`.
    Release {
        token: Token,
        slug: Slug,
        instance: String,
        respond_to: ParkedTo,
    },
}

/// A question for Redis alone, answered with one command (or pipeline).
#[derive(Debug)]
pub(super) enum Query {
    /// The ghost parked in Redis under this token, taken.
    Parked(Token, ParkedTo),
    /// Posts' heat maps summed over every instance, in one round trip.
    Heat(Vec<Slug>, oneshot::Sender<Option<Vec<Vec<f64>>>>),
    /// Keep a ticket for a while; whether Redis took it.
    PutTicket {
        ticket: String,
        value: String,
        good_for: Duration,
        respond_to: oneshot::Sender<bool>,
    },
    /// A ticket's value, taken (so it is good once, whichever instance
    /// redeems it).
    TakeTicket(String, oneshot::Sender<Option<String>>),
}

/// The handle request handlers and the engine use to ask, and the engine
/// to tell (its [`OtherInstances`]).
#[derive(Clone, Debug)]
pub struct Cluster {
    lookups: mpsc::Sender<Lookup>,
    /// What the engine tells the other instances, for the link to send.
    outbound: mpsc::Sender<Outbound>,
}

/// What the engine hands the link to send: about a second of a busy
/// instance's ticks. If Redis falls further behind, messages are dropped
/// and the next snapshot (every 10 s, and on reconnect) corrects the other
/// instances.
const OUTBOUND_CAPACITY: usize = 8192;

impl Cluster {
    /// A handle, and the ends of its queues the link reads.
    pub(super) fn new() -> (Cluster, mpsc::Receiver<Lookup>, mpsc::Receiver<Outbound>) {
        let (lookups, lookups_rx) = mpsc::channel(CAPACITY);
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        (Cluster { lookups, outbound }, lookups_rx, outbound_rx)
    }

    /// Asks the link, waiting at most `wait`; `None` if the queue is full,
    /// the link is gone or it does not answer in time.
    async fn ask<T>(
        &self,
        lookup: impl FnOnce(oneshot::Sender<T>) -> Lookup,
        wait: Duration,
    ) -> Option<T> {
        let (respond_to, answer) = oneshot::channel();
        self.lookups.try_send(lookup(respond_to)).ok()?;
        tokio::time::timeout(wait, answer).await.ok()?.ok()
    }

    /// The ghost this token parked on any instance, taken (so it resumes
    /// once). `None` when there is none, or Redis does not answer quickly.
    pub async fn parked(&self, token: &Token) -> Option<RemoteParked> {
        let token = token.clone();
        self.ask(|answer| Lookup::Query(Query::Parked(token, answer)), QUICK)
            .await
            .flatten()
    }

    /// The heat maps of `slugs` as every instance together has counted
    /// them, in their order, or `None` if Redis does not answer quickly.
    /// One round trip however many posts, so a page of every post waits at
    /// most one bound for a Redis that is slow.
    pub async fn heat(&self, slugs: Vec<Slug>) -> Option<Vec<Vec<f64>>> {
        self.ask(|answer| Lookup::Query(Query::Heat(slugs, answer)), QUICK)
            .await
            .flatten()
    }

    /// Has `instance`, where this token's ghost is live, end its stream and
    /// hand the ghost over through Redis; the ghost, taken, or `None` if
    /// that instance does not answer within a second (it may be gone) or
    /// does not hold the token.
    pub async fn release(
        &self,
        token: &Token,
        slug: &Slug,
        instance: String,
    ) -> Option<RemoteParked> {
        let token = token.clone();
        let slug = slug.clone();
        let ask = |respond_to| Lookup::Release {
            token,
            slug,
            instance,
            respond_to,
        };
        self.ask(ask, RELEASE_WAIT).await.flatten()
    }

    /// Keeps `value` under a one-time `ticket` for `good_for`, for whichever
    /// instance the ticket is redeemed on. Whether Redis took it in time
    /// (if not, only this instance can redeem it).
    pub async fn put_ticket(&self, ticket: &str, value: String, good_for: Duration) -> bool {
        let ticket = ticket.to_string();
        let ask = |respond_to| {
            Lookup::Query(Query::PutTicket {
                ticket,
                value,
                good_for,
                respond_to,
            })
        };
        self.ask(ask, QUICK).await.unwrap_or(false)
    }

    /// What `ticket` was issued for, taken: a second redemption anywhere
    /// finds nothing. `None` for an unknown or expired ticket too.
    pub async fn take_ticket(&self, ticket: &str) -> Option<String> {
        let ticket = ticket.to_string();
        self.ask(
            |answer| Lookup::Query(Query::TakeTicket(ticket, answer)),
            QUICK,
        )
        .await
        .flatten()
    }
}

impl OtherInstances for Cluster {
    fn tell(&self, message: Outbound) {
        // A full queue means Redis is far behind: see `OUTBOUND_CAPACITY`.
        let _ = self.outbound.try_send(message);
    }

    fn parked(&self, token: &Token) -> Later<'_, Option<RemoteParked>> {
        let token = token.clone();
        Box::pin(async move { Cluster::parked(self, &token).await })
    }

    fn release(
        &self,
        token: &Token,
        slug: &Slug,
        instance: String,
    ) -> Later<'_, Option<RemoteParked>> {
        let token = token.clone();
        let slug = slug.clone();
        Box::pin(async move { Cluster::release(self, &token, &slug, instance).await })
    }
}

impl Lookup {
    /// Answers "nothing there" while Redis is away.
    pub(super) fn refuse(self) {
        match self {
            Lookup::Query(query) => query.refuse(),
            // The asker may have given up already; that is fine.
            Lookup::Release { respond_to, .. } => {
                let _ = respond_to.send(None);
            }
        }
    }
}

impl Query {
    fn refuse(self) {
        // Each asker may have given up already; that is fine.
        match self {
            Query::Parked(_, respond_to) => {
                let _ = respond_to.send(None);
            }
            Query::Heat(_, respond_to) => {
                let _ = respond_to.send(None);
            }
            Query::PutTicket { respond_to, .. } => {
                let _ = respond_to.send(false);
            }
            Query::TakeTicket(_, respond_to) => {
                let _ = respond_to.send(None);
            }
        }
    }

    /// Answers the question from Redis. A failed command is a lost link.
    pub(super) async fn answer(self, connection: &mut Connection) -> Result<(), String> {
        match self {
            Query::Parked(token, respond_to) => {
                take_parked(connection, token.as_str(), respond_to).await
            }
            Query::Heat(slugs, respond_to) => {
                // One command per post, all at once: the connection writes
                // them together, and on a Redis Cluster each goes to its
                // post's shard (a pipeline may not cross slots).
                let hashes = heat_maps(connection, &slugs).await;
                let strips = hashes
                    .as_ref()
                    .ok()
                    .filter(|hashes| hashes.len() == slugs.len())
                    .map(|hashes| hashes.iter().map(heat_strip).collect());
                let _ = respond_to.send(strips);
                hashes.map(|_| ())
            }
            Query::PutTicket {
                ticket,
                value,
                good_for,
                respond_to,
            } => {
                let millis = u64::try_from(good_for.as_millis()).unwrap_or(u64::MAX);
                let stored: Result<(), String> =
                    command(connection.pset_ex(keys::ticket(&ticket), value, millis)).await;
                let _ = respond_to.send(stored.is_ok());
                stored
            }
            Query::TakeTicket(ticket, respond_to) => {
                let found: Result<Option<String>, String> =
                    command(connection.get_del(keys::ticket(&ticket))).await;
                let _ = respond_to.send(found.as_ref().ok().cloned().flatten());
                found.map(|_| ())
            }
        }
    }
}

/// Takes the ghost parked under `token` (so it resumes once) and hands it
/// to `respond_to`: for a resume, or once another instance has released it.
pub(super) async fn take_parked(
    connection: &mut Connection,
    token: &str,
    respond_to: ParkedTo,
) -> Result<(), String> {
    let found: Result<Option<String>, String> =
        command(connection.get_del(keys::parked(token))).await;
    let parked = found
        .as_ref()
        .ok()
        .and_then(|text| text.as_deref())
        .and_then(|text| serde_json::from_str(text).ok());
    let _ = respond_to.send(parked); // The asker may have given up.
    found.map(|_| ())
}

/// The heat hashes of `slugs`, in their order, read at once.
async fn heat_maps(
    connection: &Connection,
    slugs: &[Slug],
) -> Result<Vec<HashMap<String, String>>, String> {
    let mut reads = tokio::task::JoinSet::new();
    for (i, slug) in slugs.iter().enumerate() {
        let mut connection = connection.clone();
        let key = keys::heat(slug);
        reads.spawn(async move { (i, command(connection.hgetall(key)).await) });
    }
    let mut hashes = vec![HashMap::new(); slugs.len()];
    while let Some(read) = reads.join_next().await {
        let (i, hash) = read.map_err(|e| format!("a heat read failed: {e}"))?;
        hashes[i] = hash?;
    }
    Ok(hashes)
}

/// A post's summed heat map from its Redis hash (block index → seconds).
/// Fields that are not a block and a number (another program's) are
/// skipped; an absurd block index is not allocated for.
fn heat_strip(fields: &HashMap<String, String>) -> Vec<f64> {
    let mut strip = Vec::new();
    for (block, seconds) in fields {
        let (Ok(block), Ok(seconds)) = (block.parse::<usize>(), seconds.parse::<f64>()) else {
            continue;
        };
        if block < MOST_BLOCKS && seconds.is_finite() && seconds > 0.0 {
            if strip.len() <= block {
                strip.resize(block + 1, 0.0);
            }
            strip[block] = seconds;
        }
    }
    strip
}
