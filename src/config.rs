//! The configuration file: one TOML document, every key optional with a documented default.
//!
//! [`DEFAULT_CONFIG_TOML`] is the full default configuration with every key commented; a test
//! checks that it parses to exactly [`Config::default`], so the two cannot drift apart.
//! This module only parses and validates; it does not act on the values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use outpost_firmware::Compression;
use serde::Deserialize;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./outpost-data";
/// Default listener of the binary protocol (loopback only until authentication exists).
pub const DEFAULT_WIRE_LISTEN: &str = "127.0.0.1:7883";
/// Default bound on concurrent binary-protocol connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Default largest frame body accepted, in bytes.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 1 << 20;
/// Default time a connection may stay silent (no bytes, no request in flight) before it is closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Default number of produce requests one connection may have waiting for commit.
pub const DEFAULT_MAX_INFLIGHT: u32 = 256;
/// Default redb page cache: small, because the library's own default is 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 8 << 20;
/// Default interval between durable commits in `fsync = "interval"` mode.
pub const DEFAULT_FSYNC_INTERVAL_MS: u64 = 1000;
/// Default time the writer waits for more requests when a commit would be small.
pub const DEFAULT_LINGER_MS: u64 = 2;
/// Below this many waiting bytes the writer lingers (if `linger_ms` > 0).
pub const DEFAULT_MIN_COMMIT_BYTES: u64 = 64 << 10;
/// Upper bound of one commit's payload.
pub const DEFAULT_MAX_COMMIT_BYTES: u64 = 4 << 20;
/// Default largest uncompressed batch: fits one 16 KiB redb leaf (FIELD-NOTES.md).
pub const DEFAULT_BATCH_MAX_BYTES: u32 = 16_364;
/// Default capacity of the writer's request queue.
pub const DEFAULT_WRITER_QUEUE: u32 = 4096;
/// Default largest decompressed records section accepted when reading a batch.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u32 = 8 << 20;
/// Default interval of the retention task.
pub const DEFAULT_RETENTION_CHECK_MS: u64 = 30_000;
/// Default free-disk floor in bytes.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;
/// Default free-disk floor in percent of the file system.
pub const DEFAULT_MIN_FREE_PERCENT: u8 = 5;
/// Default partition count of a topic created without one.
pub const DEFAULT_PARTITIONS: u32 = 1;
/// Default `retention.ms`: seven days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Default time a TLS handshake may take.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default MQTT listener (loopback only until authentication exists, as Mosquitto 2 does).
pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
/// Default bound on concurrent MQTT connections.
pub const DEFAULT_MQTT_MAX_CONNECTIONS: u32 = 16_384;
/// Default largest MQTT packet accepted (and announced as v5 Maximum Packet Size).
pub const DEFAULT_MQTT_MAX_PACKET_BYTES: u32 = 1 << 20;
/// Default QoS 1/2 publishes a client may have unacknowledged towards the broker.
pub const DEFAULT_MQTT_RECEIVE_MAXIMUM: u16 = 256;
/// Default QoS 1/2 messages the broker has unacknowledged towards one client.
pub const DEFAULT_MQTT_MAX_INFLIGHT: u16 = 64;
/// Default QoS 1/2 messages queued for one session (online but slow, or offline and
/// persistent), as Mosquitto's `max_queued_messages`.
pub const DEFAULT_MQTT_MAX_QUEUED: u32 = 1000;
/// Default QoS 0 messages queued for one online session.
pub const DEFAULT_MQTT_MAX_QUEUED_QOS0: u32 = 10_000;
/// Default most topic levels in a topic name or filter.
pub const DEFAULT_MQTT_MAX_TOPIC_LEVELS: u32 = 32;
/// Default v5 Topic Alias Maximum announced to clients.
pub const DEFAULT_MQTT_TOPIC_ALIAS_MAXIMUM: u16 = 32;
/// Default most retained messages kept.
pub const DEFAULT_MQTT_MAX_RETAINED: u32 = 10_000;
/// Default interval of `$SYS/` updates.
pub const DEFAULT_MQTT_SYS_INTERVAL_SECS: u32 = 10;

/// Default largest UDP datagram accepted: a 1500-byte Ethernet MTU less the IPv4 and UDP
/// headers, so a datagram this size is never fragmented on a typical LAN.
pub const DEFAULT_UDP_MAX_DATAGRAM_BYTES: u32 = 1472;
/// The largest UDP payload over IPv4 (65,535 less the IPv4 and UDP headers).
pub const MAX_UDP_DATAGRAM_BYTES: u32 = 65_507;
/// The smallest `[udp] max_datagram_bytes` accepted: room for a device id, a token and a
/// reading.
pub const MIN_UDP_DATAGRAM_BYTES: u32 = 64;
/// Default appends from acknowledged datagrams waiting for their commit at once.
pub const DEFAULT_UDP_MAX_INFLIGHT: u32 = 1024;

