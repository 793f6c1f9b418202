//! ACL enforcement over MQTT against the real binary (rules: `tests/common/auth.rs` `ACL`):
//! denied publishes get v5 0x87 / a v3.1.1 acknowledgement and are neither stored nor
//! routed; denied subscriptions get 0x87 / 0x80 and wider filters are refused (so retained
//! messages outside the grant never reach the client); `%u` and `%c`; wills checked at
//! CONNECT; one log line per (client, rule) however many denials, all of them counted;
//! SIGHUP changes the outcome without a restart, and a broken file keeps the old rules.

mod common;

use std::process::Command;
use std::time::Duration;

use common::auth::{
    add_user, consume_as_admin, output, passwd, password_of, secure_broker, sighup, ACL,
};
use common::mqtt::{connect, publish, qos_opts, In, Raw, RecvError};
use common::{header, temp_dir, Broker};
use outpost::mqtt::packet::{Packet, Protocol, QoS, Will};

/// `[mqtt]` for the tests that read `$SYS` (updated every second).
const SYS_EVERY_SECOND: &str = "[mqtt]\nlisten = \"127.0.0.1:0\"\nsys_interval_secs = 1\n";

/// Connects `user` (password from the test users) with `client_id`; asserts acceptance.
fn login(b: &Broker, protocol: Protocol, user: &str, client_id: &str) -> Raw {
    let mut c = connect(protocol, client_id, true);
    c.username = Some(user);
    c.password = Some(password_of(user).as_bytes());
    Raw::connect_with(&b.mqtt_addr, &c).0
}

/// Waits (bounded) for the `$SYS` topic `topic` to carry `value` on `sub`'s subscription.
fn wait_sys(sub: &mut Raw, topic: &str, value: &str) {
    sub.recv_until(&format!("{topic} = {value}"), |p| match p {
        In::Publish(m) if m.topic == topic && m.text() == value => Some(()),
        _ => None,
    });
}

#[test]
fn denied_publish_is_answered_and_never_stored_or_routed() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), ACL, "");
    let mut admin = login(&b, Protocol::V5, "admin", "watcher");
    admin.subscribe("users/#", QoS::AtLeastOnce);

    let mut v5 = login(&b, Protocol::V5, "alice", "alice-5");
    assert_eq!(
        v5.publish("users/bob/a", b"no-1", QoS::AtLeastOnce, false),
        0x87
    );
    assert_eq!(
        v5.publish("users/bob/b", b"no-2", QoS::ExactlyOnce, false),
        0x87
    );
    v5.publish("users/bob/c", b"no-3", QoS::AtMostOnce, false);
    assert_eq!(
        v5.publish("users/alice/a", b"yes-1", QoS::AtLeastOnce, false),
        0
    );
    // Pipelined, allowed and denied: PUBACKs in PUBLISH order [MQTT-4.6.0-2].
    let sent: Vec<(u16, &str)> = ["users/alice/p", "users/bob/p", "users/alice/p"]
        .into_iter()
        .map(|topic| {
            let mut p = publish(topic, b"pipelined", QoS::AtLeastOnce, false);
            p.packet_id = v5.pid();
            v5.send(&Packet::Publish(p));
            (p.packet_id, topic)
        })
        .collect();
    let acks: Vec<(u16, u8)> = (0..3)
        .map(|_| {
            v5.recv_until("PUBACK", |p| match p {
                In::PubAck(id, reason) => Some((*id, *reason)),
                _ => None,
            })
        })
        .collect();
    let expected: Vec<(u16, u8)> = sent
        .iter()
        .map(|&(id, t)| (id, if t == "users/bob/p" { 0x87 } else { 0 }))
        .collect();
    assert_eq!(acks, expected);

    // 3.1.1 has no negative PUBACK: the denied message is acknowledged and discarded.
    let mut v3 = login(&b, Protocol::V311, "alice", "alice-3");
    assert_eq!(
        v3.publish("users/bob/d", b"no-4", QoS::AtLeastOnce, false),
        0
    );
    assert_eq!(
        v3.publish("users/bob/e", b"no-5", QoS::ExactlyOnce, false),
        0
    );
    v3.publish("users/bob/f", b"no-6", QoS::AtMostOnce, true);
    assert_eq!(
        v3.publish("users/alice/b", b"yes-2", QoS::AtLeastOnce, false),
        0
    );
    v3.ping();

    // The subscriber gets the allowed messages, in order, and nothing denied.
    for expected in ["yes-1", "pipelined", "pipelined", "yes-2"] {
        assert_eq!(admin.next_msg().text(), expected);
    }
    let records = consume_as_admin(&b, "users", 100);
    let values: Vec<&str> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["yes-1", "pipelined", "pipelined", "yes-2"]);
    assert_eq!(header(&records[0], "mqtt.topic"), Some("users/alice/a"));
    // The denied retained message was not kept either: retained messages follow the
    // SUBACK at once, so they would be here before the PINGRESP.
    let mut late = login(&b, Protocol::V5, "admin", "late");
    late.subscribe("users/bob/#", QoS::AtMostOnce);
    late.ping();
    let after = late.try_recv(Duration::ZERO);
    assert_eq!(
        after,
        Err(RecvError::Timeout),
        "a denied retained message was kept"
    );
    b.stop();
}

