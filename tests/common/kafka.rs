//! The Kafka side of the bridge tests: a private tansu 0.6.0 broker ([`Tansu`]) with sqlite
//! storage, topics created with tansu's own CLI, and confluent-kafka (librdkafka, not ours) as
//! the consumer that checks what arrived ([`consume`]) and as the reference producer
//! ([`produce_jsonl`]); Kafka's default key partitioner ([`murmur2_partition`]) so tests can
//! compute where a key must land.
//!
//! It does not start `outpost` (the parent module does) and asserts nothing about the bridge:
//! tests do. Everything listens on 127.0.0.1 only, on ephemeral ports; every wait is bounded;
//! every process started here is killed on drop.
//!
//! Measured facts about tansu 0.6.0 that shape this harness (see the `Tansu` docs):
//! - Its sqlite storage keeps one row per record and one per header, and has no index on the
//!   headers' record key: each fetched record scans the whole header table, so a fetch of a
//!   few thousand records with headers takes minutes and blocks the broker (20,000 records
//!   with 4 headers each: nothing consumed in 250 s). [`Tansu::start`] adds that index
//!   (20,000 records then read in 4.5 s). The index changes no result, only the query plan.
//! - A debug build (what `scripts/test.sh` installs) ingests ~9,500 records/s of 64 bytes
//!   without headers and ~2,100/s with 4 headers on the 2-core CI machine; a fetch costs time
//!   in proportion to the records after its start offset. Size volume tests for that.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::upstream::{free_port, send_signal, tail, wait_until, Origin};
use super::upstream::{PROP_GATEWAY, PROP_OFFSET, PROP_PARTITION, PROP_TOPIC};

/// The tansu release the tests are written against (`scripts/test.sh` installs it).
pub const TANSU_VERSION: &str = "0.6.0";
/// How long tansu may take to accept TCP after it is started.
const TANSU_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long tansu may take to exit after SIGTERM.
const TANSU_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Fresh ports tried when the first one is taken between choosing it and tansu binding it.
const PORT_ATTEMPTS: u32 = 3;
/// Interval between two connection attempts while waiting for tansu.
const POLL: Duration = Duration::from_millis(20);
/// How long a helper command (tansu's CLI, the index script) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time given to a python helper beyond its own timeout (startup, metadata).
const PYTHON_GRACE: Duration = Duration::from_secs(60);
/// tansu's sqlite database file, relative to its directory (its working directory).
const DB_FILE: &str = "tansu.db";
/// tansu's cluster id: set explicitly so no `CLUSTER_ID` from anywhere applies.
const CLUSTER_ID: &str = "outpost-test";
/// tansu's log filter (it reads `RUST_LOG`).
const TANSU_LOG_FILTER: &str = "warn";

// ------------------------------------------------------------------------------------------
// Programs
// ------------------------------------------------------------------------------------------

/// The tansu binary: `$OUTPOST_TANSU`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu`;
/// panics unless `tansu --version` says [`TANSU_VERSION`].
pub fn tansu_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = find_tansu().unwrap_or_else(|| {
            panic!(
                "tansu not found ($OUTPOST_TANSU, PATH, ~/.cargo/bin): run scripts/test.sh, which \
                 installs tansu {TANSU_VERSION} with cargo install"
            )
        });
        let out = Command::new(&path)
            .arg("--version")
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", path.display()));
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.split_whitespace().nth(1) == Some(TANSU_VERSION),
            "{} --version says {version:?}; the tests need tansu {TANSU_VERSION} (scripts/test.sh)",
            path.display()
        );
        path
    })
}

fn find_tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OUTPOST_TANSU") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path.or_else(|| {
        cargo_home
            .map(|c| c.join("bin/tansu"))
            .filter(|p| p.is_file())
    })
}

/// The venv's python with confluent-kafka: `$OUTPOST_PYTHON`, else `.venv/bin/python` in the
/// repository. Panics when it or confluent-kafka 2.x is missing.
pub fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let path = std::env::var_os("OUTPOST_PYTHON").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
            PathBuf::from,
        );
        let check = Command::new(&path)
            .args([
                "-c",
                "import confluent_kafka, sys; sys.exit(0 if confluent_kafka.__version__.startswith('2.') else 1)",
            ])
            .output();
        match check {
            Ok(out) if out.status.success() => path,
            _ => panic!(
                "python with confluent-kafka 2.x not found at {} (set OUTPOST_PYTHON or run \
                 scripts/test.sh, which installs confluent-kafka into .venv)",
                path.display()
            ),
        }
    })
}

