//! [`EventStream`], the response body of `GET /posts/{slug}/events`: the
//! room's shared frames, heartbeats, a fresh snapshot after falling behind,
//! and a drop that is how the manager learns that a reader left.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

use crate::events::PING;
use crate::ghosts::{GhostId, NearView, Resync, StreamEvent, StreamParts};
use crate::metrics::Metrics;

/// One reader's event stream. Frames come from its room's broadcast channel,
/// shared by every reader of the post; the stream ends when the manager drops
/// its `end` sender (takeover, shutdown) or the room closes.
pub struct EventStream {
    ghost: GhostId,
    /// Which stream of this ghost this is; a newer one (a takeover) has a
    /// higher serial, so the manager ignores this one's leave.
    serial: u64,
    /// The stream's own `hello`, then the room's shared state, not yet sent.
    hello: Option<Bytes>,
    state: Option<Bytes>,
    /// `None` while waiting for a fresh snapshot after falling behind.
    events: Option<BroadcastStream<Bytes>>,
    /// In a crowded room: where its reader's neighbours are, and the
    /// serial of the last `near` frame written (a block's readers share one).
    near: Option<Arc<NearView>>,
    near_sent: u64,
    resync: Option<oneshot::Receiver<Resync>>,
    end: oneshot::Receiver<()>,
    /// Set once the stream has ended, so no finished future is polled again.
    ended: bool,
    heartbeat: Pin<Box<Sleep>>,
    heartbeat_every: Duration,
    /// Whether anything was written since the last heartbeat; a busy stream
    /// needs no pings.
    wrote: bool,
    to_manager: mpsc::UnboundedSender<StreamEvent>,
    metrics: Arc<Metrics>,
}

impl EventStream {
    pub fn new(
        parts: StreamParts,
        heartbeat_every: Duration,
        metrics: Arc<Metrics>,
    ) -> EventStream {
        metrics.streams_open.inc();
        EventStream {
            ghost: parts.ghost,
            serial: parts.serial,
            hello: Some(parts.hello),
            state: Some(parts.state),
            events: Some(BroadcastStream::new(parts.events)),
            near: parts.near,
            near_sent: 0,
            resync: None,
            end: parts.end,
            ended: false,
            heartbeat: Box::pin(tokio::time::sleep(heartbeat_every)),
            heartbeat_every,
            wrote: false,
            to_manager: parts.to_manager,
            metrics,
        }
    }

    fn frame(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.wrote = true;
        self.metrics.frames_sent.inc();
        self.metrics.bytes_sent.add(bytes.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = this.hello.take().or_else(|| this.state.take()) {
            return this.frame(first);
        }
        let polled = this.poll_events(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl EventStream {
    fn poll_events(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self;
        // Ended by the manager: a newer stream took over, or shutdown.
        if Pin::new(&mut this.end).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if let Some(resync) = &mut this.resync {
            match Pin::new(resync).poll(cx) {
                Poll::Ready(Ok(Resync { snapshot, events })) => {
                    this.resync = None;
                    this.events = Some(BroadcastStream::new(events));
                    return this.frame(snapshot);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Pending => {}
            }
        }
        if let Some(events) = &mut this.events {
            match Pin::new(events).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => return this.frame(bytes),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    // Fell behind: drop the missed frames (and the receiver's
                    // place in the ring) and ask for a fresh snapshot instead.
                    this.events = None;
                    let (respond_to, answer) = oneshot::channel();
                    let asked = this.to_manager.send(StreamEvent::Lagged {
                        ghost: this.ghost.clone(),
                        serial: this.serial,
                        respond_to,
                    });
                    if asked.is_err() {
                        return Poll::Ready(None);
                    }
                    this.resync = Some(answer);
                    // Poll the new receiver once so this task is woken by it.
                    if let Some(resync) = &mut this.resync {
                        if let Poll::Ready(result) = Pin::new(resync).poll(cx) {
                            this.resync = None;
                            let Ok(Resync { snapshot, events }) = result else {
                                return Poll::Ready(None);
                            };
                            this.events = Some(BroadcastStream::new(events));
                            return this.frame(snapshot);
                        }
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
        }
        if let Some(near) = &this.near {
            if let Some(frame) = near.poll_frame(cx, &mut this.near_sent) {
                return this.frame(frame);
            }
        }
        while this.heartbeat.as_mut().poll(cx).is_ready() {
            let next = tokio::time::Instant::now() + this.heartbeat_every;
            this.heartbeat.as_mut().reset(next);
            if !std::mem::replace(&mut this.wrote, false) {
                let ping = this.frame(Bytes::from_static(PING));
                this.wrote = false;
                return ping;
            }
        }
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.metrics.streams_open.dec();
        // The leave must never be lost, and `Drop` cannot wait: the channel is
        // unbounded, holding at most one leave per open stream. An error means
        // the manager has stopped, and then there is nobody left to tell.
        let _ = self.to_manager.send(StreamEvent::Left {
            ghost: self.ghost.clone(),
            serial: self.serial,
        });
    }
}
