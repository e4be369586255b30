//! The link to Redis: one task per instance. It publishes what the manager
//! hands it, forwards the other instances' messages to the manager, sends
//! heartbeats and finds silent instances, and rides out Redis going away
//! (serving local readers, logging once, re-syncing when it is back).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSubStream};
use redis::AsyncCommands;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use crate::blog::Slug;
use crate::ghosts::messages::{decode, Outbound, RemoteParked, Wire, CHANNEL};
use crate::ghosts::{base36, Ghosts, Token};
use crate::shutdown::Shutdown;

/// How often each instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which an instance is gone: its ghosts leave everywhere
/// within this plus one heartbeat, under the 5 s the operators were promised.
const SILENT: Duration = Duration::from_millis(3500);
/// How often each instance publishes all its ghosts, correcting anything a
/// lost message left wrong.
const SNAPSHOT_EVERY: u32 = 10;
/// Longest wait for one Redis command before the link counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Resume lookups waiting for the link. A handful is plenty: each takes one
/// Redis round trip.
const LOOKUP_CAPACITY: usize = 256;

const TOTALS: &str = "ghostread:totals";

/// How long a resume waits for another instance to release a ghost that
/// is live there: one round trip through Redis each way, usually.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// Where a lookup's answer goes.
type Answer = oneshot::Sender<Option<RemoteParked>>;

/// What request handlers ask the link for.
#[derive(Debug)]
enum Lookup {
    /// The ghost parked in Redis under this token, taken.
    Parked(Token, Answer),
    /// Ask `instance` to release this token's live ghost, and take it.
    Release {
        token: Token,
        instance: String,
        respond_to: Answer,
    },
    /// A post's heat map summed over every instance.
    Heat(Slug, oneshot::Sender<Option<Vec<f64>>>),
}

/// The handle request handlers use: resume lookups.
#[derive(Clone, Debug)]
pub struct Cluster {
    lookups: mpsc::Sender<Lookup>,
}

impl Cluster {
    /// Starts the link. Fails only for a URL that is not a Redis URL.
    pub fn spawn(
        url: &str,
        ghosts: Ghosts,
        outbound: mpsc::Receiver<Outbound>,
        resume_window: Duration,
        shutdown: Shutdown,
    ) -> redis::RedisResult<Cluster> {
        let client = redis::Client::open(url)?;
        let instance = base36(&mut rand::rng(), 10);
        let (lookups, lookup_rx) = mpsc::channel(LOOKUP_CAPACITY);
        let link = Link {
            client,
            shown: url.rsplit('@').next().unwrap_or(url).to_string(),
            instance,
            ghosts,
            outbound,
            lookups: lookup_rx,
            releasing: HashMap::new(),
            heard: HashMap::new(),
            pending_totals: HashMap::new(),
            resume_window,
            shutdown,
        };
        tokio::spawn(link.run());
        Ok(Cluster { lookups })
    }

    /// The ghost this token parked on any instance, taken (so it resumes
    /// once). `None` when there is none, or Redis does not answer quickly.
    pub async fn parked(&self, token: &Token) -> Option<RemoteParked> {
        let (respond_to, answer) = oneshot::channel();
        self.lookups
            .try_send(Lookup::Parked(token.clone(), respond_to))
            .ok()?;
        tokio::time::timeout(Duration::from_millis(500), answer)
            .await
            .ok()?
            .ok()?
    }

    /// `slug`'s heat map as every instance together has counted it, or
    /// `None` if Redis does not answer quickly.
    pub async fn heat(&self, slug: &Slug) -> Option<Vec<f64>> {
        let (respond_to, answer) = oneshot::channel();
        self.lookups
            .try_send(Lookup::Heat(slug.clone(), respond_to))
            .ok()?;
        tokio::time::timeout(Duration::from_millis(500), answer)
            .await
            .ok()?
            .ok()?
    }

    /// Has `instance`, where this token's ghost is live, end its stream and
    /// hand the ghost over through Redis; the ghost, taken, or `None` if
    /// that instance does not answer within a second (it may be gone) or
    /// does not hold the token.
    pub async fn release(&self, token: &Token, instance: String) -> Option<RemoteParked> {
        let (respond_to, answer) = oneshot::channel();
        let lookup = Lookup::Release {
            token: token.clone(),
            instance,
            respond_to,
        };
        self.lookups.try_send(lookup).ok()?;
        tokio::time::timeout(RELEASE_WAIT, answer)
            .await
            .ok()?
            .ok()?
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
    releasing: HashMap<String, Answer>,
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
            let connection = self.client.get_multiplexed_async_connection().await?;
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
                Some(lookup) = self.lookups.recv() => match lookup {
                    Lookup::Parked(_, respond_to) | Lookup::Release { respond_to, .. } => {
                        let _ = respond_to.send(None);
                    }
                    Lookup::Heat(_, respond_to) => { let _ = respond_to.send(None); }
                },
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
                    Lookup::Parked(token, respond_to) => take_parked(&mut connection, token.as_str(), respond_to).await,
                    Lookup::Release { token, instance, respond_to } => {
                        let ask = Wire::Release { instance: self.instance.clone(), to: instance, token: token.as_str().to_string() };
                        self.releasing.insert(token.as_str().to_string(), respond_to);
                        self.publish(&mut connection, &ask).await
                    }
                    Lookup::Heat(slug, respond_to) => read_heat(&mut connection, &slug, respond_to).await,
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
                let key = heat_key(&slug);
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
                let key = format!("ghostread:park:{}", token.as_str());
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

fn heat_key(slug: &Slug) -> String {
    format!("ghostread:heat:{slug}")
}

/// Reads a post's summed heat map: a hash of block index to seconds.
/// Fields that are not a block and a number (another program's) are
/// skipped; an absurd block index is not allocated for.
async fn read_heat(
    connection: &mut MultiplexedConnection,
    slug: &Slug,
    respond_to: oneshot::Sender<Option<Vec<f64>>>,
) -> Result<(), String> {
    const MOST_BLOCKS: usize = 100_000;
    let fields: Result<HashMap<String, String>, String> =
        command(connection.hgetall(heat_key(slug))).await;
    let strip = fields.as_ref().ok().map(|fields| {
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
    });
    let _ = respond_to.send(strip); // The asker may have given up.
    fields.map(|_| ())
}

/// Takes the ghost parked under `token` (so it resumes once) and hands it
/// to `respond_to`; a failed command is a lost link.
async fn take_parked(
    connection: &mut MultiplexedConnection,
    token: &str,
    respond_to: Answer,
) -> Result<(), String> {
    let key = format!("ghostread:park:{token}");
    let found: Result<Option<String>, String> = command(connection.get_del(key)).await;
    let parked = found
        .as_ref()
        .ok()
        .and_then(|text| text.as_deref())
        .and_then(|text| serde_json::from_str(text).ok());
    let _ = respond_to.send(parked); // The asker may have given up.
    found.map(|_| ())
}

/// Runs one Redis command with a deadline; any failure is a lost link.
async fn command<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("a command timed out".into()),
    }
}
