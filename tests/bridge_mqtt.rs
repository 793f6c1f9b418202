//! The MQTT bridge against a real upstream: a private Mosquitto per test, counted by a real
//! MQTT 5 subscriber on it, with faults injected by killing, stopping and wiping Mosquitto,
//! restarting Outpost with kill -9, and an in-test TCP proxy that cuts the link.
//!
//! What every test checks at the end: per partition, every offset that should arrive did,
//! first arrivals in offset order (re-sends after a reconnect are duplicates, counted), and
//! the bridge's own status agrees.
//!
//! Mosquitto acknowledges QoS 1 from memory, so killing it can lose messages it had acked but
//! not yet delivered to our subscriber — its loss, not the bridge's. Tests that kill it pause
//! the proxy in front of it and wait for the subscriber to go quiet first: what the bridge had
//! in flight at the kill is then exactly what it must re-send.

mod common;

use std::time::Duration;

use common::bridge::{partitions_of, produce_spread, status, total, wait_drained};
use common::upstream::{
    check_complete, wait_until, Mosquitto, MosquittoOpts, Proxy, Subscriber, SubscriberOpts,
};
use common::{runtime, temp_dir, Broker};
use outpost::client::{Client, NewRecord};
use outpost_firmware::AckMode;

/// Generous bound for a drain in CI (2 cores, debug build, tests in parallel).
const DRAIN: Duration = Duration::from_secs(120);

/// The config of a broker with one bridge to `upstream`; `bridge` and `route` are extra keys.
fn bridge_config(upstream: &str, topic: &str, bridge: &str, route: &str) -> String {
    format!(
        r#"
[retention]
check_interval_ms = 200
# Not about disk space: a nearly full build machine must not delete unforwarded records.
min_free_bytes = 0
min_free_percent = 0

[[bridge]]
name = "up"
upstream = "{upstream}"
reconnect_min_ms = 100
reconnect_max_ms = 1000
ack_timeout_secs = 3
connect_timeout_secs = 2
checkpoint_interval_ms = 200
{bridge}

[[bridge.route]]
topic = "{topic}"
upstream_topic = "edge/{{gateway}}/{{topic}}/{{partition}}"
{route}
"#
    )
}

/// A broker in a fresh directory with `bridge_config(upstream, topic, bridge, route)`.
fn start_bridged(
    upstream: &str,
    topic: &str,
    bridge: &str,
    route: &str,
) -> (tempfile::TempDir, Broker) {
    let dir = temp_dir();
    let broker = Broker::start(
        &dir.path().join("data"),
        &bridge_config(upstream, topic, bridge, route),
    );
    (dir, broker)
}

/// Creates `topic` and stores `n` records spread over its partitions (round robin in chunks),
/// with values `"{topic}-{i}"`. Returns the records per partition.
fn produce(
    broker: &Broker,
    topic: &str,
    partitions: u32,
    n: u64,
    retention_bytes: Option<u64>,
) -> Vec<u64> {
    produce_spread(broker, topic, partitions, n, retention_bytes, |j| {
        NewRecord {
            key: None,
            value: format!("{topic}-{j:08}-{}", "x".repeat(40)).into_bytes(),
            timestamp_ms: None,
            headers: Vec::new(),
        }
    })
}

/// Stores one record with `value` in partition 0 of `topic` (binary protocol).
fn produce_one(
    broker: &Broker,
    topic: &str,
    value: &[u8],
) -> Result<Option<outpost::client::Ack>, outpost::client::ClientError> {
    runtime().block_on(async {
        let c = Client::connect(&broker.addr, "bridge-test-device")
            .await
            .unwrap();
        let r = NewRecord {
            key: None,
            value: value.to_vec(),
            timestamp_ms: None,
            headers: Vec::new(),
        };
        c.produce(topic, Some(0), &[r], AckMode::Commit).await
    })
}

