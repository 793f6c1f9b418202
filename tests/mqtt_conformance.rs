//! MQTT conformance against the real binary, over raw sockets: every test sends exact bytes
//! (the broker's own encoder, `common::mqtt`) and checks exact answers, reason codes and
//! what reached the log. Each test names the normative statement it checks; the tags are
//! those of MQTT 5.0 unless marked (3.1.1).
//!
//! Negative checks ("this is not delivered") use a marker: after the message that must not
//! arrive, a second message on a topic the same subscription matches is published and
//! acknowledged; the marker must be the first thing the subscriber gets. The broker routes in
//! commit order, so anything wrongly routed would be queued ahead of it.

mod common;

use std::time::{Duration, Instant};

use common::mqtt::{
    connect, encode, publish, qos_opts, In, Msg, Raw, RecvError, ResponseKind, WAIT,
};
use common::{header, temp_dir, Broker};
use outpost::mqtt::packet::{
    reason, Connect, Packet, Properties, Protocol, QoS, Subscribe, SubscribeFilters,
    SubscriptionOptions, Will,
};
use tempfile::TempDir;

/// `[mqtt]` on an ephemeral port; tests append their own keys.
const MQTT: &str = "[mqtt]\nlisten = \"127.0.0.1:0\"\n";

/// A broker with extra `[mqtt]` keys; keep the directory alive as long as the broker.
fn start(mqtt_keys: &str) -> (TempDir, Broker) {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), &format!("{MQTT}{mqtt_keys}"));
    (dir, broker)
}

/// Publishes QoS 1 from a fresh v5 client and returns once PUBACKed (so routed and stored).
fn publish_from(addr: &str, topic: &str, payload: &str, retain: bool) {
    let mut p = Raw::v5(addr, "");
    let code = p.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, retain);
    assert_eq!(code, reason::SUCCESS, "PUBACK for {topic}");
    p.disconnect();
}

/// Asserts the next message is `payload` on `topic`.
fn expect_msg(raw: &mut Raw, topic: &str, payload: &str) -> Msg {
    let m = raw.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        (topic, payload),
        "unexpected message {m:?}"
    );
    m
}

/// Publishes a marker on `topic` and asserts it is the next message `raw` gets.
fn expect_only_marker(addr: &str, raw: &mut Raw, topic: &str) {
    publish_from(addr, topic, "MARKER", false);
    expect_msg(raw, topic, "MARKER");
}

/// A v5 CONNECT of a persistent session (expiry `secs`).
fn persistent(client_id: &str, clean_start: bool, secs: u32) -> Connect<'_> {
    let mut c = connect(Protocol::V5, client_id, clean_start);
    c.properties.session_expiry_interval = Some(secs);
    c
}

// ------------------------------------------------------------------------------------------
// CONNECT / CONNACK
// ------------------------------------------------------------------------------------------

/// [MQTT-3.1.0-1]: the first packet must be CONNECT; anything else closes the connection
/// without a CONNACK.
#[test]
fn first_packet_not_connect_closes() {
    let (_dir, b) = start("");
    let mut raw = Raw::open(&b.mqtt_addr);
    raw.send(&Packet::PingReq);
    assert_eq!(raw.closed(WAIT), vec![], "no packet may answer");
    let mut raw = Raw::open(&b.mqtt_addr);
    raw.send(&Packet::Publish(publish(
        "a/b",
        b"x",
        QoS::AtMostOnce,
        false,
    )));
    assert_eq!(raw.closed(WAIT), vec![]);
}

/// [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error (v5: DISCONNECT 0x82; 3.1.1: close).
#[test]
fn second_connect_is_protocol_error() {
    let (_dir, b) = start("");
    let mut raw = Raw::v5(&b.mqtt_addr, "twice5");
    raw.send(&Packet::Connect(connect(Protocol::V5, "twice5", true)));
    assert_eq!(raw.disconnected_with(), reason::PROTOCOL_ERROR);
    let mut raw = Raw::v311(&b.mqtt_addr, "twice3");
    raw.send(&Packet::Connect(connect(Protocol::V311, "twice3", true)));
    assert_eq!(raw.closed(WAIT), vec![]);
}

/// [MQTT-3.1.3-8] (3.1.1): a zero-length client id with Clean Session 0 gets CONNACK 0x02
/// (identifier rejected) and the close; with Clean Session 1 it is accepted [MQTT-3.1.3-6].
#[test]
fn empty_client_id_v311_needs_clean_session() {
    let (_dir, b) = start("");
    let (mut raw, ack) = Raw::handshake(&b.mqtt_addr, &connect(Protocol::V311, "", false));
    assert_eq!((ack.code, ack.session_present), (0x02, false));
    assert_eq!(raw.closed(WAIT), vec![]);
    let (mut raw, ack) = Raw::handshake(&b.mqtt_addr, &connect(Protocol::V311, "", true));
    assert_eq!(ack.code, 0);
    raw.ping();
}

/// [MQTT-3.2.2-16]: a v5 CONNECT with a zero-length client id gets an Assigned Client
/// Identifier in CONNACK, unique per connection.
#[test]
fn empty_client_id_v5_gets_assigned_id() {
    let (_dir, b) = start("");
    let (mut one, ack1) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V5, "", true));
    let (mut two, ack2) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V5, "", true));
    let id1 = ack1.assigned_client_id.expect("Assigned Client Identifier");
    let id2 = ack2.assigned_client_id.expect("Assigned Client Identifier");
    assert!(!id1.is_empty());
    assert_ne!(id1, id2, "assigned ids must be unique");
    one.ping();
    two.ping();
    // A client that chose its id gets none assigned.
    let (_raw, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V5, "chosen", true));
    assert_eq!(ack.assigned_client_id, None);
}

/// MQTT 3.1 (`MQIsdp`, level 3) clients are served: CONNECT, SUBSCRIBE, PUBLISH round trip.
#[test]
fn mqtt31_client_works() {
    let (_dir, b) = start("");
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V31, "old31", true));
    assert!(!ack.session_present);
    c.subscribe("v31/t", QoS::AtLeastOnce);
    assert_eq!(c.publish("v31/t", b"hello 3.1", QoS::AtLeastOnce, false), 0);
    expect_msg(&mut c, "v31/t", "hello 3.1");
}

