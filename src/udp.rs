//! The binary protocol over UDP: readings from sensors without a connection (MQTT-SN's
//! QoS −1), one request per datagram.
//!
//! This module owns the UDP socket (`[udp]`), the parsing of a datagram ([`parse`], pure, for
//! the fuzz target), who may send what (device token, stored aliases, ACL), the appends of
//! datagrams through the log writer, the replies, and the counters [`UdpStats`] (exposed by
//! [`crate::admin::metrics`] through [`UDP_STATS`]). It does not store devices (see
//! [`crate::devices`]) or define frames (see `outpost_firmware::frame`).
//!
//! # A datagram
//!
//! Each datagram is one `Datagram` frame body with no length prefix (`device_id`, `token`,
//! `body`), and its `body` is one frame body: `Reading`, `ProduceAlias` or `Sleep`. The
//! receive buffer is `max_datagram_bytes + 1` bytes, allocated once: a datagram that fills it
//! is oversized and dropped. Nothing is sized by what a peer announces.
//!
//! # Who may send
//!
//! The device must be stored (`outpost devices set` or `token`). A device with a token must
//! present it; a device without one is served only while the broker accepts anonymous
//! clients (no password file). A wrong token is counted (`outpost_device_token_failures_total
//! {transport="udp"}` and `outpost_auth_failures_total`) and logged once per device. Aliases
//! are those of the device's stored config only (there is no `RegisterAlias` without a
//! connection). A produce needs `publish` on the alias's topic under the ACL, checked for
//! every datagram (rules reloaded on SIGHUP apply at once): a device whose token was verified
//! is the ACL's `device = "ID"`, a device without a token an anonymous client; the client id
//! (`%c`) is the device id.
//!
//! # Replies
//!
//! A reply is one frame body (no prefix) in one datagram to the sender's address:
//! - `Reading` with a `request_id` other than 0: `Done` once its value is committed;
//! - `ProduceAlias` with `AckMode::Commit`: `Ack` (partition, first offset, count) once
//!   committed;
//! - `Sleep` with a `request_id` other than 0: `Done` at once;
//! - a refused request that asked for one of the above: `Error` with the request's id and
//!   `UNKNOWN_DEVICE`, `NOT_AUTHORIZED` (wrong or missing token, ACL), `UNKNOWN_ALIAS`,
//!   `BUSY` (too many acknowledged appends waiting for their commit) or the append's error.
//!
//! A request that asked for no reply never gets one, not even an error. A datagram that does
//! not parse (truncated, not a `Datagram`, a body other than the three above) gets no reply:
//! the broker cannot tell whether its sender wants one. And no reply is ever more than three
//! times the size of the datagram that caused it, as QUIC limits a server before it has
//! validated the client's address: a forged source address makes the broker amplify by at
//! most 3×. Error messages are short and cut to fit; a reply that cannot fit is not sent.
//!
//! # Commits and shutdown
//!
//! The receive loop never waits for a commit. A fire-and-forget append is queued to the log
//! writer and forgotten; an acknowledged one is awaited in a task, at most `max_inflight` at
//! once (beyond: refused and counted as `busy`). At shutdown the loop stops receiving, waits
//! (bounded) for those tasks to send their replies, and returns before the server drains the
//! writer; a task still waiting after the bound is dropped, and its datagram is never acked.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outpost_firmware::{codec, ErrorCode, Frame};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::admin::metrics::{Kind, Stat};
use crate::auth::{Action, Identity, Permissions, Security};
use crate::devices::{Device, Devices, TokenCheck, Transport};
use crate::log::batch::{BatchBuilder, Compression};
use crate::log::{AppendError, Appended, Log, PendingRecords, Target};
use crate::logging::RepeatGate;
use crate::shutdown::Shutdown;
use crate::wire::produce;

/// A reply is at most this many times the size of the datagram that caused it.
pub const AMPLIFICATION_LIMIT: usize = 3;
/// Devices whose compiled ACL rules the receive loop keeps; when full, it starts over.
pub const MAX_CACHED_PERMISSIONS: usize = 1024;
/// Longest message of an error reply, in bytes (one-byte length prefix).
pub const MAX_ERROR_MESSAGE: usize = 100;
/// Room for any reply: an `Error` with the longest message, or an `Ack` (≤ 26 bytes).
const REPLY_BUFFER: usize = 128;
/// How long shutdown waits for acknowledged appends to be committed and answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Datagrams that do not parse: logged (debug) at most once per interval.
static MALFORMED_LOG: RepeatGate = RepeatGate::new();
/// Failed receives and sends: logged at most once per interval.
static SOCKET_ERROR_LOG: RepeatGate = RepeatGate::new();

