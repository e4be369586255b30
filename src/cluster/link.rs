//! The link to Redis: one task per instance. It publishes what the manager
//! hands it, forwards the other instances' messages to the manager, sends
//! heartbeats and finds silent instances, and rides out Redis going away
//! (serving local readers, logging once, re-syncing when it is back).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSubStream};
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use super::keys::{self, command, COMMAND_TIMEOUT, TOTALS};
use super::lookups::{take_parked, Cluster, Lookup, ParkedTo};
use crate::ghosts::messages::{decode, Outbound, RemoteParked, Wire, CHANNEL};
use crate::ghosts::{base36, Ghosts};
use crate::shutdown::Shutdown;

/// How often each instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which an instance is gone: its ghosts leave everywhere
/// within this plus one heartbeat, under the 5 s the operators were promised.
const SILENT: Duration = Duration::from_millis(3500);
/// How often each instance publishes all its ghosts, correcting anything a
/// lost message left wrong.
const SNAPSHOT_EVERY: u32 = 10;

/// A link made but not started: the engine it drives is made with the
/// link's handle, then the link starts with the engine's.
pub struct Unstarted {
    client: redis::Client,
    shown: String,
    outbound: mpsc::Receiver<Outbound>,
    lookups: mpsc::Receiver<Lookup>,
    resume_window: Duration,
}

impl Cluster {
    /// The handle of a link to the Redis at `url`, and the link, not yet
    /// started. Fails only for a URL that is not a Redis URL.
    pub fn open(url: &str, resume_window: Duration) -> redis::RedisResult<(Cluster, Unstarted)> {
        let client = redis::Client::open(url)?;
        let (cluster, lookups, outbound) = Cluster::new();
        let unstarted = Unstarted {
            client,
            shown: url.rsplit('@').next().unwrap_or(url).to_string(),
            outbound,
            lookups,
            resume_window,
        };
        Ok((cluster, unstarted))
    }
}

impl Unstarted {
    /// Starts the link, driving `ghosts` until `shutdown`.
    pub fn start(self, ghosts: Ghosts, shutdown: Shutdown) {
        let link = Link {
            client: self.client,
            shown: self.shown,
            instance: base36(&mut rand::rng(), 10),
            ghosts,
            outbound: self.outbound,
            lookups: self.lookups,
            releasing: HashMap::new(),
            heard: HashMap::new(),
            pending_totals: HashMap::new(),
            resume_window: self.resume_window,
            shutdown,
        };
        tokio::spawn(link.run());
    }
}