/// The CONNECT of an unknown protocol level, bytes by hand (the encoder knows only ours).
fn connect_bytes_with_level(level: u8) -> Vec<u8> {
    let body = [
        &[0x00, 0x04][..],
        b"MQTT",
        &[level, 0x02, 0x00, 0x3C],
        &[0x00, 0x00, 0x01, b'x'],
    ]
    .concat();
    let mut out = vec![0x10, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x84 (Unsupported Protocol
/// Version) and the close; a level below 5 gets the 3.1.1 return code 0x01.
#[test]
fn unsupported_protocol_level_refused() {
    let (_dir, b) = start("");
    let mut raw = Raw::open(&b.mqtt_addr);
    raw.protocol = Protocol::V5;
    raw.send_bytes(&connect_bytes_with_level(6));
    match raw.recv() {
        In::ConnAck(a) => assert_eq!((a.code, a.session_present), (0x84, false)),
        other => panic!("expected CONNACK 0x84, got {other:?}"),
    }
    assert_eq!(raw.closed(WAIT), vec![]);
    let mut raw = Raw::open(&b.mqtt_addr);
    raw.send_bytes(&connect_bytes_with_level(2));
    match raw.recv() {
        In::ConnAck(a) => assert_eq!(a.code, 0x01),
        other => panic!("expected CONNACK 0x01, got {other:?}"),
    }
    assert_eq!(raw.closed(WAIT), vec![]);
}

/// [MQTT-3.1.4-3]: a CONNECT with the client id of a connected client takes the session
/// over: the old connection gets DISCONNECT 0x8E (v5) and is closed; the new one works.
#[test]
fn session_takeover_v5() {
    let (_dir, b) = start("");
    let mut first = Raw::v5(&b.mqtt_addr, "taken");
    let mut second = Raw::v5(&b.mqtt_addr, "taken");
    assert_eq!(first.disconnected_with(), reason::SESSION_TAKEN_OVER);
    second.ping();
}

/// [MQTT-3.1.4-2] (3.1.1): the existing client with the same id is disconnected.
#[test]
fn session_takeover_v311() {
    let (_dir, b) = start("");
    let mut first = Raw::v311(&b.mqtt_addr, "taken3");
    let mut second = Raw::v311(&b.mqtt_addr, "taken3");
    assert_eq!(first.closed(WAIT), vec![]);
    second.ping();
}

/// [MQTT-3.2.2-2]/[MQTT-3.2.2-3]: Clean Start 0 resumes a stored session (Session Present 1,
/// subscriptions kept); Clean Start 1 discards it (Session Present 0, subscriptions gone).
#[test]
fn clean_start_and_session_present_v5() {
    let (_dir, b) = start("");
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("sp5", false, 60));
    assert!(!ack.session_present, "no session existed yet");
    c.subscribe("sp5/t", QoS::AtLeastOnce);
    c.disconnect();
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("sp5", false, 60));
    assert!(ack.session_present, "Clean Start 0 must resume the session");
    publish_from(&b.mqtt_addr, "sp5/t", "kept", false);
    expect_msg(&mut c, "sp5/t", "kept");
    c.disconnect();
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("sp5", true, 60));
    assert!(
        !ack.session_present,
        "Clean Start 1 must discard the session"
    );
    c.subscribe("sp5/other", QoS::AtLeastOnce);
    publish_from(&b.mqtt_addr, "sp5/t", "gone", false);
    expect_only_marker(&b.mqtt_addr, &mut c, "sp5/other");
}

/// [MQTT-3.2.2-1]..[MQTT-3.2.2-3] (3.1.1): Session Present follows Clean Session and a
/// stored session.
#[test]
fn clean_session_and_session_present_v311() {
    let (_dir, b) = start("");
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V311, "sp3", false));
    assert!(!ack.session_present);
    c.subscribe("sp3/t", QoS::AtLeastOnce);
    c.disconnect();
    let (c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V311, "sp3", false));
    assert!(ack.session_present, "stored session must be resumed");
    c.disconnect();
    let (c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V311, "sp3", true));
    assert!(
        !ack.session_present,
        "Clean Session 1 gives Session Present 0"
    );
    c.disconnect();
    let (_c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V311, "sp3", false));
    assert!(
        !ack.session_present,
        "the clean session ended the stored one"
    );
}

/// [MQTT-3.1.2-23]: a session whose Session Expiry Interval (2 s) has passed is gone when
/// the client comes back (Session Present 0); one with 60 s is still there.
#[test]
fn session_expiry_interval_v5() {
    let (_dir, b) = start("");
    let (c, _) = Raw::connect_with(&b.mqtt_addr, &persistent("short", true, 2));
    c.disconnect();
    let (c, _) = Raw::connect_with(&b.mqtt_addr, &persistent("long", true, 60));
    c.disconnect();
    // Expiry is 2 s; the broker checks once a second.
    std::thread::sleep(Duration::from_millis(3500));
    let (_s, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("short", false, 2));
    assert!(
        !ack.session_present,
        "session with expiry 2 s survived 3.5 s"
    );
    let (_l, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("long", false, 60));
    assert!(ack.session_present, "session with expiry 60 s was lost");
}

/// 4.12: enhanced authentication is not offered: a CONNECT with an Authentication Method
/// gets CONNACK 0x8C (Bad authentication method) and the close.
#[test]
fn authentication_method_refused() {
    let (_dir, b) = start("");
    let mut c = connect(Protocol::V5, "auth", true);
    c.properties.authentication_method = Some("SCRAM-SHA-256");
    c.properties.authentication_data = Some(b"client-first");
    let (mut raw, ack) = Raw::handshake(&b.mqtt_addr, &c);
    assert_eq!(ack.code, reason::BAD_AUTHENTICATION_METHOD);
    assert_eq!(raw.closed(WAIT), vec![]);
}

// ------------------------------------------------------------------------------------------
// PUBLISH
// ------------------------------------------------------------------------------------------

/// [MQTT-4.3.3-9]/[MQTT-4.3.3-10] area: a QoS 2 PUBLISH re-sent with DUP=1 and the same
/// packet id before PUBREL is not a new message: stored once. After PUBCOMP the id is free
/// and a new PUBLISH with it is a new message.
#[test]
fn qos2_duplicate_publish_stored_once() {
    let (_dir, b) = start("");
    let mut c = Raw::v5(&b.mqtt_addr, "dup2");
    let mut p = publish("dupq2/t", b"once", QoS::ExactlyOnce, false);
    p.packet_id = 7;
    c.send(&Packet::Publish(p));
    let rec = c.recv_until("PUBREC", |p| {
        matches!(p, In::PubRec(7, _)).then_some(p.clone())
    });
    assert_eq!(rec, In::PubRec(7, 0));
    // [MQTT-4.3.3-10]: each duplicate is acknowledged with PUBREC until PUBREL arrives.
    p.dup = true;
    c.send(&Packet::Publish(p));
    c.send(&Packet::Publish(p));
    c.send_response(ResponseKind::Rel, 7);
    let answers: Vec<In> = (0..3).map(|_| c.recv()).collect();
    assert_eq!(
        answers,
        [In::PubRec(7, 0), In::PubRec(7, 0), In::PubComp(7, 0)]
    );
    let records = b.consume_json("dupq2", 100);
    assert_eq!(
        records.len(),
        1,
        "the duplicate was stored again: {records:?}"
    );
    // The id is free again: a new message with it is stored.
    let mut p = publish("dupq2/t", b"twice", QoS::ExactlyOnce, false);
    p.packet_id = 7;
    assert_eq!(c.publish_with(p), 0);
    let values: Vec<_> = b
        .consume_json("dupq2", 100)
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, ["once", "twice"]);
}

/// [MQTT-3.3.4-8]: more unacknowledged QoS 2 PUBLISHes than the Receive Maximum announced
/// (2) is answered with DISCONNECT 0x93.
#[test]
fn receive_maximum_exceeded() {
    let (_dir, b) = start("receive_maximum = 2\n");
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V5, "recvmax", true));
    assert_eq!(ack.receive_maximum, Some(2));
    for pid in 1..=3 {
        let mut p = publish("rm/t", b"x", QoS::ExactlyOnce, false);
        p.packet_id = pid;
        c.send(&Packet::Publish(p));
    }
    assert_eq!(c.disconnected_with(), reason::RECEIVE_MAXIMUM_EXCEEDED);
}

