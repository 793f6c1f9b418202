//! `outpost bench mqtt` and `outpost bench mqtt-idle`: an MQTT load generator for any MQTT
//! 3.1.1 or 5.0 broker (Outpost, Mosquitto, ...), to compare them on one machine.
//!
//! `mqtt` connects `--subscribers` clients that subscribe to `PREFIX/#`, then `--publishers`
//! clients that publish to `PREFIX/<i>`: each keeps up to `--inflight` QoS 1/2 PUBLISH packets
//! unacknowledged (at QoS 0, writes them `--inflight` at a time), until `--messages` are sent
//! or `--duration` has passed. It reports the publish rate (acknowledged messages at QoS > 0),
//! the ack latency (PUBLISH written to PUBACK/PUBCOMP read) and, for subscribers, the delivery
//! rate, the end-to-end latency and the messages received against those expected.
//!
//! `mqtt-idle` opens `--connections` MQTT connections, holds them idle for `--hold` seconds
//! and closes them: for measuring a broker's memory per connection.
//!
//! The client is our own, on [`crate::mqtt::codec`]: the in-flight window and every timestamp
//! are exactly what this module does, with no client library queue in between. It does not
//! reconnect, retry, resend or keep persistent sessions; any error ends the run. Every wait
//! is bounded ([`STALL_TIMEOUT`], [`DRAIN_IDLE`], `--timeout`).
//!
//! # Payload
//!
//! When the payload is at least [`STAMP_LEN`] bytes it starts with a [`Stamp`], all
//! little-endian: the send time in nanoseconds since the run's start (`u64`, bytes 0–7), the
//! publisher's index (`u32`, bytes 8–11) and its message sequence number (`u64`, bytes
//! 12–19); the rest is filler. Subscribers run in the same process, so they read the same
//! clock.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::CliError;
use crate::client::Credentials;
use crate::mqtt::codec::{self, DecodeError, EncodeError};
use crate::mqtt::packet::{
    reason, Connect, Disconnect, Packet, Properties, Protocol, PubResponse, Publish, QoS,
    Subscribe, SubscribeFilters, SubscriptionOptions,
};
use crate::transport::Transport;
pub use outpost_cli_args::bench::{MqttBench, MqttIdleBench, TlsArgs, DEFAULT_MQTT_ADDR};

/// Bytes of the [`Stamp`] at the start of a payload.
pub const STAMP_LEN: usize = 20;
/// Largest `--payload`.
const MAX_PAYLOAD: usize = 16 << 20;
/// Largest packet accepted from the broker (a delivered PUBLISH of the largest payload).
const MAX_INBOUND_PACKET: u32 = (MAX_PAYLOAD as u32) + (64 << 10);
/// Keep-alive asked for in CONNECT, seconds: longer than any run (`--timeout` is capped below
/// it), so the client never has to send PINGREQ and the broker never times it out.
const KEEP_ALIVE_SECS: u16 = u16::MAX;
/// Largest `--timeout`, seconds (well under 1.5 × [`KEEP_ALIVE_SECS`]).
const MAX_TIMEOUT_SECS: u64 = 12 * 3600;
/// Messages per publisher when neither `--messages` nor `--duration` is given.
const DEFAULT_MESSAGES: u64 = 100_000;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 << 10;
/// TCP connect plus CONNECT/CONNACK, and SUBSCRIBE/SUBACK, must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A publisher that waits this long for any acknowledgement fails: the broker is stuck.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// After the publishers are done, a subscriber that has not received everything stops once
/// nothing has arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(3);
/// How often a subscriber waiting for data looks at the publishers' progress.
const TICK: Duration = Duration::from_millis(50);
/// Packet identifier of the one SUBSCRIBE a subscriber sends.
const SUBSCRIBE_ID: u16 = 1;
/// Receive Maximum a v5 subscriber announces: the broker's own window is the limit.
const SUBSCRIBER_RECEIVE_MAXIMUM: u16 = u16::MAX;
/// Messages per subscriber that may arrive with a sequence number this far beyond the
/// highest seen and still be tracked (bounds the tracker's memory against foreign messages).
const MAX_SEQ_JUMP: u64 = 1 << 24;

/// The connector and server name of `--cafile` and friends, or `None` for plain TCP.
fn tls_connector(args: &TlsArgs, addr: &str) -> Result<Option<Tls>, CliError> {
    let Some(ca_file) = &args.cafile else {
        return Ok(None);
    };
    let settings = crate::client::ClientTls {
        ca_file: ca_file.clone(),
        cert_file: args.cert.clone(),
        key_file: args.key.clone(),
        server_name: args.server_name.clone(),
    };
    let (connector, name) = settings.connector(addr)?;
    Ok(Some(Tls { connector, name }))
}

/// What a refusal code of CONNACK means when the bench's own options can fix it (3.1.1 return
/// codes 4 and 5, v5 reason codes 0x86 and 0x87; the two ranges do not overlap).
fn refusal_hint(code: u8) -> &'static str {
    match code {
        0x04 | 0x86 => " (bad user name or password: see --user and --password)",
        0x05 | 0x87 => " (not authorized: the broker may need --user and --password)",
        _ => "",
    }
}

/// How every connection of a run is made: TLS or not, and the login (the global `--user` and
/// `--password`) its CONNECT carries.
#[derive(Clone)]
struct Dial {
    tls: Option<Tls>,
    login: Option<Credentials>,
}

impl Dial {
    fn new(tls: &TlsArgs, login: Option<&Credentials>, addr: &str) -> Result<Dial, CliError> {
        Ok(Dial {
            tls: tls_connector(tls, addr)?,
            login: login.cloned(),
        })
    }
}

/// What a TLS link needs: shared by every connection of a run.
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

