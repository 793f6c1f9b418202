//! Writer append throughput against the raw-redb ceiling, both durable (fsync every commit).
//!
//! - `writer/append`: 8 tasks, each keeping 16 single-record appends (64-byte values) in flight
//!   through `Log::append` — group commit, re-batching, metadata, replies.
//! - `writer/append_batch100`: the same with 100 records per append.
//! - `redb_raw/insert_page_fit_batches`: the ceiling — the same records pre-encoded into
//!   page-fit batches, inserted straight into one redb table, 128, 512 or 1,000 records per durable commit (compare like sizes)
//!   (about what the writer groups under this load), quick repair on as in the broker.
//!
//! Throughput = records / elapsed, reported by criterion as elements/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use outpost::config::Config;
use outpost::log::batch::{BatchBuilder, Compression, Push};
use outpost::log::{Log, PendingRecords, Target};

const RECORDS: u64 = 20_000;
const VALUE: [u8; 64] = [b'x'; 64];

fn pending(n: u32) -> PendingRecords {
    let mut b = BatchBuilder::new(Compression::None, 1 << 20);
    let mut p = PendingRecords::default();
    for _ in 0..n {
        assert_eq!(
            b.push(1_700_000_000_000, None, Some(&VALUE), &[]).unwrap(),
            Push::Added
        );
    }
    b.finish_into(&mut p.batches);
    p.records = n;
    p
}

fn open_log(dir: &std::path::Path) -> Log {
    let config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    Log::open(&config).unwrap()
}

fn append_run(rt: &tokio::runtime::Runtime, per_append: u32) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let log = open_log(dir.path());
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    let per_task = RECORDS / 8 / u64::from(per_append);
                    let mut inflight = std::collections::VecDeque::new();
                    for _ in 0..per_task {
                        if inflight.len() >= 16 {
                            let p: outpost::log::Pending<_, _> = inflight.pop_front().unwrap();
                            p.wait().await.unwrap();
                        }
                        let p = log
                            .enqueue_append("bench", Target::Partition(0), pending(per_append))
                            .await
                            .unwrap();
                        inflight.push_back(p);
                    }
                    for p in inflight {
                        p.wait().await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        log.shutdown().await;
        elapsed
    })
}

fn raw_redb_run(per_commit: u32) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = redb::Database::builder();
    builder.set_cache_size(8 << 20);
    let db = builder.create(dir.path().join("raw.redb")).unwrap();
    let table: redb::TableDefinition<(u32, u64), &[u8]> = redb::TableDefinition::new("raw");
    let mut b = BatchBuilder::new(Compression::None, 16_364);
    let mut out = Vec::new();
    let start = Instant::now();
    let mut offset = 0u64;
    while offset < RECORDS {
        let mut txn = db.begin_write().unwrap();
        txn.set_quick_repair(true);
        {
            let mut t = txn.open_table(table).unwrap();
            let mut flush = |b: &mut BatchBuilder, offset: &mut u64| {
                out.clear();
                let info = b.finish_into(&mut out);
                outpost::log::batch::set_base_offset(&mut out, *offset);
                t.insert((0, *offset), out.as_slice()).unwrap();
                *offset += u64::from(info.record_count);
            };
            for _ in 0..per_commit {
                if b.push(1_700_000_000_000, None, Some(&VALUE), &[]).unwrap() == Push::Full {
                    flush(&mut b, &mut offset);
                    b.push(1_700_000_000_000, None, Some(&VALUE), &[]).unwrap();
                }
            }
            flush(&mut b, &mut offset);
        }
        txn.commit().unwrap();
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let mut g = c.benchmark_group("writer");
    g.sample_size(10).throughput(Throughput::Elements(RECORDS));
    g.bench_function("append", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| append_run(&rt, 1)).sum())
    });
    g.bench_function("append_batch100", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| append_run(&rt, 100)).sum())
    });
    g.finish();
    let mut g = c.benchmark_group("redb_raw");
    g.sample_size(10).throughput(Throughput::Elements(RECORDS));
    for per_commit in [128u32, 512, 1000] {
        let name = format!("insert_page_fit_batches/{per_commit}_per_commit");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| raw_redb_run(per_commit)).sum())
        });
    }
    g.finish();
}

criterion_group!(writer, benches);
criterion_main!(writer);
