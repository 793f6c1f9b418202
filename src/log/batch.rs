//! Kafka's RecordBatch v2 ("magic 2"): the unit the log stores, one batch per redb entry.
//!
//! This module owns the byte format of a stored batch: [`BatchBuilder`] encodes records into
//! batches, [`parse_header`] and [`Batches`] check and split stored or received bytes,
//! [`records`] iterates the records of one batch without allocating, [`validate`] checks a batch
//! end to end, and [`set_base_offset`] assigns offsets. It does not know about topics,
//! partitions, redb tables or which offsets to assign (see `log::writer` and `log::tables`).
//!
//! # Why Kafka's format
//!
//! It is specified, battle-tested and carries everything we need (offsets, timestamps, keys,
//! values, headers, a checksum, compression). Readers, and the Kafka bridge or a future
//! Kafka-protocol listener, serve the stored bytes as they are, without re-encoding. The base
//! offset sits outside the checksum, so assigning offsets at commit is an 8-byte patch
//! ([`set_base_offset`]), never a new CRC.
//!
//! # Layout (all integers big-endian, as Kafka)
//!
//! | offset | size | field                | what we write                                       |
//! |-------:|-----:|----------------------|-----------------------------------------------------|
//! |      0 |    8 | baseOffset i64       | 0 from the builder; the writer patches the real one |
//! |      8 |    4 | batchLength i32      | bytes after this field (total length − 12)          |
//! |     12 |    4 | partitionLeaderEpoch | 0: a single-node log has no leader elections        |
//! |     16 |    1 | magic i8             | 2                                                   |
//! |     17 |    4 | crc u32              | CRC-32C (Castagnoli) of bytes 21..end               |
//! |     21 |    2 | attributes i16       | see below; we write the codec id, CreateTime        |
//! |     23 |    4 | lastOffsetDelta i32  | record count − 1                                    |
//! |     27 |    8 | baseTimestamp i64    | timestamp (ms) of the first record                  |
//! |     35 |    8 | maxTimestamp i64     | largest record timestamp                            |
//! |     43 |    8 | producerId i64       | −1 (no idempotent producer)                         |
//! |     51 |    2 | producerEpoch i16    | −1                                                  |
//! |     53 |    4 | baseSequence i32     | −1                                                  |
//! |     57 |    4 | recordCount i32      | number of records                                   |
//! |     61 |    … | records              | the records section, possibly compressed            |
//!
//! The header is [`HEADER_LEN`] = 61 bytes. Attributes: bits 0–2 codec (0 none, 1 gzip,
//! 2 snappy, 3 lz4, 4 zstd; 5–7 are rejected), bit 3 timestamp type (0 CreateTime,
//! 1 LogAppendTime: every record then takes maxTimestamp), bit 4 transactional, bit 5 control,
//! bit 6 delete horizon (KIP-534); other bits are ignored, as Kafka does. Only bits 0–2 are
//! ever set by the builder.
//!
//! Each record of the (decompressed) records section:
//!
//! | field            | encoding                                                  |
//! |------------------|-----------------------------------------------------------|
//! | length           | varint: bytes of the record after this field              |
//! | attributes       | i8, 0 (unused by Kafka)                                   |
//! | timestampDelta   | varlong: record timestamp − baseTimestamp (may be < 0)    |
//! | offsetDelta      | varint: record offset − baseOffset (0, 1, 2, … from us)   |
//! | keyLength, key   | varint (−1 = null key), then the key bytes                |
//! | valueLength, val | varint (−1 = null value), then the value bytes            |
//! | headerCount      | varint                                                    |
//! | headers          | each: keyLength varint (≥ 0), key (UTF-8), valueLength varint (−1 = null), value |
//!
//! A varint is a zigzag-encoded i32 in LEB128 (7 bits per byte, low bits first, high bit =
//! "more"; at most 5 bytes); a varlong is the same for i64 (at most 10 bytes). We always write
//! the shortest form and reject encodings that are too long or overflow.
//!
//! # Compression
//!
//! Only the records section is compressed; the header stays readable. What we write:
//! gzip — one RFC 1952 member (deflate level [`GZIP_LEVEL`]); snappy — the xerial framing that
//! Kafka's Java client writes (16-byte header, then big-endian-length-prefixed raw snappy blocks
//! of up to 32 KiB); lz4 — one LZ4 frame with independent blocks of up to 64 KiB, no
//! checksums, no content size (a plain descriptor every Kafka client reads); zstd — one frame with its content size, level
//! [`ZSTD_LEVEL`]. A batch whose compressed records would not be smaller than the plain ones is
//! stored uncompressed (attributes say so), so stored batches never grow past
//! `max_batch_bytes`.
//!
//! What we read: gzip with any number of members; snappy xerial-framed or one raw block; any LZ4
//! frame without a dictionary (linked or independent blocks; its own xxhash checksums are
//! skipped, the batch CRC-32C already covers the compressed bytes); any zstd frames. Output
//! stops at the caller's `max_decompressed` (and [`MAX_BATCH_BYTES`]), so a decompression bomb
//! costs at most about that much memory.
//!
//! # Guarantees on hostile input
//!
//! Every decoder here takes peer bytes: none panics; none allocates from a length or count found
//! in the input beyond the decompression limit (counts are checked against the bytes that must
//! hold them first); decompression never produces more than the limit. The fuzz target
//! `fuzz/fuzz_targets/batch_decode.rs` exercises all of it.

use std::convert::Infallible;
use std::fmt;
use std::iter::FusedIterator;

use super::codec::{decompress, Encoder};

// ----------------------------------------------------------------------------------------------
// Layout constants

/// Length of the batch header (base offset through record count).
pub const HEADER_LEN: usize = 61;
/// The only batch format version we read and write.
pub const MAGIC: i8 = 2;
/// Largest batch (whole, header included) that fits one 4 KiB redb page (see FIELD-NOTES.md).
pub const PAGE_FIT_SMALL: usize = 4076;
/// Largest batch (whole, header included) that fits one 16 KiB redb leaf (see FIELD-NOTES.md).
pub const PAGE_FIT_LARGE: usize = 16_364;
/// Largest batch accepted or built, and largest decompressed records section accepted.
/// A batch length above it is corruption, not a partial batch. Far above anything we write and
/// above Kafka's default `message.max.bytes` (1 MiB).
pub const MAX_BATCH_BYTES: usize = 64 << 20;
/// Decompression limit of [`validate`] (which has no caller-given limit).
pub const DEFAULT_MAX_DECOMPRESSED: usize = 8 << 20;
/// zstd level of the batches we write (FIELD-NOTES.md: level 1 ≈ 3.7× on telemetry).
pub const ZSTD_LEVEL: i32 = 1;
/// gzip (deflate) level of the batches we write: Kafka's default.
pub const GZIP_LEVEL: u32 = 6;

/// Bytes before the batch length field's coverage starts (base offset + batch length).
const LOG_OVERHEAD: usize = 12;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// First byte covered by the CRC (the attributes).
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

const CODEC_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Smallest encoded record: length, attributes, timestampDelta, offsetDelta, keyLength,
/// valueLength and headerCount, one byte each. Bounds plausible record counts.
const MIN_RECORD_LEN: usize = 7;
/// Smallest encoded header (keyLength 0, valueLength -1).
const MIN_HEADER_LEN: usize = 2;
/// Most records any batch can hold (each takes at least `MIN_RECORD_LEN` decompressed bytes).
const MAX_RECORDS: usize = MAX_BATCH_BYTES / MIN_RECORD_LEN;
/// Varint encoding of -1 (null key/value), after zigzag.
const NULL_VARINT: u8 = 0x01;

// ----------------------------------------------------------------------------------------------
// Public types

/// The codec of a batch: the project's one codec type (defined with the wire frames).
pub use outpost_firmware::Compression;

/// The codec named by batch `attributes` (bits 0–2), or `None` for ids 5–7.
pub const fn compression_from_attributes(attributes: i16) -> Option<Compression> {
    Compression::from_kafka_id((attributes & CODEC_MASK) as u8)
}

/// What a record's timestamp means (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer; each record carries its own (what we write).
    CreateTime,
    /// Set by the broker at append; every record of the batch has `max_timestamp`.
    LogAppendTime,
}

/// The fixed 61-byte header of a batch, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (Kafka's i64, never negative in a parsed header).
    pub base_offset: u64,
    /// Bytes after the batch length field (total batch length − 12).
    pub batch_length: u32,
    /// Partition leader epoch; 0 in our batches.
    pub leader_epoch: i32,
    /// Format version, always [`MAGIC`] in a parsed header.
    pub magic: i8,
    /// Stored CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Attribute bits (codec, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp (ms) records' deltas are relative to: the first record's in our batches.
    pub first_timestamp: i64,
    /// Largest record timestamp (ms).
    pub max_timestamp: i64,
    /// Producer id; -1 in our batches.
    pub producer_id: i64,
    /// Producer epoch; -1 in our batches.
    pub producer_epoch: i16,
    /// Sequence number of the first record; -1 in our batches.
    pub base_sequence: i32,
    /// Number of records (never negative in a parsed header).
    pub record_count: i32,
}

