//! The manager's saves of the all-time counts: on time, off its own thread,
//! and a last one at shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::manager::Manager;
use crate::store::save_counts;

impl Manager {
    /// Starts a save if one is due and none is running; a save still running
    /// (a slow disk) pushes the next one back a little instead of piling up.
    pub(super) fn save_if_due(&mut self, now: Instant) {
        let idle = self.saving.as_ref().is_none_or(|s| s.is_finished());
        if self.save_at.is_none() && idle && self.save_failing.load(Ordering::Relaxed) {
            // The last save failed and nothing new has asked for one: try
            // again anyway, or counts would wait on disk for the next reader.
            self.save_at = Some((self.last_save + self.settings.save_interval).max(now));
        }
        if self.save_at.is_none_or(|at| at > now) {
            return;
        }
        if self
            .saving
            .as_ref()
            .is_some_and(|saving| !saving.is_finished())
        {
            self.save_at = Some(now + Duration::from_millis(10));
            return;
        }
        self.save_at = None;
        self.last_save = now;
        self.saving = Some(self.spawn_save());
    }

    /// Saves on the blocking pool: the manager never waits for a disk.
    fn spawn_save(&mut self) -> JoinHandle<()> {
        let totals = self.totals.clone();
        let dir = self.settings.data_dir.clone();
        let metrics = self.metrics.clone();
        let failing = self.save_failing.clone();
        tokio::task::spawn_blocking(move || match save_counts(&dir, &totals) {
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

    pub(super) async fn shutdown(&mut self) {
        // Dropping every `end` sender and room ends every stream.
        self.live.clear();
        self.per_address.clear();
        self.live_tokens.clear();
        self.parked.clear();
        self.rooms.clear();
        self.directory.clear();
        self.metrics.ghosts.set(0);
        self.metrics.rooms.set(0);
        self.metrics.parked.set(0);
        if let Some(saving) = self.saving.take() {
            let _ = saving.await; // A failed save was logged by the save itself.
        }
        let totals = self.totals.clone();
        let dir = self.settings.data_dir.clone();
        match tokio::task::spawn_blocking(move || save_counts(&dir, &totals)).await {
            Ok(Ok(())) => self.metrics.counts_saved.inc(),
            Ok(Err(error)) => tracing::error!(
                "cannot save the reader counts in {} at shutdown: {error}; the last second of counts is lost",
                self.settings.data_dir.display()
            ),
            Err(_) => tracing::error!("saving the reader counts panicked at shutdown"),
        }
    }
}
