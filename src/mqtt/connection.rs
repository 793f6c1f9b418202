//! One MQTT connection: a tokio task around [`Session`].
//!
//! The task reads packets into a buffer bounded by `max_packet_bytes` (a packet announcing
//! more is refused from its fixed header, before its body is buffered), hands them to the
//! session, performs the session's actions against the [`Broker`], and writes what the session
//! queued. QoS 1/2 publishes wait for their commit in a FIFO (so PUBACKs go out in PUBLISH
//! order, [MQTT-4.6.0-2]) while reading goes on; the session bounds how many may wait
//! (Receive Maximum). Deliveries are pulled from the session's queue in the broker only while
//! the client's window and the outgoing buffer have room, so a slow client holds its messages
//! in its bounded queue, not in this task.
//!
//! Access ([`crate::auth`]): CONNECT's credentials are checked before the session is attached
//! (v5 0x86 / v3 4 for bad ones, v5 0x87 / v3 5 for a missing login or a will topic the ACL
//! refuses, server busy while too many logins are being verified). Each PUBLISH is checked
//! against the client's compiled rules: a refused one is neither stored nor routed; QoS 1/2
//! get PUBACK/PUBREC 0x87 on v5, and on 3.1.1, which has no negative acknowledgement
//! ([MQTT-3.3.5]: acknowledge or close), a positive one. Each SUBSCRIBE filter is checked:
//! refused ones get 0x87 (v3: 0x80). A resumed session's stored subscriptions are checked
//! again at CONNECT, and after a reload of the rules when the connection next wakes; the
//! refused ones are removed. Each delivery is checked too (`subscribe` on its topic): what
//! a subscription granted under older rules still routes is dropped, not sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::broker::{Attached, Broker, Published};
use super::codec;
use super::packet::{reason, Protocol, QoS};
use super::session::{Action, Close, Session, SessionConfig, SubscribeEntry};
use super::topic;
use crate::admin::counters::ConnectionStats;
use crate::auth::{self, Login, Permissions, Refusal, Security};
use crate::log::batch::{BatchBuilder, Compression};
use crate::shutdown::Shutdown;
use crate::transport::{Peer, Transport};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;
/// Longest a publisher waits, per batch of publishes, for subscribers' queues to drain
/// below half.
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(100);
/// First read buffer of a quiet connection; a read smaller than this frees the emptied buffer.
const IDLE_BUFFER: usize = 1024;
/// Deliveries are not pulled while this many bytes wait to be written.
const TRANSMIT_HIGH_WATER: usize = 64 << 10;
/// A write that makes no progress for this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for its publishes' commits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Session limits.
    pub session: SessionConfig,
    /// Largest batch built for one message.
    pub batch_max_bytes: usize,
}

/// A QoS 1/2 publish waiting for its commit.
struct Waiting {
    packet_id: u16,
    qos: QoS,
    published: Published,
    /// Refused by the ACL: answered in order, but not a commit the next publish can share.
    denied: bool,
}

struct Conn {
    broker: Broker,
    /// Publishes read but not yet handed to the broker (see `perform`).
    batch: Vec<(super::message::Message, u16)>,
    /// Whether the last completed QoS 1/2 publish was stored (for `Commit::WithPrevious`).
    last_stored: bool,
    /// Queue-row changes of persistent deliveries not yet handed to the writer.
    rows: Vec<crate::log::StateOp>,
    /// Some of `rows` must be committed before the packets queued with them go out.
    rows_before_send: bool,
    session: Session,
    attached: Option<Attached>,
    waiting: VecDeque<Waiting>,
    builder: BatchBuilder,
    /// Over the connection limit: CONNECT is answered "server busy".
    refuse: bool,
    /// Socket traffic of the MQTT listener.
    io: Arc<ConnectionStats>,
    security: Security,
    /// The client's compiled ACL rules, from CONNECT on (boxed: idle connections stay small).
    permissions: Option<Box<Permissions>>,
    /// The user a verified client certificate names (`identity_as_username`): it logs in
    /// without a password, whatever CONNECT says.
    cert_identity: Option<Box<str>>,
}

/// What every connection of the MQTT listeners shares.
#[derive(Clone)]
pub struct Shared {
    /// The broker.
    pub broker: Broker,
    /// Logins and ACL checks.
    pub security: Security,
    /// The listener's connection and traffic counters.
    pub io: Arc<ConnectionStats>,
}

