//! Reading the log: batches from any offset, bounded by bytes, in a redb read transaction.
//!
//! Reads never block the writer (redb's MVCC). A read returns whole stored batches, like a
//! Kafka fetch: the first one contains the requested offset, so it may start before it;
//! [`visit_records`] skips the records below the offset. At least one batch is returned
//! whatever `max_bytes` says, so a consumer always makes progress.

use redb::{Database, ReadableDatabase};

use super::batch::{self, BatchError, RecordRef};
use super::tables::{self, PartitionMeta};
use super::{Log, StorageError};

/// Why a read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The topic does not exist.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("topic `{topic}` has no partition {partition}")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// The offset is outside the stored range `[start, end]`.
    #[error("offset {offset} is out of range: partition holds [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: u64,
        /// Log start offset.
        start: u64,
        /// Log end offset (reading at it returns nothing yet).
        end: u64,
    },
    /// redb failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored value is damaged.
    #[error("damaged partition metadata: {0}")]
    Decode(#[from] tables::DecodeError),
    /// The runtime is shutting down.
    #[error("the log is shutting down")]
    ShuttingDown,
    /// A stored batch does not decode.
    #[error("damaged batch: {0}")]
    Corrupt(String),
}

/// Batches read from one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole stored batches, concatenated; the first contains the requested offset.
    pub batches: Vec<u8>,
    /// Log start offset at the time of the read.
    pub log_start: u64,
    /// Log end offset (high watermark) at the time of the read.
    pub high_watermark: u64,
}

impl Log {
    /// Reads batches of `topic`/`partition` from `offset`, up to about `max_bytes` (at least
    /// one batch). Reading at the end offset returns no batches; beyond it, or below the
    /// start offset, gives [`ReadError::OffsetOutOfRange`] with the valid range.
    pub async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
    ) -> Result<ReadResult, ReadError> {
        self.lookup(topic, partition)?;
        let db = self.db().clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            read_blocking(&db, &topic, partition, offset, max_bytes)
        })
        .await
        .map_err(|_| ReadError::ShuttingDown)?
    }
}

impl Log {
    /// The first offset of `topic`/`partition` whose record timestamp is at or after
    /// `timestamp_ms`, or the log end when there is none. Batches are skipped by their max
    /// timestamp, then the first matching batch is scanned record by record.
    pub async fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64, ReadError> {
        self.lookup(topic, partition)?;
        let db = self.db().clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            offset_for_time_blocking(&db, &topic, partition, timestamp_ms)
        })
        .await
        .map_err(|_| ReadError::ShuttingDown)?
    }
}

/// A partition's metadata as of `txn`.
fn meta_in(
    txn: &redb::ReadTransaction,
    topic: &str,
    partition: u32,
) -> Result<PartitionMeta, ReadError> {
    let parts = txn
        .open_table(tables::PARTITIONS)
        .map_err(StorageError::from)?;
    match parts.get((topic, partition)).map_err(StorageError::from)? {
        Some(v) => Ok(PartitionMeta::decode(v.value())?),
        None => Err(ReadError::UnknownTopic(topic.to_owned())),
    }
}

fn offset_for_time_blocking(
    db: &Database,
    topic: &str,
    partition: u32,
    timestamp_ms: i64,
) -> Result<u64, ReadError> {
    let txn = db.begin_read().map_err(StorageError::from)?;
    let meta = meta_in(&txn, topic, partition)?;
    let name = tables::batch_table_name(topic);
    let table = txn
        .open_table(tables::batch_table(&name))
        .map_err(StorageError::from)?;
    let corrupt = |e: BatchError| ReadError::Corrupt(e.to_string());
    let mut scratch = Vec::new();
    for entry in table
        .range((partition, 0)..=(partition, u64::MAX))
        .map_err(StorageError::from)?
    {
        let (_, value) = entry.map_err(StorageError::from)?;
        let (header, _) = batch::parse_header(value.value()).map_err(corrupt)?;
        if header.max_timestamp < timestamp_ms {
            continue;
        }
        for rec in batch::records(value.value(), &mut scratch, usize::MAX).map_err(corrupt)? {
            let rec = rec.map_err(corrupt)?;
            if rec.timestamp_ms >= timestamp_ms {
                return Ok(rec.offset);
            }
        }
    }
    Ok(meta.end_offset)
}

/// The read itself, in one read transaction (consistent meta and batches).
pub fn read_blocking(
    db: &Database,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: u32,
) -> Result<ReadResult, ReadError> {
    let txn = db.begin_read().map_err(StorageError::from)?;
    let meta = meta_in(&txn, topic, partition)?;
    if offset < meta.start_offset || offset > meta.end_offset {
        return Err(ReadError::OffsetOutOfRange {
            offset,
            start: meta.start_offset,
            end: meta.end_offset,
        });
    }
    let mut result = ReadResult {
        batches: Vec::new(),
        log_start: meta.start_offset,
        high_watermark: meta.end_offset,
    };
    if offset == meta.end_offset {
        return Ok(result);
    }
    let name = tables::batch_table_name(topic);
    let table = txn
        .open_table(tables::batch_table(&name))
        .map_err(StorageError::from)?;
    // The batch holding `offset` is the last one whose base offset is <= offset.
    let first_base = table
        .range((partition, 0)..=(partition, offset))
        .map_err(StorageError::from)?
        .next_back()
        .transpose()
        .map_err(StorageError::from)?
        .map_or(meta.start_offset, |(k, _)| k.value().1);
    let range = table
        .range((partition, first_base)..=(partition, u64::MAX))
        .map_err(StorageError::from)?;
    for entry in range {
        let (_, value) = entry.map_err(StorageError::from)?;
        let bytes = value.value();
        if !result.batches.is_empty() && result.batches.len() + bytes.len() > max_bytes as usize {
            break;
        }
        result.batches.extend_from_slice(bytes);
    }
    Ok(result)
}

/// Calls `f` for every record at or after `from` in concatenated `batches`, in offset order,
/// until it returns `false`. Compressed batches are decompressed into `scratch` (at most
/// `max_decompressed` bytes).
pub fn visit_records(
    batches: &[u8],
    from: u64,
    scratch: &mut Vec<u8>,
    max_decompressed: usize,
    mut f: impl FnMut(&RecordRef<'_>) -> bool,
) -> Result<(), BatchError> {
    for b in batch::Batches::new(batches) {
        let (header, bytes) = b?;
        if header.next_offset() <= from {
            continue;
        }
        for rec in batch::records(bytes, scratch, max_decompressed)? {
            let rec = rec?;
            if rec.offset >= from && !f(&rec) {
                return Ok(());
            }
        }
    }
    Ok(())
}