#[test]
fn denied_subscriptions_get_0x80_and_0x87_and_wider_filters_are_refused() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), ACL, "");
    let filters = [
        ("users/alice/#", qos_opts(QoS::AtLeastOnce)),
        ("users/#", qos_opts(QoS::AtLeastOnce)),
        ("users/bob/#", qos_opts(QoS::AtMostOnce)),
        ("#", qos_opts(QoS::AtMostOnce)),
        ("public/+/x", qos_opts(QoS::AtMostOnce)),
        ("$share/g/users/alice/x", qos_opts(QoS::AtMostOnce)),
        ("$share/g/users/+/x", qos_opts(QoS::AtMostOnce)),
    ];
    let mut v3 = login(&b, Protocol::V311, "alice", "alice-3");
    assert_eq!(
        v3.subscribe_with(&filters, None),
        [1, 0x80, 0x80, 0x80, 0, 0, 0x80]
    );
    let mut v5 = login(&b, Protocol::V5, "alice", "alice-5");
    assert_eq!(
        v5.subscribe_with(&filters, None),
        [1, 0x87, 0x87, 0x87, 0, 0, 0x87]
    );

    // Retained messages: a wider filter is refused, so nothing outside the grant arrives.
    let mut admin = login(&b, Protocol::V5, "admin", "publisher");
    admin.publish("users/bob/r", b"bob's", QoS::AtLeastOnce, true);
    admin.publish("users/alice/r", b"alice's", QoS::AtLeastOnce, true);
    let mut c = login(&b, Protocol::V5, "alice", "alice-r");
    let wide = c.subscribe_with(&[("users/+/r", qos_opts(QoS::AtMostOnce))], None);
    assert_eq!(wide, [0x87]);
    c.subscribe("users/alice/r", QoS::AtMostOnce);
    let m = c.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.text().as_str()),
        ("users/alice/r", "alice's")
    );
    c.ping();

    // mosquitto_sub, MQTT 5, with a denied filter: it reports the refusal.
    let port = b.mqtt_port().to_string();
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-V",
        "mqttv5",
        "-u",
        "alice",
    ]);
    cmd.args(["-P", "alice-pw", "-t", "users/bob/#", "-W", "5", "-d"]);
    let out = output(cmd, "");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("denied") || text.contains("135"), "{text}");
    b.stop();
}

#[test]
fn percent_u_and_percent_c_never_widen() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), ACL, "");
    let mut a = login(&b, Protocol::V5, "alice", "dev-a");
    let q1 = QoS::AtLeastOnce;
    assert_eq!(a.publish("users/alice/x", b"1", q1, false), 0);
    assert_eq!(a.publish("clients/dev-a/x", b"1", q1, false), 0);
    assert_eq!(a.publish("clients/dev-b/x", b"1", q1, false), 0x87);
    assert_eq!(a.publish("users/bob/x", b"1", q1, false), 0x87);
    let sub = a.subscribe_with(&[("clients/dev-a/#", qos_opts(q1))], None);
    assert_eq!(sub, [1]);
    // A client id holding a wildcard or a '/' does not make the rule match more.
    let mut hash = login(&b, Protocol::V5, "bob", "#");
    let wide = [
        ("clients/#", qos_opts(q1)),
        ("clients/+/x", qos_opts(q1)),
        ("clients/dev-a/x", qos_opts(q1)),
    ];
    assert_eq!(hash.subscribe_with(&wide, None), [0x87, 0x87, 0x87]);
    assert_eq!(hash.publish("users/bob/x", b"1", q1, false), 0);
    let mut slash = login(&b, Protocol::V5, "bob", "a/b");
    assert_eq!(slash.publish("clients/a/b/x", b"1", q1, false), 0x87);
    b.stop();
}