/// Default metrics and health listener: loopback only (the endpoint has no authentication).
/// 9883 continues Outpost's x883 family (1883 MQTT, 7883 binary protocol, 8883 MQTT over TLS)
/// inside the 9xxx range where Prometheus exporters live.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9883";
/// Default password verifications running at once.
pub const DEFAULT_AUTH_CONCURRENCY: u32 = crate::auth::verifier::DEFAULT_CONCURRENCY;
/// Default password verifications waiting for a turn.
pub const DEFAULT_AUTH_WAITING: u32 = crate::auth::verifier::DEFAULT_MAX_WAITING;
/// Default `[logging] level` of `serve` (`RUST_LOG` overrides it).
pub const DEFAULT_LOGGING_LEVEL: &str = "info";
/// The level names `[logging] level` accepts (besides `target=level` directives).
pub const LOGGING_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the log file (`outpost.redb`).
    pub data_dir: PathBuf,
    /// Stable gateway id; when empty, one is generated once and kept in the log file.
    pub gateway_id: String,
    /// Diagnostics of `serve` (not the message store: that is `log`).
    pub logging: LoggingConfig,
    /// The binary-protocol listener.
    pub wire: WireConfig,
    /// The datagram listener of the binary protocol (sensors over UDP).
    pub udp: UdpConfig,
    /// The log store and its writer.
    pub log: LogConfig,
    /// The retention task.
    pub retention: RetentionConfig,
    /// Settings of topics created without explicit ones.
    pub topic_defaults: TopicDefaults,
    /// The MQTT broker.
    pub mqtt: MqttConfig,
    /// `[[bridge]]` blocks: upstream connections and their routes.
    #[serde(rename = "bridge")]
    pub bridges: Vec<outpost_bridge::config::BridgeConfig>,
    /// The metrics and health HTTP listener.
    pub metrics: MetricsConfig,
    /// `[auth]`: password file, ACL, anonymous access.
    pub auth: AuthConfig,
}

/// `[metrics]`: Prometheus metrics, `/healthz` and `/readyz` over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve the endpoint at all.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            // The constant is a valid literal address; checked by a test.
            listen: DEFAULT_METRICS_LISTEN
                .parse()
                .expect("valid default address"),
        }
    }
}

/// `[auth]`: who may connect (password file) and what they may do (ACL); see
/// [`crate::auth`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `user:PHC-hash` lines, managed by `outpost passwd`; `None`: no password checks.
    pub password_file: Option<PathBuf>,
    /// ACL rules (TOML); `None`: every client may do everything.
    pub acl_file: Option<PathBuf>,
    /// Accept clients without credentials; `None` means: yes without a password file, no
    /// with one.
    pub allow_anonymous: Option<bool>,
    /// Password verification threads (each keeps argon2's memory, 7 MiB, from the first
    /// login on).
    pub max_concurrent_verifications: u32,
    /// Verifications waiting for a turn; logins beyond are answered "server busy".
    pub max_waiting_verifications: u32,
}

impl AuthConfig {
    /// Whether clients without credentials are accepted.
    pub fn allow_anonymous(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.password_file.is_none())
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            password_file: None,
            acl_file: None,
            allow_anonymous: None,
            max_concurrent_verifications: DEFAULT_AUTH_CONCURRENCY,
            max_waiting_verifications: DEFAULT_AUTH_WAITING,
        }
    }
}

/// `[mqtt]`: the MQTT listener, its limits and the ingest rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Serve MQTT at all.
    pub enabled: bool,
    /// Address of the plain-TCP listener.
    pub listen: SocketAddr,
    /// Serve the plain-TCP listener (`false` with `[mqtt.tls]` serves TLS only).
    pub plain: bool,
    /// `[mqtt.tls]`: a TLS listener (MQTT over TLS, default port 8883).
    pub tls: Option<TlsListenerConfig>,
    /// Connections beyond this get CONNACK "server busy" and are closed.
    pub max_connections: u32,
    /// Largest packet accepted (announced to v5 clients as Maximum Packet Size).
    pub max_packet_bytes: u32,
    /// QoS 1/2 publishes a client may have unacknowledged towards the broker (v5 Receive
    /// Maximum announced in CONNACK).
    pub receive_maximum: u16,
    /// QoS 1/2 messages the broker keeps unacknowledged towards one client (the smaller of
    /// this and the client's Receive Maximum).
    pub max_inflight: u16,
    /// QoS 1/2 messages queued for one session beyond its in-flight window; see the overflow
    /// rule in the default config.
    pub max_queued_messages: u32,
    /// QoS 0 messages queued for one online session (a slow reader); beyond it they are
    /// dropped and counted.
    pub max_queued_qos0_messages: u32,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: u32,
    /// v5 Topic Alias Maximum announced to clients (0 disables inbound aliases).
    pub topic_alias_maximum: u16,
    /// Upper bound of a session's expiry interval, seconds (4294967295: no bound).
    pub max_session_expiry_secs: u32,
    /// Keep-alive the broker imposes when a client asks for more (or for none), seconds;
    /// 0 accepts what the client asks.
    pub max_keep_alive_secs: u16,
    /// Most retained messages kept; a retained publish on a new topic beyond it is not retained.
    pub max_retained_messages: u32,
    /// Interval of `$SYS/` updates, seconds; 0 disables them.
    pub sys_interval_secs: u32,
    /// Ingest rules, first match wins; see the default config.
    pub ingest: Vec<IngestRule>,
}

/// One `[[mqtt.ingest]]` rule: which MQTT topics go to which log topic, keyed how.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRule {
    /// MQTT topic filter (`+` and `#` allowed) the rule applies to.
    pub filter: String,
    /// Log topic: a name, or a template with `{N}` standing for MQTT topic level N
    /// (1-based); characters a log topic cannot have become `_`. Default `{1}`.
    #[serde(default = "default_log_topic")]
    pub log_topic: String,
    /// Record key: `"topic"` (the whole MQTT topic), `"none"`, or `"level:N"`.
    #[serde(default = "default_ingest_key")]
    pub key: String,
    /// `false`: matching messages are delivered to subscribers but not stored in the log.
    #[serde(default = "default_true")]
    pub store: bool,
}

