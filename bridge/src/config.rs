//! `[[bridge]]` and `[[bridge.route]]`: what to forward where. Parsed by the broker's config
//! file (serde), validated here so the error names the bridge, the route and the key.

use std::path::PathBuf;

use serde::Deserialize;

use crate::template::Template;

/// Default upstream topic template of an MQTT bridge: the gateway id, then the original MQTT
/// topic (or the log topic for records that did not come from MQTT).
pub const DEFAULT_UPSTREAM_TOPIC: &str = "{gateway}/{mqtt_topic}";
/// Default upstream topic template of a Kafka bridge: the log topic's name.
pub const DEFAULT_KAFKA_TOPIC: &str = "{topic}";
/// Default produce requests in flight per upstream Kafka partition.
pub const DEFAULT_REQUESTS_IN_FLIGHT: u32 = 5;
/// Default Kafka port (`kafka://host`); `kafkas://host` defaults to 9093.
pub const DEFAULT_KAFKA_PORT: u16 = 9092;
/// Default records sent and not yet covered by a durable checkpoint, per partition.
pub const DEFAULT_MAX_INFLIGHT: u32 = 1000;
/// Default bytes read from the log at a time, per partition.
pub const DEFAULT_BATCH_BYTES: u32 = 64 << 10;
/// Default MQTT keep-alive towards the upstream.
pub const DEFAULT_KEEP_ALIVE_SECS: u16 = 30;
/// Default time a connection attempt (TCP, TLS, CONNECT/CONNACK) may take.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u16 = 10;
/// Default watchdog: no acknowledgement for this long while messages are in flight means the
/// upstream is hung; the connection is rebuilt.
pub const DEFAULT_ACK_TIMEOUT_SECS: u16 = 20;
/// Default first reconnect delay.
pub const DEFAULT_RECONNECT_MIN_MS: u64 = 500;
/// Default longest reconnect delay.
pub const DEFAULT_RECONNECT_MAX_MS: u64 = 30_000;
/// Default longest time between checkpoint commits while records are acknowledged.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1000;
/// Default largest MQTT packet sent upstream (larger records are skipped and counted).
pub const DEFAULT_MAX_PACKET_BYTES: u32 = 1 << 20;

