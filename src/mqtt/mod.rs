//! The MQTT 3.1, 3.1.1 and 5.0 broker.
//!
//! - [`packet`]: control packets as borrowed views; [`codec`]: their checked decoding and
//!   encoding.
//! - [`topic`]: topic name and filter rules and matching; [`subscriptions`]: the subscription
//!   tree that routes a topic to sessions.
//! - [`session`]: one connection's protocol state machine (no I/O); [`connection`]: the tokio
//!   task around it.
//! - [`broker`]: the shared state (sessions, subscriptions, retained messages) and the publish
//!   path into the log and out to subscribers; [`message`]: an accepted message;
//!   [`persist`]: how sessions, queues and retained messages are stored.
//!
//! Data flow: PUBLISH → [`session::Session`] checks it → [`broker::Broker::publish`] routes it
//! and queues one writer request (the log record per [`crate::ingest`], plus queue rows and
//! the retained change) → after the commit, PUBACK/PUBREC and the deliveries.

pub mod broker;
pub mod codec;
pub mod connection;
pub mod message;
pub mod packet;
pub mod persist;
pub mod session;
pub mod subscriptions;
pub mod topic;
