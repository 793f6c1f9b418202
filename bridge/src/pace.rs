//! Pacing: reconnect backoff with jitter, token buckets for metered links, and a gate that
//! keeps a repeating log event to one line per interval.
//!
//! Each is a few lines of arithmetic over `Instant`s; the crates that offer them (backoff,
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

/// How often an event that can repeat per message or per connection is logged at most.
pub const REPEAT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lets an event that a peer can cause per message (a record the upstream refuses, a publish
/// that cannot be stored) through to the log at most once per interval, and counts the ones
/// it holds back so the next line can say how many there were. The first event always passes.
#[derive(Debug, Clone)]
pub struct LogGate {
    interval: Duration,
    next_at: Option<Instant>,
    held: u64,
}

impl LogGate {
    /// A gate passing at most one event per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            next_at: None,
            held: 0,
        }
    }

    /// `Some(held)`: log this event now, saying `held` similar ones were not logged since the
    /// last line. `None`: do not log it (it is counted).
    pub fn pass(&mut self, now: Instant) -> Option<u64> {
        if self.next_at.is_some_and(|at| now < at) {
            self.held = self.held.saturating_add(1);
            return None;
        }
        self.next_at = Some(now + self.interval);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_gate_passes_one_event_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut g = LogGate::new(Duration::from_secs(10));
        assert_eq!(g.pass(t0), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(g.pass(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(g.pass(t0 + Duration::from_secs(10)), Some(3));
        assert_eq!(g.pass(t0 + Duration::from_secs(11)), None);
        assert_eq!(g.pass(t0 + Duration::from_secs(60)), Some(1));
    }

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