/// Waits for the bridge to drain and the subscriber to go quiet, then checks that every
/// partition's offsets `0..per[p]` arrived, first arrivals in order; returns duplicates.
fn drained_and_complete(broker: &Broker, sub: &Subscriber, per: &[u64]) -> Vec<u64> {
    assert!(wait_drained(broker, DRAIN), "drain: {}", status(broker));
    let n: u64 = per.iter().sum();
    assert!(sub.wait_quiet(Duration::from_millis(500), DRAIN) as u64 >= n);
    assert_complete(sub, per)
}

/// Checks that every partition's offsets `0..per[p]` arrived, in order; returns duplicates.
fn assert_complete(sub: &Subscriber, per: &[u64]) -> Vec<u64> {
    let arrivals = sub.arrivals();
    per.iter()
        .enumerate()
        .map(|(p, &n)| {
            let r = check_complete(&arrivals, p as u32, 0..n);
            assert!(r.is_complete_in_order(), "partition {p}: {r}");
            r.duplicates
        })
        .collect()
}

#[test]
fn outage_then_upstream_starts_everything_arrives_in_order() {
    let mut up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    // The subscriber's session is saved; the upstream goes down before the bridge starts.
    up.terminate();
    let (_dir, broker) = start_bridged(&up.url(), "outage", "", "");
    let per = produce(&broker, "outage", 3, 100_000, None);
    // Routes pick up a new topic within a second.
    assert!(wait_until(Duration::from_secs(10), || total(
        &status(&broker),
        "lag_records"
    ) == 100_000));
    let s = status(&broker);
    assert_eq!(s["connected"], false, "{s}");
    assert!(s["last_error"].is_string(), "the outage shows: {s}");
    up.restart();
    assert!(wait_drained(&broker, DRAIN), "drain: {}", status(&broker));
    assert!(
        sub.wait_for_count(100_000, DRAIN),
        "arrived {}",
        sub.count()
    );
    let dups = assert_complete(&sub, &per);
    let s = status(&broker);
    assert_eq!(total(&s, "forwarded"), 100_000);
    assert_eq!(total(&s, "dropped"), 0);
    assert_eq!(s["connected"], true);
    // Every message carries its origin, the upstream topic follows the template.
    let a = &sub.arrivals()[0];
    let o = a.origin.as_ref().expect("origin user properties");
    assert_eq!(o.topic, "outage");
    assert_eq!(
        a.topic,
        format!("edge/{}/outage/{}", o.gateway, o.partition)
    );
    eprintln!("outage: duplicates per partition {dups:?}");
    broker.stop();
}

#[test]
fn upstream_killed_and_wiped_mid_drain_loses_nothing() {
    let mut up = Mosquitto::start(MosquittoOpts::default());
    let proxy = Proxy::start(up.port());
    let sub = Subscriber::start(up.port(), "edge/#");
    let (_dir, broker) = start_bridged(&proxy.url(), "wipe", "", "rate_messages = 20000");
    let per = produce(&broker, "wipe", 2, 60_000, None);
    assert!(
        sub.wait_for_count(10_000, DRAIN),
        "mid-drain: {}",
        sub.count()
    );
    // Freeze the link, let Mosquitto deliver what it accepted, then kill it and its state.
    proxy.pause();
    let before = sub.wait_quiet(Duration::from_millis(500), Duration::from_secs(20));
    assert!(before < 60_000, "the kill must be mid-drain ({before})");
    let inflight = total(&status(&broker), "inflight");
    up.kill9();
    up.wipe_state();
    up.restart();
    // The subscriber's session is gone with the state: it subscribes again before the
    // bridge may reconnect.
    let subacks = sub.subacks();
    assert!(wait_until(Duration::from_secs(20), || sub.subacks()
        > subacks
        && sub.connected()));
    proxy.cut_all();
    proxy.resume();
    drained_and_complete(&broker, &sub, &per);
    let s = status(&broker);
    assert!(s["connects"].as_u64().unwrap() >= 2, "{s}");
    eprintln!("wipe: {inflight} in flight at the kill; re-sent from the log");
    broker.stop();
}

