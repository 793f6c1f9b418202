//! Running password verifications off the async threads, a bounded number at a time.
//!
//! An argon2 verification takes milliseconds of CPU and `m` KiB of memory. After a gateway
//! reboots, hundreds of devices reconnect at once: run them all and the memory multiplies,
//! run them on the async threads and every connection stalls. So at most `concurrency` run
//! at once (each on `spawn_blocking`), at most `max_waiting` more wait for a turn, and any
//! beyond that are answered "busy" at once (MQTT: CONNACK server busy; binary protocol:
//! `BUSY`), to retry after their back-off.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use tokio::sync::Semaphore;

use super::password;

/// Verifications running at once, by default.
pub const DEFAULT_CONCURRENCY: u32 = 2;
/// Verifications waiting for a turn, by default; more are answered busy.
pub const DEFAULT_MAX_WAITING: u32 = 128;

/// The verification could not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many logins are being verified; try again later")]
pub struct Busy;

/// Bounded password verification (a cheap-clone handle).
#[derive(Debug, Clone)]
pub struct Verifier {
    permits: Arc<Semaphore>,
    /// Verifications waiting or running.
    in_progress: Arc<AtomicUsize>,
    /// Bound of `in_progress`: concurrency plus the waiting places.
    limit: usize,
}

/// Takes a place back when dropped (also when the waiting call is cancelled).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier {
    /// A verifier running `concurrency` (at least 1) verifications at once with
    /// `max_waiting` waiting.
    pub fn new(concurrency: u32, max_waiting: u32) -> Self {
        let concurrency = concurrency.max(1) as usize;
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            in_progress: Arc::new(AtomicUsize::new(0)),
            limit: concurrency + max_waiting as usize,
        }
    }

    /// Whether `password` matches `hash`, verified on a blocking thread when a turn is free.
    pub async fn verify(&self, hash: PasswordHash, password: Vec<u8>) -> Result<bool, Busy> {
        if self.in_progress.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_progress.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _place = Place(&self.in_progress);
        // The semaphore is never closed.
        let _permit = self.permits.acquire().await.map_err(|_| Busy)?;
        // A panic in the verification (there is none on any input) counts as a mismatch.
        Ok(
            tokio::task::spawn_blocking(move || password::verify(&hash, &password))
                .await
                .unwrap_or(false),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn excess_waiters_are_busy() {
        let v = Verifier::new(1, 0);
        let hash = PasswordHash::new(&password::hash_password(b"pw").unwrap()).unwrap();
        assert_eq!(v.verify(hash.clone(), b"pw".to_vec()).await, Ok(true));
        assert_eq!(v.verify(hash.clone(), b"no".to_vec()).await, Ok(false));
        assert_eq!(v.in_progress.load(Ordering::Relaxed), 0);
        // With no waiting place, a call while another runs is busy.
        v.in_progress.fetch_add(1, Ordering::Relaxed);
        assert_eq!(v.verify(hash, b"pw".to_vec()).await, Err(Busy));
        assert_eq!(v.in_progress.load(Ordering::Relaxed), 1);
    }
}
