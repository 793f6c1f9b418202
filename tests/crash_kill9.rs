//! Crash tests: concurrent producers, kill -9 mid-stream, restart, check every acknowledged
//! record. Several cycles per durability mode.
//!
//! - `fsync = "always"`: every acknowledged record is readable at its acknowledged offset with
//!   identical content. Nothing acknowledged is lost.
//! - `fsync = "interval"`: what README promises — a crash loses at most the records
//!   acknowledged in the last `fsync_interval_ms` (plus the commit in progress): every record
//!   acknowledged earlier than that before the kill survives, and every surviving offset holds
//!   exactly the record that was acknowledged for it.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{runtime, temp_dir, Broker};
use outpost::client::{Client, NewRecord};
use outpost_firmware::AckMode;

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 4;
const PRODUCERS: u32 = 4;
const WINDOW: usize = 8;
const CYCLES: u32 = 3;

/// (partition, offset) → (value, when acknowledged).
type Acked = Arc<Mutex<HashMap<(u32, u64), (String, Instant)>>>;

async fn producer(addr: String, id: u32, cycle: u32, stop: Arc<AtomicBool>, acked: Acked) {
    let Ok(client) = Client::connect(&addr, &format!("crash-{id}")).await else {
        return;
    };
    let mut inflight = std::collections::VecDeque::new();
    let mut seq = 0u64;
    // Bounded: the kill ends the connection; the cap ends a runaway loop.
    for _ in 0..1_000_000u32 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        while inflight.len() < WINDOW {
            let n = 1 + (seq % 7) as usize;
            let partition = (seq as u32 + id) % PARTITIONS;
            let values: Vec<String> = (0..n)
                .map(|i| format!("c{cycle}-p{id}-{seq}-{i}"))
                .collect();
            let recs: Vec<NewRecord> = values
                .iter()
                .map(|v| NewRecord {
                    value: v.clone().into_bytes(),
                    key: Some(b"k".to_vec()),
                    ..NewRecord::default()
                })
                .collect();
            let Ok(p) = client
                .send_produce(TOPIC, Some(partition), &recs, AckMode::Commit)
                .await
            else {
                return;
            };
            inflight.push_back((p, values));
            seq += 1;
        }
        let Some((p, values)) = inflight.pop_front() else {
            return;
        };
        let Ok(Some(ack)) = p.wait().await else {
            return;
        };
        let now = Instant::now();
        assert_eq!(ack.count as usize, values.len());
        let mut map = acked.lock().unwrap();
        for (i, v) in values.into_iter().enumerate() {
            let prev = map.insert((ack.partition, ack.base_offset + i as u64), (v, now));
            assert!(
                prev.is_none(),
                "offset {} of partition {} acknowledged twice",
                ack.base_offset + i as u64,
                ack.partition
            );
        }
    }
}

/// Reads every stored record: (partition, offset) → value.
async fn read_all(addr: &str) -> HashMap<(u32, u64), String> {
    let c = Client::connect(addr, "verifier").await.unwrap();
    let info = c.describe_topic(TOPIC).await.unwrap();
    let mut out = HashMap::new();
    for p in info.partition_info {
        let mut next = p.start_offset;
        while next < p.end_offset {
            let f = c.fetch(TOPIC, p.partition, next, 1 << 20, 0).await.unwrap();
            let records = common::records_from(&f.batches, next);
            assert!(!records.is_empty());
            for (offset, value) in records {
                out.insert((p.partition, offset), String::from_utf8(value).unwrap());
                next = offset + 1;
            }
        }
    }
    out
}

/// How a cycle ends the broker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Kill9,
    Sigterm,
}

/// Runs the cycles; `loss_window` is how long before the kill an ack may be lost (None: never).
fn crash_cycles(extra: &str, loss_window: Option<Duration>, run_for: Duration) {
    cycles(extra, loss_window, run_for, Ending::Kill9);
}

