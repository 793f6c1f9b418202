//! TLS on the MQTT and binary-protocol listeners, against the real binary: Mosquitto's
//! command-line clients with `--cafile`, rumqttc over rustls, and Outpost's own client;
//! mutual TLS accepted and refused; a plain-TCP client on the TLS port; certificates
//! reloaded on SIGHUP without dropping live connections. Certificates are generated here
//! with rcgen.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{runtime, temp_dir, Broker};
use outpost::client::{Client, NewRecord};
use outpost_firmware::AckMode;

fn record(value: &[u8]) -> NewRecord {
    NewRecord {
        value: value.to_vec(),
        ..Default::default()
    }
}

fn port_of(addr: &str) -> String {
    addr.rsplit_once(':').unwrap().1.to_owned()
}

/// `mosquitto_pub` (QoS 1) over TLS with this CA and optional client certificate; returns
/// whether it succeeded and its stderr.
fn mosquitto_pub(
    addr: &str,
    pki: &Pki,
    client_cert: bool,
    topic: &str,
    msg: &str,
) -> (bool, String) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port_of(addr), "-q", "1"])
        .args(["-t", topic, "-m", msg, "-i", "tls-pub"])
        .arg("--cafile")
        .arg(&pki.ca);
    if client_cert {
        cmd.arg("--cert")
            .arg(&pki.client_cert)
            .arg("--key")
            .arg(&pki.client_key);
    }
    let out = cmd.output().expect("run mosquitto_pub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `mosquitto_sub` over TLS waiting for `count` messages on `topic` (gives up after 20 s).
fn mosquitto_sub(addr: &str, pki: &Pki, topic: &str, count: u32) -> std::process::Child {
    let mut child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port_of(addr), "-q", "1", "-v"])
        .args([
            "-t",
            topic,
            "-C",
            &count.to_string(),
            "-W",
            "20",
            "-i",
            "tls-sub",
        ])
        .arg("--cafile")
        .arg(&pki.ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    // Subscribed once a publish reaches it: probe until the first message arrives is not
    // possible without consuming one, so wait for the broker to list its session instead.
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(status)) = child.try_wait() {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("mosquitto_sub exited early ({status}): {err}");
    }
    child
}

