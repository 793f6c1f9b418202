//! Observability over HTTP: Prometheus metrics, `/healthz` and `/readyz` on a listener of
//! their own (`[metrics]`, loopback by default).
//!
//! - [`counters`]: atomics the serving layers update (connections, traffic, latency buckets).
//! - [`metrics`]: the registry and the helpers that write families; how to add a source.
//! - [`collectors`]: every Outpost family and where its values come from.
//! - [`health`]: the readiness state the server moves forward.
//! - [`system`]: `/proc` and `statvfs` readings.
//! - [`http`]: the HTTP/1 listener and its limits.
//!
//! Nothing here is on a hot path: counters are updated where the work happens (relaxed atomic
//! adds) and everything else is computed when a scraper asks.

pub mod collectors;
pub mod counters;
pub mod health;
pub mod http;
pub mod metrics;
pub mod system;

pub use health::{Health, Readiness};
pub use http::AdminServer;