impl BatchHeader {
    /// Whole batch length in bytes, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record (for an empty batch: of the last record it once held).
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta.max(0).unsigned_abs())
    }

    /// The offset after this batch: where the next batch starts.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Codec of the records section; `None` only for an unknown id, which [`parse_header`]
    /// rejects, so never on a parsed header.
    pub fn compression(&self) -> Option<Compression> {
        compression_from_attributes(self.attributes)
    }

    /// What record timestamps mean.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a Kafka transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds Kafka control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Why a codec failed to decompress a records section.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// gzip or zstd stream error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Malformed raw snappy block.
    #[error(transparent)]
    Snappy(#[from] snap::Error),
    /// Malformed LZ4 block.
    #[error(transparent)]
    Lz4(#[from] lz4_flex::block::DecompressError),
    /// Malformed LZ4 frame (bad magic, version, reserved bits, dictionary, truncated block).
    #[error("malformed LZ4 frame")]
    Lz4Frame,
    /// Malformed xerial snappy framing (truncated or negative block length).
    #[error("malformed xerial snappy framing")]
    SnappyFrame,
    /// A zstd frame header is malformed.
    #[error("malformed zstd frame header")]
    ZstdFrame,
}

/// Why bytes are not a valid batch, or a record could not be added to one.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The bytes end before the batch does. [`Batches`] reports a trailing partial batch (as
    /// Kafka fetch responses may end with) this way, as its last item.
    #[error("batch truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the batch needs (its total length, or the header length).
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The batch length field is below the header size or above [`MAX_BATCH_BYTES`].
    #[error("batch length {0} out of range")]
    BadLength(i32),
    /// Not a magic 2 batch.
    #[error("unsupported batch magic {0} (only 2 is supported)")]
    BadMagic(i8),
    /// The stored CRC-32C does not match the bytes: the batch is damaged.
    #[error("batch CRC-32C mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        expected: u32,
        /// CRC of the bytes.
        actual: u32,
    },
    /// The base offset is negative.
    #[error("negative base offset {0}")]
    BadBaseOffset(i64),
    /// Codec id 5–7.
    #[error("unsupported compression codec id {0}")]
    UnsupportedCompression(u8),
    /// The record count is negative or more than the records section can hold.
    #[error("implausible record count {0}")]
    BadRecordCount(i32),
    /// The last offset delta is negative or smaller than the record count allows.
    #[error("bad last offset delta {0}")]
    BadLastOffsetDelta(i32),
    /// A record's offset delta is negative, not increasing, or past the last offset delta.
    #[error("bad record offset delta {0}")]
    BadOffsetDelta(i32),
    /// The records section holds fewer or more records than the header says.
    #[error("record count does not match the records section")]
    RecordCountMismatch,
    /// A varint is longer than allowed (5 bytes, 10 for a varlong) or overflows.
    #[error("malformed varint")]
    Varint,
    /// A record, or a field within it, runs past the bytes that hold it.
    #[error("record overruns its bytes")]
    RecordOverrun,
    /// A record's fields end before its length says.
    #[error("record has bytes after its last header")]
    TrailingRecordBytes,
    /// A length or count is negative (other than -1 for a null key or value).
    #[error("negative length or count {0}")]
    NegativeLength(i32),
    /// A record timestamp does not fit an i64, or (when building) is too far from the batch's
    /// first one for an i64 delta.
    #[error("record timestamp overflows")]
    TimestampOverflow,
    /// A header key is not UTF-8.
    #[error("header key is not UTF-8")]
    Utf8(#[source] std::str::Utf8Error),
    /// The records section did not decompress.
    #[error("cannot decompress {codec} records")]
    Decompress {
        /// Codec of the batch.
        codec: Compression,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// The records section decompresses to more than the limit.
    #[error("records decompress to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// A record is too large for any batch ([`MAX_BATCH_BYTES`]).
    #[error("record of {len} bytes does not fit a batch")]
    RecordTooLarge {
        /// Encoded size (or the offending field's size).
        len: usize,
    },
    /// The caller's header iterator yielded an error (see [`BatchBuilder::push_iter`]).
    #[error("header source failed")]
    HeaderInput,
}

/// Outcome of pushing a record into a [`BatchBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The record is in the batch.
    Added,
    /// The record was not added: it would take the batch past `max_batch_bytes`. Finish the
    /// batch and push it again.
    Full,
}

/// What [`BatchBuilder::finish_into`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchInfo {
    /// Records in the batch.
    pub record_count: u32,
    /// Timestamp of the first record (the batch's base timestamp).
    pub first_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Bytes appended (the whole batch).
    pub bytes: u32,
    /// Codec actually applied: the builder's, or `None` when compressing did not shrink the
    /// records.
    pub compression: Compression,
}

// ----------------------------------------------------------------------------------------------
// Builder

/// Encodes records into batches, one at a time. Reusable: its buffers and compressor state
/// survive [`finish_into`](Self::finish_into), so a warmed builder allocates nothing per record
/// or per batch.
///
/// Batches close by bytes: a record that would take the uncompressed batch past
/// `max_batch_bytes` is refused with [`Push::Full`], unless the batch is empty (an oversized
/// record forms a batch of its own).
pub struct BatchBuilder {
    compression: Compression,
    max_batch_bytes: usize,
    codec: Encoder,
    /// Uncompressed records section.
    records: Vec<u8>,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
}

impl fmt::Debug for BatchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("compression", &self.compression)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("records", &self.count)
            .field("encoded_len", &self.encoded_len())
            .finish()
    }
}

impl BatchBuilder {
    /// A builder of batches compressed with `compression`, closed at `max_batch_bytes`
    /// uncompressed bytes (header included; e.g. [`PAGE_FIT_LARGE`]). A limit above
    /// [`MAX_BATCH_BYTES`] is lowered to it.
    pub fn new(compression: Compression, max_batch_bytes: usize) -> Self {
        Self {
            compression,
            max_batch_bytes: max_batch_bytes.min(MAX_BATCH_BYTES),
            codec: Encoder::new(compression),
            records: Vec::new(),
            count: 0,
            first_timestamp: 0,
            max_timestamp: 0,
        }
    }

    /// Codec of the batches this builder writes.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Uncompressed size at which batches close.
    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes
    }

    /// Whether the current batch has no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Records in the current batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Size of the current batch, uncompressed, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// Adds a record with headers from a slice. See [`push_iter`](Self::push_iter).
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Result<Push, BatchError> {
        let headers = headers.iter().map(|&h| Ok::<_, Infallible>(h));
        self.push_inner(timestamp_ms, key, value, headers, |e| match e {})
    }

    /// Adds a record whose headers come from a fallible iterator (e.g. a frame decoder).
    ///
    /// `Ok(Push::Full)`: not added, the batch is full. `Err`: not added, the batch is as
    /// before; [`BatchError::HeaderInput`] if the iterator yielded an error,
    /// [`BatchError::RecordTooLarge`] if the record can never fit a batch,
    /// [`BatchError::TimestampOverflow`] if its timestamp delta overflows.
    pub fn push_iter<'h, I, E>(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: I,
    ) -> Result<Push, BatchError>
    where
        I: IntoIterator<Item = Result<(&'h str, Option<&'h [u8]>), E>>,
    {
        self.push_inner(timestamp_ms, key, value, headers, |_| {
            BatchError::HeaderInput
        })
    }

    /// Re-encodes a record read from another batch (its offset is not kept: records get the
    /// next offsets of this batch). Header errors of `record` are returned as they are.
    pub fn push_record(&mut self, record: &RecordRef<'_>) -> Result<Push, BatchError> {
        let headers = record.headers.clone();
        self.push_inner(
            record.timestamp_ms,
            record.key,
            record.value,
            headers,
            |e| e,
        )
    }

    fn push_inner<'h, I, E>(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: I,
        map_err: impl Fn(E) -> BatchError,
    ) -> Result<Push, BatchError>
    where
        I: IntoIterator<Item = Result<(&'h str, Option<&'h [u8]>), E>>,
    {
        let timestamp_delta = if self.count == 0 {
            0
        } else {
            timestamp_ms
                .checked_sub(self.first_timestamp)
                .ok_or(BatchError::TimestampOverflow)?
        };
        let mark = self.records.len();
        // The count stays below i32::MAX: every record takes bytes and the batch is bounded.
        let offset_delta = self.count as i32;
        let field = RecordFields {
            timestamp_delta,
            offset_delta,
            key,
            value,
        };
        if let Err(e) = encode_record(&mut self.records, &field, headers, map_err) {
            self.records.truncate(mark);
            return Err(e);
        }
        let size = self.encoded_len();
        if self.count > 0 && size > self.max_batch_bytes {
            self.records.truncate(mark);
            return Ok(Push::Full);
        }
        if size > MAX_BATCH_BYTES {
            let len = self.records.len() - mark;
            self.records.truncate(mark);
            return Err(BatchError::RecordTooLarge { len });
        }
        self.note_record(timestamp_ms);
        Ok(Push::Added)
    }

    fn note_record(&mut self, timestamp_ms: i64) {
        if self.count == 0 {
            self.first_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        } else {
            self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        }
        self.count += 1;
    }

    /// Appends the current batch to `out` (base offset 0, see [`set_base_offset`]) and starts
    /// a new one. The records section is compressed with the builder's codec unless that does
    /// not make it smaller. An empty builder appends nothing and returns a zero `BatchInfo`.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> BatchInfo {
        if self.count == 0 {
            return BatchInfo::default();
        }
        let start = out.len();
        out.reserve(HEADER_LEN + self.records.len());
        out.extend_from_slice(&[0; HEADER_LEN]);
        let codec = self.codec.compress(&self.records, out);
        let batch = &mut out[start..];
        self.write_header(batch, codec);
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        batch[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
        let info = BatchInfo {
            record_count: self.count,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            // Bounded by MAX_BATCH_BYTES: compressed output is kept only when smaller.
            bytes: batch.len() as u32,
            compression: codec,
        };
        self.clear();
        info
    }

    /// Drops the current batch's records.
    pub fn clear(&mut self) {
        self.records.clear();
        self.count = 0;
    }

    fn write_header(&self, batch: &mut [u8], codec: Compression) {
        // `batch` is at least HEADER_LEN long and at most MAX_BATCH_BYTES.
        let length = (batch.len() - LOG_OVERHEAD) as i32;
        put_be(batch, 0, &0u64.to_be_bytes());
        put_be(batch, LENGTH_AT, &length.to_be_bytes());
        put_be(batch, LEADER_EPOCH_AT, &0i32.to_be_bytes());
        batch[MAGIC_AT] = MAGIC as u8;
        put_be(
            batch,
            ATTRIBUTES_AT,
            &i16::from(codec.kafka_id()).to_be_bytes(),
        );
        put_be(
            batch,
            LAST_OFFSET_DELTA_AT,
            &(self.count as i32 - 1).to_be_bytes(),
        );
        put_be(
            batch,
            BASE_TIMESTAMP_AT,
            &self.first_timestamp.to_be_bytes(),
        );
        put_be(batch, MAX_TIMESTAMP_AT, &self.max_timestamp.to_be_bytes());
        put_be(batch, PRODUCER_ID_AT, &(-1i64).to_be_bytes());
        put_be(batch, PRODUCER_EPOCH_AT, &(-1i16).to_be_bytes());
        put_be(batch, BASE_SEQUENCE_AT, &(-1i32).to_be_bytes());
        put_be(batch, RECORD_COUNT_AT, &(self.count as i32).to_be_bytes());
    }
}

fn put_be(batch: &mut [u8], at: usize, bytes: &[u8]) {
    batch[at..at + bytes.len()].copy_from_slice(bytes);
}

