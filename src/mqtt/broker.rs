//! The broker state shared by every MQTT connection: sessions, subscriptions, retained
//! messages, and the publish path into the log and out to subscribers.
//!
//! [`Broker`] is a cheap-clone handle over `Arc<Inner>`. Each piece of state has one lock,
//! never held across an `.await`:
//!
//! - `registry` (`RwLock`): client id and [`SessionId`] → [`Slot`]. Publishers take it for
//!   reading to find the sessions a message goes to.
//! - `subs` (`RwLock`): the [`SubscriptionTree`].
//! - each [`Slot`]'s own `Mutex`: the session's queue (bounded by `max_queued_messages`), who
//!   owns it, its parked state while offline, its pending will.
//! - `retained` (`Mutex`): topic → retained message, mirrored in the `mqtt/retained` table.
//!
//! # Publish path
//!
//! [`Broker::publish`] routes the message through the tree, reserves a place in each receiving
//! session's queue (a full queue drops the delivery and counts it), and queues one writer
//! request: the log record (per the ingest rules), plus — in the same commit — a queue row for
//! every persistent session getting it at QoS 1/2 and the retained-message change. The
//! returned [`Published`] is then completed: at QoS 0 at once, at QoS 1/2 after the commit, so
//! that PUBACK/PUBREC and the deliveries happen only once the message is durable. Live
//! subscribers get it from memory, never from the log read path.
//!
//! # Sessions
//!
//! A session lives in a [`Slot`] from its first CONNECT until it ends (clean start, expiry 0 at
//! disconnect, or its expiry interval running out while offline). While a connection owns it,
//! deliveries wait in the slot's queue and the connection is woken through `notify`. When the
//! connection ends, its [`SessionState`] (in-flight messages, QoS 2 ids) is parked in the slot
//! for the next connection. Persistent sessions (expiry > 0) are also written to the
//! `mqtt/sessions` and `mqtt/queue` tables and restored by [`Broker::open`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use super::message::{Message, SharedMessage};
use super::packet::{reason, QoS};
use super::persist;
use super::session::{Close, ConnectInfo, Delivery, SessionState, SubscribeEntry, WillMessage};
use super::subscriptions::{Route, SessionId, Subscription, SubscriptionTree};
use super::topic;
use crate::config::MqttConfig;
use crate::ingest::{self, Destination, Ingest};
use crate::log::batch::{BatchBuilder, Compression};
use crate::log::tables::StateTable;
use crate::log::{
    AppendError, Appended, Log, Pending, PendingRecords, StateError, StateOp, Target,
};
use crate::logging::RepeatGate;

/// How long a new connection waits for the one it takes a session over from to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);
/// Publishes that cannot be stored (refused appends, unknown topics): a client can cause
/// one per message, so they are logged at most once per interval, with a count.
static NOT_STORED_LOG: RepeatGate = RepeatGate::new();
/// Messages too large for a record, likewise.
static TOO_LARGE_LOG: RepeatGate = RepeatGate::new();

/// Logs why a publish was not stored. A full partition is expected while a bridge in refuse
/// mode is behind, possibly for every message: the bridge logs the cause, so it is only a
/// debug event here. Anything else is a warning, at most once per interval (a client can cause
/// one per message). `topic` is empty where it is not known.
fn log_not_stored(e: &AppendError, topic: &str) {
    if matches!(e, AppendError::Full { .. }) {
        tracing::debug!(error = %e, topic, "MQTT publish refused: partition full");
    } else if let Some(similar_not_logged) = NOT_STORED_LOG.pass() {
        tracing::warn!(error = %e, topic, similar_not_logged, "MQTT publish not stored");
    }
}

/// Broker-wide counters, reported under `$SYS/`.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Connections that completed CONNECT and are open.
    pub clients_connected: AtomicU64,
    /// PUBLISH packets accepted from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Payload bytes accepted.
    pub bytes_received: AtomicU64,
    /// Payload bytes sent.
    pub bytes_sent: AtomicU64,
    /// Deliveries dropped (queue full, expired, too large for the client), and QoS 0
    /// publishes refused because their partition is full.
    pub messages_dropped: AtomicU64,
    /// The part of `messages_dropped` lost because a session's queue was full: slow (or
    /// offline persistent) subscribers.
    pub messages_dropped_queue_full: AtomicU64,
}

/// Settings the broker applies.
#[derive(Debug, Clone)]
struct Limits {
    /// `[QoS 0, QoS 1/2]` deliveries one session may hold.
    max_queued: [usize; 2],
    max_retained: usize,
    max_topic_levels: usize,
    batch_max_bytes: usize,
}

/// A session's place in the broker.
#[derive(Debug)]
pub struct Slot {
    /// Internal id (used in the subscription tree).
    pub id: SessionId,
    /// Client identifier.
    pub client_id: Box<str>,
    state: Mutex<SlotState>,
    /// Wakes the owning connection: new deliveries or a kick.
    pub notify: Notify,
    /// Wakes a connection waiting to take the session over.
    released: Notify,
    /// Wakes publishers waiting for this session's queue to drain below half.
    drained: Notify,
    /// Queue bounds `[QoS 0, QoS 1/2]`.
    max: [usize; 2],
    online: AtomicBool,
}

#[derive(Debug, Default)]
struct SlotState {
    queue: VecDeque<Delivery>,
    /// Deliveries queued or reserved: `[QoS 0, QoS 1/2]`, each bounded separately.
    held: [usize; 2],
    /// Deliveries queued (reservations filled), by the same classes.
    queued: [usize; 2],
    owner: Option<u64>,
    kick: Option<u8>,
    parked: SessionState,
    expiry_secs: u32,
    disconnected_at: Option<Instant>,
    will: Option<(WillMessage, Instant)>,
    next_seq: u64,
    ended: bool,
    /// The session has a row in `mqtt/sessions` (so ending it deletes its rows).
    stored: bool,
}

