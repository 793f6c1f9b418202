//! The forwarder: one task per bridge, moving records from the log to its upstream.
//!
//! Rules, per route and partition (a *slot*):
//! - Records are read from the log at `next_send` and sent in offset order, so order per
//!   partition is kept upstream.
//! - `acked` is the end of the contiguous acknowledged prefix; acknowledgements beyond a gap
//!   wait in `ring` until the gap closes. Only `acked` is ever checkpointed.
//! - `durable` is the committed checkpoint. At most `max_inflight` records are sent beyond
//!   it, so after a crash at most `max_inflight` records are sent twice (each identifiable by
//!   its origin stamp).
//! - Checkpoints are committed in batches: when `checkpoint_interval_ms` passed, when half a
//!   window is acknowledged but not durable, when the window is full, and at shutdown.
//! - Any connection failure (error, refused message, watchdog) drops everything in flight:
//!   `next_send` goes back to `acked` and the next connection re-sends from the log,
//!   whether or not the upstream kept a session. Reconnects back off exponentially with
//!   jitter; the backoff resets once a connection stayed up for `HEALTHY_AFTER`.
//! - A record the upstream can never take (too large for it, a field over MQTT's 65,535 bytes,
//!   or refused with a permanent MQTT 5 reason such as Not authorized) is skipped, logged and
//!   counted as dropped, so one such record cannot stall its partition. Transient refusals
//!   (quota, unspecified) reconnect with backoff and re-send.
//! - A partition whose stored records do not decode is parked (status shows why); the others
//!   go on.
//! - Overflow: a checkpoint below the log start means retention deleted records before they
//!   were forwarded. Under `drop_oldest` the slot jumps to the log start and the exact range
//!   is logged and counted. Under `refuse` the slot holds retention at its durable
//!   checkpoint, so this only happens if the hold was not in place (logged as an error).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{BridgeConfig, Overflow, StartAt, UpstreamKind};
use crate::kafka::KafkaUpstream;
use crate::mqtt::{MqttUpstream, SetupError};
use crate::pace::{Backoff, Bucket, LogGate, REPEAT_LOG_INTERVAL};
use crate::source::{Checkpoint, CheckpointStore, LogSource, SourceRecord, ALL_PARTITIONS};
use crate::status::{BridgeStatus, PartitionStatus, RouteStatus, StatusBoard};
use crate::upstream::{MsgId, OutRecord, SendError, Upstream, UpstreamEvent};
use crate::window::{Entry, Slot};

/// How often topics, offsets and lag are refreshed.
const TICK: Duration = Duration::from_secs(1);
/// How often the status board is refreshed.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// Longest wait for new data before re-checking (wait tasks are re-armed after it).
const WAIT_SLICE: Duration = Duration::from_secs(1);
/// How long shutdown waits for the last checkpoint commit.
const FINAL_COMMIT: Duration = Duration::from_secs(5);
/// A connection that lived this long (or delivered acknowledgements) resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);
/// Most upstream events handled in one pass of the loop.
const EVENT_BURST: usize = 1024;
/// The watchdog fires this long after its deadline (so it never fires early).
const WATCHDOG_SLACK: Duration = Duration::from_millis(10);
/// After a failed wait for data (its topic was deleted), wait this long before another.
const WAIT_RETRY: Duration = Duration::from_secs(1);
/// After a failed checkpoint commit, wait this long before trying again.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// Why a bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The MQTT upstream could not be set up (TLS files).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The Kafka upstream could not be set up (TLS files, topic names).
    #[error(transparent)]
    KafkaSetup(#[from] crate::kafka::SetupError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Stored checkpoints could not be read.
    #[error("bridge `{bridge}`: cannot read checkpoints: {problem}")]
    Checkpoints {
        /// The bridge.
        bridge: String,
        /// What failed.
        problem: String,
    },
}

