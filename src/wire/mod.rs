//! The binary protocol on the broker side: session rules, connections (client and device
//! sessions), topic aliases, request handlers.
//!
//! Frames are defined in `outpost-firmware`; this module serves them against the [`Log`].
//! The listener itself lives in [`crate::server`].
//!
//! [`Log`]: crate::log::Log

pub mod aliases;
pub mod connection;
pub mod handlers;
pub mod produce;
pub mod session;
