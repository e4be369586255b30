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

/// Publishes `per_sec` moves a second on Redis at `url` until `until`.
pub async fn publish(url: String, per_sec: f64, until: Instant) {
    if per_sec <= 0.0 {
        return;
    }
    let Ok(client) = redis::Client::open(url) else {
        eprintln!("elsewhere: not a Redis URL");
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        eprintln!("elsewhere: cannot reach Redis");
        return;
    };
    let mut ticker = tokio::time::interval(TICK);
    let mut owed = 0.0;
    let mut n: usize = 0;
    while Instant::now() < until {
        ticker.tick().await;
        owed += per_sec * TICK.as_secs_f64();
        let mut pipe = redis::pipe();
        while owed >= 1.0 {
            owed -= 1.0;
            n += 1;
            let slug = format!("elsewhere-{}", n % POSTS);
            let message = format!(
                r#"{{"kind":"room","instance":"elsewhere{}","slug":"{slug}","events":[{{"e":"moves","moves":[["g{:05}",{}.5]]}}]}}"#,
                n % 10,
                n % 50_000,
                n % 60
            );
            pipe.publish(format!("ghostread:room:{{{slug}}}"), message)
                .ignore();
        }
        if pipe.is_empty() {
            continue;
        }
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            eprintln!("elsewhere: publishing failed: {error}");
            return;
        }
    }
}