/// The fixed fields of a record being encoded.
struct RecordFields<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// Appends one record to `buf`. On error, `buf` may hold part of it: the caller truncates.
///
/// The length prefix and header count come before bytes whose size is known only at the end
/// (headers come from an iterator), so they are written at their likely size and moved only
/// when the guess was wrong (rare: a record crossing a varint size boundary).
fn encode_record<'h, I, E>(
    buf: &mut Vec<u8>,
    f: &RecordFields<'_>,
    headers: I,
    map_err: impl Fn(E) -> BatchError,
) -> Result<(), BatchError>
where
    I: IntoIterator<Item = Result<(&'h str, Option<&'h [u8]>), E>>,
{
    let headers = headers.into_iter();
    let hint = headers.size_hint().0.min(MAX_RECORDS);
    let fixed = 1
        + varlong_len(f.timestamp_delta)
        + varint_len(f.offset_delta)
        + nullable_len(f.key)?
        + nullable_len(f.value)?
        + uvarint_len(u64::from(zigzag32(hint as i32)));
    let start = buf.len();
    let guess = uvarint_len(u64::from(zigzag32(fixed as i32)));
    buf.reserve(guess + fixed);
    // Byte loops, not `extend_from_slice`: a memcpy call per tiny field costs more than the
    // record's other work.
    for _ in 0..guess {
        buf.push(0);
    }
    buf.push(0); // attributes
    put_varlong(buf, f.timestamp_delta);
    put_varint(buf, f.offset_delta);
    put_nullable(buf, f.key);
    put_nullable(buf, f.value);
    let count_at = buf.len();
    put_varint(buf, hint as i32);
    let mut count = 0usize;
    for header in headers {
        let (key, value) = header.map_err(&map_err)?;
        put_varint(buf, field_len(key.len())?);
        buf.extend_from_slice(key.as_bytes());
        put_nullable(buf, value);
        count += 1;
        if buf.len() - start > MAX_BATCH_BYTES {
            return Err(BatchError::RecordTooLarge {
                len: buf.len() - start,
            });
        }
    }
    if count != hint {
        replace_varint(buf, count_at, hint as i32, count as i32);
    }
    let body = buf.len() - start - guess;
    replace_varint(buf, start, fixed as i32, body as i32);
    Ok(())
}

/// Rewrites the varint `old` at `at` as `new`, moving what follows if their sizes differ.
fn replace_varint(buf: &mut Vec<u8>, at: usize, old: i32, new: i32) {
    let value = u64::from(zigzag32(new));
    let old_len = uvarint_len(u64::from(zigzag32(old)));
    if uvarint_len(value) == old_len {
        // In place, straight from a register (a stack buffer here stalls store forwarding).
        overwrite_uvarint(&mut buf[at..at + old_len], value);
    } else {
        let mut tmp = [0u8; 5];
        let n = uvarint_len(value);
        overwrite_uvarint(&mut tmp[..n], value);
        buf.splice(at..at + old_len, tmp[..n].iter().copied());
    }
}

/// Writes `v` as LEB128 into `dst`, which is exactly its encoded length.
fn overwrite_uvarint(dst: &mut [u8], mut v: u64) {
    let last = dst.len() - 1;
    for (i, byte) in dst.iter_mut().enumerate() {
        *byte = if i == last { v as u8 } else { v as u8 | 0x80 };
        v >>= 7;
    }
}

/// A key, value or header length as stored: an i32 that leaves room in a batch.
fn field_len(len: usize) -> Result<i32, BatchError> {
    if len > MAX_BATCH_BYTES {
        return Err(BatchError::RecordTooLarge { len });
    }
    Ok(len as i32)
}

fn nullable_len(field: Option<&[u8]>) -> Result<usize, BatchError> {
    Ok(match field {
        None => 1,
        Some(b) => varint_len(field_len(b.len())?) + b.len(),
    })
}

fn put_nullable(buf: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => buf.push(NULL_VARINT),
        Some(b) => {
            // Lengths were checked by `nullable_len`/`field_len` before anything was written.
            put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Varints
//
// Hand-written: they are a few lines, and no crate we found does Kafka's varints exactly:
// `integer-encoding` decodes an i32 from up to 10 bytes and truncates silently, with one `None`
// for both "truncated" and "too long", where we must reject overlong and overflowing encodings
// with distinct errors. Zigzag then LEB128, as Kafka's `ByteUtils`.

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn varint_len(v: i32) -> usize {
    uvarint_len(u64::from(zigzag32(v)))
}

fn varlong_len(v: i64) -> usize {
    uvarint_len(zigzag64(v))
}

#[inline]
fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_uvarint(buf, u64::from(zigzag32(v)));
}

#[inline]
fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag64(v));
}

/// A record-level decoding failure: small and `Copy`, so the hot decoding functions return
/// their results in registers; it becomes a [`BatchError`] at the iterator's edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Overrun,
    Varint,
    Negative(i32),
    Trailing,
    OffsetDelta(i32),
    Timestamp,
}

impl From<Fault> for BatchError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Overrun => Self::RecordOverrun,
            Fault::Varint => Self::Varint,
            Fault::Negative(n) => Self::NegativeLength(n),
            Fault::Trailing => Self::TrailingRecordBytes,
            Fault::OffsetDelta(d) => Self::BadOffsetDelta(d),
            Fault::Timestamp => Self::TimestampOverflow,
        }
    }
}