struct Link {
    client: redis::Client,
    /// The Redis address without any password, for logs.
    shown: String,
    instance: String,
    ghosts: Ghosts,
    outbound: mpsc::Receiver<Outbound>,
    lookups: mpsc::Receiver<Lookup>,
    /// Releases asked of other instances, by token, waiting for `Released`.
    releasing: HashMap<String, ParkedTo>,
    /// When each other instance was last heard from.
    heard: HashMap<String, Instant>,
    /// New readers counted while Redis was away, added when it is back.
    pending_totals: HashMap<String, u64>,
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
            match self.connect().await {
                Ok((connection, messages)) => {
                    if down {
                        tracing::info!(
                            "Redis at {} is back; re-syncing with the cluster",
                            self.shown
                        );
                    } else {
                        tracing::info!(
                            "cluster: instance {} joined through Redis at {}",
                            self.instance,
                            self.shown
                        );
                    }
                    match self.serve(connection, messages).await {
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

    async fn connect(&self) -> Result<(MultiplexedConnection, PubSubStream), String> {
        let connect = async {
            // redis-rs gives up on a reply after 500 ms by default: a big
            // snapshot on a busy Redis would count as a lost link and
            // re-sync everything. Our own deadline on each command rules.
            let config = redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_connection_timeout(Some(COMMAND_TIMEOUT));
            let connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>((connection, pubsub.into_on_message()))
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, connect).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Redis is away: keep counting new readers, answer lookups with
    /// nothing, let silent instances go. True if the server is stopping.
    async fn wait_while_down(&mut self, how_long: Duration) -> bool {
        let until = Instant::now() + how_long;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => { self.sweep().await; return false; }
                _ = self.shutdown.wait() => return true,
                Some(out) = self.outbound.recv() => {
                    if let Outbound::NewReader { slug } = out {
                        *self.pending_totals.entry(slug.to_string()).or_insert(0) += 1;
                    }
                }
                Some(lookup) = self.lookups.recv() => lookup.refuse(),
            }
        }
    }

    async fn serve(
        &mut self,
        mut connection: MultiplexedConnection,
        mut messages: PubSubStream,
    ) -> Ended {
        if let Err(why) = self.resync(&mut connection).await {
            return Ended::Lost(why);
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut beats = 0u32;
        loop {
            let step = tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.receive(&mut connection, message.get_payload_bytes()).await,
                    None => Err("the subscription closed".to_string()),
                },
                Some(out) = self.outbound.recv() => self.send(&mut connection, out).await,
                Some(lookup) = self.lookups.recv() => match lookup {
                    Lookup::Release { token, instance, respond_to } => {
                        let ask = Wire::Release { instance: self.instance.clone(), to: instance, token: token.as_str().to_string() };
                        self.releasing.insert(token.as_str().to_string(), respond_to);
                        self.publish(&mut connection, &ask).await
                    }
                    Lookup::Query(query) => query.answer(&mut connection).await,
                },
                _ = heartbeat.tick() => {
                    beats += 1;
                    // Releases nobody answered: their askers gave up.
                    self.releasing.retain(|_, respond_to| !respond_to.is_closed());
                    self.sweep().await;
                    if beats.is_multiple_of(SNAPSHOT_EVERY) {
                        self.publish_snapshot(&mut connection).await
                    } else {
                        self.publish(&mut connection, &Wire::Heartbeat { instance: self.instance.clone() }).await
                    }
                }
                _ = self.shutdown.wait() => {
                    let _ = self.publish(&mut connection, &Wire::Bye { instance: self.instance.clone() }).await;
                    return Ended::Shutdown;
                }
            };
            if let Err(why) = step {
                return Ended::Lost(why);
            }
        }
    }

    /// After (re)connecting: add the readers counted while away, learn the
    /// totals, and tell the others every ghost this instance holds.
    async fn resync(&mut self, connection: &mut MultiplexedConnection) -> Result<(), String> {
        for (slug, n) in std::mem::take(&mut self.pending_totals) {
            let _: u64 = command(connection.hincr(TOTALS, &slug, n)).await?;
        }
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
        self.publish_snapshot(connection).await?;
        self.publish(
            connection,
            &Wire::Hello {
                instance: self.instance.clone(),
            },
        )
        .await
    }

    async fn receive(
        &mut self,
        connection: &mut MultiplexedConnection,
        payload: &[u8],
    ) -> Result<(), String> {
        let Some(wire) = decode(payload) else {
            return Ok(());
        };
        let from = match &wire {
            Wire::Room { instance, .. }
            | Wire::Snapshot { instance, .. }
            | Wire::Heartbeat { instance }
            | Wire::Hello { instance }
            | Wire::Bye { instance }
            | Wire::Release { instance, .. }
            | Wire::Released { instance, .. } => Some(instance.clone()),
            Wire::Total { .. } => None,
        };
        if let Some(from) = from {
            if from == self.instance {
                return Ok(());
            }
            if matches!(wire, Wire::Bye { .. }) {
                self.heard.remove(&from);
            } else {
                self.heard.insert(from, Instant::now());
            }
        }
        match &wire {
            // Asked of another instance: nothing for this one to do.
            Wire::Release { to, .. } if *to != self.instance => return Ok(()),
            Wire::Released { to, token, .. } => {
                if *to != self.instance {
                    return Ok(());
                }
                let Some(respond_to) = self.releasing.remove(token) else {
                    return Ok(()); // Asked long ago, or never: nothing waits.
                };
                return take_parked(connection, token, respond_to).await;
            }
            _ => {}
        }
        let hello = matches!(wire, Wire::Hello { .. });
        let _ = self.ghosts.remote(wire).await; // An error means the server is stopping.
        if hello {
            return self.publish_snapshot(connection).await;
        }
        Ok(())
    }

    async fn send(
        &mut self,
        connection: &mut MultiplexedConnection,
        out: Outbound,
    ) -> Result<(), String> {
        match out {
            Outbound::Room { slug, events } => {
                let wire = Wire::Room {
                    instance: self.instance.clone(),
                    slug: slug.to_string(),
                    events,
                };
                self.publish(connection, &wire).await
            }
            Outbound::Heat { slug, grown } => {
                // While Redis is away this is lost to the cluster's sum
                // (each instance's own file keeps its part).
                let key = keys::heat(&slug);
                let mut pipe = redis::pipe();
                for (block, seconds) in grown.iter().enumerate().filter(|(_, s)| **s > 0.0) {
                    pipe.hincr(&key, block, *seconds).ignore();
                }
                command(pipe.query_async::<()>(connection)).await
            }
            Outbound::NewReader { slug } => {
                let total: u64 = match command(connection.hincr(TOTALS, slug.as_str(), 1u64)).await
                {
                    Ok(total) => total,
                    Err(why) => {
                        *self.pending_totals.entry(slug.to_string()).or_insert(0) += 1;
                        return Err(why);
                    }
                };
                let wire = Wire::Total {
                    slug: slug.to_string(),
                    total,
                };
                let _ = self.ghosts.remote(wire.clone()).await; // See `receive`.
                self.publish(connection, &wire).await
            }
            Outbound::Parked {
                token,
                id,
                color,
                slug,
                pos,
                counted,
                released_to,
            } => {
                let parked = RemoteParked {
                    id: id.to_string(),
                    color: color.to_string(),
                    slug: slug.to_string(),
                    pos,
                    counted,
                };
                let text = serde_json::to_string(&parked).map_err(|e| e.to_string())?;
                let key = keys::parked(token.as_str());
                let seconds = self.resume_window.as_secs().max(1);
                command(connection.set_ex::<_, _, ()>(key, text, seconds)).await?;
                match released_to {
                    Some(to) => {
                        let released = Wire::Released {
                            instance: self.instance.clone(),
                            to,
                            token: token.as_str().to_string(),
                        };
                        self.publish(connection, &released).await
                    }
                    None => Ok(()),
                }
            }
        }
    }

    async fn publish(
        &self,
        connection: &mut MultiplexedConnection,
        wire: &Wire,
    ) -> Result<(), String> {
        let text = serde_json::to_string(wire).map_err(|e| e.to_string())?;
        command(connection.publish::<_, _, ()>(CHANNEL, text)).await
    }

    async fn publish_snapshot(
        &mut self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(), String> {
        let Ok(rooms) = self.ghosts.local_snapshot().await else {
            return Ok(());
        };
        self.publish(
            connection,
            &Wire::Snapshot {
                instance: self.instance.clone(),
                rooms,
            },
        )
        .await
    }

    /// Instances silent too long are gone: their ghosts leave here.
    async fn sweep(&mut self) {
        let now = Instant::now();
        let silent: Vec<String> = self
            .heard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > SILENT)
            .map(|(i, _)| i.clone())
            .collect();
        for instance in silent {
            self.heard.remove(&instance);
            tracing::info!("cluster: instance {instance} went silent; its readers leave");
            let _ = self.ghosts.instance_gone(instance).await; // See `receive`.
        }
    }
}
