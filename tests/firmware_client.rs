//! The firmware's device clients (`outpost_firmware::client`) against the real broker: the
//! blocking client over `std::net::TcpStream` (`FromStd`) and the async client over tokio
//! (`embedded-io-adapters`' `FromTokio`): a config set with `outpost devices set` reaches the
//! device in its hello reply, the device's token is checked, readings and batches land in the
//! log with what the device sent, reconnecting registers the aliases again, and the sleep
//! hint and reported config version show in `outpost devices get`.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{temp_dir, Broker};
use embedded_io_adapters::tokio_1::FromTokio;
use outpost_firmware::client::{blocking, Device, FromStd, RX_LEN_FOR_CONFIG};
use outpost_firmware::{AckMode, DeviceConfig, ErrorCode, Header, Record, SeqWriter};

const TIMEOUT: Duration = Duration::from_secs(10);

const DEVICE_FILE: &str =
    "gateway = \"127.0.0.1:7883\"\nsample_interval_ms = 2000\nbatch_size = 3\n\
[[aliases]]\nalias = 1\ntopic = \"temperature\"\n";

/// A broker with device `dev42` (config from [`DEVICE_FILE`], a token); returns the token.
fn broker_with_device(dir: &std::path::Path) -> (Broker, String) {
    let b = Broker::start(&dir.join("data"), "");
    b.cli_ok(&["topics", "create", "temperature"]);
    b.cli_ok(&["topics", "create", "humidity"]);
    let file = dir.join("dev42.toml");
    std::fs::write(&file, DEVICE_FILE).unwrap();
    b.cli_ok(&["devices", "set", "dev42", "--file", file.to_str().unwrap()]);
    let token = b.cli_ok(&["devices", "token", "dev42"]).trim().to_owned();
    (b, token)
}

