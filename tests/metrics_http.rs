//! The metrics and health endpoints of a real broker over loopback: every scrape is parsed
//! with a Prometheus text-format parser (and checked line by line against the OpenMetrics
//! layout), counters move by what a load did (binary-protocol produce, MQTT publish, a
//! subscriber, a consumer-group commit, retention, a bridge to an unreachable upstream),
//! `/healthz` and `/readyz` answer, and bad requests get errors while the server keeps serving.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http, runtime, temp_dir, Broker};
use outpost::client::{Client, NewRecord};
use outpost_firmware::{AckMode, Compression};
use tokio::sync::mpsc;

/// Records produced over the binary protocol in the load test.
const N: u64 = 600;
/// MQTT messages published in the load test.
const M: u64 = 200;
/// Retention every 100 ms, no disk floor (the machine's free space must not interfere).
const FAST_RETENTION: &str =
    "[retention]\ncheck_interval_ms = 100\nmin_free_bytes = 0\nmin_free_percent = 0\n";
/// Longest wait for something the broker does in the background.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Scraping and parsing

/// One parsed scrape.
struct Scrape {
    text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    /// The value of the series `name` with exactly `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| s.metric == name && s.labels.len() == labels.len())
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    /// As `find`, panicking with the scrape when the series is missing.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{}", self.text))
    }

    /// The cumulative buckets `(le, count)` of histogram `name`.
    fn histogram(&self, name: &str) -> Vec<(f64, f64)> {
        let s = self
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no histogram {name} in:\n{}", self.text));
        match &s.value {
            prometheus_parse::Value::Histogram(b) => {
                b.iter().map(|c| (c.less_than, c.count)).collect()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Every counter series (`*_total`), by name and labels.
    fn counters(&self) -> HashMap<String, f64> {
        self.samples
            .iter()
            .filter(|s| s.metric.ends_with("_total"))
            .filter_map(|s| {
                let mut labels: Vec<_> = s.labels.iter().collect();
                labels.sort();
                let v = match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                    _ => return None,
                };
                Some((format!("{}{labels:?}", s.metric), v))
            })
            .collect()
    }
}

/// GET /metrics at `addr`, checked and parsed.
fn scrape(addr: &str) -> Scrape {
    let a = http::get(addr, "/metrics");
    assert_eq!(a.status, 200, "{}", a.body);
    let ctype = a.header("content-type").unwrap_or_default();
    assert!(
        ctype.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ctype}"
    );
    check_layout(&a.body);
    let lines = a.body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("parses");
    assert!(!parsed.samples.is_empty());
    Scrape {
        text: a.body,
        samples: parsed.samples,
    }
}

/// Checks the exposition line by line: every family has HELP then TYPE once, every sample
/// belongs to the family declared last (with the suffixes its type allows) and has a number,
/// names are ours or the standard `process_` ones, and `# EOF` ends it.
fn check_layout(text: &str) {
    assert!(text.ends_with("# EOF\n"), "no EOF at the end");
    let mut declared = std::collections::HashSet::new();
    let mut family: Option<(String, String)> = None;
    let mut help_for = String::new();
    for line in text.lines().take_while(|l| *l != "# EOF") {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help_for = rest.split(' ').next().unwrap().to_owned();
            assert!(
                !rest[help_for.len()..].trim().is_empty(),
                "empty HELP: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(name, help_for, "TYPE without HELP before it: {line}");
            assert!(declared.insert(name.to_owned()), "family twice: {name}");
            assert!(
                name.starts_with("outpost_") || name.starts_with("process_"),
                "{name}"
            );
            assert!(
                !name.ends_with("_total"),
                "family named with _total: {name}"
            );
            family = Some((name.to_owned(), kind.to_owned()));
        } else {
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let (name, kind) = family.as_ref().expect("sample before any TYPE");
            let metric = line.split(['{', ' ']).next().unwrap();
            let suffix = metric
                .strip_prefix(name.as_str())
                .unwrap_or_else(|| panic!("sample {metric} outside its family {name}"));
            let allowed: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "gauge" => &[""],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                other => panic!("unexpected type {other}"),
            };
            assert!(allowed.contains(&suffix), "{line} in a {kind}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        }
    }
}

/// Polls /metrics until `done` holds (bounded by [`WAIT`]); returns that scrape.
fn scrape_until(b: &Broker, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(&b.metrics_addr);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {WAIT:?}; last scrape:\n{}",
            s.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// Clients

fn records(n: u64, timestamp_ms: Option<u64>) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            value: format!("reading-{i}").into_bytes(),
            timestamp_ms,
            ..NewRecord::default()
        })
        .collect()
}