fn sub_output(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_sub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn mqtt_over_tls_with_mosquitto_clients_and_rumqttc() {
    let dir = temp_dir();
    let pki = Pki::new(dir.path(), "ca1");
    let tls = pki.section("mqtt.tls", &pki.server_cert, &pki.server_key, "");
    let broker = Broker::start(&dir.path().join("data"), &tls);
    let addr = broker.listeners["mqtt-tls"].clone();
    assert_ne!(addr, broker.mqtt_addr, "TLS beside the plain listener");

    let sub = mosquitto_sub(&addr, &pki, "tls/#", 2);
    let (ok, err) = mosquitto_pub(&addr, &pki, false, "tls/a", "over-tls");
    assert!(ok, "mosquitto_pub over TLS: {err}");
    rumqttc_publish(&addr, &pki, "tls/b", "from-rumqttc");
    let got = sub_output(sub);
    assert!(got.contains("tls/a over-tls"), "{got}");
    assert!(got.contains("tls/b from-rumqttc"), "{got}");

    // Stored in the log like any publish.
    let records = broker.consume_json("tls", 10);
    assert_eq!(records.len(), 2, "{records:?}");

    // A client that does not trust this CA is refused by its own verification.
    let other = Pki::new(dir.path(), "ca-other");
    let (ok, _) = mosquitto_pub(&addr, &other, false, "tls/c", "x");
    assert!(!ok, "a client trusting another CA must fail the handshake");
    broker.stop();
}

/// Publishes one QoS 1 message with rumqttc over rustls (ring) and waits for its PUBACK.
fn rumqttc_publish(addr: &str, pki: &Pki, topic: &str, payload: &str) {
    use rumqttc::{Client, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let port: u16 = port_of(addr).parse().unwrap();
    let mut opts = MqttOptions::new("tls-rumqttc", "127.0.0.1", port);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )));
    let (client, mut conn) = Client::new(opts, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for event in conn.iter() {
        assert!(Instant::now() < deadline, "no PUBACK in time");
        match event {
            Ok(Event::Incoming(Incoming::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("rumqttc over TLS: {e}"),
        }
    }
    let _ = client.disconnect();
}

#[test]
fn mutual_tls_accepts_a_client_certificate_and_refuses_none() {
    let dir = temp_dir();
    let pki = Pki::new(dir.path(), "ca1");
    let extra = format!(
        "client_ca_file = {:?}\nidentity_as_username = \"cn\"",
        pki.ca.display().to_string()
    );
    let tls = pki.section("mqtt.tls", &pki.server_cert, &pki.server_key, &extra)
        + &pki.section("wire.tls", &pki.server_cert, &pki.server_key, &extra);
    let broker = Broker::start(&dir.path().join("data"), &tls);
    let mqtt = broker.listeners["mqtt-tls"].clone();
    let wire = broker.listeners["wire-tls"].clone();

    let (ok, err) = mosquitto_pub(&mqtt, &pki, true, "mtls/a", "with-cert");
    assert!(ok, "client certificate refused: {err}");
    let (ok, _) = mosquitto_pub(&mqtt, &pki, false, "mtls/b", "without");
    assert!(!ok, "a client without a certificate must be refused");
    // A certificate from another CA is refused too.
    let other = Pki::new(dir.path(), "ca-other");
    let mixed = Pki {
        ca: pki.ca.clone(),
        server_cert: other.server_cert.clone(),
        server_key: other.server_key.clone(),
        client_cert: other.client_cert.clone(),
        client_key: other.client_key.clone(),
    };
    let (ok, _) = mosquitto_pub(&mqtt, &mixed, true, "mtls/c", "foreign");
    assert!(!ok, "a certificate from another CA must be refused");

    let rt = runtime();
    rt.block_on(async {
        let c = Client::connect_tls(&wire, "mtls-dev", &pki.client_tls(true))
            .await
            .expect("wire mTLS with a certificate");
        let ack = c
            .produce("mtls", None, &[record(b"v")], AckMode::Commit)
            .await
            .unwrap()
            .expect("an ack");
        assert_eq!(ack.count, 1);
        let refused = Client::connect_tls(&wire, "no-cert", &pki.client_tls(false)).await;
        assert!(
            refused.is_err(),
            "wire TLS without a client certificate must fail"
        );
    });
    let stored = broker.consume_json("mtls", 10);
    let values: Vec<_> = stored
        .iter()
        .map(|r| r["value"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(values, ["with-cert", "v"], "{stored:?}");
    broker.stop();
}

#[test]
fn a_plain_client_on_the_tls_port_is_refused_and_the_listener_keeps_serving() {
    let dir = temp_dir();
    let pki = Pki::new(dir.path(), "ca1");
    let tls = pki.section(
        "mqtt.tls",
        &pki.server_cert,
        &pki.server_key,
        "handshake_timeout_ms = 1000",
    ) + &pki.section("wire.tls", &pki.server_cert, &pki.server_key, "");
    let broker = Broker::start(&dir.path().join("data"), &tls);
    let mqtt = broker.listeners["mqtt-tls"].clone();

    // An MQTT 3.1.1 CONNECT in clear: the broker answers with a TLS alert (or closes) and
    // never with a CONNACK.
    let mut s = std::net::TcpStream::connect(&mqtt).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 1, b'x',
    ])
    .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        reply.first() != Some(&0x20),
        "a CONNACK in clear: {reply:?}"
    );
    assert!(
        reply.is_empty() || reply[0] == 0x15,
        "expected a TLS alert record or a close, got {reply:?}"
    );

    // A client that connects and says nothing is dropped after the handshake timeout.
    let mut idle = std::net::TcpStream::connect(&mqtt).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = idle.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "the silent client must be closed");
    assert!(started.elapsed() < Duration::from_secs(9));

    // The plain binary-protocol client on the wire TLS port gets no HelloAck.
    let rt = runtime();
    let wire = broker.listeners["wire-tls"].clone();
    rt.block_on(async {
        assert!(Client::connect(&wire, "plain").await.is_err());
        // And TLS clients still get through on both.
        Client::connect_tls(&wire, "tls", &pki.client_tls(false))
            .await
            .expect("TLS client after the plain one");
    });
    let (ok, err) = mosquitto_pub(&mqtt, &pki, false, "after/plain", "still-serving");
    assert!(ok, "{err}");

    // Each failed handshake is counted per listener: two on MQTT (the plain CONNECT, the
    // silent client), one on the binary protocol.
    let metrics = common::http::get(&broker.metrics_addr, "/metrics").body;
    let failures = |listener: &str| -> u64 {
        let series = format!("outpost_tls_handshake_failures_total{{protocol=\"{listener}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(failures("mqtt-tls"), 2);
    assert_eq!(failures("wire-tls"), 1);
    assert!(metrics.contains("outpost_connections{protocol=\"mqtt-tls\"}"));
    broker.stop();
}

#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    let dir = temp_dir();
    let first = Pki::new(dir.path(), "ca1");
    let second = Pki::new(dir.path(), "ca2");
    // The broker reads its certificate from these paths; the test replaces their contents.
    let cert = dir.path().join("live.pem");
    let key = dir.path().join("live.key");
    std::fs::copy(&first.server_cert, &cert).unwrap();
    std::fs::copy(&first.server_key, &key).unwrap();
    let tls =
        first.section("mqtt.tls", &cert, &key, "") + &first.section("wire.tls", &cert, &key, "");
    let broker = Broker::start(&dir.path().join("data"), &tls);
    let mqtt = broker.listeners["mqtt-tls"].clone();
    let wire = broker.listeners["wire-tls"].clone();
    let rt = runtime();

    // Live before the reload: a subscriber and a binary-protocol client.
    let sub = mosquitto_sub(&mqtt, &first, "reload/#", 1);
    let live = rt
        .block_on(Client::connect_tls(&wire, "live", &first.client_tls(false)))
        .unwrap();

    std::fs::copy(&second.server_cert, &cert).unwrap();
    std::fs::copy(&second.server_key, &key).unwrap();
    hup(&broker);
    // New handshakes present the second CA's certificate (poll: the reload is asynchronous).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mosquitto_pub(&mqtt, &second, false, "reload/new", "via-ca2").0 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not load the new certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, _) = mosquitto_pub(&mqtt, &first, false, "reload/old", "x");
    assert!(!ok, "the old certificate is no longer presented");
    // The connections made before the reload still work.
    assert!(sub_output(sub).contains("reload/new via-ca2"));
    rt.block_on(async {
        live.produce("reload", None, &[record(b"still")], AckMode::Commit)
            .await
            .expect("connection from before the reload");
        Client::connect_tls(&wire, "new", &second.client_tls(false))
            .await
            .expect("wire TLS with the reloaded certificate");
    });

    // A broken file on reload keeps the certificates in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    hup(&broker);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, err) = mosquitto_pub(&mqtt, &second, false, "reload/after-bad", "y");
    assert!(
        ok,
        "a failed reload must keep the previous certificate: {err}"
    );
    drop(live);
    let log = broker.stop();
    assert!(log.contains("TLS reload failed"), "{log}");
}

fn hup(broker: &Broker) {
    let ok = Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP");
}

#[test]
fn unusable_tls_files_stop_the_start_with_the_key_named() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.pem");
    let section = format!(
        "[mqtt.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = {:?}\nkey_file = {:?}\n",
        missing.display().to_string(),
        missing.display().to_string()
    );
    let err = Broker::try_start(&dir.path().join("data"), &section)
        .err()
        .expect("the broker must not start");
    assert!(
        err.contains("cert_file") && err.contains("missing.pem"),
        "{err}"
    );

    let config = "[mqtt]\nplain = false\nlisten = \"127.0.0.1:0\"\n";
    let err = Broker::try_start(&dir.path().join("data2"), config)
        .err()
        .expect("no MQTT listener at all must be refused");
    assert!(err.contains("mqtt.plain"), "{err}");
}