/// [MQTT-3.3.2-2]: a topic name with wildcards: v5 DISCONNECT 0x90 (Topic Name invalid),
/// 3.1.1 the close. Nothing is stored.
#[test]
fn wildcard_in_publish_topic() {
    let (_dir, b) = start("");
    for topic in ["wc/+/x", "wc/#"] {
        let mut p = publish(topic, b"x", QoS::AtLeastOnce, false);
        p.packet_id = 1;
        let mut c = Raw::v5(&b.mqtt_addr, "wild5");
        c.send(&Packet::Publish(p));
        assert_eq!(c.disconnected_with(), reason::TOPIC_NAME_INVALID, "{topic}");
        let mut c = Raw::v311(&b.mqtt_addr, "wild3");
        c.send(&Packet::Publish(p));
        assert_eq!(c.closed(WAIT), vec![], "{topic}");
    }
    publish_from(&b.mqtt_addr, "wc/ok", "ok", false);
    let records = b.consume_json("wc", 100);
    assert_eq!(
        records.len(),
        1,
        "only the valid publish is stored: {records:?}"
    );
}

/// [MQTT-3.8.1-1] (and [MQTT-2.1.3-1]): SUBSCRIBE fixed header flags must be 0010; others
/// are a malformed packet: close (v5 after DISCONNECT 0x81).
#[test]
fn subscribe_reserved_flags_close() {
    let (_dir, b) = start("");
    let mut payload = Vec::new();
    outpost::mqtt::codec::encode_subscribe_filters(
        [("sf/t", qos_opts(QoS::AtMostOnce))],
        &mut payload,
    )
    .unwrap();
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut c = Raw::connect_with(&b.mqtt_addr, &connect(protocol, "flags", true)).0;
        let mut bytes = encode(
            &Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties::default(),
                filters: SubscribeFilters { payload: &payload },
            }),
            protocol,
        );
        assert_eq!(bytes[0], 0x82);
        bytes[0] = 0x80;
        c.send_bytes(&bytes);
        let got = c.closed(WAIT);
        let expected = if protocol.is_v5() {
            vec![In::Disconnect(reason::MALFORMED_PACKET)]
        } else {
            vec![]
        };
        assert_eq!(got, expected, "{protocol:?}");
    }
}

/// [MQTT-1.5.5-1] / 2.2.3: a Remaining Length of five bytes (the fourth still continuing) is
/// malformed: close (v5 after DISCONNECT 0x81).
#[test]
fn remaining_length_over_four_bytes_closes() {
    let (_dir, b) = start("");
    let mut c = Raw::v311(&b.mqtt_addr, "rl3");
    c.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert_eq!(c.closed(WAIT), vec![]);
    let mut c = Raw::v5(&b.mqtt_addr, "rl5");
    c.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert_eq!(c.disconnected_with(), reason::MALFORMED_PACKET);
}

/// [MQTT-1.5.4-1]/[MQTT-1.5.4-2]: a topic that is not valid UTF-8, or holds U+0000, is a
/// malformed packet: close (v5 after DISCONNECT 0x81); nothing is stored.
#[test]
fn invalid_utf8_topic_closes() {
    let (_dir, b) = start("");
    // PUBLISH QoS 0, topic length 2, then the topic bytes and a one-byte payload.
    for topic in [[0xC3, 0x28], [b'u', 0x00]] {
        let bytes = [0x30, 0x05, 0x00, 0x02, topic[0], topic[1], b'x'];
        let mut c = Raw::v311(&b.mqtt_addr, "utf3");
        c.send_bytes(&bytes);
        assert_eq!(c.closed(WAIT), vec![], "{topic:?}");
        let mut c = Raw::v5(&b.mqtt_addr, "utf5");
        c.send_bytes(&bytes);
        assert_eq!(c.disconnected_with(), reason::MALFORMED_PACKET, "{topic:?}");
    }
}

/// [MQTT-3.2.2-15] / 3.1.2.24: with `max_packet_bytes = 1024` CONNACK announces Maximum
/// Packet Size 1024 and a bigger packet gets DISCONNECT 0x95 (Packet too large); nothing
/// is stored.
#[test]
fn oversized_packet_disconnects() {
    let (_dir, b) = start("max_packet_bytes = 1024\n");
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V5, "big", true));
    assert_eq!(ack.maximum_packet_size, Some(1024));
    let payload = vec![b'x'; 2000];
    let mut p = publish("big/t", &payload, QoS::AtLeastOnce, false);
    p.packet_id = 1;
    c.send(&Packet::Publish(p));
    assert_eq!(c.disconnected_with(), reason::PACKET_TOO_LARGE);
    publish_from(&b.mqtt_addr, "big/t", "small", false);
    let records = b.consume_json("big", 100);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["value"], "small");
}

/// [MQTT-3.3.2-12] area: a client may set a Topic Alias with a topic and then publish with
/// an empty topic and the alias; the message goes out and into the log under the full topic.
#[test]
fn topic_alias_client_to_broker() {
    let (_dir, b) = start("");
    let mut sub = Raw::v5(&b.mqtt_addr, "alias-sub");
    sub.subscribe("ta/#", QoS::AtLeastOnce);
    let mut c = Raw::v5(&b.mqtt_addr, "alias-pub");
    let mut p = publish("ta/x", b"one", QoS::AtLeastOnce, false);
    p.properties.topic_alias = Some(1);
    assert_eq!(c.publish_with(p), 0);
    let mut p = publish("", b"two", QoS::AtLeastOnce, false);
    p.properties.topic_alias = Some(1);
    p.packet_id = 0;
    assert_eq!(c.publish_with(p), 0);
    expect_msg(&mut sub, "ta/x", "one");
    expect_msg(&mut sub, "ta/x", "two");
    let records = b.consume_json("ta", 100);
    let topics: Vec<_> = records.iter().map(|r| header(r, "mqtt.topic")).collect();
    assert_eq!(topics, [Some("ta/x"), Some("ta/x")]);
}

/// [MQTT-3.3.2-9]/[MQTT-3.3.2-10]: an alias above the Topic Alias Maximum is 0x94 (Topic
/// Alias invalid); an empty topic with an alias never set is a Protocol Error (0x82).
#[test]
fn topic_alias_invalid() {
    let (_dir, b) = start("topic_alias_maximum = 4\n");
    let (mut c, ack) = Raw::connect_with(&b.mqtt_addr, &connect(Protocol::V5, "alias-bad", true));
    assert_eq!(ack.topic_alias_maximum, Some(4));
    let mut p = publish("tb/x", b"x", QoS::AtMostOnce, false);
    p.properties.topic_alias = Some(5);
    c.send(&Packet::Publish(p));
    assert_eq!(c.disconnected_with(), reason::TOPIC_ALIAS_INVALID);
    let mut c = Raw::v5(&b.mqtt_addr, "alias-unset");
    let mut p = publish("", b"x", QoS::AtMostOnce, false);
    p.properties.topic_alias = Some(2);
    c.send(&Packet::Publish(p));
    assert_eq!(c.disconnected_with(), reason::PROTOCOL_ERROR);
}

