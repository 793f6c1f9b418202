//! Upstream forwarding of Outpost log topics with checkpointed offsets.
//!
//! The broker implements [`LogSource`] (the read side of its log) and [`CheckpointStore`];
//! this crate never depends on the broker. A bridge ([`config::BridgeConfig`]) is one
//! upstream connection carrying routes (log topic → upstream topic template). Per route and
//! partition the forwarder reads from the checkpoint, sends a window of records, and advances
//! and commits the checkpoint only over the contiguous prefix the upstream acknowledged. See
//! `forwarder` for the rules, and [`Upstream`] for what an upstream provides: MQTT 3.1.1/5
//! (`mqtt`, on rumqttc) or Kafka (`kafka`, on rskafka).

#![warn(missing_docs)]

pub mod config;
pub mod forwarder;
pub mod kafka;
pub mod mqtt;
pub mod pace;
mod source;
mod status;
pub mod template;
pub mod tls;
mod upstream;
mod window;

pub use forwarder::{start, StartError};
pub use source::{
    Checkpoint, CheckpointRow, CheckpointStore, LogSource, SourceBatches, SourceRecord,
    ALL_PARTITIONS,
};
pub use status::{BridgeStatus, PartitionStatus, RouteStatus, StatusBoard};
pub use upstream::{MsgId, OutRecord, SendError, Upstream, UpstreamEvent, UpstreamPosition};
