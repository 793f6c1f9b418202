//! The broker side of the bridge: [`LogSource`] and [`CheckpointStore`] for [`Log`].
//!
//! Checkpoints live in the `bridge/checkpoints` state table. Key: `bridge 0x00 route 0x00
//! topic 0x00` then the partition as 4 big-endian bytes (names cannot contain NUL); value: a
//! format byte (1) then the postcard encoding of [`outpost_bridge::Checkpoint`] (three varint `u64`s:
//! offset, forwarded, dropped).

use std::time::Duration;

use outpost_bridge::{CheckpointRow, CheckpointStore, LogSource, SourceBatches, SourceRecord};

use crate::log::tables::StateTable;
use crate::log::{batch, reader, Log, ReadError, StateError, StateOp, StorageError};

/// Format byte of a stored checkpoint.
const CHECKPOINT_FORMAT: u8 = 1;

impl LogSource for Log {
    type Error = ReadError;

    fn gateway_id(&self) -> &str {
        Log::gateway_id(self)
    }

    fn partitions(&self, topic: &str) -> Result<u32, ReadError> {
        self.describe_topic(topic)
            .map(|d| d.config.partitions)
            .map_err(|_| ReadError::UnknownTopic(topic.to_owned()))
    }

    fn offsets(&self, topic: &str, partition: u32) -> Result<(u64, u64), ReadError> {
        let m = self.partition_meta(topic, partition)?;
        Ok((m.start_offset, m.end_offset))
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
    ) -> Result<SourceBatches, ReadError> {
        match Log::read(self, topic, partition, offset, max_bytes).await {
            Ok(r) => Ok(SourceBatches {
                batches: r.batches,
                log_start: r.log_start,
                log_end: r.high_watermark,
            }),
            // Below the start: retention got there first; the forwarder decides what that means.
            Err(ReadError::OffsetOutOfRange { start, end, offset }) if offset < start => {
                Ok(SourceBatches {
                    batches: Vec::new(),
                    log_start: start,
                    log_end: end,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn visit(
        &self,
        batches: &[u8],
        from: u64,
        f: &mut dyn FnMut(&SourceRecord<'_>) -> bool,
    ) -> Result<u64, ReadError> {
        let corrupt = |e: batch::BatchError| ReadError::Corrupt(e.to_string());
        let (mut next, mut bad) = (from, None);
        let mut scratch = Vec::new();
        reader::visit_records(batches, from, &mut scratch, usize::MAX, |rec| {
            let mut headers = Vec::with_capacity(rec.headers.remaining());
            for h in rec.headers.clone() {
                match h {
                    Ok((k, v)) => headers.push((k, v.unwrap_or_default())),
                    Err(e) => {
                        bad = Some(e);
                        return false;
                    }
                }
            }
            let r = SourceRecord {
                offset: rec.offset,
                timestamp_ms: rec.timestamp_ms,
                key: rec.key,
                value: rec.value.unwrap_or_default(),
                headers: &headers,
            };
            if !f(&r) {
                return false;
            }
            next = rec.offset + 1;
            true
        })
        .map_err(corrupt)?;
        bad.map_or(Ok(next), |e| Err(corrupt(e)))
    }

    async fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64, ReadError> {
        Log::offset_for_time(self, topic, partition, timestamp_ms).await
    }

    async fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<u64, ReadError> {
        Log::wait_for(self, topic, partition, offset, max_wait).await
    }

    fn hold_retention(&self, holder: &str, topic: &str, partition: u32, offset: Option<u64>) {
        Log::hold_retention(self, holder, topic, partition, offset);
    }
}

/// Why checkpoints could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// redb failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The commit failed or the log is shutting down.
    #[error(transparent)]
    State(#[from] StateError),
}

fn checkpoint_key(bridge: &str, route: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(bridge.len() + route.len() + topic.len() + 7);
    for part in [bridge, route, topic] {
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// `(route, topic, partition)` of a key of `bridge`, or `None` for another bridge's key.
fn parse_key(bridge: &str, key: &[u8]) -> Option<(String, String, u32)> {
    let rest = key.strip_prefix(bridge.as_bytes())?.strip_prefix(&[0])?;
    let (names, partition) = rest.split_at_checked(rest.len().checked_sub(4)?)?;
    let names = std::str::from_utf8(names).ok()?;
    let mut it = names.split('\0');
    let (route, topic, end) = (it.next()?, it.next()?, it.next()?);
    if !end.is_empty() || it.next().is_some() {
        return None;
    }
    let partition = u32::from_be_bytes(partition.try_into().ok()?);
    Some((route.to_owned(), topic.to_owned(), partition))
}

impl CheckpointStore for Log {
    type Error = CheckpointError;

    fn load_checkpoints(&self, bridge: &str) -> Result<Vec<CheckpointRow>, CheckpointError> {
        let mut out = Vec::new();
        for (k, v) in self.read_state(StateTable::BridgeCheckpoints)? {
            let Some((route, topic, partition)) = parse_key(bridge, &k) else {
                continue;
            };
            match v.split_first() {
                Some((&CHECKPOINT_FORMAT, body)) => match postcard::from_bytes(body) {
                    Ok(c) => out.push((route, topic, partition, c)),
                    Err(e) => tracing::warn!(bridge, route, topic, partition, error = %e,
                        "damaged bridge checkpoint ignored; the route restarts at its start position"),
                },
                _ => tracing::warn!(
                    bridge,
                    route,
                    topic,
                    partition,
                    "bridge checkpoint of an unknown format ignored"
                ),
            }
        }
        Ok(out)
    }

    fn store_checkpoints(
        &self,
        bridge: &str,
        rows: Vec<CheckpointRow>,
    ) -> impl std::future::Future<Output = Result<(), CheckpointError>> + Send + 'static {
        let ops: Vec<StateOp> = rows
            .iter()
            .map(|(route, topic, partition, c)| {
                let mut value = vec![CHECKPOINT_FORMAT];
                // Encoding three integers into a Vec cannot fail.
                value.extend(postcard::to_allocvec(c).unwrap_or_default());
                StateOp::Put {
                    table: StateTable::BridgeCheckpoints,
                    key: checkpoint_key(bridge, route, topic, *partition),
                    value,
                }
            })
            .collect();
        let log = self.clone();
        async move {
            log.enqueue_state(ops).await?.wait().await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip_and_stay_per_bridge() {
        let k = checkpoint_key("cloud", "r1", "sensors", 7);
        assert_eq!(
            parse_key("cloud", &k),
            Some(("r1".to_owned(), "sensors".to_owned(), 7))
        );
        assert_eq!(parse_key("clou", &k), None);
        assert_eq!(parse_key("cloud2", &k), None);
        assert_eq!(parse_key("cloud", b"cloud\0"), None);
    }
}
