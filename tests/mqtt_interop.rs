//! Interoperability: real MQTT clients against the real binary on loopback.
//!
//! - `mosquitto_pub` / `mosquitto_sub` (MQTT 3.1.1 and 5): QoS 0/1/2, retained messages,
//!   wills, v5 properties, and the log records (headers) the messages become.
//! - `rumqttc` (v4 = MQTT 3.1.1, and v5): QoS 1/2 round trips, persistent sessions,
//!   session takeover.
//! - Python `paho-mqtt` 2.x (scripts in `tests/python/`): QoS 2, session resumption, shared
//!   subscriptions. `scripts/test.sh` installs the tools; a missing tool fails the test.
//!
//! Every spawned process is killed on drop and every wait is bounded. A subscriber process
//! runs with `-d` so that its "received SUBACK" line tells when publishing may start.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::mqtt::{connect, In, Raw, WAIT};
use common::{header, runtime, temp_dir, Broker, Proc};
use outpost::mqtt::packet::{reason, Protocol};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long a client process may run.
const PROC_TIMEOUT: Duration = Duration::from_secs(20);
/// `-W` of mosquitto_sub: it exits by itself after this many seconds.
const SUB_SECS: &str = "15";

fn start() -> (TempDir, Broker) {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    (dir, broker)
}

// ------------------------------------------------------------------------------------------
// mosquitto clients
// ------------------------------------------------------------------------------------------

/// A mosquitto client command against `b`, checking the tool is there. Its stdout is line
/// buffered (`stdbuf -oL`): into a pipe, stdio would hold the lines back until the exit.
fn mosquitto(tool: &str, b: &Broker, version: &str) -> Command {
    let found = Command::new(tool).arg("--help").output().is_ok();
    assert!(
        found,
        "{tool} is not installed: run scripts/test.sh (it installs mosquitto-clients)"
    );
    let port = b.mqtt_port().to_string();
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", tool, "-h", "127.0.0.1", "-p", &port, "-V", version]);
    cmd
}

/// Starts mosquitto_sub printing `MSG|topic|qos|retain|payload` per message (or `format`),
/// and waits for its SUBACK.
fn sub(b: &Broker, version: &str, args: &[&str], format: Option<&str>) -> Proc {
    let mut cmd = mosquitto("mosquitto_sub", b, version);
    cmd.args([
        "-d",
        "-W",
        SUB_SECS,
        "-F",
        format.unwrap_or("MSG|%t|%q|%r|%p"),
    ]);
    cmd.args(args);
    let mut p = Proc::spawn(cmd);
    p.wait_line(WAIT, |l| l.contains("received SUBACK"));
    p
}

/// Runs mosquitto_pub to completion and asserts it succeeded.
fn publish(b: &Broker, version: &str, args: &[&str]) {
    let mut cmd = mosquitto("mosquitto_pub", b, version);
    cmd.args(args);
    let (status, out, err) = Proc::spawn(cmd).finish(PROC_TIMEOUT);
    assert!(
        status.success(),
        "mosquitto_pub {args:?} failed: {out:?} {err}"
    );
}

/// The `MSG|` lines a finished mosquitto_sub printed.
fn messages(p: Proc) -> Vec<String> {
    let (status, out, err) = p.finish(PROC_TIMEOUT);
    assert!(
        status.success(),
        "mosquitto_sub failed ({status}): {out:?} {err}"
    );
    out.into_iter().filter(|l| l.starts_with("MSG|")).collect()
}

