//! The upstream side of the bridge tests: a private Mosquitto process ([`Mosquitto`]), a TCP
//! proxy in front of it for fault injection ([`Proxy`]), an MQTT v5 subscriber that records
//! what arrives ([`Subscriber`]) and checks over the recorded arrivals ([`check_complete`]).
//!
//! It does not start `outpost` (the parent module does) and asserts nothing about the bridge:
//! tests do. Everything listens on 127.0.0.1 only, on ephemeral ports; every wait is bounded;
//! every process and runtime started here is killed or shut down on drop.
//!
//! The waits block the calling thread. Called from a multi-thread tokio runtime they run under
//! `block_in_place`, so `#[tokio::test(flavor = "multi_thread")]` tests may call them directly;
//! from a current-thread runtime, call them from `spawn_blocking`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnectReturnCode, Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Runtime, RuntimeFlavor};
use tokio::sync::watch;

/// Where Debian's `mosquitto` package puts the broker.
const MOSQUITTO_BIN: &str = "/usr/sbin/mosquitto";
/// Where Debian's `mosquitto` package puts the password tool.
const MOSQUITTO_PASSWD_BIN: &str = "/usr/bin/mosquitto_passwd";
/// How long Mosquitto may take to accept TCP after it is started.
pub const MOSQUITTO_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Mosquitto may take to exit after SIGTERM (it saves its database first).
const MOSQUITTO_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh ports tried when the first one is taken between choosing it and Mosquitto binding it.
const PORT_ATTEMPTS: u32 = 3;
/// Interval between two checks of a polled condition.
const POLL: Duration = Duration::from_millis(20);
/// Log lines shown in a panic message.
const LOG_TAIL_LINES: usize = 40;
/// Bytes read from the end of a log file for its tail.
const LOG_TAIL_BYTES: u64 = 16 * 1024;
/// Mosquitto's database file under its persistence location (its default name).
const DB_FILE: &str = "mosquitto.db";

/// Size of the proxy's buffer per connection and direction.
const PROXY_BUF: usize = 64 * 1024;

/// Session expiry the subscriber asks for: long enough that Mosquitto queues for it while away.
const SESSION_EXPIRY_SECS: u32 = 3600;
/// Subscriber keep-alive.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Largest packet the subscriber accepts.
const MAX_PACKET: u32 = 1 << 20;
/// Capacity of the subscriber's request channel (only SUBSCRIBE requests go through it).
const SUB_REQUESTS: usize = 16;
/// Pause between the subscriber's reconnect attempts (rumqttc itself does not back off).
const RECONNECT_DELAY: Duration = Duration::from_millis(200);
/// How long `Subscriber::start` waits for its first SUBACK.
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// User property naming the gateway a bridged message comes from.
pub const PROP_GATEWAY: &str = "outpost-gateway";
/// User property naming the log topic of a bridged message.
pub const PROP_TOPIC: &str = "outpost-topic";
/// User property holding the log partition of a bridged message.
pub const PROP_PARTITION: &str = "outpost-partition";
/// User property holding the log offset of a bridged message.
pub const PROP_OFFSET: &str = "outpost-offset";

// ------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------

/// Runs a blocking wait; inside a multi-thread tokio runtime it runs under `block_in_place`
/// so the runtime's other tasks keep running.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Polls `cond` every few milliseconds until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    blocking(|| {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    })
}

/// A free ephemeral port on 127.0.0.1 (bound, read and released; someone may take it later).
pub fn free_port() -> u16 {
    let l = StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A runtime for the background tasks of one harness object, dropped with it.
pub fn background_runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// Sends `signal` (a name such as `STOP`) to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// The last lines of the file at `path`, or a note that it cannot be read.
pub fn tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("({} cannot be read)", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Path of a program: `preferred` if it exists, else the first `name` on `PATH`.
fn find_program(preferred: &str, name: &str) -> PathBuf {
    if Path::new(preferred).is_file() {
        return PathBuf::from(preferred);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found (looked at {preferred} and on PATH): run scripts/test.sh, \
                 which installs Debian's `mosquitto` package"
            )
        })
}

// ------------------------------------------------------------------------------------------
// Mosquitto
// ------------------------------------------------------------------------------------------