/// `tests/python/<script>`.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs `cmd` to its end with `input` on stdin, bounded by `timeout` (killed after it);
/// returns (success, stdout, stderr).
fn run(mut cmd: Command, input: Option<Vec<u8>>, timeout: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Ok(Err(e)) => panic!("{cmd:?}: {e}"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{cmd:?} did not finish within {timeout:?}")
        }
    }
}

// ------------------------------------------------------------------------------------------
// Tansu
// ------------------------------------------------------------------------------------------

/// A private tansu 0.6.0 broker on 127.0.0.1 with sqlite storage in its own directory.
///
/// It runs with a cleared environment (tansu reads `CLUSTER_ID`, `LISTENER_URL`,
/// `ADVERTISED_LISTENER_URL`, `STORAGE_ENGINE`, `SCHEMA_REGISTRY`, `DATA_LAKE`, `ICEBERG_*`,
/// `DELTA_*`, `OTEL_EXPORTER_OTLP_ENDPOINT` and `RUST_LOG`, and expands `${VAR}` in its
/// URLs) and in its own directory as working directory, where no `.env` exists (tansu loads
/// one with `dotenv`, which also searches the parent directories: [`start`](Self::start)
/// panics if one of them has a `.env`).
///
/// Guarantees of the process under test, measured:
/// - It does not create topics on demand: [`create_topic`](Self::create_topic) does.
/// - What it acknowledged (acks=all) survives SIGTERM and SIGKILL: sqlite commits before the
///   produce response.
///
/// The port and the storage stay the same across `restart`s. Drop kills it (after SIGCONT if
/// it was paused) and removes its directory.
pub struct Tansu {
    dir: tempfile::TempDir,
    port: u16,
    advertised_port: u16,
    child: Option<Child>,
    paused: bool,
    /// Started with `--authentication` (see [`require_scram`](Self::require_scram)).
    authentication: bool,
}

/// A SCRAM mechanism tansu stores credentials for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scram {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Scram {
    /// The name `tansu user create --mechanism` takes.
    fn tansu_name(self) -> &'static str {
        match self {
            Scram::Sha256 => "scram256",
            Scram::Sha512 => "scram512",
        }
    }

    /// The SASL mechanism name (the bridge's `sasl_mechanism`, librdkafka's
    /// `sasl.mechanism`).
    pub fn sasl_name(self) -> &'static str {
        match self {
            Scram::Sha256 => "SCRAM-SHA-256",
            Scram::Sha512 => "SCRAM-SHA-512",
        }
    }
}

/// How a [`Tansu`] is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct TansuOpts {
    /// Listen on this port of 127.0.0.1 (`None`: a free one).
    pub port: Option<u16>,
    /// Advertise this port of 127.0.0.1 in metadata (`None`: its own). Kafka clients connect
    /// to the advertised address after bootstrap, so a [`Proxy`](super::upstream::Proxy) in
    /// front of tansu must be advertised for all traffic to pass it.
    pub advertised_port: Option<u16>,
}

impl Tansu {
    /// Starts tansu on a free port, waits until it accepts TCP connections, and adds the
    /// header index to its database (see the module docs).
    pub fn start() -> Tansu {
        Self::start_with(TansuOpts::default())
    }

