//! `outpost bridge status` against a real broker with no bridges configured. (Brokers with
//! running bridges are covered by the bridge tests.)

mod common;

use common::{temp_dir, Broker};

#[test]
fn bridge_status_without_bridges() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    let out = broker.cli_ok(&["bridge", "status"]);
    assert_eq!(out, "no bridges configured\n");
    let out = broker.cli_ok(&["bridge", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    assert_eq!(v, serde_json::json!([]));
    assert_eq!(out.trim(), "[]");

    // `--broker` after the subcommand works too; an address nobody listens on is named.
    let addr = broker.addr.clone();
    broker.stop();
    let out = std::process::Command::new(common::bin())
        .args(["bridge", "status", "--broker", &addr])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach broker at {addr}")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
