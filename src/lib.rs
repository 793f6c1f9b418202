//! Outpost: a low-footprint edge broker whose every accepted message lands in a durable,
//! partitioned, Kafka-style log stored in redb.
//!
//! # Architecture map
//!
//! - [`config`]: the TOML configuration, defaults and validation.
//! - [`log`]: the log store. [`log::Log`] is the handle; [`log::batch`] is the stored unit
//!   (Kafka RecordBatch v2); [`log::tables`] the redb layout; one writer thread does group
//!   commit; [`log::retention`] deletes old batches.
//! - [`wire`]: the binary protocol on the broker side (frames from `outpost-firmware`).
//! - [`udp`]: the binary protocol over UDP: sensor datagrams without a connection.
//! - [`server`]: listeners, connection limits, graceful shutdown, SIGHUP reload.
//! - [`tls`]: rustls server configuration per TLS listener, reloadable; client certificate
//!   identities. [`transport`]: a connection's stream, plain TCP or TLS.
//! - [`admin`]: Prometheus metrics, `/healthz` and `/readyz` over HTTP.
//! - [`auth`]: the password file, ACL rules and their checks, shared by both listeners.
//! - [`server`]: listener, connection limit, graceful shutdown; [`reload`]: SIGHUP.
//! - [`client`]: an async client of the binary protocol, used by the CLI and tests.
//! - [`cli`]: the `outpost` command's subcommands.
//! - [`logging`]: the `tracing` subscriber of each command (`[logging]`), and the gate that
//!   keeps per-message events to one line per interval.
//!
//! Data flow: a produce frame → [`wire::connection`] encodes its records into a batch →
//! [`log::Log::enqueue_append`] → the writer commits → the ack goes out. Nothing is
//! acknowledged before its commit.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
mod bridge_source;
pub mod cli;
pub mod client;
pub mod config;
pub mod devices;
pub mod ingest;
pub mod log;
pub mod logging;
pub mod mqtt;
pub mod reload;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod transport;
pub mod udp;
pub mod wire;