/// A bounds-checked reader over a records section or one record: the bytes not yet read.
#[derive(Debug, Clone)]
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Unzigzagged varint. One-byte values (lengths below 64, small deltas) take the inlined
    /// path.
    #[inline]
    fn varint(&mut self) -> Result<i32, Fault> {
        if let Some((&b0, rest)) = self.rest.split_first() {
            if b0 < 0x80 {
                self.rest = rest;
                return Ok(unzigzag32(u32::from(b0)));
            }
        }
        self.uvarint(5).map(|v| unzigzag32(v as u32))
    }

    /// Unzigzagged varlong, with the same fast path.
    #[inline]
    fn varlong(&mut self) -> Result<i64, Fault> {
        if let Some((&b0, rest)) = self.rest.split_first() {
            if b0 < 0x80 {
                self.rest = rest;
                return Ok(unzigzag64(u64::from(b0)));
            }
        }
        self.uvarint(10).map(unzigzag64)
    }

    /// LEB128 of at most `max_len` bytes (5 for a varint, 10 for a varlong) whose last byte
    /// carries no bits beyond the type's width.
    #[inline]
    fn uvarint(&mut self, max_len: usize) -> Result<u64, Fault> {
        let top_bits = if max_len == 5 { 0x0f } else { 0x01 };
        let mut v = 0u64;
        for i in 0..max_len {
            let b = *self.rest.get(i).ok_or(Fault::Overrun)?;
            if i == max_len - 1 && b > top_bits {
                return Err(Fault::Varint);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(Fault::Varint)
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.rest.len() {
            return Err(Fault::Overrun);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// A varint length (≥ 0) then that many bytes.
    #[inline]
    fn sized(&mut self) -> Result<&'a [u8], Fault> {
        let len = self.varint()?;
        let n = usize::try_from(len).map_err(|_| Fault::Negative(len))?;
        self.take(n)
    }

    /// A varint length (≥ 0, or -1 for null) then that many bytes.
    #[inline]
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, Fault> {
        match self.varint()? {
            -1 => Ok(None),
            len => match usize::try_from(len) {
                Ok(n) => self.take(n).map(Some),
                Err(_) => Err(Fault::Negative(len)),
            },
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Header parsing

/// Writes `base_offset` into the batch's first 8 bytes. The CRC does not cover them, so the
/// batch stays valid. A slice shorter than 8 bytes is not a batch and is left unchanged.
/// Kafka offsets are i64: `base_offset` must be at most `i64::MAX`, or readers reject the batch.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    debug_assert!(base_offset <= i64::MAX as u64, "Kafka offsets are i64");
    if let Some(field) = batch.get_mut(..8) {
        field.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// The base offset stored in a batch's first 8 bytes (as written, without other checks).
pub fn base_offset(batch: &[u8]) -> Result<u64, BatchError> {
    Ok(u64::from_be_bytes(read_be(batch, 0).ok_or(
        BatchError::Truncated {
            needed: HEADER_LEN,
            available: batch.len(),
        },
    )?))
}

/// Parses and checks the batch at the start of `bytes` (which may hold more after it):
/// length within bounds and present, magic 2, CRC-32C, a known codec, a non-negative base
/// offset, and offsets and record count consistent with each other and with the bytes that
/// must hold the records. Returns the header and the batch's total length.
///
/// The records themselves are not walked: see [`validate`] and [`records`].
pub fn parse_header(bytes: &[u8]) -> Result<(BatchHeader, usize), BatchError> {
    let total = frame_len(bytes)?;
    let batch = &bytes[..total];
    let expected = u32::from_be_bytes(read_be(batch, CRC_AT).unwrap_or_default());
    let actual = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if expected != actual {
        return Err(BatchError::CrcMismatch { expected, actual });
    }
    let header = read_header(batch)?;
    Ok((header, total))
}

/// As [`parse_header`] without the CRC check (for batches already checked).
fn parse_unchecked(bytes: &[u8]) -> Result<(BatchHeader, usize), BatchError> {
    let total = frame_len(bytes)?;
    Ok((read_header(&bytes[..total])?, total))
}

/// The total length of the batch at the start of `bytes`, checked to be in range and present.
fn frame_len(bytes: &[u8]) -> Result<usize, BatchError> {
    let truncated = |needed| BatchError::Truncated {
        needed,
        available: bytes.len(),
    };
    let length = i32::from_be_bytes(read_be(bytes, LENGTH_AT).ok_or(truncated(HEADER_LEN))?);
    let total = usize::try_from(length).map_or(0, |l| l + LOG_OVERHEAD);
    if !(HEADER_LEN..=MAX_BATCH_BYTES).contains(&total) {
        return Err(BatchError::BadLength(length));
    }
    if let Some(&magic) = bytes.get(MAGIC_AT) {
        if magic as i8 != MAGIC {
            return Err(BatchError::BadMagic(magic as i8));
        }
    }
    if bytes.len() < total {
        return Err(truncated(total));
    }
    Ok(total)
}

pub(super) fn read_be<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

/// Reads and checks the header fields of `batch` (exactly one whole batch, ≥ HEADER_LEN).
fn read_header(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    // `frame_len` guarantees HEADER_LEN bytes; a short slice reads zeros and fails checks.
    let be8 = |at| read_be::<8>(batch, at).unwrap_or_default();
    let be4 = |at| read_be::<4>(batch, at).unwrap_or_default();
    let be2 = |at| read_be::<2>(batch, at).unwrap_or_default();
    let header = BatchHeader {
        base_offset: u64::from_be_bytes(be8(0)),
        batch_length: u32::from_be_bytes(be4(LENGTH_AT)),
        leader_epoch: i32::from_be_bytes(be4(LEADER_EPOCH_AT)),
        magic: batch.get(MAGIC_AT).map_or(0, |&m| m as i8),
        crc: u32::from_be_bytes(be4(CRC_AT)),
        attributes: i16::from_be_bytes(be2(ATTRIBUTES_AT)),
        last_offset_delta: i32::from_be_bytes(be4(LAST_OFFSET_DELTA_AT)),
        first_timestamp: i64::from_be_bytes(be8(BASE_TIMESTAMP_AT)),
        max_timestamp: i64::from_be_bytes(be8(MAX_TIMESTAMP_AT)),
        producer_id: i64::from_be_bytes(be8(PRODUCER_ID_AT)),
        producer_epoch: i16::from_be_bytes(be2(PRODUCER_EPOCH_AT)),
        base_sequence: i32::from_be_bytes(be4(BASE_SEQUENCE_AT)),
        record_count: i32::from_be_bytes(be4(RECORD_COUNT_AT)),
    };
    check_header(&header, batch.len().saturating_sub(HEADER_LEN))?;
    Ok(header)
}

fn check_header(h: &BatchHeader, section_len: usize) -> Result<(), BatchError> {
    if h.base_offset > i64::MAX as u64 {
        return Err(BatchError::BadBaseOffset(h.base_offset as i64));
    }
    let codec = h.compression().ok_or(BatchError::UnsupportedCompression(
        (h.attributes & CODEC_MASK) as u8,
    ))?;
    let max_records = match codec {
        Compression::None => section_len / MIN_RECORD_LEN,
        _ => MAX_RECORDS,
    };
    let count = usize::try_from(h.record_count).unwrap_or(usize::MAX);
    if count > max_records {
        return Err(BatchError::BadRecordCount(h.record_count));
    }
    if h.last_offset_delta < 0 || (h.last_offset_delta as usize) < count.saturating_sub(1) {
        return Err(BatchError::BadLastOffsetDelta(h.last_offset_delta));
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// Batches

/// Iterates the concatenated batches in a byte slice (a stored run, a fetch response),
/// checking each with [`parse_header`] and yielding it with its bytes.
///
/// After the first error the iterator ends. A trailing partial batch (Kafka fetch responses may
/// end with one) is reported as a final `Err(BatchError::Truncated { .. })`; a caller that
/// expects one treats that item as the end and can resume from [`consumed`](Self::consumed).
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    /// Batches in `bytes`, starting at its first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            failed: false,
        }
    }

    /// Bytes of the whole batches yielded so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Bytes not yet yielded as a batch (a partial batch after `Truncated`).
    pub fn remainder(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.remainder();
        if self.failed || rest.is_empty() {
            return None;
        }
        match parse_header(rest) {
            Ok((header, total)) => {
                self.pos += total;
                Some(Ok((header, &rest[..total])))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for Batches<'_> {}

// ----------------------------------------------------------------------------------------------
// Records

/// One record, borrowed from its batch (or the caller's decompression buffer).
#[derive(Debug, Clone)]
pub struct RecordRef<'a> {
    /// Absolute offset (base offset + offset delta).
    pub offset: u64,
    /// Timestamp in ms (base timestamp + delta, or the batch's max timestamp under
    /// LogAppendTime).
    pub timestamp_ms: i64,
    /// Key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value; `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers, in order; keys may repeat.
    pub headers: HeaderIter<'a>,
}

/// The headers of a record: `(key, value)` with a UTF-8 key and an optional value. Their layout
/// was checked when the record was read; a key that is not UTF-8 is reported here.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    cur: Cursor<'a>,
    remaining: u32,
}

impl HeaderIter<'_> {
    /// Headers not yet yielded.
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(&'a str, Option<&'a [u8]>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let header = self.read();
        if header.is_err() {
            self.remaining = 0;
        }
        Some(header)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

impl<'a> HeaderIter<'a> {
    fn read(&mut self) -> Result<(&'a str, Option<&'a [u8]>), BatchError> {
        let key = self.cur.sized()?;
        let key = std::str::from_utf8(key).map_err(BatchError::Utf8)?;
        Ok((key, self.cur.nullable()?))
    }
}

impl FusedIterator for HeaderIter<'_> {}

/// Iterates the records of one batch; see [`records`]. Checks each record's layout (lengths,
/// varints, offsets, that its headers fill it exactly) and that the batch holds exactly the
/// records its header counts. Ends after the first error. Never allocates.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    header: BatchHeader,
    section: Cursor<'a>,
    remaining: u32,
    /// Smallest offset delta the next record may have.
    next_delta: i64,
    /// Every record's timestamp under LogAppendTime.
    fixed_timestamp: Option<i64>,
    done: bool,
}

/// The records of `batch` (one whole batch, as yielded by [`Batches`] or checked by
/// [`parse_header`]; bytes after it are ignored).
///
/// Uncompressed records are borrowed from `batch`. A compressed section is decompressed into
/// `scratch` (reused across calls; its length and contents afterwards are unspecified),
/// producing at most `max_decompressed` bytes (and at most [`MAX_BATCH_BYTES`]): a section
/// that would decompress to more is [`BatchError::DecompressedTooLarge`], and decompression
/// stops there. A record count the limit cannot hold is rejected before decompressing.
///
/// Warm, the iteration allocates nothing (none, snappy, lz4 and zstd decode into `scratch`;
/// gzip allocates its inflate state per batch, zstd frames of unknown size their window).
///
/// The header is checked as [`parse_header`] does, except for the CRC (callers get batches
/// from [`Batches`] or [`parse_header`], which check it; [`validate`] does both).
pub fn records<'a>(
    batch: &'a [u8],
    scratch: &'a mut Vec<u8>,
    max_decompressed: usize,
) -> Result<RecordIter<'a>, BatchError> {
    let (header, total) = parse_unchecked(batch)?;
    let section = &batch[HEADER_LEN..total];
    let codec = header.compression().unwrap_or_default();
    let section: &'a [u8] = match codec {
        Compression::None => section,
        _ => {
            let limit = max_decompressed.min(MAX_BATCH_BYTES);
            if header.record_count as usize > limit / MIN_RECORD_LEN {
                return Err(BatchError::BadRecordCount(header.record_count));
            }
            let n = decompress(codec, section, scratch, limit).map_err(|e| e.into_batch(codec))?;
            let scratch: &'a Vec<u8> = scratch;
            &scratch[..n]
        }
    };
    if header.record_count as usize > section.len() / MIN_RECORD_LEN {
        return Err(BatchError::RecordCountMismatch);
    }
    Ok(RecordIter {
        header,
        section: Cursor::new(section),
        remaining: header.record_count.unsigned_abs(),
        next_delta: 0,
        fixed_timestamp: (header.timestamp_type() == TimestampType::LogAppendTime)
            .then_some(header.max_timestamp),
        done: false,
    })
}

impl RecordIter<'_> {
    /// The header of the batch being iterated.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Records the header says are still to come.
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordRef<'a>, BatchError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 || self.section.is_empty() {
            self.done = true;
            let exact = self.remaining == 0 && self.section.is_empty();
            return (!exact).then_some(Err(BatchError::RecordCountMismatch));
        }
        self.remaining -= 1;
        let record = self.read_record();
        if record.is_err() {
            self.done = true;
        }
        Some(record.map_err(BatchError::from))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(self.remaining as usize + 1))
        }
    }
}

impl FusedIterator for RecordIter<'_> {}

impl<'a> RecordIter<'a> {
    /// Checks every remaining record and header as iterating would, without handing them out
    /// (the lean loop behind [`validate`]).
    fn check_all(mut self) -> Result<(), BatchError> {
        while self.remaining > 0 && !self.section.is_empty() {
            self.remaining -= 1;
            let record = self.read_record()?;
            let mut headers = record.headers.cur;
            for _ in 0..record.headers.remaining {
                let key = headers.sized()?;
                std::str::from_utf8(key).map_err(BatchError::Utf8)?;
                headers.nullable()?;
            }
        }
        if self.remaining != 0 || !self.section.is_empty() {
            return Err(BatchError::RecordCountMismatch);
        }
        Ok(())
    }

    #[inline]
    fn read_record(&mut self) -> Result<RecordRef<'a>, Fault> {
        let body = self.section.sized()?;
        let mut r = Cursor::new(body);
        r.take(1)?; // attributes: unused
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable()?;
        let value = r.nullable()?;
        let headers = read_headers(&mut r)?;
        Ok(RecordRef {
            offset: self.offset(offset_delta)?,
            timestamp_ms: self.timestamp(timestamp_delta)?,
            key,
            value,
            headers,
        })
    }

    #[inline]
    fn offset(&mut self, delta: i32) -> Result<u64, Fault> {
        let d = i64::from(delta);
        if d < self.next_delta || delta > self.header.last_offset_delta {
            return Err(Fault::OffsetDelta(delta));
        }
        self.next_delta = d + 1;
        Ok(self.header.base_offset + d.unsigned_abs())
    }

    #[inline]
    fn timestamp(&self, delta: i64) -> Result<i64, Fault> {
        match self.fixed_timestamp {
            Some(ts) => Ok(ts),
            None => self
                .header
                .first_timestamp
                .checked_add(delta)
                .ok_or(Fault::Timestamp),
        }
    }
}

/// Reads a record's header count and walks its headers, which must end the record exactly.
#[inline]
fn read_headers<'a>(r: &mut Cursor<'a>) -> Result<HeaderIter<'a>, Fault> {
    let count = r.varint()?;
    let count_u = u32::try_from(count).map_err(|_| Fault::Negative(count))?;
    let headers = r.rest;
    if count_u as usize > headers.len() / MIN_HEADER_LEN {
        return Err(Fault::Overrun);
    }
    for _ in 0..count_u {
        r.sized()?;
        r.nullable()?;
    }
    if !r.is_empty() {
        return Err(Fault::Trailing);
    }
    Ok(HeaderIter {
        cur: Cursor::new(headers),
        remaining: count_u,
    })
}

/// Checks `batch` completely: [`parse_header`] (CRC included), then every record and header
/// (layout, offsets, UTF-8 keys, count). Compressed batches decompress into a temporary buffer
/// of at most [`DEFAULT_MAX_DECOMPRESSED`] bytes; see [`validate_with`] to choose.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_with(batch, &mut Vec::new(), DEFAULT_MAX_DECOMPRESSED)
}