/// QoS 0, 1 and 2 over MQTT 3.1.1 and 5 from mosquitto_pub to mosquitto_sub; every
/// message is in the log with `mqtt.topic`, `mqtt.qos` and no `mqtt.retain`.
#[test]
fn mosquitto_qos_0_1_2_v311_and_v5() {
    let (_dir, b) = start();
    for version in ["mqttv311", "mqttv5"] {
        let filter = format!("mq/{version}/#");
        let s = sub(&b, version, &["-q", "2", "-C", "3", "-t", &filter], None);
        for qos in ["0", "1", "2"] {
            let topic = format!("mq/{version}/q{qos}");
            let payload = format!("hello {version} qos {qos}");
            publish(&b, version, &["-q", qos, "-t", &topic, "-m", &payload]);
        }
        let want: Vec<String> = ["0", "1", "2"]
            .iter()
            .map(|q| format!("MSG|mq/{version}/q{q}|{q}|0|hello {version} qos {q}"))
            .collect();
        assert_eq!(messages(s), want, "{version}");
    }
    let records = b.consume_json("mq", 100);
    assert_eq!(records.len(), 6, "{records:?}");
    for (i, r) in records.iter().enumerate() {
        let (version, qos) = (["mqttv311", "mqttv5"][i / 3], (i % 3).to_string());
        let topic = format!("mq/{version}/q{qos}");
        assert_eq!(r["value"], format!("hello {version} qos {qos}"));
        assert_eq!(header(r, "mqtt.topic"), Some(topic.as_str()));
        assert_eq!(header(r, "mqtt.qos"), Some(qos.as_str()));
        assert_eq!(header(r, "mqtt.retain"), None);
    }
}