fn default_log_topic() -> String {
    "{1}".to_owned()
}

fn default_ingest_key() -> String {
    "topic".to_owned()
}

fn default_true() -> bool {
    true
}

/// `[logging]`: what `serve` writes to stderr (the journal under systemd).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// A level (`off`, `error`, `warn`, `info`, `debug`, `trace`) or `target=level` directives
    /// as in `RUST_LOG` (`info,outpost::bridge=debug`; no span or field filters). `RUST_LOG`,
    /// when set, overrides it.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// How `serve` writes its diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line: timestamp, level, target, message and the event's fields.
    Json,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: DEFAULT_LOGGING_LEVEL.to_owned(),
            format: LogFormat::Plain,
        }
    }
}

impl LoggingConfig {
    /// Checks `level`: each comma-separated part is a level name or a `target=level`
    /// directive that [`crate::logging::parse_filter`] parses. (A bare word would silently become a target
    /// name with every level on, so a misspelt level is refused here instead.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = ConfigError::Invalid {
            key: "logging.level",
            problem: "is not a level or a RUST_LOG-style filter",
            fix: "use \"error\", \"warn\", \"info\", \"debug\", \"trace\" or \"off\", or directives such as \"info,outpost::bridge=debug\"",
        };
        let level = self.level.trim();
        let parts_ok = !level.is_empty()
            && level.split(',').all(|part| {
                let part = part.trim();
                part.contains('=') || LOGGING_LEVELS.contains(&part.to_ascii_lowercase().as_str())
            });
        let parses = crate::logging::parse_filter(level).is_ok();
        if parts_ok && parses {
            Ok(())
        } else {
            Err(invalid)
        }
    }
}

/// `[wire]`: the binary-protocol listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WireConfig {
    /// Address of the plain-TCP listener.
    pub listen: SocketAddr,
    /// Serve the plain-TCP listener (`false` with `[wire.tls]` serves TLS only).
    pub plain: bool,
    /// `[wire.tls]`: a TLS listener for the binary protocol.
    pub tls: Option<TlsListenerConfig>,
    /// Connections beyond this are refused with an error frame.
    pub max_connections: u32,
    /// Largest frame body accepted; bigger frames close the connection with an error frame.
    pub max_frame_bytes: u32,
    /// Produce requests one connection may have waiting for commit before it stops reading.
    pub max_inflight: u32,
    /// A connection that sends nothing for this long, with no request in flight, is closed
    /// (this also ends connections stalled inside a partial frame).
    pub idle_timeout_ms: u64,
}

/// `[udp]`: the binary protocol's datagram listener (see [`crate::udp`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// Serve datagrams at all.
    pub enabled: bool,
    /// Address of the UDP socket; `None`: the address of `[wire] listen` (UDP and TCP may
    /// share a port number, so a device's one `gateway` address serves both).
    pub listen: Option<SocketAddr>,
    /// Largest datagram accepted; a bigger one is dropped and counted.
    pub max_datagram_bytes: u32,
    /// Appends of acknowledged datagrams waiting for their commit at once; beyond this,
    /// acknowledged datagrams are refused (`BUSY`) and counted.
    pub max_inflight: u32,
}

impl UdpConfig {
    /// The address to bind: `listen`, else `[wire] listen`.
    pub fn listen_addr(&self, wire: &WireConfig) -> SocketAddr {
        self.listen.unwrap_or(wire.listen)
    }
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            max_datagram_bytes: DEFAULT_UDP_MAX_DATAGRAM_BYTES,
            max_inflight: DEFAULT_UDP_MAX_INFLIGHT,
        }
    }
}

/// `[mqtt.tls]` / `[wire.tls]`: a TLS listener (rustls with `ring`). The certificate, key
/// and client CA files are read at start and again on SIGHUP; live connections keep the
/// session they have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM file with the server certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates client certificates are verified against; unset:
    /// clients are not asked for a certificate.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: refuse clients without a valid certificate (mutual TLS). When
    /// `false`, a certificate is asked for but optional (and verified when presented).
    #[serde(default = "default_true")]
    pub require_client_cert: bool,
    /// Use a part of a verified client certificate as the client's user name (then it
    /// needs no password): `"cn"` (subject common name) or `"san"` (first DNS, e-mail or
    /// URI subject alternative name). Unset: certificates only gate the connection.
    #[serde(default)]
    pub identity_as_username: Option<IdentitySource>,
    /// A TLS handshake not finished within this is abandoned.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

/// Which part of a client certificate names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    /// The subject's common name.
    Cn,
    /// The first DNS name, e-mail address or URI among the subject alternative names.
    San,
}

fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS
}

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Every commit is durable (fsync) before any of its requests is acknowledged.
    Always,
    /// Commits are not durable; one durable commit every `fsync_interval_ms`.
    Interval,
}

/// `[log]`: the store and the group-commit writer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// redb page cache in bytes.
    pub cache_bytes: u64,
    /// Durability mode.
    pub fsync: Fsync,
    /// Interval between durable commits in `interval` mode.
    pub fsync_interval_ms: u64,
    /// Longest the writer waits for more requests when fewer than `min_commit_bytes` are
    /// waiting; it stops earlier once requests stop arriving (see `log::writer`).
    pub linger_ms: u64,
    /// See `linger_ms`.
    pub min_commit_bytes: u64,
    /// Upper bound of the payload bytes in one commit.
    pub max_commit_bytes: u64,
    /// Largest uncompressed record batch the writer builds.
    pub batch_max_bytes: u32,
    /// Capacity of the writer's request queue (back-pressure to producers beyond it).
    pub writer_queue: u32,
    /// Largest decompressed batch accepted when reading.
    pub max_decompressed_bytes: u32,
    /// Create a topic with the defaults when a producer names an unknown one.
    pub auto_create_topics: bool,
}