// ---------------------------------------------------------------------------------------------
// Parsing (no I/O, no state)
// ---------------------------------------------------------------------------------------------

/// A datagram that parsed: who sends it and what it asks, borrowed from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The device's id, as sent (not checked against the registry here).
    pub device_id: &'a str,
    /// The device's token; empty when it has none.
    pub token: &'a [u8],
    /// The request.
    pub request: Request<'a>,
}

/// The requests a datagram may carry: the firmware's own type, so both sides read and
/// write the same three.
pub use outpost_firmware::client::udp::UdpRequest as Request;

/// Why a datagram was refused before anything about its sender was looked up. Every case is
/// counted as `malformed` and answered with nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The datagram does not decode as a frame body.
    #[error("not a frame: {0}")]
    Undecodable(outpost_firmware::Error),
    /// The datagram is a frame, but not a `Datagram`.
    #[error("a {0} frame where a Datagram was expected")]
    NotDatagram(&'static str),
    /// The `Datagram`'s body does not decode as a frame body.
    #[error("the Datagram's body is not a frame: {0}")]
    BadBody(outpost_firmware::Error),
    /// The body is a frame that is not served over UDP.
    #[error("a {0} frame in a Datagram: only Reading, ProduceAlias and Sleep are served over UDP")]
    Unsupported(&'static str),
    /// A `ProduceAlias`'s records or their headers do not decode.
    #[error("the records do not decode: {0}")]
    BadRecords(outpost_firmware::Error),
}

/// Parses one datagram: a `Datagram` frame body wrapping a `Reading`, `ProduceAlias` or
/// `Sleep` body. Borrows from `datagram`, allocates nothing, and never panics.
pub fn parse(datagram: &[u8]) -> Result<Datagram<'_>, Reject> {
    let outer = codec::decode_body(datagram).map_err(Reject::Undecodable)?;
    let Frame::Datagram {
        device_id,
        token,
        body,
    } = outer
    else {
        return Err(Reject::NotDatagram(outer.name()));
    };
    let inner = codec::decode_body(body).map_err(Reject::BadBody)?;
    let name = inner.name();
    let request = Request::from_frame(inner).ok_or(Reject::Unsupported(name))?;
    if let Request::Produce { records, .. } = &request {
        records.validate_all().map_err(Reject::BadRecords)?;
    }
    Ok(Datagram {
        device_id,
        token,
        request,
    })
}

/// Encodes `frame` into `buf` if it is at most `limit` bytes; an `Error` whose message makes
/// it longer is sent with its message cut (at a character boundary) to fit.
pub fn encode_reply<'b>(frame: &Frame<'_>, limit: usize, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let Frame::Error {
        request_id,
        code,
        message,
    } = *frame
    else {
        let len = codec::encode_body(frame, buf).ok()?.len();
        return (len <= limit).then_some(&buf[..len]);
    };
    let bare = Frame::Error {
        request_id,
        code,
        message: "",
    };
    let overhead = codec::encode_body(&bare, buf).ok()?.len();
    let room = limit.checked_sub(overhead)?.min(MAX_ERROR_MESSAGE);
    let mut end = room.min(message.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut = Frame::Error {
        request_id,
        code,
        message: &message[..end],
    };
    codec::encode_body(&cut, buf).ok()
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// What became of a datagram (the `outcome` label of `outpost_udp_datagrams_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served: queued for the log (an acknowledged append: committed), or a sleep hint.
    Accepted,
    /// Larger than `max_datagram_bytes`.
    Oversized,
    /// Did not parse (see [`Reject`]).
    Malformed,
    /// No device of that id is stored.
    UnknownDevice,
    /// The device has a token and the datagram did not carry it.
    BadToken,
    /// The ACL refused the produce, or the device has no token while logins are required.
    NotAuthorized,
    /// The alias is not in the device's stored config.
    UnknownAlias,
    /// An acknowledged append was refused: `max_inflight` appends were waiting.
    Busy,
    /// The records or the append failed (record too large, unknown partition, storage, ...).
    Error,
}

