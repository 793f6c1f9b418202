//! The UDP transport against the real binary: devices registered with `outpost devices`,
//! datagrams sent from a `std::net::UdpSocket` on loopback.
//!
//! Fire-and-forget readings land in the log; an acked `Reading` gets `Done` and an acked
//! `ProduceAlias` batch an `Ack` with its offsets; a sleep hint shows in `devices get`.
//! Truncated, oversized and garbage datagrams are counted, get no reply, and the broker keeps
//! serving. Unknown aliases and devices, wrong tokens, token-less devices under a password
//! file and ACL refusals store nothing, are counted, and are answered only when the device
//! asked for a reply. The firmware crate's UDP codecs (`client::udp`) round-trip through the
//! broker.
//!
//! "No reply" is checked by order: after the datagrams that must not be answered, an acked
//! reading is sent, and the first reply to arrive must be its `Done` (the broker serves one
//! datagram after the other). Datagrams are sent in small bursts, each followed by such an
//! acked reading, so that the socket's receive buffer never overflows and counts are exact.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use common::auth::{cli_as, consume_as_admin, secure_broker};
use common::metrics::Scrape;
use common::{temp_dir, Broker};
use outpost_firmware::{codec, AckMode, ErrorCode, Frame, Record, SeqWriter};

/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Datagrams sent between two synchronizing acked readings.
const BURST: usize = 40;

/// A device file: alias 1 → `temperature`, 2 → `humidity` (partition 0), 3 → `secret`.
const DEVICE: &str = "gateway = \"127.0.0.1:7883\"\n\
[[aliases]]\nalias = 1\ntopic = \"temperature\"\n\
[[aliases]]\nalias = 2\ntopic = \"humidity\"\npartition = 0\n\
[[aliases]]\nalias = 3\ntopic = \"secret\"\n";

// ---------------------------------------------------------------------------------------
// Datagrams

/// A `Datagram` body around the body of `inner`.
fn datagram(device_id: &str, token: &[u8], inner: &Frame<'_>) -> Vec<u8> {
    let mut body = vec![0u8; 8192];
    let body = codec::encode_body(inner, &mut body).unwrap();
    let outer = Frame::Datagram {
        device_id,
        token,
        body,
    };
    let mut buf = vec![0u8; 16384];
    let len = codec::encode_body(&outer, &mut buf).unwrap().len();
    buf.truncate(len);
    buf
}

fn reading<'a>(request_id: u32, alias: u16, value: &'a [u8]) -> Frame<'a> {
    Frame::Reading {
        request_id,
        alias,
        value,
    }
}

/// A `ProduceAlias` datagram with one record per value.
fn produce(
    device_id: &str,
    token: &[u8],
    id: u32,
    alias: u16,
    ack: AckMode,
    values: &[&[u8]],
) -> Vec<u8> {
    let mut rbuf = vec![0u8; 4096];
    let mut w = SeqWriter::new(&mut rbuf);
    for v in values {
        w.push(&Record::new(v)).unwrap();
    }
    let records = w.finish().unwrap();
    let frame = Frame::ProduceAlias {
        request_id: id,
        alias,
        ack,
        records,
    };
    datagram(device_id, token, &frame)
}

/// A device's UDP socket, connected to the broker's.
struct Sensor {
    socket: UdpSocket,
    /// The datagram of an acked reading that the broker accepts: used to synchronize.
    sync: Box<dyn Fn(u32) -> Vec<u8>>,
    next_sync: u32,
}

impl Sensor {
    fn new(broker: &Broker, sync: impl Fn(u32) -> Vec<u8> + 'static) -> Self {
        let addr = broker
            .listeners
            .get("udp")
            .unwrap_or_else(|| panic!("no udp listener in {:?}", broker.listeners));
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(addr).unwrap();
        socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Self {
            socket,
            sync: Box::new(sync),
            next_sync: 1_000_000,
        }
    }

    fn send(&self, bytes: &[u8]) {
        let sent = self.socket.send(bytes).unwrap();
        assert_eq!(sent, bytes.len());
    }

