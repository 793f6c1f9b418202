//! Graceful shutdown: one signal shared by every task.
//!
//! [`Shutdown::trigger`] flips a `watch` flag; listeners stop accepting, connections close,
//! and the server then drains the log writer (see `server::run`). This module only carries
//! the signal; it does not decide the order of the steps.

use tokio::sync::watch;

/// A cheap-clone shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self {
            tx: std::sync::Arc::new(watch::Sender::new(false)),
        }
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether it has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A receiver for `select!` loops and background tasks.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Resolves once the signal fires.
    pub async fn wait(&self) {
        let mut rx = self.subscribe();
        // An error means the sender is gone, which also means shutdown.
        let _ = rx.wait_for(|&fired| fired).await;
    }
}

/// Handles SIGINT and SIGTERM from the moment it is called (inside the runtime), so a signal
/// that arrives before the returned future is polled is neither lost nor fatal (the default
/// action would kill the process without draining); the future resolves on the first.
pub fn os_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Waits up to `within` for every task in `tasks` to finish, then aborts those still running.
/// Returns whether all finished in time. Used by every listener at shutdown.
pub async fn drain(tasks: &mut tokio::task::JoinSet<()>, within: std::time::Duration) -> bool {
    let finished =
        tokio::time::timeout(within, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_ok();
    if !finished {
        tasks.abort_all();
    }
    finished
}
