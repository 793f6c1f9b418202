//! MQTT state across broker restarts and crashes.
//!
//! - A persistent session (v5 and 3.1.1) with QoS 1 messages queued while it was offline,
//!   and a retained message, survive a graceful restart (SIGTERM) and a kill -9 restart.
//! - A QoS 1 message sent to a persistent session and not yet acknowledged is sent again
//!   after a restart.
//! - Crash: QoS 1 publishers with several PUBLISHes in flight each, kill -9 mid-stream,
//!   restart: every PUBACKed message is in the log (payload and `mqtt.topic` header), none
//!   twice. Three cycles on the same data directory.

mod common;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::mqtt::{connect, publish, In, Raw, ResponseKind, WAIT};
use common::{header, temp_dir, Broker};
use outpost::mqtt::packet::{Connect, Packet, Protocol, QoS};

/// How the broker goes down between the two halves of a test.
#[derive(Debug, Clone, Copy)]
enum Down {
    /// SIGTERM, clean exit.
    Graceful,
    /// SIGKILL.
    Kill9,
}

/// Takes the broker down as `how` and starts it again on the same data directory.
fn restart(b: Broker, how: Down) -> Broker {
    let data = b.data_dir.clone();
    match how {
        Down::Graceful => {
            b.stop();
        }
        Down::Kill9 => b.kill9(),
    }
    Broker::start(&data, "")
}

/// A persistent session's CONNECT: v5 with expiry 3600 s, 3.1.1 with Clean Session 0.
fn persistent(protocol: Protocol, client_id: &str, clean_start: bool) -> Connect<'_> {
    let mut c = connect(protocol, client_id, clean_start && protocol.is_v5());
    if protocol.is_v5() {
        c.properties.session_expiry_interval = Some(3600);
    }
    c
}

/// Publishes QoS 1 from a fresh client; returns once PUBACKed.
fn publish_from(addr: &str, topic: &str, payload: &str, retain: bool) {
    let mut p = Raw::v5(addr, "");
    assert_eq!(
        p.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, retain),
        0
    );
    p.disconnect();
}

/// Publishes a marker on `topic` and asserts it is the next message `raw` gets.
fn expect_only_marker(addr: &str, raw: &mut Raw, topic: &str) {
    publish_from(addr, topic, "MARKER", false);
    let m = raw.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.text()),
        (topic, "MARKER".into()),
        "{m:?}"
    );
}

const SESSIONS: [(Protocol, &str); 2] = [(Protocol::V5, "keep5"), (Protocol::V311, "keep3")];

/// Queued messages and a retained message survive `how`.
fn session_and_retained_survive(how: Down) {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    for (protocol, id) in SESSIONS {
        let (mut c, _) = Raw::connect_with(&b.mqtt_addr, &persistent(protocol, id, true));
        c.subscribe("keep/t", QoS::AtLeastOnce);
        c.disconnect();
    }
    for i in 0..5 {
        publish_from(&b.mqtt_addr, "keep/t", &format!("queued-{i}"), false);
    }
    publish_from(&b.mqtt_addr, "keep/ret", "retained value", true);
    let b = restart(b, how);
    for (protocol, id) in SESSIONS {
        let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &persistent(protocol, id, false));
        assert!(
            ack.session_present,
            "{id}: session lost by the {how:?} restart"
        );
        for i in 0..5 {
            let m = c.next_msg();
            let got = (m.topic.as_str(), m.text(), m.qos);
            assert_eq!(got, ("keep/t", format!("queued-{i}"), 1), "{id}");
        }
        // The subscription itself survived too, and nothing is delivered twice.
        expect_only_marker(&b.mqtt_addr, &mut c, "keep/t");
    }
    let mut late = Raw::v5(&b.mqtt_addr, "late");
    late.subscribe("keep/ret", QoS::AtLeastOnce);
    let m = late.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.text(), m.retain),
        ("keep/ret", "retained value".into(), true)
    );
    let records = b.consume_json("keep", 100);
    let values: Vec<&str> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    let mut want: Vec<String> = (0..5).map(|i| format!("queued-{i}")).collect();
    want.push("retained value".into());
    // Two markers were published after the restart.
    want.extend(["MARKER".to_owned(), "MARKER".to_owned()]);
    assert_eq!(values, want);
}

