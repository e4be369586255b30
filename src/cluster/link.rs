//! The link to Redis: one task per instance. It subscribes to the channels
//! of the posts this instance serves (and to the control channel), asks a
//! post's instances for their ghosts when it begins hearing it, publishes
//! what the manager hands it, forwards the other instances' messages to the
//! manager, sends heartbeats and finds silent instances, and rides out
//! Redis going away (serving local readers, logging once, asking again
//! when it is back).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connection::{disconnected, message, subscribed, Connection, Pushes, Redis};
use super::keys::{self, command, slug_of_channel, CONTROL, TOTALS};
use super::lookups::{Cluster, Lookup, ParkedTo};
use super::subscriptions::Subscriptions;
use crate::blog::Slug;
use crate::ghosts::messages::{Outbound, Wire};
use crate::ghosts::{base36, Ghosts};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How often each instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which an instance is gone: its ghosts leave everywhere
/// within this plus one heartbeat, under the 5 s the operators were promised.
const SILENT: Duration = Duration::from_millis(3500);
/// The same while this instance cannot reach Redis itself: then silence
/// says nothing of the others, and a failover (a few seconds) should not
/// make every remote ghost leave and come back; a long outage still does.
const SILENT_WHILE_DOWN: Duration = Duration::from_secs(15);
/// How often new readers are added to the totals in Redis and told to the
/// other instances (a page shows its own instance's at once).
const TOTALS_EVERY: Duration = Duration::from_millis(250);
/// Every this many heartbeats, posts without a reader here for a while
/// stop being heard.
const REVIEW_EVERY: u32 = 5;

/// A link made but not started: the engine it drives is made with the
/// link's handle, then the link starts with the engine's.
pub struct Unstarted {
    redis: Redis,
    shown: String,
    outbound: mpsc::Receiver<Outbound>,
    lookups: mpsc::Receiver<Lookup>,
    resume_window: Duration,
}

impl Cluster {
    /// The handle of a link to the Redis at `url` (or the Redis Cluster of
    /// these comma-separated seed nodes), and the link, not yet started.
    /// Fails only for what is not a Redis URL.
    pub fn open(url: &str, resume_window: Duration) -> redis::RedisResult<(Cluster, Unstarted)> {
        let redis = Redis::parse(url)?;
        let (cluster, lookups, outbound) = Cluster::new();
        let shown = url
            .split(',')
            .map(|node| node.rsplit('@').next().unwrap_or(node).trim())
            .collect::<Vec<_>>()
            .join(",");
        let unstarted = Unstarted {
            redis,
            shown,
            outbound,
            lookups,
            resume_window,
        };
        Ok((cluster, unstarted))
    }
}

impl Unstarted {
    /// Starts the link, driving `ghosts` until `shutdown`.
    pub fn start(self, ghosts: Ghosts, metrics: Arc<Metrics>, shutdown: Shutdown) {
        let link = Link {
            redis: self.redis,
            shown: self.shown,
            instance: base36(&mut rand::rng(), 10),
            ghosts,
            metrics,
            outbound: self.outbound,
            lookups: self.lookups,
            posts: Subscriptions::default(),
            releasing: HashMap::new(),
            heard: HashMap::new(),
            pending_totals: HashMap::new(),
            resume_window: self.resume_window,
            shutdown,
        };
        tokio::spawn(link.run());
    }
}

mod traffic;

struct Link {
    redis: Redis,
    /// The Redis addresses without any password, for logs.
    shown: String,
    instance: String,
    ghosts: Ghosts,
    metrics: Arc<Metrics>,
    outbound: mpsc::Receiver<Outbound>,
    lookups: mpsc::Receiver<Lookup>,
    /// The posts this instance hears.
    posts: Subscriptions,
    /// Releases asked of other instances, by token, waiting for `Released`.
    releasing: HashMap<String, ParkedTo>,
    /// When each other instance was last heard from.
    heard: HashMap<String, Instant>,
    /// New readers counted since the last flush (or while Redis was away).
    pending_totals: HashMap<Slug, u64>,
    resume_window: Duration,
    shutdown: Shutdown,
}

enum Ended {
    Shutdown,
    Lost(String),
}