/// A retained message (`-r`) reaches a later subscriber with RETAIN=1 and is logged with
/// `mqtt.retain = 1`; an empty retained message (`-n -r`) clears it.
#[test]
fn mosquitto_retained_set_and_cleared() {
    let (_dir, b) = start();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("mr/{version}");
        publish(&b, version, &["-q", "1", "-r", "-t", &topic, "-m", "kept"]);
        let s = sub(&b, version, &["-q", "1", "-C", "1", "-t", &topic], None);
        assert_eq!(messages(s), [format!("MSG|{topic}|1|1|kept")]);
        publish(&b, version, &["-q", "1", "-r", "-n", "-t", &topic]);
        // Nothing retained any more: the first message a new subscriber sees is a live one.
        let s = sub(&b, version, &["-q", "1", "-C", "1", "-t", &topic], None);
        publish(&b, version, &["-q", "1", "-t", &topic, "-m", "live"]);
        assert_eq!(messages(s), [format!("MSG|{topic}|1|0|live")]);
    }
    let records = b.consume_json("mr", 100);
    let got: Vec<(Option<&str>, Option<&str>, &str)> = records
        .iter()
        .map(|r| {
            (
                header(r, "mqtt.topic"),
                header(r, "mqtt.retain"),
                r["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let want: Vec<(Option<&str>, Option<&str>, &str)> = ["mr/mqttv311", "mr/mqttv5"]
        .iter()
        .flat_map(|t| {
            [
                (Some(*t), Some("1"), "kept"),
                (Some(*t), Some("1"), ""),
                (Some(*t), None, "live"),
            ]
        })
        .collect();
    assert_eq!(got, want);
}

/// A will (`--will-topic`, `--will-payload`) fires when its client is killed with SIGKILL
/// and reaches another subscriber, over 3.1.1 and 5.
#[test]
fn mosquitto_will_on_sigkill() {
    let (_dir, b) = start();
    for version in ["mqttv311", "mqttv5"] {
        let will_topic = format!("mw/{version}");
        let watcher = sub(
            &b,
            version,
            &["-q", "1", "-C", "1", "-t", &will_topic],
            None,
        );
        let mut doomed = sub(
            &b,
            version,
            &[
                "-t",
                "mw/unused",
                "--will-topic",
                &will_topic,
                "--will-payload",
                "client died",
                "--will-qos",
                "1",
            ],
            None,
        );
        doomed.kill9();
        assert_eq!(
            messages(watcher),
            [format!("MSG|{will_topic}|1|0|client died")]
        );
    }
}

/// MQTT 5 user properties and content type go through to subscribers unchanged and into
/// the log as headers (`mqtt.content_type`, and each user property under its own name).
#[test]
fn mosquitto_v5_properties_passed_through() {
    let (_dir, b) = start();
    let s = sub(
        &b,
        "mqttv5",
        &["-q", "1", "-C", "1", "-t", "mp/t"],
        Some("MSG|%t|%C|%P|%p"),
    );
    publish(
        &b,
        "mqttv5",
        &[
            "-q",
            "1",
            "-t",
            "mp/t",
            "-m",
            "body",
            "-D",
            "publish",
            "user-property",
            "site",
            "north",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ],
    );
    assert_eq!(messages(s), ["MSG|mp/t|text/plain|site:north|body"]);
    let records = b.consume_json("mp", 10);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["value"], "body");
    assert_eq!(header(r, "mqtt.topic"), Some("mp/t"));
    assert_eq!(header(r, "mqtt.qos"), Some("1"));
    assert_eq!(header(r, "mqtt.content_type"), Some("text/plain"));
    assert_eq!(header(r, "site"), Some("north"));
}

// ------------------------------------------------------------------------------------------
// rumqttc
// ------------------------------------------------------------------------------------------

/// Capacity of the channels carrying a client's events to the test.
const EVENTS: usize = 256;

/// Polls a v4 event loop in a task; events (and the error that ends it) arrive on the
/// channel. Polling stops at the first error, so the client does not reconnect.
fn drive_v4(
    mut el: rumqttc::EventLoop,
) -> mpsc::Receiver<Result<rumqttc::Event, rumqttc::ConnectionError>> {
    let (tx, rx) = mpsc::channel(EVENTS);
    tokio::spawn(async move {
        loop {
            let ev = el.poll().await;
            let end = ev.is_err();
            if tx.send(ev).await.is_err() || end {
                return;
            }
        }
    });
    rx
}

/// Same for v5.
fn drive_v5(
    mut el: rumqttc::v5::EventLoop,
) -> mpsc::Receiver<Result<rumqttc::v5::Event, rumqttc::v5::ConnectionError>> {
    let (tx, rx) = mpsc::channel(EVENTS);
    tokio::spawn(async move {
        loop {
            let ev = el.poll().await;
            let end = ev.is_err();
            if tx.send(ev).await.is_err() || end {
                return;
            }
        }
    });
    rx
}

/// Receives events until `pick` returns something; panics on timeout or a closed loop.
async fn until<E: std::fmt::Debug, T>(
    rx: &mut mpsc::Receiver<E>,
    what: &str,
    mut pick: impl FnMut(&E) -> Option<T>,
) -> T {
    let mut seen = Vec::new();
    let found = timeout(WAIT, async {
        while let Some(ev) = rx.recv().await {
            if let Some(t) = pick(&ev) {
                return Some(t);
            }
            seen.push(format!("{ev:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("event loop ended while waiting for {what}; saw {seen:?}"),
        Err(_) => panic!("no {what} within {WAIT:?}; saw {seen:?}"),
    }
}

fn v4_options(b: &Broker, id: &str, clean: bool) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", b.mqtt_port());
    o.set_clean_session(clean);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

fn v5_options(b: &Broker, id: &str, clean: bool, expiry: Option<u32>) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", b.mqtt_port());
    o.set_clean_start(clean);
    o.set_session_expiry_interval(expiry);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

type V4Rx = mpsc::Receiver<Result<rumqttc::Event, rumqttc::ConnectionError>>;
type V5Rx = mpsc::Receiver<Result<rumqttc::v5::Event, rumqttc::v5::ConnectionError>>;

/// Connects a v4 client; returns it, its events and CONNACK's Session Present.
async fn v4_connect(o: rumqttc::MqttOptions) -> (rumqttc::AsyncClient, V4Rx, bool) {
    use rumqttc::{ConnectReturnCode, Event, Packet};
    let (client, el) = rumqttc::AsyncClient::new(o, 64);
    let mut rx = drive_v4(el);
    let present = until(&mut rx, "CONNACK", |ev| match ev {
        Ok(Event::Incoming(Packet::ConnAck(a))) => {
            assert_eq!(a.code, ConnectReturnCode::Success);
            Some(a.session_present)
        }
        _ => None,
    })
    .await;
    (client, rx, present)
}

/// Connects a v5 client; returns it, its events and CONNACK's Session Present.
async fn v5_connect(o: rumqttc::v5::MqttOptions) -> (rumqttc::v5::AsyncClient, V5Rx, bool) {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
    use rumqttc::v5::Event;
    let (client, el) = rumqttc::v5::AsyncClient::new(o, 64);
    let mut rx = drive_v5(el);
    let present = until(&mut rx, "CONNACK", |ev| match ev {
        Ok(Event::Incoming(Packet::ConnAck(a))) => {
            assert_eq!(a.code, ConnectReturnCode::Success);
            Some(a.session_present)
        }
        _ => None,
    })
    .await;
    (client, rx, present)
}

/// The next PUBLISH a v4 client gets, as (topic, payload, qos).
async fn v4_next(rx: &mut V4Rx) -> (String, String, u8) {
    until(rx, "PUBLISH", |ev| match ev {
        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Some((
            p.topic.clone(),
            String::from_utf8_lossy(&p.payload).into_owned(),
            p.qos as u8,
        )),
        _ => None,
    })
    .await
}

/// The next PUBLISH a v5 client gets, as (topic, payload, qos).
async fn v5_next(rx: &mut V5Rx) -> (String, String, u8) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    until(rx, "PUBLISH", |ev| match ev {
        Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => Some((
            String::from_utf8_lossy(&p.topic).into_owned(),
            String::from_utf8_lossy(&p.payload).into_owned(),
            p.qos as u8,
        )),
        _ => None,
    })
    .await
}

async fn v4_suback(rx: &mut V4Rx) {
    until(rx, "SUBACK", |ev| {
        matches!(ev, Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))).then_some(())
    })
    .await;
}

async fn v5_suback(rx: &mut V5Rx) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    until(rx, "SUBACK", |ev| {
        matches!(ev, Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(_)))).then_some(())
    })
    .await;
}