/// [MQTT-3.3.2-17]/[MQTT-3.1.2-26]: the broker uses topic aliases towards a client that
/// announced a Topic Alias Maximum (5): the first PUBLISH sets the alias with the full
/// topic, the next on that topic carries an empty topic and the alias. A client that
/// announced none gets full topics and no alias.
#[test]
fn topic_alias_broker_to_client() {
    let (_dir, b) = start("");
    let mut c = connect(Protocol::V5, "alias-in", true);
    c.properties.topic_alias_maximum = Some(5);
    let (mut aliased, _) = Raw::connect_with(&b.mqtt_addr, &c);
    aliased.subscribe("tc/#", QoS::AtMostOnce);
    let mut plain = Raw::v5(&b.mqtt_addr, "alias-none");
    plain.subscribe("tc/#", QoS::AtMostOnce);
    publish_from(&b.mqtt_addr, "tc/x", "first", false);
    publish_from(&b.mqtt_addr, "tc/x", "second", false);
    let first = aliased.next_msg();
    let second = aliased.next_msg();
    let alias = first.topic_alias.expect("first PUBLISH sets an alias");
    assert!((1..=5).contains(&alias), "alias {alias} out of 1..=5");
    assert_eq!(
        (first.topic.as_str(), first.text()),
        ("tc/x", "first".into())
    );
    assert_eq!(
        (second.topic.as_str(), second.topic_alias, second.text()),
        ("", Some(alias), "second".into())
    );
    for want in ["first", "second"] {
        let m = plain.next_msg();
        assert_eq!(
            (m.topic.as_str(), m.topic_alias, m.text()),
            ("tc/x", None, want.into())
        );
    }
}

/// [MQTT-3.3.2-5]: a message whose Message Expiry Interval (1 s) has passed is not
/// delivered: neither retained to a new subscriber nor queued for an offline session;
/// [MQTT-3.3.2-6]: one not yet expired goes out with what is left of its interval.
#[test]
fn message_expiry() {
    let (_dir, b) = start("");
    let (offline, _) = Raw::connect_with(&b.mqtt_addr, &persistent("offline", true, 600));
    let mut offline = offline;
    offline.subscribe("exp/#", QoS::AtLeastOnce);
    offline.disconnect();
    let mut c = Raw::v5(&b.mqtt_addr, "expirer");
    let mut p = publish("exp/short", b"soon gone", QoS::AtLeastOnce, true);
    p.properties.message_expiry_interval = Some(1);
    assert_eq!(c.publish_with(p), 0);
    let mut p = publish("exp/long", b"stays", QoS::AtLeastOnce, true);
    p.properties.message_expiry_interval = Some(600);
    assert_eq!(c.publish_with(p), 0);
    std::thread::sleep(Duration::from_millis(2500));
    let mut sub = Raw::v5(&b.mqtt_addr, "late");
    sub.subscribe("exp/short", QoS::AtLeastOnce);
    sub.subscribe("exp/long", QoS::AtLeastOnce);
    let m = expect_msg(&mut sub, "exp/long", "stays");
    let left = m.expiry.expect("Message Expiry Interval forwarded");
    assert!((590..600).contains(&left), "remaining expiry {left}");
    expect_only_marker(&b.mqtt_addr, &mut sub, "exp/short");
    let (mut offline, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("offline", false, 600));
    assert!(ack.session_present);
    let m = expect_msg(&mut offline, "exp/long", "stays");
    assert!(m.expiry.is_some_and(|e| e < 600), "{m:?}");
    // Markers from expect_only_marker above, then the next one: the expired message is not
    // among them.
    expect_msg(&mut offline, "exp/short", "MARKER");
    expect_only_marker(&b.mqtt_addr, &mut offline, "exp/short");
}

/// [MQTT-4.3.2-2]/[MQTT-4.3.3-2] as Outpost promises it: PUBACK (QoS 1) and PUBREC (QoS 2)
/// are sent only after the message is committed to the log, so it is readable the moment
/// the acknowledgement arrives. Headers: `mqtt.topic`, `mqtt.qos`, `mqtt.retain` (only
/// when set).
#[test]
fn ack_only_after_commit() {
    let (_dir, b) = start("");
    let mut c = Raw::v5(&b.mqtt_addr, "committer");
    for (i, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce]
        .into_iter()
        .enumerate()
    {
        let payload = format!("commit-{i}");
        let retain = i == 2;
        assert_eq!(c.publish("commit/t", payload.as_bytes(), qos, retain), 0);
        let records = b.consume_json("commit", 100);
        assert_eq!(
            records.len(),
            i + 1,
            "record {i} not readable at its ack: {records:?}"
        );
        let r = &records[i];
        assert_eq!(r["value"], payload);
        assert_eq!(r["key"], "commit/t");
        assert_eq!(header(r, "mqtt.topic"), Some("commit/t"));
        assert_eq!(
            header(r, "mqtt.qos"),
            Some(if qos == QoS::ExactlyOnce { "2" } else { "1" })
        );
        assert_eq!(header(r, "mqtt.retain"), retain.then_some("1"));
    }
}

// ------------------------------------------------------------------------------------------
// SUBSCRIBE
// ------------------------------------------------------------------------------------------

/// Messages received until one with payload `END`, as (topic, payload).
fn until_end(raw: &mut Raw) -> Vec<(String, String)> {
    let mut got = Vec::new();
    loop {
        let m = raw.next_msg();
        if m.text() == "END" {
            return got;
        }
        got.push((m.topic.clone(), m.text()));
    }
}

/// [MQTT-4.7.1-1]..[MQTT-4.7.1-3] (4.7.1.2, 4.7.1.3): `+` matches exactly one level (an
/// empty one too), `#` the parent and any number of levels.
#[test]
fn wildcard_matching() {
    let (_dir, b) = start("");
    let filters = ["w/+/c", "w/#", "w/+", "+/+/c"];
    let mut subs: Vec<Raw> = filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut s = Raw::v5(&b.mqtt_addr, &format!("wild-{i}"));
            s.subscribe(f, QoS::AtLeastOnce);
            s
        })
        .collect();
    let mut p = Raw::v5(&b.mqtt_addr, "wild-pub");
    for topic in ["w/a/c", "w/a/b/c", "w", "w/", "w/a", "x/a/c"] {
        assert_eq!(
            p.publish(topic, topic.as_bytes(), QoS::AtLeastOnce, false),
            0
        );
    }
    // Every filter matches one of the two end markers.
    assert_eq!(p.publish("w/end/c", b"END", QoS::AtLeastOnce, false), 0);
    assert_eq!(p.publish("w/end", b"END", QoS::AtLeastOnce, false), 0);
    let expected: [&[&str]; 4] = [
        &["w/a/c"],
        &["w/a/c", "w/a/b/c", "w", "w/", "w/a"],
        &["w/", "w/a"],
        &["w/a/c", "x/a/c"],
    ];
    for ((sub, filter), want) in subs.iter_mut().zip(filters).zip(expected) {
        let got: Vec<String> = until_end(sub).into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, want, "filter {filter}");
    }
}