/// Default [`MosquittoOpts::autosave_interval`]: a kill -9 loses at most about a second.
pub const AUTOSAVE_SECS: u32 = 1;
/// Default [`MosquittoOpts::max_inflight_messages`]: no limit.
pub const MAX_INFLIGHT_UNLIMITED: u16 = 0;

/// How a [`Mosquitto`] is configured.
#[derive(Debug, Clone)]
pub struct MosquittoOpts {
    /// `Some((user, password))`: anonymous clients are refused and this user is the only one
    /// in the password file. `None`: anonymous clients are allowed.
    pub password: Option<(String, String)>,
    /// `autosave_interval`, seconds; 0 saves only on SIGTERM. Each save rewrites the whole
    /// database: with a million 64-byte messages queued for an absent subscriber (~256 MB)
    /// saving every second cut Mosquitto's QoS 1 intake 2-6x and its later delivery 1.5-4x
    /// (single runs on a loaded 2-core VM). Volume tests that never `kill9` it can use 0.
    pub autosave_interval: u32,
    /// `max_inflight_messages`. Mosquitto 2.0 also sends it to v5 clients as the CONNACK
    /// Receive Maximum, so it caps a publisher's (the bridge's) QoS 1 window too: 20, its
    /// default, limits rumqttc to 20 in flight. 0 (the default here) sends no Receive Maximum
    /// (65,535) and does not limit deliveries to subscribers either.
    pub max_inflight_messages: u16,
    /// A second listener with TLS on [`Mosquitto::tls_port`] (the plain one stays, for the
    /// test's subscriber).
    pub tls: Option<MosquittoTls>,
    /// The text of an `acl_file` (Mosquitto's ACL syntax); `None`: everything allowed.
    pub acl: Option<String>,
}

/// PEM files of a TLS listener.
#[derive(Debug, Clone)]
pub struct MosquittoTls {
    /// CA that signs the server's and the clients' certificates.
    pub ca_file: PathBuf,
    /// The server certificate (for 127.0.0.1).
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// Refuse clients without a certificate signed by the CA (mutual TLS).
    pub require_client_cert: bool,
}

impl Default for MosquittoOpts {
    fn default() -> Self {
        MosquittoOpts {
            password: None,
            autosave_interval: AUTOSAVE_SECS,
            max_inflight_messages: MAX_INFLIGHT_UNLIMITED,
            tls: None,
            acl: None,
        }
    }
}

/// A private Mosquitto 2.0 broker on 127.0.0.1 with its own directory, persistence and port.
///
/// Guarantees of the process under test, measured, that tests must respect:
/// - It acknowledges a QoS 1 PUBLISH once the message is in memory. SIGTERM saves the database;
///   SIGKILL keeps only what the last autosave (every second here) wrote, so a `kill9` can
///   lose messages it acked but had not yet delivered. Before killing it, pause the [`Proxy`]
///   in front of it and let the [`Subscriber`] go quiet ([`Subscriber::wait_quiet`]).
/// - Per-client queues are unlimited (`max_queued_messages 0`, `max_queued_bytes 0`): a
///   subscriber that is away or slow has everything queued for it, bounded only by memory
///   (measured: 1,000,000 messages of 64 bytes with four user properties held and delivered
///   complete; ~0.9 KB of RSS and ~256 B of database per message).
///
/// The port stays the same across `restart`s. Drop kills it (SIGKILL) and removes its
/// directory.
pub struct Mosquitto {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    child: Option<Child>,
    stopped: bool,
    opts: MosquittoOpts,
}

