//! Every redb table of the log file, and the byte encoding of every key and value in it.
//!
//! This module owns the on-disk layout except the record batch itself (see [`super::batch`]).
//! It does no I/O of its own: the writer and readers open these definitions in their
//! transactions.
//!
//! # Tables
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `&str` name | bytes: `format_version` → u32 LE; `gateway_id` → UTF-8 |
//! | `topics` | `&str` topic name | [`TopicConfig`], encoded as below |
//! | `partitions` | `(&str topic, u32 partition)` | [`PartitionMeta`], 40 bytes as below |
//! | `log/<topic>` (one per topic) | `(u32 partition, u64 base_offset)` | one Kafka RecordBatch v2 |
//! | `groups` | `(&str group, &str topic, u32 partition)` | `u64` next offset to consume |
//! | `mqtt/sessions`, `mqtt/queue`, `mqtt/retained`, `mqtt/inbound` | bytes | bytes: see [`StateTable`] |
//! | `bridge/checkpoints`, `devices/config`, `devices/status` | bytes | bytes: see [`StateTable`] |
//!
//! One table of batches per topic makes deleting a topic one `delete_table`, and keeps each
//! topic's keys ascending within a partition, which is what redb's B-tree fills best.
//!
//! ## `TopicConfig` value (little-endian, 32 bytes, version 1)
//! ```text
//! 0      u8   encoding version (1)
//! 1      u8   compression (Kafka codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)
//! 2..4   u16  reserved, zero
//! 4..8   u32  partition count
//! 8..16  u64  retention.ms, u64::MAX = unlimited
//! 16..24 u64  retention.bytes per partition, u64::MAX = unlimited
//! 24..32 u64  creation time, ms since the Unix epoch
//! ```
//!
//! ## `PartitionMeta` value (little-endian, 40 bytes)
//! ```text
//! 0..8   u64  log start offset (first offset still stored)
//! 8..16  u64  log end offset (the next offset to assign)
//! 16..24 u64  stored bytes (sum of batch sizes)
//! 24..32 u64  oldest max-timestamp among stored batches, ms; u64::MAX when empty
//! 32..40 u64  number of stored batches
//! ```

use redb::TableDefinition;

/// File-format version written into `meta`; a file with a newer version is refused on open.
pub const FORMAT_VERSION: u32 = 1;

/// Small key/value facts about the file itself.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Topic name → encoded [`TopicConfig`].
pub const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");
/// (topic, partition) → encoded [`PartitionMeta`].
pub const PARTITIONS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("partitions");
/// (group, topic, partition) → committed offset (the next offset the group will read).
pub const GROUPS: TableDefinition<(&str, &str, u32), u64> = TableDefinition::new("groups");

/// A table of broker state kept next to the log (MQTT persistent sessions, their queued
/// messages, retained messages). Keys and values are opaque bytes here: their encodings belong
/// to the module that owns the state (`crate::mqtt::persist`), which documents them. The
/// writer applies changes to them in the same transaction as the appends they go with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateTable {
    /// Client id → persistent session (expiry, subscriptions).
    MqttSessions,
    /// (client id, sequence) → a QoS 1/2 message queued for or in flight to a session.
    MqttQueue,
    /// Topic name → retained message.
    MqttRetained,
    /// (client id, packet id) of an inbound QoS 2 message stored and awaiting PUBREL.
    MqttInbound,
    /// (bridge, route, topic, partition) → the route partition's checkpoint (`crate::bridge_source`).
    BridgeCheckpoints,
    /// Device id → stored config and token hash (`crate::devices::store`).
    Devices,
    /// Device id → last seen, address, reported config version (`crate::devices::store`).
    DeviceStatus,
}

impl StateTable {
    /// Every state table (created when the file is initialised).
    pub const ALL: [StateTable; 7] = [
        StateTable::MqttSessions,
        StateTable::MqttQueue,
        StateTable::MqttRetained,
        StateTable::MqttInbound,
        StateTable::BridgeCheckpoints,
        StateTable::Devices,
        StateTable::DeviceStatus,
    ];

