//! [`Upstream`]: what the forwarder needs from an upstream sink (MQTT in `mqtt`, Kafka in
//! `kafka`).
//!
//! The forwarder owns checkpoints, windows and retries; an upstream only moves records and
//! reports what happened to them. It is event-driven so that both shapes fit: MQTT
//! acknowledges each message (PUBACK), Kafka a whole produce request.

use core::future::Future;

use crate::source::SourceRecord;

/// Identifies a record the forwarder sent: its slot (route partition) and offset. Comes back
/// in the acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgId {
    /// The forwarder's slot (one per route and partition).
    pub slot: u32,
    /// The record's offset in its partition.
    pub offset: u64,
}

/// A position in an upstream that has offsets (Kafka): partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamPosition {
    /// The upstream partition.
    pub partition: u32,
    /// The offset there.
    pub offset: u64,
}

/// A record on its way upstream.
#[derive(Debug, Clone, Copy)]
pub struct OutRecord<'a> {
    /// Index of the route in the bridge's configuration.
    pub route: usize,
    /// The log topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: u32,
    /// The record.
    pub record: &'a SourceRecord<'a>,
}

/// What happened upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// The connection is up. Whatever was unacknowledged before is gone either way: the
    /// forwarder re-sends it from the log (the upstream may or may not have kept a session).
    Connected {
        /// The upstream said it kept our session.
        session_present: bool,
    },
    /// Records acknowledged: `offsets` of `slot`'s partition.
    Acked {
        /// The slot.
        slot: u32,
        /// The acknowledged offsets.
        offsets: core::ops::Range<u64>,
        /// Where the last of them landed upstream, when the upstream has positions (Kafka).
        position: Option<UpstreamPosition>,
    },
    /// Something `send` refused with [`SendError::NotReady`] may be accepted now (a lookup
    /// finished); the forwarder tries again.
    Ready,
    /// A route cannot send for a reason of the upstream's (its topic is missing there, or
    /// has too few partitions), or (`None`) no longer has one. Shown in the route's status.
    RouteProblem {
        /// Index of the route in the bridge's configuration.
        route: usize,
        /// What is wrong, naming the upstream topic; `None` when it is resolved.
        problem: Option<String>,
    },
    /// The upstream refused a record (an MQTT 5 PUBACK reason ≥ 0x80): it is not delivered.
    Rejected {
        /// The record.
        id: MsgId,
        /// Why, as the upstream said.
        reason: String,
        /// The upstream will refuse it again (not authorized, invalid topic or payload): the
        /// record is skipped and counted. Otherwise (quota, unspecified) it is re-sent after a
        /// reconnect with backoff.
        permanent: bool,
    },
    /// The connection attempt failed or the connection is lost; nothing more will be
    /// acknowledged on it.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a record could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The record can never be sent to this upstream (too large, or a field longer than MQTT
    /// allows); skip it and count it.
    #[error("record cannot be sent upstream: {0}")]
    TooLarge(String),
    /// Not connected, or the connection's queue is full: try again later.
    #[error("upstream not ready: {0}")]
    NotReady(String),
}

/// An upstream sink.
pub trait Upstream: Send + 'static {
    /// Starts a new connection attempt, dropping any current connection and everything
    /// unacknowledged on it. The outcome arrives as [`UpstreamEvent::Connected`] or
    /// [`UpstreamEvent::Failed`].
    fn connect(&mut self);

    /// Queues one record on the current connection. Returns the bytes it puts on the wire
    /// (for rate limits).
    fn send(&mut self, id: MsgId, record: &OutRecord<'_>) -> Result<usize, SendError>;

    /// Sends what `send` may have buffered (an upstream that batches closes its batch).
    fn flush(&mut self) {}

    /// The next event. Cancel-safe. Pending for ever while there is no connection.
    fn next_event(&mut self) -> impl Future<Output = UpstreamEvent> + Send;

    /// The next event if one is ready now (lets the forwarder handle a burst of
    /// acknowledgements in one pass).
    fn try_next_event(&mut self) -> Option<UpstreamEvent> {
        None
    }

    /// Drops the connection, if any.
    fn disconnect(&mut self);
}
