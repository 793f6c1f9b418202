//! Authentication and ACLs on the binary protocol against the real binary: the
//! `Authenticate` frame (right and wrong passwords), requests before a login refused with
//! `NOT_AUTHORIZED`, per-request ACL checks (produce = publish, fetch and offsets = consume,
//! topic create/delete and bridge status = admin) answered with `NOT_AUTHORIZED` while the
//! connection stays usable, failed logins counted, and the CLI's `--user`/`--password`.

mod common;

use common::auth::{cli_as, secure_broker, ACL};
use common::mqtt::{connect, In, Raw};
use common::{records_from, runtime, temp_dir};
use outpost::client::{Client, ClientError, Credentials, NewRecord};
use outpost::mqtt::packet::{Protocol, QoS};
use outpost_firmware::{AckMode, Compression, ErrorCode};

fn record(value: &str) -> NewRecord {
    NewRecord {
        value: value.as_bytes().to_vec(),
        ..NewRecord::default()
    }
}

fn credentials(user: &str, password: &str) -> Credentials {
    Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    }
}

/// Whether `r` is the broker's `NOT_AUTHORIZED`.
fn not_authorized<T: std::fmt::Debug>(r: Result<T, ClientError>) -> bool {
    match r {
        Err(ClientError::Broker { code, .. }) => code == ErrorCode::NOT_AUTHORIZED,
        other => panic!("expected NOT_AUTHORIZED, got {other:?}"),
    }
}

#[test]
fn logins_and_acl_checks_on_the_binary_protocol() {
    let dir = temp_dir();
    let extra = "[mqtt]\nlisten = \"127.0.0.1:0\"\nsys_interval_secs = 1\n";
    let (b, _) = secure_broker(dir.path(), ACL, extra);
    let admin_login = credentials("admin", "admin-pw");
    runtime().block_on(async {
        let admin = Client::connect_with(&b.addr, "ops", Some(&admin_login))
            .await
            .unwrap();
        admin
            .create_topic("readings", 1, None, None, Compression::None)
            .await
            .unwrap();

        // Before a login only Ping and Authenticate are served.
        let dev = Client::connect(&b.addr, "dev-1").await.unwrap();
        dev.ping().await.unwrap();
        let one = [record("early")];
        assert!(not_authorized(
            dev.produce("readings", None, &one, AckMode::Commit).await
        ));
        assert!(not_authorized(dev.list_topics().await));
        // A wrong password is refused; the connection stays open for another try.
        assert!(not_authorized(dev.authenticate("dev", b"wrong").await));
        dev.ping().await.unwrap();
        dev.authenticate("dev", b"dev-pw").await.unwrap();
        let ack = dev
            .produce("readings", None, &[record("ok")], AckMode::Commit)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ack.base_offset, ack.count), (0, 1));
        // Denied requests get NOT_AUTHORIZED; the connection goes on.
        assert!(not_authorized(
            dev.produce("users", None, &one, AckMode::Commit).await
        ));
        assert!(not_authorized(dev.fetch("readings", 0, 0, 1 << 16, 0).await));
        assert!(not_authorized(dev.delete_topic("readings").await));
        assert!(not_authorized(
            dev.create_topic("new", 1, None, None, Compression::None).await
        ));
        assert!(not_authorized(dev.bridge_status().await));
        assert!(dev.list_topics().await.unwrap().is_empty());
        dev.ping().await.unwrap();
        let again = dev.authenticate("dev", b"dev-pw").await;
        assert!(matches!(again, Err(ClientError::Broker { code, .. }) if code == ErrorCode::UNEXPECTED_FRAME));

        // `reader` consumes: fetch, offsets, describe and list; no produce.
        let reader_login = credentials("reader", "reader-pw");
        let reader = Client::connect_with(&b.addr, "reader-1", Some(&reader_login))
            .await
            .unwrap();
        let fetched = reader.fetch("readings", 0, 0, 1 << 16, 0).await.unwrap();
        assert_eq!(records_from(&fetched.batches, 0), [(0, b"ok".to_vec())]);
        reader.commit_offset("g", "readings", 0, 1).await.unwrap();
        assert_eq!(reader.fetch_offset("g", "readings", 0).await.unwrap(), Some(1));
        assert_eq!(reader.describe_topic("readings").await.unwrap().partitions, 1);
        assert_eq!(reader.list_topics().await.unwrap(), ["readings"]);
        assert!(not_authorized(
            reader.produce("readings", None, &one, AckMode::Commit).await
        ));
        assert!(not_authorized(reader.describe_topic("users").await));

        // Three failed logins close the connection.
        let guesser = Client::connect(&b.addr, "guesser").await.unwrap();
        for _ in 0..3 {
            assert!(not_authorized(guesser.authenticate("admin", b"guess").await));
        }
        assert!(matches!(guesser.ping().await, Err(ClientError::Closed)));
        // A login for an unknown user is refused the same way.
        let err = Client::connect_with(&b.addr, "x", Some(&credentials("nobody", "pw"))).await;
        assert!(not_authorized(err.map(|_| ())));

        admin.bridge_status().await.unwrap();
        admin.delete_topic("readings").await.unwrap();
    });

    // Every refusal is counted: 1 + 3 + 1 failed logins; 2 publish, 1 consume and 4 admin
    // denials (describe counts as admin once consume is refused).
    let mut c = connect(Protocol::V5, "sys", true);
    c.username = Some("admin");
    c.password = Some(b"admin-pw");
    let mut sys = Raw::connect_with(&b.mqtt_addr, &c).0;
    sys.subscribe("$SYS/broker/#", QoS::AtMostOnce);
    for (topic, value) in [
        ("$SYS/broker/auth/failures", "5"),
        ("$SYS/broker/acl/denied/publish", "2"),
        ("$SYS/broker/acl/denied/consume", "1"),
        ("$SYS/broker/acl/denied/admin", "4"),
    ] {
        sys.recv_until(&format!("{topic} = {value}"), |p| match p {
            In::Publish(m) if m.topic == topic && m.text() == value => Some(()),
            _ => None,
        });
    }
    b.stop();
}

/// A password file without an ACL: a logged-in client may do everything; the CLI logs in
/// with `--user` and `OUTPOST_PASSWORD`, and says why it was refused otherwise.
#[test]
fn cli_logs_in_with_user_and_password() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), "", "");
    let out = cli_as(&b, Some("alice"), &["topics", "create", "t1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_as(&b, Some("bob"), &["topics", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t1");
    let anonymous = cli_as(&b, None, &["topics", "list"]);
    assert!(!anonymous.status.success());
    let err = String::from_utf8_lossy(&anonymous.stderr).into_owned();
    assert!(
        err.contains("NOT_AUTHORIZED") && err.contains("log in"),
        "{err}"
    );
    let mut wrong = std::process::Command::new(common::bin());
    wrong.args(["--broker", &b.addr, "--user", "alice", "--password", "nope"]);
    wrong.args(["topics", "list"]);
    let out = common::auth::output(wrong, "");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && err.contains("bad user name or password"),
        "{err}"
    );
    b.stop();
}