    /// The redb definition of the table.
    pub fn definition(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(match self {
            StateTable::MqttSessions => "mqtt/sessions",
            StateTable::MqttQueue => "mqtt/queue",
            StateTable::MqttRetained => "mqtt/retained",
            StateTable::MqttInbound => "mqtt/inbound",
            StateTable::BridgeCheckpoints => "bridge/checkpoints",
            StateTable::Devices => "devices/config",
            StateTable::DeviceStatus => "devices/status",
        })
    }
}

/// Key in `meta` holding [`FORMAT_VERSION`].
pub const META_FORMAT_VERSION: &str = "format_version";
/// Key in `meta` holding the gateway id.
pub const META_GATEWAY_ID: &str = "gateway_id";

/// Prefix of the per-topic batch tables.
const BATCH_TABLE_PREFIX: &str = "log/";

/// Name of the batch table of `topic`.
pub fn batch_table_name(topic: &str) -> String {
    format!("{BATCH_TABLE_PREFIX}{topic}")
}

/// The batch table of one topic, from a name made by [`batch_table_name`].
pub fn batch_table(name: &str) -> TableDefinition<'_, (u32, u64), &'static [u8]> {
    TableDefinition::new(name)
}

/// Sentinel stored for "no limit" in retention fields.
const UNLIMITED: u64 = u64::MAX;

/// A topic's persisted configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions, fixed at creation.
    pub partitions: u32,
    /// Records older than this are deleted (whole batches); `None` keeps them forever.
    pub retention_ms: Option<u64>,
    /// Per-partition size bound in bytes; `None` means unbounded.
    pub retention_bytes: Option<u64>,
    /// Codec applied to batches written for this topic.
    pub compression: super::batch::Compression,
    /// When the topic was created (ms since the epoch).
    pub created_ms: u64,
}

/// Length of an encoded [`TopicConfig`].
const TOPIC_CONFIG_LEN: usize = 32;
/// Version byte of the [`TopicConfig`] encoding.
const TOPIC_CONFIG_VERSION: u8 = 1;

/// Why a stored value could not be decoded: the file is damaged or from an unknown version.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The value has the wrong length for its table.
    #[error("stored {what} has {actual} bytes, expected {expected}")]
    Length {
        /// Which value.
        what: &'static str,
        /// Bytes found.
        actual: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The encoding version is not one this build knows.
    #[error("stored {what} has encoding version {version}, newer than this build knows")]
    Version {
        /// Which value.
        what: &'static str,
        /// Version found.
        version: u8,
    },
    /// A field holds a value no writer produces.
    #[error("stored {what} has an invalid {field}")]
    Field {
        /// Which value.
        what: &'static str,
        /// Which field.
        field: &'static str,
    },
}

fn opt_to_u64(v: Option<u64>) -> u64 {
    v.unwrap_or(UNLIMITED)
}

fn u64_to_opt(v: u64) -> Option<u64> {
    (v != UNLIMITED).then_some(v)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl TopicConfig {
    /// Encodes to the 32-byte layout in the module doc.
    pub fn encode(&self) -> [u8; TOPIC_CONFIG_LEN] {
        let mut out = [0u8; TOPIC_CONFIG_LEN];
        out[0] = TOPIC_CONFIG_VERSION;
        out[1] = self.compression.kafka_id();
        out[4..8].copy_from_slice(&self.partitions.to_le_bytes());
        out[8..16].copy_from_slice(&opt_to_u64(self.retention_ms).to_le_bytes());
        out[16..24].copy_from_slice(&opt_to_u64(self.retention_bytes).to_le_bytes());
        out[24..32].copy_from_slice(&self.created_ms.to_le_bytes());
        out
    }

    /// Decodes the layout in the module doc.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "topic config";
        if bytes.len() != TOPIC_CONFIG_LEN {
            return Err(DecodeError::Length {
                what: WHAT,
                actual: bytes.len(),
                expected: TOPIC_CONFIG_LEN,
            });
        }
        if bytes[0] != TOPIC_CONFIG_VERSION {
            return Err(DecodeError::Version {
                what: WHAT,
                version: bytes[0],
            });
        }
        let compression =
            super::batch::Compression::from_kafka_id(bytes[1]).ok_or(DecodeError::Field {
                what: WHAT,
                field: "compression",
            })?;
        let mut p = [0u8; 4];
        p.copy_from_slice(&bytes[4..8]);
        Ok(Self {
            partitions: u32::from_le_bytes(p),
            retention_ms: u64_to_opt(le_u64(bytes, 8)),
            retention_bytes: u64_to_opt(le_u64(bytes, 16)),
            compression,
            created_ms: le_u64(bytes, 24),
        })
    }
}