/// [MQTT-4.7.2-1]: filters starting with a wildcard do not match topics starting with `$`;
/// `$SYS/#` does.
#[test]
fn sys_not_matched_by_leading_wildcards() {
    let (_dir, b) = start("sys_interval_secs = 1\n");
    let mut hash = Raw::v5(&b.mqtt_addr, "hash");
    hash.subscribe("#", QoS::AtMostOnce);
    let mut plus = Raw::v5(&b.mqtt_addr, "plus");
    plus.subscribe("+/broker/uptime", QoS::AtMostOnce);
    let mut sys = Raw::v5(&b.mqtt_addr, "sys");
    sys.subscribe("$SYS/#", QoS::AtMostOnce);
    // Two rounds of $SYS updates reached `sys`; the others had them routed at the same time.
    for _ in 0..2 {
        sys.recv_until("$SYS/broker/uptime", |p| match p {
            In::Publish(m) if m.topic == "$SYS/broker/uptime" => Some(()),
            _ => None,
        });
    }
    expect_only_marker(&b.mqtt_addr, &mut hash, "z/broker/uptime");
    let m = plus.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.text()),
        ("z/broker/uptime", "MARKER".into())
    );
}

/// `$SYS/broker/uptime` ("N seconds") and `$SYS/broker/clients/connected` (a count that
/// includes the subscriber) are published every `sys_interval_secs`.
#[test]
fn sys_topics_published() {
    let (_dir, b) = start("sys_interval_secs = 1\n");
    let mut sys = Raw::v5(&b.mqtt_addr, "sys-reader");
    sys.subscribe("$SYS/#", QoS::AtMostOnce);
    let mut seen = std::collections::HashMap::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 2 && Instant::now() < deadline {
        let m = sys.next_msg();
        // Retained copies sent at subscribe are from before this client connected.
        let wanted = m.topic == "$SYS/broker/uptime" || m.topic == "$SYS/broker/clients/connected";
        if wanted && !m.retain {
            seen.insert(m.topic.clone(), m.text());
        }
    }
    let uptime = &seen["$SYS/broker/uptime"];
    let secs = uptime
        .strip_suffix(" seconds")
        .expect("uptime is `N seconds`");
    secs.parse::<u64>().expect("uptime seconds");
    let connected: u64 = seen["$SYS/broker/clients/connected"].parse().unwrap();
    assert!(connected >= 1, "clients/connected {connected}");
}

/// [MQTT-3.3.4-2]/[MQTT-3.3.4-3]/[MQTT-3.3.4-4]: overlapping subscriptions of one client
/// give one PUBLISH at the highest granted QoS, carrying both Subscription Identifiers.
#[test]
fn overlapping_subscriptions_one_message_both_ids() {
    let (_dir, b) = start("");
    let mut c = Raw::v5(&b.mqtt_addr, "overlap");
    assert_eq!(
        c.subscribe_with(&[("ov/+", qos_opts(QoS::AtMostOnce))], Some(1)),
        [0]
    );
    assert_eq!(
        c.subscribe_with(&[("ov/#", qos_opts(QoS::AtLeastOnce))], Some(2)),
        [1]
    );
    publish_from(&b.mqtt_addr, "ov/x", "both", false);
    let m = expect_msg(&mut c, "ov/x", "both");
    let mut ids = m.sub_ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    assert_eq!(m.qos, 1, "the highest QoS of the matching subscriptions");
    // No second copy: the next message is the marker (matched by both, once).
    expect_only_marker(&b.mqtt_addr, &mut c, "ov/y");
}

/// [MQTT-3.8.4-8] (v5; 3.1.1 [MQTT-3.8.4-6]): a message is delivered at the lower of its
/// QoS and the subscription's granted QoS.
#[test]
fn delivery_qos_is_the_minimum() {
    let (_dir, b) = start("");
    let mut subs: Vec<Raw> = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .map(|q| {
            let mut s = Raw::v311(&b.mqtt_addr, &format!("min-{}", q as u8));
            s.subscribe("min/t", q);
            s
        })
        .collect();
    let mut p = Raw::v5(&b.mqtt_addr, "min-pub");
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        assert_eq!(p.publish("min/t", &[b'0' + q as u8], q, false), 0);
    }
    for (granted, s) in subs.iter_mut().enumerate() {
        for published in 0..3u8 {
            let m = s.next_msg();
            assert_eq!(m.payload, [b'0' + published]);
            assert_eq!(m.qos, published.min(granted as u8), "sub QoS {granted}");
        }
    }
}

/// [MQTT-3.8.3-3]: with No Local, a client's own messages are not sent back to it; without,
/// they are.
#[test]
fn no_local() {
    let (_dir, b) = start("");
    let mut nl = Raw::v5(&b.mqtt_addr, "nolocal");
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..SubscriptionOptions::default()
    };
    assert_eq!(nl.subscribe_with(&[("nl/t", opts)], None), [1]);
    let mut own = Raw::v5(&b.mqtt_addr, "local");
    own.subscribe("nl/t", QoS::AtLeastOnce);
    assert_eq!(nl.publish("nl/t", b"mine", QoS::AtLeastOnce, false), 0);
    assert_eq!(own.publish("nl/t", b"yours", QoS::AtLeastOnce, false), 0);
    expect_msg(&mut own, "nl/t", "mine");
    expect_msg(&mut own, "nl/t", "yours");
    expect_msg(&mut nl, "nl/t", "yours");
}

/// [MQTT-3.3.1-12]/[MQTT-3.3.1-13]: a live delivery carries RETAIN only for a subscription
/// with Retain As Published.
#[test]
fn retain_as_published() {
    let (_dir, b) = start("");
    let mut rap = Raw::v5(&b.mqtt_addr, "rap");
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_as_published: true,
        ..SubscriptionOptions::default()
    };
    rap.subscribe_with(&[("rap/t", opts)], None);
    let mut plain = Raw::v5(&b.mqtt_addr, "norap");
    plain.subscribe("rap/t", QoS::AtLeastOnce);
    publish_from(&b.mqtt_addr, "rap/t", "kept", true);
    assert!(expect_msg(&mut rap, "rap/t", "kept").retain);
    assert!(!expect_msg(&mut plain, "rap/t", "kept").retain);
}

/// [MQTT-3.3.1-9]..[MQTT-3.3.1-11]: Retain Handling 0 sends retained messages at every
/// subscribe, 1 only when the subscription is new, 2 never.
#[test]
fn retain_handling() {
    let (_dir, b) = start("");
    publish_from(&b.mqtt_addr, "rh/t", "retained", true);
    let opts = |rh| SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_handling: rh,
        ..SubscriptionOptions::default()
    };
    let mut c = Raw::v5(&b.mqtt_addr, "rh0");
    for _ in 0..2 {
        c.subscribe_with(&[("rh/t", opts(0))], None);
        assert!(expect_msg(&mut c, "rh/t", "retained").retain);
    }
    let mut c = Raw::v5(&b.mqtt_addr, "rh1");
    c.subscribe_with(&[("rh/t", opts(1))], None);
    assert!(expect_msg(&mut c, "rh/t", "retained").retain);
    c.subscribe_with(&[("rh/t", opts(1))], None);
    expect_only_marker(&b.mqtt_addr, &mut c, "rh/t");
    let mut c = Raw::v5(&b.mqtt_addr, "rh2");
    c.subscribe_with(&[("rh/t", opts(2))], None);
    expect_only_marker(&b.mqtt_addr, &mut c, "rh/t");
}

