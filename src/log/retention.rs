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
//!
//! Holds (bridge overflow = refuse): a bridge route with `overflow = "refuse"` must never lose
//! records to retention, so it holds its partitions at its checkpoint
//! ([`Log::hold_retention`]); a partition's floor is the lowest offset of its holders. A cut
//! never passes the floor: only batches that end at or below it (`next_offset <= floor`) go,
//! for time, byte and disk-pressure cuts alike, and the writer clamps every trim to the floor
//! again when it applies it, so a hold set after the cut was chosen still counts. When the
//! clamp keeps back a batch that the byte limit (`retention_bytes`) or the disk floor needed
//! gone, the partition is blocked until W, the cut retention wanted (the `next_offset` of the
//! last such batch; under disk pressure, of the first held batch the merge reached, whose
//! bytes the other partitions give instead). While the floor is below W, appends to the
//! partition fail with [`AppendError::Full`](super::AppendError::Full); a hold that moves the
//! floor to W or beyond, or releases the last holder below it, lets them in again at once. A
//! pass that no longer needs held records gone lifts the block. Time retention
//! (`retention_ms`) never blocks: expired records a bridge has not forwarded are kept past
//! their retention until it has. Holds and blocks live in memory: after a restart, nothing
//! is held until each route holds again when its bridge starts (the server starts bridges
//! before retention's first pass).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
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

/// The partition number of a hold on every partition of a topic (the bridge's contract).
pub use outpost_bridge::ALL_PARTITIONS;

/// Retention holds of bridge routes with `overflow = "refuse"`, and the partitions they block
/// (see the module doc). Shared by the [`Log`] handle, the writer and the retention task; kept
/// in memory only (a bridge sets its holds again when it starts).
#[derive(Debug, Default)]
pub(crate) struct Holds {
    /// Partitions blocked now. Appends look at the map only while this is not 0.
    blocked: AtomicUsize,
    topics: Mutex<HashMap<String, HashMap<u32, PartitionHolds>>>,
}

/// The holds on one partition.
#[derive(Debug, Default)]
struct PartitionHolds {
    /// `(holder, offset)`: a partition has a few holders at most, so a `Vec`.
    holders: Vec<(String, u64)>,
    /// Appends are refused while the floor is below this (only ever `Some` while it is).
    blocked_until: Option<u64>,
}

impl PartitionHolds {
    /// The lowest offset a holder keeps.
    fn floor(&self) -> Option<u64> {
        self.holders.iter().map(|h| h.1).min()
    }
}

impl Holds {
    /// Sets (`Some`) or releases (`None`) `holder`'s hold; unblocks the partition at once when
    /// the floor reaches the offset retention waits for.
    pub(crate) fn set(&self, holder: &str, topic: &str, partition: u32, offset: Option<u64>) {
        let mut topics = self.lock();
        match offset {
            Some(offset) => {
                if !topics.contains_key(topic) {
                    topics.insert(topic.to_owned(), HashMap::new());
                }
                // Inserted just above when missing.
                let parts = topics.get_mut(topic).expect("topic entry exists");
                let p = parts.entry(partition).or_default();
                match p.holders.iter_mut().find(|h| h.0 == holder) {
                    Some(h) => h.1 = offset,
                    None => p.holders.push((holder.to_owned(), offset)),
                }
                let until = p.blocked_until;
                self.settle(topic, partition, p, until);
            }
            None => {
                let Some(parts) = topics.get_mut(topic) else {
                    return;
                };
                let Some(p) = parts.get_mut(&partition) else {
                    return;
                };
                p.holders.retain(|h| h.0 != holder);
                let until = p.blocked_until;
                self.settle(topic, partition, p, until);
                if p.holders.is_empty() {
                    parts.remove(&partition);
                }
                if parts.is_empty() {
                    topics.remove(topic);
                }
            }
        }
    }