/// One `[[bridge]]` block: an upstream connection and the routes it carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Name, unique among bridges: `[A-Za-z0-9_.-]`, used in checkpoints, status and the
    /// default client id.
    pub name: String,
    /// `mqtt://host:port` or `mqtts://host:port` (port defaults to 1883 / 8883), or
    /// `kafka://host:port[,host:port…]` / `kafkas://…` (bootstrap brokers; port defaults to
    /// 9092 / 9093).
    pub upstream: String,
    /// MQTT protocol version spoken upstream: `"5"` (default) or `"3.1.1"`.
    #[serde(default = "default_mqtt_version")]
    pub mqtt_version: String,
    /// Client id upstream; default `{gateway_id}-{name}`. Stable across restarts, so the
    /// upstream keeps the session.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name upstream (MQTT CONNECT, or Kafka SASL with `sasl_mechanism`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password upstream.
    #[serde(default)]
    pub password: Option<String>,
    /// Kafka only: the SASL mechanism, `"PLAIN"`, `"SCRAM-SHA-256"` or `"SCRAM-SHA-512"`,
    /// with `username` and `password` (use `kafkas://` so the password is not sent in clear).
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// Kafka only: produce requests in flight per upstream partition. More than 1 lets one
    /// partition's batches overlap on the wire; after a failed request a later one may already
    /// have landed, so the re-sent records follow it (order kept except around failures, as
    /// with a Kafka producer without idempotence). 1 keeps strict order.
    #[serde(default = "default_requests_in_flight")]
    pub requests_in_flight: u32,
    /// PEM file of the CA certificates that sign the upstream's certificate (`mqtts://`,
    /// `kafkas://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file of our client certificate chain (mutual TLS), with `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of our client certificate's private key.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// MQTT keep-alive, seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u16,
    /// Longest connection attempt, seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u16,
    /// Watchdog: rebuild the connection when no acknowledgement arrived for this long while
    /// messages are in flight.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u16,
    /// First reconnect delay (doubles per failure, with jitter, up to `reconnect_max_ms`).
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Longest time acknowledged progress waits before its checkpoint is committed.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_ms: u64,
    /// Largest packet sent upstream; a record that does not fit is skipped, logged, counted.
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: u32,
    /// Disable Nagle's algorithm upstream. Off by default: rumqttc writes each message with
    /// its own flush, and letting the kernel coalesce them raised a backlog drain to a local
    /// Mosquitto from ~60k to ~150k messages/s; the cost is latency when the link is idle.
    #[serde(default)]
    pub tcp_nodelay: bool,
    /// For 3.1.1 upstreams: `"none"` (payload as stored, origin not carried) or `"json"`
    /// (a JSON envelope with the origin, timestamp, key and base64 value).
    #[serde(default)]
    pub envelope: Envelope,
    /// The routes.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// One `[[bridge.route]]`: a log topic forwarded upstream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name, unique within the bridge (default: the log topic); keys the checkpoints.
    #[serde(default)]
    pub name: Option<String>,
    /// The log topic forwarded (all its partitions).
    pub topic: String,
    /// Upstream topic template: `{gateway}`, `{topic}`, `{partition}`, `{key}`,
    /// `{mqtt_topic}` (the original MQTT topic; the log topic when there is none). Default
    /// [`DEFAULT_UPSTREAM_TOPIC`] for MQTT, [`DEFAULT_KAFKA_TOPIC`] for Kafka, where only
    /// `{gateway}`, `{topic}` and `{partition}` may be used (a Kafka topic is created ahead,
    /// so its name cannot depend on a record) and the result must be a legal Kafka topic name.
    #[serde(default)]
    pub upstream_topic: Option<String>,
    /// Kafka only: which upstream partition a record goes to. See [`Partitioning`].
    #[serde(default)]
    pub partitioning: Partitioning,
    /// Kafka only: compression of the produced batches.
    #[serde(default)]
    pub compression: Compression,
    /// QoS upstream: 1 (default; acknowledged, at least once) or 0 (fire and forget: the
    /// checkpoint advances when the packet is written).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Publish upstream with the retain flag.
    #[serde(default)]
    pub retain: bool,
    /// Records per partition sent and not yet covered by a durable checkpoint; also the bound
    /// on duplicates after a crash.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u32,
    /// Bytes read from the log at a time per partition; for Kafka also the largest produce
    /// batch per upstream partition (uncompressed record bytes).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
    /// Wait this long for more records before sending when less than `batch_bytes` is
    /// waiting (0: send at once).
    #[serde(default)]
    pub linger_ms: u64,
    /// Messages per second, whole route (0: unlimited).
    #[serde(default)]
    pub rate_messages: u32,
    /// Payload bytes per second, whole route (0: unlimited).
    #[serde(default)]
    pub rate_bytes: u64,
    /// Where a route without a checkpoint starts: `"earliest"` (default), `"latest"`, an
    /// RFC 3339 time (`"2026-11-01T00:00:00Z"`) or Unix milliseconds.
    #[serde(default = "default_start")]
    pub start: String,
    /// When the checkpoint falls behind retention: `"drop_oldest"` (default; the lost offset
    /// ranges are logged and counted) or `"refuse"` (retention keeps unforwarded records;
    /// ingest into a partition that is over its byte limit is refused until the bridge
    /// catches up).
    #[serde(default)]
    pub overflow: Overflow,
}

/// How a Kafka route picks the upstream partition of a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// The log partition's number (the upstream topic needs at least as many partitions);
    /// order per partition is kept end to end.
    #[default]
    Same,
    /// Kafka's default partitioner on the record key (murmur2, positive, modulo the
    /// partition count), so upstream consumers see Kafka's usual key → partition rule. A
    /// record without a key goes to its log partition's number modulo the count.
    Key,
    /// One upstream partition per gateway: murmur2 of the gateway id modulo the count, so
    /// everything of one gateway stays in order in one partition.
    Origin,
}

/// Compression of Kafka produce batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// None.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
}

/// A Kafka SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN (RFC 4616): the password travels as is; use it over TLS only.
    Plain,
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
}

