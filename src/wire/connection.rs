//! One binary-protocol connection: a tokio task around [`Session`].
//!
//! The reader decodes length-prefixed frames from a buffer bounded by `max_frame_bytes` (a
//! frame announcing more is answered with `FRAME_TOO_LARGE` and the connection closes, before
//! any of its body is buffered). Produce requests are queued to the log writer in frame order
//! (so one connection's appends to a partition keep their order) and their commits awaited in
//! spawned tasks, at most `max_inflight` at once; fetches and admin requests run the same way.
//! `Ping` and `BridgeStatus`, answered from memory, are answered in the connection task.
//! Replies go through a bounded channel to a writer task that owns the socket's write half.
//! A protocol error closes only this connection.
//!
//! Access: an `Authenticate` is verified here (off the async threads, see
//! [`crate::auth::verifier`]); every request is checked against the client's compiled ACL
//! rules before it is served (produce: `publish` on the log topic; fetch and offsets:
//! `consume`; topic create/delete: `admin`; see [`crate::auth::acl`]) and a refused one is
//! answered `NOT_AUTHORIZED`, the connection staying usable.
//!
//! Devices and aliases (in `connection/device.rs`): a `DeviceHello` is checked against the
//! device registry and makes this a device session; every session keeps an [`AliasTable`],
//! and `ProduceAlias` and `Reading` go through the same gathering as `Produce`. Each produce
//! of a gather is answered after the commit as it asked: `Ack` (a produce with
//! [`AckMode::Commit`]), `Done` (a `Reading` with a request id), or only on error.

mod device;

use std::sync::Arc;
use std::time::Duration;

use crate::transport::{Peer, ReadHalf, Transport, WriteHalf};
use outpost_bridge::StatusBoard;
use outpost_firmware::{codec, AckMode, ErrorCode, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::aliases::AliasTable;
use super::session::{Gate, Session};
use super::{handlers, produce};
use crate::admin::counters::ConnectionStats;
use crate::auth::{Action, Identity, Login, Permissions, Refusal, Security};
use crate::log::batch::{BatchBuilder, Compression};
use crate::log::{AppendError, Appended, Log, PendingRecords, Target};
use crate::shutdown::Shutdown;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;
/// The name `BridgeStatus` needs `admin` on (see [`crate::auth::acl`]).
pub const BRIDGE_STATUS_TOPIC: &str = "$bridge";
/// The name device admin requests (`outpost devices`) need `admin` on.
pub const DEVICES_TOPIC: &str = "$devices";
/// How long shutdown waits for in-flight requests of a connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Largest frame body accepted.
    pub max_frame_bytes: u32,
    /// Requests in flight at once.
    pub max_inflight: u32,
    /// Largest uncompressed batch built from one produce.
    pub batch_max_bytes: usize,
    /// Silence after which an idle connection is closed.
    pub idle_timeout: Duration,
}

/// A reply channel to the socket writer task.
pub(crate) type Replies = mpsc::Sender<Vec<u8>>;

/// Encodes `frame` and queues it for the socket (dropped if the connection is gone).
pub(crate) async fn send(replies: &Replies, frame: &Frame<'_>) {
    let mut out = Vec::new();
    match codec::encode_frame_vec(frame, &mut out) {
        Ok(_) => {
            let _ = replies.send(out).await;
        }
        // Only a body over 4 GiB fails to encode; replies are bounded far below that.
        Err(e) => tracing::error!(error = %e, "reply frame did not encode"),
    }
}

/// Queues an error frame.
pub(crate) async fn send_error(replies: &Replies, request_id: u32, code: ErrorCode, message: &str) {
    let frame = Frame::Error {
        request_id,
        code,
        message,
    };
    send(replies, &frame).await;
}

/// What every connection of the listener shares.
#[derive(Clone)]
pub struct Served {
    /// The log.
    pub log: Log,
    /// The board `BridgeStatus` requests are answered from.
    pub bridges: StatusBoard,
    /// Logins and ACL checks.
    pub security: Security,
    /// The device registry (device hellos, tokens, configs, aliases).
    pub devices: crate::devices::Devices,
    /// The listener's connection and traffic counters.
    pub stats: Arc<ConnectionStats>,
}