    /// The lowest offset any holder keeps in `topic`/`partition` (`None`: no hold). A hold on
    /// partition [`ALL_PARTITIONS`] covers every partition of the topic (a bridge places one
    /// for a topic that does not exist yet, so nothing of it is deleted before the bridge has
    /// seen its partitions); it keeps records but never blocks appends.
    pub(crate) fn floor(&self, topic: &str, partition: u32) -> Option<u64> {
        let topics = self.lock();
        let parts = topics.get(topic)?;
        let own = parts.get(&partition).and_then(PartitionHolds::floor);
        let all = parts.get(&ALL_PARTITIONS).and_then(PartitionHolds::floor);
        match (own, all) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `new_start` lowered to the floor of `topic`/`partition`. A trim deletes only batches
    /// that end at or below its new start, so none at or above the floor goes.
    pub(crate) fn clamp(&self, topic: &str, partition: u32, new_start: u64) -> u64 {
        self.floor(topic, partition)
            .map_or(new_start, |floor| new_start.min(floor))
    }

    /// Whether appends to `topic`/`partition` are refused now. One atomic load while no
    /// partition is blocked.
    pub(crate) fn is_blocked(&self, topic: &str, partition: u32) -> bool {
        // Relaxed: a stale value only lets an append race a block being set or lifted, and
        // those race with appends in any case.
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.lock()
            .get(topic)
            .and_then(|parts| parts.get(&partition))
            .is_some_and(|p| p.blocked_until.is_some())
    }

    /// Replaces every block with those of one retention run: `wanted` holds, per partition,
    /// the cut the byte limit or the disk floor needed but a hold kept back.
    fn set_blocks(&self, wanted: &[(String, u32, u64)]) {
        let mut topics = self.lock();
        for (topic, parts) in topics.iter_mut() {
            for (&partition, p) in parts.iter_mut() {
                let want = wanted
                    .iter()
                    .find(|w| &w.0 == topic && w.1 == partition)
                    .map(|w| w.2);
                self.settle(topic, partition, p, want);
            }
        }
    }

    /// Blocks `p` until its floor reaches `want`, or unblocks it when the floor is already
    /// there (or there is nothing to wait for); keeps the blocked count in step. Called with
    /// the map locked.
    fn settle(&self, topic: &str, partition: u32, p: &mut PartitionHolds, want: Option<u64>) {
        let floor = p.floor();
        let next = want.filter(|&w| floor.is_some_and(|f| f < w));
        match (p.blocked_until.is_some(), next) {
            (false, Some(until)) => {
                self.blocked.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    topic,
                    partition,
                    until,
                    floor,
                    "partition full: refusing appends until its bridge forwards up to `until`"
                );
            }
            (true, None) => {
                self.blocked.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(topic, partition, floor, "partition accepts appends again");
            }
            _ => {}
        }
        p.blocked_until = next;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u32, PartitionHolds>>> {
        // Every change under the lock is a plain field write; a panic cannot leave it torn.
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }
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

/// The deepest cut at or below both `cut` and `floor`: the `next_offset` of the last of
/// `batches` (oldest first) that ends there. `None` when not even the first batch may go.
pub fn clamp_cut(batches: &[BatchSummary], cut: u64, floor: Option<u64>) -> Option<u64> {
    let limit = floor.map_or(cut, |f| cut.min(f));
    batches
        .iter()
        .map(|b| b.next_offset)
        .take_while(|&n| n <= limit)
        .last()
}

/// One partition's oldest batches (as far as retention may cut) and its hold, for one run.
#[derive(Debug)]
struct Head {
    topic: String,
    partition: u32,
    batches: Vec<BatchSummary>,
    /// Lowest offset a bridge in refuse mode keeps.
    floor: Option<u64>,
}

/// What one run decided: cuts to send, and blocks (the cut a hold kept back, per partition).
#[derive(Debug, Default)]
struct Plan {
    cuts: Vec<(String, u32, u64)>,
    blocks: Vec<(String, u32, u64)>,
}

impl Plan {
    /// Time and byte retention of one partition, clamped to its hold. Only the byte limit
    /// blocks: records kept past `retention_ms` for a bridge are simply kept.
    fn add_limits(&mut self, head: &Head, total_bytes: u64, now_ms: u64, limits: Limits) {
        let batches = head.batches.iter().copied();
        let wanted = select_prefix(batches.clone(), total_bytes, now_ms, limits);
        if let Some(cut) = wanted.and_then(|c| clamp_cut(&head.batches, c, head.floor)) {
            self.cuts.push((head.topic.clone(), head.partition, cut));
        }
        let bytes_only = Limits {
            retention_ms: None,
            ..limits
        };
        if let (Some(floor), Some(needed)) = (
            head.floor,
            select_prefix(batches, total_bytes, now_ms, bytes_only),
        ) {
            if floor < needed {
                self.blocks
                    .push((head.topic.clone(), head.partition, needed));
            }
        }
    }
}

/// One retention pass over every partition. Returns what was deleted.
pub async fn run_once(log: &Log, now_ms: u64, disk_need: u64) -> Trimmed {
    let mut total = Trimmed::default();
    let mut plan = Plan::default();
    let mut heads: Vec<Head> = Vec::new();
    let holds = log.holds();
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
            let Ok(Ok(batches)) = scanned else { continue };
            let head = Head {
                floor: holds.floor(&name, p),
                topic: name.clone(),
                partition: p,
                batches,
            };
            plan.add_limits(&head, total_bytes, now_ms, limits);
            heads.push(head);
        }
    }
    merge_disk_cuts(&mut plan, &heads, disk_need);
    holds.set_blocks(&plan.blocks);
    for (topic, p, cut) in plan.cuts {
        match log.trim(&topic, p, cut).await {
            Ok(t) => total.add(&t),
            Err(e) => tracing::warn!(topic, partition = p, error = %e, "retention trim failed"),
        }
    }
    total
}

