//! Retention: deleting whole batches by age, by size per partition, and under disk pressure.
//!
//! The selection is pure ([`select_prefix`], [`DiskGuard`]) and unit-tested; the task scans
//! batch headers in read transactions and sends the chosen cut (a new log start offset at a
//! batch boundary) to the writer, which deletes and counts. A partition may become empty: its
//! end offset stays, so offsets are never reused.
//!
//! Disk floor: redb's file never shrinks, and deleted pages are reused by later appends. So
//! when free space falls below the floor, the task caps the stored bytes at 90% of what is
//! stored (deleting the oldest batches of all partitions first); while free space stays below
//! the floor it lowers the cap by 10% per run. The file then stops growing, and a full disk
//! never stops the writer. The cap is lifted once free space is back above 1.5× the floor.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::time::Duration;

use redb::{Database, ReadableDatabase};

use super::batch;
use super::tables;
use super::{Log, StorageError};
use crate::config::RetentionConfig;

/// What a trim removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Batches deleted.
    pub batches: u64,
    /// Records deleted.
    pub records: u64,
    /// Bytes deleted.
    pub bytes: u64,
}

impl Trimmed {
    /// Adds another trim's counts.
    pub fn add(&mut self, other: &Trimmed) {
        self.batches += other.batches;
        self.records += other.records;
        self.bytes += other.bytes;
    }
}

/// A stored batch as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// First offset.
    pub base_offset: u64,
    /// Offset after its last record.
    pub next_offset: u64,
    /// Largest record timestamp (ms), Kafka's criterion for time retention.
    pub max_timestamp_ms: i64,
    /// Stored size.
    pub bytes: u64,
}

/// A partition's retention limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Delete batches whose newest record is older than this many ms.
    pub retention_ms: Option<u64>,
    /// Delete the oldest batches while the partition is larger than this.
    pub retention_bytes: Option<u64>,
}

impl Limits {
    /// Whether batch `b` must go when `remaining` bytes of its partition are stored from `b`
    /// on: its newest record is older than `retention_ms` (Kafka's rule), or the partition
    /// is over `retention_bytes`.
    pub fn must_go(&self, b: &BatchSummary, remaining: u64, now_ms: u64) -> bool {
        let expired = self.retention_ms.is_some_and(|r| {
            let horizon = i64::try_from(now_ms.saturating_sub(r)).unwrap_or(i64::MAX);
            b.max_timestamp_ms < horizon
        });
        let oversized = self.retention_bytes.is_some_and(|r| remaining > r);
        expired || oversized
    }
}

/// Chooses the new log start offset for one partition: the longest prefix of `batches`
/// (oldest first) in which each batch is expired by time, or must go to bring the partition
/// (of `total_bytes`) within its byte limit. `None` when nothing is to be deleted.
pub fn select_prefix(
    batches: impl IntoIterator<Item = BatchSummary>,
    total_bytes: u64,
    now_ms: u64,
    limits: Limits,
) -> Option<u64> {
    let mut remaining = total_bytes;
    let mut cut = None;
    for b in batches {
        if !limits.must_go(&b, remaining, now_ms) {
            break;
        }
        remaining = remaining.saturating_sub(b.bytes);
        cut = Some(b.next_offset);
    }
    cut
}

/// The free-disk floor's memory between runs (see the module doc).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskGuard {
    cap: Option<u64>,
}

impl DiskGuard {
    /// Bytes of the oldest data to delete now, given free space, the floor and stored bytes.
    pub fn plan(&mut self, free: u64, floor: u64, stored: u64) -> u64 {
        if free >= floor.saturating_add(floor / 2) {
            self.cap = None;
            return 0;
        }
        if free >= floor {
            return self.cap.map_or(0, |c| stored.saturating_sub(c));
        }
        let cap = match self.cap {
            Some(c) if stored > c => c,
            Some(c) => c - c / 10,
            None => stored - stored / 10,
        };
        self.cap = Some(cap);
        stored.saturating_sub(cap)
    }
}

/// Free and total bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some((s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize))
}