    /// Like [`start`](Self::start), with options.
    pub fn start_with(opts: TansuOpts) -> Tansu {
        tansu_bin();
        let dir = tempfile::Builder::new()
            .prefix("outpost-tansu-")
            .tempdir()
            .expect("temp dir");
        refuse_dotenv(dir.path());
        let mut t = Tansu {
            dir,
            port: 0,
            advertised_port: 0,
            child: None,
            paused: false,
            authentication: false,
        };
        let attempts = if opts.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        for attempt in 1..=attempts {
            t.port = opts.port.unwrap_or_else(free_port);
            t.advertised_port = opts.advertised_port.unwrap_or(t.port);
            t.spawn();
            match t.try_wait_listening() {
                Ok(()) => {
                    t.add_header_index();
                    return t;
                }
                Err(e) if attempt < attempts && e.contains("in use") => t.kill9(),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Its port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port it advertises in metadata (its own unless [`TansuOpts::advertised_port`]).
    pub fn advertised_port(&self) -> u16 {
        self.advertised_port
    }

    /// `127.0.0.1:PORT`, as Kafka clients take it (`bootstrap.servers`).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka://127.0.0.1:PORT`, as a bridge's `upstream` takes it.
    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// Its directory (database, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id, or `None` while it is down.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (paused counts as alive).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Its log so far (stdout and stderr of every start).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Creates `name` with `partitions` partitions with `tansu topic create`; panics if that
    /// fails (for example because the topic exists).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        if let Err(e) = self.try_create_topic(name, partitions) {
            panic!("tansu topic create {name} --partitions {partitions}: {e}");
        }
    }

    /// Like [`create_topic`](Self::create_topic), returning tansu's complaint instead of
    /// panicking.
    pub fn try_create_topic(&self, name: &str, partitions: u32) -> Result<(), String> {
        let mut cmd = self.cli();
        cmd.args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.bootstrap()))
            .arg("--partitions")
            .arg(partitions.to_string())
            .arg(name);
        match run(cmd, None, COMMAND_TIMEOUT) {
            (true, _, _) => Ok(()),
            (false, out, err) => Err(format!("{out}{err}")),
        }
    }

    /// SIGTERM and wait for the exit (after SIGCONT if paused). Panics, after SIGKILL, if it
    /// does not exit in time.
    pub fn stop(&mut self) {
        let pid = self.live_pid("stop");
        if self.paused {
            self.resume();
        }
        send_signal(pid, "TERM");
        let mut child = self.child.take().expect("live_pid checked it");
        let exited = wait_until(TANSU_STOP_TIMEOUT, || {
            child.try_wait().expect("try_wait").is_some()
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tansu did not exit within {TANSU_STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log_tail()
            );
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(c.id().to_string())
                    .status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: the process hangs with its sockets open (a half-open upstream).
    pub fn pause(&mut self) {
        send_signal(self.live_pid("pause"), "STOP");
        self.paused = true;
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        send_signal(self.live_pid("resume"), "CONT");
        self.paused = false;
    }

    /// Starts it again on the same port and storage (stopping it with SIGTERM first if it
    /// runs) and waits until it accepts TCP.
    pub fn restart(&mut self) {
        if self.running() {
            self.stop();
        }
        self.child = None;
        self.spawn();
        if let Err(e) = self.try_wait_listening() {
            panic!("{e}");
        }
    }

    /// Stores SCRAM credentials for `users` (name, password, mechanism) and restarts tansu
    /// with `--authentication`: from then on every client must authenticate with SASL.
    ///
    /// Measured on tansu 0.6.0: its own CLI (`user create`, `topic create`) cannot
    /// authenticate, so users and topics are created before (create every topic first);
    /// it offers SCRAM only (a PLAIN handshake is refused: librdkafka reports "broker's
    /// supported mechanisms: (n/a)"); a wrong SCRAM password gets `invalid-proof`.
    pub fn require_scram(&mut self, users: &[(&str, &str, Scram)]) {
        for (name, password, mechanism) in users {
            let mut cmd = self.cli();
            cmd.args(["user", "create", "--broker"])
                .arg(format!("tcp://{}", self.bootstrap()))
                .args(["--mechanism", mechanism.tansu_name()])
                .args([name, password]);
            let (ok, out, err) = run(cmd, None, COMMAND_TIMEOUT);
            assert!(ok, "tansu user create {name}: {out}{err}");
        }
        self.authentication = true;
        self.restart();
    }

    fn live_pid(&self, what: &str) -> u32 {
        self.pid()
            .unwrap_or_else(|| panic!("{what}: tansu is not running"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("tansu.log")
    }

    fn log_tail(&self) -> String {
        tail(&self.log_path())
    }

    /// A command for the tansu binary with the cleared environment, in its directory.
    fn cli(&self) -> Command {
        let mut cmd = Command::new(tansu_bin());
        cmd.env_clear()
            .env("RUST_LOG", TANSU_LOG_FILTER)
            .current_dir(self.dir());
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open tansu.log");
        let url = format!("tcp://{}", self.bootstrap());
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let mut cmd = self.cli();
        cmd.arg("broker")
            .args(["--cluster-id", CLUSTER_ID])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", &format!("sqlite://{DB_FILE}")]);
        if self.authentication {
            cmd.arg("--authentication");
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone file"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu: {e}; run scripts/test.sh"));
        self.child = Some(child);
        self.paused = false;
    }

    fn try_wait_listening(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut exited = None;
        let listening = wait_until(TANSU_START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                exited = Some(status);
                return true;
            }
            StdTcpStream::connect_timeout(&addr, POLL).is_ok()
        });
        let problem = match (exited, listening) {
            (Some(status), _) => format!("tansu exited ({status})"),
            (None, false) => {
                format!("tansu did not accept TCP on {addr} within {TANSU_START_TIMEOUT:?}")
            }
            (None, true) => return Ok(()),
        };
        if exited.is_some() {
            self.child = None;
        }
        Err(format!("{problem}; log:\n{}", self.log_tail()))
    }

    /// Adds an index on the header table's record key (tansu's schema has none; see the module
    /// docs). tansu has created its schema by the time it listens.
    fn add_header_index(&self) {
        self.db_tool(&["index"]);
    }

    /// How many records of `topic` tansu stored per compression codec of the batch they came
    /// in (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), read from its database: a Kafka consumer
    /// cannot see the codec of a batch.
    pub fn stored_codecs(&self, topic: &str) -> BTreeMap<u8, u64> {
        let out = self.db_tool(&["codecs", topic]);
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("tansu_db.py codecs printed {out:?}: {e}"));
        v.as_object()
            .expect("an object")
            .iter()
            .map(|(k, n)| (k.parse().expect("codec id"), n.as_u64().expect("count")))
            .collect()
    }

    /// Every record of `topic` as tansu stored it, by partition and offset, read from its
    /// database. tansu 0.6.0 stores snappy batches but fails every fetch of them (it closes
    /// the connection: `UnexpectedType("Snappy")`), so no Kafka consumer can read them back.
    pub fn stored_records(&self, topic: &str) -> Vec<KafkaRecord> {
        let out = self.db_tool(&["records", topic]);
        out.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("tansu_db.py records printed {l:?}: {e}"));
                KafkaRecord::from_json(&v)
            })
            .collect()
    }

    /// Runs `tests/python/tansu_db.py COMMAND DB [ARGS]`; returns its stdout.
    fn db_tool(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(python());
        cmd.arg(script("tansu_db.py"))
            .arg(args[0])
            .arg(self.dir().join(DB_FILE))
            .args(&args[1..]);
        let (ok, out, err) = run(cmd, None, COMMAND_TIMEOUT);
        assert!(ok, "tansu_db.py {args:?} failed: {out}{err}");
        out
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Panics if `dir` or one of its parents holds a `.env` (tansu would load it).
fn refuse_dotenv(dir: &Path) {
    if let Some(found) = dir.ancestors().map(|d| d.join(".env")).find(|p| p.exists()) {
        panic!(
            "{} exists: tansu would read its variables (dotenv searches parent directories); \
             move it away",
            found.display()
        );
    }
}

// ------------------------------------------------------------------------------------------
// Records seen by confluent-kafka
// ------------------------------------------------------------------------------------------

/// How a record's timestamp was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// By the producer (Kafka's CreateTime).
    Create,
    /// By the broker (LogAppendTime).
    LogAppend,
    /// None given.
    NotAvailable,
}

