//! `outpost devices` against the real binary: configs from device files (versions, errors
//! that name the file), tokens (generated, from stdin, cleared), get/list/delete, what
//! survives a restart, and the admin right the device frames need.

mod common;

use common::auth::{cli_as, secure_broker};
use common::{temp_dir, Broker};

const DEVICE: &str = "gateway = \"127.0.0.1:7883\"\nsample_interval_ms = 5000\nbatch_size = 4\n\
[[aliases]]\nalias = 1\ntopic = \"temperature\"\n\
[[aliases]]\nalias = 2\ntopic = \"humidity\"\npartition = 0\n";

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn json(broker: &Broker, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&broker.cli_ok(args)).unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn devices_are_managed_through_the_cli_and_survive_a_restart() {
    let dir = temp_dir();
    let file = write(dir.path(), "d1.toml", DEVICE);
    let data = dir.path().join("data");
    let broker = Broker::start(&data, "");

    let out = broker.cli_ok(&["devices", "set", "d1", "--file", &file]);
    assert!(out.contains("config version 1 stored"), "{out}");
    // The same file again: unchanged, no new version.
    let out = broker.cli_ok(&["devices", "set", "d1", "--file", &file]);
    assert!(out.contains("config version 1 stored"), "{out}");
    let changed = write(dir.path(), "d1b.toml", &DEVICE.replace("5000", "6000"));
    let out = broker.cli_ok(&["devices", "set", "d1", "--file", &changed]);
    assert!(out.contains("config version 2 stored"), "{out}");
    // An explicit version must grow.
    let stale = write(dir.path(), "stale.toml", &format!("version = 2\n{DEVICE}"));
    let err = stderr_of(&broker.cli(&["devices", "set", "d1", "--file", &stale]));
    assert!(err.contains("not above the stored version 2"), "{err}");

    let d = json(&broker, &["devices", "get", "d1", "--json"]);
    let d = &d[0];
    assert_eq!(d["config"]["version"], 2);
    assert_eq!(d["config"]["sample_interval_ms"], 6000);
    assert_eq!(d["config"]["batch_size"], 4);
    assert_eq!(d["config"]["ack"], "commit");
    assert_eq!(d["config"]["aliases"][1]["topic"], "humidity");
    assert_eq!(d["config"]["aliases"][1]["partition"], 0);
    assert_eq!(d["token"], false);
    assert_eq!(d["last_seen_ms"], serde_json::Value::Null);

    // Tokens: generated and printed once, or read from stdin; cleared.
    let token = broker.cli_ok(&["devices", "token", "d1"]);
    let token = token.trim();
    assert_eq!(token.len(), 32, "{token}");
    assert_eq!(
        json(&broker, &["devices", "get", "d1", "--json"])[0]["token"],
        true
    );
    let out = broker.cli_stdin(&["devices", "token", "d2", "--stdin"], "my-token\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&broker, &["devices", "list", "--json"]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d1", "d2"]);
    assert_eq!(list[1]["config"], serde_json::Value::Null);
    assert_eq!(list[1]["token"], true);
    let table = broker.cli_ok(&["devices", "list"]);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(table.contains("d2"), "{table}");
    let shown = broker.cli_ok(&["devices", "get", "d1"]);
    assert!(shown.contains("alias 1 -> temperature"), "{shown}");
    assert!(shown.contains("token: set"), "{shown}");

    // Bad input: named clearly, nothing stored.
    let bad = write(
        dir.path(),
        "bad.toml",
        "gateway = \"g\"\ncolour = \"red\"\n",
    );
    let err = stderr_of(&broker.cli(&["devices", "set", "d3", "--file", &bad]));
    assert!(err.contains("bad.toml") && err.contains("colour"), "{err}");
    let slash = write(
        dir.path(),
        "slash.toml",
        "gateway = \"g\"\n[[aliases]]\nalias = 1\ntopic = \"a/b\"\n",
    );
    let err = stderr_of(&broker.cli(&["devices", "set", "d3", "--file", &slash]));
    assert!(err.contains("invalid topic name `a/b`"), "{err}");
    let err = stderr_of(&broker.cli(&["devices", "set", "bad id", "--file", &file]));
    assert!(err.contains("invalid device id"), "{err}");
    let err = stderr_of(&broker.cli(&["devices", "get", "nobody"]));
    assert!(err.contains("unknown device `nobody`"), "{err}");
    let err = stderr_of(&broker.cli(&["devices", "delete", "nobody"]));
    assert!(err.contains("UNKNOWN_DEVICE"), "{err}");

    // Clear d2's token; delete it.
    broker.cli_ok(&["devices", "token", "d2", "--clear"]);
    assert_eq!(
        json(&broker, &["devices", "get", "d2", "--json"])[0]["token"],
        false
    );
    broker.cli_ok(&["devices", "delete", "d2"]);
    broker.stop();

    // Everything stored survives a restart.
    let broker = Broker::start(&data, "");
    let list = json(&broker, &["devices", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], "d1");
    assert_eq!(list[0]["config"]["version"], 2);
    assert_eq!(list[0]["token"], true);
    broker.stop();
}

#[test]
fn device_admin_needs_the_admin_right() {
    let dir = temp_dir();
    let file = write(dir.path(), "d1.toml", DEVICE);
    let acl = "[[rule]]\nuser = \"admin\"\naccess = \"allow\"\nactions = [\"all\"]\ntopics = [\"#\", \"$devices\"]\n\
               [[rule]]\nuser = \"alice\"\naccess = \"allow\"\nactions = [\"all\"]\ntopics = [\"#\"]\n";
    let (b, _) = secure_broker(dir.path(), acl, "");
    // `#` does not cover `$devices`: alice administers topics, not devices.
    for args in [
        &["devices", "set", "d1", "--file", &file][..],
        &["devices", "list"],
        &["devices", "token", "d1"],
    ] {
        let out = cli_as(&b, Some("alice"), args);
        let err = stderr_of(&out);
        assert!(err.contains("NOT_AUTHORIZED"), "{args:?}: {err}");
    }
    let out = cli_as(
        &b,
        Some("admin"),
        &["devices", "set", "d1", "--file", &file],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_as(&b, Some("admin"), &["devices", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.stop();
}
