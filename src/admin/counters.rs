//! Counters that the serving layers update on their hot paths and the metrics read at scrape
//! time: per-listener connection and traffic counts, and a fixed-bucket latency histogram.
//!
//! Everything here is a relaxed atomic: updating costs one uncontended `fetch_add`, never a
//! lock, and a scrape reads a value that may be a few increments stale. This module only counts;
//! [`crate::admin::metrics`] names and exposes the numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Connections and traffic of one listener (one protocol).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    accepted: AtomicU64,
    open: AtomicU64,
    refused: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    tls_handshake_failures: AtomicU64,
}

/// The values of a [`ConnectionStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionSnapshot {
    /// TCP connections accepted since start (refused ones included).
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections turned away because the listener's connection limit was reached.
    pub refused: u64,
    /// Bytes read from the sockets.
    pub bytes_received: u64,
    /// Bytes written to the sockets.
    pub bytes_sent: u64,
    /// Messages received, for protocols that count them here (the binary protocol: records
    /// in produce frames; MQTT counts PUBLISH packets in [`crate::mqtt::broker::MqttStats`]).
    pub messages_received: u64,
    /// TLS handshakes that failed (a TLS listener): timeouts, plain-TCP clients, refused or
    /// missing client certificates.
    pub tls_handshake_failures: u64,
}

/// Counts one connection as open until it is dropped (see [`ConnectionStats::opened`]).
#[derive(Debug)]
pub struct OpenConnection {
    stats: std::sync::Arc<ConnectionStats>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionStats {
    /// Counts an accepted connection, open until the returned guard is dropped.
    pub fn opened(self: &std::sync::Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            stats: self.clone(),
        }
    }

    /// Counts a connection refused for the connection limit.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts bytes read from a socket.
    pub fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts bytes written to a socket.
    pub fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts messages received (see [`ConnectionSnapshot::messages_received`]).
    pub fn messages(&self, count: u64) {
        self.messages_received.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts a failed TLS handshake.
    pub fn handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> ConnectionSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnectionSnapshot {
            accepted: get(&self.accepted),
            open: get(&self.open),
            refused: get(&self.refused),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
            messages_received: get(&self.messages_received),
            tls_handshake_failures: get(&self.tls_handshake_failures),
        }
    }
}

/// Upper bounds of the commit-latency buckets, in microseconds: from a fast fsync on an SSD
/// (0.5 ms) to a slow one on a worn SD card (2 s), roughly ×2 per step. Longer commits land
/// in the `+Inf` bucket.
pub const LATENCY_BOUNDS_MICROS: [u64; 12] = [
    500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
    2_000_000,
];

/// A histogram of durations with the fixed buckets [`LATENCY_BOUNDS_MICROS`] (plus `+Inf`).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Non-cumulative counts: `buckets[i]` counts durations in `(bound[i-1], bound[i]]`; the
    /// last one those above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

/// The values of a [`LatencyHistogram`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observed durations, seconds.
    pub sum_secs: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound in seconds, non-cumulative count)`, the last bound `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = bucket_index(micros);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The current values. The count is the sum of the buckets read, so the two agree.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = LATENCY_BOUNDS_MICROS
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(b, c)| (b, c.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: buckets.iter().map(|b| b.1).sum(),
            buckets,
        }
    }
}

/// The bucket of a duration: the first bound at or above it, else `+Inf`.
fn bucket_index(micros: u64) -> usize {
    LATENCY_BOUNDS_MICROS
        .iter()
        .position(|&b| micros <= b)
        .unwrap_or(LATENCY_BOUNDS_MICROS.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bounds_are_ascending() {
        assert!(LATENCY_BOUNDS_MICROS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn durations_land_in_the_first_bucket_at_or_above_them() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(500), 0);
        assert_eq!(bucket_index(501), 1);
        assert_eq!(bucket_index(2_000_000), 11);
        assert_eq!(bucket_index(2_000_001), 12);
        assert_eq!(bucket_index(u64::MAX), 12);
    }

    #[test]
    fn snapshot_counts_sum_and_buckets() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert!((s.sum_secs - 5.0033).abs() < 1e-9, "{}", s.sum_secs);
        assert_eq!(s.buckets.len(), 13);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[3], (0.005, 1));
        assert_eq!(s.buckets[12], (f64::INFINITY, 1));
        assert_eq!(s.buckets.iter().filter(|b| b.1 == 0).count(), 10);
    }

    #[test]
    fn open_connections_are_counted_until_dropped() {
        let stats = Arc::new(ConnectionStats::default());
        let a = stats.opened();
        let b = stats.opened();
        stats.refused();
        stats.received(10);
        stats.sent(7);
        stats.messages(3);
        stats.handshake_failed();
        drop(a);
        let s = stats.snapshot();
        assert_eq!(
            s,
            ConnectionSnapshot {
                accepted: 2,
                open: 1,
                refused: 1,
                bytes_received: 10,
                bytes_sent: 7,
                messages_received: 3,
                tls_handshake_failures: 1,
            }
        );
        drop(b);
        assert_eq!(stats.snapshot().open, 0);
    }
}