#[test]
fn a_client_certificate_names_the_user_for_logins_and_acls() {
    let dir = temp_dir();
    let pki = Pki::new(dir.path(), "ca1");
    // Only admin and the certificate's user (CN sensor-7) have rules; a password file makes
    // anonymous clients unwelcome.
    let acl = r##"
[[rule]]
user = "admin"
access = "allow"
actions = ["all"]
topics = ["#"]

[[rule]]
user = "sensor-7"
access = "allow"
actions = ["publish"]
topics = ["users/%u/#", "sensor7"]
"##;
    let extra = format!(
        "client_ca_file = {:?}\nidentity_as_username = \"cn\"",
        pki.ca.display().to_string()
    );
    let tls = pki.section("mqtt.tls", &pki.server_cert, &pki.server_key, &extra)
        + &pki.section("wire.tls", &pki.server_cert, &pki.server_key, &extra);
    let (broker, _) = common::auth::secure_broker(dir.path(), acl, &tls);
    let mqtt = broker.listeners["mqtt-tls"].clone();

    // No user name or password in CONNECT: the certificate logs the client in as sensor-7.
    let (ok, err) = mosquitto_pub(&mqtt, &pki, true, "users/sensor-7/t", "mine");
    assert!(ok, "{err}");
    // 3.1.1: a denied publish is acknowledged and discarded.
    let (ok, err) = mosquitto_pub(&mqtt, &pki, true, "users/someone-else/t", "theirs");
    assert!(ok, "{err}");
    let stored = common::auth::consume_as_admin(&broker, "users", 10);
    let values: Vec<_> = stored
        .iter()
        .map(|r| r["value"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(values, ["mine"], "{stored:?}");

    // The binary protocol over TLS: logged in from Hello on, as sensor-7.
    let wire = broker.listeners["wire-tls"].clone();
    runtime().block_on(async {
        let c = Client::connect_tls(&wire, "dev-7", &pki.client_tls(true))
            .await
            .unwrap();
        c.produce("sensor7", None, &[record(b"ok")], AckMode::Commit)
            .await
            .expect("sensor-7 may produce to its topic");
        let denied = c
            .produce("other", None, &[record(b"no")], AckMode::Commit)
            .await
            .expect_err("not in sensor-7's rules");
        assert!(denied.to_string().contains("NOT_AUTHORIZED"), "{denied}");
    });

    // The CLI over TLS with the client certificate, no --user.
    let out = Command::new(common::bin())
        .args(["--broker", &wire, "--tls-ca"])
        .arg(&pki.ca)
        .arg("--tls-cert")
        .arg(&pki.client_cert)
        .arg("--tls-key")
        .arg(&pki.client_key)
        .args(["produce", "sensor7", "--value", "from-cli"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = common::auth::consume_as_admin(&broker, "sensor7", 10);
    assert_eq!(stored.len(), 2, "{stored:?}");

    // The two refusals (one MQTT publish, one produce) are in the metrics.
    let metrics = common::http::get(&broker.metrics_addr, "/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "outpost_acl_denied_total{action=\"publish\"} 2"),
        "{metrics}"
    );
    broker.stop();
}

#[test]
fn the_cli_logs_in_with_a_password_over_tls() {
    let dir = temp_dir();
    let pki = Pki::new(dir.path(), "ca1");
    let tls = pki.section("wire.tls", &pki.server_cert, &pki.server_key, "");
    let (broker, _) = common::auth::secure_broker(dir.path(), common::auth::ACL, &tls);
    let wire = broker.listeners["wire-tls"].clone();
    let cli = |user: Option<&str>| {
        let mut cmd = Command::new(common::bin());
        cmd.args(["--broker", &wire, "--tls-ca"]).arg(&pki.ca);
        if let Some(u) = user {
            cmd.args(["--user", u])
                .env("OUTPOST_PASSWORD", common::auth::password_of(u));
        }
        cmd.args(["topics", "create", "over-tls"])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let anonymous = cli(None);
    assert!(!anonymous.status.success());
    let err = String::from_utf8_lossy(&anonymous.stderr);
    assert!(err.contains("NOT_AUTHORIZED"), "{err}");
    let admin = cli(Some("admin"));
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let listed = common::auth::cli_as(&broker, Some("admin"), &["topics", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("over-tls"));
    broker.stop();
}
