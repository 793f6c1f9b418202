//! Upstream forwarding of Outpost log topics (to MQTT or Kafka) with checkpointed offsets.
//!
//! For now this crate holds the contract between the broker and the bridge: [`LogSource`],
//! the read side of the log that a forwarder needs (partitions, offsets, batches from an
//! offset, waiting for new data). The broker implements it for its log; the bridge never
//! depends on the broker crate. Routes, upstream sinks and checkpoints come with the bridge.

#![warn(missing_docs)]

mod source;

pub use source::{LogSource, SourceBatches};