/// Waits for `n` PUBACK/PUBCOMP (the publishes' flows completed).
async fn v4_acked(rx: &mut V4Rx, n: usize) {
    for _ in 0..n {
        until(rx, "PUBACK/PUBCOMP", |ev| match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))
            | Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubComp(_))) => Some(()),
            _ => None,
        })
        .await;
    }
}

async fn v5_acked(rx: &mut V5Rx, n: usize) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    for _ in 0..n {
        until(rx, "PUBACK/PUBCOMP", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(Packet::PubAck(_)))
            | Ok(rumqttc::v5::Event::Incoming(Packet::PubComp(_))) => Some(()),
            _ => None,
        })
        .await;
    }
}

/// rumqttc v4 (MQTT 3.1.1): QoS 1 and QoS 2 publish → subscribe round trip.
#[test]
fn rumqttc_v4_qos1_qos2_round_trip() {
    use rumqttc::QoS;
    let (_dir, b) = start();
    runtime().block_on(async {
        let (s, mut srx, _) = v4_connect(v4_options(&b, "rq4-sub", true)).await;
        s.subscribe("rq4/#", QoS::ExactlyOnce).await.unwrap();
        v4_suback(&mut srx).await;
        let (p, mut prx, _) = v4_connect(v4_options(&b, "rq4-pub", true)).await;
        p.publish("rq4/one", QoS::AtLeastOnce, false, "q1")
            .await
            .unwrap();
        p.publish("rq4/two", QoS::ExactlyOnce, false, "q2")
            .await
            .unwrap();
        v4_acked(&mut prx, 2).await;
        assert_eq!(v4_next(&mut srx).await, ("rq4/one".into(), "q1".into(), 1));
        assert_eq!(v4_next(&mut srx).await, ("rq4/two".into(), "q2".into(), 2));
    });
}