impl Mosquitto {
    /// Starts a broker on a free port and waits until it accepts TCP connections.
    pub fn start(opts: MosquittoOpts) -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("outpost-mosquitto-")
            .tempdir()
            .expect("temp dir");
        let mut m = Mosquitto {
            dir,
            port: 0,
            tls_port: 0,
            child: None,
            stopped: false,
            opts,
        };
        if let Some((user, pass)) = m.opts.password.clone() {
            m.passwd(&["-c", &user, &pass]);
        }
        for attempt in 1..=PORT_ATTEMPTS {
            m.port = free_port();
            m.tls_port = if m.opts.tls.is_some() { free_port() } else { 0 };
            fs::write(m.conf_path(), m.config_text()).expect("write mosquitto.conf");
            m.spawn();
            match m.try_wait_listening(MOSQUITTO_START_TIMEOUT) {
                Ok(()) => return m,
                Err(e) if attempt < PORT_ATTEMPTS && e.contains("in use") => m.kill9(),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Its port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Its directory (config, log, database, password file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id, or `None` while it is down.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (stopped with SIGSTOP counts as alive).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Its log so far (every start appends to the same file).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL and reap. Whatever the last autosave did not write is lost.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stopped = false;
    }

    /// SIGSTOP: the process hangs with its sockets open (a half-open upstream).
    pub fn stop_signal(&mut self) {
        send_signal(self.live_pid("stop_signal"), "STOP");
        self.stopped = true;
    }

    /// SIGCONT after [`stop_signal`](Self::stop_signal).
    pub fn cont(&mut self) {
        send_signal(self.live_pid("cont"), "CONT");
        self.stopped = false;
    }

    /// SIGTERM (after SIGCONT if stopped) and wait for the exit: Mosquitto saves its database
    /// first. Panics, after SIGKILL, if it does not exit in time.
    pub fn terminate(&mut self) {
        let pid = self.live_pid("terminate");
        if self.stopped {
            self.cont();
        }
        send_signal(pid, "TERM");
        let mut child = self.child.take().expect("live_pid checked it");
        let exited = wait_until(MOSQUITTO_STOP_TIMEOUT, || {
            child.try_wait().expect("try_wait").is_some()
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mosquitto did not exit within {MOSQUITTO_STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log_tail()
            );
        }
    }

    /// Starts it again (same port, directory and config) and waits until it accepts TCP.
    /// Panics if it is still running: `kill9` or `terminate` it first.
    pub fn restart(&mut self) {
        assert!(
            !self.running(),
            "restart: mosquitto is still running; call kill9() or terminate() first"
        );
        self.child = None;
        self.spawn();
        self.wait_listening(MOSQUITTO_START_TIMEOUT);
    }

    /// Deletes the persistence database (sessions, queues, retained messages) while it is
    /// down, so the next `restart` begins empty. Panics if it is running.
    pub fn wipe_state(&mut self) {
        assert!(!self.running(), "wipe_state: stop mosquitto first");
        for name in [DB_FILE.to_owned(), format!("{DB_FILE}.new")] {
            match fs::remove_file(self.dir().join(name)) {
                Err(e) if e.kind() != ErrorKind::NotFound => panic!("remove database: {e}"),
                _ => {}
            }
        }
    }

    /// Waits until the port accepts TCP; panics with the log's tail if it does not in time or
    /// the process exits.
    pub fn wait_listening(&mut self, timeout: Duration) {
        if let Err(e) = self.try_wait_listening(timeout) {
            panic!("{e}");
        }
    }

    /// Adds (or changes) a user in the password file; takes effect after [`reload`](Self::reload).
    /// Panics unless it was started with a password.
    pub fn add_user(&mut self, user: &str, pass: &str) {
        assert!(
            self.opts.password.is_some(),
            "add_user: this mosquitto allows anonymous clients; start it with a password"
        );
        self.passwd(&[user, pass]);
    }

    /// SIGHUP: Mosquitto rereads its config and password file.
    pub fn reload(&mut self) {
        send_signal(self.live_pid("reload"), "HUP");
    }

    fn live_pid(&self, what: &str) -> u32 {
        self.pid()
            .unwrap_or_else(|| panic!("{what}: mosquitto is not running"))
    }

    fn conf_path(&self) -> PathBuf {
        self.dir().join("mosquitto.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("mosquitto.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir().join("stderr.log")
    }

    fn passwd_path(&self) -> PathBuf {
        self.dir().join("passwd")
    }

    fn config_text(&self) -> String {
        let dir = self.dir().display();
        let auth = if self.opts.password.is_some() {
            format!(
                "allow_anonymous false\npassword_file {}\n",
                self.passwd_path().display()
            )
        } else {
            "allow_anonymous true\n".to_owned()
        };
        let auth = match &self.opts.acl {
            Some(text) => {
                let path = self.dir().join("acl");
                fs::write(&path, text).expect("write the ACL file");
                format!("{auth}acl_file {}\n", path.display())
            }
            None => auth,
        };
        format!(
            "listener {port} 127.0.0.1\n\
             {auth}\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_interval {autosave}\n\
             # 0 = no limit: a subscriber that is away or slow gets everything queued (the\n\
             # default, 1000, silently drops the rest after acking it to the publisher).\n\
             max_queued_messages {queued}\n\
             max_queued_bytes 0\n\
             max_inflight_messages {inflight}\n\
             set_tcp_nodelay true\n\
             # Run as root, mosquitto drops to user `mosquitto`, which cannot open this root-owned\n\
             # temp dir: the log fails to open and every autosave fails. No effect when not root.\n\
             user root\n\
             log_dest file {log}\n",
            port = self.port,
            autosave = self.opts.autosave_interval,
            inflight = self.opts.max_inflight_messages,
            // Measured: with `max_queued_messages 0` Mosquitto 2.0.11 drops the connection of a
            // client whose QoS 1 publish an ACL denies, instead of answering PUBACK 0x87.
            queued = if self.opts.acl.is_some() { 1_000_000 } else { 0 },
            log = self.log_path().display(),
        ) + &self.tls_listener()
    }

    fn tls_listener(&self) -> String {
        let Some(t) = &self.opts.tls else {
            return String::new();
        };
        format!(
            "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
            self.tls_port,
            t.ca_file.display(),
            t.cert_file.display(),
            t.key_file.display(),
            t.require_client_cert
        )
    }

    /// `mqtts://127.0.0.1:PORT` of the TLS listener (with `MosquittoOpts::tls`).
    pub fn tls_url(&self) -> String {
        assert!(self.opts.tls.is_some(), "started without TLS");
        format!("mqtts://127.0.0.1:{}", self.tls_port)
    }

    fn spawn(&mut self) {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("open stderr.log");
        let child = Command::new(find_program(MOSQUITTO_BIN, "mosquitto"))
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("clone file"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto: {e}; run scripts/test.sh"));
        self.child = Some(child);
        self.stopped = false;
    }

    fn try_wait_listening(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut exited = None;
        let listening = wait_until(timeout, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                exited = Some(status);
                return true;
            }
            StdTcpStream::connect_timeout(&addr, POLL).is_ok()
        });
        let problem = match (exited, listening) {
            (Some(status), _) => format!("mosquitto exited ({status})"),
            (None, false) => format!("mosquitto did not accept TCP on {addr} within {timeout:?}"),
            (None, true) => return Ok(()),
        };
        if exited.is_some() {
            self.child = None;
        }
        Err(format!("{problem}; log:\n{}", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        format!(
            "{}\n--- stderr:\n{}",
            tail(&self.log_path()),
            tail(&self.stderr_path())
        )
    }

    /// Runs `mosquitto_passwd -b [args] FILE USER PASS` (`args` ends with user and password).
    fn passwd(&self, args: &[&str]) {
        let (flags, user_pass) = args.split_at(args.len() - 2);
        let out = Command::new(find_program(MOSQUITTO_PASSWD_BIN, "mosquitto_passwd"))
            .arg("-b")
            .args(flags)
            .arg(self.passwd_path())
            .args(user_pass)
            .output()
            .expect("run mosquitto_passwd");
        assert!(
            out.status.success(),
            "mosquitto_passwd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if self.stopped {
            if let Some(pid) = self.pid() {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(pid.to_string())
                    .status();
            }
        }
        self.kill9();
    }
}

// ------------------------------------------------------------------------------------------
// Proxy
// ------------------------------------------------------------------------------------------

/// Whether the proxy forwards bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    Paused,
}

/// What a new connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Relay,
    Refuse,
}

/// State shared by the proxy's tasks and its handle.
struct ProxyShared {
    upstream: SocketAddr,
    gate: watch::Sender<Gate>,
    /// Bumped by every cut; each connection ends when it changes.
    cut_epoch: watch::Sender<u64>,
    /// `Some(period)`: cut every `period`.
    flaky: watch::Sender<Option<Duration>>,
    admission: Mutex<Admission>,
    connections: AtomicU64,
    cuts: AtomicU64,
}

/// A TCP proxy on 127.0.0.1 in front of an upstream port, with switches for faults. It runs on
/// its own runtime, so it works from `#[test]` and `#[tokio::test]` alike; drop stops it and
/// closes every connection.
pub struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
    rt: Option<Runtime>,
}

impl Proxy {
    /// Starts a proxy on a free port forwarding to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let std_listener = StdTcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local addr").port();
        let shared = Arc::new(ProxyShared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            gate: watch::Sender::new(Gate::Open),
            cut_epoch: watch::Sender::new(0),
            flaky: watch::Sender::new(None),
            admission: Mutex::new(Admission::Relay),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let rt = background_runtime("test-proxy");
        let listener = {
            let _enter = rt.enter();
            TcpListener::from_std(std_listener).expect("tokio listener")
        };
        rt.spawn(accept_loop(listener, shared.clone()));
        rt.spawn(flaky_loop(shared.clone()));
        Proxy {
            port,
            shared,
            rt: Some(rt),
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops forwarding in both directions on every connection (at most one read buffer per
    /// direction is held, none forwarded) and holds new connections unconnected upstream.
    pub fn pause(&self) {
        self.shared.gate.send_replace(Gate::Paused);
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self) {
        self.shared.gate.send_replace(Gate::Open);
    }

    /// Closes every live connection (both sides), including held ones. Returns at once; the
    /// sockets close a moment later.
    pub fn cut_all(&self) {
        self.shared.cut();
    }

    /// Cuts every live connection every `every` until [`steady`](Self::steady).
    pub fn flaky(&self, every: Duration) {
        self.shared.flaky.send_replace(Some(every));
    }

    /// Stops [`flaky`](Self::flaky).
    pub fn steady(&self) {
        self.shared.flaky.send_replace(None);
    }

    /// `true`: new connections are accepted and closed at once; `false`: relayed again.
    pub fn refuse(&self, refuse: bool) {
        let admission = if refuse {
            Admission::Refuse
        } else {
            Admission::Relay
        };
        *lock(&self.shared.admission) = admission;
    }

    /// Connections accepted so far (refused ones included).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections closed by `cut_all` or `flaky` so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborts every task; their sockets close as the tasks are dropped.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl ProxyShared {
    fn cut(&self) {
        self.cut_epoch.send_modify(|e| *e += 1);
    }
}

/// Locks `m`, ignoring poisoning (a panicking test thread must not hide the first panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    // Ends when the runtime shuts down (Proxy's drop).
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        if *lock(&shared.admission) == Admission::Refuse {
            drop(client);
            continue;
        }
        // Subscribed before the task starts, so a cut right after the accept still hits it.
        let cut = shared.cut_epoch.subscribe();
        tokio::spawn(connection(client, cut, shared.clone()));
    }
}

async fn connection(client: TcpStream, mut cut: watch::Receiver<u64>, shared: Arc<ProxyShared>) {
    // Pinned outside the select: on a cut, the count goes up before the sockets close (they
    // close when `relay` is dropped at the end), so whoever sees the disconnect sees the cut.
    let relay = relay(client, &shared);
    tokio::pin!(relay);
    tokio::select! {
        _ = cut.changed() => {
            shared.cuts.fetch_add(1, Ordering::SeqCst);
        }
        _ = &mut relay => {}
    }
}

/// Connects upstream once the gate is open, then copies both ways until either side closes.
async fn relay(client: TcpStream, shared: &ProxyShared) {
    let mut gate = shared.gate.subscribe();
    if gate.wait_for(|g| *g == Gate::Open).await.is_err() {
        return;
    }
    let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::select! {
        _ = pipe(cr, uw, shared.gate.subscribe()) => {}
        _ = pipe(ur, cw, shared.gate.subscribe()) => {}
    }
}

/// Copies `r` to `w` while the gate is open; returns at EOF or on an error.
async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<Gate>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; PROXY_BUF];
    // Ends at EOF, on an error or when the connection task is dropped.
    loop {
        if gate.wait_for(|g| *g == Gate::Open).await.is_err() {
            return Ok(());
        }
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if gate.wait_for(|g| *g == Gate::Open).await.is_err() {
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
    }
}

async fn flaky_loop(shared: Arc<ProxyShared>) {
    let mut period = shared.flaky.subscribe();
    // Ends when the runtime shuts down (Proxy's drop).
    loop {
        let every = *period.borrow_and_update();
        match every {
            None => {
                if period.changed().await.is_err() {
                    return;
                }
            }
            Some(every) => {
                tokio::select! {
                    _ = tokio::time::sleep(every) => shared.cut(),
                    r = period.changed() => if r.is_err() { return },
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Subscriber
// ------------------------------------------------------------------------------------------

/// Where a bridged message comes from, as its user properties say.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `outpost-gateway`.
    pub gateway: String,
    /// `outpost-topic` (the log topic).
    pub topic: String,
    /// `outpost-partition`.
    pub partition: u32,
    /// `outpost-offset`.
    pub offset: u64,
}

/// A PUBLISH the subscriber received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// MQTT topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Parsed from the `outpost-*` user properties; `None` if one is missing or malformed.
    pub origin: Option<Origin>,
    /// Every user property, in order.
    pub user_properties: Vec<(String, String)>,
    /// The DUP flag (Mosquitto re-sending to this subscriber after a reconnect).
    pub dup: bool,
}

/// What a [`Subscriber`] keeps of each PUBLISH.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    /// Topic, payload, origin, user properties and DUP: ~0.8 KB per arrival with 64-byte
    /// payloads and the four `outpost-*` properties (measured), so ~800 MB per million.
    #[default]
    Everything,
    /// Topic, origin and DUP; `payload` and `user_properties` stay empty. About a quarter of
    /// the memory, for runs of millions of messages.
    OriginOnly,
}

/// How a [`Subscriber`] connects and what it records.
#[derive(Debug, Clone, Default)]
pub struct SubscriberOpts {
    /// `Some((user, password))` for a Mosquitto started with a password.
    pub credentials: Option<(String, String)>,
    /// What is kept of each arrival.
    pub keep: Keep,
}

/// What the subscriber's task records.
#[derive(Default)]
struct Record {
    arrivals: Vec<Arrival>,
    last_arrival: Option<Instant>,
}

/// State shared by the subscriber's task and its handle.
#[derive(Default)]
struct SubShared {
    record: Mutex<Record>,
    arrived: Condvar,
    connected: AtomicBool,
    connacks: AtomicU64,
    subacks: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A real MQTT v5 client subscribed on the upstream that records every PUBLISH it gets.
///
/// It uses a persistent session (clean start off, session expiry one hour, a fixed client id),
/// so Mosquitto queues for it while it is disconnected, and it subscribes with QoS 1 again
/// after every CONNACK without a session. It reconnects by itself, 200 ms after each error.
///
/// Mosquitto acknowledges QoS 1 from memory: a `kill9` of Mosquitto can lose messages it acked
/// to the publisher but had not yet delivered here. Tests that kill it first pause the
/// [`Proxy`] in front of the publisher and wait for [`wait_quiet`](Self::wait_quiet).
pub struct Subscriber {
    client_id: String,
    shared: Arc<SubShared>,
    rt: Option<Runtime>,
}

impl Subscriber {
    /// Connects to `127.0.0.1:port` anonymously and subscribes to `filter` (QoS 1); returns
    /// once the first SUBACK came. Panics if it does not within [`SUBSCRIBE_TIMEOUT`].
    pub fn start(port: u16, filter: &str) -> Subscriber {
        Self::start_with(port, filter, SubscriberOpts::default())
    }

    /// Like [`start`](Self::start), with options.
    pub fn start_with(port: u16, filter: &str, opts: SubscriberOpts) -> Subscriber {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let client_id = format!(
            "outpost-test-sub-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut o = MqttOptions::new(client_id.clone(), "127.0.0.1", port);
        o.set_clean_start(false)
            .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(Some(MAX_PACKET));
        if let Some((user, pass)) = opts.credentials {
            o.set_credentials(user, pass);
        }
        let shared = Arc::new(SubShared::default());
        let rt = background_runtime("test-subscriber");
        let (client, el) = {
            let _enter = rt.enter();
            AsyncClient::new(o, SUB_REQUESTS)
        };
        let task = SubscriberTask {
            client,
            filter: filter.to_owned(),
            keep: opts.keep,
            subscribed: false,
            shared: shared.clone(),
        };
        rt.spawn(task.run(el));
        let s = Subscriber {
            client_id,
            shared,
            rt: Some(rt),
        };
        if !wait_until(SUBSCRIBE_TIMEOUT, || s.subacks() > 0) {
            panic!(
                "subscriber on port {port} got no SUBACK within {SUBSCRIBE_TIMEOUT:?}; last error: {:?}",
                s.last_error()
            );
        }
        s
    }

    /// Its MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// PUBLISH packets received so far (duplicates included).
    pub fn count(&self) -> usize {
        lock(&self.shared.record).arrivals.len()
    }

    /// A copy of every arrival so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.shared.record).arrivals.clone()
    }

    /// Whether it is connected now (as far as its event loop knows).
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Successful CONNACKs so far.
    pub fn connacks(&self) -> u64 {
        self.shared.connacks.load(Ordering::SeqCst)
    }

    /// SUBACKs so far: it grows after a reconnect to a broker that lost the session.
    pub fn subacks(&self) -> u64 {
        self.shared.subacks.load(Ordering::SeqCst)
    }

    /// The last connection error, if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Waits until at least `n` arrivals; false if `timeout` passes first.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> bool {
        blocking(|| {
            let deadline = Instant::now() + timeout;
            let mut r = lock(&self.shared.record);
            while r.arrivals.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                r = self.wait_arrival(r, left);
            }
            true
        })
    }

    /// Waits until nothing has arrived for `quiet`, counted from the later of the call and the
    /// last arrival, or until `timeout` passes; returns the count then.
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> usize {
        blocking(|| {
            let start = Instant::now();
            let deadline = start + timeout;
            let mut r = lock(&self.shared.record);
            loop {
                let since = r.last_arrival.map_or(start, |t| t.max(start));
                let quiet_at = since + quiet;
                let now = Instant::now();
                if now >= quiet_at || now >= deadline {
                    return r.arrivals.len();
                }
                r = self.wait_arrival(r, quiet_at.min(deadline) - now);
            }
        })
    }

    fn wait_arrival<'a>(&self, r: MutexGuard<'a, Record>, d: Duration) -> MutexGuard<'a, Record> {
        match self.shared.arrived.wait_timeout(r, d) {
            Ok((r, _)) => r,
            Err(e) => e.into_inner().0,
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The subscriber's event-loop task.
struct SubscriberTask {
    client: AsyncClient,
    filter: String,
    keep: Keep,
    /// A SUBACK came on the current session.
    subscribed: bool,
    shared: Arc<SubShared>,
}

impl SubscriberTask {
    async fn run(mut self, mut el: EventLoop) {
        // Ends when the runtime shuts down (Subscriber's drop).
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => self.on_connack(&ack),
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.subscribed = true;
                    self.shared.subacks.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.shared.push(arrival(p, self.keep)),
                Ok(Event::Incoming(Packet::Disconnect(_))) => self.set_connected(false),
                Ok(_) => {}
                Err(e) => {
                    self.set_connected(false);
                    *lock(&self.shared.last_error) = Some(e.to_string());
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
            }
        }
    }

    fn on_connack(&mut self, ack: &ConnAck) {
        if ack.code != ConnectReturnCode::Success {
            return;
        }
        self.set_connected(true);
        self.shared.connacks.fetch_add(1, Ordering::SeqCst);
        // Without a session the broker forgot the subscription; a SUBSCRIBE lost with the last
        // connection (no SUBACK yet) is not re-sent by rumqttc either.
        if !ack.session_present || !self.subscribed {
            self.subscribed = false;
            // Never `.await` here: this task polls the event loop that drains the channel.
            if let Err(e) = self.client.try_subscribe(&self.filter, QoS::AtLeastOnce) {
                *lock(&self.shared.last_error) = Some(format!("subscribe: {e}"));
            }
        }
    }

    fn set_connected(&self, connected: bool) {
        self.shared.connected.store(connected, Ordering::SeqCst);
    }
}

impl SubShared {
    fn push(&self, a: Arrival) {
        let mut r = lock(&self.record);
        r.arrivals.push(a);
        r.last_arrival = Some(Instant::now());
        drop(r);
        self.arrived.notify_all();
    }
}

fn arrival(p: Publish, keep: Keep) -> Arrival {
    let mut user_properties = p
        .properties
        .map(|pp| pp.user_properties)
        .unwrap_or_default();
    let origin = origin(&user_properties);
    let payload = match keep {
        Keep::Everything => p.payload.to_vec(),
        Keep::OriginOnly => {
            user_properties = Vec::new();
            Vec::new()
        }
    };
    Arrival {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload,
        origin,
        user_properties,
        dup: p.dup,
    }
}

/// Parses the `outpost-*` user properties (the first of each name counts).
pub fn origin(props: &[(String, String)]) -> Option<Origin> {
    let get = |name: &str| {
        props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Some(Origin {
        gateway: get(PROP_GATEWAY)?.to_owned(),
        topic: get(PROP_TOPIC)?.to_owned(),
        partition: get(PROP_PARTITION)?.parse().ok()?,
        offset: get(PROP_OFFSET)?.parse().ok()?,
    })
}

// ------------------------------------------------------------------------------------------
// Checks over arrivals
// ------------------------------------------------------------------------------------------

/// The offsets of each partition in arrival order (arrivals without an origin are skipped).
/// Filter `arrivals` first when several log topics or gateways are bridged.
pub fn by_partition(arrivals: &[Arrival]) -> BTreeMap<u32, Vec<u64>> {
    let mut map: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for o in arrivals.iter().filter_map(|a| a.origin.as_ref()) {
        map.entry(o.partition).or_default().push(o.offset);
    }
    map
}

/// What [`check_complete`] found for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Offsets of the range that never arrived, as ascending, disjoint ranges.
    pub missing: Vec<Range<u64>>,
    /// Arrivals of an offset of the range that had arrived before (re-sends).
    pub duplicates: u64,
    /// First arrivals of an offset lower than an earlier first arrival's offset.
    pub out_of_order: u64,
    /// Arrivals of the partition with an offset outside the range.
    pub outside: u64,
}

impl Report {
    /// How many offsets are missing.
    pub fn missing_count(&self) -> u64 {
        self.missing.iter().map(|r| r.end - r.start).sum()
    }

    /// Every offset arrived, first arrivals in order (duplicates are allowed).
    pub fn is_complete_in_order(&self) -> bool {
        self.missing.is_empty() && self.out_of_order == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 10;
        write!(
            f,
            "{} missing in {} ranges {:?}{}, {} duplicates, {} out of order, {} outside the range",
            self.missing_count(),
            self.missing.len(),
            &self.missing[..self.missing.len().min(SHOWN)],
            if self.missing.len() > SHOWN {
                " …"
            } else {
                ""
            },
            self.duplicates,
            self.out_of_order,
            self.outside
        )
    }
}

/// Checks the arrivals of `partition` against the offsets `range` for at-least-once delivery
/// in order.
///
/// - `missing`: offsets of `range` with no arrival.
/// - `duplicates`: arrivals of an offset in `range` after its first arrival. Re-sends after a
///   reconnect are allowed by at-least-once, so these are counted, not failed.
/// - `out_of_order`: consider only the *first* arrival of each offset in `range`, in arrival
///   order; that sequence must be increasing. Each first arrival whose offset is lower than the
///   offset of an earlier first arrival counts once. A re-send (a later arrival of an offset
///   already seen) never counts, however low its offset.
/// - `outside`: arrivals of the partition whose offset is not in `range`.
///
/// Filter `arrivals` first when several log topics or gateways are bridged: only the
/// partition number is matched here.
pub fn check_complete(arrivals: &[Arrival], partition: u32, range: Range<u64>) -> Report {
    check_origins(
        arrivals.iter().filter_map(|a| a.origin.as_ref()),
        partition,
        range,
    )
}

/// [`check_complete`] over origins in arrival order, whatever carried them (MQTT user
/// properties, Kafka headers).
pub fn check_origins<'a>(
    origins: impl Iterator<Item = &'a Origin>,
    partition: u32,
    range: Range<u64>,
) -> Report {
    let mut report = Report::default();
    let mut seen = HashSet::new();
    let mut highest_first: Option<u64> = None;
    let offsets = origins
        .filter(|o| o.partition == partition)
        .map(|o| o.offset);
    for offset in offsets {
        if !range.contains(&offset) {
            report.outside += 1;
        } else if !seen.insert(offset) {
            report.duplicates += 1;
        } else {
            if highest_first.is_some_and(|h| offset < h) {
                report.out_of_order += 1;
            }
            highest_first = highest_first.max(Some(offset));
        }
    }
    report.missing = missing_ranges(&seen, range);
    report
}

/// The offsets of `range` not in `seen`, as ascending disjoint ranges.
fn missing_ranges(seen: &HashSet<u64>, range: Range<u64>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for offset in range.filter(|o| !seen.contains(o)) {
        match out.last_mut() {
            Some(last) if last.end == offset => last.end += 1,
            _ => out.push(offset..offset + 1),
        }
    }
    out
}