impl Link {
    async fn run(mut self) {
        let mut down = false;
        loop {
            match self.redis.connect().await {
                Ok((connection, pushes)) => {
                    if down {
                        tracing::info!(
                            "Redis at {} is back; re-syncing with the cluster",
                            self.shown
                        );
                    } else {
                        let kind = if connection.is_cluster() {
                            "the Redis Cluster"
                        } else {
                            "Redis"
                        };
                        tracing::info!(
                            "cluster: instance {} joined through {kind} at {}",
                            self.instance,
                            self.shown
                        );
                    }
                    match self.serve(connection, pushes).await {
                        Ended::Shutdown => return,
                        Ended::Lost(why) => {
                            tracing::warn!(
                                "lost Redis at {} ({why}); serving this instance's readers only, retrying every second",
                                self.shown
                            );
                            down = true;
                        }
                    }
                }
                Err(why) if !down => {
                    tracing::warn!(
                        "cannot reach Redis at {} ({why}); serving this instance's readers only, retrying every second",
                        self.shown
                    );
                    down = true;
                }
                Err(_) => {}
            }
            if self.wait_while_down(Duration::from_secs(1)).await {
                return;
            }
        }
    }

    /// Redis is away: keep counting new readers and noting the posts served,
    /// answer lookups with nothing, let silent instances go. True if the
    /// server is stopping.
    async fn wait_while_down(&mut self, how_long: Duration) -> bool {
        let until = Instant::now() + how_long;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => { self.sweep(SILENT_WHILE_DOWN).await; return false; }
                _ = self.shutdown.wait() => return true,
                Some(out) = self.outbound.recv() => match out {
                    Outbound::NewReader { slug } => {
                        *self.pending_totals.entry(slug).or_insert(0) += 1;
                    }
                    Outbound::Serving { slug } => {
                        self.posts.serve(&slug);
                    }
                    _ => {}
                },
                Some(lookup) = self.lookups.recv() => lookup.refuse(),
            }
        }
    }

    async fn serve(&mut self, mut connection: Connection, mut pushes: Pushes) -> Ended {
        // Heard again from now: each instance has a heartbeat's time to
        // say it is still there.
        let now = Instant::now();
        self.heard.values_mut().for_each(|at| *at = now);
        if let Err(why) = self.resync(&mut connection).await {
            return Ended::Lost(why);
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut totals = tokio::time::interval(TOTALS_EVERY);
        let mut beats = 0u32;
        let masters = match command(connection.masters()).await {
            Ok(masters) => masters,
            Err(why) => return Ended::Lost(why),
        };
        loop {
            let step = tokio::select! {
                push = pushes.recv() => match push {
                    Some(push) => {
                        if let Some((channel, payload)) = message(&push) {
                            self.metrics.cluster_messages_in.inc();
                            self.metrics.cluster_bytes_in.add(payload.len() as u64);
                            let channel = channel.to_vec();
                            self.receive(&mut connection, &channel, payload).await
                        } else if let Some(slug) = subscribed(&push).and_then(slug_of_channel) {
                            // Subscribed, or again after a failover: what
                            // happened meanwhile is asked of the room.
                            self.ask(&mut connection, slug).await
                        } else if disconnected(&push) {
                            // On a Redis Cluster too: that node's
                            // subscriptions are gone with it, and only a
                            // fresh connection (a fresh slot map, once a
                            // replica has taken over) brings them back.
                            Err("a connection to Redis closed".to_string())
                        } else {
                            Ok(())
                        }
                    }
                    None => Err("the connection closed".to_string()),
                },
                Some(out) = self.outbound.recv() => self.send(&mut connection, out).await,
                Some(lookup) = self.lookups.recv() => match lookup {
                    Lookup::Release { token, slug, instance, respond_to } => {
                        let ask = Wire::Release { instance: self.instance.clone(), to: instance, token: token.as_str().to_string() };
                        self.releasing.insert(token.as_str().to_string(), respond_to);
                        self.publish(&mut connection, &keys::room_channel(&slug), &ask).await
                    }
                    Lookup::Query(query) => query.answer(&mut connection).await,
                },
                _ = totals.tick() => self.flush_totals(&mut connection).await,
                _ = heartbeat.tick() => {
                    beats += 1;
                    // Releases nobody answered: their askers gave up.
                    self.releasing.retain(|_, respond_to| !respond_to.is_closed());
                    self.sweep(SILENT).await;
                    if beats.is_multiple_of(REVIEW_EVERY) {
                        self.review(&mut connection).await;
                    }
                    match command(connection.masters()).await {
                        Ok(now) if now != masters => return Ended::Lost("a Redis Cluster master failed over".into()),
                        Ok(_) => {}
                        Err(why) => return Ended::Lost(why),
                    }
                    self.publish(&mut connection, CONTROL, &Wire::Heartbeat { instance: self.instance.clone() }).await
                }
                _ = self.shutdown.wait() => {
                    // The last readers counted still go in the totals.
                    let _ = self.flush_totals(&mut connection).await;
                    let _ = self.publish(&mut connection, CONTROL, &Wire::Bye { instance: self.instance.clone() }).await;
                    return Ended::Shutdown;
                }
            };
            if let Err(why) = step {
                return Ended::Lost(why);
            }
        }
    }

    /// After (re)connecting: add the readers counted while away, learn the
    /// totals, and hear the control channel and every post served here
    /// (each subscription's confirmation then asks its room).
    async fn resync(&mut self, connection: &mut Connection) -> Result<(), String> {
        self.flush_totals(connection).await?;
        // Read as text, so one bad field (another program's, a typo) is
        // skipped with a warning instead of failing the whole read, which
        // would make the link reconnect for ever.
        let totals: HashMap<String, String> = command(connection.hgetall(TOTALS)).await?;
        for (slug, total) in totals {
            let Ok(total) = total.trim().parse::<u64>() else {
                tracing::warn!("cluster: {TOTALS} has a field that is not a count; skipped");
                continue;
            };
            // The manager stopped: the server is shutting down anyway.
            let _ = self.ghosts.remote(Wire::Total { slug, total }).await;
        }
        command(connection.subscribe(CONTROL)).await?;
        let posts: Vec<Slug> = self.posts.all().cloned().collect();
        for slug in posts {
            command(connection.subscribe(&keys::room_channel(&slug))).await?;
        }
        Ok(())
    }

    /// Asks the instances serving `slug` for their ghosts in it.
    async fn ask(&mut self, connection: &mut Connection, slug: Slug) -> Result<(), String> {
        if !self.posts.hears(&slug) {
            return Ok(()); // Unsubscribed meanwhile.
        }
        let _ = self.ghosts.asked(slug.clone()).await; // See `receive`.
                                                       // And tells them this instance's, which they may have missed too.
        let _ = self.ghosts.announce(slug.clone()).await;
        let ask = Wire::Ask {
            instance: self.instance.clone(),
            slug: slug.to_string(),
        };
        self.publish(connection, &keys::room_channel(&slug), &ask)
            .await
    }

    /// Posts without a reader here for a while stop being heard, and the
    /// other instances' ghosts in them leave here.
    async fn review(&mut self, connection: &mut Connection) {
        let Ok(serving) = self.ghosts.serving().await else {
            return;
        };
        let serving: HashSet<Slug> = serving.into_iter().collect();
        for slug in self.posts.review(&serving, Instant::now()) {
            // A failed unsubscribe costs only messages ignored until the
            // next reconnect, which subscribes to heard posts only.
            let _ = command(connection.unsubscribe(&keys::room_channel(&slug))).await;
            let _ = self.ghosts.forget(slug).await;
        }
    }

    async fn publish(
        &self,
        connection: &mut Connection,
        channel: &str,
        wire: &Wire,
    ) -> Result<(), String> {
        let text = serde_json::to_vec(wire).map_err(|e| e.to_string())?;
        let publish = connection.publish_command(channel, &text);
        command(publish.exec_async(connection)).await
    }

    /// Instances silent longer than `limit` are gone: their ghosts leave
    /// here.
    async fn sweep(&mut self, limit: Duration) {
        let now = Instant::now();
        let silent: Vec<String> = self
            .heard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > limit)
            .map(|(i, _)| i.clone())
            .collect();
        for instance in silent {
            self.heard.remove(&instance);
            tracing::info!("cluster: instance {instance} went silent; its readers leave");
            let _ = self.ghosts.instance_gone(instance).await; // See `receive`.
        }
    }
}