    /// The next reply (panics after [`REPLY_TIMEOUT`]).
    fn reply(&self) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply within {REPLY_TIMEOUT:?}: {e}"));
        buf[..n].to_vec()
    }

    /// Sends `bytes` and returns the reply.
    fn ask(&self, bytes: &[u8]) -> Vec<u8> {
        self.send(bytes);
        let reply = self.reply();
        assert!(
            reply.len() <= 3 * bytes.len(),
            "a reply of {} bytes to a datagram of {}",
            reply.len(),
            bytes.len()
        );
        reply
    }

    /// Sends an acked reading and checks the first reply is its `Done`: every datagram sent
    /// before it was served, and none of them was answered.
    fn sync(&mut self) {
        self.next_sync += 1;
        let id = self.next_sync;
        let reply = self.ask(&(self.sync)(id));
        assert_eq!(frame(&reply), Frame::Done { request_id: id });
    }

    /// Sends each datagram, synchronizing after every [`BURST`].
    fn send_all(&mut self, datagrams: impl IntoIterator<Item = Vec<u8>>) {
        for (i, d) in datagrams.into_iter().enumerate() {
            self.send(&d);
            if (i + 1) % BURST == 0 {
                self.sync();
            }
        }
        self.sync();
    }

    fn syncs(&self) -> u32 {
        self.next_sync - 1_000_000
    }
}

fn frame(reply: &[u8]) -> Frame<'_> {
    codec::decode_body(reply).unwrap_or_else(|e| panic!("reply {reply:02x?}: {e}"))
}