/// A record as the confluent-kafka consumer received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: u32,
    /// Offset in that partition.
    pub offset: u64,
    /// Key (`None`: null). Always `None` when read without payloads.
    pub key: Option<Vec<u8>>,
    /// Value (`None`: null). Always `None` when read without payloads.
    pub value: Option<Vec<u8>>,
    /// How the timestamp was set.
    pub timestamp_type: TimestampType,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Every header in record order (a `None` value is a null header value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl KafkaRecord {
    /// The value of the first header called `name` (`Some(None)` for a null value).
    pub fn header(&self, name: &str) -> Option<Option<&[u8]>> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The `outpost-*` origin headers, parsed; `None` if one is missing or malformed.
    pub fn origin(&self) -> Option<Origin> {
        let text = |name| std::str::from_utf8(self.header(name)??).ok();
        Some(Origin {
            gateway: text(PROP_GATEWAY)?.to_owned(),
            topic: text(PROP_TOPIC)?.to_owned(),
            partition: text(PROP_PARTITION)?.parse().ok()?,
            offset: text(PROP_OFFSET)?.parse().ok()?,
        })
    }

    fn from_json(v: &serde_json::Value) -> KafkaRecord {
        let bytes = |v: &serde_json::Value| -> Option<Vec<u8>> {
            v.as_str().map(|s| {
                B64.decode(s)
                    .unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
            })
        };
        let headers = v["headers"]
            .as_array()
            .expect("headers array")
            .iter()
            .map(|h| {
                let name = h[0].as_str().expect("header name").to_owned();
                (name, bytes(&h[1]))
            })
            .collect();
        let timestamp_type = match v["timestamp_type"].as_str() {
            Some("create") => TimestampType::Create,
            Some("log_append") => TimestampType::LogAppend,
            Some("none") => TimestampType::NotAvailable,
            other => panic!("unknown timestamp type {other:?}"),
        };
        KafkaRecord {
            topic: v["topic"].as_str().expect("topic").to_owned(),
            partition: v["partition"].as_u64().expect("partition") as u32,
            offset: v["offset"].as_u64().expect("offset"),
            key: bytes(&v["key"]),
            value: bytes(&v["value"]),
            timestamp_type,
            timestamp_ms: v["timestamp_ms"].as_i64().expect("timestamp_ms"),
            headers,
        }
    }
}

/// What [`consume_with`] reads.
#[derive(Debug, Clone)]
pub struct ConsumeOpts {
    /// Stop after this many records…
    pub count: usize,
    /// …or after this long.
    pub timeout: Duration,
    /// Once `count` records were read, go on to the end of every partition (as it is then), so
    /// duplicates and strays beyond `count` are seen too.
    pub to_end: bool,
    /// Keys and values too (`false` keeps memory small for runs of many records).
    pub payload: bool,
    /// librdkafka settings added to the consumer's (TLS, SASL: see [`Tansu::require_scram`]
    /// and [`TlsFront`](super::tls_front::TlsFront)).
    pub client_config: Vec<(String, String)>,
}

impl ConsumeOpts {
    /// `count` records with payloads, up to the end, within `timeout`.
    pub fn new(count: usize, timeout: Duration) -> ConsumeOpts {
        ConsumeOpts {
            count,
            timeout,
            to_end: true,
            payload: true,
            client_config: Vec::new(),
        }
    }
}

/// What [`consume_with`] read.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// The records in the order received (offset order within each partition).
    pub records: Vec<KafkaRecord>,
    /// `count` records were read (and, with `to_end`, the end reached) before the timeout.
    pub complete: bool,
    /// The consumer's stderr (librdkafka's complaints, the summary line).
    pub stderr: String,
}