/// Datagram counters, read by the metrics at scrape time.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Indexed by `Outcome as usize`; `Error` is the last variant.
    outcomes: [AtomicU64; Outcome::Error as usize + 1],
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

impl UdpStats {
    /// Counts one datagram's outcome.
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Datagrams with `outcome` so far.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// Bytes received in datagrams (an oversized one counts `max_datagram_bytes + 1`: the
    /// rest was never read).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Bytes sent in replies.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }
}

/// One row of [`UDP_STATS`] per outcome.
macro_rules! outcome_stats {
    ($($outcome:ident = $label:literal,)*) => {
        /// The UDP families: datagrams by outcome, bytes received and sent.
        pub const UDP_STATS: &[Stat<Arc<UdpStats>>] = &[
            $(Stat {
                name: "outpost_udp_datagrams",
                help: "UDP datagrams received, by outcome: accepted, oversized, malformed, unknown_device, bad_token, not_authorized, unknown_alias, busy, error.",
                kind: Kind::Counter,
                labels: &[("outcome", $label)],
                read: |s| s.outcome(Outcome::$outcome),
            },)*
            Stat {
                name: "outpost_udp_received_bytes",
                help: "Bytes received in UDP datagrams.",
                kind: Kind::Counter,
                labels: &[],
                read: |s| s.bytes_received(),
            },
            Stat {
                name: "outpost_udp_sent_bytes",
                help: "Bytes sent in UDP replies.",
                kind: Kind::Counter,
                labels: &[],
                read: |s| s.bytes_sent(),
            },
        ];
    };
}

outcome_stats! {
    Accepted = "accepted",
    Oversized = "oversized",
    Malformed = "malformed",
    UnknownDevice = "unknown_device",
    BadToken = "bad_token",
    NotAuthorized = "not_authorized",
    UnknownAlias = "unknown_alias",
    Busy = "busy",
    Error = "error",
}

// ---------------------------------------------------------------------------------------------
// The listener
// ---------------------------------------------------------------------------------------------

/// Settings of the receive loop.
#[derive(Debug, Clone, Copy)]
pub struct UdpSettings {
    /// Largest datagram accepted.
    pub max_datagram_bytes: usize,
    /// Acknowledged appends waiting for their commit at once.
    pub max_inflight: usize,
    /// Largest uncompressed batch built from one datagram.
    pub batch_max_bytes: usize,
}

/// What the receive loop serves datagrams against.
#[derive(Clone)]
pub struct Shared {
    /// The log.
    pub log: Log,
    /// The device registry: tokens, stored aliases, statuses.
    pub devices: Devices,
    /// Anonymous access and the ACL.
    pub security: Security,
}

/// A bound UDP socket, not yet serving.
pub struct Listener {
    socket: Arc<UdpSocket>,
    addr: SocketAddr,
    stats: Arc<UdpStats>,
}