/// `[retention]`: the background task that deletes old batches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How often retention runs.
    pub check_interval_ms: u64,
    /// Delete the oldest data when the file system has fewer free bytes than this.
    pub min_free_bytes: u64,
    /// Same floor in percent of the file system size; the larger floor applies.
    pub min_free_percent: u8,
}

/// `[topic_defaults]`: settings of topics created without explicit ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    /// Partition count.
    pub partitions: u32,
    /// `retention.ms`; -1 keeps records forever.
    pub retention_ms: i64,
    /// `retention.bytes` per partition; -1 is unbounded.
    pub retention_bytes: i64,
    /// Batch compression: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: Compression,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            gateway_id: String::new(),
            logging: LoggingConfig::default(),
            wire: WireConfig::default(),
            udp: UdpConfig::default(),
            log: LogConfig::default(),
            retention: RetentionConfig::default(),
            topic_defaults: TopicDefaults::default(),
            mqtt: MqttConfig::default(),
            bridges: Vec::new(),
            metrics: MetricsConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            // The constant is a valid literal address; checked by a test.
            listen: DEFAULT_MQTT_LISTEN.parse().expect("valid default address"),
            plain: true,
            tls: None,
            max_connections: DEFAULT_MQTT_MAX_CONNECTIONS,
            max_packet_bytes: DEFAULT_MQTT_MAX_PACKET_BYTES,
            receive_maximum: DEFAULT_MQTT_RECEIVE_MAXIMUM,
            max_inflight: DEFAULT_MQTT_MAX_INFLIGHT,
            max_queued_messages: DEFAULT_MQTT_MAX_QUEUED,
            max_queued_qos0_messages: DEFAULT_MQTT_MAX_QUEUED_QOS0,
            max_topic_levels: DEFAULT_MQTT_MAX_TOPIC_LEVELS,
            topic_alias_maximum: DEFAULT_MQTT_TOPIC_ALIAS_MAXIMUM,
            max_session_expiry_secs: u32::MAX,
            max_keep_alive_secs: 0,
            max_retained_messages: DEFAULT_MQTT_MAX_RETAINED,
            sys_interval_secs: DEFAULT_MQTT_SYS_INTERVAL_SECS,
            ingest: Vec::new(),
        }
    }
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            // The constant is a valid literal address; checked by a test.
            listen: DEFAULT_WIRE_LISTEN.parse().expect("valid default address"),
            plain: true,
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            fsync: Fsync::Always,
            fsync_interval_ms: DEFAULT_FSYNC_INTERVAL_MS,
            linger_ms: DEFAULT_LINGER_MS,
            min_commit_bytes: DEFAULT_MIN_COMMIT_BYTES,
            max_commit_bytes: DEFAULT_MAX_COMMIT_BYTES,
            batch_max_bytes: DEFAULT_BATCH_MAX_BYTES,
            writer_queue: DEFAULT_WRITER_QUEUE,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            auto_create_topics: true,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            check_interval_ms: DEFAULT_RETENTION_CHECK_MS,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            min_free_percent: DEFAULT_MIN_FREE_PERCENT,
        }
    }
}

impl Default for TopicDefaults {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: -1,
            compression: Compression::None,
        }
    }
}

/// The full default configuration, every key commented. `outpost config default` prints it.
pub const DEFAULT_CONFIG_TOML: &str = r#"# Outpost configuration. Every key is optional; the values below are the defaults.

# Directory of the log file (outpost.redb). Keep it on persistent storage, never on tmpfs.
data_dir = "./outpost-data"
# Stable id of this gateway, used by the bridge. Empty: generated once and kept in the log file.
gateway_id = ""

[logging]
# Diagnostics of `outpost serve`, written to stderr (under systemd: the journal). Not to be
# confused with [log], the message store below.
# A level ("error", "warn", "info", "debug", "trace" or "off") or target=level directives as
# in RUST_LOG, such as "info,outpost::bridge=debug" (no span or field filters). The RUST_LOG
# environment variable, when set, wins.
# Nothing is logged per message at "info": events that a client can repeat per message or
# per connection are logged at most once every 10 s, with the number held back.
level = "info"
# "plain": one human-readable line per event. "json": one JSON object per line (timestamp,
# level, target, message and the event's fields), for log shippers.
format = "plain"

[wire]
# Binary-protocol listener (devices, the CLI, applications). Loopback only by default:
# set "0.0.0.0:7883" to accept sensors from the network.
listen = "127.0.0.1:7883"
# false: no plain-TCP listener (with [wire.tls], TLS only).
plain = true
# Connections beyond this are refused with an error frame.
max_connections = 1024
# Largest frame body accepted (bytes). A bigger frame gets an error frame and the
# connection is closed; the broker never allocates by a size a peer announced beyond this.
max_frame_bytes = 1048576
# Produce requests one connection may have waiting for commit before the broker stops
# reading from it (back-pressure).
max_inflight = 256
# A connection silent for this long (no bytes, nothing in flight) is closed; this also ends
# connections stalled in the middle of a frame. Clients that idle longer send Ping.
idle_timeout_ms = 300000

