//! Tests of the log through its handle: group commit, ordering, re-batching, codecs, modes.

use super::batch::{self, BatchBuilder, Compression, PAGE_FIT_LARGE};
use super::*;
use crate::config::{Config, Fsync};

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    }
}

fn pending(values: &[&[u8]]) -> PendingRecords {
    let mut b = BatchBuilder::new(Compression::None, 1 << 20);
    let mut p = PendingRecords::default();
    for v in values {
        b.push(1_700_000_000_000, None, Some(v), &[("h", Some(b"1"))])
            .unwrap();
        p.records += 1;
    }
    b.finish_into(&mut p.batches);
    p
}

/// Every record of a partition: (offset, value).
async fn read_all(log: &Log, topic: &str, partition: u32) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = 0;
    let mut scratch = Vec::new();
    loop {
        let r = log.read(topic, partition, next, 1 << 20).await.unwrap();
        if r.batches.is_empty() {
            return out;
        }
        reader::visit_records(&r.batches, next, &mut scratch, 1 << 24, |rec| {
            out.push((rec.offset, rec.value.unwrap().to_vec()));
            next = rec.offset + 1;
        })
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_disjoint_contiguous_ranges_in_send_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut acks = Vec::new();
                let mut queued = Vec::new();
                for i in 0..50u8 {
                    let value = [t, i];
                    let p = log
                        .enqueue_append("c", Target::Partition(0), pending(&[&value, &value]))
                        .await
                        .unwrap();
                    queued.push(p);
                }
                for p in queued {
                    acks.push(p.wait().await.unwrap());
                }
                (t, acks)
            })
        })
        .collect();
    let mut by_offset = std::collections::BTreeMap::new();
    for task in tasks {
        let (t, acks) = task.await.unwrap();
        let mut last = None;
        for (i, a) in acks.iter().enumerate() {
            assert_eq!(a.count, 2);
            // One task's appends, queued in order, are stored in order.
            assert!(last.is_none_or(|l| a.base_offset > l));
            last = Some(a.base_offset);
            by_offset.insert(a.base_offset, [t, i as u8]);
        }
    }
    let stored = read_all(&log, "c", 0).await;
    assert_eq!(stored.len(), 800);
    for (offset, value) in &stored {
        let base = offset - offset % 2;
        assert_eq!(
            value.as_slice(),
            by_offset[&base].as_slice(),
            "offset {offset}"
        );
    }
    assert!(
        log.stats().commits.load(Ordering::Relaxed) < 400,
        "group commit should batch requests"
    );
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_appends_are_rebatched_to_page_fit_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    let value = [7u8; 64];
    let queued: Vec<_> = enqueue_many(&log, 2000, &value).await;
    for p in queued {
        p.wait().await.unwrap();
    }
    let r = log.read("pf", 0, 0, u32::MAX).await.unwrap();
    let mut batches = 0;
    for b in batch::Batches::new(&r.batches) {
        let (_, bytes) = b.unwrap();
        assert!(
            bytes.len() <= PAGE_FIT_LARGE,
            "batch of {} bytes",
            bytes.len()
        );
        batches += 1;
    }
    // 2000 × ~80 bytes ≈ 160 KB: about 10 full batches, not 2000 tiny ones.
    assert!(batches < 100, "{batches} batches for 2000 records");
    assert_eq!(read_all(&log, "pf", 0).await.len(), 2000);
    log.shutdown().await;
}

async fn enqueue_many(log: &Log, n: usize, value: &[u8]) -> Vec<Pending<Appended, AppendError>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            log.enqueue_append("pf", Target::Partition(0), pending(&[value]))
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_topics_store_compressed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("z-{}", codec.name());
        let spec = TopicSpec {
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            compression: codec,
        };
        log.create_topic(&topic, spec).await.unwrap();
        let values: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("temperature={i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        log.append(&topic, Target::Any, pending(&refs))
            .await
            .unwrap();
        let r = log.read(&topic, 0, 0, u32::MAX).await.unwrap();
        let (header, _) = batch::parse_header(&r.batches).unwrap();
        assert_eq!(header.compression(), Some(codec));
        let stored = read_all(&log, &topic, 0).await;
        assert_eq!(
            stored.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
            values
        );
    }
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pick_partitions_and_unknown_partitions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    let spec = TopicSpec {
        partitions: 6,
        retention_ms: None,
        retention_bytes: None,
        compression: Compression::None,
    };
    log.create_topic("k", spec).await.unwrap();
    let a = log
        .append("k", Target::Key(b"sensor-9"), pending(&[b"x"]))
        .await
        .unwrap();
    assert_eq!(a.partition, partitioner::partition_for_key(b"sensor-9", 6));
    let err = log
        .append("k", Target::Partition(6), pending(&[b"x"]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::UnknownPartition {
            partition: 6,
            partitions: 6,
            ..
        }
    ));
    let spread: std::collections::HashSet<u32> = partitions_of_unkeyed(&log).await;
    assert_eq!(spread.len(), 6, "round-robin reaches every partition");
    assert!(matches!(
        log.create_topic("k", spec).await,
        Err(TopicError::Exists(_))
    ));
    log.shutdown().await;
}