impl Listener {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let addr = socket.local_addr()?;
        Ok(Self {
            socket: Arc::new(socket),
            addr,
            stats: Arc::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<UdpStats> {
        self.stats.clone()
    }

    /// Serves datagrams until `shutdown`, then waits (bounded) for acknowledged appends to be
    /// answered. Join the task before the log writer drains.
    pub fn spawn(
        self,
        shared: Shared,
        settings: UdpSettings,
        shutdown: &Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let receiver = self.receiver(shared, settings);
        let stop = shutdown.clone();
        tokio::spawn(receiver.run(settings.max_datagram_bytes, stop))
    }

    fn receiver(self, shared: Shared, settings: UdpSettings) -> Receiver {
        // tokio's permit limit is below usize::MAX (and below u32::MAX on 32-bit targets).
        let permits = settings.max_inflight.clamp(1, Semaphore::MAX_PERMITS);
        Receiver {
            replies: Replies {
                socket: self.socket.clone(),
                stats: self.stats.clone(),
            },
            socket: self.socket,
            stats: self.stats,
            shared,
            inflight: Arc::new(Semaphore::new(permits)),
            acks: JoinSet::new(),
            permissions: HashMap::new(),
            builder: BatchBuilder::new(Compression::None, settings.batch_max_bytes),
        }
    }
}

/// Sends replies from the receive loop and the ack tasks alike.
#[derive(Clone)]
struct Replies {
    socket: Arc<UdpSocket>,
    stats: Arc<UdpStats>,
}

/// Where and how big a reply to one datagram may be.
#[derive(Debug, Clone, Copy)]
struct ReplyTo {
    peer: SocketAddr,
    limit: usize,
    request_id: u32,
    /// The request asked for a reply.
    asked: bool,
}

impl Replies {
    /// Sends `frame` to the sender of the datagram, within its size limit, if it asked for a
    /// reply. A reply that fails to send is dropped (UDP may drop it anyway). The wait is for
    /// room in the socket's send buffer, which a datagram socket on Linux does not lack.
    async fn send(&self, to: ReplyTo, frame: &Frame<'_>) {
        if !to.asked {
            return;
        }
        let mut buf = [0u8; REPLY_BUFFER];
        let Some(bytes) = encode_reply(frame, to.limit, &mut buf) else {
            return;
        };
        match self.socket.send_to(bytes, to.peer).await {
            Ok(n) => {
                self.stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                if let Some(similar_not_logged) = SOCKET_ERROR_LOG.pass() {
                    tracing::debug!(peer = %to.peer, error = %e, similar_not_logged, "UDP reply not sent");
                }
            }
        }
    }

    async fn error(&self, to: ReplyTo, code: ErrorCode, message: &str) {
        let frame = Frame::Error {
            request_id: to.request_id,
            code,
            message,
        };
        self.send(to, &frame).await;
    }
}

/// A refused request: how it is counted and answered.
#[derive(Debug)]
struct Refusal {
    outcome: Outcome,
    code: ErrorCode,
    message: Cow<'static, str>,
}

impl Refusal {
    fn new(outcome: Outcome, code: ErrorCode, message: &'static str) -> Self {
        Self {
            outcome,
            code,
            message: Cow::Borrowed(message),
        }
    }

    fn append(e: &AppendError) -> Self {
        let (code, message) = crate::wire::handlers::append_code(e);
        Self {
            outcome: Outcome::Error,
            code,
            message: Cow::Owned(message),
        }
    }
}

/// Whom a device's ACL rules are compiled for: its id, and whether its token was verified.
type PermissionKey = (Box<str>, bool);

/// The receive loop's state; owned by its task, so nothing here is locked.
struct Receiver {
    socket: Arc<UdpSocket>,
    stats: Arc<UdpStats>,
    replies: Replies,
    shared: Shared,
    /// Permits of acknowledged appends waiting for their commit.
    inflight: Arc<Semaphore>,
    /// The tasks awaiting those commits.
    acks: JoinSet<()>,
    /// Compiled ACL rules per device (bounded by [`MAX_CACHED_PERMISSIONS`]).
    permissions: HashMap<PermissionKey, Permissions>,
    builder: BatchBuilder,
}

impl Receiver {
    async fn run(mut self, max_datagram: usize, shutdown: Shutdown) {
        // One byte more than the largest datagram accepted: a datagram that fills it is
        // oversized (the kernel cuts what does not fit).
        let mut buf = vec![0u8; max_datagram.saturating_add(1)];
        let mut stop = shutdown.subscribe();
        loop {
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                _ = stop.wait_for(|&s| s) => break,
            };
            // Reap finished ack tasks so the set stays bounded by the ones in flight.
            while self.acks.try_join_next().is_some() {}
            let (n, peer) = match received {
                Ok(r) => r,
                Err(e) => {
                    if let Some(similar_not_logged) = SOCKET_ERROR_LOG.pass() {
                        tracing::warn!(error = %e, similar_not_logged, "UDP receive failed");
                    }
                    continue;
                }
            };
            self.stats
                .bytes_received
                .fetch_add(n as u64, Ordering::Relaxed);
            if n > max_datagram {
                self.stats.count(Outcome::Oversized);
                continue;
            }
            self.handle(&buf[..n], peer).await;
        }
        if !crate::shutdown::drain(&mut self.acks, DRAIN_TIMEOUT).await {
            tracing::warn!("UDP appends were not committed in time; their acks are not sent");
        }
    }

    /// Serves one datagram of at most `max_datagram_bytes`.
    async fn handle(&mut self, bytes: &[u8], peer: SocketAddr) {
        let datagram = match parse(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.stats.count(Outcome::Malformed);
                if let Some(similar_not_logged) = MALFORMED_LOG.pass() {
                    tracing::debug!(%peer, error = %e, similar_not_logged, "UDP datagram dropped");
                }
                return;
            }
        };
        let to = ReplyTo {
            peer,
            limit: bytes.len().saturating_mul(AMPLIFICATION_LIMIT),
            request_id: datagram.request.request_id(),
            asked: datagram.request.wants_reply(),
        };
        if let Err(r) = self.serve(&datagram, to).await {
            self.stats.count(r.outcome);
            self.replies.error(to, r.code, &r.message).await;
        }
    }