/// rumqttc v5: QoS 1 and QoS 2 publish → subscribe round trip.
#[test]
fn rumqttc_v5_qos1_qos2_round_trip() {
    use rumqttc::v5::mqttbytes::QoS;
    let (_dir, b) = start();
    runtime().block_on(async {
        let (s, mut srx, _) = v5_connect(v5_options(&b, "rq5-sub", true, None)).await;
        s.subscribe("rq5/#", QoS::ExactlyOnce).await.unwrap();
        v5_suback(&mut srx).await;
        let (p, mut prx, _) = v5_connect(v5_options(&b, "rq5-pub", true, None)).await;
        p.publish("rq5/one", QoS::AtLeastOnce, false, "q1")
            .await
            .unwrap();
        p.publish("rq5/two", QoS::ExactlyOnce, false, "q2")
            .await
            .unwrap();
        v5_acked(&mut prx, 2).await;
        assert_eq!(v5_next(&mut srx).await, ("rq5/one".into(), "q1".into(), 1));
        assert_eq!(v5_next(&mut srx).await, ("rq5/two".into(), "q2".into(), 2));
    });
}

/// rumqttc v4 with clean_session = false: QoS 1 messages published while the client is
/// offline are delivered, in order, when it comes back (Session Present 1).
#[test]
fn rumqttc_v4_persistent_session_gets_queued() {
    use rumqttc::QoS;
    let (_dir, b) = start();
    runtime().block_on(async {
        let (s, mut srx, present) = v4_connect(v4_options(&b, "rp4", false)).await;
        assert!(!present);
        s.subscribe("rp4/t", QoS::AtLeastOnce).await.unwrap();
        v4_suback(&mut srx).await;
        s.disconnect().await.unwrap();
        until(&mut srx, "end of the connection", |ev| {
            ev.is_err().then_some(())
        })
        .await;
        let (p, mut prx, _) = v4_connect(v4_options(&b, "rp4-pub", true)).await;
        for i in 0..5 {
            p.publish("rp4/t", QoS::AtLeastOnce, false, format!("queued-{i}"))
                .await
                .unwrap();
        }
        v4_acked(&mut prx, 5).await;
        let (_s, mut srx, present) = v4_connect(v4_options(&b, "rp4", false)).await;
        assert!(present, "the session must be resumed");
        for i in 0..5 {
            let got = v4_next(&mut srx).await;
            assert_eq!(got, ("rp4/t".into(), format!("queued-{i}"), 1));
        }
    });
}

/// rumqttc v5 with Clean Start 0 and Session Expiry 60 s: the same.
#[test]
fn rumqttc_v5_persistent_session_gets_queued() {
    use rumqttc::v5::mqttbytes::QoS;
    let (_dir, b) = start();
    runtime().block_on(async {
        let (s, mut srx, present) = v5_connect(v5_options(&b, "rp5", false, Some(60))).await;
        assert!(!present);
        s.subscribe("rp5/t", QoS::AtLeastOnce).await.unwrap();
        v5_suback(&mut srx).await;
        s.disconnect().await.unwrap();
        until(&mut srx, "end of the connection", |ev| {
            ev.is_err().then_some(())
        })
        .await;
        let (p, mut prx, _) = v5_connect(v5_options(&b, "rp5-pub", true, None)).await;
        for i in 0..5 {
            p.publish("rp5/t", QoS::AtLeastOnce, false, format!("queued-{i}"))
                .await
                .unwrap();
        }
        v5_acked(&mut prx, 5).await;
        let (_s, mut srx, present) = v5_connect(v5_options(&b, "rp5", false, Some(60))).await;
        assert!(present, "the session must be resumed");
        for i in 0..5 {
            let got = v5_next(&mut srx).await;
            assert_eq!(got, ("rp5/t".into(), format!("queued-{i}"), 1));
        }
    });
}