#[test]
fn a_will_on_a_denied_topic_refuses_the_connection() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), ACL, "");
    for (protocol, refused) in [(Protocol::V5, 0x87), (Protocol::V311, 5)] {
        for (topic, code) in [("users/bob/will", refused), ("users/alice/will", 0)] {
            let mut c = connect(protocol, "willing", true);
            c.username = Some("alice");
            c.password = Some(b"alice-pw");
            let p = publish(topic, b"gone", QoS::AtLeastOnce, false);
            c.will = Some(Will {
                qos: p.qos,
                retain: false,
                topic,
                payload: b"gone",
                properties: Default::default(),
            });
            assert_eq!(Raw::handshake(&b.mqtt_addr, &c).1.code, code, "{topic}");
        }
    }
    b.stop();
}

#[test]
fn one_log_line_per_client_and_rule_and_every_denial_counted() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), ACL, SYS_EVERY_SECOND);
    let mut a = login(&b, Protocol::V5, "alice", "hammer");
    for i in 0..100 {
        let topic = format!("users/bob/{i}");
        assert_eq!(a.publish(&topic, b"x", QoS::AtLeastOnce, false), 0x87);
    }
    let denied = a.subscribe_with(&[("users/bob/#", qos_opts(QoS::AtMostOnce))], None);
    assert_eq!(denied, [0x87]);
    let mut wrong = connect(Protocol::V5, "wrong", true);
    wrong.username = Some("alice");
    wrong.password = Some(b"nope");
    assert_eq!(Raw::handshake(&b.mqtt_addr, &wrong).1.code, 0x86);
    let mut admin = login(&b, Protocol::V5, "admin", "sys");
    admin.subscribe("$SYS/broker/#", QoS::AtMostOnce);
    wait_sys(&mut admin, "$SYS/broker/acl/denied/publish", "100");
    wait_sys(&mut admin, "$SYS/broker/acl/denied/subscribe", "1");
    wait_sys(&mut admin, "$SYS/broker/auth/failures", "1");
    let log = b.stop();
    let lines = log
        .lines()
        .filter(|l| l.contains("ACL denied") && l.contains("hammer") && l.contains("publish"))
        .count();
    assert_eq!(lines, 1, "{log}");
}

#[test]
fn sighup_changes_the_outcome_and_a_broken_file_keeps_the_rules() {
    let dir = temp_dir();
    let (b, acl_file) = secure_broker(dir.path(), ACL, SYS_EVERY_SECOND);
    let mut admin = login(&b, Protocol::V5, "admin", "sys");
    admin.subscribe("$SYS/broker/auth/#", QoS::AtMostOnce);
    let mut a = login(&b, Protocol::V5, "alice", "alice-live");
    assert_eq!(a.publish("extra/x", b"1", QoS::AtLeastOnce, false), 0x87);
    let mut carol = connect(Protocol::V5, "carol", true);
    carol.username = Some("carol");
    carol.password = Some(b"carol-pw");
    assert_eq!(Raw::handshake(&b.mqtt_addr, &carol).1.code, 0x86);

    let mut bob = login(&b, Protocol::V5, "bob", "bob-live");
    bob.subscribe("public/#", QoS::AtMostOnce);
    bob.subscribe("users/bob/#", QoS::AtMostOnce);

    // New rules (alice may publish to extra/, nobody may read public/ any more) and a new
    // user, then SIGHUP: the live sessions and new logins see them.
    let grant = "\n[[rule]]\nuser = \"alice\"\naccess = \"allow\"\nactions = [\"publish\"]\ntopics = [\"extra/#\"]\n";
    let rules = ACL.replace("public/#", "open/#");
    std::fs::write(&acl_file, format!("{rules}{grant}")).unwrap();
    add_user(&dir.path().join("passwd"), "carol", "carol-pw");
    sighup(&b);
    wait_sys(&mut admin, "$SYS/broker/auth/reloads", "1");
    assert_eq!(a.publish("extra/x", b"2", QoS::AtLeastOnce, false), 0);
    assert_eq!(Raw::handshake(&b.mqtt_addr, &carol).1.code, 0);
    // The revoked subscription delivers nothing more; the other one goes on.
    admin.publish("public/x", b"revoked", QoS::AtLeastOnce, false);
    admin.publish("users/bob/x", b"still", QoS::AtLeastOnce, false);
    assert_eq!(bob.next_msg().text(), "still");

    // A broken file: the reload fails, names the file and line, and the rules stay.
    std::fs::write(&acl_file, "[[rule]]\naccess = \"allow\"\ntopics = 7\n").unwrap();
    sighup(&b);
    wait_sys(&mut admin, "$SYS/broker/auth/reload_failures", "1");
    assert_eq!(a.publish("extra/y", b"3", QoS::AtLeastOnce, false), 0);
    assert_eq!(
        a.publish("users/bob/y", b"3", QoS::AtLeastOnce, false),
        0x87
    );
    let log = b.stop();
    let acl_path = acl_file.display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("reload failed") && l.contains(&acl_path) && l.contains("line 3")),
        "{log}"
    );
}