/// The error code and request id of an `Error` reply.
fn error_of(reply: &[u8]) -> (u32, ErrorCode) {
    match frame(reply) {
        Frame::Error {
            request_id, code, ..
        } => (request_id, code),
        other => panic!("not an error: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Broker side

fn device_file(dir: &Path) -> String {
    let path = dir.join("device.toml");
    std::fs::write(&path, DEVICE).unwrap();
    path.display().to_string()
}

/// Stores `id` with [`DEVICE`] and, if given, `token`, through the CLI.
fn register(broker: &Broker, dir: &Path, id: &str, token: Option<&str>) {
    broker.cli_ok(&["devices", "set", id, "--file", &device_file(dir)]);
    if let Some(t) = token {
        let out = broker.cli_stdin(&["devices", "token", id, "--stdin"], &format!("{t}\n"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The same as admin, on a broker that requires logins.
fn register_as_admin(broker: &Broker, dir: &Path, id: &str, token: Option<&str>) {
    let file = device_file(dir);
    let out = cli_as(
        broker,
        Some("admin"),
        &["devices", "set", id, "--file", &file],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(t) = token {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(["--broker", &broker.addr, "--user", "admin"])
            .env("OUTPOST_PASSWORD", common::auth::password_of("admin"))
            .env("RUST_LOG", "warn")
            .args(["devices", "token", id, "--stdin"]);
        let out = common::auth::output(cmd, &format!("{t}\n"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The count of UDP datagrams with `outcome` in a scrape.
fn outcome(m: &Scrape, outcome: &str) -> f64 {
    m.counter("outpost_udp_datagrams", &[("outcome", outcome)])
}

fn values(records: &[serde_json::Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn readings_and_batches_land_in_the_log_and_are_acknowledged() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    register(&broker, dir.path(), "d1", Some("s3cret"));
    let mut sensor = Sensor::new(&broker, |id| {
        datagram("d1", b"s3cret", &reading(id, 1, b"sync"))
    });

    // Fire-and-forget readings, then an acked one: once it is committed, so are they.
    let sent: Vec<String> = (0..25).map(|i| format!("v{i}")).collect();
    for v in &sent {
        sensor.send(&datagram("d1", b"s3cret", &reading(0, 1, v.as_bytes())));
    }
    let reply = sensor.ask(&datagram("d1", b"s3cret", &reading(7, 1, b"last")));
    assert_eq!(frame(&reply), Frame::Done { request_id: 7 });
    let stored = broker.consume_json("temperature", 100);
    let mut expected: Vec<&str> = sent.iter().map(String::as_str).collect();
    expected.push("last");
    assert_eq!(values(&stored), expected);

    // A batch on alias 2 (partition 0): one Ack with its offsets.
    let batch = produce(
        "d1",
        b"s3cret",
        8,
        2,
        AckMode::Commit,
        &[b"h1", b"h2", b"h3"],
    );
    let reply = sensor.ask(&batch);
    assert_eq!(
        frame(&reply),
        Frame::Ack {
            request_id: 8,
            partition: 0,
            base_offset: 0,
            count: 3
        }
    );
    let again = produce("d1", b"s3cret", 9, 2, AckMode::Commit, &[b"h4"]);
    let reply = sensor.ask(&again);
    assert_eq!(
        frame(&reply),
        Frame::Ack {
            request_id: 9,
            partition: 0,
            base_offset: 3,
            count: 1
        }
    );
    // A fire-and-forget batch: no reply (checked by the next sync), stored.
    sensor.send(&produce(
        "d1",
        b"s3cret",
        10,
        2,
        AckMode::None,
        &[b"h5", b"h6"],
    ));
    sensor.sync();
    let humidity = broker.consume_json("humidity", 100);
    assert_eq!(values(&humidity), ["h1", "h2", "h3", "h4", "h5", "h6"]);
    let offsets: Vec<u64> = humidity
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);

    // A sleep hint: Done at once, shown by `devices get` with the datagram's address.
    let reply = sensor.ask(&datagram(
        "d1",
        b"s3cret",
        &Frame::Sleep {
            request_id: 11,
            duration_ms: 3_600_000,
        },
    ));
    assert_eq!(frame(&reply), Frame::Done { request_id: 11 });
    let d: serde_json::Value =
        serde_json::from_str(&broker.cli_ok(&["devices", "get", "d1", "--json"])).unwrap();
    assert_eq!(d[0]["transport"], "udp");
    let local = sensor.socket.local_addr().unwrap().to_string();
    assert_eq!(d[0]["address"], local.as_str());
    assert!(d[0]["sleep_until_ms"].as_u64().is_some(), "{d}");

    let m = Scrape::of(&broker.metrics_addr);
    // 25 + 1 readings, 3 batches, 1 sleep, the syncs.
    let accepted = 25.0 + 1.0 + 3.0 + 1.0 + f64::from(sensor.syncs());
    assert_eq!(outcome(&m, "accepted"), accepted);
    for other in [
        "oversized",
        "malformed",
        "bad_token",
        "unknown_alias",
        "busy",
        "error",
    ] {
        assert_eq!(outcome(&m, other), 0.0, "{other}");
    }
    assert!(m.counter("outpost_udp_received_bytes", &[]) > 0.0);
    assert!(m.counter("outpost_udp_sent_bytes", &[]) > 0.0);
    broker.stop();
}

#[test]
fn truncated_oversized_and_garbage_datagrams_are_dropped_and_counted() {
    let dir = temp_dir();
    let broker = Broker::start(
        &dir.path().join("data"),
        "[udp]\nmax_datagram_bytes = 256\n",
    );
    register(&broker, dir.path(), "d1", None);
    let mut sensor = Sensor::new(&broker, |id| datagram("d1", b"", &reading(id, 1, b"ok")));

    // Every strict prefix of an acked reading, the empty datagram included.
    let whole = datagram("d1", b"", &reading(5, 1, b"21.5"));
    let truncated: Vec<Vec<u8>> = (0..whole.len()).map(|n| whole[..n].to_vec()).collect();
    let n_truncated = truncated.len();
    sensor.send_all(truncated);

    // Oversized: well-formed acked readings over 256 bytes, and one byte over.
    let exactly = |len: usize| {
        let mut value = vec![b'x'; len];
        loop {
            let d = datagram("d1", b"", &reading(6, 1, &value));
            match d.len().cmp(&len) {
                std::cmp::Ordering::Equal => return d,
                std::cmp::Ordering::Greater => value.pop(),
                std::cmp::Ordering::Less => return d,
            };
        }
    };
    let at_limit = exactly(256);
    assert_eq!(at_limit.len(), 256);
    let oversized = [exactly(257), exactly(1000), exactly(8000)];
    assert_eq!(oversized[0].len(), 257);
    sensor.send_all(oversized.to_vec());
    // 256 bytes is still accepted.
    assert_eq!(frame(&sensor.ask(&at_limit)), Frame::Done { request_id: 6 });

    // Garbage: random bytes that never start with the Datagram discriminant (31).
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let garbage: Vec<Vec<u8>> = (0..400)
        .map(|_| {
            let len = 1 + (next() % 200) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if d[0] == 31 {
                d[0] = 0;
            }
            d
        })
        .collect();
    sensor.send_all(garbage);
    let m = Scrape::of(&broker.metrics_addr);
    assert_eq!(outcome(&m, "oversized"), 3.0);
    assert_eq!(outcome(&m, "malformed"), (n_truncated + 400) as f64);
    assert_eq!(outcome(&m, "accepted"), f64::from(sensor.syncs()) + 1.0);
    // Mutated valid datagrams: each byte of an acked reading flipped in turn. Some still
    // parse (a changed value or id); whatever they are, the broker answers at most within
    // the amplification bound and keeps serving.
    for at in 0..whole.len() {
        let mut d = whole.clone();
        d[at] ^= 0x5a;
        sensor.send(&d);
    }
    // Drain whatever those got as replies, up to and including the next sync.
    sensor.next_sync += 1;
    let id = sensor.next_sync;
    sensor.send(&(sensor.sync)(id));
    for _ in 0..=whole.len() {
        let reply = sensor.reply();
        assert!(reply.len() <= 3 * whole.len());
        if frame(&reply) == (Frame::Done { request_id: id }) {
            break;
        }
    }

    // The broker still serves TCP and UDP: every sync and the 256-byte reading are stored
    // (and whatever mutated datagrams still made a reading of "21.5" or another value).
    let stored = broker.consume_json("temperature", 10_000);
    let values = values(&stored);
    let syncs = values.iter().filter(|v| **v == "ok").count();
    assert_eq!(syncs, sensor.syncs() as usize);
    assert!(values
        .iter()
        .any(|v| v.len() == 244 && v.bytes().all(|b| b == b'x')));
    broker.stop();
}

#[test]
fn refused_datagrams_store_nothing_are_counted_and_answered_only_when_asked() {
    let dir = temp_dir();
    // Logins required; the device d1 (its token verified) may publish to `temperature` only.
    let acl = "[[rule]]\nuser = \"admin\"\naccess = \"allow\"\nactions = [\"all\"]\ntopics = [\"#\", \"$devices\"]\n\
               [[rule]]\ndevice = \"d1\"\naccess = \"allow\"\nactions = [\"publish\"]\ntopics = [\"temperature\"]\n";
    let (broker, _) = secure_broker(dir.path(), acl, "");
    register_as_admin(&broker, dir.path(), "d1", Some("good"));
    register_as_admin(&broker, dir.path(), "d2", None);
    let mut sensor = Sensor::new(&broker, |id| {
        datagram("d1", b"good", &reading(id, 1, b"ok"))
    });
    sensor.sync();

    // Wrong tokens: NOT_AUTHORIZED when asked, nothing otherwise.
    let reply = sensor.ask(&datagram("d1", b"bad", &reading(21, 1, b"x")));
    assert_eq!(error_of(&reply), (21, ErrorCode::NOT_AUTHORIZED));
    let reply = sensor.ask(&datagram("d1", b"", &reading(22, 1, b"x")));
    assert_eq!(error_of(&reply), (22, ErrorCode::NOT_AUTHORIZED));
    sensor.send(&datagram("d1", b"bad", &reading(0, 1, b"x")));
    sensor.send(&produce("d1", b"bad", 23, 3, AckMode::None, &[b"x"]));
    sensor.sync();

    // An unknown device.
    let reply = sensor.ask(&datagram("ghost", b"good", &reading(24, 1, b"x")));
    assert_eq!(error_of(&reply), (24, ErrorCode::UNKNOWN_DEVICE));
    // A device without a token while logins are required.
    let reply = sensor.ask(&datagram("d2", b"", &reading(25, 1, b"x")));
    assert_eq!(error_of(&reply), (25, ErrorCode::NOT_AUTHORIZED));
    // An alias the stored config does not define: UNKNOWN_ALIAS only when asked.
    let reply = sensor.ask(&datagram("d1", b"good", &reading(26, 9, b"x")));
    assert_eq!(error_of(&reply), (26, ErrorCode::UNKNOWN_ALIAS));
    let reply = sensor.ask(&produce("d1", b"good", 27, 9, AckMode::Commit, &[b"x"]));
    assert_eq!(error_of(&reply), (27, ErrorCode::UNKNOWN_ALIAS));
    sensor.send(&produce("d1", b"good", 28, 9, AckMode::None, &[b"x"]));
    sensor.send(&datagram("d1", b"good", &reading(0, 9, b"x")));
    sensor.sync();
    // The ACL: alias 3 is `secret`.
    let reply = sensor.ask(&datagram("d1", b"good", &reading(29, 3, b"x")));
    assert_eq!(error_of(&reply), (29, ErrorCode::NOT_AUTHORIZED));
    sensor.send(&datagram("d1", b"good", &reading(0, 3, b"x")));
    sensor.sync();

    // Nothing refused was stored: only the syncs are in `temperature`, `secret` and
    // `humidity` were never created.
    let stored = consume_as_admin(&broker, "temperature", 1000);
    assert_eq!(stored.len(), sensor.syncs() as usize);
    assert!(values(&stored).iter().all(|v| *v == "ok"));
    let out = cli_as(&broker, Some("admin"), &["topics", "list"]);
    let topics = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && topics.lines().eq(["temperature"]),
        "{topics}"
    );

    let m = Scrape::of(&broker.metrics_addr);
    assert_eq!(outcome(&m, "bad_token"), 4.0);
    assert_eq!(outcome(&m, "unknown_device"), 1.0);
    assert_eq!(outcome(&m, "unknown_alias"), 4.0);
    // d2 without a token, and the two ACL refusals.
    assert_eq!(outcome(&m, "not_authorized"), 3.0);
    assert_eq!(outcome(&m, "accepted"), f64::from(sensor.syncs()));
    assert_eq!(
        m.counter("outpost_device_token_failures", &[("transport", "udp")]),
        4.0
    );
    // Four wrong tokens and d2.
    assert_eq!(m.counter("outpost_auth_failures", &[]), 5.0);
    assert_eq!(
        m.counter("outpost_acl_denied", &[("action", "publish")]),
        2.0
    );

    // Logged once per device, not once per datagram.
    let stderr = broker.stop();
    let d1_lines = stderr
        .lines()
        .filter(|l| l.contains("authentication failed") && l.contains("d1"))
        .count();
    assert_eq!(d1_lines, 1, "{stderr}");
}

#[test]
fn the_firmware_udp_codecs_round_trip_through_the_broker() {
    use outpost_firmware::client::udp::{decode_reply, encode_datagram, UdpReply, UdpRequest};
    use outpost_firmware::client::{ClientError, Device, Produced};

    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    register(&broker, dir.path(), "dev42", Some("tok"));
    let sensor = Sensor::new(&broker, |id| {
        datagram("dev42", b"tok", &reading(id, 1, b"ok"))
    });
    let device = Device {
        id: "dev42",
        token: b"tok",
    };
    let mut out = [0u8; 256];
    let mut ask = |request: &UdpRequest<'_>| {
        let bytes = encode_datagram(device, request, &mut out).unwrap().to_vec();
        sensor.ask(&bytes)
    };

    let value = 22.5f32.to_le_bytes();
    let reply = ask(&UdpRequest::Reading {
        request_id: 1,
        alias: 1,
        value: &value,
    });
    assert_eq!(decode_reply(&reply), Ok(UdpReply::Done { request_id: 1 }));

    let mut rbuf = [0u8; 64];
    let mut w = SeqWriter::new(&mut rbuf);
    w.push(&Record::new(b"50")).unwrap();
    w.push(&Record::new(b"51")).unwrap();
    let records = w.finish().unwrap();
    let reply = ask(&UdpRequest::Produce {
        request_id: 2,
        alias: 2,
        ack: AckMode::Commit,
        records,
    });
    let produced = Produced {
        partition: 0,
        base_offset: 0,
        count: 2,
    };
    assert_eq!(
        decode_reply(&reply),
        Ok(UdpReply::Ack {
            request_id: 2,
            produced
        })
    );

    let reply = ask(&UdpRequest::Reading {
        request_id: 3,
        alias: 7,
        value: &value,
    });
    let refused = ClientError::Broker {
        request_id: 3,
        code: ErrorCode::UNKNOWN_ALIAS,
    };
    assert_eq!(decode_reply(&reply), Err(refused));

    let reply = ask(&UdpRequest::Sleep {
        request_id: 4,
        duration_ms: 1000,
    });
    assert_eq!(decode_reply(&reply), Ok(UdpReply::Done { request_id: 4 }));

    let stored = broker.consume_json("humidity", 10);
    assert_eq!(values(&stored), ["50", "51"]);
    broker.stop();
}
