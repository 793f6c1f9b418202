//! Pacing: reconnect backoff with jitter, and token buckets for metered links.
//!
//! Both are a few lines of arithmetic over `Instant`s; the crates that offer them (backoff,
//! governor) bring their own clocks and futures for what the forwarder's single timer does.

use std::time::{Duration, Instant};

/// Capped exponential backoff with jitter: the n-th delay is uniform in
/// `[d/2, d]` with `d = min(max, min · 2ⁿ)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next attempt; counts a failure.
    pub fn next_delay(&mut self) -> Duration {
        let d = self
            .min
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to the first delay (after a connection proved healthy).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A token bucket refilled at `rate` per second, holding at most one second's worth.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A bucket for `rate` per second; `None` when unlimited (0).
    pub fn new(rate: u64, now: Instant) -> Option<Self> {
        (rate > 0).then_some(Self {
            rate: rate as f64,
            tokens: rate as f64,
            at: now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        self.at = now;
    }

    /// Whether a token is available now (does not take it).
    pub fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens > 0.0
    }

    /// Takes `n` tokens (the balance may go negative: a message larger than the rate still
    /// goes, and the next waits accordingly).
    pub fn take(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// When a token will be available again; `None` while one is.
    pub fn ready_at(&self) -> Option<Instant> {
        (self.tokens <= 0.0)
            .then(|| self.at + Duration::from_secs_f64((-self.tokens + 1.0) / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
        assert!(d[3] >= Duration::from_millis(400) && d[3] <= Duration::from_millis(800));
        for x in &d[4..] {
            assert!(*x >= Duration::from_millis(500) && *x <= Duration::from_millis(1000));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn bucket_paces_to_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0).unwrap();
        let mut sent = 0;
        // Simulated clock: 2 s in 10 ms steps.
        for step in 0..200 {
            let now = t0 + Duration::from_millis(10 * step);
            while b.ready(now) {
                b.take(1, now);
                sent += 1;
            }
        }
        // One second of burst plus two seconds of refill.
        assert!((28..=31).contains(&sent), "{sent}");
        assert!(Bucket::new(0, t0).is_none());
    }
}