/// Reads every partition of `topics` from the beginning with `tests/python/kafka_consume.py`
/// (confluent-kafka) until `opts.count` records or `opts.timeout`.
pub fn consume_with(bootstrap: &str, topics: &[&str], opts: &ConsumeOpts) -> Consumed {
    let mut cmd = Command::new(python());
    cmd.arg(script("kafka_consume.py"))
        .args(["--bootstrap", bootstrap])
        .args(["--count", &opts.count.to_string()])
        .args(["--timeout", &opts.timeout.as_secs_f64().to_string()])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for t in topics {
        cmd.args(["--topic", t]);
    }
    if opts.to_end {
        cmd.arg("--to-end");
    }
    if !opts.payload {
        cmd.arg("--no-payload");
    }
    for (k, v) in &opts.client_config {
        cmd.arg("--config").arg(format!("{k}={v}"));
    }
    let (_, out, stderr) = run(cmd, None, opts.timeout + PYTHON_GRACE);
    let records = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad consumer line {l:?}: {e}; stderr: {stderr}"));
            KafkaRecord::from_json(&v)
        })
        .collect();
    let summary = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or_else(|| panic!("the consumer printed no summary; stderr:\n{stderr}"));
    Consumed {
        records,
        complete: summary["summary"]["reached_count"] == true,
        stderr,
    }
}