/// [MQTT-3.3.4-3]: a PUBLISH carries the Subscription Identifier of the matching
/// subscription, on live and retained deliveries; none without one.
#[test]
fn subscription_identifiers() {
    let (_dir, b) = start("");
    publish_from(&b.mqtt_addr, "sid/r", "old", true);
    let mut c = Raw::v5(&b.mqtt_addr, "sid");
    c.subscribe_with(&[("sid/r", qos_opts(QoS::AtLeastOnce))], Some(42));
    let m = expect_msg(&mut c, "sid/r", "old");
    assert_eq!(m.sub_ids, [42], "retained delivery");
    c.subscribe_with(&[("sid/plain", qos_opts(QoS::AtLeastOnce))], None);
    publish_from(&b.mqtt_addr, "sid/r", "new", false);
    assert_eq!(expect_msg(&mut c, "sid/r", "new").sub_ids, [42]);
    publish_from(&b.mqtt_addr, "sid/plain", "bare", false);
    assert_eq!(
        expect_msg(&mut c, "sid/plain", "bare").sub_ids,
        Vec::<u32>::new()
    );
    // 268,435,455 is the largest identifier.
    c.subscribe_with(
        &[("sid/max", qos_opts(QoS::AtLeastOnce))],
        Some(268_435_455),
    );
    publish_from(&b.mqtt_addr, "sid/max", "max", false);
    assert_eq!(expect_msg(&mut c, "sid/max", "max").sub_ids, [268_435_455]);
}

/// 4.8.2 shared subscriptions: 30 messages to `$share/g/sh/t` with three members: each goes
/// to exactly one member, all arrive; a plain subscriber gets all 30.
#[test]
fn shared_subscription_each_message_once() {
    let (_dir, b) = start("");
    // 4.8.2: retained messages are not sent for a shared subscription (only the plain
    // subscriber below gets this one).
    publish_from(&b.mqtt_addr, "sh/t", "retained", true);
    let mut members: Vec<Raw> = (0..3)
        .map(|i| {
            let mut s = Raw::v5(&b.mqtt_addr, &format!("member-{i}"));
            s.subscribe("$share/g/sh/t", QoS::AtLeastOnce);
            s
        })
        .collect();
    let mut plain = Raw::v5(&b.mqtt_addr, "sh-plain");
    plain.subscribe("sh/t", QoS::AtLeastOnce);
    assert!(expect_msg(&mut plain, "sh/t", "retained").retain);
    let mut p = Raw::v5(&b.mqtt_addr, "sh-pub");
    for i in 0..30 {
        assert_eq!(
            p.publish("sh/t", format!("m{i}").as_bytes(), QoS::AtLeastOnce, false),
            0
        );
    }
    let mut got: Vec<(usize, String)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 30 && Instant::now() < deadline {
        for (i, m) in members.iter_mut().enumerate() {
            if let Ok(In::Publish(msg)) = m.try_recv(Duration::from_millis(20)) {
                m.ack(&msg);
                got.push((i, msg.text()));
            }
        }
    }
    // Anything more would be a second copy.
    for m in members.iter_mut() {
        match m.try_recv(Duration::from_millis(200)) {
            Err(RecvError::Timeout) => {}
            other => panic!("unexpected after all 30: {other:?}"),
        }
    }
    let mut payloads: Vec<String> = got.iter().map(|(_, p)| p.clone()).collect();
    payloads.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(payloads, want, "each message exactly once across the group");
    let used: std::collections::HashSet<usize> = got.iter().map(|(i, _)| *i).collect();
    assert!(used.len() > 1, "the group shares the load, got {got:?}");
    for i in 0..30 {
        expect_msg(&mut plain, "sh/t", &format!("m{i}"));
    }
}

/// [MQTT-3.11.3-1]/3.11.3: UNSUBACK carries one reason per filter: 0x00 for a removed
/// subscription, 0x11 (No subscription existed) otherwise; the removed one gets nothing more.
/// 3.1.1: UNSUBACK has no payload [MQTT-3.10.4-5].
#[test]
fn unsubscribe_reason_codes() {
    let (_dir, b) = start("");
    let mut c = Raw::v5(&b.mqtt_addr, "unsub");
    c.subscribe("us/a", QoS::AtLeastOnce);
    c.subscribe("us/keep", QoS::AtLeastOnce);
    assert_eq!(c.unsubscribe(&["us/a", "us/never"]), [0x00, 0x11]);
    publish_from(&b.mqtt_addr, "us/a", "after", false);
    expect_only_marker(&b.mqtt_addr, &mut c, "us/keep");
    let mut c = Raw::v311(&b.mqtt_addr, "unsub3");
    assert_eq!(c.unsubscribe(&["us/never"]), Vec::<u8>::new());
}

// ------------------------------------------------------------------------------------------
// Retained messages
// ------------------------------------------------------------------------------------------

/// [MQTT-3.3.1-5]..[MQTT-3.3.1-8]: a retained message replaces the previous one of its
/// topic and is sent with RETAIN=1 to new subscribers; an empty retained message clears it
/// and is not kept.
#[test]
fn retained_set_replace_clear() {
    let (_dir, b) = start("");
    publish_from(&b.mqtt_addr, "ret/t", "v1", true);
    publish_from(&b.mqtt_addr, "ret/t", "v2", true);
    let mut s = Raw::v5(&b.mqtt_addr, "ret-1");
    s.subscribe("ret/#", QoS::AtLeastOnce);
    assert!(expect_msg(&mut s, "ret/t", "v2").retain);
    expect_only_marker(&b.mqtt_addr, &mut s, "ret/m");
    publish_from(&b.mqtt_addr, "ret/t", "", true);
    let mut s = Raw::v5(&b.mqtt_addr, "ret-2");
    s.subscribe("ret/t", QoS::AtLeastOnce);
    expect_only_marker(&b.mqtt_addr, &mut s, "ret/t");
}

/// (3.1.1) [MQTT-3.3.1-8]: a retained message sent because of a new subscription has
/// RETAIN=1; [MQTT-3.3.1-9]: one sent to an existing subscription has RETAIN=0.
#[test]
fn retain_flag_v311() {
    let (_dir, b) = start("");
    let mut live = Raw::v311(&b.mqtt_addr, "live3");
    live.subscribe("rf/t", QoS::AtLeastOnce);
    let mut p = Raw::v311(&b.mqtt_addr, "pub3");
    assert_eq!(p.publish("rf/t", b"r", QoS::AtLeastOnce, true), 0);
    assert!(
        !expect_msg(&mut live, "rf/t", "r").retain,
        "live delivery has RETAIN=0"
    );
    let mut late = Raw::v311(&b.mqtt_addr, "late3");
    late.subscribe("rf/t", QoS::AtLeastOnce);
    assert!(
        expect_msg(&mut late, "rf/t", "r").retain,
        "on subscribe RETAIN=1"
    );
}