/// Reads batch summaries of one partition, oldest first, while `keep_going` says so.
fn scan(
    db: &Database,
    topic: &str,
    partition: u32,
    mut keep_going: impl FnMut(&BatchSummary) -> bool,
) -> Result<Vec<BatchSummary>, StorageError> {
    let txn = db.begin_read()?;
    let name = tables::batch_table_name(topic);
    let table = match txn.open_table(tables::batch_table(&name)) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.range((partition, 0)..=(partition, u64::MAX))? {
        let (_, value) = entry?;
        let Ok((h, _)) = batch::parse_header(value.value()) else {
            break;
        };
        let s = BatchSummary {
            base_offset: h.base_offset,
            next_offset: h.next_offset(),
            max_timestamp_ms: h.max_timestamp,
            bytes: value.value().len() as u64,
        };
        if !keep_going(&s) {
            break;
        }
        out.push(s);
    }
    Ok(out)
}

/// One retention pass over every partition. Returns what was deleted.
pub async fn run_once(log: &Log, now_ms: u64, disk_need: u64) -> Trimmed {
    let mut total = Trimmed::default();
    let mut cuts: Vec<(String, u32, u64)> = Vec::new();
    let mut heads: Vec<(String, u32, Vec<BatchSummary>)> = Vec::new();
    for name in log.list_topics() {
        let Ok(desc) = log.describe_topic(&name) else {
            continue;
        };
        let limits = Limits {
            retention_ms: desc.config.retention_ms,
            retention_bytes: desc.config.retention_bytes,
        };
        for (p, meta) in desc.partitions.iter().enumerate() {
            let p = p as u32;
            let (db, topic) = (log.db().clone(), name.clone());
            let total_bytes = meta.bytes;
            // Read headers only as far as retention or the disk floor may cut.
            let scanned = tokio::task::spawn_blocking(move || {
                let mut before = 0u64;
                scan(&db, &topic, p, |s| {
                    let go = limits.must_go(s, total_bytes.saturating_sub(before), now_ms)
                        || before < disk_need;
                    before += s.bytes;
                    go
                })
            })
            .await;
            let Ok(Ok(summaries)) = scanned else { continue };
            if let Some(cut) = select_prefix(summaries.iter().copied(), total_bytes, now_ms, limits)
            {
                cuts.push((name.clone(), p, cut));
            }
            heads.push((name.clone(), p, summaries));
        }
    }
    merge_disk_cuts(&mut cuts, &heads, disk_need);
    for (topic, p, cut) in cuts {
        match log.trim(&topic, p, cut).await {
            Ok(t) => total.add(&t),
            Err(e) => tracing::warn!(topic, partition = p, error = %e, "retention trim failed"),
        }
    }
    total
}

/// Adds (or deepens) cuts so that at least `need` bytes go, oldest batches of all partitions
/// first (a k-way merge on each partition's next batch timestamp).
fn merge_disk_cuts(
    cuts: &mut Vec<(String, u32, u64)>,
    heads: &[(String, u32, Vec<BatchSummary>)],
    need: u64,
) {
    if need == 0 {
        return;
    }
    let mut heap: BinaryHeap<Reverse<(i64, usize, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.2.first().map(|b| Reverse((b.max_timestamp_ms, i, 0))))
        .collect();
    let mut deepest: Vec<Option<u64>> = vec![None; heads.len()];
    let mut freed = 0;
    while freed < need {
        let Some(Reverse((_, i, j))) = heap.pop() else {
            break;
        };
        let b = heads[i].2[j];
        freed += b.bytes;
        deepest[i] = Some(b.next_offset);
        if let Some(next) = heads[i].2.get(j + 1) {
            heap.push(Reverse((next.max_timestamp_ms, i, j + 1)));
        }
    }
    for (i, cut) in deepest.into_iter().enumerate() {
        let Some(cut) = cut else { continue };
        let (topic, p, _) = &heads[i];
        match cuts.iter_mut().find(|c| &c.0 == topic && c.1 == *p) {
            Some(c) => c.2 = c.2.max(cut),
            None => cuts.push((topic.clone(), *p, cut)),
        }
    }
}

