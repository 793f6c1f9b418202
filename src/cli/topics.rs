//! `outpost topics create|list|describe|delete`.

use clap::{Subcommand, ValueEnum};

use super::{connect, CliError};

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

impl From<CompressionArg> for outpost_firmware::Compression {
    fn from(c: CompressionArg) -> Self {
        use outpost_firmware::Compression as C;
        match c {
            CompressionArg::None => C::None,
            CompressionArg::Gzip => C::Gzip,
            CompressionArg::Snappy => C::Snappy,
            CompressionArg::Lz4 => C::Lz4,
            CompressionArg::Zstd => C::Zstd,
        }
    }
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
        #[arg(long, allow_negative_numbers = true, default_value_t = crate::config::DEFAULT_RETENTION_MS)]
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

fn limit(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

/// Runs a `topics` subcommand.
pub async fn run(broker: &super::Endpoint, cmd: TopicsCommand) -> Result<(), CliError> {
    let client = connect(broker, "topics").await?;
    match cmd {
        TopicsCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            compression,
        } => {
            client
                .create_topic(
                    &name,
                    partitions,
                    limit(retention_ms),
                    limit(retention_bytes),
                    compression.into(),
                )
                .await?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicsCommand::List => {
            for name in client.list_topics().await? {
                println!("{name}");
            }
        }
        TopicsCommand::Describe { name } => {
            let t = client.describe_topic(&name).await?;
            let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
            println!(
                "topic {}  partitions {}  retention.ms {}  retention.bytes {}  compression {:?}",
                t.name,
                t.partitions,
                show(t.retention_ms),
                show(t.retention_bytes),
                t.compression
            );
            println!(
                "{:>9} {:>14} {:>14} {:>14} {:>15}",
                "partition", "start", "end", "bytes", "oldest_ts_ms"
            );
            for p in &t.partition_info {
                let oldest = p
                    .oldest_timestamp_ms
                    .map_or("-".to_owned(), |v| v.to_string());
                println!(
                    "{:>9} {:>14} {:>14} {:>14} {:>15}",
                    p.partition, p.start_offset, p.end_offset, p.bytes, oldest
                );
            }
        }
        TopicsCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
