//! SIGHUP: re-read the files that can change under a running broker, without a restart and
//! without dropping connections.
//!
//! Each reloadable part implements [`Reload`] and is listed once in [`crate::server`]; on
//! SIGHUP every part reloads in list order. A part that fails keeps what it had and logs why
//! (naming the file and line); the others still reload. Reloadable: the password file and the
//! ACL ([`crate::auth::Security`]), each TLS listener's certificate, key and client CA files
//! ([`crate::tls::ServerTls`]).

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Something SIGHUP re-reads.
pub trait Reload: Send + Sync {
    /// What it is, for the log.
    fn what(&self) -> &'static str;
    /// Re-reads it; on failure keeps the previous state and logs the error.
    fn reload(&self);
}

impl Reload for crate::auth::Security {
    fn what(&self) -> &'static str {
        "password file and ACL"
    }

    fn reload(&self) {
        // Logged and counted by `Security::reload`; the previous files stay on error.
        let _ = crate::auth::Security::reload(self);
    }
}

impl Reload for crate::tls::ServerTls {
    fn what(&self) -> &'static str {
        self.listener()
    }

    fn reload(&self) {
        match crate::tls::ServerTls::reload(self) {
            Ok(()) => tracing::info!(listener = self.listener(), "TLS certificates reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                "TLS reload failed; the previous certificates stay in use"
            ),
        }
    }
}

/// Takes SIGHUP over from its default action (which ends the process). Call before the
/// broker announces itself, so that a SIGHUP right after start reloads instead of killing.
pub fn listen() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Reloads `parts` on every SIGHUP until shutdown.
pub async fn run(mut hup: Signal, parts: Vec<Arc<dyn Reload>>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
            }
            _ = stop.wait_for(|&s| s) => return,
        }
        tracing::info!("SIGHUP: reloading");
        for part in &parts {
            tracing::debug!(part = part.what(), "reloading");
            part.reload();
        }
    }
}