impl Slot {
    fn new(id: SessionId, client_id: &str, max: [usize; 2]) -> Self {
        Self {
            id,
            client_id: client_id.into(),
            state: Mutex::new(SlotState::default()),
            notify: Notify::new(),
            released: Notify::new(),
            drained: Notify::new(),
            max,
            online: AtomicBool::new(false),
        }
    }

    /// Whether a queue class holds at least half its bound in filled deliveries (publishers
    /// then wait a little). Reservations do not count: only their publisher can fill them.
    fn congested(&self, s: &SlotState, class: usize) -> bool {
        s.queued[class] >= self.max[class] / 2
    }

    /// Takes a queued delivery of `class` out; wakes waiting publishers when that takes the
    /// queue below half.
    fn dequeued(&self, s: &mut SlotState, class: usize) {
        let was = self.congested(s, class);
        s.held[class] = s.held[class].saturating_sub(1);
        s.queued[class] = s.queued[class].saturating_sub(1);
        if was && !self.congested(s, class) {
            self.drained.notify_waiters();
        }
    }

    /// Waits until no queue class is half full, the session ends, or `timeout` passes.
    pub async fn wait_drained(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let drained = self.drained.notified();
            {
                let s = self.lock();
                if s.ended || (!self.congested(&s, 0) && !self.congested(&s, 1)) {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A panic while holding it aborts the process (panic = "abort"); poisoning is moot.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persistent(state: &SlotState) -> bool {
        state.expiry_secs > 0
    }

    /// Takes the next delivery if the client can take it: QoS 0 always, QoS 1/2 only when
    /// `quota` > 0. Returns `None` when the queue is empty or its head must wait.
    pub fn pop(&self, quota: usize) -> Option<Delivery> {
        let mut s = self.lock();
        let head = s.queue.front()?;
        if head.qos != QoS::AtMostOnce && quota == 0 {
            return None;
        }
        let d = s.queue.pop_front()?;
        self.dequeued(&mut s, class(d.qos));
        Some(d)
    }

    /// The reason the owning connection must close, if it was kicked.
    pub fn kicked(&self, conn: u64) -> Option<u8> {
        let s = self.lock();
        match s.owner {
            Some(owner) if owner == conn => s.kick,
            _ => Some(reason::SESSION_TAKEN_OVER),
        }
    }

    /// Reserves a queue place for a delivery at `qos`: `None` when that class is full,
    /// else whether the queue is now at least half full.
    fn reserve(&self, qos: QoS) -> Option<bool> {
        let mut s = self.lock();
        let class = class(qos);
        if s.ended || s.held[class] >= self.max[class] {
            return None;
        }
        s.held[class] += 1;
        Some(self.congested(&s, class))
    }

    /// Fills a reserved place (`Some`) or gives it back (`None`).
    fn fill(&self, qos: QoS, d: Option<Delivery>) {
        let mut s = self.lock();
        let class = class(qos);
        match d {
            Some(d) if !s.ended => {
                s.queued[class] += 1;
                s.queue.push_back(d);
            }
            _ => s.held[class] = s.held[class].saturating_sub(1),
        }
        drop(s);
        self.notify.notify_one();
    }

    fn next_seq(&self) -> Option<u64> {
        let mut s = self.lock();
        Self::persistent(&s).then(|| {
            let seq = s.next_seq;
            s.next_seq += 1;
            seq
        })
    }
}

/// Index of a QoS in `SlotState::held`.
fn class(qos: QoS) -> usize {
    usize::from(qos != QoS::AtMostOnce)
}

#[derive(Debug, Default)]
struct Registry {
    by_client: HashMap<Box<str>, Arc<Slot>>,
    by_id: HashMap<SessionId, Arc<Slot>>,
}

struct Inner {
    log: Log,
    ingest: Ingest,
    limits: Limits,
    registry: RwLock<Registry>,
    subs: RwLock<SubscriptionTree>,
    retained: Mutex<HashMap<Box<str>, SharedMessage>>,
    stats: MqttStats,
    next_session: AtomicU64,
    next_conn: AtomicU64,
    started: Instant,
    /// More `$SYS/` values from outside the MQTT broker (see [`Broker::set_sys_source`]).
    sys_source: std::sync::OnceLock<SysSource>,
}

/// A function giving more `$SYS/` topics and their values.
pub type SysSource = Box<dyn Fn() -> Vec<(&'static str, String)> + Send + Sync>;

/// Handle to the shared broker state.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.registry().by_id.len())
            .finish_non_exhaustive()
    }
}

/// What a connection gets when it attaches to a session.
#[derive(Debug)]
pub struct Attached {
    /// The session.
    pub slot: Arc<Slot>,
    /// The connection's id (ownership token).
    pub conn: u64,
    /// CONNACK Session Present.
    pub session_present: bool,
    /// State to resume.
    pub state: SessionState,
}

/// A publish on its way: complete it (at once for QoS 0, after the commit for QoS 1/2).
#[derive(Debug)]
pub struct Published {
    pending: Option<Commit>,
    deliveries: Vec<(Arc<Slot>, Delivery)>,
    /// v5 reason code to answer with on success (0, or 0x97 when a retained message could
    /// not be kept).
    success: u8,
    qos: QoS,
}

#[derive(Debug)]
enum Commit {
    Append(Pending<Appended, AppendError>),
    State(Pending<(), StateError>),
    /// Stored by the commit of the previous QoS 1/2 message of the same connection (one
    /// writer request for both).
    WithPrevious,
}

/// Consecutive messages for one log partition, becoming one writer request.
struct Group {
    topic: String,
    partition: u32,
    records: PendingRecords,
    ops: Vec<StateOp>,
    /// Index of the group's first message in the results.
    first: usize,
}

impl Published {
    /// A publish answered without being stored or routed (refused by the ACL): it completes
    /// at once with `code` (v5 0x87; for v3, 0: acknowledged and discarded).
    pub fn answered(code: u8, qos: QoS) -> Self {
        Self {
            pending: None,
            deliveries: Vec::new(),
            success: code,
            qos,
        }
    }

    /// Hands the deliveries to their sessions without waiting for the commit (QoS 0).
    pub fn deliver_now(self) {
        for (slot, d) in self.deliveries {
            slot.fill(d.qos, Some(d));
        }
    }

    /// Waits for the commit; true when the message is stored (or nothing needed storing).
    /// Cancel-safe: it can be polled again after being dropped unfinished. `previous` is the
    /// result of the connection's previous QoS 1/2 message (for one stored with it).
    pub async fn wait(&mut self, previous: bool) -> bool {
        match &mut self.pending {
            None => true,
            Some(Commit::WithPrevious) => previous,
            Some(Commit::Append(p)) => match p.await {
                Ok(_) => true,
                Err(e) => {
                    log_not_stored(&e, "");
                    false
                }
            },
            Some(Commit::State(p)) => p.await.is_ok(),
        }
    }

    /// [`Published::wait`] without waiting: `None` while the commit is still running.
    pub fn try_wait(&mut self, previous: bool) -> Option<bool> {
        match &mut self.pending {
            None => Some(true),
            Some(Commit::WithPrevious) => Some(previous),
            Some(Commit::Append(p)) => p.try_result().map(|r| r.is_ok()),
            Some(Commit::State(p)) => p.try_result().map(|r| r.is_ok()),
        }
    }

    /// After [`Published::wait`]: hands the deliveries over if `stored`, and returns the v5
    /// reason code for PUBACK/PUBREC (`Err` when the message is not stored).
    pub fn complete(self, stored: bool) -> Result<u8, u8> {
        for (slot, d) in self.deliveries {
            slot.fill(d.qos, stored.then_some(d));
        }
        if stored {
            Ok(self.success)
        } else {
            Err(reason::UNSPECIFIED_ERROR)
        }
    }
}

impl Broker {
    /// Restores persistent sessions, their queues and the retained messages from the log file.
    pub fn open(log: Log, config: &MqttConfig, batch_max_bytes: usize) -> Result<Self, String> {
        let ingest = Ingest::from_config(config).map_err(|e| e.to_string())?;
        let limits = Limits {
            max_queued: [
                config.max_queued_qos0_messages as usize,
                config.max_queued_messages as usize,
            ],
            max_retained: config.max_retained_messages as usize,
            max_topic_levels: config.max_topic_levels as usize,
            batch_max_bytes,
        };
        let broker = Self {
            inner: Arc::new(Inner {
                log,
                ingest,
                limits,
                registry: RwLock::new(Registry::default()),
                subs: RwLock::new(SubscriptionTree::new()),
                retained: Mutex::new(HashMap::new()),
                stats: MqttStats::default(),
                next_session: AtomicU64::new(1),
                next_conn: AtomicU64::new(1),
                started: Instant::now(),
                sys_source: std::sync::OnceLock::new(),
            }),
        };
        broker
            .restore()
            .map_err(|e| format!("cannot restore MQTT state: {e}"))?;
        Ok(broker)
    }

    fn restore(&self) -> Result<(), String> {
        let log = &self.inner.log;
        let now = Instant::now();
        let now_ms = crate::log::now_ms();
        let mut stale = Vec::new();
        for (key, value) in log
            .read_state(StateTable::MqttRetained)
            .map_err(|e| e.to_string())?
        {
            match persist::decode_retained(&value) {
                Ok(m) if m.remaining_expiry(now_ms).is_some() => {
                    self.retained().insert(m.topic.clone(), Arc::new(m));
                }
                Ok(_) => stale.push(StateOp::Delete {
                    table: StateTable::MqttRetained,
                    key,
                }),
                Err(e) => return Err(e.to_string()),
            }
        }
        for (key, value) in log
            .read_state(StateTable::MqttSessions)
            .map_err(|e| e.to_string())?
        {
            let client_id = String::from_utf8_lossy(&key).into_owned();
            let stored = persist::decode_session(&value).map_err(|e| e.to_string())?;
            let slot = self.new_slot(&client_id);
            {
                let mut s = slot.lock();
                s.stored = true;
                s.expiry_secs = stored.expiry_secs;
                // Offline since it disconnected, or since now if it was connected at the stop.
                let away_ms = if stored.disconnected_ms == 0 {
                    0
                } else {
                    now_ms.saturating_sub(stored.disconnected_ms)
                };
                s.disconnected_at = Some(
                    now.checked_sub(Duration::from_millis(away_ms))
                        .unwrap_or(now),
                );
            }
            let mut subs = self.subs_write();
            for sub in &stored.subscriptions {
                if let Ok(f) = topic::parse_filter(&sub.filter, self.inner.limits.max_topic_levels)
                {
                    subs.subscribe(slot.id, &f, sub.subscription());
                }
            }
        }
        for (key, _) in log
            .read_state(StateTable::MqttInbound)
            .map_err(|e| e.to_string())?
        {
            let Some((client_id, pid)) = persist::split_inbound_key(&key) else {
                return Err("inbound QoS 2 row with an invalid key".to_owned());
            };
            match self.registry().by_client.get(client_id) {
                Some(slot) => slot.lock().parked.qos2_received.push(pid),
                None => stale.push(StateOp::Delete {
                    table: StateTable::MqttInbound,
                    key,
                }),
            }
        }
        for (key, value) in log
            .read_state(StateTable::MqttQueue)
            .map_err(|e| e.to_string())?
        {
            let Some((client_id, seq)) = persist::split_queue_key(&key) else {
                return Err("queue row with an invalid key".to_owned());
            };
            let slot = self.registry().by_client.get(client_id).cloned();
            let Some(slot) = slot else {
                stale.push(StateOp::Delete {
                    table: StateTable::MqttQueue,
                    key,
                });
                continue;
            };
            let d = persist::decode_delivery(&value, seq).map_err(|e| e.to_string())?;
            let mut s = slot.lock();
            s.next_seq = s.next_seq.max(seq + 1);
            if d.packet_id != 0 {
                s.parked.inflight.push(d);
            } else {
                s.held[1] += 1;
                s.queued[1] += 1;
                s.queue.push_back(d);
            }
        }
        if !stale.is_empty() {
            // Best effort: rows of expired retained messages and orphaned queue rows.
            let log = log.clone();
            tokio::spawn(async move {
                if let Ok(p) = log.enqueue_state(stale).await {
                    let _ = p.await;
                }
            });
        }
        let sessions = self.registry().by_id.len();
        if sessions > 0 || !self.retained().is_empty() {
            tracing::info!(
                sessions,
                retained = self.retained().len(),
                "restored MQTT state"
            );
        }
        Ok(())
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn subs_read(&self) -> std::sync::RwLockReadGuard<'_, SubscriptionTree> {
        self.inner.subs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn subs_write(&self) -> std::sync::RwLockWriteGuard<'_, SubscriptionTree> {
        self.inner.subs.write().unwrap_or_else(|e| e.into_inner())
    }

    fn retained(&self) -> MutexGuard<'_, HashMap<Box<str>, SharedMessage>> {
        self.inner
            .retained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn new_slot(&self, client_id: &str) -> Arc<Slot> {
        let id = SessionId(self.inner.next_session.fetch_add(1, Ordering::Relaxed));
        let slot = Arc::new(Slot::new(id, client_id, self.inner.limits.max_queued));
        let mut reg = self.registry_mut();
        reg.by_client.insert(client_id.into(), slot.clone());
        reg.by_id.insert(id, slot.clone());
        slot
    }

    /// Counters.
    pub fn stats(&self) -> &MqttStats {
        &self.inner.stats
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// Most topic levels allowed.
    pub fn max_topic_levels(&self) -> usize {
        self.inner.limits.max_topic_levels
    }

    /// Attaches a connection to the session of `info.client_id`, taking it over from another
    /// connection if needed. `Err` carries a CONNACK reason code.
    pub async fn connect(&self, info: &ConnectInfo) -> Result<Attached, u8> {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let existing = self
            .registry()
            .by_client
            .get(info.client_id.as_str())
            .cloned();
        if let Some(slot) = &existing {
            // Session takeover ([MQTT-3.1.4-2]): the old connection is told to close (v5:
            // DISCONNECT 0x8E) and parks its state; wait for that, bounded.
            let deadline = Instant::now() + TAKEOVER_WAIT;
            loop {
                let released = slot.released.notified();
                {
                    let mut s = slot.lock();
                    if s.owner.is_none() {
                        break;
                    }
                    s.kick = Some(reason::SESSION_TAKEN_OVER);
                }
                slot.notify.notify_one();
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || tokio::time::timeout(left, released).await.is_err() {
                    tracing::warn!(client_id = %info.client_id, "previous connection did not let go of the session");
                    return Err(reason::SERVER_BUSY);
                }
            }
        }
        let mut ops = Vec::new();
        let mut fired_will = None;
        let (slot, session_present, state) = match existing {
            Some(slot) if !info.clean_start && !slot.lock().ended => {
                let mut s = slot.lock();
                // [MQTT-3.1.3-9]: a resumed session does not send its delayed will.
                s.will = None;
                let state = std::mem::take(&mut s.parked);
                drop(s);
                (slot, true, state)
            }
            Some(old) => {
                // [MQTT-3.1.2-4]: Clean Start discards the existing session.
                fired_will = self.end_session(&old, &mut ops);
                (
                    self.new_slot(&info.client_id),
                    false,
                    SessionState::default(),
                )
            }
            None => (
                self.new_slot(&info.client_id),
                false,
                SessionState::default(),
            ),
        };
        let was_stored;
        {
            let mut s = slot.lock();
            s.owner = Some(conn);
            s.kick = None;
            s.expiry_secs = info.session_expiry_secs;
            s.disconnected_at = None;
            was_stored = s.stored;
            s.stored = info.session_expiry_secs > 0;
        }
        slot.online.store(true, Ordering::Relaxed);
        if info.session_expiry_secs > 0 {
            let subs = self.subs_read().session_subscriptions(slot.id);
            ops.push(persist::put_session(
                &info.client_id,
                info.session_expiry_secs,
                0,
                &subs,
            ));
        } else if was_stored {
            // The session was persistent and is not any more: forget its rows.
            ops.extend(persist::delete_session(&info.client_id));
        }
        if let Some(will) = fired_will {
            self.publish_will(will).await;
        }
        if !ops.is_empty() && self.commit_state(ops).await.is_err() {
            // Refused: let go of the session so the client's retry can take it.
            slot.lock().owner = None;
            slot.online.store(false, Ordering::Relaxed);
            slot.released.notify_waiters();
            return Err(reason::SERVER_UNAVAILABLE);
        }
        self.inner
            .stats
            .clients_connected
            .fetch_add(1, Ordering::Relaxed);
        Ok(Attached {
            slot,
            conn,
            session_present,
            state,
        })
    }

    /// Ends `slot`'s session: subscriptions, queue and rows go. Returns its pending will.
    fn end_session(&self, slot: &Arc<Slot>, ops: &mut Vec<StateOp>) -> Option<WillMessage> {
        let mut s = slot.lock();
        s.ended = true;
        s.queue.clear();
        s.held = [0; 2];
        s.queued = [0; 2];
        slot.drained.notify_waiters();
        let will = s.will.take().map(|(w, _)| w);
        // Rows exist if it was ever stored, even if a DISCONNECT just set its expiry to 0.
        let persistent = std::mem::take(&mut s.stored);
        drop(s);
        self.subs_write().remove_session(slot.id);
        let mut reg = self.registry_mut();
        if reg
            .by_client
            .get(&slot.client_id)
            .is_some_and(|s| s.id == slot.id)
        {
            reg.by_client.remove(&slot.client_id);
        }
        reg.by_id.remove(&slot.id);
        drop(reg);
        if persistent {
            ops.extend(persist::delete_session(&slot.client_id));
        }
        will
    }

    /// A connection let go of its session (closed for `close`).
    pub async fn disconnect(
        &self,
        attached: &Attached,
        state: SessionState,
        close: Close,
        will: Option<WillMessage>,
        expiry_secs: u32,
    ) {
        let slot = &attached.slot;
        self.inner
            .stats
            .clients_connected
            .fetch_sub(1, Ordering::Relaxed);
        let will = will.filter(|_| close.publish_will);
        let mut ops = Vec::new();
        let mut fire = None;
        {
            let mut s = slot.lock();
            if s.owner != Some(attached.conn) {
                return;
            }
            s.owner = None;
            s.kick = None;
            slot.online.store(false, Ordering::Relaxed);
            s.expiry_secs = expiry_secs;
            if expiry_secs == 0 {
                drop(s);
                // The session ends with the connection; so does any will delay.
                fire = self.end_session(slot, &mut ops).or(will);
            } else {
                s.parked = state;
                s.disconnected_at = Some(Instant::now());
                match will {
                    Some(w) if w.delay_secs == 0 => fire = Some(w),
                    Some(w) => {
                        let delay = w.delay_secs.min(expiry_secs);
                        s.will = Some((w, Instant::now() + Duration::from_secs(u64::from(delay))));
                    }
                    None => {}
                }
                drop(s);
                let subs = self.subs_read().session_subscriptions(slot.id);
                ops.push(persist::put_session(
                    &slot.client_id,
                    expiry_secs,
                    crate::log::now_ms(),
                    &subs,
                ));
            }
        }
        slot.released.notify_waiters();
        if let Some(w) = fire {
            self.publish_will(w).await;
        }
        if !ops.is_empty() {
            let _ = self.commit_state(ops).await;
        }
    }

    async fn publish_will(&self, will: WillMessage) {
        let msg = will.msg;
        let mut builder = BatchBuilder::new(Compression::None, self.inner.limits.batch_max_bytes);
        if let Ok(mut p) = self.publish(msg, &mut builder).await {
            let stored = p.wait(true).await;
            let _ = p.complete(stored);
        }
    }

    async fn commit_state(&self, ops: Vec<StateOp>) -> Result<(), StateError> {
        self.inner.log.enqueue_state(ops).await?.await
    }

    /// Commits state changes and waits for the commit.
    pub async fn store_state(&self, ops: Vec<StateOp>) -> Result<(), StateError> {
        self.commit_state(ops).await
    }

    /// Queues state changes without waiting for their commit (row updates of deliveries).
    pub async fn queue_state(&self, ops: Vec<StateOp>) {
        if ops.is_empty() {
            return;
        }
        // Not awaited: the row change commits with the next group; a crash before it
        // re-delivers the message (at-least-once), never loses it.
        let _ = self.inner.log.enqueue_state(ops).await;
    }

    /// Routes and stores one message; see [`Broker::publish_batch`].
    pub async fn publish(&self, msg: Message, builder: &mut BatchBuilder) -> Result<Published, u8> {
        self.publish_batch(vec![(msg, 0)], None, builder, &mut Vec::new())
            .await
            .pop()
            .unwrap_or(Err(reason::UNSPECIFIED_ERROR))
    }

    /// Routes and stores messages of one connection, in order (see the module doc). One
    /// result per message; `Err` is a v5 reason code for a message that was not stored.
    ///
    /// Consecutive messages bound for the same log partition become one writer request (one
    /// set of batches): a client with many publishes in flight costs the writer one request
    /// per read, not one per message. The first QoS 1/2 message of such a group holds the
    /// commit; the following ones complete with it ([`Published::wait`] in FIFO order).
    ///
    /// `msgs` pairs each message with its packet id; `publisher` is the publishing session: a
    /// persistent one gets, with each QoS 2 message, a record of its packet id in the same
    /// commit, so that after a crash a re-sent PUBLISH is still recognised as a duplicate.
    ///
    /// Sessions whose queue became at least half full are added to `congested`: the caller
    /// should [`Slot::wait_drained`] on them (bounded) before reading more — backpressure,
    /// as a TCP window gives it, so a subscriber that is slower but keeps up loses nothing
    /// to a burst, while one that is stuck only fills its queue and then loses new messages.
    pub async fn publish_batch(
        &self,
        msgs: Vec<(Message, u16)>,
        publisher: Option<&Slot>,
        builder: &mut BatchBuilder,
        congested: &mut Vec<Arc<Slot>>,
    ) -> Vec<Result<Published, u8>> {
        let persistent_publisher = publisher.filter(|p| Slot::persistent(&p.lock()));
        let mut out: Vec<Result<Published, u8>> = Vec::with_capacity(msgs.len());
        let mut group: Option<Group> = None;
        builder.clear();
        for (msg, packet_id) in msgs {
            let stats = &self.inner.stats;
            stats.messages_received.fetch_add(1, Ordering::Relaxed);
            stats
                .bytes_received
                .fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
            let msg = Arc::new(msg);
            let mut ops = Vec::new();
            let mut success = reason::SUCCESS;
            if msg.retain && !self.set_retained(&msg, true, &mut ops) {
                success = reason::QUOTA_EXCEEDED;
            }
            let deliveries = self.route(&msg, &mut ops, congested);
            if let (QoS::ExactlyOnce, Some(p)) = (msg.qos, persistent_publisher) {
                ops.push(persist::put_inbound(&p.client_id, packet_id));
            }
            let published = Published {
                pending: None,
                deliveries,
                success,
                qos: msg.qos,
            };
            let (topic, key) = match self.inner.ingest.destination(&msg.topic) {
                Destination::Log { topic, key } => (topic, key),
                Destination::Skip => {
                    self.flush_group(&mut group, builder, &mut out).await;
                    out.push(self.commit_alone(published, ops).await);
                    continue;
                }
            };
            let target = key.map_or(Target::Any, Target::Key);
            let partition = match self.inner.log.resolve_partition(&topic, target) {
                Ok(p) => p,
                Err(e) => {
                    log_not_stored(&e, &topic);
                    self.cancel(published.deliveries);
                    out.push(Err(reason::UNSPECIFIED_ERROR));
                    continue;
                }
            };
            if group
                .as_ref()
                .is_some_and(|g| g.topic != topic || g.partition != partition)
            {
                self.flush_group(&mut group, builder, &mut out).await;
            }
            let g = group.get_or_insert_with(|| Group {
                topic: topic.into_owned(),
                partition,
                records: PendingRecords::default(),
                ops: Vec::new(),
                first: out.len(),
            });
            if let Err(e) = ingest::push_record(&msg, key, builder, &mut g.records) {
                if let Some(similar_not_logged) = TOO_LARGE_LOG.pass() {
                    tracing::warn!(error = %e, similar_not_logged, "MQTT message does not fit a record");
                }
                self.cancel(published.deliveries);
                out.push(Err(reason::PACKET_TOO_LARGE));
                continue;
            }
            g.ops.append(&mut ops);
            out.push(Ok(published));
        }
        self.flush_group(&mut group, builder, &mut out).await;
        out
    }

    /// Queues one group's records (and state changes) and attaches the commit to its members.
    async fn flush_group(
        &self,
        group: &mut Option<Group>,
        builder: &mut BatchBuilder,
        out: &mut [Result<Published, u8>],
    ) {
        let Some(mut g) = group.take() else {
            return;
        };
        builder.finish_into(&mut g.records.batches);
        let members = &mut out[g.first..];
        if g.records.records == 0 {
            return;
        }
        let result = self
            .inner
            .log
            .enqueue_append_with_state(&g.topic, Target::Partition(g.partition), g.records, g.ops)
            .await;
        match result {
            Ok(pending) => {
                let mut pending = Some(pending);
                for m in members.iter_mut().flatten() {
                    if m.qos == QoS::AtMostOnce {
                        continue;
                    }
                    m.pending = Some(match pending.take() {
                        Some(p) => Commit::Append(p),
                        None => Commit::WithPrevious,
                    });
                }
            }
            Err(e) => {
                let code = Self::refused_code(&e, &g.topic);
                for m in members.iter_mut() {
                    if let Ok(p) = std::mem::replace(m, Err(code)) {
                        if code == reason::QUOTA_EXCEEDED && p.qos == QoS::AtMostOnce {
                            // No reply is possible: the message is lost; count it.
                            self.count_dropped(1);
                        }
                        self.cancel(p.deliveries);
                    }
                }
            }
        }
    }

    /// The v5 reason code for publishes whose append was refused, logging why.
    fn refused_code(e: &AppendError, topic: &str) -> u8 {
        log_not_stored(e, topic);
        match e {
            AppendError::Full { .. } => reason::QUOTA_EXCEEDED,
            _ => reason::UNSPECIFIED_ERROR,
        }
    }

    /// A message not stored in the log: its state changes (queue rows, retained) commit alone.
    async fn commit_alone(
        &self,
        mut published: Published,
        ops: Vec<StateOp>,
    ) -> Result<Published, u8> {
        if ops.is_empty() {
            return Ok(published);
        }
        match self.inner.log.enqueue_state(ops).await {
            Ok(p) => {
                published.pending = Some(Commit::State(p));
                Ok(published)
            }
            Err(_) => {
                self.cancel(published.deliveries);
                Err(reason::UNSPECIFIED_ERROR)
            }
        }
    }

    /// Reserves a place in `slot`'s queue; a full queue drops the delivery and counts it.
    /// `Some(true)`: reserved, and the queue is at least half full.
    fn reserve(&self, slot: &Slot, qos: QoS) -> Option<bool> {
        let reserved = slot.reserve(qos);
        if reserved.is_none() {
            let stats = &self.inner.stats;
            stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
            // Refused for a full queue, not for a session ending at this moment.
            if !slot.lock().ended {
                stats
                    .messages_dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        reserved
    }

    fn cancel(&self, deliveries: Vec<(Arc<Slot>, Delivery)>) {
        for (slot, d) in deliveries {
            slot.fill(d.qos, None);
        }
    }

    /// Decides who gets `msg`, reserving queue places and adding queue rows to `ops`.
    /// Sessions whose queue this made at least half full are added to `full`.
    fn route(
        &self,
        msg: &SharedMessage,
        ops: &mut Vec<StateOp>,
        full: &mut Vec<Arc<Slot>>,
    ) -> Vec<(Arc<Slot>, Delivery)> {
        let mut routes: Vec<Route> = Vec::new();
        let reg = self.registry();
        let online = |id: SessionId| {
            reg.by_id
                .get(&id)
                .is_some_and(|s| s.online.load(Ordering::Relaxed))
        };
        self.subs_read()
            .route(&msg.topic, msg.publisher, online, &mut routes);
        if routes.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(routes.len());
        for route in routes {
            let Some(slot) = reg.by_id.get(&route.session) else {
                continue;
            };
            let qos = msg.qos.min(route.qos);
            if qos == QoS::AtMostOnce && !slot.online.load(Ordering::Relaxed) {
                // QoS 0 messages are not queued for offline sessions.
                continue;
            }
            let Some(congested) = self.reserve(slot, qos) else {
                continue;
            };
            if congested && !full.iter().any(|s: &Arc<Slot>| s.id == slot.id) {
                full.push(slot.clone());
            }
            let mut d = Delivery {
                msg: msg.clone(),
                qos,
                // [MQTT-3.3.1-12]/[MQTT-3.3.1-13]: live deliveries carry RETAIN only with
                // Retain As Published.
                retain: msg.retain && route.retain_as_published,
                sub_ids: route.subscription_ids,
                seq: None,
                packet_id: 0,
                released: false,
            };
            if qos != QoS::AtMostOnce {
                if let Some(seq) = slot.next_seq() {
                    d.seq = Some(seq);
                    ops.push(persist::put_delivery(&slot.client_id, &d, seq));
                }
            }
            out.push((slot.clone(), d));
        }
        out
    }

    /// Updates the retained message of `msg.topic` ([MQTT-3.3.1-5]..[MQTT-3.3.1-7]); false
    /// when the limit keeps a new topic from being retained.
    fn set_retained(&self, msg: &SharedMessage, persist: bool, ops: &mut Vec<StateOp>) -> bool {
        let mut retained = self.retained();
        if msg.payload.is_empty() {
            // [MQTT-3.3.1-6]/[MQTT-3.3.1-7]: an empty retained message clears, and is not kept.
            if retained.remove(&msg.topic).is_none() {
                return true;
            }
        } else {
            if !retained.contains_key(&msg.topic)
                && retained.len() >= self.inner.limits.max_retained
            {
                return false;
            }
            retained.insert(msg.topic.clone(), msg.clone());
        }
        drop(retained);
        if persist {
            ops.push(persist::retained_op(msg));
        }
        true
    }

    /// Adds subscriptions for a session; returns one reason code per entry and queues the
    /// retained messages they are owed.
    pub async fn subscribe(
        &self,
        slot: &Arc<Slot>,
        entries: &[Result<SubscribeEntry, u8>],
    ) -> Vec<u8> {
        let mut reasons = Vec::with_capacity(entries.len());
        let mut owed = Vec::new();
        {
            let mut subs = self.subs_write();
            for entry in entries {
                let e = match entry {
                    Ok(e) => e,
                    Err(code) => {
                        reasons.push(*code);
                        continue;
                    }
                };
                let Ok(filter) = topic::parse_filter(&e.filter, self.inner.limits.max_topic_levels)
                else {
                    reasons.push(reason::TOPIC_FILTER_INVALID);
                    continue;
                };
                let sub = Subscription {
                    options: e.options,
                    id: e.id,
                };
                let existed = subs.subscribe(slot.id, &filter, sub);
                reasons.push(e.options.qos as u8);
                // [MQTT-3.3.1-9]..[MQTT-3.3.1-11]: retain handling 0 sends retained messages,
                // 1 only for a new subscription, 2 never; shared subscriptions never get them.
                let send = match e.options.retain_handling {
                    0 => true,
                    1 => !existed,
                    _ => false,
                };
                if send && filter.share_group.is_none() {
                    owed.push((filter.filter.to_owned(), e.options.qos, e.id));
                }
            }
        }
        self.persist_session(slot).await;
        let now_ms = crate::log::now_ms();
        for (filter, max_qos, id) in owed {
            let matching: Vec<SharedMessage> = self
                .retained()
                .values()
                .filter(|m| topic::matches(&filter, &m.topic))
                .filter(|m| m.remaining_expiry(now_ms).is_some())
                .cloned()
                .collect();
            for msg in matching {
                let qos = msg.qos.min(max_qos);
                if self.reserve(slot, qos).is_none() {
                    continue;
                }
                slot.fill(
                    qos,
                    Some(Delivery {
                        msg,
                        qos,
                        // [MQTT-3.3.1-8]: retained messages sent on subscribe carry RETAIN.
                        retain: true,
                        sub_ids: id.into_iter().collect(),
                        seq: None,
                        packet_id: 0,
                        released: false,
                    }),
                );
            }
        }
        reasons
    }

    /// The filters `slot`'s session is subscribed to, as sent (with any `$share/` prefix).
    pub fn session_filters(&self, slot: &Slot) -> Vec<String> {
        self.subs_read()
            .session_subscriptions(slot.id)
            .into_iter()
            .map(|(filter, _)| filter)
            .collect()
    }

    /// Removes subscriptions; returns one v5 reason code per filter.
    pub async fn unsubscribe(&self, slot: &Arc<Slot>, filters: &[String]) -> Vec<u8> {
        let mut reasons = Vec::with_capacity(filters.len());
        {
            let mut subs = self.subs_write();
            for f in filters {
                let code = match topic::parse_filter(f, self.inner.limits.max_topic_levels) {
                    Ok(filter) if subs.unsubscribe(slot.id, &filter) => reason::SUCCESS,
                    Ok(_) => reason::NO_SUBSCRIPTION_EXISTED,
                    Err(_) => reason::TOPIC_FILTER_INVALID,
                };
                reasons.push(code);
            }
        }
        self.persist_session(slot).await;
        reasons
    }

    async fn persist_session(&self, slot: &Arc<Slot>) {
        let expiry = slot.lock().expiry_secs;
        if expiry == 0 {
            return;
        }
        let subs = self.subs_read().session_subscriptions(slot.id);
        let op = persist::put_session(&slot.client_id, expiry, 0, &subs);
        if let Err(e) = self.commit_state(vec![op]).await {
            tracing::warn!(error = %e, client_id = %slot.client_id, "session not persisted");
        }
    }

    /// Forgets the exactly-once record of an inbound QoS 2 message (PUBREL received).
    pub async fn inbound_done(&self, slot: &Slot, packet_id: u16) {
        if Slot::persistent(&slot.lock()) {
            self.queue_state(vec![persist::delete_inbound(&slot.client_id, packet_id)])
                .await;
        }
    }

    /// State changes for a delivery that finished or progressed (persistent sessions only).
    pub fn delivery_ops(&self, slot: &Slot, d: &Delivery, done: bool) -> Option<StateOp> {
        let seq = d.seq?;
        Some(if done {
            persist::delete_delivery(&slot.client_id, seq)
        } else {
            persist::put_delivery(&slot.client_id, d, seq)
        })
    }

    /// Ends offline sessions whose expiry ran out and publishes wills that are due. Called
    /// periodically.
    pub async fn expire(&self, now: Instant) {
        let slots: Vec<Arc<Slot>> = self.registry().by_id.values().cloned().collect();
        let mut ops = Vec::new();
        let mut wills = Vec::new();
        for slot in slots {
            let mut s = slot.lock();
            if s.owner.is_some() {
                continue;
            }
            if let Some((_, due)) = &s.will {
                if now >= *due {
                    wills.extend(s.will.take().map(|(w, _)| w));
                }
            }
            let expired = match (s.disconnected_at, s.expiry_secs) {
                (_, u32::MAX) => false,
                (Some(at), secs) => now >= at + Duration::from_secs(u64::from(secs)),
                (None, _) => false,
            };
            drop(s);
            if expired {
                tracing::debug!(client_id = %slot.client_id, "session expired");
                wills.extend(self.end_session(&slot, &mut ops));
            }
        }
        for w in wills {
            self.publish_will(w).await;
        }
        if !ops.is_empty() {
            let _ = self.commit_state(ops).await;
        }
    }

    /// Publishes the `$SYS/` topics (retained in memory, not stored in the log).
    pub fn publish_sys(&self) {
        let s = &self.inner.stats;
        let log = self.inner.log.stats();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let topics: [(&str, String); 11] = [
            (
                "$SYS/broker/uptime",
                format!("{} seconds", self.inner.started.elapsed().as_secs()),
            ),
            ("$SYS/broker/clients/connected", load(&s.clients_connected)),
            ("$SYS/broker/messages/received", load(&s.messages_received)),
            ("$SYS/broker/messages/sent", load(&s.messages_sent)),
            ("$SYS/broker/messages/dropped", load(&s.messages_dropped)),
            ("$SYS/broker/bytes/received", load(&s.bytes_received)),
            ("$SYS/broker/bytes/sent", load(&s.bytes_sent)),
            (
                "$SYS/broker/retained/count",
                self.retained().len().to_string(),
            ),
            (
                "$SYS/broker/subscriptions/count",
                self.subs_read().len().to_string(),
            ),
            ("$SYS/broker/log/records", load(&log.records_appended)),
            ("$SYS/broker/log/bytes", load(&log.bytes_appended)),
        ];
        let now_ms = crate::log::now_ms();
        let extra = self.inner.sys_source.get().map(|f| f()).unwrap_or_default();
        for (topic, value) in topics.into_iter().chain(extra) {
            let msg = Arc::new(Message {
                topic: topic.into(),
                payload: Bytes::from(value),
                qos: QoS::AtMostOnce,
                retain: true,
                props: None,
                received_ms: now_ms,
                expiry_secs: None,
                publisher: None,
            });
            let mut ops = Vec::new();
            self.set_retained(&msg, false, &mut ops);
            for (slot, d) in self.route(&msg, &mut ops, &mut Vec::new()) {
                slot.fill(d.qos, Some(d));
            }
        }
    }

    /// Adds `$SYS/` topics published with the broker's own (the first call wins).
    pub fn set_sys_source(&self, source: SysSource) {
        let _ = self.inner.sys_source.set(source);
    }

    /// Counts a PUBLISH sent to a client.
    pub fn count_sent(&self, payload: usize) {
        let s = &self.inner.stats;
        s.messages_sent.fetch_add(1, Ordering::Relaxed);
        s.bytes_sent.fetch_add(payload as u64, Ordering::Relaxed);
    }

    /// Counts deliveries dropped by a session.
    pub fn count_dropped(&self, n: u64) {
        self.inner
            .stats
            .messages_dropped
            .fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{retention, TopicSpec};

    fn message(topic: &str, qos: QoS) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::from_static(b"v"),
            qos,
            retain: false,
            props: None,
            received_ms: 0,
            expiry_secs: None,
            publisher: None,
        }
    }

    async fn stored(broker: &Broker, builder: &mut BatchBuilder) -> bool {
        let msg = message("sensors/a", QoS::AtLeastOnce);
        let mut p = broker.publish(msg, builder).await.unwrap();
        p.wait(true).await
    }

    /// A partition full for a bridge in refuse mode answers QoS 1/2 publishes with Quota
    /// exceeded and drops (and counts) QoS 0 ones; once the bridge catches up, they are stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_partition_refuses_publishes_with_quota_exceeded() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_owned(),
            ..crate::config::Config::default()
        };
        let log = Log::open(&config).unwrap();
        let spec = TopicSpec {
            partitions: 1,
            retention_ms: None,
            retention_bytes: Some(0),
            compression: Compression::None,
        };
        log.create_topic("sensors", spec).await.unwrap();
        let broker = Broker::open(log.clone(), &config.mqtt, 16364).unwrap();
        let mut builder = BatchBuilder::new(Compression::None, 16364);
        assert!(stored(&broker, &mut builder).await);
        // The bridge has forwarded nothing; retention must delete offset 0 to honour the limit.
        log.hold_retention("route", "sensors", 0, Some(0));
        retention::run_once(&log, crate::log::now_ms(), 0).await;
        let msgs = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .map(|q| (message("sensors/a", q), 1))
            .to_vec();
        let results = broker
            .publish_batch(msgs, None, &mut builder, &mut Vec::new())
            .await;
        assert_eq!(results.len(), 3);
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(reason::QUOTA_EXCEEDED))));
        assert_eq!(broker.stats().messages_dropped.load(Ordering::Relaxed), 1);
        log.hold_retention("route", "sensors", 0, Some(1));
        assert!(stored(&broker, &mut builder).await);
        log.shutdown().await;
    }
}
