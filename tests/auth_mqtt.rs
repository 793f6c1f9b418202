//! Authentication over MQTT against the real binary: `outpost passwd` round trips, and
//! right and wrong passwords from 3.1.1 and 5.0 clients (the project's raw client for the
//! exact CONNACK codes, rumqttc v4/v5 and mosquitto_pub), anonymous clients refused once a
//! password file exists, and allowed again with `allow_anonymous = true`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::auth::{add_user, output, passwd, password_file, secure_broker};
use common::mqtt::{connect, Raw};
use common::{bin, runtime, temp_dir, Broker};
use outpost::mqtt::packet::Protocol;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn passwd_add_list_change_delete_and_file_mode() {
    let dir = temp_dir();
    let file = dir.path().join("sub").join("passwd");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let f = file.to_str().unwrap();
    add_user(&file, "alice", "one");
    add_user(&file, "bob", "two");
    let list = passwd(&["list", f], "");
    assert!(list.status.success());
    assert_eq!(stdout(&list), "alice\nbob\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "password file mode {mode:o}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines().all(|l| l.contains(":$argon2id$v=19$")),
        "{text}"
    );
    let before = text.lines().next().unwrap().to_owned();
    // Changing a password replaces the hash in place.
    add_user(&file, "alice", "three");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_ne!(text.lines().next().unwrap(), before);
    assert_eq!(stdout(&passwd(&["list", f], "")), "alice\nbob\n");
    let del = passwd(&["delete", f, "bob"], "");
    assert!(del.status.success());
    assert_eq!(stdout(&passwd(&["list", f], "")), "alice\n");
    let missing = passwd(&["delete", f, "bob"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("\"bob\" is not in"));
    // Bad input: an empty password, a name with ':'; a broken line names file and line.
    let empty = passwd(&["add", f, "carol", "--stdin"], "\n");
    assert!(!empty.status.success());
    let colon = passwd(&["add", f, "a:b", "--stdin"], "pw\n");
    assert!(!colon.status.success());
    std::fs::write(&file, format!("{text}garbage line\n")).unwrap();
    let broken = passwd(&["list", f], "");
    let err = String::from_utf8_lossy(&broken.stderr).into_owned();
    assert!(!broken.status.success());
    assert!(err.contains(f) && err.contains("line 3"), "{err}");
}

#[test]
fn raw_clients_get_the_exact_connack_codes() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), "", "");
    let addr = b.mqtt_addr.clone();
    let code = |protocol, user: Option<&str>, password: Option<&[u8]>| {
        let mut c = connect(protocol, "raw-client", true);
        c.username = user;
        c.password = password;
        Raw::handshake(&addr, &c).1.code
    };
    // 3.1.1: 0 accepted, 4 bad user name or password, 5 not authorized.
    assert_eq!(code(Protocol::V311, Some("alice"), Some(b"alice-pw")), 0);
    assert_eq!(code(Protocol::V311, Some("alice"), Some(b"wrong")), 4);
    assert_eq!(code(Protocol::V311, Some("nobody"), Some(b"alice-pw")), 4);
    assert_eq!(code(Protocol::V311, Some("alice"), None), 4);
    assert_eq!(code(Protocol::V311, None, None), 5);
    // 5.0: 0x86 bad user name or password, 0x87 not authorized; a password alone (which
    // MQTT 5 allows) cannot be checked against the file.
    assert_eq!(code(Protocol::V5, Some("bob"), Some(b"bob-pw")), 0);
    assert_eq!(code(Protocol::V5, Some("bob"), Some(b"alice-pw")), 0x86);
    assert_eq!(code(Protocol::V5, Some("nobody"), Some(b"x")), 0x86);
    assert_eq!(code(Protocol::V5, None, Some(b"bob-pw")), 0x86);
    assert_eq!(code(Protocol::V5, None, None), 0x87);
    // A refused client is closed after its CONNACK.
    let (mut raw, ack) = Raw::handshake(&addr, &connect(Protocol::V5, "anon", true));
    assert_eq!(ack.code, 0x87);
    raw.closed(Duration::from_secs(5));
    b.stop();
}

