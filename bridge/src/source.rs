//! The log as the bridge sees it: [`LogSource`] (read side) and [`CheckpointStore`].

use core::future::Future;
use core::time::Duration;

/// The partition number of a retention hold on every partition of a topic.
pub const ALL_PARTITIONS: u32 = u32::MAX;

/// Batches read from one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceBatches {
    /// Whole Kafka RecordBatch v2 batches, concatenated; the first contains the requested
    /// offset and may start before it (the reader skips the records below it). Empty when
    /// the offset is the log end, or below the log start (retention deleted it).
    pub batches: Vec<u8>,
    /// First offset still stored.
    pub log_start: u64,
    /// Next offset to be written (high watermark).
    pub log_end: u64,
}

/// One record as the bridge forwards it, borrowed from a read.
#[derive(Debug, Clone, Copy)]
pub struct SourceRecord<'a> {
    /// Offset in its partition.
    pub offset: u64,
    /// Timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Key, if any.
    pub key: Option<&'a [u8]>,
    /// Value (empty for a null value).
    pub value: &'a [u8],
    /// Headers in order; a null header value is empty.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// Read access to a partitioned log, implemented by the broker.
///
/// Offsets are dense per partition. A forwarder reads from its checkpoint; when the checkpoint
/// is below `log_start` (retention deleted records it had not forwarded) the read returns no
/// batches and a `log_start` above the offset, and the forwarder applies its overflow policy.
pub trait LogSource: Send + Sync + 'static {
    /// The implementation's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// This gateway's stable id (origin stamp, default client ids).
    fn gateway_id(&self) -> &str;

    /// Number of partitions of `topic`; an error when it does not exist (yet).
    fn partitions(&self, topic: &str) -> Result<u32, Self::Error>;

    /// `(log_start, log_end)` of a partition as of the last commit.
    fn offsets(&self, topic: &str, partition: u32) -> Result<(u64, u64), Self::Error>;

    /// Whole batches from `offset`, up to about `max_bytes` (at least one batch when any).
    fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
    ) -> impl Future<Output = Result<SourceBatches, Self::Error>> + Send;

    /// Calls `f` for each record at or after `from` in `batches` (from [`LogSource::read`]),
    /// in offset order, until it returns `false`. Returns the offset after the last record
    /// passed to `f` (or `from` when none was).
    fn visit(
        &self,
        batches: &[u8],
        from: u64,
        f: &mut dyn FnMut(&SourceRecord<'_>) -> bool,
    ) -> Result<u64, Self::Error>;

    /// The first offset whose record timestamp is at or after `timestamp_ms` (the log end
    /// when none is).
    fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Resolves when the partition has data at `offset` or beyond, or after `max_wait`;
    /// returns the log end offset seen last.
    fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Keeps retention from deleting offsets at or above `offset` of `topic`/`partition` for
    /// `holder` (a route in `overflow = "refuse"` mode); `None` releases the hold. Ingest into
    /// a partition is refused while a hold keeps retention from honouring its byte limit or
    /// the free-disk floor (time retention alone never refuses: expired records are kept).
    /// Partition
    /// [`ALL_PARTITIONS`] holds every partition of the topic (for a topic that does not exist
    /// yet); such a hold keeps records but does not refuse ingest.
    fn hold_retention(&self, holder: &str, topic: &str, partition: u32, offset: Option<u64>);
}

/// A route partition's stored progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Next offset to forward: everything below is acknowledged upstream (or counted lost).
    pub offset: u64,
    /// Records forwarded and acknowledged, since the route began.
    pub forwarded: u64,
    /// Records lost to retention before they were forwarded, since the route began.
    pub dropped: u64,
}

/// A stored checkpoint row: `(route, topic, partition, checkpoint)`.
pub type CheckpointRow = (String, String, u32, Checkpoint);

/// Where checkpoints are kept: the broker's log file, so one commit stores them durably.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The implementation's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every stored checkpoint of `bridge`: `(route, topic, partition, checkpoint)`.
    fn load_checkpoints(&self, bridge: &str) -> Result<Vec<CheckpointRow>, Self::Error>;

    /// Stores checkpoints of `bridge` (`(route, topic, partition, checkpoint)`) in one
    /// commit; resolves when it is committed (durable under the log's `fsync = "always"`;
    /// under `"interval"` a crash can lose the last `fsync_interval_ms` of them).
    fn store_checkpoints(
        &self,
        bridge: &str,
        rows: Vec<CheckpointRow>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static;
}