/// Runs retention every `check_interval_ms` until `stop` fires.
pub async fn run(
    log: Log,
    config: RetentionConfig,
    data_dir: std::path::PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut guard = DiskGuard::default();
    let mut tick = tokio::time::interval(Duration::from_millis(config.check_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let need = disk_need(&log, &config, &data_dir, &mut guard);
        let t = run_once(&log, super::now_ms(), need).await;
        if t.batches > 0 {
            tracing::info!(
                batches = t.batches,
                records = t.records,
                bytes = t.bytes,
                disk_pressure = need > 0,
                "retention deleted batches"
            );
        }
    }
}

fn disk_need(log: &Log, config: &RetentionConfig, dir: &Path, guard: &mut DiskGuard) -> u64 {
    let Some((free, total)) = disk_space(dir) else {
        return 0;
    };
    let floor = config
        .min_free_bytes
        .max(total / 100 * u64::from(config.min_free_percent));
    let stored: u64 = log
        .list_topics()
        .iter()
        .filter_map(|t| log.describe_topic(t).ok())
        .flat_map(|d| d.partitions)
        .map(|m| m.bytes)
        .sum();
    let need = guard.plan(free, floor, stored);
    if need > 0 {
        tracing::warn!(
            free,
            floor,
            stored,
            need,
            "free disk below the floor: deleting the oldest data"
        );
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(base: u64, n: u64, ts: i64, bytes: u64) -> BatchSummary {
        BatchSummary {
            base_offset: base,
            next_offset: base + n,
            max_timestamp_ms: ts,
            bytes,
        }
    }

    const NONE: Limits = Limits {
        retention_ms: None,
        retention_bytes: None,
    };

    #[test]
    fn time_retention_cuts_expired_prefix_only() {
        let batches = [
            b(0, 10, 100, 50),
            b(10, 10, 200, 50),
            b(20, 10, 900, 50),
            b(30, 5, 150, 50),
        ];
        let limits = Limits {
            retention_ms: Some(500),
            ..NONE
        };
        // now 1000: horizon 500; batches 0 and 1 are expired, batch 2 is not, so 3 stays too.
        assert_eq!(select_prefix(batches, 200, 1000, limits), Some(20));
        assert_eq!(select_prefix(batches, 200, 300, limits), None);
    }

    #[test]
    fn byte_retention_keeps_partition_within_bound() {
        let batches = [b(0, 10, 0, 100), b(10, 10, 0, 100), b(20, 10, 0, 100)];
        let limits = Limits {
            retention_bytes: Some(150),
            ..NONE
        };
        assert_eq!(select_prefix(batches, 300, 0, limits), Some(20));
        assert_eq!(select_prefix(batches, 300, 0, NONE), None);
        let all = Limits {
            retention_bytes: Some(0),
            ..NONE
        };
        assert_eq!(select_prefix(batches, 300, 0, all), Some(30));
    }

    #[test]
    fn disk_guard_caps_then_tightens_then_releases() {
        let mut g = DiskGuard::default();
        assert_eq!(g.plan(1000, 100, 5000), 0);
        assert_eq!(g.plan(50, 100, 5000), 500); // cap 4500
        assert_eq!(g.plan(50, 100, 4500), 450); // still below the floor: cap 4050
        assert_eq!(g.plan(120, 100, 4600), 550); // above floor, under hysteresis: hold the cap
        assert_eq!(g.plan(200, 100, 4600), 0); // released
    }

    #[test]
    fn disk_cuts_take_oldest_across_partitions() {
        let heads = vec![
            ("a".to_owned(), 0, vec![b(0, 1, 10, 100), b(1, 1, 40, 100)]),
            ("b".to_owned(), 0, vec![b(0, 1, 20, 100), b(1, 1, 30, 100)]),
        ];
        let mut cuts = Vec::new();
        merge_disk_cuts(&mut cuts, &heads, 250);
        cuts.sort();
        assert_eq!(cuts, vec![("a".to_owned(), 0, 1), ("b".to_owned(), 0, 2)]);
    }
}
