//! The CLI against a real broker: topics, produce, consume, groups, config.

mod common;

use common::{temp_dir, Broker};

#[test]
fn produce_and_consume_through_the_cli() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    let out = broker.cli_ok(&["topics", "create", "readings", "--partitions", "2"]);
    assert!(out.contains("created topic readings"), "{out}");
    assert_eq!(broker.cli_ok(&["topics", "list"]).trim(), "readings");

    let lines: Vec<String> = (0..1000).map(|i| format!("reading {i}")).collect();
    let input = lines.join("\n") + "\n";
    let out = broker.cli_stdin(&["produce", "readings", "--partition", "1"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = broker.cli_ok(&[
        "consume",
        "readings",
        "--partition",
        "1",
        "--from-beginning",
    ]);
    assert_eq!(got.lines().collect::<Vec<_>>(), lines);

    // An offset inside the log, with --max.
    let got = broker.cli_ok(&[
        "consume",
        "readings",
        "--partition",
        "1",
        "--offset",
        "500",
        "--max",
        "3",
    ]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        ["reading 500", "reading 501", "reading 502"]
    );

    let desc = broker.cli_ok(&["topics", "describe", "readings"]);
    assert!(desc.contains("partitions 2"), "{desc}");
    let p1 = desc
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    let cols: Vec<&str> = p1.split_whitespace().collect();
    assert_eq!(&cols[..3], ["1", "0", "1000"], "{desc}");
    broker.stop();
}

#[test]
fn keyed_records_json_output_and_headers() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    broker.cli_ok(&["topics", "create", "t", "--partitions", "4"]);
    for (key, value) in [("dev-a", "1"), ("dev-b", "2"), ("dev-a", "3")] {
        broker.cli_ok(&[
            "produce", "t", "--key", key, "--value", value, "--header", "unit=C",
        ]);
    }
    let mut seen = Vec::new();
    let out = broker.cli_ok(&["consume", "t", "--from-beginning", "--format", "json"]);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["headers"][0]["key"], "unit");
        assert_eq!(v["headers"][0]["value"], "C");
        assert!(v["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        seen.push((
            v["key"].as_str().unwrap().to_owned(),
            v["partition"].as_u64().unwrap(),
            v["value"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(seen.len(), 3, "{out}");
    // Same key, same partition (Kafka's murmur2 rule), and in order within it.
    let a: Vec<_> = seen.iter().filter(|s| s.0 == "dev-a").collect();
    assert_eq!(a[0].1, a[1].1);
    assert_eq!((a[0].2.as_str(), a[1].2.as_str()), ("1", "3"));
    let expected_a = outpost_firmware::partition::partition_for_key(b"dev-a", 4);
    assert_eq!(a[0].1, u64::from(expected_a));
    let text = broker.cli_ok(&[
        "consume",
        "t",
        "--from-beginning",
        "--print-key",
        "--partition",
        &expected_a.to_string(),
    ]);
    assert!(text.lines().any(|l| l == "dev-a\t1"), "{text}");
}

#[test]
fn consumer_group_resumes_where_it_committed() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    let input: String = (0..10).map(|i| format!("m{i}\n")).collect();
    assert!(broker.cli_stdin(&["produce", "g"], &input).status.success());
    let first = broker.cli_ok(&[
        "consume",
        "g",
        "--group",
        "app",
        "--from-beginning",
        "--max",
        "4",
    ]);
    assert_eq!(first.lines().collect::<Vec<_>>(), ["m0", "m1", "m2", "m3"]);
    let rest = broker.cli_ok(&["consume", "g", "--group", "app"]);
    assert_eq!(rest.lines().count(), 6, "{rest}");
    assert!(rest.starts_with("m4\n"), "{rest}");
    // Without --from-beginning and with nothing committed, a new group starts at the end.
    assert_eq!(broker.cli_ok(&["consume", "g", "--group", "other"]), "");
}

#[test]
fn errors_are_one_clear_line() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    let out = broker.cli(&["topics", "describe", "missing"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown topic `missing`"), "{err}");
    let out = broker.cli(&["topics", "create", "bad/name"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid topic name"));
    broker.cli_ok(&["topics", "create", "dup"]);
    let out = broker.cli(&["topics", "create", "dup"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let addr = broker.addr.clone();
    broker.kill9();
    // Nothing listens there now.
    let out = common::cli_with_stdin(&addr, &["topics", "list"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach broker at") && err.contains("outpost serve"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn config_default_parses_and_check_names_bad_keys() {
    let dir = temp_dir();
    let out = std::process::Command::new(common::bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("fsync = \"always\""));
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/outpost.toml");
    let out = std::process::Command::new(common::bin())
        .args(["config", "check", sample])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "examples/outpost.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[log]\ncache_bytes = 10\n").unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log.cache_bytes") && err.contains("fix"),
        "{err}"
    );
}

#[test]
fn bench_produce_with_and_without_aliases_stores_every_record() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("data"), "");
    for (topic, alias) in [("plain", false), ("aliased", true)] {
        let mut args = vec![
            "bench",
            "produce",
            "--topic",
            topic,
            "--records",
            "2000",
            "--producers",
            "2",
            "--batch",
            "10",
            "--json",
        ];
        if alias {
            args.push("--alias");
        }
        let out = broker.cli_ok(&args);
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(report["records"], 2000, "{out}");
        let desc = broker.cli_ok(&["topics", "describe", topic]);
        let p0 = desc
            .lines()
            .find(|l| l.trim_start().starts_with("0 "))
            .unwrap();
        let cols: Vec<&str> = p0.split_whitespace().collect();
        assert_eq!(&cols[..3], ["0", "0", "2000"], "{desc}");
    }
    broker.stop();
}
