//! Device sessions on the binary protocol against the real binary, in raw frames over a
//! `TcpStream`: `DeviceHello` with and without a stored config (pushed only to an older or
//! absent version), predefined and registered aliases, `Reading` and `ProduceAlias` with and
//! without acks and their records in the log, unknown aliases, `ConfigRequest`, `Sleep`,
//! tokens (wrong ones refused, closed and counted), a required login with an ACL `device`
//! rule, the device metrics, and device status across a graceful restart. Devices are set up
//! with the real `outpost devices` CLI.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::auth::{cli_as, consume_as_admin, secure_broker};
use common::{temp_dir, Broker};
use outpost_firmware::{
    codec, AckMode, DeviceConfig, ErrorCode, Frame, Record, Records, SeqWriter, PROTOCOL_VERSION,
};

/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a status that changes after a close is polled (20 ms apart).
const POLLS: usize = 500;

/// Device d1: alias 1 → `temperature` (broker's choice of partition), alias 2 → `humidity`
/// partition 1.
const D1: &str = "gateway = \"127.0.0.1:7883\"\nsample_interval_ms = 5000\n\
[[aliases]]\nalias = 1\ntopic = \"temperature\"\n\
[[aliases]]\nalias = 2\ntopic = \"humidity\"\npartition = 1\n";

/// A raw binary-protocol connection: frames out, whole frames (prefix included) back.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and says `DeviceHello`; returns the connection and the first reply.
    fn device(addr: &str, id: &str, token: &[u8], held: Option<u32>) -> (Self, Vec<u8>) {
        let mut w = Self::connect(addr);
        w.send(&Frame::DeviceHello {
            version: PROTOCOL_VERSION,
            device_id: id,
            token,
            config_version: held,
        });
        let reply = w.next().expect("a reply to DeviceHello");
        (w, reply)
    }

    /// Connects as a device that must be let in; returns the `DeviceHelloAck`'s config.
    fn device_in(addr: &str, id: &str, token: &[u8], held: Option<u32>) -> (Self, Option<Vec<u8>>) {
        let (w, reply) = Self::device(addr, id, token, held);
        let config = match frame(&reply) {
            Frame::DeviceHelloAck {
                version,
                broker_time_ms,
                max_frame_len,
                config,
            } => {
                assert_eq!(version, PROTOCOL_VERSION);
                assert!(broker_time_ms > 1_600_000_000_000, "{broker_time_ms}");
                assert!(max_frame_len > 0);
                config.map(<[u8]>::to_vec)
            }
            other => panic!("expected DeviceHelloAck, got {other:?}"),
        };
        (w, config)
    }

    /// Connects as a client (`Hello`).
    fn client(addr: &str) -> Self {
        let mut w = Self::connect(addr);
        w.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
            client_id: "tool",
        });
        let reply = w.next().expect("HelloAck");
        assert!(matches!(frame(&reply), Frame::HelloAck { .. }));
        w
    }

    fn send(&mut self, f: &Frame<'_>) {
        let mut out = Vec::new();
        outpost_firmware::encode_frame_vec(f, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// The next frame; `None` when the broker closed the connection.
    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some((prefix, body)) = codec::frame_len(&self.buf, u32::MAX).unwrap() {
                let len = prefix + body as usize;
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "closed inside a frame");
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no reply within {REPLY_TIMEOUT:?}: {e}"),
            }
        }
    }

    /// Sends `f` and returns the reply.
    fn call(&mut self, f: &Frame<'_>) -> Vec<u8> {
        self.send(f);
        self.next().expect("a reply")
    }

    /// Sends a `Ping` and expects its `Pong` as the next frame: nothing was answered before.
    fn nothing_pending(&mut self, id: u32) {
        let reply = self.call(&Frame::Ping { request_id: id });
        assert_eq!(frame(&reply), Frame::Pong { request_id: id });
    }

    /// Expects the broker to close the connection (after no further frame).
    fn closed(&mut self) {
        assert_eq!(self.next(), None, "expected the connection closed");
    }
}