/// Persistent sessions (queued QoS 1 messages, subscriptions) and retained messages survive
/// a graceful restart.
#[test]
fn session_and_retained_survive_graceful_restart() {
    session_and_retained_survive(Down::Graceful);
}

/// The same across kill -9: everything was committed before it was acknowledged.
#[test]
fn session_and_retained_survive_kill9() {
    session_and_retained_survive(Down::Kill9);
}

/// [MQTT-4.4.0-1]/[MQTT-3.3.1-1] across a restart: a QoS 1 message sent to a persistent
/// session and not acknowledged is sent again when the client resumes the session, with
/// DUP=1 and its original packet identifier, and only once.
fn unacked_resent_after(how: Down) {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    let c = persistent(Protocol::V5, "unacked", true);
    let (mut sub, _) = Raw::connect_with(&b.mqtt_addr, &c);
    sub.subscribe("ua/t", QoS::AtLeastOnce);
    // Two acknowledged messages first, so that the unacknowledged one's packet id is not 1.
    for payload in ["acked-1", "acked-2"] {
        publish_from(&b.mqtt_addr, "ua/t", payload, false);
        assert_eq!(sub.next_msg().text(), payload);
    }
    // The PINGRESP follows the handling of both PUBACKs; the next publish commits after
    // the queue rows they finished (the writer is FIFO), so the kill cannot undo them.
    sub.ping();
    publish_from(&b.mqtt_addr, "ua/t", "unacked", false);
    let first = sub.next_msg_noack();
    assert_eq!((first.text(), first.dup), ("unacked".into(), false));
    let b = restart(b, how);
    sub.abort();
    let (mut sub, ack) =
        Raw::connect_with(&b.mqtt_addr, &persistent(Protocol::V5, "unacked", false));
    assert!(ack.session_present);
    let again = sub.next_msg();
    assert_eq!(
        (again.text(), again.dup, again.packet_id),
        ("unacked".into(), true, first.packet_id),
        "re-sent: {again:?}, first sent: {first:?}"
    );
    expect_only_marker(&b.mqtt_addr, &mut sub, "ua/t");
}

#[test]
fn unacked_qos1_resent_after_graceful_restart() {
    unacked_resent_after(Down::Graceful);
}

#[test]
fn unacked_qos1_resent_after_kill9() {
    unacked_resent_after(Down::Kill9);
}

/// [MQTT-4.4.0-1] across a restart, QoS 2: a PUBLISH not yet PUBRECed is re-sent with DUP=1
/// and its packet id, and a PUBREL whose PUBCOMP did not arrive is re-sent, in the order
/// they were first sent.
fn qos2_inflight_resent_after(how: Down) {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    let (mut sub, _) = Raw::connect_with(&b.mqtt_addr, &persistent(Protocol::V5, "q2f", true));
    sub.subscribe("q2f/t", QoS::ExactlyOnce);
    let mut p = Raw::v5(&b.mqtt_addr, "q2f-pub");
    assert_eq!(p.publish("q2f/t", b"complete", QoS::ExactlyOnce, false), 0);
    assert_eq!(sub.next_msg().text(), "complete");
    assert_eq!(
        p.publish("q2f/t", b"rel-pending", QoS::ExactlyOnce, false),
        0
    );
    let rel = sub.next_msg_noack();
    sub.send_response(ResponseKind::Rec, rel.packet_id);
    let got = sub.recv_until("PUBREL", |p| {
        matches!(p, In::PubRel(..)).then_some(p.clone())
    });
    assert_eq!(got, In::PubRel(rel.packet_id, 0));
    // PINGRESP: the PUBREC was handled; the next commit carries its queue row change.
    sub.ping();
    assert_eq!(
        p.publish("q2f/t", b"rec-pending", QoS::ExactlyOnce, false),
        0
    );
    let rec = sub.next_msg_noack();
    assert_eq!(rec.text(), "rec-pending");
    let b = restart(b, how);
    sub.abort();
    let (mut sub, ack) = Raw::connect_with(&b.mqtt_addr, &persistent(Protocol::V5, "q2f", false));
    assert!(ack.session_present);
    let first = sub.recv();
    assert_eq!(first, In::PubRel(rel.packet_id, 0), "PUBREL re-sent first");
    sub.send_response(ResponseKind::Comp, rel.packet_id);
    let again = sub.next_msg();
    assert_eq!(
        (again.text(), again.dup, again.packet_id),
        ("rec-pending".into(), true, rec.packet_id),
        "{again:?}"
    );
    expect_only_marker(&b.mqtt_addr, &mut sub, "q2f/t");
}