/// Why an MQTT bench failed.
#[derive(Debug, thiserror::Error)]
pub enum MqttBenchError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}; fix: start the broker or pass --addr HOST:PORT")]
    Connect {
        /// The address tried.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The broker answered CONNECT with a failure code.
    #[error("the broker refused CONNECT with code {code:#04x}{}", refusal_hint(*.code))]
    Refused {
        /// The CONNACK return code (v3) or reason code (v5).
        code: u8,
    },
    /// The broker refused the subscription.
    #[error("the broker refused SUBSCRIBE with code {code:#04x}")]
    SubscribeRefused {
        /// The SUBACK reason code.
        code: u8,
    },
    /// The broker sent DISCONNECT.
    #[error("the broker sent DISCONNECT with reason {reason:#04x}")]
    Disconnected {
        /// The DISCONNECT reason code.
        reason: u8,
    },
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
    /// No acknowledgement arrived in time.
    #[error("no acknowledgement for {} s with {waiting} publishes unacknowledged", STALL_TIMEOUT.as_secs())]
    Stalled {
        /// Publishes sent and not acknowledged.
        waiting: usize,
    },
    /// A step did not finish in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The broker sent bytes that are not a valid packet.
    #[error("invalid packet from the broker: {0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The broker sent a packet that makes no sense here.
    #[error("unexpected packet from the broker: {0}")]
    Unexpected(&'static str),
    /// The broker's Maximum Packet Size is below the packets of this run.
    #[error(
        "the broker's Maximum Packet Size ({max} bytes) is below a PUBLISH of --payload bytes"
    )]
    PacketTooLarge {
        /// The broker's Maximum Packet Size.
        max: u32,
    },
    /// Socket I/O failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// One client of the run failed.
    #[error("{role} {index}: {source}")]
    Client {
        /// "publisher" or "subscriber".
        role: &'static str,
        /// Its index.
        index: u32,
        /// What went wrong.
        #[source]
        source: Box<MqttBenchError>,
    },
}

type BenchResult<T> = Result<T, MqttBenchError>;

// ---------------------------------------------------------------------------------------
// Plan: validated arguments
// ---------------------------------------------------------------------------------------

/// When publishers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopRule {
    /// After this many messages each.
    Messages(u64),
    /// After this long.
    Duration(Duration),
}

/// A validated `bench mqtt` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    addr: String,
    publishers: u32,
    subscribers: u32,
    qos: QoS,
    payload: usize,
    window: u16,
    stop: StopRule,
    topic: String,
    protocol: Protocol,
    timeout: Duration,
}

impl Plan {
    fn from_args(b: &MqttBench) -> Result<Plan, CliError> {
        let qos = QoS::from_u8(b.qos).ok_or(CliError::Usage("--qos must be 0, 1 or 2"))?;
        let window = u16::try_from(b.inflight)
            .ok()
            .filter(|w| *w > 0)
            .ok_or(CliError::Usage("--inflight must be 1..=65535"))?;
        if b.publishers == 0 {
            return Err(CliError::Usage("--publishers must be positive"));
        }
        if b.payload > MAX_PAYLOAD || (b.subscribers > 0 && b.payload < STAMP_LEN) {
            return Err(CliError::Usage(
                "--payload must be at most 16 MiB, and at least 20 bytes with --subscribers",
            ));
        }
        check_topic_prefix(&b.topic)?;
        let stop = stop_rule(b)?;
        Ok(Plan {
            addr: parse_addr(&b.addr)?,
            publishers: b.publishers,
            subscribers: b.subscribers,
            qos,
            payload: b.payload,
            window,
            stop,
            topic: b.topic.clone(),
            protocol: parse_protocol(b.protocol)?,
            timeout: parse_timeout(b.timeout, stop)?,
        })
    }

    /// Messages all publishers send in total, when known in advance.
    fn planned(&self) -> Option<u64> {
        match self.stop {
            StopRule::Messages(n) => Some(n.saturating_mul(u64::from(self.publishers))),
            StopRule::Duration(_) => None,
        }
    }
}

fn stop_rule(b: &MqttBench) -> Result<StopRule, CliError> {
    match (b.messages, b.duration) {
        (Some(0), _) | (_, Some(0)) => Err(CliError::Usage(
            "--messages and --duration must be positive",
        )),
        (_, Some(secs)) => Ok(StopRule::Duration(Duration::from_secs(secs))),
        (n, None) => Ok(StopRule::Messages(n.unwrap_or(DEFAULT_MESSAGES))),
    }
}

fn parse_timeout(secs: u64, stop: StopRule) -> Result<Duration, CliError> {
    let timeout = Duration::from_secs(secs);
    let too_short = matches!(stop, StopRule::Duration(d) if d >= timeout);
    if secs == 0 || secs > MAX_TIMEOUT_SECS || too_short {
        return Err(CliError::Usage(
            "--timeout must be positive, at most 43200 s and longer than --duration",
        ));
    }
    Ok(timeout)
}

fn check_topic_prefix(prefix: &str) -> Result<(), CliError> {
    if prefix.is_empty() || prefix.contains(['+', '#', '\0']) {
        return Err(CliError::Usage(
            "--topic must be a non-empty topic name without wildcards",
        ));
    }
    Ok(())
}

/// `HOST:PORT`, with an optional `mqtt://` or `tcp://` prefix and trailing `/`.
fn parse_addr(s: &str) -> Result<String, CliError> {
    let bare = s
        .strip_prefix("mqtt://")
        .or_else(|| s.strip_prefix("tcp://"))
        .unwrap_or(s)
        .trim_end_matches('/');
    let port_ok = bare
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(CliError::Usage(
            "--addr must be HOST:PORT (optionally mqtt://HOST:PORT)",
        ));
    }
    Ok(bare.to_owned())
}

fn parse_protocol(level: u8) -> Result<Protocol, CliError> {
    match level {
        4 => Ok(Protocol::V311),
        5 => Ok(Protocol::V5),
        _ => Err(CliError::Usage("--protocol must be 4 (MQTT 3.1.1) or 5")),
    }
}

// ---------------------------------------------------------------------------------------
// Payload stamp and delivery tracking (pure)
// ---------------------------------------------------------------------------------------

/// What a publisher writes at the start of each payload (see the module docs for the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, nanoseconds since the run's shared start.
    pub sent_ns: u64,
    /// The publisher's index.
    pub publisher: u32,
    /// The publisher's message number, from 0.
    pub seq: u64,
}