/// What kind of upstream a bridge talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// An MQTT broker (`mqtt://`, `mqtts://`).
    Mqtt,
    /// A Kafka cluster (`kafka://`, `kafkas://`).
    Kafka,
}

/// How the origin travels to a 3.1.1 upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// The payload as stored; the origin is not carried.
    #[default]
    None,
    /// A JSON object: `{"gateway","topic","partition","offset","timestamp","key","value"}`,
    /// key and value in base64 (key `null` when absent).
    Json,
}

/// What happens when a checkpoint falls behind the retention horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Retention deletes as configured; the bridge skips what is gone, logs and counts it.
    #[default]
    DropOldest,
    /// Retention keeps what the bridge has not forwarded; ingest is refused meanwhile.
    Refuse,
}

/// Where a new route starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest stored record.
    Earliest,
    /// The log end when the route first starts.
    Latest,
    /// The first record with a timestamp at or after this (Unix ms).
    Time(i64),
}

/// The upstream address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A Kafka upstream address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaUrl {
    /// TLS (`kafkas://`).
    pub tls: bool,
    /// Bootstrap brokers as `host:port` (an IPv6 address in brackets).
    pub brokers: Vec<String>,
}

/// A bridge configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[bridge]] `{bridge}`{route}: key `{key}`: {problem}")]
pub struct ConfigError {
    /// The bridge's name (or its index when it has none).
    pub bridge: String,
    /// `, route `x`` when the problem is in a route.
    pub route: String,
    /// The key.
    pub key: &'static str,
    /// What is wrong and what to write instead.
    pub problem: String,
}

fn default_mqtt_version() -> String {
    "5".to_owned()
}
fn default_keep_alive() -> u16 {
    DEFAULT_KEEP_ALIVE_SECS
}
fn default_connect_timeout() -> u16 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}
fn default_ack_timeout() -> u16 {
    DEFAULT_ACK_TIMEOUT_SECS
}
fn default_reconnect_min() -> u64 {
    DEFAULT_RECONNECT_MIN_MS
}
fn default_reconnect_max() -> u64 {
    DEFAULT_RECONNECT_MAX_MS
}
fn default_checkpoint_interval() -> u64 {
    DEFAULT_CHECKPOINT_INTERVAL_MS
}
fn default_max_packet() -> u32 {
    DEFAULT_MAX_PACKET_BYTES
}
fn default_requests_in_flight() -> u32 {
    DEFAULT_REQUESTS_IN_FLIGHT
}
fn default_qos() -> u8 {
    1
}
fn default_max_inflight() -> u32 {
    DEFAULT_MAX_INFLIGHT
}
fn default_batch_bytes() -> u32 {
    DEFAULT_BATCH_BYTES
}
fn default_start() -> String {
    "earliest".to_owned()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `[::1]:1883`, `host:1883` or `host` (then `default_port`).
fn host_port(text: &str, default_port: u16) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs a closing `]`")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "the port is not a number 1-65535")?,
            None if after.is_empty() => default_port,
            None => return Err("unexpected text after the IPv6 address"),
        };
        (h.to_owned(), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse().map_err(|_| "the port is not a number 1-65535")?,
            ),
            None => (text.to_owned(), default_port),
        }
    };
    if host.is_empty() || host.contains(['/', '@']) || port == 0 {
        return Err("the host is empty or the port is 0");
    }
    Ok((host, port))
}

impl BridgeConfig {
    /// The MQTT version: `true` for 5, `false` for 3.1.1.
    pub fn is_v5(&self) -> bool {
        self.mqtt_version != "3.1.1"
    }

    /// The kind of upstream, from the URL's scheme (MQTT unless it starts with `kafka`).
    pub fn kind(&self) -> UpstreamKind {
        if self.upstream.starts_with("kafka://") || self.upstream.starts_with("kafkas://") {
            UpstreamKind::Kafka
        } else {
            UpstreamKind::Mqtt
        }
    }

