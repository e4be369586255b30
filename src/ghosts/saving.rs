//! The manager's saves of the all-time counts: on time, off its own thread,
//! retried until one succeeds, and a last one at shutdown. [`Saver`] owns
//! when the next save is due; the manager only says that something changed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::store::{save_counts, Heat, Totals};

pub(super) struct Saver {
    dir: PathBuf,
    interval: Duration,
    /// When the changed counts are next saved; `None` while nothing changed.
    /// At most `interval` after the first unsaved change, so kill -9 loses
    /// at most that much.
    due: Option<Instant>,
    last: Instant,
    running: Option<JoinHandle<()>>,
    /// Whether the last save failed, so a run of failures is logged once
    /// and the recovery too. Set by the save on the blocking pool.
    failing: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Saver {
    pub(super) fn new(dir: PathBuf, interval: Duration, metrics: Arc<Metrics>) -> Saver {
        Saver {
            dir,
            interval,
            due: None,
            last: Instant::now(),
            running: None,
            failing: Arc::default(),
            metrics,
        }
    }

    /// The counts changed: a save is due within one interval.
    pub(super) fn changed(&mut self) {
        if self.due.is_none() {
            self.due = Some((self.last + self.interval).max(Instant::now()));
        }
    }

    /// When the manager must next wake for a save.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Starts a save if one is due and none is running; a save still running
    /// (a slow disk) pushes the next one back a little instead of piling up.
    pub(super) fn save_if_due(&mut self, now: Instant, totals: &Totals, heat: &Heat) {
        let idle = self.running.as_ref().is_none_or(|s| s.is_finished());
        if self.due.is_none() && idle && self.failing.load(Ordering::Relaxed) {
            // The last save failed and nothing new has asked for one: try
            // again anyway, or counts would wait on disk for the next reader.
            self.due = Some((self.last + self.interval).max(now));
        }
        if self.due.is_none_or(|at| at > now) {
            return;
        }
        if !idle {
            self.due = Some(now + Duration::from_millis(10));
            return;
        }
        self.due = None;
        self.last = now;
        self.running = Some(self.spawn(totals.clone(), heat.clone()));
    }

    /// Saves on the blocking pool: the manager never waits for a disk.
    fn spawn(&self, totals: Totals, heat: Heat) -> JoinHandle<()> {
        let dir = self.dir.clone();
        let metrics = self.metrics.clone();
        let failing = self.failing.clone();
        tokio::task::spawn_blocking(move || match save_counts(&dir, &totals, &heat) {
            Ok(()) => {
                metrics.counts_saved.inc();
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the reader counts are saved in {} again", dir.display());
                }
            }
            Err(error) => {
                // The first failure of a run of failures, not every second.
                if !failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot save the reader counts in {}: {error}; keeping them in memory and retrying",
                        dir.display()
                    );
                }
                metrics.counts_save_errors.inc();
            }
        })
    }

    /// The last save, at shutdown: waits for a running one, then saves.
    pub(super) async fn finish(&mut self, totals: &Totals, heat: &Heat) {
        if let Some(running) = self.running.take() {
            let _ = running.await; // A failed save was logged by the save itself.
        }
        let (totals, heat) = (totals.clone(), heat.clone());
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || save_counts(&dir, &totals, &heat)).await {
            Ok(Ok(())) => self.metrics.counts_saved.inc(),
            Ok(Err(error)) => tracing::error!(
                "cannot save the reader counts in {} at shutdown: {error}; the last second of counts is lost",
                self.dir.display()
            ),
            Err(_) => tracing::error!("saving the reader counts panicked at shutdown"),
        }
    }
}