/// Adds (or deepens) cuts so that at least `need` bytes go, oldest batches of all partitions
/// first (a k-way merge on each partition's next batch timestamp). A held batch stops its
/// partition, which is blocked until its bridge forwards that batch; the other partitions
/// give the bytes instead.
fn merge_disk_cuts(plan: &mut Plan, heads: &[Head], need: u64) {
    if need == 0 {
        return;
    }
    let mut heap: BinaryHeap<Reverse<(i64, usize, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            h.batches
                .first()
                .map(|b| Reverse((b.max_timestamp_ms, i, 0)))
        })
        .collect();
    let mut deepest: Vec<Option<u64>> = vec![None; heads.len()];
    let mut freed = 0;
    while freed < need {
        let Some(Reverse((_, i, j))) = heap.pop() else {
            break;
        };
        let b = heads[i].batches[j];
        if heads[i].floor.is_some_and(|f| b.next_offset > f) {
            deepen(&mut plan.blocks, &heads[i], b.next_offset);
            continue;
        }
        freed += b.bytes;
        deepest[i] = Some(b.next_offset);
        if let Some(next) = heads[i].batches.get(j + 1) {
            heap.push(Reverse((next.max_timestamp_ms, i, j + 1)));
        }
    }
    for (i, cut) in deepest.into_iter().enumerate() {
        if let Some(cut) = cut {
            deepen(&mut plan.cuts, &heads[i], cut);
        }
    }
}