impl Stamp {
    /// Writes the stamp over the first [`STAMP_LEN`] bytes of `payload`; returns false (and
    /// writes nothing) when `payload` is shorter.
    pub fn encode(&self, payload: &mut [u8]) -> bool {
        let Some(head) = payload.first_chunk_mut::<STAMP_LEN>() else {
            return false;
        };
        head[0..8].copy_from_slice(&self.sent_ns.to_le_bytes());
        head[8..12].copy_from_slice(&self.publisher.to_le_bytes());
        head[12..20].copy_from_slice(&self.seq.to_le_bytes());
        true
    }

    /// Reads the stamp at the start of `payload`, or `None` when it is shorter.
    pub fn decode(payload: &[u8]) -> Option<Stamp> {
        let head = payload.first_chunk::<STAMP_LEN>()?;
        let (ns, rest) = head.split_first_chunk::<8>()?;
        let (publisher, seq) = rest.split_first_chunk::<4>()?;
        Some(Stamp {
            sent_ns: u64::from_le_bytes(*ns),
            publisher: u32::from_le_bytes(*publisher),
            seq: u64::from_le_bytes(seq.first_chunk::<8>().copied()?),
        })
    }
}

/// Which messages one subscriber has seen: a bit per (publisher, sequence number).
#[derive(Debug, Default)]
struct Seen {
    bits: Vec<Vec<u64>>,
    highest: Vec<Option<u64>>,
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Messages without a stamp of this run (short, unknown publisher, wild sequence).
    foreign: u64,
}

impl Seen {
    fn new(publishers: u32) -> Seen {
        let n = publishers as usize;
        Seen {
            bits: vec![Vec::new(); n],
            highest: vec![None; n],
            ..Seen::default()
        }
    }

    fn record(&mut self, stamp: Option<Stamp>) {
        let Some(s) = stamp.filter(|s| self.trackable(s)) else {
            self.foreign += 1;
            return;
        };
        let p = s.publisher as usize;
        let (word, bit) = ((s.seq / 64) as usize, 1u64 << (s.seq % 64));
        let words = &mut self.bits[p];
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        if words[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        words[word] |= bit;
        self.unique += 1;
        match self.highest[p] {
            Some(h) if s.seq < h => self.out_of_order += 1,
            _ => self.highest[p] = Some(s.seq),
        }
    }

    fn trackable(&self, s: &Stamp) -> bool {
        let Some(highest) = self.highest.get(s.publisher as usize) else {
            return false;
        };
        s.seq <= highest.unwrap_or(0).saturating_add(MAX_SEQ_JUMP)
    }
}

/// Packet identifiers of unacknowledged publishes, with their send times.
struct InFlight {
    sent_at: Vec<Option<Instant>>,
    next: u16,
    len: usize,
}

impl InFlight {
    fn new() -> InFlight {
        InFlight {
            sent_at: vec![None; usize::from(u16::MAX) + 1],
            next: 1,
            len: 0,
        }
    }

    /// Takes a free packet identifier (never 0). The caller keeps `len` under 65,535, so one
    /// is free.
    fn insert(&mut self, at: Instant) -> u16 {
        while self.next == 0 || self.sent_at[usize::from(self.next)].is_some() {
            self.next = self.next.wrapping_add(1);
        }
        let id = self.next;
        self.sent_at[usize::from(id)] = Some(at);
        self.next = id.wrapping_add(1);
        self.len += 1;
        id
    }

    /// Frees `id`, returning when it was sent, or `None` if it was not in flight.
    fn remove(&mut self, id: u16) -> Option<Instant> {
        let at = self.sent_at[usize::from(id)].take()?;
        self.len -= 1;
        Some(at)
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits: fixed bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn record_since(hist: &mut Histogram<u64>, elapsed: Duration) {
    // Saturates at the upper bound instead of failing.
    hist.saturating_record((elapsed.as_micros() as u64).max(1));
}

// ---------------------------------------------------------------------------------------
// Link: one MQTT connection
// ---------------------------------------------------------------------------------------

/// What the broker granted in CONNACK.
#[derive(Debug, Clone, Copy)]
struct Granted {
    /// v5 Receive Maximum (65,535 when absent, and on v3).
    receive_maximum: u16,
    /// v5 Maximum Packet Size.
    maximum_packet_size: Option<u32>,
}

/// A connected client: a socket, a read buffer and a write buffer.
struct Link {
    stream: Transport,
    protocol: Protocol,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl Link {
    /// Connects, sends CONNECT (clean session) and waits for a successful CONNACK.
    async fn open(
        addr: &str,
        client_id: &str,
        protocol: Protocol,
        receive_maximum: Option<u16>,
        dial: &Dial,
    ) -> BenchResult<(Link, Granted)> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                let addr = addr.to_owned();
                return Err(MqttBenchError::Connect { addr, source });
            }
            Err(_) => return Err(MqttBenchError::Timeout("the TCP connection")),
        };
        // Small packets must not wait for Nagle (FIELD-NOTES.md, Mosquitto section).
        stream.set_nodelay(true)?;
        let stream = match &dial.tls {
            None => Transport::Tcp(stream),
            Some(tls) => {
                let handshake = tls.connector.connect(tls.name.clone(), stream);
                match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                    Ok(Ok(s)) => Transport::Tls(Box::new(s.into())),
                    Ok(Err(source)) => {
                        let addr = addr.to_owned();
                        return Err(MqttBenchError::Connect { addr, source });
                    }
                    Err(_) => return Err(MqttBenchError::Timeout("the TLS handshake")),
                }
            }
        };
        let mut link = Link {
            stream,
            protocol,
            rbuf: Vec::with_capacity(READ_CHUNK),
            wbuf: Vec::new(),
        };
        let login = dial.login.as_ref();
        link.queue(&connect_packet(client_id, protocol, receive_maximum, login))?;
        link.flush().await?;
        let granted = link.connack().await?;
        Ok((link, granted))
    }