/// Serves one connection until the peer closes, a fatal protocol error, or shutdown. A
/// client whose TLS certificate names it (`peer.cert_identity`) is logged in as that user
/// from `Hello` on.
pub async fn serve(
    stream: Transport,
    peer: Peer,
    served: Served,
    config: ConnConfig,
    shutdown: Shutdown,
) {
    let Served {
        log,
        bridges,
        security,
        devices,
        stats,
    } = served;
    // Small frames must not wait for Nagle (FIELD-NOTES.md: 19 ms vs 0.3 ms p50).
    let _ = stream.tcp().set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    // `max_inflight` + 8 is within tokio's limits: `server` caps it (32-bit targets).
    let (tx, rx) = mpsc::channel(config.max_inflight as usize + 8);
    let writer = tokio::spawn(write_loop(wr, rx, stats.clone()));
    let mut conn = Conn {
        stats,
        log,
        bridges,
        devices,
        config,
        session: Session::new(security.requires_login() && peer.cert_identity.is_none()),
        security,
        cert_identity: peer.cert_identity.clone(),
        permissions: None,
        replies: tx,
        inflight: Arc::new(Semaphore::new(config.max_inflight as usize)),
        builder: BatchBuilder::new(Compression::None, config.batch_max_bytes),
        gather: None,
        peer_addr: peer.addr,
        aliases: AliasTable::default(),
        device: None,
    };
    let result = conn.read_loop(&mut rd, &shutdown).await;
    if let Err(reason) = result {
        tracing::debug!(
            peer = ?peer.addr,
            client = conn.session.client_id(),
            reason,
            "connection closed"
        );
    }
    conn.drain().await;
    if let Some(d) = &conn.device {
        conn.devices.disconnected(&d.id);
    }
    drop(conn);
    let _ = writer.await;
}

