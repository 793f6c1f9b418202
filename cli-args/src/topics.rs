//! Arguments of `outpost topics create|list|describe|delete`.

use clap::{Subcommand, ValueEnum};

/// Default `--retention-ms` of `topics create`: seven days, the broker's own default
/// (`outpost::config::DEFAULT_RETENTION_MS`; a test there checks that they agree).
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Codec names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// `topics` subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name ([a-zA-Z0-9._-], up to 249 characters).
        name: String,
        /// Partition count.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Delete records older than this (ms); -1 keeps them forever.
        #[arg(long, allow_negative_numbers = true, default_value_t = DEFAULT_RETENTION_MS)]
        retention_ms: i64,
        /// Per-partition size bound in bytes; -1 is unbounded.
        #[arg(long, allow_negative_numbers = true, default_value_t = -1)]
        retention_bytes: i64,
        /// Batch compression.
        #[arg(long, value_enum, default_value_t = CompressionArg::None)]
        compression: CompressionArg,
    },
    /// List topic names.
    List,
    /// Show a topic's settings and per-partition offsets, sizes and oldest timestamps.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic with its records and consumer-group offsets.
    Delete {
        /// Topic name.
        name: String,
    },
}