/// Reads `count` records (and then to the end) of `topics` with payloads; panics if fewer
/// arrive within `timeout`.
pub fn consume(
    bootstrap: &str,
    topics: &[&str],
    count: usize,
    timeout: Duration,
) -> Vec<KafkaRecord> {
    let got = consume_with(bootstrap, topics, &ConsumeOpts::new(count, timeout));
    assert!(
        got.complete,
        "{} of {count} records of {topics:?} within {timeout:?}; consumer stderr:\n{}",
        got.records.len(),
        got.stderr
    );
    got.records
}

// ------------------------------------------------------------------------------------------
// Producing with confluent-kafka
// ------------------------------------------------------------------------------------------

/// A record for [`produce_jsonl`].
#[derive(Debug, Clone, Default)]
pub struct ProduceRecord {
    /// Kafka topic.
    pub topic: String,
    /// `None`: librdkafka's partitioner chooses (see [`ProduceOpts::partitioner`]).
    pub partition: Option<u32>,
    /// Key (`None`: null).
    pub key: Option<Vec<u8>>,
    /// Value (`None`: null).
    pub value: Option<Vec<u8>>,
    /// CreateTime in ms; `None`: librdkafka's clock.
    pub timestamp_ms: Option<i64>,
    /// Headers in order (a `None` value is a null header value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ProduceRecord {
    fn to_json(&self) -> serde_json::Value {
        let b64 = |b: &Option<Vec<u8>>| b.as_ref().map(|b| B64.encode(b));
        serde_json::json!({
            "topic": self.topic,
            "partition": self.partition,
            "key": b64(&self.key),
            "value": b64(&self.value),
            "timestamp_ms": self.timestamp_ms,
            "headers": self.headers.iter().map(|(k, v)| serde_json::json!([k, b64(v)])).collect::<Vec<_>>(),
        })
    }
}

/// Options of [`produce_jsonl`].
#[derive(Debug, Clone)]
pub struct ProduceOpts {
    /// librdkafka's `partitioner` for records without a partition (`murmur2_random` is the
    /// Java client's default: murmur2 of the key).
    pub partitioner: String,
    /// librdkafka's `compression.type`.
    pub compression: String,
}

impl Default for ProduceOpts {
    fn default() -> Self {
        ProduceOpts {
            partitioner: "murmur2_random".to_owned(),
            compression: "none".to_owned(),
        }
    }
}

/// Produces `records` with `tests/python/kafka_produce.py --jsonl` (acks=all); returns the
/// (topic, partition, offset) of each delivery report, in delivery order. Panics unless every
/// record was delivered.
pub fn produce_jsonl(
    bootstrap: &str,
    records: &[ProduceRecord],
    opts: &ProduceOpts,
) -> Vec<(String, u32, u64)> {
    let mut input = Vec::new();
    for r in records {
        serde_json::to_writer(&mut input, &r.to_json()).expect("encode");
        input.push(b'\n');
    }
    let mut cmd = Command::new(python());
    cmd.arg(script("kafka_produce.py"))
        .args(["--bootstrap", bootstrap, "--jsonl"])
        .args(["--partitioner", &opts.partitioner])
        .args(["--compression", &opts.compression])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (ok, out, err) = run(cmd, Some(input), COMMAND_TIMEOUT + PYTHON_GRACE);
    assert!(ok, "kafka_produce.py failed: {out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("bad producer output {out:?}: {e}; stderr: {err}"));
    v["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            (
                o[0].as_str().expect("topic").to_owned(),
                o[1].as_u64().expect("partition") as u32,
                o[2].as_u64().expect("offset"),
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Kafka's default partitioner
// ------------------------------------------------------------------------------------------

/// Kafka's default partitioner for a keyed record (the broker's and the bridge's own, pinned
/// to Kafka's test vectors in `outpost_firmware::partition` and compared with librdkafka's
/// choice in `tests/kafka_upstream.rs`).
pub fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    outpost_firmware::partition::partition_for_key(key, partitions)
}