    async fn serve(&mut self, d: &Datagram<'_>, to: ReplyTo) -> Result<(), Refusal> {
        let (device, verified) = self.identify(d.device_id, d.token)?;
        let devices = &self.shared.devices;
        devices.seen(d.device_id, Transport::Udp, to.peer, None);
        match &d.request {
            Request::Sleep { duration_ms, .. } => {
                devices.sleeping(d.device_id, *duration_ms);
                self.stats.count(Outcome::Accepted);
                let done = Frame::Done {
                    request_id: to.request_id,
                };
                self.replies.send(to, &done).await;
                Ok(())
            }
            Request::Reading { alias, value, .. } => {
                let (topic, target) = self.route(&device, verified, *alias)?;
                let pending = produce::encode_value(&mut self.builder, value)
                    .map_err(|(code, msg)| Refusal::new(Outcome::Error, code, msg))?;
                self.append(topic, target, pending, to, Success::Done).await
            }
            Request::Produce { alias, records, .. } => {
                let (topic, target) = self.route(&device, verified, *alias)?;
                let pending = produce::encode_records(&mut self.builder, records)
                    .map_err(|(code, msg)| Refusal::new(Outcome::Error, code, msg))?;
                let target = match target {
                    Target::Any => produce::target_of(None, records).map_err(|msg| {
                        Refusal::new(Outcome::Error, ErrorCode::INVALID_REQUEST, msg)
                    })?,
                    explicit => explicit,
                };
                self.append(topic, target, pending, to, Success::Ack).await
            }
        }
    }

    /// Checks the device's token: the stored device and whether its token was verified.
    fn identify(&self, id: &str, token: &[u8]) -> Result<(Arc<Device>, bool), Refusal> {
        let security = &self.shared.security;
        match self.shared.devices.check_token(id, token) {
            TokenCheck::Verified(device) => Ok((device, true)),
            TokenCheck::NoToken(Some(device)) if !security.requires_login() => Ok((device, false)),
            TokenCheck::NoToken(Some(_)) => {
                security.count_auth_refusal(id, None, "device without a token, logins required");
                let msg = "device has no token; set one";
                Err(Refusal::new(
                    Outcome::NotAuthorized,
                    ErrorCode::NOT_AUTHORIZED,
                    msg,
                ))
            }
            TokenCheck::NoToken(None) => Err(Refusal::new(
                Outcome::UnknownDevice,
                ErrorCode::UNKNOWN_DEVICE,
                "unknown device",
            )),
            TokenCheck::Wrong => {
                self.shared.devices.count_token_failure(Transport::Udp);
                security.count_auth_refusal(id, None, "wrong device token (UDP)");
                Err(Refusal::new(
                    Outcome::BadToken,
                    ErrorCode::NOT_AUTHORIZED,
                    "wrong device token",
                ))
            }
        }
    }