    async fn connack(&mut self) -> BenchResult<Granted> {
        let len = self.frame(CONNECT_TIMEOUT, "CONNACK").await?;
        let granted = match codec::decode(&self.rbuf[..len], self.protocol)? {
            Packet::ConnAck(a) if a.code == reason::SUCCESS => Granted {
                receive_maximum: a.properties.receive_maximum.unwrap_or(u16::MAX),
                maximum_packet_size: a.properties.maximum_packet_size,
            },
            Packet::ConnAck(a) => return Err(MqttBenchError::Refused { code: a.code }),
            _ => {
                return Err(MqttBenchError::Unexpected(
                    "the first packet is not CONNACK",
                ))
            }
        };
        self.rbuf.drain(..len);
        Ok(granted)
    }

    /// Subscribes to `filter` and waits for a successful SUBACK.
    async fn subscribe(&mut self, filter: &str, qos: QoS) -> BenchResult<()> {
        let mut entries = Vec::new();
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        codec::encode_subscribe_filters([(filter, options)], &mut entries)?;
        self.queue(&Packet::Subscribe(Subscribe {
            packet_id: SUBSCRIBE_ID,
            properties: Properties::default(),
            filters: SubscribeFilters { payload: &entries },
        }))?;
        self.flush().await?;
        let len = self.frame(CONNECT_TIMEOUT, "SUBACK").await?;
        match codec::decode(&self.rbuf[..len], self.protocol)? {
            Packet::SubAck(a) => match a.reasons.first() {
                Some(&code) if code < reason::UNSPECIFIED_ERROR => {}
                Some(&code) => return Err(MqttBenchError::SubscribeRefused { code }),
                None => return Err(MqttBenchError::Unexpected("SUBACK without a reason code")),
            },
            _ => return Err(MqttBenchError::Unexpected("a packet other than SUBACK")),
        }
        self.rbuf.drain(..len);
        Ok(())
    }

    /// Appends `packet` to the write buffer.
    fn queue(&mut self, packet: &Packet<'_>) -> BenchResult<()> {
        Ok(codec::encode(packet, self.protocol, &mut self.wbuf)?)
    }

    /// Writes the write buffer out.
    async fn flush(&mut self) -> BenchResult<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            // TLS holds records until flushed; a no-op on TCP.
            self.stream.flush().await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads more bytes: `Ok(false)` when nothing arrived within `wait`.
    async fn read_some(&mut self, wait: Duration) -> BenchResult<bool> {
        self.rbuf.reserve(READ_CHUNK);
        // `read_buf` is cancel-safe: on timeout nothing was read.
        match tokio::time::timeout(wait, self.stream.read_buf(&mut self.rbuf)).await {
            Err(_) => Ok(false),
            Ok(Ok(0)) => Err(MqttBenchError::Closed),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// Reads until a whole packet is at the start of the read buffer; returns its length.
    async fn frame(&mut self, wait: Duration, what: &'static str) -> BenchResult<usize> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(len) = codec::frame_len(&self.rbuf, MAX_INBOUND_PACKET)? {
                return Ok(len);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.read_some(left).await? {
                return Err(MqttBenchError::Timeout(what));
            }
        }
    }

    /// Sends DISCONNECT and closes, ignoring errors: the run's results are already in.
    async fn close(mut self) {
        if self
            .queue(&Packet::Disconnect(Disconnect::default()))
            .is_ok()
        {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.flush()).await;
        }
        let _ = self.stream.shutdown().await;
    }
}

fn connect_packet<'a>(
    client_id: &'a str,
    protocol: Protocol,
    receive_maximum: Option<u16>,
    login: Option<&'a Credentials>,
) -> Packet<'a> {
    let properties = Properties {
        receive_maximum: receive_maximum.filter(|_| protocol.is_v5()),
        ..Properties::default()
    };
    Packet::Connect(Connect {
        protocol,
        clean_start: true,
        keep_alive: KEEP_ALIVE_SECS,
        properties,
        client_id,
        will: None,
        username: login.map(|l| l.user.as_str()),
        password: login.map(|l| l.password.as_bytes()),
    })
}

/// Decodes and hands over every whole packet in `rbuf`, then drops their bytes.
fn drain_packets(
    rbuf: &mut Vec<u8>,
    protocol: Protocol,
    mut each: impl FnMut(Packet<'_>) -> BenchResult<()>,
) -> BenchResult<()> {
    let mut at = 0;
    while let Some(len) = codec::frame_len(&rbuf[at..], MAX_INBOUND_PACKET)? {
        each(codec::decode(&rbuf[at..at + len], protocol)?)?;
        at += len;
    }
    rbuf.drain(..at);
    Ok(())
}

fn pub_response(packet_id: u16) -> PubResponse<'static> {
    PubResponse {
        packet_id,
        reason: reason::SUCCESS,
        properties: Properties::default(),
    }
}