/// Starts the bridge of `config` on `source`: loads its checkpoints, places retention holds
/// for `refuse` routes (before returning, so retention never runs ahead of them), then
/// forwards in a background task until `stop` turns true; at stop it commits the last
/// checkpoints and disconnects.
pub async fn start<S>(
    source: S,
    config: BridgeConfig,
    board: StatusBoard,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, StartError>
where
    S: LogSource + CheckpointStore + Clone,
{
    config.validate()?;
    let window: usize = config
        .routes
        .iter()
        .map(|r| r.max_inflight as usize)
        .sum::<usize>()
        // Routes to several partitions share the connection; a generous bound.
        .saturating_mul(4);
    let stored = source
        .load_checkpoints(&config.name)
        .map_err(|e| StartError::Checkpoints {
            bridge: config.name.clone(),
            problem: e.to_string(),
        })?;
    // One forwarder type for both kinds of upstream: its code is generated once.
    let upstream = match config.kind() {
        UpstreamKind::Mqtt => {
            AnyUpstream::Mqtt(MqttUpstream::new(&config, source.gateway_id(), window)?)
        }
        UpstreamKind::Kafka => {
            AnyUpstream::Kafka(KafkaUpstream::new(&config, source.gateway_id())?)
        }
    };
    let mut f = Forwarder::new(source, config, upstream, board, stored);
    f.refresh_topics().await;
    Ok(tokio::spawn(f.run(stop)))
}

/// The upstream of a bridge, MQTT or Kafka, behind one type.
enum AnyUpstream {
    Mqtt(MqttUpstream),
    Kafka(KafkaUpstream),
}

impl Upstream for AnyUpstream {
    fn connect(&mut self) {
        match self {
            Self::Mqtt(u) => u.connect(),
            Self::Kafka(u) => u.connect(),
        }
    }

    fn send(&mut self, id: MsgId, record: &OutRecord<'_>) -> Result<usize, SendError> {
        match self {
            Self::Mqtt(u) => u.send(id, record),
            Self::Kafka(u) => u.send(id, record),
        }
    }

    fn flush(&mut self) {
        match self {
            Self::Mqtt(u) => u.flush(),
            Self::Kafka(u) => u.flush(),
        }
    }

    async fn next_event(&mut self) -> UpstreamEvent {
        match self {
            Self::Mqtt(u) => u.next_event().await,
            Self::Kafka(u) => u.next_event().await,
        }
    }

    fn try_next_event(&mut self) -> Option<UpstreamEvent> {
        match self {
            Self::Mqtt(u) => u.try_next_event(),
            Self::Kafka(u) => u.try_next_event(),
        }
    }

    fn disconnect(&mut self) {
        match self {
            Self::Mqtt(u) => u.disconnect(),
            Self::Kafka(u) => u.disconnect(),
        }
    }
}

struct RouteState {
    name: String,
    topic: String,
    start: StartAt,
    overflow: Overflow,
    max_inflight: u64,
    batch_bytes: u32,
    linger: Duration,
    holder: String,
    slots: Vec<usize>,
    waiting: Option<String>,
    /// The topic did not exist when this process looked: every record it gets is newer than
    /// the route, so a new route starts at offset 0 whatever `start` says.
    missing: bool,
    /// A hold on every partition is placed while the topic is missing (refuse mode).
    all_held: bool,
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    upstream_topic: String,
    /// What keeps the upstream from taking this route's records (its topic is missing there).
    upstream_problem: Option<String>,
}

impl RouteState {
    /// Whether the route's rate limits let one more message go now.
    fn rate_ready(&mut self, now: Instant) -> bool {
        self.messages.as_mut().is_none_or(|b| b.ready(now))
            && self.bytes.as_mut().is_none_or(|b| b.ready(now))
    }

    /// Charges one message of `bytes` to the route's rate limits.
    fn rate_take(&mut self, bytes: u64, now: Instant) {
        if let Some(b) = self.messages.as_mut() {
            b.take(1, now);
        }
        if let Some(b) = self.bytes.as_mut() {
            b.take(bytes, now);
        }
    }
}

enum Conn {
    Down {
        retry_at: Instant,
    },
    Connecting {
        since: Instant,
    },
    Up {
        since: Instant,
        last_progress: Instant,
        healthy: bool,
    },
}

type CommitFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A checkpoint commit on its way: the future, `(slot, offset)` it stores, when it started.
type InflightCommit = (CommitFuture, Vec<(usize, u64)>, Instant);

struct Forwarder<S, U> {
    source: S,
    config: BridgeConfig,
    upstream: U,
    board: StatusBoard,
    board_index: usize,
    routes: Vec<RouteState>,
    slots: Vec<Slot>,
    stored: HashMap<(String, String, u32), Checkpoint>,
    conn: Conn,
    backoff: Backoff,
    ack_timeout: Duration,
    connect_timeout: Duration,
    checkpoint_interval: Duration,
    commit: Option<InflightCommit>,
    next_commit_at: Instant,
    waits: JoinSet<(usize, u64)>,
    connect_attempts: u64,
    connects: u64,
    last_error: Option<(String, u64)>,
    state_since: u64,
    /// Skipped records are logged at most once per interval: an upstream that refuses every
    /// record (e.g. 0x87 Not authorized) must not log a line per message.
    skip_log: LogGate,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<S, U> Forwarder<S, U>
where
    S: LogSource + CheckpointStore + Clone,
    U: Upstream,
{
    fn new(
        source: S,
        config: BridgeConfig,
        upstream: U,
        board: StatusBoard,
        stored: Vec<crate::source::CheckpointRow>,
    ) -> Self {
        let now = Instant::now();
        let routes = config
            .routes
            .iter()
            .map(|r| RouteState {
                name: r.name().to_owned(),
                topic: r.topic.clone(),
                // Validated in `start`.
                start: r.start_at().unwrap_or(StartAt::Earliest),
                overflow: r.overflow,
                max_inflight: u64::from(r.max_inflight),
                batch_bytes: r.batch_bytes,
                linger: Duration::from_millis(r.linger_ms),
                holder: format!("bridge/{}/{}", config.name, r.name()),
                slots: Vec::new(),
                waiting: Some("starting".to_owned()),
                missing: false,
                all_held: false,
                messages: Bucket::new(u64::from(r.rate_messages), now),
                bytes: Bucket::new(r.rate_bytes, now),
                upstream_topic: config.upstream_topic(r).to_owned(),
                upstream_problem: None,
            })
            .collect();
        let gateway = source.gateway_id().to_owned();
        let board_index = board.register(BridgeStatus {
            name: config.name.clone(),
            upstream: config.upstream.clone(),
            client_id: config.client_id(&gateway),
            since_ms: now_ms(),
            ..BridgeStatus::default()
        });
        Self {
            backoff: Backoff::new(
                Duration::from_millis(config.reconnect_min_ms),
                Duration::from_millis(config.reconnect_max_ms),
            ),
            ack_timeout: Duration::from_secs(u64::from(config.ack_timeout_secs)),
            connect_timeout: Duration::from_secs(u64::from(config.connect_timeout_secs) + 5),
            checkpoint_interval: Duration::from_millis(config.checkpoint_interval_ms),
            skip_log: LogGate::new(REPEAT_LOG_INTERVAL),
            source,
            upstream,
            board,
            board_index,
            routes,
            slots: Vec::new(),
            stored: stored
                .into_iter()
                .map(|(r, t, p, c)| ((r, t, p), c))
                .collect(),
            conn: Conn::Down { retry_at: now },
            commit: None,
            next_commit_at: now,
            waits: JoinSet::new(),
            connect_attempts: 0,
            connects: 0,
            last_error: None,
            state_since: now_ms(),
            config,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut next_tick = Instant::now() + TICK;
        let mut next_status = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let now = Instant::now();
            self.manage_connection(now);
            if matches!(self.conn, Conn::Up { .. }) {
                self.pump_all(now).await;
            }
            self.maybe_commit(now, false);
            if now >= next_tick {
                self.refresh_topics().await;
                self.refresh_offsets().await;
                next_tick = now + TICK;
            }
            if now >= next_status {
                self.publish_status();
                next_status = now + STATUS_EVERY;
            }
            let deadline = self.next_deadline(next_tick.min(next_status));
            let commit = &mut self.commit;
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                ev = self.upstream.next_event() => {
                    self.on_event(ev);
                    // Handle what else is ready in the same pass (bounded).
                    for _ in 0..EVENT_BURST {
                        let Some(ev) = self.upstream.try_next_event() else {
                            break;
                        };
                        self.on_event(ev);
                    }
                }
                res = async { match commit.as_mut() { Some((f, _, _)) => f.await, None => std::future::pending().await } } => {
                    self.on_committed(res);
                }
                Some(done) = self.waits.join_next(), if !self.waits.is_empty() => {
                    if let Ok((i, end)) = done {
                        self.on_data(i, end);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        self.shutdown().await;
    }

    // ------------------------------------------------------------------------------------
    // Connection

    fn manage_connection(&mut self, now: Instant) {
        match self.conn {
            Conn::Down { retry_at } if now >= retry_at => {
                self.connect_attempts += 1;
                self.upstream.connect();
                self.conn = Conn::Connecting { since: now };
            }
            Conn::Connecting { since } if now.duration_since(since) > self.connect_timeout => {
                self.fail("connection attempt timed out".to_owned(), now);
            }
            Conn::Up {
                since,
                last_progress,
                ref mut healthy,
            } => {
                if !*healthy && now.duration_since(since) >= HEALTHY_AFTER {
                    *healthy = true;
                    self.backoff.reset();
                }
                let inflight: u64 = self.slots.iter().map(Slot::inflight).sum();
                if inflight > 0 && now.duration_since(last_progress) > self.ack_timeout {
                    self.fail(
                        format!(
                            "watchdog: no acknowledgement for {} s with {inflight} messages in flight; rebuilding the connection",
                            self.ack_timeout.as_secs()
                        ),
                        now,
                    );
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, reason: String, now: Instant) {
        self.upstream.disconnect();
        for s in &mut self.slots {
            s.reset_inflight();
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(
            bridge = self.config.name,
            error = reason,
            retry_in_ms = delay.as_millis() as u64,
            "bridge upstream connection failed"
        );
        self.last_error = Some((reason, now_ms()));
        if matches!(self.conn, Conn::Up { .. }) {
            self.state_since = now_ms();
        }
        self.conn = Conn::Down {
            retry_at: now + delay,
        };
        self.publish_status();
    }

    fn on_event(&mut self, ev: UpstreamEvent) {
        let now = Instant::now();
        match ev {
            UpstreamEvent::Connected { session_present } => {
                tracing::info!(
                    bridge = self.config.name,
                    session_present,
                    "bridge connected upstream; re-sending everything unacknowledged from the log"
                );
                self.connects += 1;
                self.state_since = now_ms();
                for s in &mut self.slots {
                    s.reset_inflight();
                }
                self.conn = Conn::Up {
                    since: now,
                    last_progress: now,
                    healthy: false,
                };
                self.publish_status();
            }
            UpstreamEvent::Acked {
                slot,
                offsets,
                position,
            } => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    for o in offsets {
                        s.mark(o, Entry::Acked);
                    }
                    if position.is_some() {
                        s.upstream_position = position;
                    }
                }
                if let Conn::Up {
                    ref mut last_progress,
                    ..
                } = self.conn
                {
                    *last_progress = now;
                }
            }
            UpstreamEvent::Rejected {
                id,
                reason,
                permanent,
            } => {
                let Some(s) = self.slots.get_mut(id.slot as usize) else {
                    return;
                };
                s.last_error = Some(format!("offset {}: {reason}", id.offset));
                if permanent {
                    if let Some(similar_not_logged) = self.skip_log.pass(now) {
                        tracing::warn!(
                            bridge = self.config.name,
                            topic = s.topic,
                            partition = s.partition,
                            offset = id.offset,
                            reason,
                            similar_not_logged,
                            "record skipped: the upstream refuses it for good"
                        );
                    }
                    s.mark(id.offset, Entry::Skipped);
                } else {
                    self.fail(format!("offset {}: {reason}", id.offset), now);
                }
            }
            UpstreamEvent::Failed { reason } => self.fail(reason, now),
            // The next pass of the loop sends what was not ready.
            UpstreamEvent::Ready => {}
            UpstreamEvent::RouteProblem { route, problem } => {
                if let Some(r) = self.routes.get_mut(route) {
                    if r.upstream_problem != problem {
                        if let Some(p) = &problem {
                            tracing::warn!(
                                bridge = self.config.name,
                                route = r.name,
                                problem = p,
                                "bridge route cannot forward"
                            );
                        } else {
                            tracing::info!(
                                bridge = self.config.name,
                                route = r.name,
                                "bridge route forwards again"
                            );
                        }
                        r.upstream_problem = problem;
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Sending

    async fn pump_all(&mut self, now: Instant) {
        let idle = self.slots.iter().all(|s| s.ring.is_empty());
        for i in 0..self.slots.len() {
            if !matches!(self.conn, Conn::Up { .. }) {
                return;
            }
            self.pump(i, now).await;
        }
        self.upstream.flush();
        // The watchdog counts from the first message sent into an idle connection.
        if idle && self.slots.iter().any(|s| !s.ring.is_empty()) {
            if let Conn::Up {
                ref mut last_progress,
                ..
            } = self.conn
            {
                *last_progress = now;
            }
        }
    }

    async fn pump(&mut self, i: usize, now: Instant) {
        let r = self.slots[i].route;
        let route = &self.routes[r];
        let (max_inflight, batch_bytes, overflow) =
            (route.max_inflight, route.batch_bytes, route.overflow);
        if self.slots[i].broken
            || self.slots[i].gone
            || self.slots[i].ready_at.is_some_and(|t| t > now)
        {
            return;
        }
        self.slots[i].ready_at = None;
        // Bounded: each round sends or returns.
        for _ in 0..64 {
            let room = max_inflight.saturating_sub(self.slots[i].next_send - self.slots[i].durable);
            if room == 0 || !self.routes[r].rate_ready(now) {
                return;
            }
            let s = &self.slots[i];
            if s.buf.is_none() {
                if s.next_send >= s.log_end {
                    self.arm_wait(i);
                    return;
                }
                let (topic, p, at) = (s.topic.clone(), s.partition, s.next_send);
                match self.source.read(&topic, p, at, batch_bytes).await {
                    Ok(b) => {
                        let s = &mut self.slots[i];
                        s.log_start = b.log_start;
                        s.log_end = s.log_end.max(b.log_end);
                        if b.log_start > s.next_send {
                            if s.ring.is_empty() {
                                let name = self.routes[r].name.clone();
                                s.lose(b.log_start, &self.config.name, &name, overflow);
                                continue;
                            }
                            // Records in flight before the gap: settle them first.
                            return;
                        }
                        if b.batches.is_empty() {
                            self.arm_wait(i);
                            return;
                        }
                        s.buf = Some(b.batches);
                    }
                    Err(e) => {
                        self.slots[i].last_error = Some(format!("read: {e}"));
                        return;
                    }
                }
            }
            if !self.send_from_buf(i, room, now) {
                return;
            }
        }
    }

    /// Sends records from the slot's buffer. Returns whether to keep pumping (the buffer is
    /// used up and the window and rate still have room).
    fn send_from_buf(&mut self, i: usize, mut room: u64, now: Instant) -> bool {
        let Some(buf) = self.slots[i].buf.take() else {
            return true;
        };
        let r = self.slots[i].route;
        let bridge = &self.config.name;
        let slot = &mut self.slots[i];
        let route = &mut self.routes[r];
        let route_name = route.name.clone();
        let upstream = &mut self.upstream;
        let skip_log = &mut self.skip_log;
        let mut stopped = false;
        let visited = self
            .source
            .visit(&buf, slot.next_send, &mut |rec: &SourceRecord<'_>| {
                if room == 0 || !route.rate_ready(now) {
                    stopped = true;
                    return false;
                }
                let id = MsgId {
                    slot: i as u32,
                    offset: rec.offset,
                };
                let out = OutRecord {
                    route: r,
                    topic: &slot.topic,
                    partition: slot.partition,
                    record: rec,
                };
                match upstream.send(id, &out) {
                    Ok(bytes) => {
                        slot.ring.push_back(Entry::Pending(rec.timestamp_ms));
                        route.rate_take(bytes as u64, now);
                    }
                    Err(SendError::TooLarge(why)) => {
                        if let Some(similar_not_logged) = skip_log.pass(now) {
                            tracing::warn!(
                                bridge,
                                route = route_name.as_str(),
                                topic = slot.topic,
                                partition = slot.partition,
                                offset = rec.offset,
                                why,
                                similar_not_logged,
                                "record skipped: it can never be sent to this upstream"
                            );
                        }
                        // Counted as dropped when the prefix passes it (`Slot::mark`).
                        slot.ring.push_back(Entry::Skipped);
                    }
                    Err(SendError::NotReady(_)) => {
                        stopped = true;
                        return false;
                    }
                }
                slot.next_send = rec.offset + 1;
                room -= 1;
                true
            });
        if let Err(e) = visited {
            // A damaged batch: park this slot (the operator must look) and report it once.
            slot.broken = true;
            slot.last_error = Some(format!("cannot decode stored records: {e}"));
            tracing::error!(bridge, route = route_name.as_str(), topic = slot.topic, partition = slot.partition, error = %e,
                "bridge cannot decode stored records; the partition is not forwarded");
            return false;
        }
        // Settle leading skips at once.
        if slot.ring.front() == Some(&Entry::Skipped) {
            let at = slot.acked;
            slot.mark(at, Entry::Skipped);
        }
        if stopped {
            slot.buf = Some(buf);
        }
        !stopped
    }

    fn arm_wait(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.waiting {
            return;
        }
        s.waiting = true;
        let (source, topic, p, at) = (
            self.source.clone(),
            s.topic.clone(),
            s.partition,
            s.next_send,
        );
        self.waits.spawn(async move {
            match source.wait_for(&topic, p, at, WAIT_SLICE).await {
                Ok(end) => (i, end),
                Err(_) => {
                    tokio::time::sleep(WAIT_RETRY).await;
                    (i, at)
                }
            }
        });
    }

    fn on_data(&mut self, i: usize, end: u64) {
        let linger = self.slots.get(i).map(|s| self.routes[s.route].linger);
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.waiting = false;
        if end > s.log_end {
            s.log_end = end;
            if let Some(l) = linger.filter(|l| !l.is_zero()) {
                s.ready_at.get_or_insert(Instant::now() + l);
            }
        }
    }

    fn next_deadline(&self, mut d: Instant) -> Instant {
        match self.conn {
            Conn::Down { retry_at } => d = d.min(retry_at),
            Conn::Connecting { since } => d = d.min(since + self.connect_timeout),
            Conn::Up { last_progress, .. } => {
                if self.slots.iter().any(|s| s.inflight() > 0) {
                    d = d.min(last_progress + self.ack_timeout + WATCHDOG_SLACK);
                }
                for s in &self.slots {
                    if let Some(t) = s.ready_at {
                        d = d.min(t);
                    }
                }
                // A rate limit matters only while it holds back records that are waiting.
                for r in &self.routes {
                    let waiting = r.slots.iter().any(|&i| {
                        let s = &self.slots[i];
                        s.next_send < s.log_end && !s.broken && !s.gone
                    });
                    if !waiting {
                        continue;
                    }
                    for b in [&r.messages, &r.bytes].into_iter().flatten() {
                        if let Some(t) = b.ready_at() {
                            d = d.min(t);
                        }
                    }
                }
            }
        }
        if self.commit.is_none() && self.slots.iter().any(|s| s.dirty) {
            d = d.min(self.next_commit_at);
        }
        d
    }

    // ------------------------------------------------------------------------------------
    // Checkpoints

    fn maybe_commit(&mut self, now: Instant, force: bool) {
        if self.commit.is_some() || !self.slots.iter().any(|s| s.dirty) {
            return;
        }
        let pressed = self.slots.iter().any(|s| {
            let max = self.routes[s.route].max_inflight;
            let undurable = s.acked - s.durable;
            undurable > 0 && (undurable * 2 >= max || s.next_send - s.durable >= max)
        });
        if !(force || now >= self.next_commit_at || pressed) {
            return;
        }
        let mut rows = Vec::new();
        let mut marks = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if !s.dirty {
                continue;
            }
            s.dirty = false;
            rows.push((
                self.routes[s.route].name.clone(),
                s.topic.clone(),
                s.partition,
                Checkpoint {
                    offset: s.acked,
                    forwarded: s.forwarded,
                    dropped: s.dropped,
                },
            ));
            marks.push((i, s.acked));
        }
        let fut = self.source.store_checkpoints(&self.config.name, rows);
        self.commit = Some((
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) }),
            marks,
            now,
        ));
        self.next_commit_at = now + self.checkpoint_interval;
    }

    fn on_committed(&mut self, res: Result<(), String>) {
        let Some((_, marks, started)) = self.commit.take() else {
            return;
        };
        tracing::debug!(
            bridge = self.config.name,
            slots = marks.len(),
            us = started.elapsed().as_micros() as u64,
            "checkpoint commit done"
        );
        match res {
            Ok(()) => {
                for (i, offset) in marks {
                    let s = &mut self.slots[i];
                    s.durable = s.durable.max(offset);
                    let route = &self.routes[s.route];
                    if route.overflow == Overflow::Refuse {
                        self.source.hold_retention(
                            &route.holder,
                            &s.topic,
                            s.partition,
                            Some(s.durable),
                        );
                    }
                }
            }
            Err(e) => {
                tracing::error!(
                    bridge = self.config.name,
                    error = e,
                    "bridge checkpoint commit failed; retrying"
                );
                self.last_error = Some((format!("checkpoint commit: {e}"), now_ms()));
                for (i, _) in marks {
                    self.slots[i].dirty = true;
                }
                self.next_commit_at = Instant::now() + COMMIT_RETRY;
            }
        }
    }

    async fn shutdown(mut self) {
        if let Some((f, _, _)) = self.commit.as_mut() {
            let res = tokio::time::timeout(FINAL_COMMIT, f).await;
            self.on_committed(res.unwrap_or_else(|_| Err("timed out".to_owned())));
        }
        self.maybe_commit(Instant::now(), true);
        if let Some((f, _, _)) = self.commit.as_mut() {
            let res = tokio::time::timeout(FINAL_COMMIT, f).await;
            self.on_committed(res.unwrap_or_else(|_| Err("timed out at shutdown".to_owned())));
        }
        self.upstream.disconnect();
        self.waits.abort_all();
        self.conn = Conn::Down {
            retry_at: Instant::now(),
        };
        self.publish_status();
        tracing::info!(
            bridge = self.config.name,
            "bridge stopped; checkpoints committed"
        );
    }

    // ------------------------------------------------------------------------------------
    // Topics, offsets, status

    /// Creates slots for routes whose topic appeared (or grew partitions).
    async fn refresh_topics(&mut self) {
        for r in 0..self.routes.len() {
            let topic = self.routes[r].topic.clone();
            let count = match self.source.partitions(&topic) {
                Ok(n) => n,
                Err(_) => {
                    let route = &mut self.routes[r];
                    if !route.slots.is_empty() {
                        route.waiting = Some(format!(
                            "log topic `{topic}` was deleted; forwarding resumes at offset 0 if it is created again"
                        ));
                        for &i in &route.slots {
                            let s = &mut self.slots[i];
                            if !s.gone {
                                s.gone = true;
                                s.reset_inflight();
                            }
                        }
                        continue;
                    }
                    route.waiting = Some(format!("log topic `{topic}` does not exist yet"));
                    route.missing = true;
                    if route.overflow == Overflow::Refuse && !route.all_held {
                        self.source
                            .hold_retention(&route.holder, &topic, ALL_PARTITIONS, Some(0));
                        route.all_held = true;
                    }
                    continue;
                }
            };
            self.routes[r].waiting = None;
            // A topic deleted and created again: its offsets start over.
            for &i in &self.routes[r].slots {
                let s = &mut self.slots[i];
                if s.gone && s.partition < count {
                    tracing::warn!(
                        bridge = self.config.name,
                        topic,
                        partition = s.partition,
                        "log topic created again: forwarding it from offset 0"
                    );
                    *s = Slot {
                        dirty: true,
                        ..Slot::new(s.route, s.topic.clone(), s.partition, Checkpoint::default())
                    };
                }
            }
            for p in self.routes[r].slots.len() as u32..count {
                match self.new_slot(r, p).await {
                    Ok(slot) => {
                        self.slots.push(slot);
                        let i = self.slots.len() - 1;
                        self.routes[r].slots.push(i);
                    }
                    Err(e) => {
                        self.routes[r].waiting = Some(format!("partition {p}: {e}"));
                        break;
                    }
                }
            }
            let route = &mut self.routes[r];
            if route.all_held && route.waiting.is_none() {
                // Every partition holds on its own now.
                self.source
                    .hold_retention(&route.holder, &topic, ALL_PARTITIONS, None);
                route.all_held = false;
            }
        }
    }

    async fn new_slot(&mut self, r: usize, p: u32) -> Result<Slot, String> {
        let route = &self.routes[r];
        let (log_start, log_end) = self
            .source
            .offsets(&route.topic, p)
            .map_err(|e| e.to_string())?;
        let key = (route.name.clone(), route.topic.clone(), p);
        let (cp, fresh) = match self.stored.get(&key) {
            Some(c) => (*c, false),
            None => {
                let offset = match route.start {
                    StartAt::Earliest | StartAt::Latest if route.missing => 0,
                    StartAt::Earliest => log_start,
                    StartAt::Latest => log_end,
                    StartAt::Time(t) => self
                        .source
                        .offset_for_time(&route.topic, p, t)
                        .await
                        .map_err(|e| e.to_string())?,
                };
                (
                    Checkpoint {
                        offset,
                        ..Checkpoint::default()
                    },
                    true,
                )
            }
        };
        if route.overflow == Overflow::Refuse {
            self.source
                .hold_retention(&route.holder, &route.topic, p, Some(cp.offset));
        }
        Ok(Slot {
            dirty: fresh,
            log_start,
            log_end,
            ..Slot::new(r, route.topic.clone(), p, cp)
        })
    }

    /// Refreshes offsets; detects losses while nothing is in flight (also while offline);
    /// learns the age of the oldest unforwarded record for the lag.
    async fn refresh_offsets(&mut self) {
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            if let Ok((start, end)) = self.source.offsets(&s.topic, s.partition) {
                s.log_start = start;
                s.log_end = s.log_end.max(end);
            }
            if s.ring.is_empty() && s.acked < s.log_start {
                let route = &self.routes[s.route];
                s.lose(s.log_start, &self.config.name, &route.name, route.overflow);
            }
            if s.ring.is_empty()
                && s.acked < s.log_end
                && s.lag_ts.is_none_or(|(o, _)| o != s.acked)
            {
                let (topic, p, at) = (s.topic.clone(), s.partition, s.acked);
                if let Ok(b) = self.source.read(&topic, p, at, 1).await {
                    let mut ts = None;
                    let _ = self.source.visit(&b.batches, at, &mut |rec| {
                        ts = Some(rec.timestamp_ms);
                        false
                    });
                    if let Some(ts) = ts {
                        self.slots[i].lag_ts = Some((at, ts));
                    }
                }
            }
        }
    }

    fn publish_status(&self) {
        let now = now_ms();
        let now_i = Instant::now();
        let routes: Vec<RouteStatus> = self
            .routes
            .iter()
            .map(|r| RouteStatus {
                name: r.name.clone(),
                topic: r.topic.clone(),
                upstream_topic: r.upstream_topic.clone(),
                waiting: r.waiting.clone(),
                upstream_problem: r.upstream_problem.clone(),
                partitions: r
                    .slots
                    .iter()
                    .map(|&i| {
                        let s = &self.slots[i];
                        // Fresh offsets (an in-memory lookup), so the status never lags.
                        let (log_start, log_end) = self
                            .source
                            .offsets(&s.topic, s.partition)
                            .map_or((s.log_start, s.log_end), |(a, b)| (a, b.max(s.log_end)));
                        let oldest = match s.ring.front() {
                            Some(Entry::Pending(ts)) => Some(*ts),
                            _ if s.acked < log_end => {
                                s.lag_ts.filter(|(o, _)| *o == s.acked).map(|(_, ts)| ts)
                            }
                            _ => None,
                        };
                        PartitionStatus {
                            partition: s.partition,
                            checkpoint: s.durable,
                            acked: s.acked,
                            inflight: s.inflight(),
                            log_start,
                            log_end,
                            lag_records: log_end.saturating_sub(s.acked),
                            lag_secs: oldest
                                .map_or(0.0, |ts| (now as i64 - ts).max(0) as f64 / 1000.0),
                            forwarded: s.forwarded,
                            dropped: s.dropped,
                            last_loss: s.last_loss,
                            upstream_partition: s.upstream_position.map(|p| p.partition),
                            upstream_offset: s.upstream_position.map(|p| p.offset),
                        }
                    })
                    .collect(),
            })
            .collect();
        let (connected, next) = match self.conn {
            Conn::Up { .. } => (true, None),
            Conn::Down { retry_at } => (
                false,
                Some(retry_at.saturating_duration_since(now_i).as_millis() as u64),
            ),
            Conn::Connecting { .. } => (false, Some(0)),
        };
        let slot_error = self.slots.iter().find_map(|s| s.last_error.clone());
        self.board.update(self.board_index, |b| {
            b.connected = connected;
            b.since_ms = self.state_since;
            b.connect_attempts = self.connect_attempts;
            b.connects = self.connects;
            b.next_attempt_in_ms = next;
            b.last_error = self
                .last_error
                .as_ref()
                .map(|(e, _)| e.clone())
                .or(slot_error);
            b.last_error_ms = self.last_error.as_ref().map(|(_, t)| *t);
            b.routes = routes;
        });
    }
}