fn cycles(extra: &str, loss_window: Option<Duration>, run_for: Duration, ending: Ending) {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let rt = runtime();
    let acked: Acked = Arc::default();
    let mut lost_total = 0usize;
    for cycle in 0..CYCLES {
        let t0 = Instant::now();
        let broker = Broker::start(&data, extra);
        if cycle == 0 {
            rt.block_on(async {
                let c = Client::connect(&broker.addr, "admin").await.unwrap();
                c.create_topic(
                    TOPIC,
                    PARTITIONS,
                    None,
                    None,
                    outpost_firmware::Compression::None,
                )
                .await
                .unwrap();
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..PRODUCERS)
            .map(|id| {
                rt.spawn(producer(
                    broker.addr.clone(),
                    id,
                    cycle,
                    stop.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        // Let load build, vary the kill point per cycle.
        std::thread::sleep(run_for + Duration::from_millis(150 * u64::from(cycle)));
        let killed_at = Instant::now();
        match ending {
            Ending::Kill9 => broker.kill9(),
            // A graceful stop under load: exit status 0 (checked by stop), acks drained.
            Ending::Sigterm => {
                let stderr = broker.stop();
                assert!(!stderr.contains("panicked"), "{stderr}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        let stopped = t0.elapsed();
        rt.block_on(async {
            for t in tasks {
                // A client call must fail promptly once its broker is gone, never hang.
                let done = tokio::time::timeout(Duration::from_secs(10), t).await;
                assert!(
                    done.is_ok(),
                    "cycle {cycle}: a producer hung after the broker went away"
                );
            }
        });
        let producers_done = t0.elapsed();
        let broker = Broker::start(&data, extra);
        let stored = rt.block_on(read_all(&broker.addr));
        eprintln!("cycle {cycle} timing: stopped {stopped:?}, producers done {producers_done:?}, restarted and read {:?}", t0.elapsed());
        let mut map = acked.lock().unwrap();
        let before = map.len();
        let mut lost = Vec::new();
        for (key, (value, at)) in map.iter() {
            match stored.get(key) {
                Some(v) => assert_eq!(
                    v, value,
                    "cycle {cycle}: offset {key:?} holds another record"
                ),
                None => {
                    let window = loss_window.unwrap_or_else(|| {
                        panic!("cycle {cycle}: acknowledged record {key:?} = {value} lost")
                    });
                    let age = killed_at.saturating_duration_since(*at);
                    assert!(age <= window, "cycle {cycle}: record {key:?} acknowledged {age:?} before the kill was lost (allowed: {window:?})");
                    lost.push(*key);
                }
            }
        }
        // Lost offsets will be assigned again to new records.
        for key in &lost {
            map.remove(key);
        }
        lost_total += lost.len();
        assert!(
            before > 100,
            "cycle {cycle}: only {before} records acknowledged; the load did not run"
        );
        eprintln!("cycle {cycle}: {before} acknowledged records checked, {} lost within the allowed window, {} stored", lost.len(), stored.len());
        drop(map);
        broker.stop();
    }
    eprintln!("lost within the window over all cycles: {lost_total}");
}

#[test]
fn kill9_loses_nothing_acknowledged_with_fsync_always() {
    crash_cycles(
        "[log]\nfsync = \"always\"\n",
        None,
        Duration::from_millis(700),
    );
}

#[test]
fn kill9_with_fsync_interval_loses_at_most_the_last_interval() {
    // 200 ms interval; the window allows the interval plus generous scheduling slack.
    let extra = "[log]\nfsync = \"interval\"\nfsync_interval_ms = 200\n";
    crash_cycles(
        extra,
        Some(Duration::from_millis(200 + 3000)),
        Duration::from_millis(1500),
    );
}

#[test]
fn sigterm_under_load_drains_and_loses_nothing() {
    cycles(
        "[log]\nfsync = \"interval\"\nfsync_interval_ms = 5000\n",
        None,
        Duration::from_millis(500),
        Ending::Sigterm,
    );
}