#[test]
fn hung_upstream_is_noticed_and_nothing_is_lost() {
    let mut up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    let (_dir, broker) = start_bridged(
        &up.url(),
        "hung",
        "keep_alive_secs = 30",
        "rate_messages = 20000",
    );
    let per = produce(&broker, "hung", 2, 60_000, None);
    assert!(
        sub.wait_for_count(10_000, DRAIN),
        "mid-drain: {}",
        sub.count()
    );
    up.stop_signal();
    // The watchdog (ack_timeout_secs = 3) must fire well before keep-alive would.
    let noticed = wait_until(Duration::from_secs(20), || {
        let s = status(&broker);
        s["connected"] == false
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("watchdog"))
    });
    let s = status(&broker);
    up.cont();
    assert!(noticed, "the bridge noticed the hung upstream: {s}");
    drained_and_complete(&broker, &sub, &per);
    broker.stop();
}

#[test]
fn outpost_killed_mid_drain_resumes_with_bounded_duplicates() {
    const MAX_INFLIGHT: u64 = 500;
    let up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    let dir = temp_dir();
    let data = dir.path().join("data");
    let config = bridge_config(
        &up.url(),
        "crash",
        "",
        &format!("max_inflight = {MAX_INFLIGHT}\nrate_messages = 20000"),
    );
    let broker = Broker::start(&data, &config);
    let per = produce(&broker, "crash", 3, 60_000, None);
    assert!(
        sub.wait_for_count(15_000, DRAIN),
        "mid-drain: {}",
        sub.count()
    );
    broker.kill9();
    let at_kill = sub.count();
    assert!(at_kill < 60_000, "the kill must be mid-drain ({at_kill})");
    let broker = Broker::start(&data, &config);
    let dups = drained_and_complete(&broker, &sub, &per);
    for (p, d) in dups.iter().enumerate() {
        assert!(
            *d <= MAX_INFLIGHT,
            "partition {p}: {d} duplicates > max_inflight {MAX_INFLIGHT}"
        );
    }
    eprintln!("crash: duplicates per partition after kill -9 {dups:?}");
    broker.stop();
}

#[test]
fn flaky_link_eventually_delivers_everything() {
    let up = Mosquitto::start(MosquittoOpts::default());
    let proxy = Proxy::start(up.port());
    let sub = Subscriber::start(up.port(), "edge/#");
    let (_dir, broker) = start_bridged(&proxy.url(), "flaky", "", "rate_messages = 25000");
    proxy.flaky(Duration::from_millis(300));
    let per = produce(&broker, "flaky", 2, 40_000, None);
    assert!(
        sub.wait_for_count(20_000, DRAIN),
        "under cuts: {}",
        sub.count()
    );
    let cuts = proxy.cuts();
    proxy.steady();
    assert!(cuts >= 3, "the link was cut {cuts} times");
    drained_and_complete(&broker, &sub, &per);
    assert!(status(&broker)["connects"].as_u64().unwrap() >= 3);
    broker.stop();
}

