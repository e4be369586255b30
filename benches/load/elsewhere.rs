//! The rest of a big cluster, played on one machine: other instances'
//! moves on posts the instances under test do not serve, published the
//! way a ghostread instance publishes them (one `room` message per room
//! and tick, on the post's own channel). What they cost an instance that
//! does not serve those posts is what `--elsewhere-moves` measures.

use std::time::Duration;

use tokio::time::Instant;

/// Posts the rest of the cluster serves, none of them the target's.
const POSTS: usize = 180;
/// How often it publishes: as an instance's tick does.
const TICK: Duration = Duration::from_millis(10);

/// Publishes `per_sec` moves a second on Redis at `url` (a Redis
/// Cluster's seed nodes when comma-separated: then on sharded channels)
/// until `until`.
pub async fn publish(url: String, per_sec: f64, until: Instant) {
    if per_sec <= 0.0 {
        return;
    }
    if url.contains(',') {
        return publish_sharded(url.split(',').map(str::to_string).collect(), per_sec, until).await;
    }
    let Ok(client) = redis::Client::open(url) else {
        eprintln!("elsewhere: not a Redis URL");
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        eprintln!("elsewhere: cannot reach Redis");
        return;
    };
    let mut moves = Moves::new(per_sec);
    while Instant::now() < until {
        let batch = moves.next().await;
        if batch.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for (channel, message) in batch {
            pipe.publish(channel, message).ignore();
        }
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            eprintln!("elsewhere: publishing failed: {error}");
            return;
        }
    }
}

/// The same on a Redis Cluster: each message to its channel's shard, all
/// of a tick's at once (a pipeline may not cross slots).
async fn publish_sharded(nodes: Vec<String>, per_sec: f64, until: Instant) {
    let connection = match redis::cluster::ClusterClient::new(nodes) {
        Ok(client) => client.get_async_connection().await,
        Err(error) => Err(error),
    };
    let Ok(connection) = connection else {
        eprintln!("elsewhere: cannot reach the Redis Cluster");
        return;
    };
    let mut moves = Moves::new(per_sec);
    while Instant::now() < until {
        let mut sent = tokio::task::JoinSet::new();
        for (channel, message) in moves.next().await {
            let mut connection = connection.clone();
            sent.spawn(async move {
                redis::cmd("SPUBLISH")
                    .arg(channel)
                    .arg(message)
                    .exec_async(&mut connection)
                    .await
            });
        }
        while let Some(done) = sent.join_next().await {
            if let Ok(Err(error)) = done {
                eprintln!("elsewhere: publishing failed: {error}");
                return;
            }
        }
    }
}

/// The moves of each tick, as `(channel, message)`.
struct Moves {
    per_sec: f64,
    owed: f64,
    n: usize,
    ticker: tokio::time::Interval,
}

impl Moves {
    fn new(per_sec: f64) -> Moves {
        Moves {
            per_sec,
            owed: 0.0,
            n: 0,
            ticker: tokio::time::interval(TICK),
        }
    }

    async fn next(&mut self) -> Vec<(String, String)> {
        self.ticker.tick().await;
        self.owed += self.per_sec * TICK.as_secs_f64();
        let mut batch = Vec::new();
        while self.owed >= 1.0 {
            self.owed -= 1.0;
            self.n += 1;
            let n = self.n;
            let slug = format!("elsewhere-{}", n % POSTS);
            let message = format!(
                r#"{{"kind":"room","instance":"elsewhere{}","slug":"{slug}","events":[{{"e":"moves","moves":[["g{:05}",{}.5]]}}]}}"#,
                n % 10,
                n % 50_000,
                n % 60
            );
            batch.push((format!("ghostread:room:{{{slug}}}"), message));
        }
        batch
    }
}
