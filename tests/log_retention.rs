//! Retention in a running broker: by time, by bytes, whole batches only, and what readers see
//! afterwards. Topic deletion removes records and group offsets.

mod common;

use std::time::Duration;

use common::{runtime, temp_dir, Broker};
use outpost::client::{Client, ClientError, NewRecord};
use outpost_firmware::{AckMode, Compression};

/// Retention every 100 ms, no disk floor (the test machine's free space must not interfere).
const FAST_RETENTION: &str =
    "[retention]\ncheck_interval_ms = 100\nmin_free_bytes = 0\nmin_free_percent = 0\n";

fn records(n: usize, size: usize, timestamp_ms: Option<u64>) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            value: vec![b'0' + (i % 10) as u8; size],
            timestamp_ms,
            ..NewRecord::default()
        })
        .collect()
}

/// Polls `describe` until `done` holds for partition 0 (bounded: 20 s).
async fn wait_partition(
    c: &Client,
    topic: &str,
    done: impl Fn(&outpost_firmware::PartitionInfo) -> bool,
) -> outpost_firmware::PartitionInfo {
    for _ in 0..200 {
        let info = c.describe_topic(topic).await.unwrap();
        let p = info.partition_info[0];
        if done(&p) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("retention did not act on {topic} within 20 s");
}

#[test]
fn time_retention_deletes_expired_batches_and_reads_report_the_new_start() {
    let dir = temp_dir();
    let rt = runtime();
    let broker = Broker::start(&dir.path().join("data"), FAST_RETENTION);
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        c.create_topic("old", 1, Some(3_600_000), None, Compression::None)
            .await
            .unwrap();
        let two_hours_ago = outpost::log::now_ms() - 7_200_000;
        // Separate commits make separate batches: 3 expired batches, then a fresh one.
        for _ in 0..3 {
            c.produce(
                "old",
                Some(0),
                &records(5, 10, Some(two_hours_ago)),
                AckMode::Commit,
            )
            .await
            .unwrap();
        }
        c.produce("old", Some(0), &records(1, 10, None), AckMode::Commit)
            .await
            .unwrap();
        let p = wait_partition(&c, "old", |p| p.start_offset > 0).await;
        assert_eq!(
            (p.start_offset, p.end_offset),
            (15, 16),
            "only the expired batches go"
        );
        match c.fetch("old", 0, 3, 1 << 20, 0).await {
            Err(ClientError::OffsetOutOfRange { start: 15, end: 16 }) => {}
            other => panic!("expected OffsetOutOfRange [15, 16], got {other:?}"),
        }
        let f = c.fetch("old", 0, 15, 1 << 20, 0).await.unwrap();
        assert_eq!(f.log_start, 15);
        assert!(!f.batches.is_empty());
    });
    broker.stop();
}

#[test]
fn byte_retention_keeps_each_partition_within_its_bound() {
    let dir = temp_dir();
    let rt = runtime();
    let broker = Broker::start(&dir.path().join("data"), FAST_RETENTION);
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        c.create_topic("small", 1, None, Some(5_000), Compression::None)
            .await
            .unwrap();
        for _ in 0..20 {
            c.produce("small", Some(0), &records(10, 100, None), AckMode::Commit)
                .await
                .unwrap();
        }
        let p = wait_partition(&c, "small", |p| p.bytes <= 5_000).await;
        assert_eq!(p.end_offset, 200);
        assert!(p.start_offset > 0 && p.start_offset < 200, "{p:?}");
        assert_eq!(p.start_offset % 10, 0, "whole batches only: {p:?}");
        // Everything from the new start is readable and intact.
        let f = c
            .fetch("small", 0, p.start_offset, 1 << 20, 0)
            .await
            .unwrap();
        let stored = common::records_from(&f.batches, p.start_offset);
        assert!(stored.iter().all(|(_, v)| v.len() == 100));
        assert_eq!(stored.len() as u64, 200 - p.start_offset);
    });
    broker.stop();
}

#[test]
fn deleting_a_topic_removes_records_and_group_offsets() {
    let dir = temp_dir();
    let rt = runtime();
    let broker = Broker::start(&dir.path().join("data"), "");
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        c.produce("gone", Some(0), &records(3, 5, None), AckMode::Commit)
            .await
            .unwrap();
        c.commit_offset("g", "gone", 0, 2).await.unwrap();
        c.delete_topic("gone").await.unwrap();
        assert!(c.list_topics().await.unwrap().is_empty());
        assert!(matches!(
            c.describe_topic("gone").await,
            Err(ClientError::Broker { .. })
        ));
        // Recreated by a produce (auto-create), it starts empty with no group offset.
        c.produce("gone", Some(0), &records(1, 5, None), AckMode::Commit)
            .await
            .unwrap();
        let info = c.describe_topic("gone").await.unwrap();
        assert_eq!(
            (
                info.partition_info[0].start_offset,
                info.partition_info[0].end_offset
            ),
            (0, 1)
        );
        assert_eq!(c.fetch_offset("g", "gone", 0).await.unwrap(), None);
    });
    broker.stop();
}