type Events = mpsc::UnboundedReceiver<rumqttc::Event>;

/// A rumqttc v3.1.1 client whose event loop runs in a task; returns after CONNACK.
async fn mqtt(b: &Broker, id: &str, manual_acks: bool) -> (rumqttc::AsyncClient, Events) {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", b.mqtt_port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_manual_acks(manual_acks);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 256);
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    next_event(&mut rx, "CONNACK", |e| {
        matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))
    })
    .await;
    (client, rx)
}

/// Waits (bounded) for the next event matching `want`.
async fn next_event(rx: &mut Events, what: &str, want: impl Fn(&rumqttc::Event) -> bool) {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = rx.recv().await {
            if want(&e) {
                return;
            }
        }
        panic!("{what}: event loop ended");
    })
    .await;
    assert!(found.is_ok(), "{what}: not within {WAIT:?}");
}

/// Waits (bounded) until `n` events matching `want` have arrived.
async fn count_events(rx: &mut Events, n: u64, what: &str, want: impl Fn(&rumqttc::Event) -> bool) {
    for i in 0..n {
        next_event(rx, &format!("{what} #{i}"), &want).await;
    }
}

fn is_publish(e: &rumqttc::Event) -> bool {
    matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)))
}

fn is_puback(e: &rumqttc::Event) -> bool {
    matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))
}

fn is_suback(e: &rumqttc::Event) -> bool {
    matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))
}