[udp]
# Datagrams from sensors, without a connection (as MQTT-SN's QoS -1): each datagram is one
# Datagram frame carrying a device's id, its token and one Reading, ProduceAlias or Sleep on
# the aliases of the device's stored config (`outpost devices set`). Only devices the broker
# knows are served; with a password file, only devices with a token (`outpost devices token`).
enabled = true
# Default: the address of [wire] listen (TCP and UDP share the port number).
# listen = "127.0.0.1:7883"
# Largest datagram accepted (bytes, at most 65507); bigger ones are dropped and counted.
# 1472 fits a 1500-byte Ethernet MTU without fragmentation.
max_datagram_bytes = 1472
# Acknowledged datagrams whose append may wait for its commit at once; beyond this they are
# refused (BUSY) and counted. Fire-and-forget datagrams are only bounded by [log] writer_queue.
max_inflight = 1024

[log]
# redb page cache in bytes. redb's own default is 1 GiB; a gateway wants a few MiB.
cache_bytes = 8388608
# "always": every commit is fsynced before any of its records is acknowledged; a crash or
#           power cut loses nothing that was acknowledged.
# "interval": commits are not fsynced; a durable commit happens every fsync_interval_ms.
#           Fewer writes for SD cards, but a crash (even a plain kill -9) or power cut loses
#           the records acknowledged in the last fsync_interval_ms.
fsync = "always"
fsync_interval_ms = 1000
# When fewer than min_commit_bytes are waiting, the writer waits up to linger_ms for more
# before committing (fewer, larger commits: less disk wear), and stops waiting as soon as no
# request has arrived for 0.15 ms (a burst is in). 0 disables lingering.
linger_ms = 2
min_commit_bytes = 65536
# Upper bound of the payload of one commit.
max_commit_bytes = 4194304
# Largest uncompressed record batch. 16364 fills one 16 KiB redb leaf; 4076 one 4 KiB page.
batch_max_bytes = 16364
# Capacity of the writer's request queue; producers wait when it is full.
writer_queue = 4096
# Largest decompressed batch accepted when reading (guards against decompression bombs).
max_decompressed_bytes = 8388608
# Create a topic with [topic_defaults] when a producer names an unknown one.
auto_create_topics = true

[retention]
# How often old batches are deleted.
check_interval_ms = 30000
# When the file system holding data_dir has less free space than the larger of these two
# floors, the oldest batches of all topics are deleted first (and counted).
min_free_bytes = 268435456
min_free_percent = 5

[topic_defaults]
# Settings of topics created without explicit ones (auto-created or `topics create`).
partitions = 1
# Records older than this are deleted, whole batches at a time. -1 keeps them forever.
retention_ms = 604800000
# Per-partition size bound in bytes. -1 is unbounded.
retention_bytes = -1
# Batch compression: "none", "gzip", "snappy", "lz4" or "zstd".
compression = "none"

[mqtt]
# The MQTT 3.1/3.1.1/5.0 broker. Every accepted PUBLISH is stored in the log (see the ingest
# rules below); a QoS 1 PUBACK / QoS 2 PUBREC is sent only after that commit.
enabled = true
# Loopback only by default (as Mosquitto 2): set "0.0.0.0:1883" to accept sensors from the
# network.
listen = "127.0.0.1:1883"
# false: no plain-TCP listener (with [mqtt.tls] below, TLS only).
plain = true
# Connections beyond this get CONNACK "server busy" (v3: "server unavailable").
max_connections = 16384
# Largest packet accepted, announced to v5 clients as Maximum Packet Size. A bigger packet
# closes the connection (v5: DISCONNECT "packet too large").
max_packet_bytes = 1048576
# QoS 1/2 publishes a client may have unacknowledged towards the broker (v5 Receive Maximum).
receive_maximum = 256
# QoS 1/2 messages the broker keeps unacknowledged towards one client.
max_inflight = 64
# QoS 1/2 messages waiting for one session beyond its in-flight window (a slow subscriber, or
# an offline persistent session), as Mosquitto's max_queued_messages. When that queue is full
# a new message for the session is dropped and counted ($SYS/broker/messages/dropped): memory
# stays bounded, and the message is still in the log.
max_queued_messages = 1000
# QoS 0 messages waiting for one online session that reads slower than they arrive; beyond
# this they are dropped and counted. QoS 0 messages are not queued for offline sessions.
max_queued_qos0_messages = 10000
# Most levels in a topic name or filter.
max_topic_levels = 32
# v5 Topic Alias Maximum announced to clients (0: no inbound topic aliases).
topic_alias_maximum = 32
# Upper bound of a session's expiry interval in seconds (4294967295: no bound; v3.1.1
# persistent sessions never expire unless this is lower).
max_session_expiry_secs = 4294967295
# Keep-alive imposed on clients that ask for more or for none, seconds (v5 Server Keep
# Alive). 0: accept what the client asks.
max_keep_alive_secs = 0
# Most retained messages kept; a retained publish on a new topic beyond this is not retained
# (v5: PUBACK "quota exceeded").
max_retained_messages = 10000
# Interval of $SYS/ updates in seconds; 0 disables them.
sys_interval_secs = 10