fn client_id(role: &str, index: u32) -> String {
    format!("outpost-bench-{}-{role}{index}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// Publishers
// ---------------------------------------------------------------------------------------

/// When one publisher stops sending.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Count(u64),
    Until(Instant),
}

impl Stop {
    fn more(self, sent: u64) -> bool {
        match self {
            Stop::Count(n) => sent < n,
            Stop::Until(t) => Instant::now() < t,
        }
    }
}

/// What one publisher did.
struct PubTally {
    sent: u64,
    acked: u64,
    /// Acknowledged with a failure reason code (v5).
    rejected: u64,
    latencies: Histogram<u64>,
}

struct Publisher {
    index: u32,
    protocol: Protocol,
    topic: String,
    qos: QoS,
    window: usize,
    stop: Stop,
    epoch: Instant,
    payload: Vec<u8>,
    inflight: InFlight,
    tally: PubTally,
}

impl Publisher {
    async fn run(mut self, mut link: Link, bar: ProgressBar) -> BenchResult<PubTally> {
        loop {
            let queued = self.fill(&mut link)?;
            link.flush().await?;
            if self.qos == QoS::AtMostOnce {
                bar.inc(queued);
                if queued == 0 {
                    break;
                }
                continue;
            }
            if self.inflight.len == 0 {
                break;
            }
            if !link.read_some(STALL_TIMEOUT).await? {
                let waiting = self.inflight.len;
                return Err(MqttBenchError::Stalled { waiting });
            }
            let before = self.tally.acked + self.tally.rejected;
            drain_packets(&mut link.rbuf, link.protocol, |p| {
                self.on_packet(p, &mut link.wbuf)
            })?;
            bar.inc(self.tally.acked + self.tally.rejected - before);
        }
        link.close().await;
        Ok(self.tally)
    }

    /// Queues publishes while the window has room; returns how many.
    fn fill(&mut self, link: &mut Link) -> BenchResult<u64> {
        let mut queued = 0;
        while self.inflight.len < self.window && self.stop.more(self.tally.sent) {
            let now = Instant::now();
            let stamp = Stamp {
                sent_ns: now.duration_since(self.epoch).as_nanos() as u64,
                publisher: self.index,
                seq: self.tally.sent,
            };
            stamp.encode(&mut self.payload);
            let packet_id = match self.qos {
                QoS::AtMostOnce => 0,
                _ => self.inflight.insert(now),
            };
            link.queue(&Packet::Publish(Publish {
                dup: false,
                qos: self.qos,
                retain: false,
                topic: &self.topic,
                packet_id,
                properties: Properties::default(),
                subscription_ids: &[],
                payload: &self.payload,
            }))?;
            self.tally.sent += 1;
            queued += 1;
            // At QoS 0 nothing is in flight: the window is the batch size.
            if self.qos == QoS::AtMostOnce && queued >= self.window as u64 {
                break;
            }
        }
        Ok(queued)
    }

    fn on_packet(&mut self, packet: Packet<'_>, wbuf: &mut Vec<u8>) -> BenchResult<()> {
        match (packet, self.qos) {
            (Packet::PubAck(r), QoS::AtLeastOnce) | (Packet::PubComp(r), QoS::ExactlyOnce) => {
                self.complete(r)
            }
            (Packet::PubRec(r), QoS::ExactlyOnce) if r.reason >= reason::UNSPECIFIED_ERROR => {
                self.complete(r)
            }
            (Packet::PubRec(r), QoS::ExactlyOnce) => {
                let rel = Packet::PubRel(pub_response(r.packet_id));
                Ok(codec::encode(&rel, self.protocol, wbuf)?)
            }
            (Packet::Disconnect(d), _) => Err(MqttBenchError::Disconnected { reason: d.reason }),
            _ => Err(MqttBenchError::Unexpected(
                "a packet other than the acknowledgement of the publisher's QoS",
            )),
        }
    }

    fn complete(&mut self, r: PubResponse<'_>) -> BenchResult<()> {
        let at = self
            .inflight
            .remove(r.packet_id)
            .ok_or(MqttBenchError::Unexpected(
                "an acknowledgement for a packet identifier not in flight",
            ))?;
        record_since(&mut self.tally.latencies, at.elapsed());
        if r.reason >= reason::UNSPECIFIED_ERROR {
            self.tally.rejected += 1;
        } else {
            self.tally.acked += 1;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Subscribers
// ---------------------------------------------------------------------------------------

/// What one subscriber (or all of them, merged) received.
struct SubTally {
    /// PUBLISH packets received, duplicates included.
    received: u64,
    seen: Seen,
    latencies: Histogram<u64>,
    last_at: Option<Instant>,
}

impl SubTally {
    fn new(publishers: u32) -> SubTally {
        SubTally {
            received: 0,
            seen: Seen::new(publishers),
            latencies: new_histogram(),
            last_at: None,
        }
    }

    fn merge(&mut self, other: SubTally) {
        self.received += other.received;
        self.seen.unique += other.seen.unique;
        self.seen.duplicates += other.seen.duplicates;
        self.seen.out_of_order += other.seen.out_of_order;
        self.seen.foreign += other.seen.foreign;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latencies.add(&other.latencies);
        self.last_at = self.last_at.max(other.last_at);
    }
}

struct Subscriber {
    protocol: Protocol,
    epoch: Instant,
    tally: SubTally,
}

impl Subscriber {
    /// Receives until the publishers are done (`done` holds the messages to expect) and then
    /// everything expected has arrived or nothing has for [`DRAIN_IDLE`].
    async fn run(
        mut self,
        mut link: Link,
        done: watch::Receiver<Option<u64>>,
    ) -> BenchResult<SubTally> {
        let mut quiet_since = Instant::now();
        let mut done_at = None;
        loop {
            if let Some(expected) = *done.borrow() {
                let since = *done_at.get_or_insert_with(Instant::now);
                let idle = Instant::now().duration_since(quiet_since.max(since));
                if self.tally.seen.unique >= expected || idle >= DRAIN_IDLE {
                    break;
                }
            }
            if !link.read_some(TICK).await? {
                continue;
            }
            quiet_since = Instant::now();
            drain_packets(&mut link.rbuf, link.protocol, |p| {
                self.on_packet(p, &mut link.wbuf)
            })?;
            link.flush().await?;
        }
        link.close().await;
        Ok(self.tally)
    }

    fn on_packet(&mut self, packet: Packet<'_>, wbuf: &mut Vec<u8>) -> BenchResult<()> {
        let reply = match packet {
            Packet::Publish(p) => {
                self.on_publish(&p);
                match p.qos {
                    QoS::AtMostOnce => return Ok(()),
                    QoS::AtLeastOnce => Packet::PubAck(pub_response(p.packet_id)),
                    QoS::ExactlyOnce => Packet::PubRec(pub_response(p.packet_id)),
                }
            }
            Packet::PubRel(r) => Packet::PubComp(pub_response(r.packet_id)),
            Packet::Disconnect(d) => return Err(MqttBenchError::Disconnected { reason: d.reason }),
            _ => {
                return Err(MqttBenchError::Unexpected(
                    "a packet a subscriber does not expect",
                ))
            }
        };
        Ok(codec::encode(&reply, self.protocol, wbuf)?)
    }

    fn on_publish(&mut self, p: &Publish<'_>) {
        let now = Instant::now();
        self.tally.received += 1;
        self.tally.last_at = Some(now);
        let stamp = Stamp::decode(p.payload);
        self.tally.seen.record(stamp);
        let now_ns = now.duration_since(self.epoch).as_nanos() as u64;
        if let Some(sent_ns) = stamp.map(|s| s.sent_ns).filter(|&t| t <= now_ns) {
            record_since(
                &mut self.tally.latencies,
                Duration::from_nanos(now_ns - sent_ns),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// bench mqtt
// ---------------------------------------------------------------------------------------

/// The results of a run.
struct Outcome {
    publish_time: Duration,
    pubs: PubTally,
    /// Messages each subscriber should have received.
    expected: u64,
    subs: SubTally,
    started: Instant,
}

/// Runs `bench mqtt`.
pub async fn run(b: MqttBench, login: Option<&Credentials>) -> Result<(), CliError> {
    let plan = Plan::from_args(&b)?;
    let dial = Dial::new(&b.tls, login, &plan.addr)?;
    let outcome = tokio::time::timeout(plan.timeout, execute(&plan, &dial, b.quiet || b.json))
        .await
        .map_err(|_| MqttBenchError::Timeout("the run to finish (--timeout)"))??;
    report(&plan, &outcome, b.json);
    Ok(())
}

async fn execute(plan: &Plan, dial: &Dial, hide_bar: bool) -> BenchResult<Outcome> {
    let epoch = Instant::now();
    let mut subscribers = Vec::new();
    for i in 0..plan.subscribers {
        let mut link = client("subscriber", i, open_subscriber(plan, dial, i).await)?;
        let filter = format!("{}/#", plan.topic);
        client("subscriber", i, link.subscribe(&filter, plan.qos).await)?;
        subscribers.push(link);
    }
    let mut publishers = Vec::new();
    for i in 0..plan.publishers {
        let id = client_id("pub", i);
        let opened = Link::open(&plan.addr, &id, plan.protocol, None, dial).await;
        let (link, granted) = client("publisher", i, opened)?;
        let p = client("publisher", i, publisher(plan, i, epoch, granted))?;
        publishers.push((p, link));
    }
    let bar = progress(plan, hide_bar);
    let (done_tx, done_rx) = watch::channel(None);
    let started = Instant::now();
    let mut subs = JoinSet::new();
    for (i, link) in (0u32..).zip(subscribers) {
        let sub = Subscriber {
            protocol: plan.protocol,
            epoch,
            tally: SubTally::new(plan.publishers),
        };
        let done = done_rx.clone();
        subs.spawn(async move { client("subscriber", i, sub.run(link, done).await) });
    }
    let mut pubs = JoinSet::new();
    for (i, (mut p, link)) in (0u32..).zip(publishers) {
        p.stop = match plan.stop {
            StopRule::Messages(n) => Stop::Count(n),
            StopRule::Duration(d) => Stop::Until(started + d),
        };
        let bar = bar.clone();
        pubs.spawn(async move { client("publisher", i, p.run(link, bar).await) });
    }
    let pub_tally = join_publishers(pubs).await?;
    let publish_time = started.elapsed();
    bar.finish_and_clear();
    let expected = match plan.qos {
        QoS::AtMostOnce => pub_tally.sent,
        _ => pub_tally.acked,
    };
    // Subscribers hold the receiver until they return, so sending cannot fail.
    let _ = done_tx.send(Some(expected));
    let mut sub_tally = SubTally::new(plan.publishers);
    while let Some(joined) = subs.join_next().await {
        sub_tally.merge(joined.map_err(|_| MqttBenchError::Unexpected("a task panicked"))??);
    }
    Ok(Outcome {
        publish_time,
        pubs: pub_tally,
        expected,
        subs: sub_tally,
        started,
    })
}

async fn open_subscriber(plan: &Plan, dial: &Dial, i: u32) -> BenchResult<Link> {
    let id = client_id("sub", i);
    let receive_maximum = Some(SUBSCRIBER_RECEIVE_MAXIMUM);
    let (link, _) = Link::open(&plan.addr, &id, plan.protocol, receive_maximum, dial).await?;
    Ok(link)
}

/// Names the client in an error.
fn client<T>(role: &'static str, index: u32, r: BenchResult<T>) -> BenchResult<T> {
    r.map_err(|e| MqttBenchError::Client {
        role,
        index,
        source: Box::new(e),
    })
}

/// A publisher within what the broker granted (its stop rule is set when the clock starts).
fn publisher(plan: &Plan, index: u32, epoch: Instant, granted: Granted) -> BenchResult<Publisher> {
    let p = Publisher {
        index,
        protocol: plan.protocol,
        topic: format!("{}/{index}", plan.topic),
        qos: plan.qos,
        window: usize::from(plan.window.min(granted.receive_maximum)),
        stop: Stop::Count(0),
        epoch,
        payload: (0..plan.payload).map(|i| b'a' + (i % 26) as u8).collect(),
        inflight: InFlight::new(),
        tally: PubTally {
            sent: 0,
            acked: 0,
            rejected: 0,
            latencies: new_histogram(),
        },
    };
    let sample = Packet::Publish(Publish {
        dup: false,
        qos: plan.qos,
        retain: false,
        topic: &p.topic,
        packet_id: 1,
        properties: Properties::default(),
        subscription_ids: &[],
        payload: &p.payload,
    });
    let len = codec::encoded_len(&sample, plan.protocol)?;
    match granted.maximum_packet_size {
        Some(max) if len > max as usize => Err(MqttBenchError::PacketTooLarge { max }),
        _ => Ok(p),
    }
}

async fn join_publishers(mut pubs: JoinSet<BenchResult<PubTally>>) -> BenchResult<PubTally> {
    let mut total = PubTally {
        sent: 0,
        acked: 0,
        rejected: 0,
        latencies: new_histogram(),
    };
    while let Some(joined) = pubs.join_next().await {
        let t = joined.map_err(|_| MqttBenchError::Unexpected("a task panicked"))??;
        total.sent += t.sent;
        total.acked += t.acked;
        total.rejected += t.rejected;
        // Same bounds on both sides: adding cannot fail.
        let _ = total.latencies.add(&t.latencies);
    }
    Ok(total)
}

fn progress(plan: &Plan, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let (bar, template) = match plan.planned() {
        Some(total) => (
            ProgressBar::new(total),
            "{bar:40} {pos}/{len} messages {per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {pos} messages {per_sec} {elapsed}",
        ),
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The numbers of a run, as printed.
struct Figures {
    secs: f64,
    published: u64,
    per_sec: f64,
    mb_per_sec: f64,
    expected_total: u64,
    lost: u64,
    delivered_per_sec: f64,
}

impl Figures {
    fn of(plan: &Plan, o: &Outcome) -> Figures {
        let secs = o.publish_time.as_secs_f64().max(1e-9);
        let published = match plan.qos {
            QoS::AtMostOnce => o.pubs.sent,
            _ => o.pubs.acked,
        };
        let per_sec = published as f64 / secs;
        let expected_total = o.expected * u64::from(plan.subscribers);
        let delivery_secs = o.subs.last_at.map_or(1e-9, |t| {
            t.duration_since(o.started).as_secs_f64().max(1e-9)
        });
        Figures {
            secs,
            published,
            per_sec,
            mb_per_sec: per_sec * plan.payload as f64 / 1e6,
            expected_total,
            lost: expected_total.saturating_sub(o.subs.seen.unique),
            delivered_per_sec: o.subs.received as f64 / delivery_secs,
        }
    }
}

fn ms(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1000.0
}

fn report(plan: &Plan, o: &Outcome, json: bool) {
    let f = Figures::of(plan, o);
    if json {
        report_json(plan, o, &f);
        return;
    }
    let what = match plan.qos {
        QoS::AtMostOnce => "sent",
        _ => "acknowledged",
    };
    println!(
        "{} messages {what} (QoS {}, {} publishers, {} B) in {:.2} s: {:.0} msgs/s, {:.2} MB/s",
        f.published, plan.qos as u8, plan.publishers, plan.payload, f.secs, f.per_sec, f.mb_per_sec
    );
    if plan.qos != QoS::AtMostOnce {
        let l = &o.pubs.latencies;
        println!(
            "ack latency ({}): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; {} rejected",
            if plan.qos == QoS::AtLeastOnce {
                "PUBACK"
            } else {
                "PUBCOMP"
            },
            ms(l, 0.5),
            ms(l, 0.99),
            ms(l, 0.999),
            o.pubs.rejected
        );
    }
    if plan.subscribers > 0 {
        report_subscribers(plan, o, &f);
    }
}

fn report_subscribers(plan: &Plan, o: &Outcome, f: &Figures) {
    let s = &o.subs;
    println!(
        "{} subscriber(s): received {} of {} expected ({} unique): {:.0} msgs/s; lost {}, duplicates {}, out of order {}, foreign {}",
        plan.subscribers, s.received, f.expected_total, s.seen.unique, f.delivered_per_sec,
        f.lost, s.seen.duplicates, s.seen.out_of_order, s.seen.foreign
    );
    println!(
        "end-to-end latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        ms(&s.latencies, 0.5),
        ms(&s.latencies, 0.99),
        ms(&s.latencies, 0.999)
    );
}

fn report_json(plan: &Plan, o: &Outcome, f: &Figures) {
    let (p, s) = (&o.pubs.latencies, &o.subs.latencies);
    let obj = serde_json::json!({
        "qos": plan.qos as u8, "publishers": plan.publishers, "subscribers": plan.subscribers,
        "payload": plan.payload, "inflight": plan.window, "protocol": plan.protocol.level(),
        "sent": o.pubs.sent, "acked": o.pubs.acked, "rejected": o.pubs.rejected,
        "published": f.published, "seconds": f.secs,
        "msgs_per_sec": f.per_sec, "mb_per_sec": f.mb_per_sec,
        "ack_p50_ms": ms(p, 0.5), "ack_p99_ms": ms(p, 0.99), "ack_p999_ms": ms(p, 0.999),
        "expected": f.expected_total, "received": o.subs.received, "unique": o.subs.seen.unique,
        "lost": f.lost, "duplicates": o.subs.seen.duplicates,
        "out_of_order": o.subs.seen.out_of_order, "foreign": o.subs.seen.foreign,
        "delivered_per_sec": f.delivered_per_sec,
        "e2e_p50_ms": ms(s, 0.5), "e2e_p99_ms": ms(s, 0.99), "e2e_p999_ms": ms(s, 0.999),
    });
    println!("{obj}");
}

// ---------------------------------------------------------------------------------------
// bench mqtt-idle
// ---------------------------------------------------------------------------------------

/// Runs `bench mqtt-idle`. Prints `holding N MQTT connections for S s` once all are open
/// (scripts wait for that line to sample the broker's memory), then closes them.
pub async fn run_idle(b: MqttIdleBench, login: Option<&Credentials>) -> Result<(), CliError> {
    let addr = parse_addr(&b.addr)?;
    let protocol = parse_protocol(b.protocol)?;
    if b.connections == 0 || b.concurrency == 0 {
        return Err(CliError::Usage(
            "--connections and --concurrency must be positive",
        ));
    }
    let hold = Duration::from_secs(b.hold);
    let timeout = parse_timeout(b.timeout, StopRule::Duration(hold))?;
    let dial = Dial::new(&b.tls, login, &addr)?;
    tokio::time::timeout(timeout, idle(&addr, protocol, &b, dial))
        .await
        .map_err(|_| MqttBenchError::Timeout("the run to finish (--timeout)"))??;
    Ok(())
}

async fn idle(addr: &str, protocol: Protocol, b: &MqttIdleBench, dial: Dial) -> BenchResult<()> {
    let started = Instant::now();
    let (links, failed, first_error) =
        open_many(addr, protocol, b.connections, b.concurrency, dial).await;
    let secs = started.elapsed().as_secs_f64();
    let first = match (links.is_empty(), first_error) {
        (true, Some(e)) => return Err(e),
        (_, e) => e.map_or(String::new(), |e| format!(" (first error: {e})")),
    };
    println!(
        "connected {} of {} in {secs:.2} s; {failed} failed{first}",
        links.len(),
        b.connections
    );
    println!("holding {} MQTT connections for {} s", links.len(), b.hold);
    tokio::time::sleep(Duration::from_secs(b.hold)).await;
    let n = links.len();
    for link in links {
        link.close().await;
    }
    println!("closed {n} connections");
    Ok(())
}

/// Opens `n` connections, at most `concurrency` attempts at once. Returns the open ones, the
/// number that failed and the first failure.
async fn open_many(
    addr: &str,
    protocol: Protocol,
    n: u32,
    concurrency: u32,
    dial: Dial,
) -> (Vec<Link>, u64, Option<MqttBenchError>) {
    let mut set = JoinSet::new();
    let mut opened = Vec::with_capacity(n as usize);
    let (mut failed, mut first) = (0, None);
    let mut collect =
        |joined: Option<Result<BenchResult<Link>, tokio::task::JoinError>>| match joined {
            Some(Ok(Ok(link))) => opened.push(link),
            Some(Ok(Err(e))) => {
                failed += 1;
                first.get_or_insert(e);
            }
            Some(Err(_)) => failed += 1,
            None => {}
        };
    for i in 0..n {
        if set.len() >= concurrency as usize {
            collect(set.join_next().await);
        }
        let (addr, id, dial) = (addr.to_owned(), client_id("idle", i), dial.clone());
        set.spawn(async move {
            let opened = Link::open(&addr, &id, protocol, None, &dial).await;
            client("connection", i, opened.map(|(link, _)| link))
        });
    }
    while !set.is_empty() {
        collect(set.join_next().await);
    }
    (opened, failed, first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        bench: MqttBench,
    }

    fn plan(args: &[&str]) -> Result<Plan, CliError> {
        let argv = std::iter::once("bench").chain(args.iter().copied());
        Plan::from_args(&Cmd::try_parse_from(argv).expect("parses").bench)
    }

    #[test]
    fn stamp_round_trips_little_endian() {
        let stamp = Stamp {
            sent_ns: 0x0102_0304_0506_0708,
            publisher: 7,
            seq: 42,
        };
        let mut payload = vec![b'x'; 64];
        assert!(stamp.encode(&mut payload));
        assert_eq!(&payload[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&payload[8..12], &[7, 0, 0, 0]);
        assert_eq!(payload[12], 42);
        assert_eq!(payload[STAMP_LEN], b'x');
        assert_eq!(Stamp::decode(&payload), Some(stamp));
    }

    #[test]
    fn short_payload_has_no_stamp() {
        let mut short = [0u8; STAMP_LEN - 1];
        let stamp = Stamp {
            sent_ns: 1,
            publisher: 0,
            seq: 0,
        };
        assert!(!stamp.encode(&mut short));
        assert_eq!(short, [0u8; STAMP_LEN - 1]);
        assert_eq!(Stamp::decode(&short), None);
    }

    #[test]
    fn seen_counts_duplicates_gaps_and_foreign() {
        let s = |publisher, seq| {
            Some(Stamp {
                sent_ns: 0,
                publisher,
                seq,
            })
        };
        let mut seen = Seen::new(2);
        for stamp in [s(0, 0), s(0, 2), s(0, 1), s(0, 2), s(1, 0), s(5, 0), None] {
            seen.record(stamp);
        }
        seen.record(s(1, MAX_SEQ_JUMP + 1));
        assert_eq!(seen.unique, 4);
        assert_eq!(seen.duplicates, 1);
        assert_eq!(seen.out_of_order, 1);
        assert_eq!(seen.foreign, 3);
    }

    #[test]
    fn packet_ids_skip_zero_and_those_in_flight() {
        let mut ids = InFlight::new();
        let now = Instant::now();
        ids.next = u16::MAX;
        assert_eq!(ids.insert(now), u16::MAX);
        assert_eq!(ids.insert(now), 1);
        ids.next = 1;
        assert_eq!(ids.insert(now), 2);
        assert!(ids.remove(1).is_some());
        assert!(ids.remove(1).is_none());
        assert_eq!(ids.len, 2);
    }

    #[test]
    fn defaults_make_a_plan() {
        let p = plan(&[]).expect("valid");
        assert_eq!(p.addr, DEFAULT_MQTT_ADDR);
        assert_eq!((p.publishers, p.subscribers, p.window), (8, 0, 64));
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert_eq!(p.stop, StopRule::Messages(DEFAULT_MESSAGES));
        assert_eq!(p.protocol, Protocol::V311);
        assert_eq!(p.planned(), Some(8 * DEFAULT_MESSAGES));
    }

    #[test]
    fn arguments_are_checked() {
        for bad in [
            &["--qos", "3"][..],
            &["--inflight", "0"],
            &["--inflight", "65536"],
            &["--publishers", "0"],
            &["--subscribers", "1", "--payload", "19"],
            &["--topic", "a/#"],
            &["--topic", ""],
            &["--protocol", "3"],
            &["--messages", "0"],
            &["--duration", "10", "--timeout", "10"],
            &["--addr", "localhost"],
        ] {
            assert!(plan(bad).is_err(), "{bad:?} accepted");
        }
        let p = plan(&[
            "--url",
            "mqtt://h:18883/",
            "--duration",
            "5",
            "--payload",
            "0",
        ]);
        let p = p.expect("valid");
        assert_eq!(p.addr, "h:18883");
        assert_eq!(p.stop, StopRule::Duration(Duration::from_secs(5)));
        assert_eq!(p.planned(), None);
        assert!(Cmd::try_parse_from(["b", "--messages", "1", "--duration", "1"]).is_err());
    }
}