/// A loopback port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn counters_move_by_what_a_load_did() {
    let dir = temp_dir();
    let extra = format!(
        "[[bridge]]\nname = \"up\"\nupstream = \"mqtt://127.0.0.1:{}\"\n\
         reconnect_min_ms = 100\nreconnect_max_ms = 500\nconnect_timeout_secs = 1\n\
         [[bridge.route]]\ntopic = \"readings\"\n",
        dead_port()
    );
    let b = Broker::start(&dir.path().join("data"), &extra);
    let health = http::get(&b.metrics_addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http::get(&b.metrics_addr, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    let before = scrape(&b.metrics_addr);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        before.get("outpost_build_info", &[("version", version)]),
        1.0
    );
    assert_eq!(before.get("outpost_log_records_appended_total", &[]), 0.0);
    for p in ["wire", "mqtt"] {
        assert_eq!(before.get("outpost_connections", &[("protocol", p)]), 0.0);
        assert_eq!(
            before.get("outpost_messages_received_total", &[("protocol", p)]),
            0.0
        );
    }
    assert!(before.get("outpost_disk_free_bytes", &[]) > 0.0);
    assert!(before.get("outpost_log_file_size_bytes", &[]) > 0.0);
    assert!(before.get("process_resident_memory_bytes", &[]) > 0.0);
    // The bridge exists from the start; its route waits for its topic.
    assert_eq!(
        before.get("outpost_bridge_connected", &[("bridge", "up")]),
        0.0
    );

    // Scrapes running through the whole load: each parses, no counter ever goes down.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (addr, stop) = (b.metrics_addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last: HashMap<String, f64> = HashMap::new();
            let mut scrapes = 0u32;
            while !stop.load(Ordering::Relaxed) && scrapes < 5_000 {
                let now = scrape(&addr).counters();
                for (k, v) in &now {
                    let was = last.get(k).copied().unwrap_or(0.0);
                    assert!(*v >= was, "counter {k} went down: {was} -> {v}");
                }
                last = now;
                scrapes += 1;
            }
            scrapes
        })
    };

    let rt = runtime();
    rt.block_on(async {
        let c = Client::connect(&b.addr, "loader").await.unwrap();
        c.create_topic("readings", 1, None, None, Compression::None)
            .await
            .unwrap();
        let (sub, mut sub_rx) = mqtt(&b, "metrics-sub", false).await;
        sub.subscribe("sensors/#", rumqttc::QoS::AtMostOnce)
            .await
            .unwrap();
        next_event(&mut sub_rx, "SUBACK", is_suback).await;
        let (publisher, mut pub_rx) = mqtt(&b, "metrics-pub", false).await;

        for i in 0..N / 100 {
            let ack = c
                .produce("readings", Some(0), &records(100, None), AckMode::Commit)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(ack.base_offset, i * 100);
            if i == N / 200 {
                // Half way: a scrape sees at least what is acknowledged so far.
                let mid = tokio::task::block_in_place(|| scrape(&b.metrics_addr));
                let appended = mid.get("outpost_log_records_appended_total", &[]);
                assert!(appended >= ((i + 1) * 100) as f64, "{appended}");
                assert_eq!(mid.get("outpost_connections", &[("protocol", "mqtt")]), 2.0);
                assert_eq!(mid.get("outpost_mqtt_clients_connected", &[]), 2.0);
            }
        }
        for i in 0..M {
            publisher
                .publish(
                    format!("sensors/s{}", i % 4),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    vec![b'x'; 32],
                )
                .await
                .unwrap();
        }
        count_events(&mut pub_rx, M, "PUBACK", is_puback).await;
        count_events(&mut sub_rx, M, "delivery", is_publish).await;
        stop.store(true, Ordering::Relaxed);
        let during = tokio::task::block_in_place(|| background.join().unwrap());
        assert!(during >= 1);

        let after = tokio::task::block_in_place(|| scrape(&b.metrics_addr));
        let delta = |name: &str, labels: &[(&str, &str)]| {
            after.get(name, labels) - before.find(name, labels).unwrap_or(0.0)
        };
        let (n, m) = (N as f64, M as f64);
        assert_eq!(delta("outpost_log_records_appended_total", &[]), n + m);
        assert_eq!(
            delta("outpost_messages_received_total", &[("protocol", "wire")]),
            n
        );
        assert_eq!(
            delta("outpost_messages_received_total", &[("protocol", "mqtt")]),
            m
        );
        assert_eq!(
            delta("outpost_messages_sent_total", &[("protocol", "mqtt")]),
            m
        );
        assert_eq!(
            delta("outpost_mqtt_payload_received_bytes_total", &[]),
            32.0 * m
        );
        assert_eq!(
            delta("outpost_mqtt_payload_sent_bytes_total", &[]),
            32.0 * m
        );
        assert_eq!(
            after.get(
                "outpost_log_end_offset",
                &[("topic", "readings"), ("partition", "0")]
            ),
            n
        );
        assert_eq!(
            after.get(
                "outpost_log_end_offset",
                &[("topic", "sensors"), ("partition", "0")]
            ),
            m
        );
        assert_eq!(
            after.get(
                "outpost_log_start_offset",
                &[("topic", "readings"), ("partition", "0")]
            ),
            0.0
        );
        assert!(
            after.get(
                "outpost_log_size_bytes",
                &[("topic", "readings"), ("partition", "0")]
            ) > n
        );
        assert!(
            after.get(
                "outpost_log_batches",
                &[("topic", "sensors"), ("partition", "0")]
            ) >= 1.0
        );
        assert!(delta("outpost_log_appended_bytes_total", &[]) > n + m);
        for p in ["wire", "mqtt"] {
            assert!(delta("outpost_network_received_bytes_total", &[("protocol", p)]) > 0.0);
            assert!(delta("outpost_network_sent_bytes_total", &[("protocol", p)]) > 0.0);
            assert!(delta("outpost_connections_accepted_total", &[("protocol", p)]) >= 1.0);
            assert_eq!(
                delta("outpost_connections_refused_total", &[("protocol", p)]),
                0.0
            );
        }
        assert_eq!(
            after.get("outpost_connections", &[("protocol", "wire")]),
            1.0
        );
        assert_eq!(
            after.get("outpost_connections", &[("protocol", "mqtt")]),
            2.0
        );
        // Commits: durable ones fsync; the histogram counts every commit.
        let commits = delta("outpost_log_commits_total", &[]);
        assert!(commits >= 1.0);
        let durable = after.get("outpost_log_durable_commits_total", &[]);
        assert!(durable >= 1.0);
        assert!(after.get("outpost_log_fsyncs_total", &[]) >= durable);
        assert!(delta("outpost_log_file_written_bytes_total", &[]) > n);
        let buckets = after.histogram("outpost_log_commit_duration_seconds");
        assert_eq!(buckets.len(), 13, "{buckets:?}");
        assert!(buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        let count = after.get("outpost_log_commit_duration_seconds_count", &[]);
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
        assert!(count >= after.get("outpost_log_commits_total", &[]));
        assert!(after.get("outpost_log_commit_duration_seconds_sum", &[]) > 0.0);
        assert_eq!(after.get("outpost_mqtt_dropped_messages_total", &[]), 0.0);

        // A consumer group's lag follows its commit.
        c.commit_offset("g1", "readings", 0, 100).await.unwrap();
        let g = [("group", "g1"), ("topic", "readings"), ("partition", "0")];
        let s = tokio::task::block_in_place(|| scrape(&b.metrics_addr));
        assert_eq!(s.get("outpost_consumer_group_offset", &g), 100.0);
        assert_eq!(s.get("outpost_consumer_group_lag", &g), n - 100.0);
        drop((sub, publisher));
    });

    // The bridge cannot connect: its route's partition lags by every record, none forwarded.
    let route = [("bridge", "up"), ("route", "readings"), ("partition", "0")];
    let s = scrape_until(&b, "bridge lag of every record", |s| {
        s.find("outpost_bridge_lag_records", &route) == Some(N as f64)
            && s.find("outpost_bridge_connect_attempts_total", &[("bridge", "up")])
                .is_some_and(|a| a >= 1.0)
    });
    assert_eq!(s.get("outpost_bridge_forwarded_records_total", &route), 0.0);
    assert_eq!(s.get("outpost_bridge_dropped_records_total", &route), 0.0);
    assert!(s.get("outpost_bridge_lag_seconds", &route) >= 0.0);
    assert_eq!(s.get("outpost_bridge_connected", &[("bridge", "up")]), 0.0);
    assert_eq!(
        s.get(
            "outpost_bridge_route_waiting",
            &[("bridge", "up"), ("route", "readings")]
        ),
        0.0
    );
    b.stop();
}