#[test]
fn qos2_inflight_resent_after_graceful_restart() {
    qos2_inflight_resent_after(Down::Graceful);
}

#[test]
fn qos2_inflight_resent_after_kill9() {
    qos2_inflight_resent_after(Down::Kill9);
}

/// [MQTT-4.3.3-10]/[MQTT-4.4.0-1] inbound, across a restart: a QoS 2 message PUBRECed
/// before the broker went down is stored once. The publisher resumes its session and sends
/// PUBREL for one (PUBCOMP success, not 0x92) and the PUBLISH again with DUP=1 for the other
/// (as if the PUBREC was lost: PUBREC again, not stored twice).
fn inbound_qos2_once_across(how: Down) {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    let (mut c, _) = Raw::connect_with(&b.mqtt_addr, &persistent(Protocol::V5, "q2in", true));
    for (pid, payload) in [(5u16, "rel-after-restart"), (6, "dup-after-restart")] {
        let mut p = publish("q2in/t", payload.as_bytes(), QoS::ExactlyOnce, false);
        p.packet_id = pid;
        c.send(&Packet::Publish(p));
        assert_eq!(c.recv(), In::PubRec(pid, 0));
    }
    let b = restart(b, how);
    c.abort();
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &persistent(Protocol::V5, "q2in", false));
    assert!(ack.session_present);
    c.send_response(ResponseKind::Rel, 5);
    assert_eq!(c.recv(), In::PubComp(5, 0), "PUBREL for a PUBRECed id");
    let mut p = publish("q2in/t", b"dup-after-restart", QoS::ExactlyOnce, false);
    p.packet_id = 6;
    p.dup = true;
    c.send(&Packet::Publish(p));
    assert_eq!(c.recv(), In::PubRec(6, 0));
    c.send_response(ResponseKind::Rel, 6);
    assert_eq!(c.recv(), In::PubComp(6, 0));
    let values: Vec<String> = b
        .consume_json("q2in", 100)
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, ["rel-after-restart", "dup-after-restart"]);
}

#[test]
fn inbound_qos2_once_across_graceful_restart() {
    inbound_qos2_once_across(Down::Graceful);
}

#[test]
fn inbound_qos2_once_across_kill9() {
    inbound_qos2_once_across(Down::Kill9);
}

// ------------------------------------------------------------------------------------------
// Crash: kill -9 under QoS 1 load
// ------------------------------------------------------------------------------------------

const PUBLISHERS: u32 = 4;
/// QoS 1 PUBLISHes each publisher keeps unacknowledged.
const WINDOW: usize = 8;
const CYCLES: u32 = 3;
/// Acknowledgements to wait for before the kill, per cycle (or until `LOAD_TIME`).
const ACKS_BEFORE_KILL: usize = 2000;
const LOAD_TIME: Duration = Duration::from_secs(10);

/// Publishes QoS 1 with `WINDOW` in flight until the connection ends; sends every
/// acknowledged (topic, payload) on `acked`.
fn crash_publisher(
    addr: String,
    id: u32,
    cycle: u32,
    stop: Arc<AtomicBool>,
    acked: mpsc::Sender<(String, String)>,
) {
    let mut c = Raw::v311(&addr, &format!("crash-{id}"));
    let topic = format!("crash/p{id}");
    let mut inflight: VecDeque<(u16, String)> = VecDeque::new();
    // Bounded: the kill ends the connection; the cap ends a runaway loop.
    for seq in 0..1_000_000u32 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        while inflight.len() < WINDOW {
            let payload = format!("c{cycle}-p{id}-{seq}-{}", inflight.len());
            let mut p = publish(&topic, payload.as_bytes(), QoS::AtLeastOnce, false);
            p.packet_id = c.pid();
            c.send(&Packet::Publish(p));
            inflight.push_back((p.packet_id, payload));
        }
        match c.try_recv(WAIT) {
            Ok(In::PubAck(pid, 0)) => {
                let (want, payload) = inflight.pop_front().expect("a PUBLISH in flight");
                // [MQTT-4.6.0-2]: PUBACKs in the order of the PUBLISHes.
                assert_eq!(pid, want, "PUBACK out of order");
                if acked.send((topic.clone(), payload)).is_err() {
                    return;
                }
            }
            Ok(other) => panic!("publisher {id}: unexpected {other:?}"),
            // The broker was killed.
            Err(_) => return,
        }
    }
}