    /// The topic and target of `alias` in the device's stored config, if the device may
    /// publish there.
    fn route<'d>(
        &mut self,
        device: &'d Device,
        verified: bool,
        alias: u16,
    ) -> Result<(&'d str, Target<'static>), Refusal> {
        let entry = device
            .config
            .as_ref()
            .and_then(|c| c.alias(alias))
            .ok_or_else(|| {
                Refusal::new(
                    Outcome::UnknownAlias,
                    ErrorCode::UNKNOWN_ALIAS,
                    "unknown alias",
                )
            })?;
        let topic = entry.topic.as_str();
        if !self
            .permissions(&device.id, verified)
            .check(Action::Publish, topic)
            .allowed
        {
            return Err(Refusal::new(
                Outcome::NotAuthorized,
                ErrorCode::NOT_AUTHORIZED,
                "not authorized to produce to this topic",
            ));
        }
        Ok((
            topic,
            entry.partition.map_or(Target::Any, Target::Partition),
        ))
    }

    /// The device's compiled ACL rules (they recompile themselves after a reload).
    fn permissions(&mut self, id: &str, verified: bool) -> &mut Permissions {
        let key: PermissionKey = (id.into(), verified);
        if !self.permissions.contains_key(&key) && self.permissions.len() >= MAX_CACHED_PERMISSIONS
        {
            self.permissions.clear();
        }
        let security = &self.shared.security;
        self.permissions
            .entry(key)
            .or_insert_with(|| security.permissions(&device_identity(id, verified), id))
    }

    /// Queues the append. Fire-and-forget: done once queued. Acknowledged: a task awaits
    /// the commit and replies, if a permit is free (else `BUSY`, nothing queued).
    async fn append(
        &mut self,
        topic: &str,
        target: Target<'_>,
        pending: PendingRecords,
        to: ReplyTo,
        success: Success,
    ) -> Result<(), Refusal> {
        let log = &self.shared.log;
        if !to.asked {
            log.enqueue_append(topic, target, pending)
                .await
                .map_err(|e| Refusal::append(&e))?;
            self.stats.count(Outcome::Accepted);
            return Ok(());
        }
        let permit = self.inflight.clone().try_acquire_owned().map_err(|_| {
            let msg = "too many acknowledged datagrams in flight; retry later";
            Refusal::new(Outcome::Busy, ErrorCode::BUSY, msg)
        })?;
        let queued = log
            .enqueue_append(topic, target, pending)
            .await
            .map_err(|e| Refusal::append(&e))?;
        let replies = self.replies.clone();
        self.acks.spawn(async move {
            let result = queued.wait().await;
            answer(&replies, to, success, result).await;
            drop(permit);
        });
        Ok(())
    }
}

/// The reply to a committed append.
#[derive(Debug, Clone, Copy)]
enum Success {
    /// `Done` (a `Reading`).
    Done,
    /// `Ack` with the offsets (a `ProduceAlias`).
    Ack,
}

/// Counts and answers an acknowledged append once its commit is over.
async fn answer(
    replies: &Replies,
    to: ReplyTo,
    success: Success,
    result: Result<Appended, AppendError>,
) {
    let request_id = to.request_id;
    match result {
        Ok(a) => {
            replies.stats.count(Outcome::Accepted);
            let frame = match success {
                Success::Done => Frame::Done { request_id },
                Success::Ack => Frame::Ack {
                    request_id,
                    partition: a.partition,
                    base_offset: a.base_offset,
                    count: a.count,
                },
            };
            replies.send(to, &frame).await;
        }
        Err(e) => {
            let r = Refusal::append(&e);
            replies.stats.count(r.outcome);
            replies.error(to, r.code, &r.message).await;
        }
    }
}