/// [`validate`] with the caller's decompression buffer and limit.
pub fn validate_with(
    batch: &[u8],
    scratch: &mut Vec<u8>,
    max_decompressed: usize,
) -> Result<BatchHeader, BatchError> {
    let (header, _) = parse_header(batch)?;
    records(batch, scratch, max_decompressed)?.check_all()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::super::codec::*;
    use super::*;
    use std::io::Read;

    /// An owned record, to compare what went in with what came out.
    #[derive(Debug, Clone, PartialEq)]
    struct Rec {
        ts: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Option<Vec<u8>>)>,
    }

    impl Rec {
        fn new(ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
            Self {
                ts,
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                headers: Vec::new(),
            }
        }

        fn header(mut self, k: &str, v: Option<&[u8]>) -> Self {
            self.headers.push((k.to_owned(), v.map(<[u8]>::to_vec)));
            self
        }

        fn from_ref(r: &RecordRef<'_>) -> Self {
            Self {
                ts: r.timestamp_ms,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                headers: r
                    .headers
                    .clone()
                    .map(|h| h.map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec))))
                    .collect::<Result<_, _>>()
                    .expect("headers"),
            }
        }
    }

    fn push(b: &mut BatchBuilder, r: &Rec) -> Result<Push, BatchError> {
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        b.push(r.ts, r.key.as_deref(), r.value.as_deref(), &headers)
    }

    /// Encodes `recs` into as many batches as the builder closes, concatenated.
    fn encode_all(b: &mut BatchBuilder, recs: &[Rec]) -> (Vec<u8>, Vec<BatchInfo>) {
        let (mut out, mut infos) = (Vec::new(), Vec::new());
        for r in recs {
            if push(b, r).expect("push") == Push::Full {
                infos.push(b.finish_into(&mut out));
                assert_eq!(push(b, r).expect("push"), Push::Added);
            }
        }
        infos.push(b.finish_into(&mut out));
        (out, infos)
    }

    /// Decodes every batch in `bytes` with [`Batches`] + [`records`], checking offsets.
    fn decode_all(bytes: &[u8], limit: usize) -> Vec<Rec> {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        for b in Batches::new(bytes) {
            let (header, batch) = b.expect("batch");
            validate_with(batch, &mut scratch, limit).expect("valid");
            for (i, r) in records(batch, &mut scratch, limit)
                .expect("records")
                .enumerate()
            {
                let r = r.expect("record");
                assert_eq!(r.offset, header.base_offset + i as u64);
                out.push(Rec::from_ref(&r));
            }
        }
        out
    }

    fn sample(n: usize) -> Vec<Rec> {
        (0..n)
            .map(|i| {
                let value = format!(
                    "{{\"sensor\":{},\"temp\":{}.{}}}",
                    i % 17,
                    20 + i % 9,
                    i % 10
                );
                let key = format!("sensors/{}/temp", i % 17);
                let mut r = Rec::new(1_700_000_000_000 + (i as i64 % 50) - 7, None, None);
                r.value = Some(value.into_bytes());
                match i % 5 {
                    0 => r.key = Some(key.into_bytes()),
                    1 => r = r.header("mqtt.topic", Some(key.as_bytes())),
                    2 => r = r.header("a", None).header("ü-key", Some(b"")),
                    3 => r.value = None,
                    _ => r.value = Some(Vec::new()),
                }
                r
            })
            .collect()
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn golden_records() -> [Rec; 2] {
        [
            Rec::new(1_700_000_000_000, Some(b"k1"), Some(b"v1")).header("h", Some(b"x")),
            Rec::new(1_700_000_000_005, None, Some(b"v2")),
        ]
    }

    #[rustfmt::skip]
    const GOLDEN: [u8; 85] = [
        0, 0, 0, 0, 0, 0, 0, 0,             // baseOffset 0
        0, 0, 0, 73,                        // batchLength 73 (85 - 12)
        0, 0, 0, 0,                         // partitionLeaderEpoch 0
        2,                                  // magic
        0x00, 0x00, 0x00, 0x00,             // crc (patched by the test below)
        0, 0,                               // attributes: no codec, CreateTime
        0, 0, 0, 1,                         // lastOffsetDelta 1
        0, 0, 1, 139, 207, 229, 104, 0,     // baseTimestamp 1_700_000_000_000
        0, 0, 1, 139, 207, 229, 104, 5,     // maxTimestamp 1_700_000_000_005
        255, 255, 255, 255, 255, 255, 255, 255, // producerId -1
        255, 255,                           // producerEpoch -1
        255, 255, 255, 255,                 // baseSequence -1
        0, 0, 0, 2,                         // recordCount 2
        // record 0: length 14 (zigzag 28)
        28, 0, 0, 0,                        // attributes, tsDelta 0, offsetDelta 0
        4, b'k', b'1',                      // key "k1"
        4, b'v', b'1',                      // value "v1"
        2,                                  // 1 header
        2, b'h', 2, b'x',                   // "h" = "x"
        // record 1: length 8 (zigzag 16)
        16, 0, 10, 2,                       // attributes, tsDelta 5, offsetDelta 1
        1,                                  // null key
        4, b'v', b'2',                      // value "v2"
        0,                                  // no headers
    ];

    fn golden_bytes() -> Vec<u8> {
        let mut g = GOLDEN.to_vec();
        g[17..21].copy_from_slice(&GOLDEN_CRC.to_be_bytes());
        g
    }

    /// CRC-32C of GOLDEN[21..], checked independently in `golden_crc_is_castagnoli`.
    const GOLDEN_CRC: u32 = 0x97f4_442a;

    #[test]
    fn golden_bytes_encode() {
        let mut b = BatchBuilder::new(Compression::None, PAGE_FIT_LARGE);
        let (out, infos) = encode_all(&mut b, &golden_records());
        assert_eq!(out, golden_bytes(), "{out:?}");
        let expected = BatchInfo {
            record_count: 2,
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_005,
            bytes: 85,
            compression: Compression::None,
        };
        assert_eq!(infos, [expected]);
    }

    #[test]
    fn golden_bytes_decode() {
        let g = golden_bytes();
        let (h, total) = parse_header(&g).expect("header");
        assert_eq!(total, g.len());
        assert_eq!(
            h,
            BatchHeader {
                base_offset: 0,
                batch_length: 73,
                leader_epoch: 0,
                magic: 2,
                crc: GOLDEN_CRC,
                attributes: 0,
                last_offset_delta: 1,
                first_timestamp: 1_700_000_000_000,
                max_timestamp: 1_700_000_000_005,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                record_count: 2,
            }
        );
        assert_eq!((h.last_offset(), h.next_offset()), (1, 2));
        assert_eq!(h.compression(), Some(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_control() && !h.is_transactional());
        assert_eq!(decode_all(&g, 1024), golden_records());
    }

    #[test]
    fn golden_crc_is_castagnoli() {
        // Bit-by-bit CRC-32C (reflected polynomial 0x82F63B78), independent of the crc32c crate.
        let mut crc = !0u32;
        for &byte in &golden_bytes()[21..] {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        assert_eq!(!crc, GOLDEN_CRC);
    }

    #[test]
    fn every_flipped_byte_in_crc_range_is_detected() {
        let g = golden_bytes();
        for pos in ATTRIBUTES_AT..g.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = g.clone();
                bad[pos] ^= bit;
                assert!(
                    matches!(parse_header(&bad), Err(BatchError::CrcMismatch { .. })),
                    "flip at {pos}"
                );
                assert!(validate(&bad).is_err());
                assert!(matches!(
                    Batches::new(&bad).next(),
                    Some(Err(BatchError::CrcMismatch { .. }))
                ));
            }
        }
        let mut bad = g.clone();
        bad[CRC_AT] ^= 1;
        assert!(matches!(
            parse_header(&bad),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn patched_base_offset_keeps_crc_valid() {
        let mut g = golden_bytes();
        set_base_offset(&mut g, 1_000_000);
        assert_eq!(base_offset(&g).expect("offset"), 1_000_000);
        assert_eq!(g[8..], golden_bytes()[8..]);
        let h = validate(&g).expect("still valid");
        assert_eq!((h.base_offset, h.next_offset()), (1_000_000, 1_000_002));
        let offsets: Vec<u64> = records(&g, &mut Vec::new(), 1024)
            .expect("records")
            .map(|r| r.expect("record").offset)
            .collect();
        assert_eq!(offsets, [1_000_000, 1_000_001]);
        let mut short = [0u8; 5];
        set_base_offset(&mut short, 7); // not a batch: left alone
        assert_eq!(short, [0; 5]);
        assert!(matches!(
            base_offset(&short),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn round_trip_every_codec() {
        let recs = sample(2000);
        for codec in ALL {
            let mut b = BatchBuilder::new(codec, PAGE_FIT_LARGE);
            let (out, infos) = encode_all(&mut b, &recs);
            assert!(infos.len() > 1, "{codec}: several batches");
            assert_eq!(
                infos.iter().map(|i| i.record_count as usize).sum::<usize>(),
                recs.len()
            );
            assert!(
                infos.iter().all(|i| i.compression == codec),
                "{codec} applied"
            );
            assert_eq!(
                infos.iter().map(|i| i.bytes as usize).sum::<usize>(),
                out.len()
            );
            assert_eq!(decode_all(&out, 1 << 20), recs, "{codec}");
            for batch in Batches::new(&out) {
                let (h, bytes) = batch.expect("batch");
                assert_eq!(h.compression(), Some(codec));
                assert!(bytes.len() <= PAGE_FIT_LARGE);
            }
        }
    }

    #[test]
    fn round_trip_edge_records() {
        let big = vec![0xabu8; 100_000];
        let recs = vec![
            Rec::new(5, None, None),
            Rec::new(-3, Some(b""), Some(b"")),
            Rec::new(i64::MAX / 2, Some(&big[..300]), Some(&big)),
            Rec::new(0, None, Some(b"x"))
                .header("", None)
                .header("dup", Some(b"1"))
                .header("dup", Some(b"")),
            Rec::new(1, Some(b"k"), None).header("h", Some(&big[..70_000])),
        ];
        for codec in ALL {
            let mut b = BatchBuilder::new(codec, PAGE_FIT_SMALL);
            let (out, infos) = encode_all(&mut b, &recs);
            // The two big records each form a batch of their own.
            assert_eq!(infos.len(), 4, "{codec}");
            assert_eq!(decode_all(&out, 1 << 20), recs, "{codec}");
        }
    }

    #[test]
    fn varint_size_boundaries_round_trip() {
        // Records whose length, and headers whose count, cross 1-byte/2-byte varint boundaries,
        // from iterators with and without exact size hints.
        for value_len in 40..80 {
            for headers in [0usize, 1, 63, 64, 65] {
                let value = vec![7u8; value_len];
                let hs: Vec<(String, Option<&[u8]>)> =
                    (0..headers).map(|i| (format!("h{i}"), None)).collect();
                let mut b = BatchBuilder::new(Compression::None, MAX_BATCH_BYTES);
                let exact = hs
                    .iter()
                    .map(|(k, v)| Ok::<_, Infallible>((k.as_str(), *v)));
                let filtered = hs
                    .iter()
                    .filter(|_| true)
                    .map(|(k, v)| Ok::<_, Infallible>((k.as_str(), *v)));
                b.push_iter(1, None, Some(&value), exact).expect("push");
                b.push_iter(2, Some(b"k"), Some(&value), filtered)
                    .expect("push");
                let mut out = Vec::new();
                b.finish_into(&mut out);
                let got = decode_all(&out, 1 << 20);
                assert_eq!(got.len(), 2);
                for r in &got {
                    assert_eq!(r.value.as_deref(), Some(&value[..]));
                    assert_eq!(r.headers.len(), headers);
                }
            }
        }
    }

    #[test]
    fn varints_round_trip_and_use_shortest_form() {
        let ints = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, i32::MAX, i32::MIN];
        for v in ints {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v));
            let mut c = Cursor::new(&buf);
            assert_eq!(c.varint().expect("varint"), v);
            assert!(c.is_empty());
        }
        let longs = [0, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN];
        for v in longs {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v));
            assert_eq!(Cursor::new(&buf).varlong().expect("varlong"), v);
        }
        assert_eq!(varint_len(i32::MIN), 5);
        assert_eq!(varlong_len(i64::MIN), 10);
    }

    #[test]
    fn varint_overflow_is_rejected() {
        let too_long: &[&[u8]] = &[
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], // 6 bytes
            &[0xff, 0xff, 0xff, 0xff, 0x1f],       // 5th byte above 4 bits
            &[0xff, 0xff, 0xff, 0xff, 0x8f, 0x00], // 5th byte continues
        ];
        for bytes in too_long {
            assert!(matches!(Cursor::new(bytes).varint(), Err(Fault::Varint)));
        }
        let long = [0xffu8; 9]
            .iter()
            .chain(&[0x02])
            .copied()
            .collect::<Vec<_>>();
        assert!(matches!(Cursor::new(&long).varlong(), Err(Fault::Varint)));
        assert!(matches!(
            Cursor::new(&[0xff; 11]).varlong(),
            Err(Fault::Varint)
        ));
        assert!(matches!(Cursor::new(&[0x80]).varint(), Err(Fault::Overrun)));
    }

    #[test]
    fn builder_closes_by_bytes() {
        for (max, codec) in [
            (PAGE_FIT_LARGE, Compression::None),
            (PAGE_FIT_SMALL, Compression::None),
            (PAGE_FIT_LARGE, Compression::Zstd),
        ] {
            let mut b = BatchBuilder::new(codec, max);
            let value = [0x5au8; 64];
            let mut pushed = 0;
            while b
                .push(pushed, Some(b"sensor-1"), Some(&value), &[])
                .expect("push")
                == Push::Added
            {
                pushed += 1;
                assert!(b.encoded_len() <= max);
            }
            assert_eq!(b.len() as i64, pushed);
            let before = b.encoded_len();
            let mut out = Vec::new();
            let info = b.finish_into(&mut out);
            assert!(b.is_empty() && b.encoded_len() == HEADER_LEN);
            assert!(out.len() <= max, "{codec}: {} > {max}", out.len());
            // Full means the next record (83 bytes encoded) did not fit.
            assert!(
                before <= max && before + 83 > max,
                "{codec}: filled ({before})"
            );
            assert_eq!(info.record_count as i64, pushed);
            assert_eq!(validate(&out).expect("valid").record_count as i64, pushed);
        }
    }

    #[test]
    fn oversized_record_forms_its_own_batch() {
        let mut b = BatchBuilder::new(Compression::None, 100);
        let big = [1u8; 500];
        assert_eq!(b.push(1, None, Some(&big), &[]).expect("push"), Push::Added);
        assert_eq!(b.push(2, None, Some(b"x"), &[]).expect("push"), Push::Full);
        let mut out = Vec::new();
        assert_eq!(b.finish_into(&mut out).record_count, 1);
        assert!(out.len() > 500);
        assert_eq!(
            b.finish_into(&mut out),
            BatchInfo::default(),
            "empty builder"
        );
    }

    #[test]
    fn failed_push_leaves_the_batch_unchanged() {
        let mut b = BatchBuilder::new(Compression::None, PAGE_FIT_LARGE);
        b.push(10, None, Some(b"first"), &[]).expect("push");
        let len = b.encoded_len();
        let headers = [Ok(("ok", None)), Err(())];
        assert!(matches!(
            b.push_iter(11, None, Some(b"second"), headers),
            Err(BatchError::HeaderInput)
        ));
        assert!(matches!(
            b.push(i64::MIN, None, None, &[]),
            Err(BatchError::TimestampOverflow)
        ));
        assert_eq!((b.len(), b.encoded_len()), (1, len));
        let mut out = Vec::new();
        b.finish_into(&mut out);
        assert_eq!(decode_all(&out, 1024), [Rec::new(10, None, Some(b"first"))]);
    }

    #[test]
    fn push_record_re_encodes_at_new_offsets() {
        let mut src = golden_bytes();
        set_base_offset(&mut src, 500);
        let mut scratch = Vec::new();
        let mut b = BatchBuilder::new(Compression::Lz4, PAGE_FIT_LARGE);
        b.push(1_700_000_000_000, None, Some(b"before"), &[])
            .expect("push");
        for r in records(&src, &mut scratch, 1024).expect("records") {
            assert_eq!(
                b.push_record(&r.expect("record")).expect("push"),
                Push::Added
            );
        }
        let mut out = Vec::new();
        b.finish_into(&mut out);
        let got = decode_all(&out, 1024);
        assert_eq!(got[1..], golden_records());
    }

    #[test]
    fn warmed_builder_keeps_its_buffers() {
        for codec in ALL {
            let mut b = BatchBuilder::new(codec, PAGE_FIT_LARGE);
            let recs = sample(500);
            let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
            encode_all(&mut b, &recs);
            let cap = b.records.capacity();
            out.clear();
            encode_all(&mut b, &recs);
            assert_eq!(b.records.capacity(), cap, "{codec}: no regrowth once warm");
        }
    }

    #[test]
    fn builder_is_send() {
        fn send<T: Send>() {}
        send::<BatchBuilder>();
        send::<BatchError>();
    }

    #[test]
    fn incompressible_batch_is_stored_plain() {
        let mut b = BatchBuilder::new(Compression::Zstd, PAGE_FIT_LARGE);
        b.push(1, None, Some(b"tiny"), &[]).expect("push");
        let mut out = Vec::new();
        assert_eq!(b.finish_into(&mut out).compression, Compression::None);
        assert_eq!(
            parse_header(&out).expect("header").0.compression(),
            Some(Compression::None)
        );
    }

    // ------------------------------------------------------------------------------------------
    // Hostile input

    /// A batch with the given header fields around `section`, with a correct CRC, so that the
    /// checks past the CRC are exercised.
    fn raw_batch(attributes: i16, count: i32, last_delta: i32, section: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(section);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
        b[MAGIC_AT] = 2;
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&last_delta.to_be_bytes());
        b[RECORD_COUNT_AT..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
        refresh_crc(&mut b);
        b
    }

    fn refresh_crc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    }

    /// A record body (after its length) from raw parts.
    fn record(parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut r = Vec::new();
        put_varint(&mut r, body.len() as i32);
        r.extend_from_slice(&body);
        r
    }

    fn record_error(section: &[u8], count: i32) -> BatchError {
        let batch = raw_batch(0, count, count.max(1) - 1, section);
        assert!(parse_header(&batch).is_ok(), "header itself is fine");
        let err = validate(&batch).expect_err("invalid records");
        // The plain iterator reports the same kind of error.
        let mut scratch = Vec::new();
        let it_err = records(&batch, &mut scratch, 1024)
            .map(|it| it.filter_map(Result::err).next())
            .unwrap_or_else(Some);
        assert!(it_err.is_some() || matches!(err, BatchError::Utf8(_)));
        err
    }

    /// attributes, tsDelta 0, offsetDelta 0, null key, null value, 0 headers.
    const PLAIN: &[u8] = &[0, 0, 0, 1, 1, 0];

    #[test]
    fn truncated_at_every_length() {
        let mut b = BatchBuilder::new(Compression::Zstd, PAGE_FIT_LARGE);
        let (out, _) = encode_all(&mut b, &sample(100));
        let one = parse_header(&out).expect("first").1;
        for cut in 0..one {
            let part = &out[..cut];
            let e = parse_header(part).expect_err("truncated");
            assert!(
                matches!(e, BatchError::Truncated { .. }),
                "cut {cut}: {e:?}"
            );
            assert!(records(part, &mut Vec::new(), 1 << 20).is_err());
            assert!(validate(part).is_err());
            let mut it = Batches::new(part);
            if cut > 0 {
                assert!(matches!(it.next(), Some(Err(BatchError::Truncated { .. }))));
            }
            assert!(it.next().is_none());
            assert_eq!((it.consumed(), it.remainder().len()), (0, cut));
        }
        // A whole batch followed by a partial one: the batch, then Truncated, then the end.
        let mut two = out[..one].to_vec();
        two.extend_from_slice(&out[..30]);
        let mut it = Batches::new(&two);
        assert!(it.next().expect("first").is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(BatchError::Truncated { available: 30, .. }))
        ));
        assert!(it.next().is_none());
        assert_eq!(it.consumed(), one);
    }

    #[test]
    fn truncated_section_at_every_length_with_fixed_header() {
        // The header claims the original length; the records section is cut and the CRC and
        // length re-made, so each cut reaches the record decoder.
        let mut b = BatchBuilder::new(Compression::None, PAGE_FIT_LARGE);
        let (out, _) = encode_all(&mut b, &sample(20));
        let (h, total) = parse_header(&out).expect("batch");
        for cut in HEADER_LEN..total {
            let batch = raw_batch(
                0,
                h.record_count,
                h.last_offset_delta,
                &out[HEADER_LEN..cut],
            );
            assert!(validate(&batch).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn bad_lengths_and_magic() {
        let g = golden_bytes();
        for len in [i32::MIN, -1, 0, 48, (MAX_BATCH_BYTES - 11) as i32, i32::MAX] {
            let mut bad = g.clone();
            bad[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
            assert!(matches!(parse_header(&bad), Err(BatchError::BadLength(l)) if l == len));
        }
        // A plausible length beyond the bytes: a partial batch.
        let mut bad = g.clone();
        bad[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(
            parse_header(&bad),
            Err(BatchError::Truncated {
                needed: 1012,
                available: 85
            })
        ));
        for magic in [0u8, 1, 3, 0xff] {
            let mut bad = g.clone();
            bad[MAGIC_AT] = magic;
            assert!(matches!(parse_header(&bad), Err(BatchError::BadMagic(m)) if m == magic as i8));
        }
    }

    #[test]
    fn bad_header_fields() {
        let section = record(&[PLAIN]);
        let e = parse_header(&raw_batch(5, 1, 0, &section)).expect_err("codec 5");
        assert!(matches!(e, BatchError::UnsupportedCompression(5)));
        for count in [-1, i32::MIN, 2, i32::MAX] {
            let e = parse_header(&raw_batch(0, count, 0, &section)).expect_err("count");
            assert!(
                matches!(e, BatchError::BadRecordCount(c) if c == count),
                "{count}"
            );
        }
        // Compressed: only the global cap applies to the header...
        let e = parse_header(&raw_batch(4, i32::MAX, i32::MAX, &section)).expect_err("count");
        assert!(matches!(e, BatchError::BadRecordCount(_)));
        // ...and `records` caps the count by the decompression limit before decompressing.
        let b = raw_batch(4, 1_000_000, 999_999, &section);
        let e = records(&b, &mut Vec::new(), 1 << 20).expect_err("count");
        assert!(matches!(e, BatchError::BadRecordCount(1_000_000)));
        let e = parse_header(&raw_batch(0, 1, -1, &section)).expect_err("delta");
        assert!(matches!(e, BatchError::BadLastOffsetDelta(-1)));
        let two = record(&[PLAIN]).repeat(2);
        let e = parse_header(&raw_batch(0, 2, 0, &two)).expect_err("delta");
        assert!(matches!(e, BatchError::BadLastOffsetDelta(0)));
        let mut neg = raw_batch(0, 1, 0, &section);
        neg[..8].copy_from_slice(&(-1i64).to_be_bytes());
        assert!(matches!(
            parse_header(&neg),
            Err(BatchError::BadBaseOffset(-1))
        ));
    }

    #[test]
    fn negative_lengths_are_rejected() {
        let neg2 = &[3u8][..]; // zigzag(-2)
        let cases: [(&[&[u8]], &str); 4] = [
            (&[&[0, 0, 0], neg2, &[1, 0]], "key"),
            (&[&[0, 0, 0, 1], neg2, &[0]], "value"),
            (&[&[0, 0, 0, 1, 1], &[1]], "header count -1"),
            (&[&[0, 0, 0, 1, 1, 2], &[1], &[1]], "header key -1"),
        ];
        for (parts, what) in cases {
            let e = record_error(&record(parts), 1);
            assert!(matches!(e, BatchError::NegativeLength(_)), "{what}: {e:?}");
        }
        // A negative record length.
        let e = record_error(&[&[3u8][..], PLAIN].concat(), 1);
        assert!(matches!(e, BatchError::NegativeLength(-2)), "{e:?}");
        // Header value -2.
        let e = record_error(&record(&[&[0, 0, 0, 1, 1, 2, 2, b'h'], neg2]), 1);
        assert!(matches!(e, BatchError::NegativeLength(-2)), "{e:?}");
    }

    #[test]
    fn overruns_and_count_mismatches_are_rejected() {
        // Record length past the section.
        let mut s = record(&[PLAIN]);
        s[0] = 40;
        assert!(matches!(record_error(&s, 1), BatchError::RecordOverrun));
        // Key length past the record.
        let s = record(&[&[0, 0, 0, 20, b'k'], &[1, 0]]);
        assert!(matches!(record_error(&s, 1), BatchError::RecordOverrun));
        // Header count larger than the record can hold.
        let s = record(&[&[0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x07]]);
        assert!(matches!(record_error(&s, 1), BatchError::RecordOverrun));
        // Bytes after the last header.
        let s = record(&[PLAIN, &[9, 9]]);
        assert!(matches!(
            record_error(&s, 1),
            BatchError::TrailingRecordBytes
        ));
        // Fewer records than counted (in a section long enough to pass the count check).
        let s = record(&[&[0, 0, 0, 1, 40], &[b'v'; 20], &[0]]);
        assert!(matches!(
            record_error(&s, 2),
            BatchError::RecordCountMismatch
        ));
        // A zero-length record.
        let s = [record(&[PLAIN]), vec![0; 20]].concat();
        assert!(matches!(record_error(&s, 2), BatchError::RecordOverrun));
        let s = [0u8, 2, 4].map(|d| record(&[&[0, 0, d, 1, 1, 0]])).concat();
        let b = raw_batch(0, 2, 1, &s);
        let e = validate(&b).expect_err("more records than counted");
        assert!(matches!(e, BatchError::RecordCountMismatch));
        // Offset deltas must increase and stay within lastOffsetDelta.
        let r0 = record(&[PLAIN]);
        let r5 = record(&[&[0, 0, 10, 1, 1, 0]]);
        let e = validate(&raw_batch(0, 2, 1, &[r0.clone(), r0.clone()].concat())).expect_err("dup");
        assert!(matches!(e, BatchError::BadOffsetDelta(0)));
        let e = validate(&raw_batch(0, 2, 1, &[r0, r5].concat())).expect_err("past last");
        assert!(matches!(e, BatchError::BadOffsetDelta(5)));
        // Varint overflow in a record.
        let s = record(&[&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 1, 0]]);
        assert!(matches!(record_error(&s, 1), BatchError::Varint));
    }

    #[test]
    fn invalid_utf8_header_key_is_rejected() {
        let s = record(&[&[0, 0, 0, 1, 1, 2, 2, 0xff, 1]]);
        let b = raw_batch(0, 1, 0, &s);
        assert!(matches!(validate(&b), Err(BatchError::Utf8(_))));
        let mut scratch = Vec::new();
        let r = records(&b, &mut scratch, 64)
            .expect("records")
            .next()
            .expect("one");
        let mut headers = r.expect("layout is fine").headers;
        assert!(matches!(headers.next(), Some(Err(BatchError::Utf8(_)))));
        assert!(headers.next().is_none());
    }

    #[test]
    fn log_append_time_uses_max_timestamp() {
        let mut b = raw_batch(
            TIMESTAMP_TYPE_BIT,
            2,
            1,
            &[record(&[PLAIN]), record(&[&[0, 4, 2, 1, 1, 0]])].concat(),
        );
        b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&777i64.to_be_bytes());
        refresh_crc(&mut b);
        let ts: Vec<i64> = records(&b, &mut Vec::new(), 64)
            .expect("records")
            .map(|r| r.expect("record").timestamp_ms)
            .collect();
        assert_eq!(ts, [777, 777]);
    }

    /// One huge, highly compressible record, compressed with `codec`.
    fn bomb(codec: Compression, size: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec, PAGE_FIT_LARGE);
        b.push(0, None, Some(&vec![0u8; size]), &[]).expect("push");
        let mut out = Vec::new();
        assert_eq!(b.finish_into(&mut out).compression, codec);
        out
    }

    #[test]
    fn decompression_bombs_stop_at_the_limit() {
        let limit = 1 << 20;
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = bomb(codec, 8 << 20);
            assert!(
                batch.len() < 1 << 20,
                "{codec}: a bomb is small ({})",
                batch.len()
            );
            let mut scratch = Vec::new();
            let e = records(&batch, &mut scratch, limit).expect_err("bomb");
            assert!(
                matches!(e, BatchError::DecompressedTooLarge { limit: l } if l == limit),
                "{codec}: {e:?}"
            );
            assert!(
                scratch.capacity() <= 2 * limit + (64 << 10),
                "{codec}: {}",
                scratch.capacity()
            );
            assert!(
                validate_with(&batch, &mut scratch, 16 << 20).is_ok(),
                "{codec} under a big limit"
            );
        }
    }

    #[test]
    fn bombs_without_a_stated_size_stop_at_the_limit() {
        let limit = 1 << 20;
        let zeros = vec![0u8; 8 << 20];
        let section_zstd = zstd::stream::encode_all(&zeros[..], 1).expect("zstd");
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&section_zstd),
            Ok(None)
        ));
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut lz4, &zeros).expect("lz4");
        let section_lz4 = lz4.finish().expect("lz4");
        for (attr, section) in [(4, section_zstd), (3, section_lz4)] {
            let b = raw_batch(attr, 1, 0, &section);
            let mut scratch = Vec::new();
            let e = records(&b, &mut scratch, limit).expect_err("bomb");
            assert!(
                matches!(e, BatchError::DecompressedTooLarge { .. }),
                "{attr}: {e:?}"
            );
            assert!(
                scratch.capacity() <= 2 * limit + (64 << 10),
                "{attr}: {}",
                scratch.capacity()
            );
        }
    }

    #[test]
    fn garbage_compressed_sections_are_errors() {
        let garbage: &[&[u8]] = &[
            b"",
            b"\x00",
            b"\x1f\x8b\x08\x00garbage",
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff",
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x10ab",
            b"\x04\x22\x4d\x18\x60\x40\x82\x10\x00\x00\x00abc",
            b"\x04\x22\x4d\x18\x61\x40\x82\x00\x00\x00\x00",
            b"\x04\x22\x4d\x18\x60\x70\x82\xff\xff\xff\x7f",
            b"\x28\xb5\x2f\xfd\x00\x00garbage",
            &[0xff; 40],
        ];
        for codec in 1..=4 {
            for g in garbage {
                let b = raw_batch(codec, 1, 0, g);
                let mut scratch = Vec::new();
                let r = records(&b, &mut scratch, 1 << 16)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>().map(|_| ()));
                assert!(r.is_err(), "codec {codec}, {g:?}");
            }
        }
    }

    #[test]
    fn batches_iterates_concatenated_batches() {
        let mut b = BatchBuilder::new(Compression::Snappy, PAGE_FIT_SMALL);
        let recs = sample(300);
        let (out, infos) = encode_all(&mut b, &recs);
        let mut it = Batches::new(&out);
        let mut n = 0;
        for (info, batch) in infos.iter().zip(&mut it) {
            let (h, bytes) = batch.expect("batch");
            assert_eq!(
                (h.record_count as u32, bytes.len() as u32),
                (info.record_count, info.bytes)
            );
            n += 1;
        }
        assert_eq!(n, infos.len());
        assert!(it.next().is_none());
        assert_eq!(it.consumed(), out.len());
    }

    // ------------------------------------------------------------------------------------------
    // Codec containers against independent implementations

    #[test]
    fn lz4_frame_header_matches_lz4_flex() {
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max64KB)
            .block_mode(lz4_flex::frame::BlockMode::Independent);
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        std::io::Write::write_all(&mut enc, b"hello hello hello hello").expect("write");
        let theirs = enc.finish().expect("finish");
        assert_eq!(
            theirs[..7],
            [
                LZ4_MAGIC[0],
                LZ4_MAGIC[1],
                LZ4_MAGIC[2],
                LZ4_MAGIC[3],
                LZ4_FLG,
                LZ4_BD,
                LZ4_HC
            ]
        );
    }

    #[test]
    fn lz4_frames_interoperate_with_lz4_flex() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i / 7).to_le_bytes())
            .collect();
        for mode in [BlockMode::Independent, BlockMode::Linked] {
            for size in [BlockSize::Max64KB, BlockSize::Max256KB, BlockSize::Max4MB] {
                for checksums in [false, true] {
                    let info = FrameInfo::new()
                        .block_mode(mode)
                        .block_size(size)
                        .block_checksums(checksums)
                        .content_checksum(checksums)
                        .content_size(checksums.then_some(data.len() as u64));
                    let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
                    std::io::Write::write_all(&mut enc, &data).expect("write");
                    let frame = enc.finish().expect("finish");
                    let mut out = vec![9u8; 100]; // stale contents must not matter
                    let n = lz4_decode(&frame, &mut out, 4 << 20).ok().expect("decode");
                    assert!(out[..n] == data[..], "{mode:?} {size:?} {checksums}");
                }
            }
        }
        let mut ours = Vec::new();
        assert!(lz4_encode(&mut Default::default(), &data, &mut ours));
        let mut theirs = Vec::new();
        FrameDecoder::new(&ours[..])
            .read_to_end(&mut theirs)
            .expect("lz4_flex decodes ours");
        assert!(theirs == data);
    }

    #[test]
    fn gzip_and_snappy_containers_interoperate() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        let mut ours = Vec::new();
        let mut c = flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
        assert!(gzip_encode(&mut c, &data, &mut ours));
        let mut theirs = Vec::new();
        flate2::read::GzDecoder::new(&ours[..])
            .read_to_end(&mut theirs)
            .expect("gzip");
        assert!(theirs == data);
        // Two members, as some producers write.
        let mut two = ours.clone();
        two.extend_from_slice(&ours);
        let mut out = Vec::new();
        let n = gzip_decode(&two, &mut out, 1 << 20)
            .ok()
            .expect("two members");
        assert!(n == 2 * data.len() && out[..data.len()] == data[..]);
        // Snappy: a raw block (no xerial framing) decodes too.
        let raw = snap::raw::Encoder::new()
            .compress_vec(&data)
            .expect("snappy");
        let n = snappy_decode(&raw, &mut out, 1 << 20)
            .ok()
            .expect("raw snappy");
        assert!(out[..n] == data[..]);
    }

    #[test]
    fn zstd_streamed_and_multi_frame_sections_decode() {
        let data = b"zstd zstd zstd zstd zstd zstd".repeat(1000);
        let mut two = zstd::stream::encode_all(&data[..], 3).expect("zstd");
        two.extend_from_slice(&zstd::bulk::compress(&data, 3).expect("zstd"));
        let mut out = Vec::new();
        let n = zstd_decode(&two, &mut out, 1 << 20).ok().expect("decode");
        assert!(n == 2 * data.len() && out[..data.len()] == data[..]);
        let one = zstd::bulk::compress(&data, 3).expect("zstd");
        two = [one.clone(), one].concat();
        let n = zstd_decode(&two, &mut out, 1 << 20)
            .ok()
            .expect("two sized frames");
        assert_eq!(n, 2 * data.len());
    }

    // ------------------------------------------------------------------------------------------
    // Cross-check with the `kafka-protocol` crate (only ever fed our own well-formed batches:
    // it must not see hostile bytes, see FIELD-NOTES.md). Its codecs are cargo features we do
    // not enable, so compression goes through its custom-compression hooks, backed by the
    // reference implementations of each container (flate2's gzip, lz4_flex's frames, zstd's
    // streaming API, snap's raw blocks) rather than by our own container code.

    mod kafka {
        use super::*;
        use bytes::{Bytes, BytesMut};
        use kafka_protocol::indexmap::IndexMap;
        use kafka_protocol::protocol::StrBytes;
        use kafka_protocol::records::{
            Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
            RecordEncodeOptions, TimestampType as KTimestampType,
        };

        fn k_codec(c: Compression) -> KCompression {
            match c {
                Compression::None => KCompression::None,
                Compression::Gzip => KCompression::Gzip,
                Compression::Snappy => KCompression::Snappy,
                Compression::Lz4 => KCompression::Lz4,
                Compression::Zstd => KCompression::Zstd,
            }
        }

        /// Decompresses with reference implementations (xerial framing parsed here).
        fn reference_decompress(src: &[u8], c: KCompression) -> Vec<u8> {
            let mut out = Vec::new();
            match c {
                KCompression::None => out.extend_from_slice(src),
                KCompression::Gzip => {
                    flate2::read::MultiGzDecoder::new(src)
                        .read_to_end(&mut out)
                        .expect("gzip");
                }
                KCompression::Snappy => {
                    let mut rest = &src[16..];
                    assert_eq!(src[..16], XERIAL_HEADER);
                    while !rest.is_empty() {
                        let len = u32::from_be_bytes(rest[..4].try_into().expect("len")) as usize;
                        let block = &rest[4..4 + len];
                        out.extend(
                            snap::raw::Decoder::new()
                                .decompress_vec(block)
                                .expect("snappy"),
                        );
                        rest = &rest[4 + len..];
                    }
                }
                KCompression::Lz4 => {
                    lz4_flex::frame::FrameDecoder::new(src)
                        .read_to_end(&mut out)
                        .expect("lz4");
                }
                KCompression::Zstd => out = zstd::stream::decode_all(src).expect("zstd"),
            }
            out
        }

        fn reference_compress(src: &[u8], c: KCompression) -> Vec<u8> {
            use std::io::Write;
            match c {
                KCompression::None => src.to_vec(),
                KCompression::Gzip => {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(src).expect("gzip");
                    e.finish().expect("gzip")
                }
                KCompression::Snappy => {
                    snap::raw::Encoder::new().compress_vec(src).expect("snappy")
                }
                KCompression::Lz4 => {
                    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                    e.write_all(src).expect("lz4");
                    e.finish().expect("lz4")
                }
                KCompression::Zstd => zstd::stream::encode_all(src, 3).expect("zstd"),
            }
        }

        fn to_rec(r: &Record) -> Rec {
            Rec {
                ts: r.timestamp,
                key: r.key.as_ref().map(|b| b.to_vec()),
                value: r.value.as_ref().map(|b| b.to_vec()),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.as_ref().map(|b| b.to_vec())))
                    .collect(),
            }
        }

        fn from_rec(r: &Rec, offset: i64) -> Record {
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: KTimestampType::Creation,
                offset,
                // kafka-protocol splits batches where offset − sequence changes.
                sequence: offset as i32 - 1,
                timestamp: r.ts,
                key: r.key.clone().map(Bytes::from),
                value: r.value.clone().map(Bytes::from),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                    .collect::<IndexMap<_, _>>(),
            }
        }

        /// Sample records without repeated header keys (kafka-protocol keeps headers in a map).
        fn unique_header_sample(n: usize) -> Vec<Rec> {
            sample(n)
        }

        #[test]
        fn kafka_protocol_decodes_our_batches() {
            let recs = unique_header_sample(600);
            for codec in ALL {
                let mut b = BatchBuilder::new(codec, PAGE_FIT_LARGE);
                let (mut out, infos) = encode_all(&mut b, &recs);
                // Give the batches real offsets, as the writer does.
                let mut at = 0;
                let mut base = 1000u64;
                for info in &infos {
                    set_base_offset(&mut out[at..], base);
                    at += info.bytes as usize;
                    base += u64::from(info.record_count);
                }
                let mut buf = Bytes::from(out);
                let mut got = Vec::new();
                let mut offsets = Vec::new();
                while !buf.is_empty() {
                    let set = RecordBatchDecoder::decode_with_custom_compression(
                        &mut buf,
                        Some(|src: &mut Bytes, c| Ok(Bytes::from(reference_decompress(src, c)))),
                    )
                    .expect("kafka-protocol decodes");
                    assert_eq!(set.compression, k_codec(codec));
                    for r in &set.records {
                        got.push(to_rec(r));
                        offsets.push(r.offset);
                    }
                }
                assert_eq!(got, recs, "{codec}");
                assert_eq!(
                    offsets,
                    (1000..1000 + recs.len() as i64).collect::<Vec<_>>()
                );
            }
        }

        #[test]
        fn we_decode_kafka_protocol_batches() {
            let recs = unique_header_sample(400);
            for codec in ALL {
                let krecords: Vec<Record> = recs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| from_rec(r, 5000 + i as i64))
                    .collect();
                let options = RecordEncodeOptions {
                    version: 2,
                    compression: k_codec(codec),
                };
                let mut buf = BytesMut::new();
                RecordBatchEncoder::encode_with_custom_compression(
                    &mut buf,
                    &krecords,
                    &options,
                    Some(|src: &mut BytesMut, out: &mut BytesMut, c| {
                        out.extend_from_slice(&reference_compress(src, c));
                        Ok(())
                    }),
                )
                .expect("kafka-protocol encodes");
                let mut scratch = Vec::new();
                let mut got = Vec::new();
                for batch in Batches::new(&buf) {
                    let (h, bytes) = batch.expect("batch");
                    assert_eq!(h.compression(), Some(codec));
                    validate(bytes).expect("valid");
                    for r in records(bytes, &mut scratch, 1 << 20).expect("records") {
                        let r = r.expect("record");
                        assert_eq!(r.offset, 5000 + got.len() as u64);
                        got.push(Rec::from_ref(&r));
                    }
                }
                assert_eq!(got, recs, "{codec}");
            }
        }

        #[test]
        fn golden_batch_matches_kafka_protocol_encoding() {
            // kafka-protocol writes the minimum timestamp as the base timestamp and the same
            // header fields as we do (given leader epoch 0): byte-identical output.
            let records: Vec<Record> = golden_records()
                .iter()
                .enumerate()
                .map(|(i, r)| from_rec(r, i as i64))
                .collect();
            let options = RecordEncodeOptions {
                version: 2,
                compression: KCompression::None,
            };
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
            assert_eq!(buf[..], golden_bytes()[..]);
        }
    }
}