/// Serves one connection until it closes. `over_limit` connections are refused at CONNECT.
/// Socket bytes are counted in `shared.io`.
pub async fn serve(
    stream: Transport,
    peer: Peer,
    shared: Shared,
    config: ConnConfig,
    shutdown: Shutdown,
    over_limit: bool,
) {
    let Shared {
        broker,
        security,
        io,
    } = shared;
    // Small packets must not wait for Nagle (FIELD-NOTES.md).
    let _ = stream.tcp().set_nodelay(true);
    let mut conn = Conn {
        broker,
        batch: Vec::new(),
        last_stored: true,
        rows: Vec::new(),
        rows_before_send: false,
        session: Session::new(config.session, Instant::now()),
        attached: None,
        waiting: VecDeque::new(),
        builder: BatchBuilder::new(Compression::None, config.batch_max_bytes),
        refuse: over_limit,
        io,
        security,
        permissions: None,
        cert_identity: peer.cert_identity.as_deref().map(Box::from),
    };
    let (close, mut stream) = conn.run(stream, config, shutdown).await;
    // Flush what the session said last (CONNACK refusal, DISCONNECT), bounded.
    let out = std::mem::take(conn.session.transmit());
    if !out.is_empty() {
        if let Ok(Ok(())) = tokio::time::timeout(WRITE_TIMEOUT, write_out(&mut stream, &out)).await
        {
            conn.io.sent(out.len());
        }
    }
    let _ = stream.shutdown().await;
    tracing::debug!(peer = ?peer.addr, reason = close.reason, "MQTT connection closed");
    Box::pin(conn.finish(close)).await;
}

impl Conn {
    async fn run(
        &mut self,
        mut stream: Transport,
        config: ConnConfig,
        shutdown: Shutdown,
    ) -> (Close, Transport) {
        let max_packet = config.session.max_packet_bytes;
        let mut buf: Vec<u8> = Vec::new();
        let mut stop = shutdown.subscribe();
        let close = 'conn: loop {
            if let Err(close) = self.follow_reload().await {
                break close;
            }
            self.pull_deliveries();
            if let Err(close) = self.perform().await {
                break close;
            }
            let out = std::mem::take(self.session.transmit());
            if !out.is_empty() {
                match tokio::time::timeout(WRITE_TIMEOUT, write_out(&mut stream, &out)).await {
                    Ok(Ok(())) => self.io.sent(out.len()),
                    _ => {
                        break Close {
                            reason: reason::UNSPECIFIED_ERROR,
                            publish_will: true,
                        }
                    }
                }
                // Keep a small allocation for the next round; free a big one.
                let t = self.session.transmit();
                if t.is_empty() && out.capacity() <= IDLE_BUFFER * 4 {
                    *t = out;
                    t.clear();
                }
            }
            let deadline = self.session.poll_timeout();
            let slot = self.attached.as_ref().map(|a| a.slot.clone());
            let has_waiting = !self.waiting.is_empty();
            let last_stored = self.last_stored;
            let waiting = self.waiting.front_mut();
            tokio::select! {
                read = read_some(&mut stream, &mut buf, max_packet) => {
                    let n = match read {
                        Ok(0) | Err(_) => break Close { reason: reason::UNSPECIFIED_ERROR, publish_will: true },
                        Ok(n) => n,
                    };
                    self.io.received(n);
                    let mut start = 0;
                    loop {
                        match codec::frame_len(&buf[start..], max_packet) {
                            Ok(None) => break,
                            Ok(Some(len)) => {
                                let packet = &buf[start..start + len];
                                let result = match codec::decode(packet, self.session.protocol()) {
                                    Ok(p) => self.session.handle_packet(p, Instant::now()),
                                    Err(e) => Err(self.session.handle_decode_error(e)),
                                };
                                start += len;
                                if let Err(close) = result {
                                    break 'conn close;
                                }
                                // Actions in packet order: CONNECT must attach before the next
                                // packet is handled. Publishes are gathered and handed over
                                // together when the buffer runs dry (or another action comes).
                                if let Err(close) = self.perform_gathering().await {
                                    break 'conn close;
                                }
                            }
                            Err(e) => break 'conn self.session.handle_decode_error(e),
                        }
                    }
                    buf.drain(..start);
                    if buf.is_empty() && n < IDLE_BUFFER {
                        // A small read (a ping, a lone sensor reading) marks a quiet
                        // connection: it keeps no read buffer while it waits (10,000 idle
                        // connections would hold 160 MiB of 16 KiB chunks otherwise). Busy
                        // ones keep theirs.
                        buf = Vec::new();
                    }
                    if let Err(close) = self.flush_publishes().await {
                        break close;
                    }
                }
                done = async { waiting.expect("guarded").published.wait(last_stored).await }, if has_waiting => {
                    // Complete the head and every publish behind it that is already done (one
                    // commit usually answers many): their acks then leave in one write.
                    let mut stored = Some(done);
                    while let Some(done) = stored {
                        let w = self.waiting.pop_front().expect("guarded by the branch condition");
                        if !w.denied {
                            self.last_stored = done;
                        }
                        match w.published.complete(done) {
                            Ok(code) => self.session.published(w.packet_id, w.qos, code),
                            // v3 has no negative PUBACK: close so the client re-sends.
                            Err(code) if !self.session.protocol().is_v5() => break 'conn self.session.close(code, true),
                            Err(code) => self.session.published(w.packet_id, w.qos, code),
                        }
                        let last = self.last_stored;
                        stored = self.waiting.front_mut().and_then(|w| w.published.try_wait(last));
                    }
                }
                _ = async { slot.expect("guarded").notify.notified().await }, if slot.is_some() => {
                    if let Some(a) = &self.attached {
                        if let Some(code) = a.slot.kicked(a.conn) {
                            break self.session.close(code, true);
                        }
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Err(close) = self.session.handle_timeout(Instant::now()) {
                        break close;
                    }
                }
                _ = async { stop.wait_for(|&s| s).await.map(|_| ()) } => {
                    // Shutdown: sessions are parked (and persisted); wills are not published.
                    break self.session.close(reason::SERVER_SHUTTING_DOWN, false);
                }
            }
        };
        (close, stream)
    }