/// Who a device is for the ACL (as over TCP): the ACL's `device = "ID"` once its token was
/// verified, else an anonymous client; its client id is its device id either way.
fn device_identity(id: &str, verified: bool) -> Identity {
    Identity {
        user: None,
        device: verified.then(|| id.into()),
        password_hash: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_firmware::{AckMode, Record, Records, SeqWriter};

    /// Encodes a `Datagram` around `inner`.
    fn datagram(device_id: &str, token: &[u8], inner: &Frame<'_>) -> Vec<u8> {
        let mut body = [0u8; 512];
        let body = codec::encode_body(inner, &mut body).unwrap();
        let outer = Frame::Datagram {
            device_id,
            token,
            body,
        };
        let mut buf = vec![0u8; 1024];
        let len = codec::encode_body(&outer, &mut buf).unwrap().len();
        buf.truncate(len);
        buf
    }

    fn reading(request_id: u32) -> Frame<'static> {
        Frame::Reading {
            request_id,
            alias: 1,
            value: b"21.5",
        }
    }

    #[test]
    fn parses_the_three_requests() {
        let d = datagram("d1", b"tok", &reading(7));
        let parsed = parse(&d).unwrap();
        assert_eq!(parsed.device_id, "d1");
        assert_eq!(parsed.token, b"tok");
        assert_eq!(
            parsed.request,
            Request::Reading {
                request_id: 7,
                alias: 1,
                value: b"21.5"
            }
        );
        assert!(parsed.request.wants_reply());
        assert!(!parse(&datagram("d1", b"", &reading(0)))
            .unwrap()
            .request
            .wants_reply());

        let sleep = Frame::Sleep {
            request_id: 0,
            duration_ms: 60_000,
        };
        let bytes = datagram("d1", b"", &sleep);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(
            parsed.request,
            Request::Sleep {
                request_id: 0,
                duration_ms: 60_000
            }
        );

        let mut rbuf = [0u8; 64];
        let mut w = SeqWriter::new(&mut rbuf);
        w.push(&Record::new(b"a")).unwrap();
        w.push(&Record::new(b"b")).unwrap();
        let records = w.finish().unwrap();
        for (ack, wants) in [(AckMode::Commit, true), (AckMode::None, false)] {
            let produce = Frame::ProduceAlias {
                request_id: 9,
                alias: 2,
                ack,
                records,
            };
            let bytes = datagram("d1", b"", &produce);
            let parsed = parse(&bytes).unwrap();
            assert_eq!(parsed.request.request_id(), 9);
            assert_eq!(parsed.request.wants_reply(), wants);
        }
    }

    #[test]
    fn refuses_what_is_not_a_served_datagram() {
        assert!(matches!(parse(&[]), Err(Reject::Undecodable(_))));
        let mut ping = [0u8; 8];
        let ping = codec::encode_body(&Frame::Ping { request_id: 1 }, &mut ping).unwrap();
        assert_eq!(parse(ping), Err(Reject::NotDatagram("Ping")));
        let config = datagram("d1", b"", &Frame::ConfigRequest { request_id: 1 });
        assert_eq!(parse(&config), Err(Reject::Unsupported("ConfigRequest")));
        // A body that is not a frame.
        let outer = Frame::Datagram {
            device_id: "d1",
            token: b"",
            body: &[0xff, 0xff],
        };
        let mut buf = [0u8; 32];
        let bytes = codec::encode_body(&outer, &mut buf).unwrap();
        assert!(matches!(parse(bytes), Err(Reject::BadBody(_))));
        // Records whose count is wrong: one claimed, none there.
        let records = Records::from_bytes(&[0x01]).unwrap();
        let produce = Frame::ProduceAlias {
            request_id: 1,
            alias: 1,
            ack: AckMode::Commit,
            records,
        };
        assert!(matches!(
            parse(&datagram("d1", b"", &produce)),
            Err(Reject::BadRecords(_))
        ));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let whole = datagram("sensor-1", b"secret", &reading(3));
        for end in 0..whole.len() {
            assert!(parse(&whole[..end]).is_err(), "{end}");
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert!(parse(&longer).is_err());
    }

    #[test]
    fn replies_fit_three_times_the_datagram() {
        let mut buf = [0u8; REPLY_BUFFER];
        let done = Frame::Done { request_id: 300 };
        assert_eq!(
            encode_reply(&done, 3, &mut buf),
            Some(&[0x11, 0xac, 0x02][..])
        );
        assert_eq!(encode_reply(&done, 2, &mut buf), None);
        let error = Frame::Error {
            request_id: 1,
            code: ErrorCode::UNKNOWN_ALIAS,
            message: "unknown alias",
        };
        // Discriminant, id, code, length: 4 bytes before the message.
        let whole = encode_reply(&error, 64, &mut buf).unwrap().len();
        assert_eq!(whole, 4 + 13);
        let cut = encode_reply(&error, 10, &mut buf).unwrap();
        assert_eq!(cut.len(), 10);
        let Ok(Frame::Error { message, .. }) = codec::decode_body(cut) else {
            panic!("{cut:02x?}");
        };
        assert_eq!(message, "unknow");
        assert_eq!(encode_reply(&error, 3, &mut buf), None);
        // A cut never splits a character.
        let accented = Frame::Error {
            request_id: 1,
            code: ErrorCode::INTERNAL,
            message: "ééé",
        };
        let cut = encode_reply(&accented, 7, &mut buf).unwrap();
        let Ok(Frame::Error { message, .. }) = codec::decode_body(cut) else {
            panic!("{cut:02x?}");
        };
        assert_eq!(message, "é");
        // Long messages are cut to MAX_ERROR_MESSAGE.
        let long = "x".repeat(500);
        let error = Frame::Error {
            request_id: 1,
            code: ErrorCode::STORAGE,
            message: &long,
        };
        let bytes = encode_reply(&error, 10_000, &mut buf).unwrap();
        assert_eq!(bytes.len(), 4 + MAX_ERROR_MESSAGE);
    }

    #[test]
    fn the_smallest_acked_reading_can_get_every_reply() {
        // One-character id, no token, empty value: the smallest datagram asking for a reply.
        let d = datagram(
            "d",
            b"",
            &Frame::Reading {
                request_id: 1,
                alias: 1,
                value: b"",
            },
        );
        let limit = d.len() * AMPLIFICATION_LIMIT;
        let mut buf = [0u8; REPLY_BUFFER];
        let ack = Frame::Ack {
            request_id: u32::MAX,
            partition: u32::MAX,
            base_offset: u64::MAX,
            count: u32::MAX,
        };
        assert!(encode_reply(&Frame::Done { request_id: 1 }, limit, &mut buf).is_some());
        assert!(encode_reply(&ack, limit, &mut buf).is_some(), "{limit}");
        let error = Frame::Error {
            request_id: 1,
            code: ErrorCode::NOT_AUTHORIZED,
            message: "wrong device token",
        };
        let bytes = encode_reply(&error, limit, &mut buf).unwrap();
        assert!(bytes.len() <= limit);
    }

    /// A config for `id` with alias 1 on topic `t`.
    fn device_config(id: &str) -> Vec<u8> {
        crate::devices::tests::config(id, 0, "t")
    }

    /// The next datagram on `socket`; panics after 10 s.
    async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
        let wait = Duration::from_secs(10);
        tokio::time::timeout(wait, socket.recv_from(buf))
            .await
            .expect("a reply within 10 s")
            .unwrap()
    }

    #[tokio::test]
    async fn acked_datagrams_beyond_max_inflight_are_busy_and_nothing_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..crate::config::Config::default()
        };
        let log = Log::open(&config).unwrap();
        let devices = Devices::load(&log).unwrap();
        devices
            .set_config("d1", &device_config("d1"))
            .await
            .unwrap();
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let stats = listener.stats();
        let shared = Shared {
            log: log.clone(),
            devices,
            security: Security::open_access(),
        };
        let settings = UdpSettings {
            max_datagram_bytes: 1472,
            max_inflight: 1,
            batch_max_bytes: 16_364,
        };
        let mut receiver = listener.receiver(shared, settings);
        let device = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = device.local_addr().unwrap();
        let mut buf = [0u8; 256];

        // The one permit is taken: an acked reading is refused, a fire-and-forget one is not.
        let held = receiver.inflight.clone().try_acquire_owned().unwrap();
        receiver
            .handle(&datagram("d1", b"", &reading(5)), peer)
            .await;
        let (n, _) = recv(&device, &mut buf).await;
        assert!(matches!(
            codec::decode_body(&buf[..n]),
            Ok(Frame::Error {
                request_id: 5,
                code: ErrorCode::BUSY,
                ..
            })
        ));
        assert_eq!(stats.outcome(Outcome::Busy), 1);
        receiver
            .handle(&datagram("d1", b"", &reading(0)), peer)
            .await;
        assert_eq!(stats.outcome(Outcome::Accepted), 1);

        // Free again: the acked reading is committed (after the one before it) and answered.
        drop(held);
        receiver
            .handle(&datagram("d1", b"", &reading(6)), peer)
            .await;
        let (n, _) = recv(&device, &mut buf).await;
        assert_eq!(
            codec::decode_body(&buf[..n]),
            Ok(Frame::Done { request_id: 6 })
        );
        assert_eq!(stats.outcome(Outcome::Accepted), 2);
        assert_eq!(log.partition_meta("t", 0).unwrap().end_offset, 2);
        log.shutdown().await;
    }

    #[test]
    fn outcome_rows_match_the_counters() {
        let stats = Arc::new(UdpStats::default());
        stats.count(Outcome::Error);
        stats.count(Outcome::Error);
        stats.count(Outcome::Accepted);
        let row = |label: &str| {
            UDP_STATS
                .iter()
                .find(|s| s.labels == [("outcome", label)])
                .map(|s| (s.read)(&stats))
        };
        assert_eq!(row("error"), Some(2));
        assert_eq!(row("accepted"), Some(1));
        assert_eq!(row("busy"), Some(0));
        assert_eq!(UDP_STATS.len(), 9 + 2);
    }
}