async fn write_loop(wr: WriteHalf, mut rx: mpsc::Receiver<Vec<u8>>, stats: Arc<ConnectionStats>) {
    let mut wr = BufWriter::new(wr);
    while let Some(bytes) = rx.recv().await {
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
        stats.sent(bytes.len());
        // A commit answers many requests at once: let their reply tasks (woken together)
        // queue their frames, then write them all with one flush instead of one each.
        tokio::task::yield_now().await;
        // Batch writes while more replies are queued; flush when the queue is empty.
        while let Ok(more) = rx.try_recv() {
            if wr.write_all(&more).await.is_err() {
                return;
            }
            stats.sent(more.len());
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

struct Conn {
    stats: Arc<ConnectionStats>,
    log: Log,
    bridges: StatusBoard,
    devices: crate::devices::Devices,
    config: ConnConfig,
    session: Session,
    security: Security,
    /// The client's access rules: set at the hello for anonymous access, at a login otherwise.
    permissions: Option<Permissions>,
    /// The user a verified client certificate names (`identity_as_username`).
    cert_identity: Option<String>,
    replies: Replies,
    inflight: Arc<Semaphore>,
    builder: BatchBuilder,
    /// Produces read together for one partition, not yet queued (see [`Conn::produce`]).
    gather: Option<Gather>,
    /// The peer's address (for the device registry).
    peer_addr: Option<std::net::SocketAddr>,
    /// This connection's topic aliases.
    aliases: AliasTable,
    /// Set when this is a device session.
    device: Option<device::DeviceConn>,
}

/// Consecutive produce requests of one read for the same partition: one writer request.
struct Gather {
    topic: String,
    partition: u32,
    records: PendingRecords,
    /// (request id, reply, record count) of each produce, in order.
    members: Vec<(u32, Reply, u32)>,
}

/// How a produce is answered once its records are committed. Failures are answered with an
/// error frame whatever the kind (records must not be lost silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// `Ack` with the offsets (`Produce`/`ProduceAlias` with [`AckMode::Commit`]).
    Ack,
    /// `Done` (a `Reading` with a non-zero request id).
    Done,
    /// Nothing on success.
    Quiet,
}

impl Reply {
    fn of_ack(ack: AckMode) -> Self {
        match ack {
            AckMode::Commit => Reply::Ack,
            AckMode::None => Reply::Quiet,
        }
    }

    /// Sends this reply (or the error) for request `id`.
    async fn answer(self, replies: &Replies, id: u32, result: Result<Appended, AppendError>) {
        match (self, result) {
            (Reply::Done, Ok(_)) => send(replies, &Frame::Done { request_id: id }).await,
            (Reply::Ack, r) => handlers::answer_append(replies, id, AckMode::Commit, r).await,
            (Reply::Done | Reply::Quiet, r) => {
                handlers::answer_append(replies, id, AckMode::None, r).await
            }
        }
    }
}

impl Conn {
    async fn read_loop(
        &mut self,
        rd: &mut ReadHalf,
        shutdown: &Shutdown,
    ) -> Result<(), &'static str> {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut stop = shutdown.subscribe();
        loop {
            let consumed = self.process_buffer(&buf).await?;
            buf.drain(..consumed);
            // Saturating: u32::MAX + 5 overflows a 32-bit usize.
            let bound =
                (self.config.max_frame_bytes as usize).saturating_add(codec::MAX_PREFIX_LEN);
            if buf.len() > bound {
                return Err("buffer bound exceeded");
            }
            let start = buf.len();
            buf.resize(start + READ_CHUNK, 0);
            let n = loop {
                tokio::select! {
                    r = rd.read(&mut buf[start..]) => break r.map_err(|_| "read error")?,
                    _ = stop.wait_for(|&s| s) => return Err("shutdown"),
                    _ = tokio::time::sleep(self.config.idle_timeout) => {
                        if self.is_idle() {
                            return Err("idle timeout");
                        }
                    }
                }
            };
            buf.truncate(start + n);
            self.stats.received(n);
            if n == 0 {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err("eof inside a frame")
                };
            }
        }
    }

    /// Handles every complete frame in `buf`; returns the bytes consumed. Produces gathered
    /// on the way are queued before it returns.
    async fn process_buffer(&mut self, buf: &[u8]) -> Result<usize, &'static str> {
        let result = self.process_frames(buf).await;
        self.flush_gather().await;
        result
    }

    async fn process_frames(&mut self, buf: &[u8]) -> Result<usize, &'static str> {
        let mut at = 0;
        loop {
            match codec::decode_frame(&buf[at..], self.config.max_frame_bytes) {
                Ok(None) => return Ok(at),
                Ok(Some((frame, used))) => {
                    at += used;
                    self.handle(&frame).await?;
                }
                Err(e) => {
                    let Some(skip) = self.frame_error(&buf[at..], e).await? else {
                        return Ok(at);
                    };
                    at += skip;
                }
            }
        }
    }

    /// Answers an undecodable frame. Returns the bytes to skip when its boundary is known
    /// (the connection goes on), `None` when more bytes are needed, or closes.
    async fn frame_error(
        &mut self,
        buf: &[u8],
        e: outpost_firmware::Error,
    ) -> Result<Option<usize>, &'static str> {
        use outpost_firmware::Error as E;
        match e {
            E::FrameTooLarge { .. } => {
                let msg = "frame exceeds the broker's max_frame_bytes";
                send_error(&self.replies, 0, ErrorCode::FRAME_TOO_LARGE, msg).await;
                Err("frame too large")
            }
            _ => match codec::frame_len(buf, self.config.max_frame_bytes) {
                Ok(Some((prefix, body))) => {
                    let msg = "malformed or unknown frame";
                    send_error(&self.replies, 0, ErrorCode::MALFORMED_FRAME, msg).await;
                    if self.session.state() == super::session::State::AwaitHello {
                        return Err("malformed frame before hello");
                    }
                    Ok(Some(prefix + body as usize))
                }
                Ok(None) => Ok(None),
                Err(_) => {
                    let msg = "malformed frame length";
                    send_error(&self.replies, 0, ErrorCode::MALFORMED_FRAME, msg).await;
                    Err("malformed length prefix")
                }
            },
        }
    }

    async fn handle(&mut self, frame: &Frame<'_>) -> Result<(), &'static str> {
        // A refused request is answered with its own id (the client then sees the reason),
        // and the connection closes.
        let id = frame.request_id().unwrap_or(0);
        if !self.device_credentials_hold() {
            let msg = "device token changed or removed";
            send_error(&self.replies, id, ErrorCode::NOT_AUTHORIZED, msg).await;
            return Err(msg);
        }
        // After a reload of the password file (SIGHUP): a user removed, or whose password
        // changed, is logged out at its next request. One atomic load while nothing changed.
        if let Some(p) = self.permissions.as_mut() {
            if p.is_stale() {
                p.refresh();
            }
            if p.revoked() {
                p.log_revoked();
                let msg = "login revoked: user removed from the password file or password changed";
                send_error(&self.replies, id, ErrorCode::NOT_AUTHORIZED, msg).await;
                return Err(msg);
            }
        }
        self.touch_device();
        match self.session.admit(frame) {
            Gate::Welcome => {
                if let Some(user) = &self.cert_identity {
                    let identity = Identity::user(user);
                    self.session.logged_in();
                    let client_id = self.session.client_id();
                    self.permissions = Some(self.security.permissions(&identity, client_id));
                } else if !self.security.requires_login() {
                    let client_id = self.session.client_id();
                    self.permissions =
                        Some(self.security.permissions(&Identity::ANONYMOUS, client_id));
                }
                let ack = Frame::HelloAck {
                    version: outpost_firmware::PROTOCOL_VERSION,
                    broker_time_ms: crate::log::now_ms(),
                    max_frame_len: self.config.max_frame_bytes,
                };
                send(&self.replies, &ack).await;
                Ok(())
            }
            Gate::Refuse {
                code,
                message,
                close,
            } => {
                let id = frame.request_id().unwrap_or(0);
                send_error(&self.replies, id, code, message).await;
                if close {
                    Err(message)
                } else {
                    Ok(())
                }
            }
            Gate::CheckDevice => self.device_hello(frame).await,
            // Only `Session::device_checked` returns it, inside `device_hello`.
            Gate::WelcomeDevice => Ok(()),
            Gate::Authenticate => self.login(frame).await,
            Gate::Serve => {
                if self.authorize(frame).await {
                    self.serve_request(frame).await;
                }
                Ok(())
            }
        }
    }

    /// Answers an `Authenticate`: `Done`, or `NOT_AUTHORIZED` (closing after too many
    /// failures), or `BUSY` when the broker is verifying too many logins.
    async fn login(&mut self, frame: &Frame<'_>) -> Result<(), &'static str> {
        let Frame::Authenticate {
            request_id,
            username,
            password,
        } = *frame
        else {
            return Ok(());
        };
        let login = Login {
            client_id: self.session.client_id(),
            username: Some(username),
            password: Some(password),
            cert_identity: None,
        };
        match self.security.authenticate(login).await {
            Ok(identity) => {
                self.session.logged_in();
                let client_id = self.session.client_id();
                self.permissions = Some(self.security.permissions(&identity, client_id));
                send(&self.replies, &Frame::Done { request_id }).await;
                Ok(())
            }
            Err(Refusal::Busy) => {
                let msg = "too many logins at once; try again later";
                send_error(&self.replies, request_id, ErrorCode::BUSY, msg).await;
                Ok(())
            }
            Err(_) => {
                let msg = "bad user name or password";
                send_error(&self.replies, request_id, ErrorCode::NOT_AUTHORIZED, msg).await;
                if self.session.login_failed() {
                    return Err("too many failed logins");
                }
                Ok(())
            }
        }
    }

    /// Checks `frame` against the client's ACL; answers `NOT_AUTHORIZED` and returns false
    /// when refused.
    async fn authorize(&mut self, frame: &Frame<'_>) -> bool {
        let Some(p) = self.permissions.as_mut() else {
            // The session lets no request through before a login when one is required.
            return true;
        };
        let (action, topic) = match *frame {
            Frame::Produce { topic, .. } | Frame::RegisterAlias { topic, .. } => {
                (Action::Publish, topic)
            }
            Frame::Fetch { topic, .. }
            | Frame::CommitOffset { topic, .. }
            | Frame::FetchOffset { topic, .. } => (Action::Consume, topic),
            Frame::CreateTopic { name, .. } | Frame::DeleteTopic { name, .. } => {
                (Action::Admin, name)
            }
            // Consumers describe the topic they read: consume or admin on it.
            Frame::DescribeTopic { name, .. } if p.peek(Action::Consume, name).allowed => {
                return true
            }
            Frame::DescribeTopic { name, .. } => (Action::Admin, name),
            Frame::BridgeStatus { .. } => (Action::Admin, BRIDGE_STATUS_TOPIC),
            Frame::SetDevice { .. }
            | Frame::SetDeviceToken { .. }
            | Frame::DeleteDevice { .. }
            | Frame::GetDevices { .. } => (Action::Admin, DEVICES_TOPIC),
            // `ProduceAlias` and `Reading` are checked on their alias's topic when served.
            _ => return true,
        };
        let id = frame.request_id().unwrap_or(0);
        self.check(id, action, topic).await
    }

    /// Checks `action` on `topic` against the client's ACL; answers request `id` with
    /// `NOT_AUTHORIZED` and returns false when refused.
    async fn check(&mut self, id: u32, action: Action, topic: &str) -> bool {
        let Some(p) = self.permissions.as_mut() else {
            return true;
        };
        if p.check(action, topic).allowed {
            return true;
        }
        let msg = match action {
            Action::Publish => "not authorized to produce to this topic",
            Action::Consume => "not authorized to consume this topic",
            _ => "not authorized: this request needs admin rights",
        };
        send_error(&self.replies, id, ErrorCode::NOT_AUTHORIZED, msg).await;
        false
    }

    async fn permit(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed while the connection runs.
        self.inflight
            .clone()
            .acquire_owned()
            .await
            .expect("in-flight semaphore open")
    }

    async fn serve_request(&mut self, frame: &Frame<'_>) {
        let produces = matches!(
            frame,
            Frame::Produce { .. } | Frame::ProduceAlias { .. } | Frame::Reading { .. }
        );
        if !produces {
            // Requests after a produce see it queued first.
            self.flush_gather().await;
        }
        if let Frame::Produce {
            request_id,
            topic,
            partition,
            ack,
            records,
        } = frame
        {
            let req = ProduceReq {
                request_id: *request_id,
                topic,
                partition: *partition,
                reply: Reply::of_ack(*ack),
            };
            return self.produce(req, records).await;
        }
        if self.serve_device_frame(frame).await {
            return;
        }
        if let Frame::Ping { request_id } = frame {
            let pong = Frame::Pong {
                request_id: *request_id,
            };
            return send(&self.replies, &pong).await;
        }
        if let Frame::BridgeStatus { request_id } = frame {
            // At most this connection's frame limit, and never past the default limit every
            // client accepts (as for fetch replies).
            let max = self
                .config
                .max_frame_bytes
                .min(codec::DEFAULT_MAX_FRAME_LEN);
            return handlers::bridge_status(&self.bridges, &self.replies, *request_id, max).await;
        }
        if let Some((id, request)) = handlers::DeviceAdmin::from_frame(frame) {
            let max = self
                .config
                .max_frame_bytes
                .min(codec::DEFAULT_MAX_FRAME_LEN);
            let permit = self.permit().await;
            let (devices, replies) = (self.devices.clone(), self.replies.clone());
            tokio::spawn(async move {
                handlers::device_admin(&devices, &replies, id, request, max).await;
                drop(permit);
            });
            return;
        }
        if let (Frame::ListTopics { request_id }, Some(p)) = (frame, &self.permissions) {
            // Only the topics the client may consume or administer.
            let (mut p, id) = (p.clone(), *request_id);
            let permit = self.permit().await;
            let (log, replies) = (self.log.clone(), self.replies.clone());
            tokio::spawn(async move {
                let visible = |name: &str| {
                    p.peek(Action::Consume, name).allowed || p.peek(Action::Admin, name).allowed
                };
                handlers::list_topics(&log, &replies, id, visible).await;
                drop(permit);
            });
            return;
        }
        let Some(owned) = handlers::OwnedRequest::from_frame(frame) else {
            let id = frame.request_id().unwrap_or(0);
            return send_error(
                &self.replies,
                id,
                ErrorCode::UNEXPECTED_FRAME,
                "unexpected frame",
            )
            .await;
        };
        let permit = self.permit().await;
        let (log, replies) = (self.log.clone(), self.replies.clone());
        tokio::spawn(async move {
            handlers::run(owned, &log, &replies).await;
            drop(permit);
        });
    }

    /// Adds a produce to the gathered ones: consecutive produces of one read for the same
    /// partition become one writer request (its records stay contiguous and in order, so each
    /// produce's offsets are its slice of the request's range). A client keeping many small
    /// produces in flight then costs the writer one request per read, not one per produce.
    async fn produce(&mut self, req: ProduceReq<'_>, records: &outpost_firmware::Records<'_>) {
        let id = req.request_id;
        let pending = match produce::encode_records(&mut self.builder, records) {
            Ok(p) => p,
            Err((code, msg)) => return send_error(&self.replies, id, code, msg).await,
        };
        let target = match produce::target_of(req.partition, records) {
            Ok(t) => t,
            Err(msg) => {
                return send_error(&self.replies, id, ErrorCode::INVALID_REQUEST, msg).await
            }
        };
        self.gather_append(req, target, pending).await;
    }

    /// Adds encoded records to the gather (see [`Conn::produce`]), or answers the error.
    async fn gather_append(
        &mut self,
        req: ProduceReq<'_>,
        target: Target<'_>,
        pending: PendingRecords,
    ) {
        let id = req.request_id;
        let partition = match self.log.resolve_partition(req.topic, target) {
            Ok(p) => p,
            Err(e) => return req.reply.answer(&self.replies, id, Err(e)).await,
        };
        let fits = self.gather.as_ref().is_some_and(|g| {
            g.topic == req.topic
                && g.partition == partition
                && g.members.len() < self.config.max_inflight as usize
        });
        if !fits {
            self.flush_gather().await;
        }
        self.stats.messages(u64::from(pending.records));
        let g = self.gather.get_or_insert_with(|| Gather {
            topic: req.topic.to_owned(),
            partition,
            records: PendingRecords::default(),
            members: Vec::new(),
        });
        g.records.batches.extend_from_slice(&pending.batches);
        g.records.records += pending.records;
        g.members.push((id, req.reply, pending.records));
    }

    /// Queues the gathered produces as one append and answers each after its commit.
    async fn flush_gather(&mut self) {
        let Some(g) = self.gather.take() else {
            return;
        };
        let n = g.members.len() as u32;
        // The semaphore is never closed while the connection runs; a group has at most
        // max_inflight members.
        let permits = self
            .inflight
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("in-flight semaphore open");
        let queued = self
            .log
            .enqueue_append(&g.topic, Target::Partition(g.partition), g.records)
            .await;
        let replies = self.replies.clone();
        let members = g.members;
        tokio::spawn(async move {
            let result = match queued {
                Ok(p) => p.wait().await,
                Err(e) => Err(e),
            };
            let mut next = result.as_ref().map_or(0, |a| a.base_offset);
            for (id, reply, count) in members {
                let mine = result.clone().map(|a| Appended {
                    partition: a.partition,
                    base_offset: next,
                    count,
                });
                next += u64::from(count);
                reply.answer(&replies, id, mine).await;
            }
            drop(permits);
        });
    }

    /// No request of this connection is in flight (a long-poll fetch is not idleness).
    fn is_idle(&self) -> bool {
        self.inflight.available_permits() == self.config.max_inflight as usize
    }

    /// Waits (bounded) for this connection's in-flight requests so their replies go out.
    async fn drain(&mut self) {
        let all = self.config.max_inflight;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.inflight.acquire_many(all)).await;
    }
}

struct ProduceReq<'a> {
    request_id: u32,
    topic: &'a str,
    partition: Option<u32>,
    reply: Reply,
}