#[test]
fn slow_subscriber_drops_and_retention_deletions_are_counted() {
    let dir = temp_dir();
    // A session may hold 4 unacknowledged deliveries and queue 10 more.
    let extra = format!(
        "{FAST_RETENTION}[mqtt]\nlisten = \"127.0.0.1:0\"\nmax_inflight = 4\nmax_queued_messages = 10\n"
    );
    let b = Broker::start(&dir.path().join("data"), &extra);
    let published = 100;
    runtime().block_on(async {
        // Manual acks never given: the subscriber reads but never acknowledges.
        let (slow, mut slow_rx) = mqtt(&b, "slow-sub", true).await;
        slow.subscribe("sensors/#", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        next_event(&mut slow_rx, "SUBACK", is_suback).await;
        let (publisher, mut pub_rx) = mqtt(&b, "fast-pub", false).await;
        for _ in 0..published {
            publisher
                .publish(
                    "sensors/a",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    vec![b'y'; 16],
                )
                .await
                .unwrap();
        }
        count_events(&mut pub_rx, published, "PUBACK", is_puback).await;
        let s = tokio::task::block_in_place(|| scrape(&b.metrics_addr));
        let full = s.get("outpost_mqtt_queue_full_dropped_messages_total", &[]);
        // At most 4 in flight and 10 queued: the rest of the 100 were dropped.
        assert!(full >= (published - 14) as f64, "{full}");
        assert!(full <= published as f64, "{full}");
        assert!(s.get("outpost_mqtt_dropped_messages_total", &[]) >= full);
        // Dropped deliveries are still in the log.
        assert_eq!(
            s.get(
                "outpost_log_end_offset",
                &[("topic", "sensors"), ("partition", "0")]
            ),
            published as f64
        );
        drop((slow, publisher));

        // Retention: three expired batches go, the fresh one stays.
        let c = Client::connect(&b.addr, "t").await.unwrap();
        c.create_topic("old", 1, Some(3_600_000), None, Compression::None)
            .await
            .unwrap();
        let two_hours_ago = outpost::log::now_ms() - 7_200_000;
        for _ in 0..3 {
            c.produce(
                "old",
                Some(0),
                &records(5, Some(two_hours_ago)),
                AckMode::Commit,
            )
            .await
            .unwrap();
        }
        c.produce("old", Some(0), &records(5, None), AckMode::Commit)
            .await
            .unwrap();
    });
    let old = [("topic", "old"), ("partition", "0")];
    let s = scrape_until(&b, "retention deleting the expired batches", |s| {
        s.find("outpost_log_start_offset", &old) == Some(15.0)
    });
    assert_eq!(s.get("outpost_retention_deleted_records_total", &[]), 15.0);
    assert_eq!(s.get("outpost_retention_deleted_batches_total", &[]), 3.0);
    assert!(s.get("outpost_retention_deleted_bytes_total", &[]) > 0.0);
    assert_eq!(s.get("outpost_log_end_offset", &old), 20.0);
    assert_eq!(s.get("outpost_log_batches", &old), 1.0);
    b.stop();
}

#[test]
fn bad_requests_get_errors_and_the_server_keeps_serving() {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    let addr = b.metrics_addr.clone();

    let head = http::request(&addr, "HEAD", "/metrics");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = http::request(&addr, "POST", "/metrics");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(http::request(&addr, "DELETE", "/healthz").status, 405);
    let missing = http::get(&addr, "/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("/metrics"), "{}", missing.body);
    assert_eq!(http::get(&addr, "/metrics?x=1").status, 200);

    // Garbage, an oversized head, too many headers: an error answer, never a crash.
    let garbage = http::exchange(&addr, b"\x00\x01\x02 not http at all\r\n\r\n").unwrap();
    assert_eq!(http::parse(&garbage).map(|a| a.status), Some(400));
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let huge = http::exchange(&addr, huge.as_bytes()).unwrap();
    assert_eq!(http::parse(&huge).map(|a| a.status), Some(431));
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let many = http::exchange(&addr, many.as_bytes()).unwrap();
    assert_eq!(http::parse(&many).map(|a| a.status), Some(431));

    // A client that stalls inside its request head is cut off (bounded by the header
    // timeout); the exchange ends instead of hanging.
    let stalled = http::exchange(&addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    assert!(stalled.is_ok(), "{stalled:?}");

    // Over the connection limit: an immediate 503, and service resumes once they close.
    let idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Each idle connection is accepted in order; the ninth finds no room.
    let busy = (0..50)
        .map(|_| {
            let raw = http::exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            http::parse(&raw).map(|a| a.status)
        })
        .find(|s| *s == Some(503));
    assert_eq!(busy, Some(Some(503)));
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while http::get(&addr, "/healthz").status != 200 {
        assert!(
            Instant::now() < deadline,
            "no service after the idle connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    scrape(&b.metrics_addr);

    // A second broker on the same metrics port fails, naming the key.
    let other = temp_dir();
    let extra = format!("[metrics]\nlisten = \"{addr}\"\n");
    let err = Broker::try_start(&other.path().join("data"), &extra)
        .err()
        .unwrap();
    assert!(err.contains("[metrics] listen"), "{err}");
    // Disabled: no listener, no banner line.
    let off = Broker::start(&other.path().join("data2"), "[metrics]\nenabled = false\n");
    assert_eq!(off.metrics_addr, "");
    off.stop();
    b.stop();
}

#[test]
fn readyz_answers_stopping_while_the_broker_drains() {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    let addr = b.metrics_addr.clone();
    assert_eq!(http::get(&addr, "/readyz").status, 200);
    let rt = runtime();
    // A long-poll fetch keeps its connection draining (up to 10 s) after SIGTERM.
    let fetch = rt.block_on(async {
        let c = Arc::new(Client::connect(&b.addr, "poller").await.unwrap());
        c.create_topic("quiet", 1, None, None, Compression::None)
            .await
            .unwrap();
        let poller = c.clone();
        let mut f = Box::pin(async move {
            let _ = poller.fetch("quiet", 0, 0, 1 << 16, 30_000).await;
        });
        // One poll queues the fetch frame; the pong to a later ping proves the broker read it.
        tokio::select! {
            biased;
            _ = &mut f => panic!("the long-poll fetch returned at once"),
            _ = std::future::ready(()) => {}
        }
        c.ping().await.unwrap();
        tokio::spawn(f).abort_handle()
    });
    std::process::Command::new("kill")
        .args(["-TERM", &b.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let stopping = loop {
        let raw = http::exchange(&addr, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        let answer = raw.ok().and_then(|r| http::parse(&r));
        match answer {
            Some(a) if a.status == 503 => break a,
            Some(a) => assert_eq!(a.status, 200, "{}", a.body),
            None => panic!("the metrics listener closed before /readyz said stopping"),
        }
        assert!(Instant::now() < deadline, "/readyz never said stopping");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(stopping.body.starts_with("stopping"), "{}", stopping.body);
    // Liveness holds while draining.
    assert_eq!(http::get(&addr, "/healthz").status, 200);
    b.stop();
    // The broker is gone; the fetch ended with an error or is still waiting for one.
    fetch.abort();
}
