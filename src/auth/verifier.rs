//! Running password verifications off the async threads, a bounded number at a time, in
//! bounded memory.
//!
//! An argon2 verification takes milliseconds of CPU and `m` KiB of memory (7 MiB with our
//! parameters). After a gateway reboots, hundreds of devices reconnect at once: run their
//! verifications all at once and the memory multiplies; run them on the async threads and
//! every connection stalls; run them on `spawn_blocking` and each of the pool's threads keeps
//! a freed 7 MiB chunk in its own allocator arena (measured: 237 MiB RSS after 100 logins).
//!
//! So `concurrency` dedicated threads verify, each in one argon2 memory buffer it keeps and
//! reuses (at most `concurrency` × `m` KiB in all, from the first login on); at most
//! `max_waiting` logins wait in a bounded queue, and any beyond are answered busy at once
//! (MQTT: CONNACK server busy; binary protocol: `BUSY`), to retry after their back-off. The
//! threads start with the first verification and end when the [`Verifier`] is dropped.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use tokio::sync::oneshot;

use super::password;

/// Verifications running at once, by default.
pub const DEFAULT_CONCURRENCY: u32 = 2;
/// Verifications waiting for a turn, by default; more are answered busy.
pub const DEFAULT_MAX_WAITING: u32 = 128;

/// The verification could not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many logins are being verified; try again later")]
pub struct Busy;

/// One verification to run.
struct Job {
    hash: PasswordHash,
    password: Vec<u8>,
    reply: oneshot::Sender<bool>,
}

/// Bounded password verification (a cheap-clone handle).
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    concurrency: usize,
    max_waiting: usize,
    /// The queue to the threads, created (and the threads started) at first use.
    queue: OnceLock<SyncSender<Job>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job(..)")
    }
}

impl Verifier {
    /// A verifier running `concurrency` (at least 1) verifications at once with
    /// `max_waiting` waiting.
    pub fn new(concurrency: u32, max_waiting: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                concurrency: concurrency.max(1) as usize,
                max_waiting: max_waiting as usize,
                queue: OnceLock::new(),
            }),
        }
    }

    fn queue(&self) -> &SyncSender<Job> {
        self.inner.queue.get_or_init(|| {
            let (tx, rx) = sync_channel(self.inner.max_waiting);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.inner.concurrency {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("outpost-verify-{i}"))
                    .spawn(move || work(&rx));
                if let Err(e) = spawned {
                    // With no thread at all, logins wait until answered busy by the full
                    // queue: nothing hangs for good.
                    tracing::error!(error = %e, "cannot start a password verification thread");
                }
            }
            tx
        })
    }

    /// Whether `password` matches `hash`, verified on a verification thread when a turn is
    /// free; [`Busy`] when the queue is full.
    pub async fn verify(&self, hash: PasswordHash, password: Vec<u8>) -> Result<bool, Busy> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            hash,
            password,
            reply,
        };
        match self.queue().try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(Busy),
        }
        // A thread that died mid-job (there is no panic on any input) drops the reply.
        Ok(answer.await.unwrap_or(false))
    }
}

/// A verification thread: takes jobs until the verifier is dropped, reusing one buffer.
fn work(rx: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        // Held only while taking a job; a poisoned lock still guards a valid receiver.
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else {
            return;
        };
        if job.reply.is_closed() {
            // The client is gone (connection closed while waiting): skip the work.
            continue;
        }
        let ok = password::verify_in(&job.hash, &job.password, &mut memory);
        let _ = job.reply.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_turns_excess_away() {
        let hash = PasswordHash::new(&password::hash_password(b"pw").unwrap()).unwrap();
        let v = Verifier::new(1, 4);
        assert_eq!(v.verify(hash.clone(), b"pw".to_vec()).await, Ok(true));
        assert_eq!(v.verify(hash.clone(), b"no".to_vec()).await, Ok(false));
        // A burst far beyond the queue: some run, the rest are busy, none hangs.
        let burst: Vec<_> = (0..40)
            .map(|_| {
                let (v, h) = (v.clone(), hash.clone());
                tokio::spawn(async move { v.verify(h, b"pw".to_vec()).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in burst {
            results.push(t.await.unwrap());
        }
        assert!(results.contains(&Ok(true)) && results.contains(&Err(Busy)));
        assert!(results.iter().all(|r| *r == Ok(true) || *r == Err(Busy)));
    }
}
