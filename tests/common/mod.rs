//! Test harness: spawns the real `outpost` binary on loopback with its own data directory,
//! finds its port, and kills it on drop. Every wait here is bounded.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod auth;
pub mod bridge;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod mqtt;
pub mod pki;
pub mod tls_front;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a broker may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// `consume` arguments that read `topic` from the beginning as JSON lines, at most `max`.
pub fn consume_json_args<'a>(topic: &'a str, max: &'a str) -> [&'a str; 7] {
    [
        "consume",
        topic,
        "--from-beginning",
        "--max",
        max,
        "--format",
        "json",
    ]
}

/// The CLI's JSON lines, parsed.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect()
}

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_outpost")
}

/// A broker process.
pub struct Broker {
    child: Option<Child>,
    /// `host:port` of its binary-protocol listener.
    pub addr: String,
    /// `host:port` of its MQTT listener (empty when MQTT is disabled).
    pub mqtt_addr: String,
    /// `host:port` of its metrics listener (empty when metrics are disabled).
    pub metrics_addr: String,
    /// Every listener it printed: `wire`, `wire-tls`, `mqtt`, `mqtt-tls`, `metrics` →
    /// `host:port`.
    pub listeners: std::collections::HashMap<String, String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// Extra TOML appended to the generated config (e.g. `[log]\nfsync = "interval"`).
pub fn config_text(data_dir: &Path, extra: &str) -> String {
    format!("data_dir = {:?}\n{extra}\n", data_dir.display().to_string())
}

impl Broker {
    /// Starts a broker on an ephemeral loopback port with `data_dir` and extra config.
    pub fn start(data_dir: &Path, extra: &str) -> Broker {
        Self::try_start(data_dir, extra).unwrap_or_else(|e| panic!("broker did not start: {e}"))
    }

    /// Like `start`, returning the broker's stderr as the error when it exits instead.
    pub fn try_start(data_dir: &Path, extra: &str) -> Result<Broker, String> {
        std::fs::create_dir_all(data_dir).unwrap();
        let config = data_dir.with_extension("toml");
        let mut text = config_text(data_dir, extra);
        if !extra.contains("[wire]") {
            text.push_str("[wire]\nlisten = \"127.0.0.1:0\"\n");
        }
        // Never the well-known port 1883: tests run in parallel and a system broker may hold it.
        if !extra.contains("[mqtt]") {
            text.push_str("[mqtt]\nlisten = \"127.0.0.1:0\"\n");
        }
        // Nor the default metrics port 9883.
        if !extra.contains("[metrics]") {
            text.push_str("[metrics]\nlisten = \"127.0.0.1:0\"\n");
        }
        // Tests that are not about disk space must not depend on the build machine's free
        // space (the default floor is 5% of the file system).
        if !extra.contains("[retention]") {
            text.push_str("[retention]\nmin_free_bytes = 0\nmin_free_percent = 0\n");
        }
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn outpost");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // "outpost: <what> listening on <addr>" per listener, then "outpost: ready".
            let mut listeners = std::collections::HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "outpost: ready" {
                    let _ = tx.send(std::mem::take(&mut listeners));
                } else if let Some((what, addr)) = line
                    .strip_prefix("outpost: ")
                    .and_then(|l| l.split_once(" listening on "))
                {
                    listeners.insert(what.to_owned(), addr.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(listeners) => Ok(Broker {
                child: Some(child),
                addr: listeners.get("wire").cloned().unwrap_or_default(),
                mqtt_addr: listeners.get("mqtt").cloned().unwrap_or_default(),
                metrics_addr: listeners.get("metrics").cloned().unwrap_or_default(),
                listeners,
                data_dir: data_dir.to_owned(),
                stderr: Some(stderr),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(stderr.join().unwrap_or_default())
            }
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL (kill -9) and reap.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait for a clean exit; returns stderr. Panics if it does not exit in time.
    pub fn stop(mut self) -> String {
        let mut c = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "broker exited with {status}");
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                panic!("broker did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Port of the MQTT listener.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no MQTT port in {:?}", self.mqtt_addr))
    }

    /// The records of log topic `topic` from the beginning (at most `max`), as the CLI's JSON
    /// objects (`topic`, `partition`, `offset`, `key`, `value`, `headers`).
    pub fn consume_json(&self, topic: &str, max: u64) -> Vec<serde_json::Value> {
        let max = max.to_string();
        json_lines(&self.cli_ok(&consume_json_args(topic, &max)))
    }

    /// Runs the CLI against this broker.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_stdin(&self.addr, args, None)
    }

    /// Runs the CLI with `input` on stdin.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Output {
        cli_with_stdin(&self.addr, args, Some(input))
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "outpost {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `outpost --broker addr ARGS` with optional stdin, bounded by a timeout.
pub fn cli_with_stdin(addr: &str, args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new(bin())
        .arg("--broker")
        .arg(addr)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outpost cli");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("CLI did not finish within 120 s")
        .expect("CLI output")
}

/// A fresh temporary directory, removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("outpost-test-")
        .tempdir()
        .unwrap()
}

/// A tokio runtime for tests that use the async client.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The records at or after `from` in fetched `batches`, as (offset, value); panics on a batch
/// that does not decode or a null value.
pub fn records_from(batches: &[u8], from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    outpost::log::reader::visit_records(batches, from, &mut scratch, 1 << 24, |r| {
        out.push((r.offset, r.value.expect("non-null value").to_vec()));
        true
    })
    .expect("fetched batches decode");
    out
}

/// The value of header `key` of a record printed by `consume --format json`.
pub fn header<'a>(record: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    record["headers"]
        .as_array()?
        .iter()
        .find(|h| h["key"] == key)
        .and_then(|h| h["value"].as_str())
}

/// A spawned helper process (a client under test), killed and reaped on drop; its stdout
/// lines arrive on a channel so every wait for output is bounded.
pub struct Proc {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with piped stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        Proc {
            child: Some(child),
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Reads stdout lines until one satisfies `want`; panics after `timeout` or at EOF.
    pub fn wait_line(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => {
                    let stderr = self.stderr_now();
                    panic!(
                        "no expected output line within {timeout:?} ({e}); stdout so far: {:?}; stderr: {stderr}",
                        self.seen
                    )
                }
            }
        }
    }

    /// Waits for the exit (bounded), then returns (status, every stdout line, stderr).
    pub fn finish(mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>, String) {
        let mut child = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "process did not exit within {timeout:?}; stdout: {:?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF, which follows the exit.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self.stderr_now();
        (status, std::mem::take(&mut self.seen), stderr)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stderr_now(&mut self) -> String {
        match self.stderr.take() {
            Some(h) if h.is_finished() => h.join().unwrap_or_default(),
            Some(h) => {
                self.stderr = Some(h);
                "(still running)".to_owned()
            }
            None => String::new(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