fn dial(b: &Broker) -> FromStd<TcpStream> {
    let s = TcpStream::connect(&b.addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    FromStd::new(s)
}

fn values(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn blocking_client_gets_its_config_and_its_readings_land() {
    let dir = temp_dir();
    let (b, token) = broker_with_device(dir.path());
    let device = Device {
        id: "dev42",
        token: token.as_bytes(),
    };
    let (mut tx, mut rx) = ([0u8; 256], [0u8; RX_LEN_FOR_CONFIG]);
    let mut client: blocking::Client<'_, _> = Client::new(dial(&b), device, &mut tx, &mut rx);

    // A device without a config gets the stored one, byte for byte what `devices set` stored.
    let welcome = client.connect(None, 0).unwrap();
    let config = DeviceConfig::decode(welcome.config.expect("config pushed")).unwrap();
    assert_eq!(config.version, 1);
    assert_eq!((config.sample_interval_ms, config.batch_size), (2000, 3));
    assert_eq!(config.alias(1).unwrap().topic.as_str(), "temperature");
    let broker_time = welcome.broker_time_ms;
    assert!(broker_time > 1_600_000_000_000);
    assert_eq!(client.broker_time_ms(5), Some(broker_time + 5));

    // The config's alias at once; a registered one; readings with and without an ack.
    client.reading(1, b"21.5", AckMode::Commit).unwrap();
    client.reading(1, b"21.6", AckMode::None).unwrap();
    client.register_alias(7, "humidity", None).unwrap();
    client.reading(7, b"40", AckMode::Commit).unwrap();
    // A batch with a key, a timestamp and a header, built straight into tx.
    let produced = client
        .produce_with(1, AckMode::Commit, |w| {
            let mut hbuf = [0u8; 32];
            let mut hw = SeqWriter::new(&mut hbuf);
            hw.push(&Header {
                key: "unit",
                value: b"C",
            })?;
            w.push(&Record {
                timestamp_ms: Some(1_700_000_000_000),
                key: Some(b"dev42"),
                value: b"21.7",
                headers: hw.finish()?,
            })?;
            // One produce is one offset range in one partition: same key (or none) for all.
            w.push(&Record {
                key: Some(b"dev42"),
                ..Record::new(b"21.8")
            })
        })
        .unwrap()
        .expect("acked");
    assert_eq!((produced.base_offset, produced.count), (2, 2));
    // An alias nobody defined: the broker's error, and the connection goes on.
    match client.reading(9, b"x", AckMode::Commit) {
        Err(outpost_firmware::client::ClientError::Broker { code, .. }) => {
            assert_eq!(code, ErrorCode::UNKNOWN_ALIAS)
        }
        other => panic!("expected UNKNOWN_ALIAS, got {other:?}"),
    }
    let again = client.request_config().unwrap().expect("a stored config");
    assert_eq!(DeviceConfig::decode(again).unwrap(), config);
    client.ping().unwrap();

    // Reconnect: hello with the config it now holds (nothing pushed), alias 7 again.
    let welcome = client.reconnect(dial(&b), Some(1), 0).unwrap();
    assert_eq!(welcome.config, None);
    client.reading(7, b"41", AckMode::Commit).unwrap();
    client.sleep(60_000, AckMode::Commit).unwrap();
    let d: serde_json::Value =
        serde_json::from_str(&b.cli_ok(&["devices", "get", "dev42", "--json"])).unwrap();
    assert_eq!(d[0]["reported_config_version"], 1);
    assert_eq!(d[0]["transport"], "tcp");
    assert!(d[0]["sleep_until_ms"].as_u64().is_some(), "{d}");
    drop(client);

    let temps = b.consume_json("temperature", 10);
    assert_eq!(values(&temps), ["21.5", "21.6", "21.7", "21.8"]);
    assert_eq!(temps[2]["key"], "dev42");
    assert_eq!(common::header(&temps[2], "unit"), Some("C"));
    assert_eq!(values(&b.consume_json("humidity", 10)), ["40", "41"]);

    // A wrong token is refused.
    let (mut tx, mut rx) = ([0u8; 256], [0u8; 64]);
    let wrong = Device {
        id: "dev42",
        token: b"not-the-token",
    };
    let mut client: blocking::Client<'_, _> = Client::new(dial(&b), wrong, &mut tx, &mut rx);
    match client.connect(None, 0) {
        Err(outpost_firmware::client::ClientError::Broker { code, .. }) => {
            assert_eq!(code, ErrorCode::NOT_AUTHORIZED)
        }
        other => panic!("expected NOT_AUTHORIZED, got {other:?}"),
    }
    b.stop();
}

use blocking::Client;

#[test]
fn a_changed_or_removed_token_ends_the_open_session() {
    let dir = temp_dir();
    let (b, token) = broker_with_device(dir.path());
    for change in [
        &["devices", "token", "dev42"][..],
        &["devices", "delete", "dev42"],
    ] {
        let token = match change[1] {
            "delete" => b.cli_ok(&["devices", "token", "dev42"]).trim().to_owned(),
            _ => token.clone(),
        };
        let device = Device {
            id: "dev42",
            token: token.as_bytes(),
        };
        let (mut tx, mut rx) = ([0u8; 256], [0u8; RX_LEN_FOR_CONFIG]);
        let mut client: Client<'_, _> = Client::new(dial(&b), device, &mut tx, &mut rx);
        client.connect(Some(1), 0).unwrap();
        client.reading(1, b"before", AckMode::Commit).unwrap();
        b.cli_ok(change);
        match client.reading(1, b"after", AckMode::Commit) {
            Err(outpost_firmware::client::ClientError::Broker { code, .. }) => {
                assert_eq!(code, ErrorCode::NOT_AUTHORIZED, "{change:?}")
            }
            other => panic!("{change:?}: expected NOT_AUTHORIZED, got {other:?}"),
        }
        assert!(client.ping().is_err(), "{change:?}: the session goes on");
    }
    let values = values(&b.consume_json("temperature", 10));
    assert_eq!(values, ["before", "before"]);
    b.stop();
}

#[test]
fn async_client_over_tokio() {
    let dir = temp_dir();
    let (b, token) = broker_with_device(dir.path());
    let rt = common::runtime();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(&b.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let device = Device {
            id: "dev42",
            token: token.as_bytes(),
        };
        let (mut tx, mut rx) = ([0u8; 256], [0u8; RX_LEN_FOR_CONFIG]);
        let mut client: outpost_firmware::client::asynch::Client<'_, _> =
            outpost_firmware::client::asynch::Client::new(
                FromTokio::new(stream),
                device,
                &mut tx,
                &mut rx,
            );
        let welcome = tokio::time::timeout(TIMEOUT, client.connect(Some(0), 0))
            .await
            .unwrap()
            .unwrap();
        // The device holds version 0: older than the stored 1.
        let config = DeviceConfig::decode(welcome.config.expect("config pushed")).unwrap();
        assert_eq!(config.version, 1);
        for i in 0..20 {
            let value = format!("a{i}");
            let ack = if i % 2 == 0 {
                AckMode::Commit
            } else {
                AckMode::None
            };
            tokio::time::timeout(TIMEOUT, client.reading(1, value.as_bytes(), ack))
                .await
                .unwrap()
                .unwrap();
        }
        let produced = tokio::time::timeout(
            TIMEOUT,
            client.produce_with(1, AckMode::Commit, |w| {
                w.push(&Record::new(b"b0"))?;
                w.push(&Record::new(b"b1"))
            }),
        )
        .await
        .unwrap()
        .unwrap()
        .expect("acked");
        assert_eq!((produced.base_offset, produced.count), (20, 2));
    });
    let got = values(&b.consume_json("temperature", 100));
    let mut expected: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    expected.extend(["b0".into(), "b1".into()]);
    assert_eq!(got, expected);
    b.stop();
}
