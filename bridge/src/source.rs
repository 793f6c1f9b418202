//! The log as the bridge sees it.

use core::future::Future;
use core::time::Duration;

/// Batches read from one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceBatches {
    /// Whole Kafka RecordBatch v2 batches, concatenated; the first contains the requested
    /// offset and may start before it (the reader skips the records below it).
    pub batches: Vec<u8>,
    /// First offset still stored.
    pub log_start: u64,
    /// Next offset to be written (high watermark).
    pub log_end: u64,
}

/// Read access to a partitioned log, implemented by the broker.
///
/// Offsets are dense per partition. A forwarder reads from its checkpoint; when the checkpoint
/// is below `log_start` (retention deleted records it had not forwarded) the read fails with
/// the implementation's out-of-range error and the forwarder applies its overflow policy.
pub trait LogSource: Send + Sync + 'static {
    /// The implementation's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Number of partitions of `topic`.
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

    /// Resolves when the partition has data at `offset` or beyond, or after `max_wait`;
    /// returns the log end offset seen last.
    fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
}
