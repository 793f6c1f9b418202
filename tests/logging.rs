//! `[logging]` of `outpost serve`, against the real binary: JSON lines, the level from the file
//! or from `RUST_LOG` (which wins), and no line per message for an error a client repeats.

mod common;

use std::process::Command;
use std::time::Duration;

use common::mqtt::Raw;
use common::{temp_dir, Proc};
use outpost::mqtt::packet::QoS;

/// How long a broker may take to start or to stop.
const WAIT: Duration = Duration::from_secs(30);

/// A running `serve` whose stderr the test reads after stopping it.
struct Serve {
    proc: Proc,
    mqtt_addr: String,
}

impl Serve {
    /// Starts `serve` with `logging` as the `[logging]` section (and `extra` TOML), with
    /// `RUST_LOG` as given (`None`: unset).
    fn start(dir: &std::path::Path, logging: &str, extra: &str, rust_log: Option<&str>) -> Serve {
        let config = dir.join("outpost.toml");
        let text = format!(
            "data_dir = {:?}\n[logging]\n{logging}\n[wire]\nlisten = \"127.0.0.1:0\"\n\
             [mqtt]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n{extra}\n",
            dir.join("data").display().to_string()
        );
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(common::bin());
        cmd.args(["serve", "--config"]).arg(&config);
        match rust_log {
            Some(v) => cmd.env("RUST_LOG", v),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut proc = Proc::spawn(cmd);
        let line = proc.wait_line(WAIT, |l| l.starts_with("outpost: mqtt listening on "));
        let mqtt_addr = line["outpost: mqtt listening on ".len()..]
            .trim()
            .to_owned();
        Serve { proc, mqtt_addr }
    }

    /// SIGTERM, a bounded wait for a clean exit; returns stderr.
    fn stop(self) -> String {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.proc.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let (status, _, stderr) = self.proc.finish(WAIT);
        assert!(
            status.success(),
            "serve exited with {status}; stderr: {stderr}"
        );
        stderr
    }
}

#[test]
fn json_format_writes_one_json_object_per_line() {
    let dir = temp_dir();
    let serve = Serve::start(dir.path(), "format = \"json\"", "", None);
    let stderr = serve.stop();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "serving",
            "shutting down: draining connections and the log writer",
            "stopped"
        ],
        "{stderr}"
    );
    let serving = &events[0];
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert_eq!(serving["target"], "outpost::server", "{serving}");
    // The event's fields sit beside the message.
    assert!(
        serving["gateway_id"]
            .as_str()
            .is_some_and(|g| !g.is_empty()),
        "{serving}"
    );
    assert!(serving["timestamp"].is_string(), "{serving}");
}

#[test]
fn level_from_the_file_and_rust_log_wins() {
    let dir = temp_dir();
    let quiet = Serve::start(dir.path(), "level = \"warn\"", "", None).stop();
    assert!(
        !quiet.contains("serving"),
        "level = warn still logged info: {quiet}"
    );

    // RUST_LOG, when set, overrides the file's level.
    let loud = Serve::start(dir.path(), "level = \"warn\"", "", Some("info")).stop();
    assert!(
        loud.contains("serving"),
        "RUST_LOG=info did not win: {loud}"
    );
    // Plain format: no JSON, no colour codes in a pipe.
    assert!(
        !loud.trim_start().starts_with('{') && !loud.contains('\u{1b}'),
        "{loud}"
    );
}

#[test]
fn an_error_a_client_repeats_per_message_is_logged_once() {
    let dir = temp_dir();
    let serve = Serve::start(
        dir.path(),
        "level = \"warn\"",
        "[log]\nauto_create_topics = false\n",
        None,
    );
    let started = std::time::Instant::now();
    let mut client = Raw::v5(&serve.mqtt_addr, "repeater");
    const PUBLISHES: u64 = 25;
    for i in 0..PUBLISHES {
        let payload = format!("reading {i}");
        let code = client.publish("nosuchtopic/t", payload.as_bytes(), QoS::AtLeastOnce, false);
        // The topic does not exist and may not be created: "unspecified error".
        assert_eq!(code, 0x80, "publish {i}");
    }
    client.disconnect();
    let elapsed = started.elapsed();
    let stderr = serve.stop();
    // One line, and one more per 10 s interval the publishes took (none on any sane machine;
    // counted rather than assumed, so a slow machine does not fail the test).
    let lines = stderr.matches("MQTT publish not stored").count() as u64;
    let intervals = elapsed.as_secs() / 10;
    assert!(
        lines >= 1 && lines <= 1 + intervals && lines < PUBLISHES,
        "{PUBLISHES} refused publishes in {elapsed:?} logged {lines} lines: {stderr}"
    );
}