// ------------------------------------------------------------------------------------------
// Wills
// ------------------------------------------------------------------------------------------

/// Gives `c` a QoS 1 will on `topic`.
fn with_will<'a>(c: &mut Connect<'a>, topic: &'a str, payload: &'a [u8]) {
    c.will = Some(Will {
        topic,
        payload,
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    });
}

/// [MQTT-3.1.2-8] (3.1.1 and 5.0): a connection that ends without DISCONNECT publishes its
/// will.
#[test]
fn will_on_abrupt_close() {
    let (_dir, b) = start("");
    let mut sub = Raw::v5(&b.mqtt_addr, "will-watch");
    sub.subscribe("will/#", QoS::AtLeastOnce);
    for (protocol, id) in [(Protocol::V311, "will3"), (Protocol::V5, "will5")] {
        let mut c = connect(protocol, id, true);
        let topic = format!("will/{id}");
        with_will(&mut c, &topic, b"gone");
        let (raw, _) = Raw::connect_with(&b.mqtt_addr, &c);
        raw.abort();
        let m = expect_msg(&mut sub, &topic, "gone");
        assert_eq!(m.qos, 1);
    }
    // [MQTT-3.1.2-17]: a will with Will Retain 1 is published as a retained message.
    let mut c = connect(Protocol::V5, "will-r", true);
    with_will(&mut c, "will/retained", b"kept");
    if let Some(w) = c.will.as_mut() {
        w.retain = true;
    }
    Raw::connect_with(&b.mqtt_addr, &c).0.abort();
    expect_msg(&mut sub, "will/retained", "kept");
    let mut late = Raw::v5(&b.mqtt_addr, "will-late");
    late.subscribe("will/retained", QoS::AtLeastOnce);
    assert!(expect_msg(&mut late, "will/retained", "kept").retain);
}

/// [MQTT-3.14.4-3] / (3.1.1) [MQTT-3.1.2-10]: a normal DISCONNECT discards the will; v5
/// DISCONNECT 0x04 (Disconnect with Will Message) publishes it.
#[test]
fn disconnect_and_will() {
    let (_dir, b) = start("");
    let mut sub = Raw::v5(&b.mqtt_addr, "dw-watch");
    sub.subscribe("dw/#", QoS::AtLeastOnce);
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut c = connect(protocol, "dw-normal", true);
        with_will(&mut c, "dw/normal", b"must not");
        Raw::connect_with(&b.mqtt_addr, &c).0.disconnect();
    }
    let mut c = connect(Protocol::V5, "dw-04", true);
    with_will(&mut c, "dw/04", b"asked for");
    let (mut raw, _) = Raw::connect_with(&b.mqtt_addr, &c);
    raw.disconnect_with(reason::DISCONNECT_WITH_WILL);
    // The 0x04 will comes after the normal disconnections, which published nothing.
    expect_msg(&mut sub, "dw/04", "asked for");
    expect_only_marker(&b.mqtt_addr, &mut sub, "dw/m");
}

/// [MQTT-3.1.3-9] and 3.1.3.2.2 Will Delay Interval (2 s): a client that reconnects within
/// the delay resumes its session and its will is not sent; one that stays away has its will
/// published after the delay, not before.
#[test]
fn will_delay_interval() {
    let (_dir, b) = start("");
    let mut sub = Raw::v5(&b.mqtt_addr, "wd-watch");
    sub.subscribe("wd/#", QoS::AtLeastOnce);
    let delayed = |id: &'static str, topic: &'static str| {
        let mut c = persistent(id, true, 60);
        c.will = Some(Will {
            topic,
            payload: b"late will",
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(2),
                ..Properties::default()
            },
        });
        c
    };
    let back = Raw::connect_with(&b.mqtt_addr, &delayed("wd-back", "wd/back")).0;
    let away = Raw::connect_with(&b.mqtt_addr, &delayed("wd-away", "wd/away")).0;
    back.abort();
    away.abort();
    let gone_at = Instant::now();
    let (mut back, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("wd-back", false, 60));
    assert!(ack.session_present);
    match sub.try_recv(Duration::from_millis(1500)) {
        Err(RecvError::Timeout) => {}
        other => panic!("nothing may arrive before the will delay: {other:?}"),
    }
    let m = expect_msg(&mut sub, "wd/away", "late will");
    assert!(
        gone_at.elapsed() >= Duration::from_secs(2),
        "will sent before its delay: {m:?}"
    );
    // wd-back's will was due at the same time: it must not follow.
    expect_only_marker(&b.mqtt_addr, &mut sub, "wd/m");
    back.ping();
}

// ------------------------------------------------------------------------------------------
// Limits and robustness
// ------------------------------------------------------------------------------------------

/// With `max_connections = 2`, a third client gets CONNACK 0x89 Server busy (v5) / return
/// code 0x03 Server unavailable (3.1.1) and the close; the first two are untouched.
#[test]
fn max_connections() {
    let (_dir, b) = start("max_connections = 2\n");
    let mut one = Raw::v5(&b.mqtt_addr, "mc-1");
    let mut two = Raw::v311(&b.mqtt_addr, "mc-2");
    let (mut third, ack) = Raw::handshake(&b.mqtt_addr, &connect(Protocol::V5, "mc-3", true));
    assert_eq!(ack.code, reason::SERVER_BUSY);
    assert_eq!(third.closed(WAIT), vec![]);
    let (mut fourth, ack) = Raw::handshake(&b.mqtt_addr, &connect(Protocol::V311, "mc-4", true));
    assert_eq!(ack.code, 0x03);
    assert_eq!(fourth.closed(WAIT), vec![]);
    one.ping();
    two.ping();
}

/// [MQTT-3.3.2-15]..[MQTT-3.3.2-20] (request/response and user properties): the server
/// forwards Payload Format Indicator, Content Type, Response Topic, Correlation Data and User
/// Properties unchanged and in order, and the log record carries them as headers.
#[test]
fn request_response_and_user_properties_pass_through() {
    let (_dir, b) = start("");
    let mut sub = Raw::v5(&b.mqtt_addr, "rr-sub");
    sub.subscribe("rr/#", QoS::AtLeastOnce);
    let mut users = Vec::new();
    outpost::mqtt::codec::encode_user_properties([("k", "v1"), ("k", "v2"), ("z", "")], &mut users)
        .unwrap();
    let mut p = publish("rr/req", b"{\"q\":1}", QoS::AtLeastOnce, false);
    p.properties = Properties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json"),
        response_topic: Some("rr/reply/42"),
        correlation_data: Some(b"\x00\x01corr"),
        user_properties: outpost::mqtt::packet::UserProperties { block: &users },
        ..Properties::default()
    };
    let mut publisher = Raw::v5(&b.mqtt_addr, "rr-pub");
    assert_eq!(publisher.publish_with(p), reason::SUCCESS);
    let m = sub.next_msg();
    assert_eq!(m.payload_format, Some(1));
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.response_topic.as_deref(), Some("rr/reply/42"));
    assert_eq!(m.correlation_data.as_deref(), Some(&b"\x00\x01corr"[..]));
    let pairs: Vec<(&str, &str)> = m
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(pairs, [("k", "v1"), ("k", "v2"), ("z", "")]);
    let records = b.consume_json("rr", 10);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(header(r, "mqtt.response_topic"), Some("rr/reply/42"));
    assert_eq!(header(r, "mqtt.content_type"), Some("application/json"));
    assert_eq!(header(r, "mqtt.payload_format"), Some("1"));
    assert_eq!(header(r, "z"), Some(""));
}

