//! Listing consumer-group offsets, as the metrics report them (lag per group and partition).
//!
//! Committing and fetching one offset are [`Log::commit_offset`] and [`Log::fetch_offset`];
//! this module only reads the whole `groups` table in one read transaction, never waiting for
//! the writer.

use redb::{ReadableDatabase, ReadableTable};

use super::{tables, Log, StorageError};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset the group will read.
    pub offset: u64,
}

impl Log {
    /// The first `max` committed offsets, ordered by group, topic and partition. Offsets of
    /// deleted topics are gone with them, so every entry names an existing topic (unless it
    /// was deleted since this read).
    pub fn group_offsets(&self, max: usize) -> Result<Vec<GroupOffset>, StorageError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(tables::GROUPS)?;
        let mut out = Vec::new();
        for entry in table.iter()?.take(max) {
            let (key, value) = entry?;
            let (group, topic, partition) = key.value();
            out.push(GroupOffset {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
                offset: value.value(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::log::batch::Compression;
    use crate::log::TopicSpec;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_offsets_are_listed_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let log = Log::open(&config).unwrap();
        let spec = TopicSpec {
            partitions: 2,
            retention_ms: None,
            retention_bytes: None,
            compression: Compression::None,
        };
        log.create_topic("t", spec).await.unwrap();
        assert_eq!(log.group_offsets(10).unwrap(), vec![]);
        log.commit_offset("b", "t", 1, 7).await.unwrap();
        log.commit_offset("a", "t", 0, 3).await.unwrap();
        let got = log.group_offsets(10).unwrap();
        let keys: Vec<_> = got
            .iter()
            .map(|g| (g.group.as_str(), g.partition, g.offset))
            .collect();
        assert_eq!(keys, vec![("a", 0, 3), ("b", 1, 7)]);
        assert_eq!(log.group_offsets(1).unwrap().len(), 1);
        log.shutdown().await;
    }
}