#[test]
fn rejected_credentials_show_in_status_and_back_off() {
    let mut up = Mosquitto::start(MosquittoOpts {
        password: Some(("watcher".into(), "w".into())),
        ..MosquittoOpts::default()
    });
    let sub = Subscriber::start_with(
        up.port(),
        "edge/#",
        SubscriberOpts {
            credentials: Some(("watcher".into(), "w".into())),
            ..SubscriberOpts::default()
        },
    );
    let (_dir, broker) = start_bridged(
        &up.url(),
        "creds",
        "username = \"gw\"\npassword = \"not-yet-valid\"",
        "",
    );
    let per = produce(&broker, "creds", 1, 2_000, None);
    std::thread::sleep(Duration::from_secs(4));
    let s = status(&broker);
    assert_eq!(s["connected"], false, "{s}");
    let err = s["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("refused"), "the error names the refusal: {s}");
    // 4 s with reconnect_min_ms = 100 doubling to 1 s: a busy loop would make hundreds.
    let attempts = s["connect_attempts"].as_u64().unwrap();
    assert!((2..=15).contains(&attempts), "attempts {attempts}: {s}");
    assert_eq!(total(&s, "dropped"), 0);
    assert_eq!(sub.count(), 0);
    // The operator fixes the upstream; the bridge gets in and delivers everything.
    up.add_user("gw", "not-yet-valid");
    up.reload();
    assert!(wait_drained(&broker, DRAIN), "drain: {}", status(&broker));
    assert!(sub.wait_for_count(2_000, DRAIN));
    assert_complete(&sub, &per);
    broker.stop();
}

/// The `[from, to)` ranges of the broker's "fell behind retention" log lines.
fn loss_lines(stderr: &str) -> Vec<(u64, u64)> {
    stderr
        .lines()
        .filter(|l| l.contains("fell behind retention"))
        .map(|l| {
            let num = |key: &str| -> u64 {
                let at = l.find(&format!("{key}=")).unwrap() + key.len() + 1;
                l[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap()
            };
            (num("from"), num("to"))
        })
        .collect()
}

#[test]
fn overflow_drop_oldest_reports_exactly_the_offsets_lost() {
    let mut up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    up.terminate();
    let (_dir, broker) = start_bridged(&up.url(), "drop", "", "");
    // ~1.7 MB into a partition limited to 64 KiB while the upstream is down.
    let per = produce(&broker, "drop", 1, 20_000, Some(64 << 10));
    assert!(
        wait_until(Duration::from_secs(30), || {
            let s = status(&broker);
            partitions_of(&s, 0).first().is_some_and(|p| {
                p["log_start"].as_u64().unwrap() > 0 && p["dropped"] == p["log_start"]
            })
        }),
        "retention trimmed and the bridge counted it: {}",
        status(&broker)
    );
    up.restart();
    assert!(wait_drained(&broker, DRAIN), "drain: {}", status(&broker));
    let s = status(&broker);
    let p = &partitions_of(&s, 0)[0];
    let start = p["log_start"].as_u64().unwrap();
    assert_eq!(p["dropped"].as_u64().unwrap(), start, "{s}");
    assert_eq!(p["forwarded"].as_u64().unwrap(), per[0] - start, "{s}");
    assert!(sub.wait_quiet(Duration::from_millis(500), DRAIN) as u64 >= per[0] - start);
    let r = check_complete(&sub.arrivals(), 0, start..per[0]);
    assert!(r.is_complete_in_order() && r.outside == 0, "{r}");
    // The log names the lost ranges, and they are exactly [0, start).
    let stderr = broker.stop();
    let mut ranges = loss_lines(&stderr);
    ranges.sort_unstable();
    assert!(!ranges.is_empty(), "no loss logged:\n{stderr}");
    let mut next = 0;
    for (from, to) in &ranges {
        assert_eq!(*from, next, "contiguous ranges: {ranges:?}");
        next = *to;
    }
    assert_eq!(next, start, "{ranges:?}");
}

#[test]
fn overflow_refuse_rejects_publishes_until_the_bridge_catches_up() {
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};

    let mut up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    up.terminate();
    let dir = temp_dir();
    let extra = format!(
        "{}\n[topic_defaults]\nretention_bytes = 65536\n",
        bridge_config(&up.url(), "refuse", "", "overflow = \"refuse\"")
    );
    let broker = Broker::start(&dir.path().join("data"), &extra);
    // MQTT 5 publishes into log topic `refuse` (MQTT ingest: the first topic level) until
    // one is refused with Quota exceeded.
    let port = broker.mqtt_port();
    let (accepted, refused) = runtime().block_on(async move {
        let mut o = MqttOptions::new("refuse-sensor", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 64);
        let payload = vec![b'r'; 64];
        let (mut accepted, mut refused) = (0u64, None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut outstanding = 0;
        while refused.is_none() && tokio::time::Instant::now() < deadline {
            if outstanding < 32 {
                client
                    .publish("refuse/dev1/t", QoS::AtLeastOnce, false, payload.clone())
                    .await
                    .unwrap();
                outstanding += 1;
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(5), el.poll()).await {
                Ok(Ok(Event::Incoming(Incoming::PubAck(a)))) => {
                    outstanding -= 1;
                    match a.reason {
                        PubAckReason::Success => accepted += 1,
                        r => refused = Some(r),
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("mqtt: {e}"),
                Err(_) => panic!("no PUBACK in 5 s"),
            }
        }
        (accepted, refused)
    });
    assert_eq!(
        refused,
        Some(PubAckReason::QuotaExceeded),
        "after {accepted} accepted"
    );
    assert!(
        accepted > 500,
        "the limit is 64 KiB, far above 500 × 64 B ({accepted})"
    );
    // The binary protocol is refused with its own code.
    let err = produce_one(&broker, "refuse", b"x").unwrap_err();
    assert!(err.to_string().contains("QUOTA_EXCEEDED"), "{err}");
    // Nothing was deleted unforwarded.
    std::thread::sleep(Duration::from_millis(500));
    let s = status(&broker);
    let p = &partitions_of(&s, 0)[0];
    assert_eq!(p["log_start"], 0, "{s}");
    assert_eq!(p["dropped"], 0, "{s}");
    assert!(p["log_end"].as_u64().unwrap() >= accepted, "{s}");
    eprintln!(
        "refuse: accepted {accepted}, stored {} when refused",
        p["log_end"]
    );
    // The upstream comes back: the bridge drains, and ingest is accepted again.
    up.restart();
    assert!(wait_drained(&broker, DRAIN), "drain: {}", status(&broker));
    let again = produce_one(&broker, "refuse", b"after");
    assert!(
        again.is_ok(),
        "accepted after the bridge caught up: {again:?}"
    );
    // The status is a snapshot refreshed every 250 ms.
    assert!(wait_until(Duration::from_secs(5), || {
        partitions_of(&status(&broker), 0)[0]["log_end"]
            .as_u64()
            .unwrap()
            > accepted
    }));
    assert!(wait_drained(&broker, DRAIN));
    let s = status(&broker);
    let end = partitions_of(&s, 0)[0]["log_end"].as_u64().unwrap();
    assert!(
        end > accepted,
        "end {end}, accepted {accepted}, again {again:?}: {s}"
    );
    assert!(sub.wait_quiet(Duration::from_millis(500), DRAIN) as u64 >= end);
    let r = check_complete(&sub.arrivals(), 0, 0..end);
    assert!(r.is_complete_in_order(), "{r}");
    assert_eq!(total(&s, "dropped"), 0);
    broker.stop();
}

#[test]
fn mqtt_311_json_envelope_and_a_route_starting_at_latest() {
    use base64::Engine as _;
    let up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    let dir = temp_dir();
    let data = dir.path().join("data");
    // Records stored before the route exists are not forwarded by a `latest` route.
    let broker = Broker::start(&data, "");
    produce(&broker, "late", 1, 100, None);
    broker.stop();
    let config = bridge_config(
        &up.url(),
        "late",
        "mqtt_version = \"3.1.1\"\nenvelope = \"json\"",
        "start = \"latest\"",
    );
    let broker = Broker::start(&data, &config);
    assert!(wait_until(Duration::from_secs(10), || {
        partitions_of(&status(&broker), 0)
            .first()
            .is_some_and(|p| p["checkpoint"] == 100)
    }));
    runtime().block_on(async {
        let c = Client::connect(&broker.addr, "late-producer")
            .await
            .unwrap();
        let records: Vec<NewRecord> = (0..50)
            .map(|i| NewRecord {
                key: Some(format!("k{i}").into_bytes()),
                value: format!("v{i}").into_bytes(),
                timestamp_ms: Some(1_700_000_000_000 + i),
                headers: Vec::new(),
            })
            .collect();
        c.produce("late", Some(0), &records, AckMode::Commit)
            .await
            .unwrap();
    });
    assert!(sub.wait_for_count(50, DRAIN), "arrived {}", sub.count());
    assert!(wait_drained(&broker, DRAIN));
    let b64 = base64::engine::general_purpose::STANDARD;
    let arrivals = sub.arrivals();
    assert_eq!(sub.wait_quiet(Duration::from_millis(300), DRAIN), 50);
    for (i, a) in arrivals.iter().enumerate() {
        // 3.1.1 carries no user properties: the origin is in the envelope.
        assert!(a.origin.is_none());
        let env: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
        assert_eq!(env["topic"], "late");
        assert_eq!(env["partition"], 0);
        assert_eq!(env["offset"], 100 + i as u64, "in order");
        assert_eq!(env["timestamp"], 1_700_000_000_000u64 + i as u64);
        assert_eq!(env["key"], b64.encode(format!("k{i}")));
        assert_eq!(env["value"], b64.encode(format!("v{i}")));
        assert_eq!(
            a.topic,
            format!("edge/{}/late/0", env["gateway"].as_str().unwrap())
        );
    }
    broker.stop();
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) -> (common::upstream::MosquittoTls, common::pki::Pki) {
    let pki = common::pki::Pki::new(dir, "upstream-ca");
    let tls = common::upstream::MosquittoTls {
        ca_file: pki.ca.clone(),
        cert_file: pki.server_cert.clone(),
        key_file: pki.server_key.clone(),
        require_client_cert: true,
    };
    (tls, pki)
}

#[test]
fn mqtts_with_a_client_certificate_and_without() {
    let certs_dir = temp_dir();
    let (tls, pki) = certificates(certs_dir.path());
    let up = Mosquitto::start(MosquittoOpts {
        tls: Some(tls.clone()),
        ..MosquittoOpts::default()
    });
    let sub = Subscriber::start(up.port(), "edge/#");
    let ca = tls.ca_file.display().to_string();
    let cert = pki.client_cert.display().to_string();
    let key = pki.client_key.display().to_string();
    // With our client certificate: accepted, everything arrives.
    let (_dir, broker) = start_bridged(
        &up.tls_url(),
        "tls",
        &format!("ca_file = {ca:?}\nclient_cert_file = {cert:?}\nclient_key_file = {key:?}"),
        "",
    );
    let per = produce(&broker, "tls", 1, 1_000, None);
    assert!(wait_drained(&broker, DRAIN), "drain: {}", status(&broker));
    assert!(sub.wait_for_count(1_000, DRAIN));
    assert_complete(&sub, &per);
    broker.stop();
    // Without one, the upstream refuses the handshake: the status says so, nothing is lost.
    let (_dir, broker) = start_bridged(&up.tls_url(), "notls", &format!("ca_file = {ca:?}"), "");
    produce(&broker, "notls", 1, 10, None);
    assert!(wait_until(Duration::from_secs(10), || {
        let s = status(&broker);
        s["connect_attempts"].as_u64().unwrap() >= 2 && s["last_error"].is_string()
    }));
    let s = status(&broker);
    assert_eq!(s["connected"], false, "{s}");
    assert_eq!(total(&s, "dropped"), 0);
    assert_eq!(total(&s, "acked"), 0);
    eprintln!("without a client certificate: {}", s["last_error"]);
    broker.stop();
}

/// CPU time (user + system) of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_record_the_upstream_cannot_take_is_skipped_and_an_idle_bridge_sleeps() {
    let up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    let (_dir, broker) = start_bridged(&up.url(), "poison", "", "");
    // Offset 1 carries a header longer than an MQTT 5 user property can be.
    runtime().block_on(async {
        let c = Client::connect(&broker.addr, "poison-producer")
            .await
            .unwrap();
        let rec = |v: &str, header: usize| NewRecord {
            key: None,
            value: v.as_bytes().to_vec(),
            timestamp_ms: None,
            headers: vec![("note".into(), vec![b'n'; header])],
        };
        let records = [rec("before", 1), rec("poison", 70_000), rec("after", 1)];
        c.produce("poison", Some(0), &records, AckMode::Commit)
            .await
            .unwrap();
    });
    assert!(wait_drained(&broker, DRAIN), "drain: {}", status(&broker));
    assert_eq!(sub.wait_quiet(Duration::from_millis(300), DRAIN), 2);
    let offsets: Vec<u64> = sub
        .arrivals()
        .iter()
        .map(|a| a.origin.as_ref().unwrap().offset)
        .collect();
    assert_eq!(offsets, [0, 2]);
    let s = status(&broker);
    let p = &partitions_of(&s, 0)[0];
    assert_eq!(p["dropped"], 1, "{s}");
    assert_eq!(p["last_loss"], serde_json::json!([1, 2]), "{s}");
    assert_eq!(
        s["connects"], 1,
        "no reconnect for a record that can never go: {s}"
    );
    // Idle past the watchdog's timeout (3 s): the bridge must sleep, not spin.
    let before = cpu_ticks(broker.pid());
    std::thread::sleep(Duration::from_secs(5));
    let used = cpu_ticks(broker.pid()) - before;
    assert!(used < 100, "{used} ticks of CPU in 5 idle seconds");
    broker.stop();
}

#[test]
fn a_topic_deleted_and_created_again_is_forwarded_from_zero() {
    let up = Mosquitto::start(MosquittoOpts::default());
    let sub = Subscriber::start(up.port(), "edge/#");
    let (_dir, broker) = start_bridged(&up.url(), "again", "", "");
    produce(&broker, "again", 1, 10, None);
    assert!(sub.wait_for_count(10, DRAIN));
    broker.cli_ok(&["topics", "delete", "again"]);
    assert!(wait_until(Duration::from_secs(10), || {
        status(&broker)["routes"][0]["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("deleted"))
    }));
    produce(&broker, "again", 1, 5, None);
    assert!(sub.wait_for_count(15, DRAIN), "arrived {}", sub.count());
    let second: Vec<u64> = sub.arrivals()[10..]
        .iter()
        .map(|a| a.origin.as_ref().unwrap().offset)
        .collect();
    assert_eq!(second, [0, 1, 2, 3, 4]);
    broker.stop();
}

#[test]
fn a_route_the_upstream_refuses_for_good_does_not_stall_the_bridge() {
    // Anonymous clients may publish under edge/+/ok/# only and read everything.
    let up = Mosquitto::start(MosquittoOpts {
        acl: Some("topic read #\ntopic write edge/+/ok/#\n".into()),
        ..MosquittoOpts::default()
    });
    let sub = Subscriber::start(up.port(), "edge/#");
    let dir = temp_dir();
    let config = format!(
        "{}\n[[bridge.route]]\ntopic = \"denied\"\nupstream_topic = \"edge/{{gateway}}/denied/{{partition}}\"\n",
        bridge_config(&up.url(), "ok", "", "")
    );
    let broker = Broker::start(&dir.path().join("data"), &config);
    produce(&broker, "denied", 1, 20, None);
    let per = produce(&broker, "ok", 1, 500, None);
    let routes_done = || {
        let s = status(&broker);
        s["routes"].as_array().unwrap().iter().all(|r| {
            let parts = r["partitions"].as_array().unwrap();
            !parts.is_empty() && parts.iter().all(|p| p["acked"] == p["log_end"])
        })
    };
    assert!(wait_until(DRAIN, routes_done), "{}", status(&broker));
    assert!(sub.wait_for_count(500, DRAIN));
    assert_complete(&sub, &per);
    let s = status(&broker);
    let denied = &s["routes"][1]["partitions"][0];
    assert_eq!(denied["dropped"], 20, "{s}");
    assert_eq!(denied["last_loss"], serde_json::json!([0, 20]), "{s}");
    assert_eq!(s["connects"], 1, "refusals for good do not reconnect: {s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("NotAuthorized"),
        "{s}"
    );
    broker.stop();
}