/// Per-partition bookkeeping, updated in the same transaction as the batches it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMeta {
    /// First offset still stored (equals `end_offset` when the partition is empty).
    pub start_offset: u64,
    /// Next offset to assign.
    pub end_offset: u64,
    /// Sum of the stored batch sizes.
    pub bytes: u64,
    /// Smallest max-timestamp among stored batches; `None` when empty.
    pub oldest_timestamp_ms: Option<u64>,
    /// Number of stored batches.
    pub batches: u64,
}

/// Length of an encoded [`PartitionMeta`].
const PARTITION_META_LEN: usize = 40;

impl PartitionMeta {
    /// An empty partition starting at offset 0.
    pub const EMPTY: Self = Self {
        start_offset: 0,
        end_offset: 0,
        bytes: 0,
        oldest_timestamp_ms: None,
        batches: 0,
    };

    /// Encodes to the 40-byte layout in the module doc.
    pub fn encode(&self) -> [u8; PARTITION_META_LEN] {
        let mut out = [0u8; PARTITION_META_LEN];
        out[0..8].copy_from_slice(&self.start_offset.to_le_bytes());
        out[8..16].copy_from_slice(&self.end_offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.bytes.to_le_bytes());
        out[24..32].copy_from_slice(&opt_to_u64(self.oldest_timestamp_ms).to_le_bytes());
        out[32..40].copy_from_slice(&self.batches.to_le_bytes());
        out
    }

    /// Decodes the layout in the module doc.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != PARTITION_META_LEN {
            return Err(DecodeError::Length {
                what: "partition meta",
                actual: bytes.len(),
                expected: PARTITION_META_LEN,
            });
        }
        Ok(Self {
            start_offset: le_u64(bytes, 0),
            end_offset: le_u64(bytes, 8),
            bytes: le_u64(bytes, 16),
            oldest_timestamp_ms: u64_to_opt(le_u64(bytes, 24)),
            batches: le_u64(bytes, 32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::Compression;

    #[test]
    fn topic_config_golden_bytes() {
        let cfg = TopicConfig {
            partitions: 3,
            retention_ms: Some(86_400_000),
            retention_bytes: None,
            compression: Compression::Zstd,
            created_ms: 1_700_000_000_000,
        };
        let expected: [u8; 32] = [
            1, 4, 0, 0, 3, 0, 0, 0, 0, 92, 38, 5, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255,
            255, 0, 104, 229, 207, 139, 1, 0, 0,
        ];
        assert_eq!(cfg.encode(), expected);
        assert_eq!(TopicConfig::decode(&expected), Ok(cfg));
    }

    #[test]
    fn topic_config_rejects_unknown_version_and_codec() {
        let mut bytes = TopicConfig {
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            compression: Compression::None,
            created_ms: 0,
        }
        .encode();
        bytes[1] = 9;
        assert!(matches!(
            TopicConfig::decode(&bytes),
            Err(DecodeError::Field { .. })
        ));
        bytes[0] = 2;
        assert!(matches!(
            TopicConfig::decode(&bytes),
            Err(DecodeError::Version { version: 2, .. })
        ));
        assert!(matches!(
            TopicConfig::decode(&bytes[..5]),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn partition_meta_golden_bytes() {
        let meta = PartitionMeta {
            start_offset: 5,
            end_offset: 300,
            bytes: 4096,
            oldest_timestamp_ms: None,
            batches: 2,
        };
        let mut expected = [0u8; 40];
        expected[0] = 5;
        expected[8..10].copy_from_slice(&[44, 1]);
        expected[17] = 16;
        expected[24..32].copy_from_slice(&[255; 8]);
        expected[32] = 2;
        assert_eq!(meta.encode(), expected);
        assert_eq!(PartitionMeta::decode(&expected), Ok(meta));
    }
}