/// Sets `head`'s entry in `list` to at least `offset`.
fn deepen(list: &mut Vec<(String, u32, u64)>, head: &Head, offset: u64) {
    match list
        .iter_mut()
        .find(|c| c.0 == head.topic && c.1 == head.partition)
    {
        Some(c) => c.2 = c.2.max(offset),
        None => list.push((head.topic.clone(), head.partition, offset)),
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

    fn head(topic: &str, batches: Vec<BatchSummary>, floor: Option<u64>) -> Head {
        Head {
            topic: topic.to_owned(),
            partition: 0,
            batches,
            floor,
        }
    }

    #[test]
    fn disk_cuts_take_oldest_across_partitions() {
        let heads = vec![
            head("a", vec![b(0, 1, 10, 100), b(1, 1, 40, 100)], None),
            head("b", vec![b(0, 1, 20, 100), b(1, 1, 30, 100)], None),
        ];
        let mut plan = Plan::default();
        merge_disk_cuts(&mut plan, &heads, 250);
        plan.cuts.sort();
        assert_eq!(
            plan.cuts,
            vec![("a".to_owned(), 0, 1), ("b".to_owned(), 0, 2)]
        );
        assert!(plan.blocks.is_empty());
    }

    #[test]
    fn disk_cuts_stop_at_a_hold_block_it_and_take_the_bytes_elsewhere() {
        let heads = vec![
            head("a", vec![b(0, 1, 10, 100), b(1, 1, 20, 100)], Some(1)),
            head("b", vec![b(0, 1, 30, 100), b(1, 1, 40, 100)], None),
        ];
        let mut plan = Plan::default();
        merge_disk_cuts(&mut plan, &heads, 250);
        plan.cuts.sort();
        assert_eq!(
            plan.cuts,
            vec![("a".to_owned(), 0, 1), ("b".to_owned(), 0, 2)]
        );
        assert_eq!(plan.blocks, vec![("a".to_owned(), 0, 2)]);
    }

    #[test]
    fn cuts_are_clamped_to_the_last_batch_boundary_at_or_below_the_floor() {
        let batches = [b(0, 10, 0, 1), b(10, 10, 0, 1), b(20, 10, 0, 1)];
        assert_eq!(clamp_cut(&batches, 30, None), Some(30));
        assert_eq!(clamp_cut(&batches, 30, Some(25)), Some(20));
        assert_eq!(clamp_cut(&batches, 30, Some(20)), Some(20));
        assert_eq!(clamp_cut(&batches, 10, Some(25)), Some(10));
        assert_eq!(clamp_cut(&batches, 30, Some(5)), None);
    }

    #[test]
    fn only_the_byte_limit_blocks_a_held_partition() {
        let h = head(
            "t",
            vec![b(0, 10, 0, 100), b(10, 10, 0, 100), b(20, 10, 0, 100)],
            Some(15),
        );
        let mut plan = Plan::default();
        let by_time = Limits {
            retention_ms: Some(10),
            ..NONE
        };
        plan.add_limits(&h, 300, 1000, by_time);
        assert_eq!(plan.cuts, vec![("t".to_owned(), 0, 10)]);
        assert!(plan.blocks.is_empty());
        let mut plan = Plan::default();
        let by_bytes = Limits {
            retention_bytes: Some(100),
            ..NONE
        };
        plan.add_limits(&h, 300, 1000, by_bytes);
        assert_eq!(plan.cuts, vec![("t".to_owned(), 0, 10)]);
        assert_eq!(plan.blocks, vec![("t".to_owned(), 0, 20)]);
    }

    #[test]
    fn holds_block_until_the_lowest_holder_reaches_the_wanted_cut() {
        let holds = Holds::default();
        assert!(!holds.is_blocked("t", 0));
        holds.set("a", "t", 0, Some(5));
        holds.set("b", "t", 0, Some(8));
        assert_eq!(holds.floor("t", 0), Some(5));
        assert_eq!(holds.clamp("t", 0, 9), 5);
        assert_eq!(holds.clamp("t", 1, 9), 9);
        // A hold on every partition covers partitions without their own.
        holds.set("c", "t", ALL_PARTITIONS, Some(3));
        assert_eq!(holds.floor("t", 1), Some(3));
        assert_eq!(holds.floor("t", 0), Some(3));
        holds.set("c", "t", ALL_PARTITIONS, None);
        assert_eq!(holds.floor("t", 1), None);
        // A cut the floor has already reached blocks nothing.
        holds.set_blocks(&[("t".to_owned(), 0, 5)]);
        assert!(!holds.is_blocked("t", 0));
        holds.set_blocks(&[("t".to_owned(), 0, 7)]);
        assert!(holds.is_blocked("t", 0) && !holds.is_blocked("t", 1));
        holds.set("a", "t", 0, Some(6));
        assert!(holds.is_blocked("t", 0));
        holds.set("a", "t", 0, None);
        assert!(!holds.is_blocked("t", 0));
        assert_eq!(holds.blocked.load(Ordering::Relaxed), 0);
        // A run that wants nothing lifts a block; the last release forgets the partition.
        holds.set_blocks(&[("t".to_owned(), 0, 9)]);
        assert!(holds.is_blocked("t", 0));
        holds.set_blocks(&[]);
        assert!(!holds.is_blocked("t", 0));
        holds.set("b", "t", 0, None);
        assert!(holds.lock().is_empty());
    }
}
