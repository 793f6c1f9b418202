//! [`outpost_bridge::LogSource`] for [`Log`]: the bridge reads the log through this.

use std::time::Duration;

use outpost_bridge::{LogSource, SourceBatches};

use crate::log::{Log, ReadError};

impl LogSource for Log {
    type Error = ReadError;

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
        let r = Log::read(self, topic, partition, offset, max_bytes).await?;
        Ok(SourceBatches {
            batches: r.batches,
            log_start: r.log_start,
            log_end: r.high_watermark,
        })
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
}
