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
            true
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
    assert_eq!(
        a.partition,
        outpost_firmware::partition::partition_for_key(b"sensor-9", 6)
    );
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

/// Creates a one-partition topic with `retention` holding `n` one-record batches; returns
/// the size of one batch (records are equal, so batches are too).
async fn held_topic(log: &Log, name: &str, retention: retention::Limits, n: u64) -> u64 {
    let spec = TopicSpec {
        partitions: 1,
        retention_ms: retention.retention_ms,
        retention_bytes: retention.retention_bytes,
        compression: Compression::None,
    };
    log.create_topic(name, spec).await.unwrap();
    for _ in 0..n {
        // One append per commit: one batch per record, so every offset is a batch boundary.
        append_one(log, name).await.unwrap();
    }
    let meta = log.partition_meta(name, 0).unwrap();
    assert_eq!(meta.batches, n);
    meta.bytes / n
}

async fn append_one(log: &Log, topic: &str) -> Result<Appended, AppendError> {
    log.append(topic, Target::Partition(0), pending(&[b"r"]))
        .await
}

fn start(log: &Log, topic: &str) -> u64 {
    log.partition_meta(topic, 0).unwrap().start_offset
}

/// Topic `h` with `n` batches and room for the last `batches` of them.
async fn byte_limited(log: &Log, batches: u64, n: u64) {
    let size = held_topic(log, "probe", NO_LIMITS, 1).await;
    let limits = retention::Limits {
        retention_bytes: Some(size * batches),
        ..NO_LIMITS
    };
    assert_eq!(held_topic(log, "h", limits, n).await, size);
}

const NO_LIMITS: retention::Limits = retention::Limits {
    retention_ms: None,
    retention_bytes: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_keeps_byte_retention_below_its_floor_and_blocks_until_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    // Six batches, room for two: the byte limit wants offsets 0..4 gone.
    let log = Log::open(&config(dir.path())).unwrap();
    byte_limited(&log, 2, 6).await;
    log.hold_retention("route", "h", 0, Some(2));
    retention::run_once(&log, now_ms(), 0).await;
    // Batches below the floor went; the held ones stayed.
    assert_eq!(start(&log, "h"), 2);
    assert_eq!(log.partition_meta("h", 0).unwrap().batches, 4);
    assert!(matches!(
        append_one(&log, "h").await,
        Err(AppendError::Full { ref topic, partition: 0 }) if topic == "h"
    ));
    // Still behind what retention waits for (4): refused; there: accepted at once.
    log.hold_retention("route", "h", 0, Some(3));
    assert!(matches!(
        append_one(&log, "h").await,
        Err(AppendError::Full { .. })
    ));
    log.hold_retention("route", "h", 0, Some(4));
    assert_eq!(append_one(&log, "h").await.unwrap().base_offset, 6);
    // The next pass deletes up to the floor and, needing 0..5 gone, blocks again.
    retention::run_once(&log, now_ms(), 0).await;
    assert_eq!(start(&log, "h"), 4);
    assert!(matches!(
        append_one(&log, "h").await,
        Err(AppendError::Full { .. })
    ));
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_holds_unblocks_and_the_lowest_holder_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    byte_limited(&log, 2, 6).await;
    log.hold_retention("slow", "h", 0, Some(1));
    log.hold_retention("fast", "h", 0, Some(5));
    retention::run_once(&log, now_ms(), 0).await;
    assert_eq!(start(&log, "h"), 1);
    assert!(matches!(
        append_one(&log, "h").await,
        Err(AppendError::Full { .. })
    ));
    // The other holder (5) is past the wanted cut (4): releasing `slow` unblocks.
    log.hold_retention("slow", "h", 0, None);
    assert_eq!(append_one(&log, "h").await.unwrap().base_offset, 6);
    log.hold_retention("fast", "h", 0, None);
    // With no hold left, nothing blocks and retention goes back to the byte limit alone.
    retention::run_once(&log, now_ms(), 0).await;
    assert_eq!(start(&log, "h"), 5);
    append_one(&log, "h").await.unwrap();
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_are_kept_for_a_hold_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    // Records are stamped 2023; a one-second retention has expired them all.
    let limits = retention::Limits {
        retention_ms: Some(1000),
        ..NO_LIMITS
    };
    let log = Log::open(&config(dir.path())).unwrap();
    held_topic(&log, "t", limits, 4).await;
    log.hold_retention("route", "t", 0, Some(2));
    retention::run_once(&log, now_ms(), 0).await;
    assert_eq!(start(&log, "t"), 2);
    assert_eq!(append_one(&log, "t").await.unwrap().base_offset, 4);
    log.hold_retention("route", "t", 0, None);
    retention::run_once(&log, now_ms(), 0).await;
    assert_eq!(start(&log, "t"), 5);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_pressure_blocks_a_held_partition_and_takes_the_bytes_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    let size = held_topic(&log, "d1", NO_LIMITS, 3).await;
    held_topic(&log, "d2", NO_LIMITS, 3).await;
    log.hold_retention("route", "d1", 0, Some(1));
    // Equal timestamps: the merge takes `d1` first, is stopped by its hold after one
    // batch, and frees the rest from `d2`.
    retention::run_once(&log, now_ms(), 3 * size).await;
    assert_eq!(start(&log, "d1"), 1);
    assert_eq!(start(&log, "d2"), 2);
    assert!(matches!(
        append_one(&log, "d1").await,
        Err(AppendError::Full { .. })
    ));
    append_one(&log, "d2").await.unwrap();
    // A pass without pressure finds nothing to wait for: the block is lifted.
    retention::run_once(&log, now_ms(), 0).await;
    append_one(&log, "d1").await.unwrap();
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_never_deletes_at_or_above_a_hold_set_after_the_cut_was_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&config(dir.path())).unwrap();
    held_topic(&log, "w", NO_LIMITS, 4).await;
    log.hold_retention("route", "w", 0, Some(1));
    let t = log.trim("w", 0, 4).await.unwrap();
    assert_eq!((t.batches, start(&log, "w")), (1, 1));
    log.shutdown().await;
}