/// rumqttc v4: a second client with the same id takes the session over; the first one's
/// connection ends.
#[test]
fn rumqttc_v4_session_takeover() {
    let (_dir, b) = start();
    runtime().block_on(async {
        let (_first, mut rx1, _) = v4_connect(v4_options(&b, "take4", true)).await;
        let (second, mut rx2, _) = v4_connect(v4_options(&b, "take4", true)).await;
        let err = until(&mut rx1, "the first connection's end", |ev| match ev {
            Err(e) => Some(e.to_string()),
            Ok(_) => None,
        })
        .await;
        assert!(!err.is_empty());
        // The new owner is fully usable.
        second
            .subscribe("take4/t", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        v4_suback(&mut rx2).await;
    });
}

/// rumqttc v5: the first client sees DISCONNECT with reason 0x8E Session taken over.
#[test]
fn rumqttc_v5_session_takeover_reason() {
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
    use rumqttc::v5::{ConnectionError, StateError};
    let (_dir, b) = start();
    runtime().block_on(async {
        let (_first, mut rx1, _) = v5_connect(v5_options(&b, "take5", true, None)).await;
        let (_second, _rx2, _) = v5_connect(v5_options(&b, "take5", true, None)).await;
        let end = until(&mut rx1, "the first connection's end", |ev| match ev {
            Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                reason_code, ..
            })) => Some(Ok(*reason_code)),
            Err(e) => Some(Err(format!("{e:?}"))),
            Ok(_) => None,
        })
        .await;
        // The broker writes the empty property length after the reason (E0 02 8E 00):
        // rumqttc 0.25 needs it to see the reason at all.
        assert_eq!(
            end,
            Ok(DisconnectReasonCode::SessionTakenOver),
            "first connection's end"
        );
    });
}

/// [MQTT-3.1.2-24] (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]): a client that CONNECTs
/// with keep-alive 1 s and then stays silent is disconnected (after 1.5 s; checked within 5
/// s). A v5 client may get DISCONNECT 0x8D first, nothing else.
#[test]
fn keep_alive_silent_client_is_closed() {
    let (_dir, b) = start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut c = connect(protocol, "silent", true);
        c.keep_alive = 1;
        let (mut raw, _) = Raw::connect_with(&b.mqtt_addr, &c);
        let got = raw.closed(Duration::from_secs(5));
        let allowed = got.is_empty()
            || (protocol.is_v5() && got == [In::Disconnect(reason::KEEP_ALIVE_TIMEOUT)]);
        assert!(allowed, "{protocol:?}: received {got:?} before the close");
    }
}

// ------------------------------------------------------------------------------------------
// Python paho-mqtt
// ------------------------------------------------------------------------------------------

/// The venv's python: `$OUTPOST_PYTHON`, else `.venv/bin/python` in the repository. Panics
/// (the test fails) when it or paho-mqtt 2.x is missing.
fn python() -> PathBuf {
    let path = std::env::var_os("OUTPOST_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    let check = Command::new(&path)
        .args([
            "-c",
            "import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__.startswith('2.') else 1)",
        ])
        .output();
    match check {
        Ok(out) if out.status.success() => path,
        _ => panic!(
            "python with paho-mqtt 2.x not found at {} (set OUTPOST_PYTHON or run scripts/test.sh, which creates .venv with paho-mqtt)",
            path.display()
        ),
    }
}

/// Runs `tests/python/<script>` against a fresh broker and asserts it exits 0.
fn run_paho(script: &str) {
    let python = python();
    let (_dir, b) = start();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut cmd = Command::new(python);
    cmd.arg(dir.join(script))
        .arg(b.mqtt_port().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (status, out, err) = Proc::spawn(cmd).finish(Duration::from_secs(60));
    assert!(
        status.success(),
        "{script} failed ({status}):\n{}\n{err}",
        out.join("\n")
    );
}

/// paho-mqtt: QoS 2 exactly once, in order, over 3.1.1 and 5.
#[test]
fn paho_qos2() {
    run_paho("paho_qos2.py");
}

/// paho-mqtt: session resumption with queued QoS 1 messages, over 3.1.1 and 5.
#[test]
fn paho_session_resumption() {
    run_paho("paho_session.py");
}

/// paho-mqtt: a shared subscription delivers each message to exactly one member.
#[test]
fn paho_shared_subscription() {
    run_paho("paho_shared.py");
}
