//! `outpost topics create|list|describe|delete`.

use super::{connect, CliError};
pub use outpost_cli_args::topics::{CompressionArg, TopicsCommand};

/// The codec a `--compression` name stands for.
pub fn codec(c: CompressionArg) -> outpost_firmware::Compression {
    use outpost_firmware::Compression as C;
    match c {
        CompressionArg::None => C::None,
        CompressionArg::Gzip => C::Gzip,
        CompressionArg::Snappy => C::Snappy,
        CompressionArg::Lz4 => C::Lz4,
        CompressionArg::Zstd => C::Zstd,
    }
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
                    codec(compression),
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

#[cfg(test)]
mod tests {
    #[test]
    fn retention_default_is_the_brokers() {
        assert_eq!(
            outpost_cli_args::topics::DEFAULT_RETENTION_MS,
            crate::config::DEFAULT_RETENTION_MS
        );
    }
}