async fn partitions_of_unkeyed(log: &Log) -> std::collections::HashSet<u32> {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..12 {
        seen.insert(
            log.append("k", Target::Any, pending(&[b"y"]))
                .await
                .unwrap()
                .partition,
        );
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mode_commits_without_fsync_and_syncs_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.log.fsync = Fsync::Interval;
    c.log.fsync_interval_ms = 50;
    let log = Log::open(&c).unwrap();
    for _ in 0..20 {
        log.append("i", Target::Partition(0), pending(&[b"v"]))
            .await
            .unwrap();
    }
    let stats = log.stats();
    let commits = stats.commits.load(Ordering::Relaxed);
    assert!(stats.durable_commits.load(Ordering::Relaxed) < commits);
    // Idle: the writer makes the pending commits durable on its own (bounded wait).
    let mut durable = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if stats.commits.load(Ordering::Relaxed) > commits
            && stats.durable_commits.load(Ordering::Relaxed) > 0
        {
            durable = true;
            break;
        }
    }
    assert!(durable, "no durable commit while idle");
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_queued_work_and_refuses_later_requests() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    let queued = log
        .enqueue_append("s", Target::Partition(0), pending(&[b"last"]))
        .await
        .unwrap();
    let log2 = log.clone();
    let stop = tokio::spawn(async move { log2.shutdown().await });
    assert!(queued.wait().await.is_ok());
    stop.await.unwrap();
    assert!(matches!(
        log.append("s", Target::Partition(0), pending(&[b"late"]))
            .await,
        Err(AppendError::ShuttingDown)
    ));
    drop(log);
    let log = Log::open(&config(dir.path())).unwrap();
    assert_eq!(read_all(&log, "s", 0).await, vec![(0, b"last".to_vec())]);
    log.shutdown().await;
}

#[test]
fn a_newer_file_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE_NAME);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert(tables::META_FORMAT_VERSION, 99u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async { Log::open(&config(dir.path())).err().unwrap() });
    assert!(
        matches!(err, OpenError::NewerFormat { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade Outpost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_commit_with_their_append_and_only_if_it_succeeds() {
    use tables::StateTable;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log.auto_create_topics = false;
    let log = Log::open(&cfg).unwrap();
    let spec = TopicSpec {
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        compression: Compression::None,
    };
    log.create_topic("t", spec).await.unwrap();
    let put = |k: &[u8]| StateOp::Put {
        table: StateTable::MqttQueue,
        key: k.to_vec(),
        value: b"v".to_vec(),
    };
    // Stored with a successful append.
    log.enqueue_append_with_state(
        "t",
        Target::Partition(0),
        pending(&[b"a"]),
        vec![put(b"k1")],
    )
    .await
    .unwrap()
    .wait()
    .await
    .unwrap();
    // Not stored with a refused one (unknown topic, no auto-create).
    let refused = log
        .enqueue_append_with_state(
            "nope",
            Target::Partition(0),
            pending(&[b"b"]),
            vec![put(b"k2")],
        )
        .await;
    let refused = match refused {
        Ok(p) => p.wait().await,
        Err(e) => Err(e),
    };
    assert!(refused.is_err());
    // Standalone changes, in order: a later delete removes an earlier put; ranges work.
    log.enqueue_state(vec![
        put(b"k3"),
        put(b"r\x00a"),
        put(b"r\x00b"),
        StateOp::Delete {
            table: StateTable::MqttQueue,
            key: b"k3".to_vec(),
        },
        StateOp::DeleteRange {
            table: StateTable::MqttQueue,
            start: b"r\x00".to_vec(),
            end: b"r\x01".to_vec(),
        },
    ])
    .await
    .unwrap()
    .await
    .unwrap();
    let keys: Vec<Vec<u8>> = log
        .read_state(StateTable::MqttQueue)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"k1".to_vec()]);
    log.shutdown().await;
    drop(log);
    // And they survive a reopen.
    let log = Log::open(&cfg).unwrap();
    assert_eq!(log.read_state(StateTable::MqttQueue).unwrap().len(), 1);
    log.shutdown().await;
}
