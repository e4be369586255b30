//! One connection to Redis, whichever Redis it is: a single server, or a
//! Redis Cluster named by its seed nodes (`--redis` takes either; which one
//! it is, the first node says when asked). Commands go through it the same
//! way; what differs is pub/sub. A post's channel is a *sharded* channel on
//! a Redis Cluster (`SSUBSCRIBE`/`SPUBLISH`): its messages stay on the shard
//! that owns the channel's slot, and reach only the instances subscribed to
//! it. A single Redis is one shard, so classic `SUBSCRIBE`/`PUBLISH` is the
//! same thing there (and works on any version).
//!
//! Messages arrive over RESP3 pushes, on the same connection as commands,
//! so subscribing and publishing never wait for each other. On a Redis
//! Cluster, redis-rs follows a failover by itself: it reconnects to the new
//! master and subscribes again, and says so with a subscribe push, on which
//! the link asks that post's instances what it may have missed.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, RedisResult, Value,
};
use tokio::sync::mpsc;

use super::keys::COMMAND_TIMEOUT;

/// Where Redis is: the nodes `--redis` named, and (once a node has said)
/// whether they are a Redis Cluster's.
pub(super) struct Redis {
    nodes: Vec<redis::ConnectionInfo>,
    cluster: Option<bool>,
}

/// What Redis pushes: messages of the channels subscribed to, and
/// confirmations of (re)subscriptions.
pub(super) type Pushes = mpsc::UnboundedReceiver<PushInfo>;

/// A connection to either kind of Redis; cheap to clone (both kinds
/// multiplex one socket per node).
#[derive(Clone)]
pub(super) enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Redis {
    /// `spec`: one Redis URL, or several separated by commas (a Redis
    /// Cluster's seed nodes). Fails only for what is not a Redis URL.
    pub(super) fn parse(spec: &str) -> RedisResult<Redis> {
        let nodes = spec
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let info = url.into_connection_info()?;
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                Ok(info.set_redis_settings(settings))
            })
            .collect::<RedisResult<Vec<_>>>()?;
        if nodes.is_empty() {
            return Err((redis::ErrorKind::InvalidClientConfig, "no Redis URL given").into());
        }
        Ok(Redis {
            nodes,
            cluster: None,
        })
    }

    /// Connects, with pushes going to the receiver returned beside.
    pub(super) async fn connect(&mut self) -> Result<(Connection, Pushes), String> {
        let (sender, pushes) = mpsc::unbounded_channel();
        let connect = async {
            let cluster = match self.cluster {
                Some(known) => known,
                None => {
                    let known = self.is_cluster().await?;
                    self.cluster = Some(known);
                    known
                }
            };
            let connection = if cluster {
                let client = ClusterClientBuilder::new(self.nodes.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(sender)
                    .connection_timeout(COMMAND_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .build()?;
                Connection::Cluster(client.get_async_connection().await?)
            } else {
                // redis-rs gives up on a reply after 500 ms by default: a
                // busy Redis would count as a lost link and re-sync
                // everything. Our own deadline on each command rules.
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_push_sender(sender);
                let client = redis::Client::open(self.nodes[0].clone())?;
                Connection::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            };
            Ok::<_, redis::RedisError>(connection)
        };
        match tokio::time::timeout(COMMAND_TIMEOUT * 2, connect).await {
            Ok(Ok(connection)) => Ok((connection, pushes)),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Whether the first node that answers is part of a Redis Cluster.
    async fn is_cluster(&self) -> RedisResult<bool> {
        let mut last = None;
        for node in &self.nodes {
            let probe = async {
                let client = redis::Client::open(node.clone())?;
                let mut connection = client.get_multiplexed_async_connection().await?;
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut connection)
                    .await?;
                Ok::<_, redis::RedisError>(info.contains("cluster_enabled:1"))
            };
            match probe.await {
                Ok(cluster) => return Ok(cluster),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| (redis::ErrorKind::InvalidClientConfig, "no node").into()))
    }
}

impl Connection {
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    pub(super) async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Connection::Single(connection) => connection.subscribe(channel).await,
            Connection::Cluster(connection) => connection.ssubscribe(channel).await,
        }
    }

    pub(super) async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Connection::Single(connection) => connection.unsubscribe(channel).await,
            Connection::Cluster(connection) => connection.sunsubscribe(channel).await,
        }
    }

    /// Which node is master of which slots, on a Redis Cluster (`None` on
    /// a single Redis). redis-rs learns of a failover only when a command
    /// meets the dead node, and a subscription alone never does: the link
    /// asks this every heartbeat, and a change (or an error: the node it
    /// asked is the dead one) makes it connect afresh.
    pub(super) async fn masters(&mut self) -> RedisResult<Option<Vec<String>>> {
        if !self.is_cluster() {
            return Ok(None);
        }
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(self).await?;
        let mut masters = Vec::new();
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(fields) = range else {
                    continue;
                };
                let (Some(Value::Int(from)), Some(Value::Int(to)), Some(Value::Array(master))) =
                    (fields.first(), fields.get(1), fields.get(2))
                else {
                    continue;
                };
                let port = match master.get(1) {
                    Some(Value::Int(port)) => *port,
                    _ => 0,
                };
                let host = match master.first() {
                    Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                    _ => String::new(),
                };
                masters.push(format!("{from}-{to}@{host}:{port}"));
            }
        }
        masters.sort_unstable();
        Ok(Some(masters))
    }

    /// The command that publishes `payload` on `channel`.
    pub(super) fn publish_command(&self, channel: &str, payload: &[u8]) -> Cmd {
        let name = if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let mut cmd = redis::cmd(name);
        cmd.arg(channel).arg(payload);
        cmd
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A message pushed by Redis: its channel and payload, if it is one (and
/// not a subscription's confirmation or a disconnection).
pub(super) fn message(push: &PushInfo) -> Option<(&[u8], &[u8])> {
    use redis::PushKind;
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return None;
    }
    match push.data.as_slice() {
        [Value::BulkString(channel), Value::BulkString(payload), ..] => Some((channel, payload)),
        _ => None,
    }
}

/// The channel a (re)subscription push confirms, if it is one.
pub(super) fn subscribed(push: &PushInfo) -> Option<&[u8]> {
    use redis::PushKind;
    if !matches!(push.kind, PushKind::Subscribe | PushKind::SSubscribe) {
        return None;
    }
    match push.data.first() {
        Some(Value::BulkString(channel)) => Some(channel),
        _ => None,
    }
}

/// Whether the push says the connection (to a node) closed.
pub(super) fn disconnected(push: &PushInfo) -> bool {
    push.kind == redis::PushKind::Disconnection
}