#[test]
fn rumqttc_v4_and_v5_right_and_wrong_passwords() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), "", "");
    let port = b.mqtt_port();
    runtime().block_on(async {
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as V5Code;
        use rumqttc::ConnectReturnCode as V4Code;
        for (password, expected) in [
            ("alice-pw", V4Code::Success),
            ("nope", V4Code::BadUserNamePassword),
        ] {
            let mut o = rumqttc::MqttOptions::new("v4-client", "127.0.0.1", port);
            o.set_credentials("alice", password);
            let (_client, mut el) = rumqttc::AsyncClient::new(o, 8);
            let got = tokio::time::timeout(Duration::from_secs(10), el.poll()).await;
            match got.expect("v4 CONNACK in time") {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                    assert_eq!(a.code, expected)
                }
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    assert_eq!(code, expected)
                }
                other => panic!("v4: {other:?}"),
            }
        }
        let mut anon = rumqttc::MqttOptions::new("v4-anon", "127.0.0.1", port);
        anon.set_keep_alive(Duration::from_secs(30));
        let (_client, mut el) = rumqttc::AsyncClient::new(anon, 8);
        let got = tokio::time::timeout(Duration::from_secs(10), el.poll()).await;
        assert!(
            matches!(
                got,
                Ok(Err(rumqttc::ConnectionError::ConnectionRefused(
                    V4Code::NotAuthorized
                )))
            ),
            "{got:?}"
        );
        for (password, expected) in [
            ("bob-pw", V5Code::Success),
            ("nope", V5Code::BadUserNamePassword),
        ] {
            let mut o = rumqttc::v5::MqttOptions::new("v5-client", "127.0.0.1", port);
            o.set_credentials("bob", password);
            let (_client, mut el) = rumqttc::v5::AsyncClient::new(o, 8);
            let got = tokio::time::timeout(Duration::from_secs(10), el.poll()).await;
            match got.expect("v5 CONNACK in time") {
                Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(
                    a,
                ))) => assert_eq!(a.code, expected),
                Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                    assert_eq!(code, expected)
                }
                other => panic!("v5: {other:?}"),
            }
        }
        let anon = rumqttc::v5::MqttOptions::new("v5-anon", "127.0.0.1", port);
        let (_client, mut el) = rumqttc::v5::AsyncClient::new(anon, 8);
        let got = tokio::time::timeout(Duration::from_secs(10), el.poll()).await;
        assert!(
            matches!(
                got,
                Ok(Err(rumqttc::v5::ConnectionError::ConnectionRefused(
                    V5Code::NotAuthorized
                )))
            ),
            "{got:?}"
        );
    });
    b.stop();
}

/// mosquitto_pub with `-u -P`, 3.1.1 and 5: the right password publishes, a wrong one and
/// no credentials are refused (it reports the broker's reason and exits non-zero).
#[test]
fn mosquitto_pub_with_credentials() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), "", "");
    let port = b.mqtt_port().to_string();
    let run = |version: &str, creds: &[&str]| {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", "1"]);
        cmd.args(["-t", "users/alice/t", "-m", "hello"]).args(creds);
        let out = output(cmd, "");
        let text = format!("{} {}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    for version in ["mqttv311", "mqttv5"] {
        let (ok, text) = run(version, &["-u", "alice", "-P", "alice-pw"]);
        assert!(ok, "{version} right password: {text}");
        let (ok, text) = run(version, &["-u", "alice", "-P", "wrong"]);
        assert!(!ok, "{version} wrong password accepted: {text}");
        assert!(
            text.to_lowercase().contains("bad user name or password"),
            "{version}: {text}"
        );
        let (ok, text) = run(version, &[]);
        assert!(!ok, "{version} anonymous accepted: {text}");
        assert!(
            text.to_lowercase().contains("not authori"),
            "{version}: {text}"
        );
    }
    b.stop();
}