/// Runs the publishers until enough acknowledgements (or `LOAD_TIME`), kills the broker,
/// and returns every acknowledged (topic, payload).
fn load_then_kill(b: Broker, cycle: u32) -> Vec<(String, String)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..PUBLISHERS)
        .map(|id| {
            let (addr, stop, tx) = (b.mqtt_addr.clone(), stop.clone(), tx.clone());
            std::thread::spawn(move || crash_publisher(addr, id, cycle, stop, tx))
        })
        .collect();
    drop(tx);
    let mut acked = Vec::new();
    let deadline = Instant::now() + LOAD_TIME;
    while acked.len() < ACKS_BEFORE_KILL {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(a) => acked.push(a),
            Err(_) => break,
        }
    }
    b.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("publisher thread");
    }
    // Acknowledgements that arrived just before the kill.
    acked.extend(rx.try_iter());
    assert!(
        acked.len() >= ACKS_BEFORE_KILL / 4,
        "cycle {cycle}: only {} acknowledgements before the kill",
        acked.len()
    );
    acked
}

/// Every acknowledged message is in the log with its topic, none twice, every record well
/// formed.
fn check_log(b: &Broker, acked: &[(String, String)]) {
    let records = b.consume_json("crash", 10_000_000);
    let mut seen: HashMap<String, String> = HashMap::new();
    for r in &records {
        let value = r["value"].as_str().expect("value").to_owned();
        let topic = header(r, "mqtt.topic").expect("mqtt.topic").to_owned();
        assert_eq!(header(r, "mqtt.qos"), Some("1"), "{r}");
        let id = value.split('-').nth(1).expect("payload c<cycle>-p<id>-...");
        assert_eq!(topic, format!("crash/{id}"), "record {r}");
        let dup = seen.insert(value.clone(), topic);
        assert!(dup.is_none(), "{value} stored twice");
    }
    for (topic, payload) in acked {
        assert_eq!(
            seen.get(payload),
            Some(topic),
            "acknowledged {payload} on {topic} is not in the log ({} records)",
            records.len()
        );
    }
}

/// Kill -9 mid-stream under QoS 1 load, restart, every PUBACKed message is in the log;
/// three cycles on the same data directory.
#[test]
fn crash_every_acked_qos1_message_survives_kill9() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut b = Broker::start(&data, "");
    let mut acked = Vec::new();
    for cycle in 0..CYCLES {
        acked.extend(load_then_kill(b, cycle));
        b = Broker::start(Path::new(&data), "");
        check_log(&b, &acked);
    }
}

/// [MQTT-3.14.2-2] context: a v5 DISCONNECT may lower a session's expiry to 0, which ends the
/// session at the close — its stored rows must go too, or a restart would bring it back.
#[test]
fn session_ended_by_disconnect_stays_ended_after_restart() {
    let dir = temp_dir();
    let b = Broker::start(&dir.path().join("data"), "");
    let (mut c, ack) = Raw::handshake(&b.mqtt_addr, &persistent(Protocol::V5, "ender", true));
    assert!(!ack.session_present);
    c.subscribe("end/t", QoS::AtLeastOnce);
    let properties = outpost::mqtt::packet::Properties {
        session_expiry_interval: Some(0),
        ..Default::default()
    };
    c.send(&Packet::Disconnect(outpost::mqtt::packet::Disconnect {
        reason: 0,
        properties,
    }));
    assert_eq!(c.closed(WAIT), vec![]);
    let b = restart(b, Down::Graceful);
    let (_c, ack) = Raw::handshake(&b.mqtt_addr, &persistent(Protocol::V5, "ender", false));
    assert!(!ack.session_present, "the ended session came back");
}