/// Decodes one whole frame.
fn frame(bytes: &[u8]) -> Frame<'_> {
    codec::decode_frame(bytes, u32::MAX)
        .unwrap()
        .expect("a whole frame")
        .0
}

/// The request id and code of an `Error` frame.
fn code_of(bytes: &[u8]) -> (u32, ErrorCode) {
    let (id, code, _) = error_of(bytes);
    (id, code)
}

/// The request id, code and message of an `Error` frame.
fn error_of(bytes: &[u8]) -> (u32, ErrorCode, String) {
    match frame(bytes) {
        Frame::Error {
            request_id,
            code,
            message,
        } => (request_id, code, message.to_owned()),
        other => panic!("expected Error, got {other:?}"),
    }
}

/// Encodes values as a produce's records (in `buf`).
fn records<'b>(values: &[&str], buf: &'b mut [u8]) -> Records<'b> {
    let mut w = SeqWriter::new(buf);
    for v in values {
        w.push(&Record::new(v.as_bytes())).unwrap();
    }
    w.finish().unwrap()
}

fn reading(request_id: u32, alias: u16, value: &str) -> Frame<'_> {
    Frame::Reading {
        request_id,
        alias,
        value: value.as_bytes(),
    }
}

fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `outpost devices get ID --json`, the device's object.
fn device_json(b: &Broker, id: &str) -> serde_json::Value {
    let out = b.cli_ok(&["devices", "get", id, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// Polls `devices get` until `done` holds for the device (bounded).
fn wait_device(
    b: &Broker,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..POLLS {
        let d = device_json(b, id);
        if done(&d) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "device {id} never reached the expected state: {}",
        device_json(b, id)
    );
}

/// The value of `name` with exactly `labels` in a scrape of `/metrics`.
fn metric(metrics_addr: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    common::metrics::Scrape::of(metrics_addr).value(name, labels)
}

/// The values of a topic's records in the log, by partition then offset.
fn values(records: &[serde_json::Value]) -> Vec<(u64, u64, String)> {
    let mut v: Vec<_> = records
        .iter()
        .map(|r| {
            let p = r["partition"].as_u64().unwrap();
            let o = r["offset"].as_u64().unwrap();
            (p, o, r["value"].as_str().unwrap().to_owned())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn device_sessions_configs_aliases_and_readings() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let b = Broker::start(&data, "[log]\nauto_create_topics = false\n");
    b.cli_ok(&["topics", "create", "temperature"]);
    b.cli_ok(&["topics", "create", "humidity", "--partitions", "2"]);
    let file = write_file(dir.path(), "d1.toml", D1);
    b.cli_ok(&["devices", "set", "d1", "--file", &file]);

    // No config held: the stored one (version 1) comes with the hello reply.
    let (mut d1, config) = Wire::device_in(&b.addr, "d1", b"", None);
    let config = config.expect("config pushed to a device holding none");
    let decoded = DeviceConfig::decode(&config).unwrap();
    assert_eq!((decoded.version, decoded.device_id.as_str()), (1, "d1"));
    assert_eq!(decoded.aliases.len(), 2);
    // Holding an older version: pushed; the same version: not.
    let (_older, pushed) = Wire::device_in(&b.addr, "d1", b"", Some(0));
    assert_eq!(pushed.as_deref(), Some(&config[..]));
    let (_same, pushed) = Wire::device_in(&b.addr, "d1", b"", Some(1));
    assert_eq!(pushed, None);
    // A device with nothing stored is let in (anonymous access is on), with no config.
    let (mut stranger, pushed) = Wire::device_in(&b.addr, "d9", b"", Some(3));
    assert_eq!(pushed, None);
    assert_eq!(
        error_of(&stranger.call(&reading(1, 1, "x"))).1,
        ErrorCode::UNKNOWN_ALIAS
    );

    // The config's aliases work from the hello on. A reading with an id is answered `Done`
    // after its commit; one with id 0 is not answered.
    assert_eq!(
        frame(&d1.call(&reading(5, 1, "21.5"))),
        Frame::Done { request_id: 5 }
    );
    d1.send(&reading(0, 1, "21.6"));
    assert_eq!(
        frame(&d1.call(&reading(6, 2, "40"))),
        Frame::Done { request_id: 6 }
    );
    d1.nothing_pending(7);

    // Registering: the topic must exist (auto-creation is off here), and the partition.
    let register = |id, alias, topic, partition| Frame::RegisterAlias {
        request_id: id,
        alias,
        topic,
        partition,
    };
    let cases = [
        (register(8, 3, "pressure", None), ErrorCode::UNKNOWN_TOPIC),
        (
            register(9, 3, "humidity", Some(2)),
            ErrorCode::UNKNOWN_PARTITION,
        ),
        (register(10, 3, "a/b", None), ErrorCode::INVALID_TOPIC_NAME),
    ];
    for (f, code) in cases {
        let id = f.request_id().unwrap();
        assert_eq!(code_of(&d1.call(&f)), (id, code), "{f:?}");
    }
    let ok = d1.call(&register(11, 3, "humidity", Some(0)));
    assert_eq!(frame(&ok), Frame::Done { request_id: 11 });

    // A batch on an alias: `Ack` with its offsets; without an ack, no answer.
    let mut buf = [0u8; 256];
    let batch = Frame::ProduceAlias {
        request_id: 12,
        alias: 3,
        ack: AckMode::Commit,
        records: records(&["a", "b", "c"], &mut buf),
    };
    let ack = Frame::Ack {
        request_id: 12,
        partition: 0,
        base_offset: 0,
        count: 3,
    };
    assert_eq!(frame(&d1.call(&batch)), ack);
    let mut buf = [0u8; 256];
    d1.send(&Frame::ProduceAlias {
        request_id: 13,
        alias: 3,
        ack: AckMode::None,
        records: records(&["d"], &mut buf),
    });
    d1.nothing_pending(14);

    // An unknown alias is always answered, even without an ack or a request id.
    let mut buf = [0u8; 64];
    let lost = Frame::ProduceAlias {
        request_id: 15,
        alias: 99,
        ack: AckMode::None,
        records: records(&["lost"], &mut buf),
    };
    let (id, code, message) = error_of(&d1.call(&lost));
    assert_eq!((id, code), (15, ErrorCode::UNKNOWN_ALIAS));
    assert!(message.contains("99"), "{message}");
    assert_eq!(
        code_of(&d1.call(&reading(0, 99, "lost"))),
        (0, ErrorCode::UNKNOWN_ALIAS)
    );

    // The stored config on request; a sleep hint.
    let reply = d1.call(&Frame::ConfigRequest { request_id: 16 });
    assert_eq!(
        frame(&reply),
        Frame::ConfigReply {
            request_id: 16,
            config: Some(&config[..]),
        }
    );
    let sleep = Frame::Sleep {
        request_id: 17,
        duration_ms: 3_600_000,
    };
    assert_eq!(frame(&d1.call(&sleep)), Frame::Done { request_id: 17 });

    // Frames that are not for a TCP device session.
    let datagram = Frame::Datagram {
        device_id: "d1",
        token: b"",
        body: b"",
    };
    assert_eq!(error_of(&d1.call(&datagram)).1, ErrorCode::UNEXPECTED_FRAME);
    let ack_from_device = Frame::DeviceHelloAck {
        version: PROTOCOL_VERSION,
        broker_time_ms: 0,
        max_frame_len: 0,
        config: None,
    };
    assert_eq!(
        error_of(&d1.call(&ack_from_device)).1,
        ErrorCode::UNEXPECTED_FRAME
    );
    d1.nothing_pending(18);

    // A client session has aliases too, but no config or sleep.
    let mut tool = Wire::client(&b.addr);
    let config_request = tool.call(&Frame::ConfigRequest { request_id: 1 });
    assert_eq!(code_of(&config_request), (1, ErrorCode::UNEXPECTED_FRAME));
    assert_eq!(
        frame(&tool.call(&register(2, 7, "temperature", None))),
        Frame::Done { request_id: 2 }
    );
    assert_eq!(
        frame(&tool.call(&reading(3, 7, "19.0"))),
        Frame::Done { request_id: 3 }
    );

    // Everything acknowledged is in the log.
    let temperature = values(&b.consume_json("temperature", 10));
    let t: Vec<&str> = temperature.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(t, ["21.5", "21.6", "19.0"]);
    let humidity = values(&b.consume_json("humidity", 10));
    let expected = [
        (0, 0, "a"),
        (0, 1, "b"),
        (0, 2, "c"),
        (0, 3, "d"),
        (1, 0, "40"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|&(p, o, v)| (p, o, v.to_owned()))
        .collect();
    assert_eq!(humidity, expected);

    // What `outpost devices` shows while d1 is connected.
    let d = device_json(&b, "d1");
    assert_eq!(d["connected"], true, "{d}");
    assert_eq!(d["transport"], "tcp");
    assert!(
        d["address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{d}"
    );
    assert!(d["sleep_until_ms"].as_u64().unwrap() > d["last_seen_ms"].as_u64().unwrap());
    let listed = b.cli_ok(&["devices", "list", "--json"]);
    assert!(listed.contains("\"d9\""), "{listed}");

    // A token: the right one lets d1 in, a wrong one (or none) is refused, closed and counted.
    let out = b.cli_stdin(&["devices", "token", "d1", "--stdin"], "s3cret\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut last, _) = Wire::device_in(&b.addr, "d1", b"s3cret", Some(1));
    for token in [&b"wrong"[..], b""] {
        let (mut w, reply) = Wire::device(&b.addr, "d1", token, Some(1));
        let (id, code, message) = error_of(&reply);
        assert_eq!((id, code), (0, ErrorCode::NOT_AUTHORIZED));
        assert!(message.contains("wrong device token"), "{message}");
        w.closed();
    }
    // A malformed id is refused before any token check.
    let (mut w, reply) = Wire::device(&b.addr, "no such/id", b"", None);
    assert_eq!(error_of(&reply).1, ErrorCode::INVALID_REQUEST);
    w.closed();

    let m = &b.metrics_addr;
    let tcp = [("transport", "tcp")];
    assert_eq!(metric(m, "outpost_device_token_failures_total", &tcp), 2.0);
    assert_eq!(
        metric(
            m,
            "outpost_device_token_failures_total",
            &[("transport", "udp")]
        ),
        0.0
    );
    assert_eq!(metric(m, "outpost_auth_failures_total", &[]), 2.0);
    // Hellos let in: d1 ×4 (none, older, same, right token), d9.
    assert_eq!(metric(m, "outpost_device_hellos_total", &[]), 5.0);
    // Configs sent: two hellos and one ConfigRequest.
    assert_eq!(metric(m, "outpost_device_configs_sent_total", &[]), 3.0);
    assert_eq!(metric(m, "outpost_devices_stored", &[]), 1.0);
    assert_eq!(metric(m, "outpost_devices_connected", &[]), 2.0);

    // A hello clears the sleep hint (the device is awake); it goes to sleep again.
    assert_eq!(
        device_json(&b, "d1")["sleep_until_ms"],
        serde_json::Value::Null
    );
    let sleep = Frame::Sleep {
        request_id: 1,
        duration_ms: 60_000,
    };
    assert_eq!(frame(&last.call(&sleep)), Frame::Done { request_id: 1 });

    // Closed connections: d1 is no longer connected once all of its connections are gone.
    drop((d1, stranger, _older, _same, last));
    let d = wait_device(&b, "d1", |d| d["connected"] == false);
    assert!(d["sleep_until_ms"].is_u64(), "{d}");
    wait_device(&b, "d9", |d| d["connected"] == false);
    assert_eq!(metric(m, "outpost_devices_connected", &[]), 0.0);
    b.stop();

    // The status of a stored device survives a graceful restart.
    let b = Broker::start(&data, "[log]\nauto_create_topics = false\n");
    let after = device_json(&b, "d1");
    for key in [
        "last_seen_ms",
        "address",
        "transport",
        "reported_config_version",
        "sleep_until_ms",
    ] {
        assert_eq!(after[key], d[key], "{key}: {after}");
    }
    assert_eq!(after["reported_config_version"], 1);
    assert_eq!(after["connected"], false);
    b.stop();
}

#[test]
fn a_required_login_lets_devices_in_by_token_and_the_acl_limits_them() {
    let dir = temp_dir();
    let acl = r##"
[[rule]]
user = "admin"
access = "allow"
actions = ["all"]
topics = ["#", "$devices"]

[[rule]]
device = "d1"
access = "allow"
actions = ["publish"]
topics = ["d1-readings"]
"##;
    let (b, _) = secure_broker(dir.path(), acl, "");
    let admin = |args: &[&str]| {
        let out = cli_as(&b, Some("admin"), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    admin(&["topics", "create", "d1-readings"]);
    admin(&["topics", "create", "other"]);
    let d1 = "gateway = \"g:1\"\n[[aliases]]\nalias = 1\ntopic = \"d1-readings\"\n\
              [[aliases]]\nalias = 2\ntopic = \"other\"\n";
    let d1 = write_file(dir.path(), "d1.toml", d1);
    admin(&["devices", "set", "d1", "--file", &d1]);
    admin(&["devices", "set", "d2", "--file", &d1]);
    let token = admin(&["devices", "token", "d1"]);
    let token = token.trim();

    // The right token: logged in as device d1, limited to its topic by the ACL.
    let (mut dev, _) = Wire::device_in(&b.addr, "d1", token.as_bytes(), None);
    assert_eq!(
        frame(&dev.call(&reading(1, 1, "ok"))),
        Frame::Done { request_id: 1 }
    );
    let (id, code, _) = error_of(&dev.call(&reading(2, 2, "no")));
    assert_eq!((id, code), (2, ErrorCode::NOT_AUTHORIZED));
    let register = Frame::RegisterAlias {
        request_id: 3,
        alias: 5,
        topic: "other",
        partition: None,
    };
    assert_eq!(
        code_of(&dev.call(&register)),
        (3, ErrorCode::NOT_AUTHORIZED)
    );
    // A device does not log in as a user on top of its token.
    let login = Frame::Authenticate {
        request_id: 4,
        username: "admin",
        password: b"admin-pw",
    };
    assert_eq!(code_of(&dev.call(&login)), (4, ErrorCode::UNEXPECTED_FRAME));
    dev.nothing_pending(5);

    // Without a token — a stored device or an unknown one — a device is refused (in a few
    // words: its buffer is small; the fix is in the broker's log); a wrong token too.
    for (id, token) in [("d2", &b""[..]), ("ghost", b""), ("d1", b"guess")] {
        let (mut w, reply) = Wire::device(&b.addr, id, token, None);
        let (rid, code, message) = error_of(&reply);
        assert_eq!((rid, code), (0, ErrorCode::NOT_AUTHORIZED), "{id}");
        if token.is_empty() {
            assert_eq!(message, "device has no token; this broker requires one");
        }
        w.closed();
    }
    let m = &b.metrics_addr;
    assert_eq!(
        metric(
            m,
            "outpost_device_token_failures_total",
            &[("transport", "tcp")]
        ),
        1.0
    );
    assert_eq!(metric(m, "outpost_auth_failures_total", &[]), 3.0);
    assert_eq!(
        metric(m, "outpost_acl_denied_total", &[("action", "publish")]),
        2.0
    );

    let stored = values(&consume_as_admin(&b, "d1-readings", 10));
    assert_eq!(stored, [(0, 0, "ok".to_owned())]);
    assert!(consume_as_admin(&b, "other", 10).is_empty());
    drop(dev);
    b.stop();
}