/// `allow_anonymous = true` with a password file: anonymous clients connect, wrong
/// passwords are still refused.
#[test]
fn anonymous_explicitly_allowed_with_a_password_file() {
    let dir = temp_dir();
    let file = password_file(dir.path());
    let extra = format!(
        "[auth]\npassword_file = {:?}\nallow_anonymous = true\n",
        file.display().to_string()
    );
    let b = Broker::start(&dir.path().join("data"), &extra);
    let addr = b.mqtt_addr.clone();
    let (_, ack) = Raw::handshake(&addr, &connect(Protocol::V5, "anon", true));
    assert_eq!(ack.code, 0);
    let mut c = connect(Protocol::V311, "wrong", true);
    c.username = Some("alice");
    c.password = Some(b"nope");
    assert_eq!(Raw::handshake(&addr, &c).1.code, 4);
    b.stop();
}

/// A broken ACL or password file: `outpost config check` and `outpost serve` name the file
/// and the line, and the broker does not start.
#[test]
fn broken_security_files_are_named_with_their_line() {
    let dir = temp_dir();
    let acl = dir.path().join("acl.toml");
    std::fs::write(
        &acl,
        "[[rule]]\naccess = \"allow\"\nactions = [\"publish\"]\ntopics = [\"a/#/b\"]\n",
    )
    .unwrap();
    let config = dir.path().join("outpost.toml");
    let text = format!("[auth]\nacl_file = {:?}\n", acl.display().to_string());
    std::fs::write(&config, &text).unwrap();
    let mut check = Command::new(common::bin());
    check.args(["config", "check"]).arg(&config);
    let out = output(check, "");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains(&acl.display().to_string()) && err.contains("rule 1 (line 1)"),
        "{err}"
    );
    let refused = Broker::try_start(&dir.path().join("data"), &text)
        .err()
        .unwrap_or_default();
    assert!(refused.contains("a/#/b"), "{refused}");
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "# users\nalice:not-a-hash\n").unwrap();
    let text = format!(
        "[auth]\npassword_file = {:?}\n",
        passwd.display().to_string()
    );
    let refused = Broker::try_start(&dir.path().join("data2"), &text)
        .err()
        .unwrap_or_default();
    assert!(refused.contains("line 2"), "{refused}");
}

/// `outpost bench mqtt` and `bench mqtt-idle` log in with `--user`/`--password` (3.1.1
/// and 5.0); a wrong password fails the run with the CONNACK code and what it means.
#[test]
fn bench_mqtt_logs_in() {
    let dir = temp_dir();
    let (b, _) = secure_broker(dir.path(), "", "");
    let addr = b.mqtt_addr.clone();
    let bench = |args: &[&str], password: &str| {
        let mut cmd = Command::new(bin());
        cmd.args(["bench"]).args(args).args(["--addr", &addr]);
        cmd.args(["--user", "alice", "--password", password]);
        let out = output(cmd, "");
        let text = format!("{} {}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    for protocol in ["4", "5"] {
        let run = [
            "mqtt",
            "--protocol",
            protocol,
            "--publishers",
            "2",
            "--subscribers",
            "1",
            "--messages",
            "200",
            "--topic",
            "users/alice/bench",
            "--json",
            "--quiet",
        ];
        let (ok, text) = bench(&run, "alice-pw");
        assert!(ok, "v{protocol}: {text}");
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("v{protocol}: not one JSON line ({e}): {text}"));
        assert_eq!(
            (&v["acked"], &v["unique"], &v["lost"]),
            (&400.into(), &400.into(), &0.into()),
            "v{protocol}: {v}"
        );
        let (ok, text) = bench(&run, "wrong");
        assert!(!ok, "v{protocol}: a wrong password ran: {text}");
        assert!(
            text.contains("bad user name or password"),
            "v{protocol}: {text}"
        );
        let idle = [
            "mqtt-idle",
            "--protocol",
            protocol,
            "--connections",
            "5",
            "--hold",
            "0",
        ];
        let (ok, text) = bench(&idle, "alice-pw");
        assert!(
            ok && text.contains("connected 5 of 5"),
            "v{protocol}: {text}"
        );
    }
    b.stop();
}