# MQTT over TLS (rustls): none by default. The files are read at start and on SIGHUP
# (`systemctl reload outpost`): renewed certificates apply to new connections, live ones
# stay up. The same keys exist as [wire.tls] for the binary protocol.
#
# [mqtt.tls]
# listen = "0.0.0.0:8883"
# cert_file = "/etc/outpost/server.crt"    # PEM chain, leaf first
# key_file = "/etc/outpost/server.key"     # PEM private key
# client_ca_file = "/etc/outpost/ca.crt"   # ask clients for a certificate signed by this CA
# require_client_cert = true               # false: a certificate is optional
# identity_as_username = "cn"              # or "san": the verified certificate names the
#                                          # client (its user name for ACLs, no password)
# handshake_timeout_ms = 10000

# Ingest rules: which MQTT topics go to which log topic, first match wins. A message no rule
# matches goes to the log topic named by its first MQTT topic level ("{1}", characters a log
# topic cannot have become "_"), keyed by its whole MQTT topic. The MQTT topic, QoS, retain
# flag, content type and v5 user properties are kept as record headers.
#
# [[mqtt.ingest]]
# filter = "sensors/+/temperature"   # MQTT topic filter
# log_topic = "temperature"          # a name, or a template: "{2}" is MQTT topic level 2
# key = "level:2"                    # "topic" (default), "none", or "level:N"
#
# [[mqtt.ingest]]
# filter = "debug/#"
# store = false                      # delivered to subscribers, not stored

[auth]
# Authentication: with a password file, ANONYMOUS ACCESS IS OFF: MQTT clients and
# binary-protocol clients must log in with a user name and password from this file (manage it
# with `outpost passwd add|delete|list FILE USER`). Without one, every client is accepted and
# a user name is taken as given. Reloaded on SIGHUP.
# password_file = "/etc/outpost/passwd"
# Accept clients without credentials. Default: true without a password file, false with
# one; true with a password file is allowed (and logged at start).
# allow_anonymous = false
# Authorization: rules per user / client id on topic filters (see examples/acl.toml). With an
# ACL file, anything it does not allow is denied; without one, everything is allowed.
# Reloaded on SIGHUP.
# acl_file = "/etc/outpost/acl.toml"
# Password checks (argon2id) run on this many threads, each keeping 7 MiB of memory from the
# first login on; more logins wait, and those beyond max_waiting_verifications are answered
# "server busy" (a reconnect storm after a reboot cannot exhaust a small gateway's memory).
max_concurrent_verifications = 2
max_waiting_verifications = 128

# Bridges forward log topics to an upstream MQTT broker or Kafka cluster, at least once,
# resuming from a checkpoint in the log file after any outage or restart. None by default.
# Example:
#
# [[bridge]]
# name = "cloud"                     # unique; keys checkpoints and status
# upstream = "mqtts://mqtt.example.com:8883"   # or mqtt://host:1883
# mqtt_version = "5"                 # "5" (origin in user properties) or "3.1.1"
# client_id = ""                     # default "<gateway_id>-<name>"
# username = "gw-0042"
# password = "secret"
# ca_file = "/etc/outpost/ca.pem"    # mqtts:// only; client_cert_file + client_key_file for mTLS
# keep_alive_secs = 30
# connect_timeout_secs = 10
# ack_timeout_secs = 20              # watchdog: no PUBACK this long while in flight -> reconnect
# reconnect_min_ms = 500             # backoff doubles per failure, with jitter, up to the max
# reconnect_max_ms = 30000
# checkpoint_interval_ms = 1000      # longest time acknowledged progress waits to be committed
# max_packet_bytes = 1048576         # larger records are skipped, logged and counted as dropped
# tcp_nodelay = false                # false lets the kernel coalesce messages: 2.5x the drain rate
# envelope = "none"                  # 3.1.1 only: "json" wraps origin, key and value in JSON
#
# [[bridge.route]]
# topic = "sensors"                  # the log topic (all partitions)
# name = "sensors"                   # default: the topic
# upstream_topic = "{gateway}/{mqtt_topic}"   # also {topic} {partition} {key}
# qos = 1                            # 1 (acknowledged) or 0
# retain = false
# max_inflight = 1000                # per partition; also the most duplicates after a crash
# batch_bytes = 65536                # read from the log at a time
# linger_ms = 0                      # wait for more records before sending new ones
# rate_messages = 0                  # per second for metered links; 0 = unlimited
# rate_bytes = 0
# start = "earliest"                 # new route: "earliest", "latest", RFC 3339 time, Unix ms
# overflow = "drop_oldest"           # or "refuse": retention keeps unforwarded records and
#                                    # ingest into a full partition is refused (MQTT 5: 0x97)
#
# A Kafka upstream: records keep key, value, timestamp and headers, plus the headers
# outpost-gateway, outpost-topic, outpost-partition, outpost-offset. Create its topics first.
#
# [[bridge]]
# name = "dc"
# upstream = "kafka://kafka1.example:9092,kafka2.example:9092"   # or kafkas:// (TLS, ca_file)
# sasl_mechanism = "SCRAM-SHA-256"   # or "PLAIN", "SCRAM-SHA-512"; with username, password
# requests_in_flight = 5             # produce requests per upstream partition; 1 = strict order
# ack_timeout_secs = 20              # a produce unanswered this long rebuilds the connection
#
# [[bridge.route]]
# topic = "sensors"
# upstream_topic = "{topic}"         # {gateway} {topic} {partition}; a legal Kafka topic name
# partitioning = "same"              # log partition number; "key" (Kafka's murmur2 on the key)
#                                    # or "origin" (one upstream partition per gateway)
# compression = "none"               # or "gzip", "snappy"
# batch_bytes = 65536                # also the largest produce batch per upstream partition
# linger_ms = 0