    /// The parsed MQTT upstream address.
    pub fn upstream_url(&self) -> Result<UpstreamUrl, ConfigError> {
        let bad = |problem: &str| self.error(None, "upstream", problem.to_owned());
        let (tls, rest) = if let Some(r) = self.upstream.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = self.upstream.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(bad(
                "must start with mqtt://, mqtts://, kafka:// or kafkas:// (for example \"mqtt://broker.example:1883\")",
            ));
        };
        let (host, port) = host_port(rest.trim_end_matches('/'), if tls { 8883 } else { 1883 })
            .map_err(|p| bad(&format!("{p}; expected mqtt://host:port")))?;
        Ok(UpstreamUrl { tls, host, port })
    }

    /// The parsed Kafka upstream address: `kafka://host:port[,host:port…]`.
    pub fn kafka_url(&self) -> Result<KafkaUrl, ConfigError> {
        let bad = |problem: &str| self.error(None, "upstream", problem.to_owned());
        let (tls, rest) = if let Some(r) = self.upstream.strip_prefix("kafkas://") {
            (true, r)
        } else if let Some(r) = self.upstream.strip_prefix("kafka://") {
            (false, r)
        } else {
            return Err(bad("a Kafka upstream starts with kafka:// or kafkas://"));
        };
        let default_port = if tls { 9093 } else { DEFAULT_KAFKA_PORT };
        let brokers = rest
            .trim_end_matches('/')
            .split(',')
            .map(|b| {
                let (host, port) = host_port(b.trim(), default_port)
                    .map_err(|p| bad(&format!("{p}; expected kafka://host:port[,host:port...]")))?;
                Ok(if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(KafkaUrl { tls, brokers })
    }

    /// The route's upstream topic template (its own, or the default of this bridge's kind).
    pub fn upstream_topic<'a>(&self, route: &'a RouteConfig) -> &'a str {
        match (&route.upstream_topic, self.kind()) {
            (Some(t), _) => t,
            (None, UpstreamKind::Mqtt) => DEFAULT_UPSTREAM_TOPIC,
            (None, UpstreamKind::Kafka) => DEFAULT_KAFKA_TOPIC,
        }
    }

    /// The Kafka SASL mechanism and credentials, when configured and offered.
    pub fn sasl(&self) -> Option<(SaslMechanism, String, String)> {
        let m = match self
            .sasl_mechanism
            .as_deref()?
            .to_ascii_uppercase()
            .as_str()
        {
            "PLAIN" => SaslMechanism::Plain,
            "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            _ => return None,
        };
        Some((
            m,
            self.username.clone().unwrap_or_default(),
            self.password.clone().unwrap_or_default(),
        ))
    }

    /// The client id upstream.
    pub fn client_id(&self, gateway_id: &str) -> String {
        match &self.client_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => format!("{gateway_id}-{}", self.name),
        }
    }

    fn error(&self, route: Option<&str>, key: &'static str, problem: String) -> ConfigError {
        ConfigError {
            bridge: self.name.clone(),
            route: route.map_or_else(String::new, |r| format!(", route `{r}`")),
            key,
            problem,
        }
    }

    /// Checks everything that parses but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.name) {
            return Err(self.error(
                None,
                "name",
                "use 1-64 characters of A-Z a-z 0-9 _ - .".to_owned(),
            ));
        }
        let kind = self.kind();
        let tls = match kind {
            UpstreamKind::Mqtt => self.upstream_url()?.tls,
            UpstreamKind::Kafka => self.kafka_url()?.tls,
        };
        if !matches!(self.mqtt_version.as_str(), "5" | "3.1.1") {
            return Err(self.error(None, "mqtt_version", "use \"5\" or \"3.1.1\"".to_owned()));
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(self.error(
                None,
                "client_cert_file / client_key_file",
                "give both or neither".to_owned(),
            ));
        }
        if !tls && (self.ca_file.is_some() || self.client_cert_file.is_some()) {
            return Err(self.error(
                None,
                "ca_file",
                "certificates need an mqtts:// or kafkas:// upstream".to_owned(),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(self.error(
                None,
                "password",
                "a password is sent only with a user name: set `username`".to_owned(),
            ));
        }
        match kind {
            UpstreamKind::Mqtt => {
                if self.sasl_mechanism.is_some() {
                    return Err(self.error(
                        None,
                        "sasl_mechanism",
                        "SASL is for kafka:// upstreams; an MQTT upstream takes `username` and `password`".to_owned(),
                    ));
                }
            }
            UpstreamKind::Kafka => {
                match (&self.sasl_mechanism, &self.username) {
                    (Some(m), _) if self.sasl().is_none() => {
                        return Err(self.error(
                            None,
                            "sasl_mechanism",
                            format!("{m:?} is not offered; use \"PLAIN\", \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\""),
                        ))
                    }
                    (Some(_), None) => {
                        return Err(self.error(
                            None,
                            "username",
                            "SASL needs `username` and `password`".to_owned(),
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(self.error(
                            None,
                            "sasl_mechanism",
                            "a Kafka user name is sent with SASL: set `sasl_mechanism` (\"PLAIN\", \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\")".to_owned(),
                        ))
                    }
                    _ => {}
                }
                if self.requests_in_flight == 0 || self.requests_in_flight > 64 {
                    return Err(self.error(
                        None,
                        "requests_in_flight",
                        "use 1-64, e.g. 5 (1 keeps strict order even around failures)".to_owned(),
                    ));
                }
            }
        }
        let checks: [(bool, &'static str, &str); 6] = [
            (
                self.keep_alive_secs == 0,
                "keep_alive_secs",
                "use a positive number, e.g. 30",
            ),
            (
                self.connect_timeout_secs == 0,
                "connect_timeout_secs",
                "use a positive number, e.g. 10",
            ),
            (
                self.ack_timeout_secs == 0,
                "ack_timeout_secs",
                "use a positive number, e.g. 20",
            ),
            (
                self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms,
                "reconnect_min_ms / reconnect_max_ms",
                "use 0 < reconnect_min_ms <= reconnect_max_ms, e.g. 500 and 30000",
            ),
            (
                self.max_packet_bytes < 1024,
                "max_packet_bytes",
                "use at least 1024",
            ),
            (
                self.routes.is_empty(),
                "route",
                "add at least one [[bridge.route]]",
            ),
        ];
        if let Some((_, key, fix)) = checks.into_iter().find(|c| c.0) {
            return Err(self.error(None, key, fix.to_owned()));
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.routes {
            let name = r.name();
            let err = |key, problem: String| self.error(Some(name), key, problem);
            if !valid_name(name) {
                return Err(err(
                    "name",
                    "use 1-64 characters of A-Z a-z 0-9 _ - . (or set `name` when the topic has others)".to_owned(),
                ));
            }
            if !names.insert(name) {
                return Err(err(
                    "name",
                    "two routes of this bridge have this name; set a distinct `name`".to_owned(),
                ));
            }
            if r.topic.is_empty() {
                return Err(err("topic", "name the log topic to forward".to_owned()));
            }
            let template =
                Template::parse(self.upstream_topic(r)).map_err(|p| err("upstream_topic", p))?;
            match kind {
                UpstreamKind::Kafka if template.uses_record_fields() => {
                    return Err(err(
                        "upstream_topic",
                        "a Kafka topic name may use {gateway}, {topic} and {partition} only (Kafka topics are created ahead; {key} and {mqtt_topic} vary per record)".to_owned(),
                    ));
                }
                UpstreamKind::Mqtt
                    if r.partitioning != Partitioning::Same
                        || r.compression != Compression::None =>
                {
                    return Err(err(
                        "partitioning / compression",
                        "these are for kafka:// upstreams; remove them from an MQTT route"
                            .to_owned(),
                    ));
                }
                _ => {}
            }
            if r.qos > 1 {
                return Err(err(
                    "qos",
                    "use 1 (acknowledged) or 0; QoS 2 is not offered: origin properties let consumers drop duplicates".to_owned(),
                ));
            }
            if r.max_inflight == 0 || r.max_inflight > 65_535 {
                return Err(err("max_inflight", "use 1-65535, e.g. 1000".to_owned()));
            }
            if r.batch_bytes < 1024 {
                return Err(err("batch_bytes", "use at least 1024".to_owned()));
            }
            r.start_at().map_err(|p| err("start", p))?;
        }
        Ok(())
    }
}

impl RouteConfig {
    /// The route's name (its log topic unless set).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.topic)
    }

    /// The parsed start position.
    pub fn start_at(&self) -> Result<StartAt, String> {
        match self.start.as_str() {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            s => {
                if let Ok(ms) = s.parse::<i64>() {
                    return Ok(StartAt::Time(ms));
                }
                let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
                    "use \"earliest\", \"latest\", an RFC 3339 time such as \"2026-11-01T00:00:00Z\", or Unix milliseconds".to_owned()
                })?;
                let ms = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                Ok(StartAt::Time(ms))
            }
        }
    }
}

/// Checks a whole `[[bridge]]` list: each bridge, and names unique among bridges.
pub fn validate_all(bridges: &[BridgeConfig]) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for b in bridges {
        b.validate()?;
        if !names.insert(b.name.as_str()) {
            return Err(b.error(None, "name", "two bridges have this name".to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BridgeConfig {
        #[derive(Deserialize)]
        struct Doc {
            bridge: Vec<BridgeConfig>,
        }
        let doc: Doc = toml_like(text);
        doc.bridge.into_iter().next().expect("one bridge")
    }

    // The broker parses TOML; here serde_json keeps the crate's dependencies small.
    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("valid test document")
    }

    #[test]
    fn defaults_and_urls() {
        let b = parse(
            r#"{"bridge":[{"name":"cloud","upstream":"mqtt://127.0.0.1:1884",
                "route":[{"topic":"sensors"}]}]}"#,
        );
        b.validate().unwrap();
        assert!(b.is_v5());
        assert_eq!(
            b.upstream_url().unwrap(),
            UpstreamUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 1884
            }
        );
        assert_eq!(b.client_id("gw7"), "gw7-cloud");
        let r = &b.routes[0];
        assert_eq!(r.name(), "sensors");
        assert_eq!(r.qos, 1);
        assert_eq!(r.max_inflight, DEFAULT_MAX_INFLIGHT);
        assert_eq!(r.start_at().unwrap(), StartAt::Earliest);
        assert_eq!(r.overflow, Overflow::DropOldest);

        let mut b2 = b.clone();
        b2.upstream = "mqtts://[::1]".into();
        assert_eq!(
            b2.upstream_url().unwrap(),
            UpstreamUrl {
                tls: true,
                host: "::1".into(),
                port: 8883
            }
        );
        b2.upstream = "tcp://x:1".into();
        assert!(b2.validate().unwrap_err().to_string().contains("mqtt://"));
    }

    #[test]
    fn kafka_upstreams() {
        let b = parse(
            r#"{"bridge":[{"name":"dc","upstream":"kafka://k1:9092,[::1],k3",
                "route":[{"topic":"sensors","partitioning":"key","compression":"gzip"}]}]}"#,
        );
        b.validate().unwrap();
        assert_eq!(b.kind(), UpstreamKind::Kafka);
        assert_eq!(
            b.kafka_url().unwrap(),
            KafkaUrl {
                tls: false,
                brokers: vec!["k1:9092".into(), "[::1]:9092".into(), "k3:9092".into()]
            }
        );
        assert_eq!(b.upstream_topic(&b.routes[0]), DEFAULT_KAFKA_TOPIC);
        assert_eq!(b.routes[0].partitioning, Partitioning::Key);
        assert_eq!(b.routes[0].compression, Compression::Gzip);
        assert_eq!(b.requests_in_flight, DEFAULT_REQUESTS_IN_FLIGHT);
        let mut tls = b.clone();
        tls.upstream = "kafkas://k1".into();
        assert_eq!(tls.kafka_url().unwrap().brokers, vec!["k1:9093".to_owned()]);
        // MQTT routes keep their own default template.
        let m =
            parse(r#"{"bridge":[{"name":"c","upstream":"mqtt://h:1","route":[{"topic":"t"}]}]}"#);
        assert_eq!(m.upstream_topic(&m.routes[0]), DEFAULT_UPSTREAM_TOPIC);
    }

    #[test]
    fn kafka_settings_that_cannot_work() {
        let base = r#"{"bridge":[{"name":"dc","upstream":"kafka://k:9092","route":[{"topic":"t"ROUTE}]BRIDGE}]}"#;
        let cases = [
            (",\"upstream_topic\":\"{key}\"", "", "upstream_topic"),
            (
                ",\"upstream_topic\":\"a-{mqtt_topic}\"",
                "",
                "upstream_topic",
            ),
            (
                "",
                ",\"sasl_mechanism\":\"GSSAPI\",\"username\":\"u\"",
                "sasl_mechanism",
            ),
            ("", ",\"sasl_mechanism\":\"PLAIN\"", "username"),
            (
                "",
                ",\"username\":\"u\",\"password\":\"p\"",
                "sasl_mechanism",
            ),
            ("", ",\"requests_in_flight\":0", "requests_in_flight"),
            ("", ",\"upstream\":\"kafka://\"", "upstream"),
            ("", ",\"upstream\":\"kafka://a:1,:2\"", "upstream"),
        ];
        for (route, bridge, key) in cases {
            let text = base.replace("ROUTE", route).replace("BRIDGE", bridge);
            // A key given twice does not parse: the `upstream` cases replace the URL.
            let text = if bridge.contains("upstream") {
                base.replace("ROUTE", route)
                    .replace("\"upstream\":\"kafka://k:9092\"", &bridge[1..])
                    .replace("BRIDGE", "")
            } else {
                text
            };
            let e = parse(&text).validate().unwrap_err();
            assert_eq!(e.key.split(' ').next().unwrap(), key, "{text}: {e}");
        }
        let ok = base.replace("ROUTE", "").replace(
            "BRIDGE",
            ",\"sasl_mechanism\":\"scram-sha-512\",\"username\":\"u\",\"password\":\"p\"",
        );
        let b = parse(&ok);
        b.validate().unwrap();
        assert_eq!(
            b.sasl(),
            Some((SaslMechanism::ScramSha512, "u".to_owned(), "p".to_owned()))
        );
        // Kafka-only route keys on an MQTT route.
        let m = parse(
            r#"{"bridge":[{"name":"c","upstream":"mqtt://h:1","route":[{"topic":"t","compression":"gzip"}]}]}"#,
        );
        assert!(m.validate().unwrap_err().key.starts_with("partitioning"));
        let m = parse(
            r#"{"bridge":[{"name":"c","upstream":"mqtt://h:1","sasl_mechanism":"PLAIN","route":[{"topic":"t"}]}]}"#,
        );
        assert_eq!(m.validate().unwrap_err().key, "sasl_mechanism");
    }

    #[test]
    fn start_positions() {
        let mut r =
            parse(r#"{"bridge":[{"name":"c","upstream":"mqtt://h:1","route":[{"topic":"t"}]}]}"#)
                .routes
                .remove(0);
        r.start = "latest".into();
        assert_eq!(r.start_at().unwrap(), StartAt::Latest);
        r.start = "1700000000000".into();
        assert_eq!(r.start_at().unwrap(), StartAt::Time(1_700_000_000_000));
        r.start = "2023-11-14T22:13:20Z".into();
        assert_eq!(r.start_at().unwrap(), StartAt::Time(1_700_000_000_000));
        r.start = "yesterday".into();
        assert!(r.start_at().is_err());
    }

    #[test]
    fn rejects_what_cannot_work() {
        let base = r#"{"bridge":[{"name":"c","upstream":"mqtt://h:1","route":[{"topic":"t"ROUTE}]BRIDGE}]}"#;
        let cases = [
            (",\"qos\":2", "", "qos"),
            (",\"max_inflight\":0", "", "max_inflight"),
            (",\"upstream_topic\":\"a/{nope}\"", "", "upstream_topic"),
            (",\"start\":\"soon\"", "", "start"),
            ("", ",\"mqtt_version\":\"4\"", "mqtt_version"),
            ("", ",\"password\":\"x\"", "password"),
            ("", ",\"ca_file\":\"/ca.pem\"", "ca_file"),
            ("", ",\"reconnect_min_ms\":0", "reconnect_min_ms"),
        ];
        for (route, bridge, key) in cases {
            let text = base.replace("ROUTE", route).replace("BRIDGE", bridge);
            let e = parse(&text).validate().unwrap_err();
            assert_eq!(e.key.split(' ').next().unwrap(), key, "{text}: {e}");
        }
        let dup = parse(
            r#"{"bridge":[{"name":"c","upstream":"mqtt://h:1","route":[{"topic":"t"},{"topic":"t"}]}]}"#,
        );
        assert!(dup.validate().unwrap_err().to_string().contains("distinct"));
    }
}