/// SIGHUP after `outpost passwd delete` / a password change logs the user out: a live MQTT 5
/// connection gets DISCONNECT 0x87 at its next packet (even a PINGREQ), a 3.1.1 one is closed,
/// a binary-protocol client gets `NOT_AUTHORIZED` and is closed; the new password logs in,
/// the old one no longer does, and users whose entry did not change stay connected.
#[test]
fn a_reload_logs_out_removed_users_and_changed_passwords() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), "", SYS_EVERY_SECOND);
    let passwd_file = dir.path().join("passwd");
    let file = passwd_file.to_str().unwrap();
    let mut admin = login(&b, Protocol::V5, "admin", "sys");
    admin.subscribe("$SYS/broker/auth/#", QoS::AtMostOnce);
    let mut bob5 = login(&b, Protocol::V5, "bob", "bob-5");
    bob5.subscribe("users/bob/#", QoS::AtLeastOnce);
    let mut bob3 = login(&b, Protocol::V311, "bob", "bob-3");
    let mut alice = login(&b, Protocol::V5, "alice", "alice-5");
    let mut dev = login(&b, Protocol::V311, "dev", "dev-3");
    let rt = common::runtime();
    let wire = |user: &str| {
        let creds = outpost::client::Credentials {
            user: user.to_owned(),
            password: password_of(user).to_owned(),
        };
        rt.block_on(outpost::client::Client::connect_with(
            &b.addr,
            user,
            Some(&creds),
        ))
        .unwrap()
    };
    let (reader, admin_wire) = (wire("reader"), wire("admin"));
    rt.block_on(admin_wire.create_topic("t", 1, None, None, outpost_firmware::Compression::None))
        .unwrap();

    for user in ["bob", "reader"] {
        let out = passwd(&["delete", file, user], "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "passwd delete {user}: {err}");
    }
    add_user(&passwd_file, "alice", "alice-new");
    sighup(&b);
    wait_sys(&mut admin, "$SYS/broker/auth/reloads", "1");

    bob5.send(&Packet::PingReq);
    assert_eq!(bob5.disconnected_with(), 0x87, "removed user, MQTT 5");
    bob3.send(&Packet::PingReq);
    bob3.closed(Duration::from_secs(10));
    alice.send(&Packet::PingReq);
    assert_eq!(alice.disconnected_with(), 0x87, "changed password, MQTT 5");
    // Users whose entry is unchanged stay.
    dev.ping();
    admin.ping();
    let still = rt.block_on(admin_wire.list_topics());
    assert!(still.is_ok(), "{still:?}");
    let revoked = rt.block_on(reader.list_topics());
    match revoked {
        Err(outpost::client::ClientError::Broker {
            code, ref message, ..
        }) => {
            assert_eq!(
                code,
                outpost_firmware::ErrorCode::NOT_AUTHORIZED,
                "{message}"
            );
            assert!(message.contains("revoked"), "{message}");
        }
        other => panic!("a removed user's wire request: {other:?}"),
    }

    // The new password logs in, the old one does not, the removed user does not.
    let mut c = connect(Protocol::V5, "alice-again", true);
    c.username = Some("alice");
    c.password = Some(b"alice-new");
    assert_eq!(Raw::handshake(&b.mqtt_addr, &c).1.code, 0);
    c.password = Some(password_of("alice").as_bytes());
    assert_eq!(Raw::handshake(&b.mqtt_addr, &c).1.code, 0x86);
    let mut c = connect(Protocol::V5, "bob-again", true);
    c.username = Some("bob");
    c.password = Some(password_of("bob").as_bytes());
    assert_eq!(Raw::handshake(&b.mqtt_addr, &c).1.code, 0x86);
    let log = b.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("login revoked") && l.contains("bob")),
        "{log}"
    );
}
