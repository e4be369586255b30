//! The server-wide "stop now" signal. One [`Trigger`] fires it; every
//! long-lived task holds a [`Shutdown`] and returns when it fires.

use tokio::sync::watch;

/// Fires the shutdown signal; dropping it fires it too, so a task can never
/// wait on a trigger that no longer exists.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// Listens for the shutdown signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    pub fn fire(&self) {
        // `send_replace` stores the value even with no receiver left.
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_started(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has started (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.rx.wait_for(|started| *started).await;
    }
}