    /// Moves deliveries from the session's queue into the session while there is room.
    /// A delivery the client's rules do not let it receive (its subscription was granted
    /// under rules reloaded since) is dropped and its queue row forgotten.
    fn pull_deliveries(&mut self) {
        let Some(a) = &self.attached else {
            return;
        };
        let now_ms = crate::log::now_ms();
        while self.session.transmit().len() < TRANSMIT_HIGH_WATER {
            let Some(d) = a.slot.pop(self.session.send_quota()) else {
                break;
            };
            if let Some(p) = self.permissions.as_deref_mut() {
                if !p.check(auth::Action::Subscribe, &d.msg.topic).allowed {
                    if let Some(op) = self.broker.delivery_ops(&a.slot, &d, true) {
                        self.rows.push(op);
                    }
                    continue;
                }
            }
            self.broker.count_sent(d.msg.payload.len());
            self.session.deliver(d, now_ms);
        }
    }

    /// Performs the session's pending actions, keeping publishes back for
    /// [`Conn::flush_publishes`].
    async fn perform_gathering(&mut self) -> Result<(), Close> {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Publish { msg, packet_id } => self.batch.push((msg, packet_id)),
                other => {
                    self.flush_publishes().await?;
                    self.perform_one(other).await?;
                }
            }
        }
        Ok(())
    }

    /// Hands the gathered publishes to the broker as one batch; the ones the ACL refuses are
    /// answered in their place in the order, never stored or routed.
    async fn flush_publishes(&mut self) -> Result<(), Close> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        self.io.messages(batch.len() as u64);
        // (packet id, QoS, allowed) in PUBLISH order.
        let ids: Vec<(u16, QoS, bool)> = match self.permissions.as_deref_mut() {
            Some(p) => batch
                .iter()
                .map(|(m, pid)| {
                    (
                        *pid,
                        m.qos,
                        p.check(auth::Action::Publish, &m.topic).allowed,
                    )
                })
                .collect(),
            None => batch.iter().map(|(m, pid)| (*pid, m.qos, true)).collect(),
        };
        if ids.iter().any(|&(_, _, allowed)| !allowed) {
            let mut allowed = ids.iter().map(|&(_, _, a)| a);
            batch.retain(|_| allowed.next().unwrap_or(false));
        }
        let publisher = self.attached.as_ref().map(|a| a.slot.clone());
        // Boxed (one allocation per read, not per message): inline, this large future would
        // size every idle connection's task.
        let mut congested = Vec::new();
        let results = if batch.is_empty() {
            Vec::new()
        } else {
            Box::pin(self.broker.publish_batch(
                batch,
                publisher.as_deref(),
                &mut self.builder,
                &mut congested,
            ))
            .await
        };
        // Backpressure: let subscribers this batch filled past half catch up (bounded) before
        // reading more. Never wait on our own session: only this task drains it.
        let own = self.attached.as_ref().map(|a| a.slot.id);
        let deadline = Instant::now() + BACKPRESSURE_WAIT;
        for slot in congested.iter().filter(|s| Some(s.id) != own) {
            let left = deadline.saturating_duration_since(Instant::now());
            // Boxed: back-pressure is rare, and its future would size every connection.
            Box::pin(slot.wait_drained(left)).await;
        }
        let v5 = self.session.protocol() == Protocol::V5;
        let mut results = results.into_iter();
        for (packet_id, qos, allowed) in ids {
            let result = if allowed {
                results.next().unwrap_or(Err(reason::UNSPECIFIED_ERROR))
            } else if qos == QoS::AtMostOnce {
                continue;
            } else {
                // v3.1.1 has no negative PUBACK ([MQTT-3.3.5]): acknowledge and discard.
                let code = if v5 {
                    reason::NOT_AUTHORIZED
                } else {
                    reason::SUCCESS
                };
                let published = Published::answered(code, qos);
                self.waiting.push_back(Waiting {
                    packet_id,
                    qos,
                    published,
                    denied: true,
                });
                continue;
            };
            match result {
                Ok(p) if qos == QoS::AtMostOnce => p.deliver_now(),
                Ok(published) => self.waiting.push_back(Waiting {
                    packet_id,
                    qos,
                    published,
                    denied: false,
                }),
                Err(_) if qos == QoS::AtMostOnce => {}
                Err(code) if v5 => self.session.published(packet_id, qos, code),
                // v3 has no negative PUBACK: close so the client re-sends.
                Err(code) => return Err(self.session.close(code, true)),
            }
        }
        Ok(())
    }

    /// Performs the session's pending actions, then stores queue-row changes (waiting for
    /// the commit when a PUBLISH or PUBREL about to be written depends on one).
    async fn perform(&mut self) -> Result<(), Close> {
        self.perform_gathering().await?;
        self.flush_publishes().await?;
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        if std::mem::take(&mut self.rows_before_send) {
            if let Err(e) = Box::pin(self.broker.store_state(rows)).await {
                tracing::warn!(error = %e, "delivery state not stored; closing the connection");
                return Err(self.session.close(reason::UNSPECIFIED_ERROR, true));
            }
        } else {
            Box::pin(self.broker.queue_state(rows)).await;
        }
        Ok(())
    }

    async fn perform_one(&mut self, action: Action) -> Result<(), Close> {
        match action {
            Action::Connect(info) => {
                if self.refuse {
                    return Err(self.session.refuse(reason::SERVER_BUSY));
                }
                // Boxed: rare, and its future is large; inline it would size every idle connection.
                Box::pin(self.login(&info)).await?;
                match Box::pin(self.broker.connect(&info)).await {
                    Ok(mut attached) => {
                        if attached.session_present {
                            Box::pin(self.recheck_subscriptions(&attached.slot)).await;
                        }
                        let state = std::mem::take(&mut attached.state);
                        self.session.connected(
                            attached.slot.id,
                            attached.session_present,
                            state,
                            Instant::now(),
                        );
                        self.attached = Some(attached);
                    }
                    Err(code) => return Err(self.session.refuse(code)),
                }
            }
            Action::Publish { msg, packet_id } => {
                self.batch.push((msg, packet_id));
                self.flush_publishes().await?;
            }
            Action::Subscribe {
                packet_id,
                mut entries,
            } => {
                self.authorize_subscriptions(&mut entries);
                let Some(a) = &self.attached else {
                    return Ok(());
                };
                let reasons = Box::pin(self.broker.subscribe(&a.slot, &entries)).await;
                self.session.subscribed(packet_id, &reasons);
            }
            Action::Unsubscribe { packet_id, filters } => {
                let Some(a) = &self.attached else {
                    return Ok(());
                };
                let reasons = Box::pin(self.broker.unsubscribe(&a.slot, &filters)).await;
                self.session.unsubscribed(packet_id, &reasons);
            }
            Action::InboundDone(pid) => {
                if let Some(a) = &self.attached {
                    // Boxed: QoS 2 only, and its future would size every connection.
                    Box::pin(self.broker.inbound_done(&a.slot, pid)).await;
                }
            }
            Action::Done(d) | Action::Sent(d) | Action::Released(d) if d.seq.is_none() => {}
            Action::Done(d) => self.row(&d, true),
            Action::Sent(d) | Action::Released(d) => {
                self.row(&d, false);
                self.rows_before_send = true;
            }
        }
        Ok(())
    }

    /// Checks CONNECT's credentials and will topic, and compiles the client's rules.
    async fn login(&mut self, info: &super::session::ConnectInfo) -> Result<(), Close> {
        let login = Login {
            client_id: &info.client_id,
            username: info.username.as_deref(),
            password: info.password.as_ref().map(auth::Secret::expose),
            // The identity of a TLS client certificate (identity_as_username) goes here.
            cert_identity: self.cert_identity.as_deref(),
        };
        let identity = match self.security.authenticate(login).await {
            Ok(identity) => identity,
            Err(refusal) => {
                let code = match refusal {
                    Refusal::BadCredentials => reason::BAD_USER_NAME_OR_PASSWORD,
                    Refusal::NotAuthorized => reason::NOT_AUTHORIZED,
                    Refusal::Busy => reason::SERVER_BUSY,
                };
                return Err(self.session.refuse(code));
            }
        };
        let mut permissions = self.security.permissions(&identity, &info.client_id);
        // A will is a publish decided now: refuse the connection rather than drop the will
        // silently later (v5 0x87, v3 5).
        if let Some(topic) = self.session.will_topic() {
            if !permissions.check(auth::Action::Publish, topic).allowed {
                return Err(self.session.refuse(reason::NOT_AUTHORIZED));
            }
        }
        self.permissions = Some(Box::new(permissions));
        Ok(())
    }

    /// Refuses (0x87; v3 0x80) the filters of a SUBSCRIBE the ACL does not allow.
    fn authorize_subscriptions(&mut self, entries: &mut [Result<SubscribeEntry, u8>]) {
        let Some(p) = self.permissions.as_deref_mut() else {
            return;
        };
        let max_levels = self.broker.max_topic_levels();
        for entry in entries.iter_mut() {
            let Ok(e) = entry else { continue };
            let allowed = match topic::parse_filter(&e.filter, max_levels) {
                Ok(f) => p.check_subscribe(f.filter).allowed,
                Err(_) => continue,
            };
            if !allowed {
                *entry = Err(reason::NOT_AUTHORIZED);
            }
        }
    }

    /// After a reload of the password file and rules (SIGHUP): closes the connection when its
    /// login was revoked (the user removed or its password changed: MQTT 5 gets DISCONNECT
    /// 0x87; its session and subscriptions are kept for a new login, its will is not
    /// published), else drops the subscriptions the rules no longer allow. Checked whenever
    /// the connection wakes (a delivery, a packet, a keep-alive timer): deliveries routed
    /// before that may still go out.
    async fn follow_reload(&mut self) -> Result<(), Close> {
        let Some(p) = self.permissions.as_deref_mut() else {
            return Ok(());
        };
        if !p.is_stale() {
            return Ok(());
        }
        p.refresh();
        if p.revoked() {
            p.log_revoked();
            return Err(self.session.close(reason::NOT_AUTHORIZED, false));
        }
        if let Some(slot) = self.attached.as_ref().map(|a| a.slot.clone()) {
            Box::pin(self.recheck_subscriptions(&slot)).await;
        }
        Ok(())
    }

    /// A resumed session keeps its subscriptions, and reloaded rules may refuse some: drop
    /// the ones the rules do not allow (each counted and logged as a refused subscribe).
    async fn recheck_subscriptions(&mut self, slot: &std::sync::Arc<super::broker::Slot>) {
        let Some(p) = self.permissions.as_deref_mut() else {
            return;
        };
        let max_levels = self.broker.max_topic_levels();
        let denied: Vec<String> = self
            .broker
            .session_filters(slot)
            .into_iter()
            .filter(|f| {
                topic::parse_filter(f, max_levels)
                    .map_or(true, |parsed| !p.check_subscribe(parsed.filter).allowed)
            })
            .collect();
        if !denied.is_empty() {
            self.broker.unsubscribe(slot, &denied).await;
        }
    }

    fn row(&mut self, d: &super::session::Delivery, done: bool) {
        if let Some(a) = &self.attached {
            if let Some(op) = self.broker.delivery_ops(&a.slot, d, done) {
                self.rows.push(op);
            }
        }
    }

    /// After the socket closed: let waiting publishes commit (their QoS 2 ids then belong to
    /// the parked session), then park or end the session.
    async fn finish(mut self, close: Close) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // Publishes read before the packet that ended the connection (typically a QoS 0
        // PUBLISH followed by DISCONNECT in one segment) are valid: store and route them.
        let _ = self.flush_publishes().await;
        while let Some(mut w) = self.waiting.pop_front() {
            let left = deadline.saturating_duration_since(Instant::now());
            let done = tokio::time::timeout(left, w.published.wait(self.last_stored))
                .await
                .unwrap_or(false);
            if !w.denied {
                self.last_stored = done;
            }
            if let Ok(code) = w.published.complete(done) {
                self.session.published(w.packet_id, w.qos, code);
            }
        }
        // Row changes the last packets asked for.
        let _ = self.perform().await;
        let Some(attached) = self.attached.take() else {
            return;
        };
        self.broker.count_dropped(self.session.counters().dropped);
        let expiry = self.session.session_expiry();
        let will = self.session.take_will();
        let state = self.session.into_state();
        self.broker
            .disconnect(&attached, state, close, will, expiry)
            .await;
    }
}

