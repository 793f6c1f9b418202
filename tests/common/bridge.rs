//! What the bridge tests (MQTT and Kafka upstreams) share: loading the edge's log, and reading
//! `outpost bridge status --json`.

use std::time::Duration;

use outpost::client::{Client, NewRecord};
use outpost_firmware::{AckMode, Compression};

use super::upstream::wait_until;
use super::{runtime, Broker};

/// Records per produce request into the edge broker (the unit of its round robin).
pub const CHUNK: u64 = 500;
/// Produce requests in flight into the edge broker.
const PRODUCE_WINDOW: usize = 8;

/// Creates log topic `topic` (if it does not exist) with `partitions` partitions and optional
/// retention bytes, and stores `n` records spread over them, round robin in chunks of 500,
/// each made by `make(i)`. Returns the records per partition.
pub fn produce_spread(
    broker: &Broker,
    topic: &str,
    partitions: u32,
    n: u64,
    retention_bytes: Option<u64>,
    make: impl Fn(u64) -> NewRecord,
) -> Vec<u64> {
    let mut per = vec![0u64; partitions as usize];
    runtime().block_on(async {
        let c = Client::connect(&broker.addr, "bridge-test-producer")
            .await
            .unwrap();
        match c
            .create_topic(topic, partitions, None, retention_bytes, Compression::None)
            .await
        {
            Ok(()) => {}
            Err(e) if e.to_string().contains("exists") => {}
            Err(e) => panic!("create topic: {e}"),
        }
        let mut i = 0u64;
        let mut pending = std::collections::VecDeque::new();
        while i < n {
            let p = ((i / CHUNK) % u64::from(partitions)) as u32;
            let k = CHUNK.min(n - i);
            let records: Vec<NewRecord> = (i..i + k).map(&make).collect();
            pending.push_back(
                c.send_produce(topic, Some(p), &records, AckMode::Commit)
                    .await
                    .unwrap(),
            );
            if pending.len() >= PRODUCE_WINDOW {
                pending.pop_front().unwrap().wait().await.unwrap();
            }
            per[p as usize] += k;
            i += k;
        }
        for p in pending {
            p.wait().await.unwrap();
        }
    });
    per
}

/// `outpost bridge status --json`, first bridge.
pub fn status(broker: &Broker) -> serde_json::Value {
    let out = broker.cli_ok(&["bridge", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// The partitions of route `route` in a bridge status.
pub fn partitions_of(s: &serde_json::Value, route: usize) -> Vec<serde_json::Value> {
    s["routes"][route]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The sum of `field` over every partition of every route.
pub fn total(s: &serde_json::Value, field: &str) -> u64 {
    s["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["partitions"].as_array().cloned().unwrap_or_default())
        .map(|p| p[field].as_u64().unwrap())
        .sum()
}

/// `outpost bridge status --json`, the bridge called `name`.
pub fn status_of(broker: &Broker, name: &str) -> serde_json::Value {
    let out = broker.cli_ok(&["bridge", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .into_iter()
        .flatten()
        .find(|b| b["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no bridge {name:?} in {v}"))
}

/// Waits until every route of the first bridge acknowledged (or counted lost) everything up
/// to the log end and committed its checkpoint there.
pub fn wait_drained(broker: &Broker, timeout: Duration) -> bool {
    wait_until(timeout, || drained(&status(broker)))
}

/// Like [`wait_drained`], for the bridge called `name`.
pub fn wait_drained_of(broker: &Broker, name: &str, timeout: Duration) -> bool {
    wait_until(timeout, || drained(&status_of(broker, name)))
}

/// Whether every route of bridge status `s` is acknowledged and checkpointed at the log end.
fn drained(s: &serde_json::Value) -> bool {
    let routes = s["routes"].as_array().cloned().unwrap_or_default();
    !routes.is_empty()
        && routes.iter().all(|r| {
            let parts = r["partitions"].as_array().cloned().unwrap_or_default();
            !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p["acked"] == p["log_end"] && p["checkpoint"] == p["log_end"])
        })
}
