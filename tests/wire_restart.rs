//! Durability across restarts, typed out-of-range errors, and one broker per data directory.

mod common;

use common::{runtime, temp_dir, Broker};
use outpost::client::{Client, ClientError, NewRecord};
use outpost_firmware::{AckMode, Compression};

fn rec(v: &str) -> NewRecord {
    NewRecord {
        value: v.as_bytes().to_vec(),
        ..NewRecord::default()
    }
}

#[test]
fn restart_keeps_topics_records_and_group_offsets() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let rt = runtime();
    let broker = Broker::start(&data, "");
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        c.create_topic("kept", 3, Some(3_600_000), None, Compression::Zstd)
            .await
            .unwrap();
        for p in 0..3 {
            let recs: Vec<_> = (0..100).map(|i| rec(&format!("p{p}-{i}"))).collect();
            let ack = c
                .produce("kept", Some(p), &recs, AckMode::Commit)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((ack.partition, ack.base_offset, ack.count), (p, 0, 100));
        }
        c.commit_offset("g1", "kept", 2, 42).await.unwrap();
    });
    broker.stop();

    let broker = Broker::start(&data, "");
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        let info = c.describe_topic("kept").await.unwrap();
        assert_eq!(info.partitions, 3);
        assert_eq!(info.retention_ms, Some(3_600_000));
        assert_eq!(info.compression, Compression::Zstd);
        for p in &info.partition_info {
            assert_eq!((p.start_offset, p.end_offset), (0, 100));
        }
        assert_eq!(c.fetch_offset("g1", "kept", 2).await.unwrap(), Some(42));
        assert_eq!(c.fetch_offset("g1", "kept", 1).await.unwrap(), None);
        let f = c.fetch("kept", 1, 57, 1 << 20, 0).await.unwrap();
        let values: Vec<(u64, String)> = common::records_from(&f.batches, 57)
            .into_iter()
            .map(|(o, v)| (o, String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(values.len(), 43);
        assert_eq!(values[0], (57, "p1-57".to_owned()));
        assert_eq!(values[42], (99, "p1-99".to_owned()));
    });
    broker.stop();
}

#[test]
fn out_of_range_fetch_carries_the_valid_range() {
    let dir = temp_dir();
    let rt = runtime();
    let broker = Broker::start(&dir.path().join("data"), "");
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        c.produce("r", Some(0), &[rec("a"), rec("b")], AckMode::Commit)
            .await
            .unwrap();
        match c.fetch("r", 0, 7, 1024, 0).await {
            Err(ClientError::OffsetOutOfRange { start: 0, end: 2 }) => {}
            other => panic!("expected OffsetOutOfRange [0, 2], got {other:?}"),
        }
        // Reading at the end returns nothing (and waits at most max_wait).
        let f = c.fetch("r", 0, 2, 1024, 50).await.unwrap();
        assert!(f.batches.is_empty());
        assert_eq!(f.high_watermark, 2);
        match c.fetch("r", 5, 0, 1024, 0).await {
            Err(ClientError::Broker { code, .. }) => {
                assert_eq!(code, outpost_firmware::ErrorCode::UNKNOWN_PARTITION)
            }
            other => panic!("expected UNKNOWN_PARTITION, got {other:?}"),
        }
    });
}

#[test]
fn long_poll_fetch_wakes_on_new_data() {
    let dir = temp_dir();
    let rt = runtime();
    let broker = Broker::start(&dir.path().join("data"), "");
    rt.block_on(async {
        let c = Client::connect(&broker.addr, "t").await.unwrap();
        c.produce("lp", Some(0), &[rec("first")], AckMode::Commit)
            .await
            .unwrap();
        let reader = Client::connect(&broker.addr, "r").await.unwrap();
        let wait = tokio::spawn(async move { reader.fetch("lp", 0, 1, 1024, 20_000).await });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        c.produce("lp", Some(0), &[rec("second")], AckMode::Commit)
            .await
            .unwrap();
        let f = tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(f.high_watermark, 2);
        assert!(!f.batches.is_empty());
    });
}

#[test]
fn second_broker_on_the_same_data_dir_exits_cleanly() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let first = Broker::start(&data, "");
    let err = match Broker::try_start(&data, "") {
        Ok(_) => panic!("a second broker started on a data dir in use"),
        Err(stderr) => stderr,
    };
    assert!(err.contains("in use by another process"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    first.stop();
}