/// Reads more bytes into `buf`, which never holds more than one maximal packet plus a chunk.
/// A plain socket waits for readability first and only then grows the buffer, so an idle
/// connection holds no read buffer at all (the caller frees an emptied one). Cancel-safe.
async fn read_some(
    stream: &mut Transport,
    buf: &mut Vec<u8>,
    max_packet: u32,
) -> std::io::Result<usize> {
    // Saturating: u32::MAX + a chunk overflows a 32-bit usize.
    let limit = (max_packet as usize).saturating_add(READ_CHUNK);
    let room = limit.saturating_sub(buf.len()).min(READ_CHUNK);
    if room == 0 {
        // Framing refuses anything over max_packet from its header, and every whole packet is
        // handled right after a read: a full buffer cannot happen.
        std::future::pending::<()>().await;
    }
    // A quiet connection reads into a small buffer first; a busy one grows it.
    stream.read_some(buf, room, IDLE_BUFFER).await
}

/// Writes `out` and flushes it (TLS keeps encrypted records until flushed).
async fn write_out(stream: &mut Transport, out: &[u8]) -> std::io::Result<()> {
    stream.write_all(out).await?;
    stream.flush().await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection costs its task's size: keep large, rare futures boxed (10,000
    /// idle connections at 2 KiB each are 20 MiB).
    #[tokio::test]
    async fn idle_connection_task_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_owned(),
            ..crate::config::Config::default()
        };
        let log = crate::log::Log::open(&config).unwrap();
        let broker = super::Broker::open(log.clone(), &config.mqtt, 16364).unwrap();
        let session = crate::mqtt::session::SessionConfig {
            max_packet_bytes: 1 << 20,
            receive_maximum: 10,
            max_inflight: 10,
            topic_alias_maximum: 0,
            max_topic_levels: 8,
            max_keep_alive_secs: 0,
            max_session_expiry_secs: 0,
        };
        let cfg = super::ConnConfig {
            session,
            batch_max_bytes: 16364,
        };
        let shared = super::Shared {
            broker,
            security: crate::auth::Security::open_access(),
            io: std::sync::Arc::default(),
        };
        let task = super::serve(
            crate::transport::Transport::Tcp(s),
            crate::transport::Peer::default(),
            shared,
            cfg,
            crate::shutdown::Shutdown::new(),
            false,
        );
        let size = std::mem::size_of_val(&task);
        drop(task);
        log.shutdown().await;
        assert!(size <= 3 * 1024, "connection task is {size} bytes");
    }
}