[metrics]
# Prometheus metrics at /metrics (OpenMetrics text), /healthz (200 while the process serves)
# and /readyz (200 once the log is opened and recovered and every listener is bound; 503
# before that and while shutting down). GET and HEAD only.
enabled = true
# No authentication: keep it on loopback (the default) or a management network. Scrape it
# from the gateway (a local Prometheus agent) or expose it deliberately, e.g. "0.0.0.0:9883".
# Per-partition, consumer-group and bridge-route series exist only for what exists: a gateway
# with thousands of partitions serves thousands of series per partition metric.
listen = "127.0.0.1:9883"
"#;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type, ...).
    #[error("config file {path}: {source}(see `outpost config default` for every key)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml says, with the line and key.
        #[source]
        source: toml::de::Error,
    },
    /// An `[[mqtt.ingest]]` rule cannot be used.
    #[error("config: {0}")]
    Ingest(#[from] crate::ingest::RuleError),
    /// A `[[bridge]]` block cannot be used.
    #[error("config: {0}")]
    Bridge(#[from] outpost_bridge::config::ConfigError),
    /// A value parses but cannot work.
    #[error("config key `{key}`: {problem}; fix: {fix}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong.
        problem: &'static str,
        /// What to write instead.
        fix: &'static str,
    },
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mqtt = &self.mqtt;
        let auth = &self.auth;
        let empty = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
        let udp = &self.udp;
        let checks: [(bool, &'static str, &'static str, &'static str); 19] = [
            (
                empty(&auth.password_file) || empty(&auth.acl_file),
                "auth.password_file / auth.acl_file",
                "is empty",
                "give a path, or remove the key to turn the feature off",
            ),
            (
                auth.max_concurrent_verifications == 0,
                "auth.max_concurrent_verifications",
                "is 0",
                "use a positive number, e.g. 2",
            ),
            (
                mqtt.max_packet_bytes < 1024,
                "mqtt.max_packet_bytes",
                "is below 1024",
                "use at least 1024",
            ),
            (
                mqtt.receive_maximum == 0 || mqtt.max_inflight == 0,
                "mqtt.receive_maximum / mqtt.max_inflight",
                "is 0",
                "use a positive number, e.g. 256 and 64",
            ),
            (
                mqtt.max_connections == 0
                    || mqtt.max_queued_messages == 0
                    || mqtt.max_queued_qos0_messages == 0,
                "mqtt.max_connections / mqtt.max_queued_messages / mqtt.max_queued_qos0_messages",
                "is 0",
                "use a positive number",
            ),
            (
                mqtt.max_topic_levels == 0,
                "mqtt.max_topic_levels",
                "is 0",
                "use a positive number, e.g. 32",
            ),
            (
                self.log.cache_bytes < 1 << 20,
                "log.cache_bytes",
                "is below 1 MiB",
                "use at least 1048576",
            ),
            (
                self.log.fsync_interval_ms == 0,
                "log.fsync_interval_ms",
                "is 0",
                "use a positive interval, e.g. 1000, or fsync = \"always\"",
            ),
            (
                self.log.batch_max_bytes < 256,
                "log.batch_max_bytes",
                "is below 256",
                "use 16364 or 4076",
            ),
            (
                self.log.writer_queue == 0,
                "log.writer_queue",
                "is 0",
                "use a positive capacity, e.g. 4096",
            ),
            (
                self.log.max_commit_bytes < u64::from(self.log.batch_max_bytes),
                "log.max_commit_bytes",
                "is smaller than log.batch_max_bytes",
                "raise it to at least batch_max_bytes",
            ),
            (
                self.wire.max_frame_bytes < 1024,
                "wire.max_frame_bytes",
                "is below 1024",
                "use at least 1024",
            ),
            (
                self.wire.max_connections == 0 || self.wire.max_inflight == 0,
                "wire.max_connections / wire.max_inflight",
                "is 0",
                "use a positive number",
            ),
            (
                udp.max_datagram_bytes < MIN_UDP_DATAGRAM_BYTES
                    || udp.max_datagram_bytes > MAX_UDP_DATAGRAM_BYTES,
                "udp.max_datagram_bytes",
                "is out of range",
                "use 64..=65507, e.g. 1472",
            ),
            (
                udp.max_inflight == 0,
                "udp.max_inflight",
                "is 0",
                "use a positive number, e.g. 1024",
            ),
            (
                self.topic_defaults.partitions == 0,
                "topic_defaults.partitions",
                "is 0",
                "use 1 or more",
            ),
            (
                self.topic_defaults.retention_ms < -1 || self.topic_defaults.retention_bytes < -1,
                "topic_defaults.retention_ms / retention_bytes",
                "is below -1",
                "use -1 for unlimited or a positive value",
            ),
            (
                self.metrics.enabled && self.metrics_port_taken(),
                "metrics.listen",
                "is the address of wire.listen or mqtt.listen",
                "give the metrics listener a port of its own, e.g. \"127.0.0.1:9883\"",
            ),
            (
                self.retention.min_free_percent > 90 || self.retention.check_interval_ms == 0,
                "retention.min_free_percent / check_interval_ms",
                "is out of range",
                "use a percent of 0..=90 and a positive interval",
            ),
        ];
        if let Some((_, key, problem, fix)) = checks.into_iter().find(|c| c.0) {
            return Err(ConfigError::Invalid { key, problem, fix });
        }
        self.validate_tls()?;
        self.logging.validate()?;
        crate::ingest::Ingest::from_config(&self.mqtt)?;
        outpost_bridge::config::validate_all(&self.bridges)?;
        Ok(())
    }

    /// Checks the listeners' TLS settings (the files themselves are read at start).
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem, fix| Err(ConfigError::Invalid { key, problem, fix });
        if self.mqtt.enabled && !self.mqtt.plain && self.mqtt.tls.is_none() {
            return invalid(
                "mqtt.plain",
                "is false and [mqtt.tls] is not set, so MQTT has no listener",
                "add a [mqtt.tls] section, set plain = true, or set mqtt.enabled = false",
            );
        }
        if !self.wire.plain && self.wire.tls.is_none() {
            return invalid(
                "wire.plain",
                "is false and [wire.tls] is not set, so the binary protocol has no listener",
                "add a [wire.tls] section or set plain = true",
            );
        }
        for (tls, key) in [
            (&self.mqtt.tls, "mqtt.tls.identity_as_username"),
            (&self.wire.tls, "wire.tls.identity_as_username"),
        ] {
            if let Some(t) = tls {
                if t.identity_as_username.is_some() && t.client_ca_file.is_none() {
                    return invalid(
                        key,
                        "needs client certificates, but client_ca_file is not set",
                        "set client_ca_file to the CA that signs client certificates",
                    );
                }
                if t.handshake_timeout_ms == 0 {
                    return invalid(
                        "tls.handshake_timeout_ms",
                        "is 0",
                        "use a positive timeout, e.g. 10000",
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether `[metrics] listen` is a fixed address another listener also uses.
    fn metrics_port_taken(&self) -> bool {
        let m = self.metrics.listen;
        let clash = |other: SocketAddr| m.port() != 0 && m == other;
        let tls = [&self.wire.tls, &self.mqtt.tls]
            .into_iter()
            .flatten()
            .any(|t| clash(t.listen));
        clash(self.wire.listen) || (self.mqtt.enabled && clash(self.mqtt.listen)) || tls
    }

    /// Path of the log file inside `data_dir`.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(crate::log::LOG_FILE_NAME)
    }
}

impl TopicDefaults {
    /// `retention_ms` as an option (`None` = forever).
    pub fn retention_ms(&self) -> Option<u64> {
        u64::try_from(self.retention_ms).ok()
    }

    /// `retention_bytes` as an option (`None` = unbounded).
    pub fn retention_bytes(&self) -> Option<u64> {
        u64::try_from(self.retention_bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_is_the_default_config() {
        assert_eq!(
            Config::from_toml(DEFAULT_CONFIG_TOML).unwrap(),
            Config::default()
        );
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn bad_ingest_rule_is_caught_by_validation() {
        let err = Config::from_toml("[[mqtt.ingest]]\nfilter = \"a/#/b\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("mqtt.ingest rule 1") && text.contains("fix"),
            "{text}"
        );
    }

    #[test]
    fn metrics_listener_needs_a_port_of_its_own() {
        let err = Config::from_toml("[metrics]\nlisten = \"127.0.0.1:7883\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("metrics.listen") && text.contains("fix"),
            "{text}"
        );
        let ok = "[wire]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
        assert!(Config::from_toml(ok).is_ok());
        let off = "[metrics]\nenabled = false\nlisten = \"127.0.0.1:7883\"\n";
        assert!(Config::from_toml(off).is_ok());
        let err = Config::from_toml("[metrics]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn udp_listens_where_wire_does_unless_told() {
        let c = Config::from_toml("[wire]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(
            c.udp.listen_addr(&c.wire),
            "127.0.0.1:9000".parse().unwrap()
        );
        let c = Config::from_toml("[udp]\nlisten = \"127.0.0.1:9001\"\n").unwrap();
        assert_eq!(
            c.udp.listen_addr(&c.wire),
            "127.0.0.1:9001".parse().unwrap()
        );
        for bad in [
            "max_datagram_bytes = 65508",
            "max_datagram_bytes = 63",
            "max_inflight = 0",
        ] {
            let err = Config::from_toml(&format!("[udp]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("udp.") && err.contains("fix"), "{bad}: {err}");
        }
        assert!(Config::from_toml("[udp]\nmax_datagram_bytes = 65507\n").is_ok());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[log]\nfsynk = \"always\"\n").unwrap_err();
        assert!(err.to_string().contains("fsynk"), "{err}");
    }

    #[test]
    fn logging_section_is_validated() {
        let ok = "[logging]\nlevel = \"warn,outpost::bridge=debug\"\nformat = \"json\"\n";
        let config = Config::from_toml(ok).unwrap();
        assert_eq!(config.logging.format, LogFormat::Json);
        for bad in ["verbose", "", "info,lots", "outpost=loud"] {
            let text = format!("[logging]\nlevel = {bad:?}\n");
            let err = Config::from_toml(&text).unwrap_err().to_string();
            assert!(
                err.contains("logging.level") && err.contains("fix"),
                "{bad}: {err}"
            );
        }
        let err = Config::from_toml("[logging]\nformat = \"xml\"\n").unwrap_err();
        assert!(err.to_string().contains("xml"), "{err}");
    }

    #[test]
    fn invalid_value_names_key_and_fix() {
        let err = Config::from_toml("[log]\nfsync_interval_ms = 0\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("log.fsync_interval_ms") && text.contains("fix"),
            "{text}"
        );
        let err = Config::from_toml("[log]\nfsync = \"sometimes\"\n").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }
}
