//! Liveness and readiness: what `/healthz` and `/readyz` answer.
//!
//! The server moves the state forward ([`Readiness::Starting`] while the log is opened and
//! recovered and the listeners are bound, [`Readiness::Ready`] while it serves,
//! [`Readiness::Stopping`] from the shutdown signal on); the HTTP listener only reads it. This
//! module holds no I/O.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Opening and recovering the log, binding the listeners.
    Starting,
    /// Serving.
    Ready,
    /// Draining connections and the log writer.
    Stopping,
}

/// An HTTP status and plain-text body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Body (one line).
    pub body: &'static str,
}

/// The shared readiness state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    state: Arc<AtomicU8>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A server that is starting.
    pub fn new() -> Self {
        Self {
            state: Arc::new(AtomicU8::new(Readiness::Starting as u8)),
        }
    }

    /// Moves to `to`. Stopping is final: a late `Ready` does not undo it.
    pub fn set(&self, to: Readiness) {
        if to == Readiness::Stopping {
            self.state.store(to as u8, Ordering::Release);
            return;
        }
        // Only the server's start-up sets Ready, before any stop; the CAS keeps it from
        // overwriting a Stopping that raced it.
        let _ = self.state.compare_exchange(
            Readiness::Starting as u8,
            to as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The current state.
    pub fn get(&self) -> Readiness {
        match self.state.load(Ordering::Acquire) {
            s if s == Readiness::Ready as u8 => Readiness::Ready,
            s if s == Readiness::Stopping as u8 => Readiness::Stopping,
            _ => Readiness::Starting,
        }
    }

    /// `/healthz`: the process is alive and its HTTP listener answers.
    pub fn liveness(&self) -> Answer {
        Answer {
            status: 200,
            body: "ok\n",
        }
    }

    /// `/readyz`: 200 while serving; 503 while starting and while stopping.
    pub fn readiness(&self) -> Answer {
        match self.get() {
            Readiness::Ready => Answer {
                status: 200,
                body: "ready\n",
            },
            Readiness::Starting => Answer {
                status: 503,
                body: "starting: opening the log\n",
            },
            Readiness::Stopping => Answer {
                status: 503,
                body: "stopping: draining connections and the log writer\n",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_start_and_stop() {
        let h = Health::new();
        assert_eq!(h.readiness().status, 503);
        assert_eq!(h.liveness().status, 200);
        h.set(Readiness::Ready);
        assert_eq!(
            h.readiness(),
            Answer {
                status: 200,
                body: "ready\n"
            }
        );
        h.set(Readiness::Stopping);
        assert_eq!(h.readiness().status, 503);
        assert!(h.readiness().body.starts_with("stopping"));
        assert_eq!(h.liveness().status, 200);
    }

    #[test]
    fn stopping_is_final() {
        let h = Health::new();
        h.set(Readiness::Stopping);
        h.set(Readiness::Ready);
        assert_eq!(h.get(), Readiness::Stopping);
    }
}