/// Limits: `max_topic_levels` bounds topic names (PUBLISH: v5 DISCONNECT 0x90 Topic Name
/// invalid, [MQTT-3.3.2-2] family) and filters (SUBACK 0x8F Topic Filter invalid,
/// [MQTT-3.9.3-1] reason codes); names and filters within the limit work.
#[test]
fn topic_levels_limit() {
    let (_dir, b) = start("max_topic_levels = 3\n");
    let mut sub = Raw::v5(&b.mqtt_addr, "levels-sub");
    let opts = qos_opts(QoS::AtLeastOnce);
    let reasons = sub.subscribe_with(&[("l/+/c", opts), ("l/b/c/d", opts)], None);
    assert_eq!(reasons, vec![1, reason::TOPIC_FILTER_INVALID]);
    publish_from(&b.mqtt_addr, "l/b/c", "three levels", false);
    expect_msg(&mut sub, "l/b/c", "three levels");
    let mut p = publish("l/b/c/d", b"x", QoS::AtLeastOnce, false);
    p.packet_id = 1;
    let mut c = Raw::v5(&b.mqtt_addr, "levels-pub");
    c.send(&Packet::Publish(p));
    assert_eq!(c.disconnected_with(), reason::TOPIC_NAME_INVALID);
}

/// Limits: the per-session queue bound and its overflow rule (config docs): an offline
/// persistent session holds at most `max_queued_messages` QoS 1 messages; later ones are
/// dropped (and counted), the oldest are delivered, in order, on resume. The log has all.
#[test]
fn session_queue_bound_drops_newest() {
    let (_dir, b) = start("max_queued_messages = 3\n");
    let mut sub = Raw::handshake(&b.mqtt_addr, &persistent("bounded", true, 300)).0;
    sub.subscribe("bq/#", QoS::AtLeastOnce);
    sub.disconnect();
    for i in 0..5 {
        publish_from(&b.mqtt_addr, "bq/t", &format!("m{i}"), false);
    }
    let (mut sub, ack) = Raw::handshake(&b.mqtt_addr, &persistent("bounded", false, 300));
    assert!(ack.session_present);
    for i in 0..3 {
        let m = expect_msg(&mut sub, "bq/t", &format!("m{i}"));
        sub.ack(&m);
    }
    expect_only_marker(&b.mqtt_addr, &mut sub, "bq/t");
    assert_eq!(
        b.consume_json("bq", 100).len(),
        6,
        "every message is in the log"
    );
}

/// 4.13 / "a connection's error closes only it": while other sockets throw garbage at the
/// broker (junk bytes, truncated and malformed packets, a huge announced length, CONNECT
/// floods), a subscriber keeps receiving every message in order.
#[test]
fn bad_clients_do_not_disturb_others() {
    let (_dir, b) = start("max_packet_bytes = 4096\n");
    let mut sub = Raw::v5(&b.mqtt_addr, "steady-sub");
    sub.subscribe("steady/t", QoS::AtLeastOnce);
    let mut p = Raw::v311(&b.mqtt_addr, "steady-pub");
    let garbage: [&[u8]; 8] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x00, 0x00, 0x00, 0x00],
        &[0x10, 0xFF, 0xFF, 0xFF, 0x7F],
        &[0x10, 0x05, 0x00, 0x04, b'M'],
        &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
        &[0xF0, 0x00],
        &[
            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x01, 0x00, 0x3C, 0x00, 0x00,
        ],
        &[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'#'],
    ];
    let mut bad = Vec::new();
    for i in 0..40 {
        let mut r = Raw::open(&b.mqtt_addr);
        r.send_bytes(garbage[i % garbage.len()]);
        bad.push(r);
        let payload = format!("s{i}");
        assert_eq!(
            p.publish("steady/t", payload.as_bytes(), QoS::AtLeastOnce, false),
            0
        );
        if i % 10 == 9 {
            // Half-open sockets that never send anything, then vanish.
            bad.drain(..5).for_each(Raw::abort);
        }
    }
    for i in 0..40 {
        expect_msg(&mut sub, "steady/t", &format!("s{i}"));
    }
    sub.ping();
    p.ping();
}

// ------------------------------------------------------------------------------------------
// Session resumption: messages in flight
// ------------------------------------------------------------------------------------------

/// [MQTT-4.4.0-1]/[MQTT-3.3.1-1]: on resumption the broker re-sends an unacknowledged QoS 1
/// PUBLISH with DUP=1 and its original packet id, and a QoS 2 PUBREL whose PUBCOMP did not
/// arrive; each once.
#[test]
fn inflight_resent_on_resume() {
    let (_dir, b) = start("");
    let (mut sub, _) = Raw::connect_with(&b.mqtt_addr, &persistent("resume", true, 600));
    sub.subscribe("rs1/t", QoS::AtLeastOnce);
    sub.subscribe("rs2/t", QoS::ExactlyOnce);
    publish_from(&b.mqtt_addr, "rs1/t", "acked", false);
    expect_msg(&mut sub, "rs1/t", "acked");
    publish_from(&b.mqtt_addr, "rs1/t", "q1", false);
    let q1 = sub.next_msg_noack();
    let mut p = Raw::v5(&b.mqtt_addr, "rs-pub");
    assert_eq!(p.publish("rs2/t", b"q2", QoS::ExactlyOnce, false), 0);
    let q2 = sub.next_msg_noack();
    assert_eq!((q2.text().as_str(), q2.qos), ("q2", 2));
    sub.send_response(ResponseKind::Rec, q2.packet_id);
    let rel = sub.recv_until("PUBREL", |p| {
        matches!(p, In::PubRel(..)).then_some(p.clone())
    });
    assert_eq!(rel, In::PubRel(q2.packet_id, 0));
    sub.abort();
    let (mut sub, ack) = Raw::connect_with(&b.mqtt_addr, &persistent("resume", false, 600));
    assert!(ack.session_present);
    let again = sub.next_msg_noack();
    assert_eq!(
        (again.text().as_str(), again.dup, again.packet_id),
        ("q1", true, q1.packet_id),
        "{again:?}"
    );
    sub.send_response(ResponseKind::Ack, again.packet_id);
    let rel = sub.recv_until("PUBREL", |p| {
        matches!(p, In::PubRel(..)).then_some(p.clone())
    });
    assert_eq!(
        rel,
        In::PubRel(q2.packet_id, 0),
        "PUBREL re-sent with its packet id"
    );
    sub.send_response(ResponseKind::Comp, q2.packet_id);
    expect_only_marker(&b.mqtt_addr, &mut sub, "rs1/t");
    expect_only_marker(&b.mqtt_addr, &mut sub, "rs2/t");
}
