//! What the link hears on the channels and what it sends there: the other
//! instances' messages, answered or handed to the manager, and what the
//! manager hands it to publish (or to keep in Redis).

use redis::AsyncCommands;
use tokio::time::Instant;

use super::Link;
use crate::blog::Slug;
use crate::cluster::connection::Connection;
use crate::cluster::keys::{self, command, slug_of_channel, TOTALS};
use crate::cluster::lookups::take_parked;
use crate::ghosts::messages::{decode, Outbound, RemoteParked, Wire};

impl Link {
    /// Adds the new readers counted since the last flush to each post's
    /// total in Redis, and tells the post's instances the total. What
    /// Redis did not take waits for the next flush.
    pub(super) async fn flush_totals(&mut self, connection: &mut Connection) -> Result<(), String> {
        let pending: Vec<(Slug, u64)> = self.pending_totals.drain().collect();
        let mut failed = None;
        for (slug, n) in pending {
            if failed.is_some() {
                *self.pending_totals.entry(slug).or_insert(0) += n;
                continue;
            }
            match command(connection.hincr(TOTALS, slug.as_str(), n)).await {
                Ok(total) => {
                    let wire = Wire::Total {
                        slug: slug.to_string(),
                        total,
                    };
                    let _ = self.ghosts.remote(wire.clone()).await; // See `receive`.
                    if let Err(why) = self
                        .publish(connection, &keys::room_channel(&slug), &wire)
                        .await
                    {
                        failed = Some(why);
                    }
                }
                Err(why) => {
                    *self.pending_totals.entry(slug).or_insert(0) += n;
                    failed = Some(why);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    pub(super) async fn receive(
        &mut self,
        connection: &mut Connection,
        channel: &[u8],
        payload: &[u8],
    ) -> Result<(), String> {
        let Some(wire) = decode(payload) else {
            return Ok(());
        };
        if let Some(from) = wire.sender() {
            if from == self.instance {
                return Ok(());
            }
            if matches!(wire, Wire::Bye { .. }) {
                self.heard.remove(from);
            } else {
                self.heard.insert(from.to_string(), Instant::now());
            }
        }
        match wire {
            // Asked of another instance: nothing for this one to do.
            Wire::Release { ref to, .. } if *to != self.instance => Ok(()),
            Wire::Released { to, token, .. } => {
                if to != self.instance {
                    return Ok(());
                }
                let Some(respond_to) = self.releasing.remove(&token) else {
                    return Ok(()); // Asked long ago, or never: nothing waits.
                };
                take_parked(connection, &token, respond_to).await
            }
            Wire::Ask { slug, .. } => {
                // Answered on the channel it came on, if it is that post's:
                // the manager tells its ghosts (or counts) there, if any.
                if let Some(slug) = slug_of_channel(channel).filter(|s| s.as_str() == slug) {
                    let _ = self.ghosts.announce(slug).await; // See below.
                }
                Ok(())
            }
            Wire::Heartbeat { .. } => Ok(()),
            wire => {
                let _ = self.ghosts.remote(wire).await; // An error means the server is stopping.
                Ok(())
            }
        }
    }

    pub(super) async fn send(
        &mut self,
        connection: &mut Connection,
        out: Outbound,
    ) -> Result<(), String> {
        match out {
            Outbound::Room { slug, events } => {
                let wire = Wire::Room {
                    instance: self.instance.clone(),
                    slug: slug.to_string(),
                    events,
                };
                self.publish(connection, &keys::room_channel(&slug), &wire)
                    .await
            }
            Outbound::Counts { slug, counts } => {
                let wire = Wire::Counts {
                    instance: self.instance.clone(),
                    slug: slug.to_string(),
                    counts,
                };
                self.publish(connection, &keys::room_channel(&slug), &wire)
                    .await
            }
            Outbound::Snapshot { room } => {
                let Some(slug) = Slug::parse(&room.slug) else {
                    return Ok(());
                };
                let wire = Wire::Snapshot {
                    instance: self.instance.clone(),
                    room,
                };
                self.publish(connection, &keys::room_channel(&slug), &wire)
                    .await
            }
            Outbound::Serving { slug } => {
                if !self.posts.serve(&slug) {
                    return Ok(());
                }
                command(connection.subscribe(&keys::room_channel(&slug))).await
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
                // Added with the post's other new readers at the next
                // flush: a viral post's thousand arrivals a second are then
                // a few commands and messages, not a thousand of each.
                *self.pending_totals.entry(slug).or_insert(0) += 1;
                Ok(())
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
                let Some(to) = released_to else {
                    return Ok(());
                };
                let released = Wire::Released {
                    instance: self.instance.clone(),
                    to,
                    token: token.as_str().to_string(),
                };
                self.publish(connection, &keys::room_channel(&slug), &released)
                    .await
            }
        }
    }
}
