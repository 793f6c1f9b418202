//! What `outpost bridge status` shows: a snapshot per bridge, kept fresh by its forwarder.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One bridge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BridgeStatus {
    /// The bridge's name.
    pub name: String,
    /// The upstream URL (no credentials).
    pub upstream: String,
    /// The client id used upstream.
    pub client_id: String,
    /// Connected upstream now.
    pub connected: bool,
    /// Since when (ms since the Unix epoch) the connection is in its current state.
    pub since_ms: u64,
    /// Connection attempts so far (since start).
    pub connect_attempts: u64,
    /// Connections that reached CONNACK so far.
    pub connects: u64,
    /// Delay before the next attempt while disconnected, ms.
    pub next_attempt_in_ms: Option<u64>,
    /// The last error (connection refused, bad credentials, watchdog, ...).
    pub last_error: Option<String>,
    /// When the last error happened (ms since the Unix epoch).
    pub last_error_ms: Option<u64>,
    /// The routes.
    pub routes: Vec<RouteStatus>,
}

/// One route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The route's name.
    pub name: String,
    /// The log topic.
    pub topic: String,
    /// The upstream topic template.
    pub upstream_topic: String,
    /// Why the route is not forwarding (for example its topic does not exist yet).
    pub waiting: Option<String>,
    /// What keeps the upstream from taking the route's records (for example its Kafka topic
    /// does not exist), naming the upstream topic.
    #[serde(default)]
    pub upstream_problem: Option<String>,
    /// The partitions.
    pub partitions: Vec<PartitionStatus>,
}

/// One partition of a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// The durable checkpoint: where forwarding resumes after a restart.
    pub checkpoint: u64,
    /// Everything below this is acknowledged upstream.
    pub acked: u64,
    /// Records sent and not yet acknowledged.
    pub inflight: u64,
    /// The log start offset.
    pub log_start: u64,
    /// The log end offset.
    pub log_end: u64,
    /// Records not yet acknowledged upstream (`log_end - acked`).
    pub lag_records: u64,
    /// Age of the oldest record not yet acknowledged, seconds (0 when none).
    pub lag_secs: f64,
    /// Records acknowledged upstream since the route began.
    pub forwarded: u64,
    /// Records lost to retention (or too large for the upstream) since the route began.
    pub dropped: u64,
    /// The last range of offsets lost, `[start, end)`.
    pub last_loss: Option<(u64, u64)>,
    /// The upstream partition of the last acknowledged record (Kafka).
    #[serde(default)]
    pub upstream_partition: Option<u32>,
    /// The upstream offset of the last acknowledged record (Kafka).
    #[serde(default)]
    pub upstream_offset: Option<u64>,
}

/// The status of every bridge, shared between the forwarders and whoever reports it.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Mutex<Vec<BridgeStatus>>>,
}

impl StatusBoard {
    /// An empty board (no bridges configured).
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every bridge's status, in configuration order.
    pub fn snapshot(&self) -> Vec<BridgeStatus> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds a bridge's slot; returns its index for [`StatusBoard::update`].
    pub(crate) fn register(&self, status: BridgeStatus) -> usize {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        v.push(status);
        v.len() - 1
    }

    /// Replaces a bridge's status.
    pub(crate) fn update(&self, index: usize, f: impl FnOnce(&mut BridgeStatus)) {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = v.get_mut(index) {
            f(s);
        }
    }

    /// The snapshot as JSON (what the `BridgeStatus` admin frame carries).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.snapshot()).unwrap_or_else(|_| "[]".to_owned())
    }
}
