//! The group-commit writer: one thread owns redb's write transaction.
//!
//! Producers send [`Request`]s over a bounded channel. The writer takes what is waiting (up to
//! `max_commit_bytes`; lingering up to `linger_ms` when less than `min_commit_bytes` waits),
//! applies it all in one write transaction, commits once, and only then answers every request.
//! If the commit fails, every request of the group gets the storage error and nothing of the
//! group is visible: the in-memory catalog is replaced only after a successful commit.
//!
//! Appends to the same partition within a group are re-batched into batches of at most
//! `batch_max_bytes` uncompressed (so they fit redb pages), compressed with the topic's codec.
//!
//! Durability: with `fsync = "always"` every commit is `Durability::Immediate`. With
//! `"interval"`, commits are `Durability::None` (in redb, not on disk at all until the next
//! durable commit) and one durable commit happens at least every `fsync_interval_ms` while
//! anything is undurable — including an empty commit when the writer is idle.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::batch::{self, BatchBuilder, Compression, Push};
use super::retention::{Holds, Trimmed};
use super::tables::{self, PartitionMeta, TopicConfig};
use super::{
    now_ms, AppendError, Appended, Catalog, GroupError, Loaded, PendingRecords, StateError,
    StateOp, Stats, StorageError, TopicError, TopicShared,
};
use crate::config::{Config, Fsync};
use crate::logging::RepeatGate;

/// Most requests taken into one commit.
const MAX_REQUESTS_PER_COMMIT: usize = 8192;
/// A failing disk fails every commit, up to hundreds a second: logged at most once per
/// interval, with a count (every request still gets its error).
static COMMIT_FAILED_LOG: RepeatGate = RepeatGate::new();
/// Lingering ends when no request arrived for this long (see `Writer::gather`).
const LINGER_GAP: Duration = Duration::from_micros(150);
/// Poll interval while lingering.
const LINGER_POLL: Duration = Duration::from_micros(25);

/// An append, as sent to the writer.
pub(crate) struct AppendRequest {
    pub topic: String,
    pub partition: u32,
    pub records: PendingRecords,
    /// State changes committed with the records, only if the append succeeds.
    pub state: Vec<StateOp>,
    pub reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// Everything the writer does.
pub(crate) enum Request {
    Append(AppendRequest),
    CreateTopic {
        name: String,
        config: TopicConfig,
        reply: oneshot::Sender<Result<(), TopicError>>,
    },
    DeleteTopic {
        name: String,
        reply: oneshot::Sender<Result<(), TopicError>>,
    },
    CommitOffset {
        group: String,
        topic: String,
        partition: u32,
        offset: u64,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    Trim {
        topic: String,
        partition: u32,
        new_start: u64,
        reply: oneshot::Sender<Result<Trimmed, TopicError>>,
    },
    State {
        ops: Vec<StateOp>,
        reply: oneshot::Sender<Result<(), StateError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

impl Request {
    /// Payload bytes, for commit sizing.
    fn bytes(&self) -> u64 {
        match self {
            Request::Append(a) => a.records.batches.len() as u64 + state_bytes(&a.state),
            Request::State { ops, .. } => state_bytes(ops),
            _ => 0,
        }
    }
}

/// The writer's settings.
pub(crate) struct WriterOptions {
    fsync: Fsync,
    interval: Duration,
    linger: Duration,
    min_commit_bytes: u64,
    max_commit_bytes: u64,
    batch_max_bytes: usize,
    max_decompressed: usize,
    auto_create: bool,
}

impl WriterOptions {
    pub(crate) fn from_config(config: &Config) -> Self {
        let log = &config.log;
        Self {
            fsync: log.fsync,
            interval: Duration::from_millis(log.fsync_interval_ms),
            linger: Duration::from_millis(log.linger_ms),
            min_commit_bytes: log.min_commit_bytes,
            max_commit_bytes: log.max_commit_bytes,
            batch_max_bytes: log.batch_max_bytes as usize,
            max_decompressed: log.max_decompressed_bytes as usize,
            auto_create: log.auto_create_topics,
        }
    }
}

/// What [`Writer::new`] takes.
pub(crate) struct WriterParts {
    /// Retention holds: a trim never deletes at or above a partition's floor.
    pub holds: Arc<Holds>,
    pub db: Arc<Database>,
    pub requests: mpsc::Receiver<Request>,
    pub catalog: Arc<Catalog>,
    pub stats: Arc<Stats>,
    pub topics: Loaded,
    pub options: WriterOptions,
    pub defaults: TopicConfig,
}

/// The result a request will be answered with once the commit is known.
enum Outcome {
    Append(Result<Appended, AppendError>),
    Topic(Result<(), TopicError>),
    Group(Result<(), GroupError>),
    Trim(Result<Trimmed, TopicError>),
    State(Result<(), StateError>),
}

impl Outcome {
    /// The failure of a request the failed commit did not reach.
    fn failed(req: &Request, e: &StorageError) -> Self {
        match req {
            Request::Append(_) => Outcome::Append(Err(e.clone().into())),
            Request::CommitOffset { .. } => Outcome::Group(Err(e.clone().into())),
            Request::Trim { .. } => Outcome::Trim(Err(e.clone().into())),
            Request::State { .. } => Outcome::State(Err(e.clone().into())),
            _ => Outcome::Topic(Err(e.clone().into())),
        }
    }

    /// Turns a success into the commit's failure (nothing of the group is stored).
    fn fail(self, e: &StorageError) -> Self {
        match self {
            Outcome::Append(Ok(_)) => Outcome::Append(Err(e.clone().into())),
            Outcome::Topic(Ok(_)) => Outcome::Topic(Err(e.clone().into())),
            Outcome::Group(Ok(_)) => Outcome::Group(Err(e.clone().into())),
            Outcome::Trim(Ok(_)) => Outcome::Trim(Err(e.clone().into())),
            Outcome::State(Ok(())) => Outcome::State(Err(e.clone().into())),
            failed => failed,
        }
    }
}

/// A change to publish to the catalog after a successful commit, in order.
enum CatalogOp {
    Create(String),
    Delete(String),
    Publish(String, u32),
}

/// State of one commit in progress.
struct Commit {
    topics: Loaded,
    ops: Vec<CatalogOp>,
    records: u64,
    bytes: u64,
    trimmed: Trimmed,
}

/// The writer thread's state.
pub(crate) struct Writer {
    db: Arc<Database>,
    rx: mpsc::Receiver<Request>,
    catalog: Arc<Catalog>,
    stats: Arc<Stats>,
    topics: Loaded,
    options: WriterOptions,
    defaults: TopicConfig,
    holds: Arc<Holds>,
    builders: HashMap<Compression, BatchBuilder>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    /// Commits since the last durable one exist (interval mode).
    dirty: bool,
    next_durable: Instant,
}

enum Next {
    Request(Request),
    DurableTick,
    Closed,
}

impl Writer {
    pub(crate) fn new(parts: WriterParts) -> Self {
        let interval = parts.options.interval;
        Self {
            db: parts.db,
            rx: parts.requests,
            catalog: parts.catalog,
            stats: parts.stats,
            topics: parts.topics,
            options: parts.options,
            defaults: parts.defaults,
            holds: parts.holds,
            builders: HashMap::new(),
            scratch: Vec::new(),
            out: Vec::new(),
            dirty: false,
            next_durable: Instant::now() + interval,
        }
    }

    /// Runs until shutdown or until every sender is gone.
    pub(crate) fn run(mut self, rt: &Handle) {
        loop {
            let first = match self.next(rt) {
                Next::Request(r) => r,
                Next::DurableTick => {
                    self.commit_group(Vec::new(), true);
                    continue;
                }
                Next::Closed => break,
            };
            let (group, shutdown) = self.gather(first);
            let force_durable = shutdown.is_some();
            self.commit_group(group, force_durable);
            if let Some(reply) = shutdown {
                self.refuse_rest();
                let _ = reply.send(());
                return;
            }
        }
        if self.dirty {
            self.commit_group(Vec::new(), true);
        }
    }

    fn next(&mut self, rt: &Handle) -> Next {
        let received = if self.dirty {
            let wait = self.next_durable.saturating_duration_since(Instant::now());
            match rt.block_on(async { tokio::time::timeout(wait, self.rx.recv()).await }) {
                Ok(r) => r,
                Err(_) => return Next::DurableTick,
            }
        } else {
            self.rx.blocking_recv()
        };
        received.map_or(Next::Closed, Next::Request)
    }

    /// Takes what is waiting after `first`; a `Shutdown` ends the group.
    ///
    /// Lingering: while less than `min_commit_bytes` is waiting, keep collecting until
    /// `linger_ms` has passed since the first request, or until no request has arrived for
    /// [`LINGER_GAP`] (producers send in bursts, typically right after a burst of acks: the
    /// gap ends the wait once a burst is in, instead of always paying the whole linger). The
    /// writer owns its thread, so it polls with short sleeps: tokio's timer is 1 ms coarse.
    fn gather(&mut self, first: Request) -> (Vec<Request>, Option<oneshot::Sender<()>>) {
        let mut group = Vec::new();
        let mut bytes = 0;
        let deadline = Instant::now() + self.options.linger;
        let mut last_arrival = Instant::now();
        let mut pending = Some(first);
        loop {
            while let Some(req) = pending.take().or_else(|| self.rx.try_recv().ok()) {
                if let Request::Shutdown(reply) = req {
                    return (group, Some(reply));
                }
                bytes += req.bytes();
                group.push(req);
                last_arrival = Instant::now();
                if bytes >= self.options.max_commit_bytes || group.len() >= MAX_REQUESTS_PER_COMMIT
                {
                    return (group, None);
                }
            }
            let now = Instant::now();
            if bytes >= self.options.min_commit_bytes
                || now >= deadline
                || now.duration_since(last_arrival) >= LINGER_GAP
            {
                return (group, None);
            }
            std::thread::sleep(LINGER_POLL);
        }
    }

    /// Drops every queued request: their callers see `ShuttingDown`.
    fn refuse_rest(&mut self) {
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
    }

    /// Applies `group` in one transaction, commits, publishes, then answers every request.
    fn commit_group(&mut self, group: Vec<Request>, force_durable: bool) {
        let durable = force_durable
            || self.options.fsync.every_commit()
            || Instant::now() >= self.next_durable;
        let mut commit = Commit {
            topics: self.topics.clone(),
            ops: Vec::new(),
            records: 0,
            bytes: 0,
            trimmed: Trimmed::default(),
        };
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(group.len());
        let started = Instant::now();
        let result = self.apply_all(&group, &mut commit, &mut outcomes, durable);
        let elapsed = started.elapsed();
        self.stats.commit_latency.observe(elapsed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.stats
            .commit_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.stats
            .requests
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => self.committed(commit, durable),
            Err(e) => {
                if let Some(similar_not_logged) = COMMIT_FAILED_LOG.pass() {
                    tracing::error!(error = %e, requests = group.len(), similar_not_logged, "commit failed; nothing of it is stored");
                }
                outcomes.resize_with(group.len(), || None);
                outcomes = group
                    .iter()
                    .zip(outcomes)
                    .map(|(req, o)| {
                        Some(o.map_or_else(|| Outcome::failed(req, &e), |o| o.fail(&e)))
                    })
                    .collect();
            }
        }
        for (req, outcome) in group.into_iter().zip(outcomes) {
            answer(req, outcome);
        }
    }

    fn apply_all(
        &mut self,
        group: &[Request],
        commit: &mut Commit,
        outcomes: &mut Vec<Option<Outcome>>,
        durable: bool,
    ) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        // Quick repair: reopening after a crash costs milliseconds, not a full scan.
        txn.set_quick_repair(true);
        outcomes.resize_with(group.len(), || None);
        let mut i = 0;
        while i < group.len() {
            let run = group[i..]
                .iter()
                .take_while(|r| matches!(r, Request::Append(_)))
                .count();
            if run > 0 {
                self.apply_appends(&txn, commit, &group[i..i + run], &mut outcomes[i..i + run])?;
                i += run;
            } else {
                outcomes[i] = Some(self.apply_admin(&txn, commit, &group[i])?);
                i += 1;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Publishes a successful commit to the catalog and the counters.
    fn committed(&mut self, commit: Commit, durable: bool) {
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.stats.durable_commits.fetch_add(1, Ordering::Relaxed);
            self.dirty = false;
            self.next_durable = Instant::now() + self.options.interval;
        } else {
            self.dirty = true;
        }
        let s = &self.stats;
        s.records_appended
            .fetch_add(commit.records, Ordering::Relaxed);
        s.bytes_appended.fetch_add(commit.bytes, Ordering::Relaxed);
        s.retention_batches
            .fetch_add(commit.trimmed.batches, Ordering::Relaxed);
        s.retention_records
            .fetch_add(commit.trimmed.records, Ordering::Relaxed);
        s.retention_bytes
            .fetch_add(commit.trimmed.bytes, Ordering::Relaxed);
        self.topics = commit.topics;
        let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        for op in commit.ops {
            match op {
                CatalogOp::Create(name) => {
                    if let Some((cfg, metas)) = self.topics.get(&name) {
                        catalog.insert(name, Arc::new(TopicShared::new(*cfg, metas)));
                    }
                }
                CatalogOp::Delete(name) => {
                    catalog.remove(&name);
                }
                CatalogOp::Publish(name, p) => {
                    let meta = self.topics.get(&name).and_then(|t| t.1.get(p as usize));
                    if let (Some(t), Some(meta)) = (catalog.get(&name), meta) {
                        t.publish(p, *meta);
                    }
                }
            }
        }
    }

    fn apply_admin(
        &mut self,
        txn: &WriteTransaction,
        commit: &mut Commit,
        req: &Request,
    ) -> Result<Outcome, StorageError> {
        Ok(match req {
            Request::CreateTopic { name, config, .. } => {
                Outcome::Topic(create_topic(txn, commit, name, *config)?)
            }
            Request::DeleteTopic { name, .. } => Outcome::Topic(delete_topic(txn, commit, name)?),
            Request::CommitOffset {
                group,
                topic,
                partition,
                offset,
                ..
            } => Outcome::Group(commit_offset(
                txn, commit, group, topic, *partition, *offset,
            )?),
            Request::Trim {
                topic,
                partition,
                new_start,
                ..
            } => {
                // Checked here, not only when retention chose the cut: a hold set since then
                // still keeps its records.
                let new_start = self.holds.clamp(topic, *partition, *new_start);
                Outcome::Trim(trim(txn, commit, topic, *partition, new_start)?)
            }
            Request::State { ops, .. } => {
                apply_state(txn, ops)?;
                Outcome::State(Ok(()))
            }
            // Appends go through apply_appends; Shutdown never enters a group.
            Request::Append(_) | Request::Shutdown(_) => {
                unreachable!("not an admin request")
            }
        })
    }

    /// Applies a run of appends, re-batching those for the same partition together.
    fn apply_appends(
        &mut self,
        txn: &WriteTransaction,
        commit: &mut Commit,
        run: &[Request],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StorageError> {
        let mut order: Vec<(&str, u32)> = Vec::new();
        let mut members: HashMap<(&str, u32), Vec<usize>> = HashMap::new();
        for (i, req) in run.iter().enumerate() {
            if let Request::Append(a) = req {
                let key = (a.topic.as_str(), a.partition);
                let slot = members.entry(key).or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                });
                slot.push(i);
            }
        }
        for key in order {
            let idx = &members[&key];
            self.append_partition(txn, commit, key, run, idx, outcomes)?;
        }
        // State changes ride with their append: applied only when it succeeded, in request
        // order (a later request may delete what an earlier one put).
        for (req, outcome) in run.iter().zip(outcomes.iter()) {
            if let (Request::Append(a), Some(Outcome::Append(Ok(_)))) = (req, outcome) {
                apply_state(txn, &a.state)?;
            }
        }
        Ok(())
    }

    fn append_partition(
        &mut self,
        txn: &WriteTransaction,
        commit: &mut Commit,
        (topic, partition): (&str, u32),
        run: &[Request],
        idx: &[usize],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StorageError> {
        if let Err(e) = self.ensure_topic(txn, commit, topic, partition)? {
            for &i in idx {
                outcomes[i] = Some(Outcome::Append(Err(e.clone())));
            }
            return Ok(());
        }
        let (cfg, metas) = &commit.topics[topic];
        let mut meta = metas[partition as usize];
        let table_name = tables::batch_table_name(topic);
        let mut table = txn.open_table(tables::batch_table(&table_name))?;
        let mut sink = BatchSink {
            table: &mut table,
            partition,
            meta: &mut meta,
            out: &mut self.out,
            bytes: 0,
        };
        let builder = self
            .builders
            .entry(cfg.compression)
            .or_insert_with(|| BatchBuilder::new(cfg.compression, self.options.batch_max_bytes));
        // A failed commit may have left records in it; they belong to no batch now.
        builder.clear();
        for &i in idx {
            let Request::Append(a) = &run[i] else {
                continue;
            };
            let outcome = rebatch(
                builder,
                &mut sink,
                &mut self.scratch,
                a,
                self.options.max_decompressed,
            )?;
            commit.records += outcome.as_ref().map_or(0, |a| u64::from(a.count));
            outcomes[i] = Some(Outcome::Append(outcome));
        }
        sink.flush(builder)?;
        commit.bytes += sink.bytes;
        drop(table);
        put_meta(txn, topic, partition, &meta)?;
        if let Some(t) = commit.topics.get_mut(topic) {
            t.1[partition as usize] = meta;
        }
        commit
            .ops
            .push(CatalogOp::Publish(topic.to_owned(), partition));
        Ok(())
    }

    /// Makes sure `topic` exists (auto-creating it) and has `partition`.
    fn ensure_topic(
        &mut self,
        txn: &WriteTransaction,
        commit: &mut Commit,
        topic: &str,
        partition: u32,
    ) -> Result<Result<(), AppendError>, StorageError> {
        if !commit.topics.contains_key(topic) {
            if !self.options.auto_create {
                return Ok(Err(AppendError::UnknownTopic(topic.to_owned())));
            }
            let config = TopicConfig {
                created_ms: now_ms(),
                ..self.defaults
            };
            if let Err(e) = create_topic(txn, commit, topic, config)? {
                tracing::warn!(topic, error = %e, "auto-creating topic failed");
                return Ok(Err(AppendError::UnknownTopic(topic.to_owned())));
            }
            tracing::info!(topic, partitions = config.partitions, "topic auto-created");
        }
        let partitions = commit.topics[topic].0.partitions;
        if partition >= partitions {
            return Ok(Err(AppendError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions,
            }));
        }
        Ok(Ok(()))
    }
}

/// Where finished batches go: one partition's table and meta.
struct BatchSink<'t, 'x> {
    table: &'t mut redb::Table<'x, (u32, u64), &'static [u8]>,
    partition: u32,
    meta: &'t mut PartitionMeta,
    out: &'t mut Vec<u8>,
    bytes: u64,
}

impl BatchSink<'_, '_> {
    /// Finishes the builder's batch (if any) at the next offsets and inserts it.
    fn flush(&mut self, builder: &mut BatchBuilder) -> Result<(), StorageError> {
        if builder.is_empty() {
            return Ok(());
        }
        self.out.clear();
        let info = builder.finish_into(self.out);
        let base = self.meta.end_offset;
        batch::set_base_offset(self.out, base);
        self.table
            .insert((self.partition, base), self.out.as_slice())?;
        let meta = &mut *self.meta;
        if meta.batches == 0 {
            meta.start_offset = base;
            meta.oldest_timestamp_ms = Some(u64::try_from(info.first_timestamp).unwrap_or(0));
        }
        meta.end_offset = base + u64::from(info.record_count);
        meta.bytes += self.out.len() as u64;
        meta.batches += 1;
        self.bytes += self.out.len() as u64;
        Ok(())
    }
}

/// Re-encodes the records of one append into the partition's batches.
fn rebatch(
    builder: &mut BatchBuilder,
    sink: &mut BatchSink<'_, '_>,
    scratch: &mut Vec<u8>,
    req: &AppendRequest,
    max_decompressed: usize,
) -> Result<Result<Appended, AppendError>, StorageError> {
    if let Err(e) = validate_pending(&req.records, scratch) {
        return Ok(Err(AppendError::Batch(Arc::new(e))));
    }
    let base_offset = sink.meta.end_offset + builder.len() as u64;
    let mut count = 0u32;
    for b in batch::Batches::new(&req.records.batches) {
        let (_, bytes) = b.map_err(|_| invariant())?;
        for rec in batch::records(bytes, scratch, max_decompressed).map_err(|_| invariant())? {
            let rec = rec.map_err(|_| invariant())?;
            if builder.push_record(&rec).map_err(|_| invariant())? == Push::Full {
                sink.flush(builder)?;
                builder.push_record(&rec).map_err(|_| invariant())?;
            }
            count += 1;
        }
    }
    Ok(Ok(Appended {
        partition: sink.partition,
        base_offset,
        count,
    }))
}

/// A pending append whose batches were validated cannot fail to decode; if it does anyway,
/// the transaction is abandoned rather than storing half of it.
fn invariant() -> StorageError {
    StorageError::from(redb::StorageError::Corrupted(
        "in-process batch failed to decode after validation".into(),
    ))
}

fn validate_pending(
    records: &PendingRecords,
    scratch: &mut Vec<u8>,
) -> Result<(), batch::BatchError> {
    let mut count = 0u64;
    // `Batches` checks each header and CRC; walking the records checks the rest, once.
    for b in batch::Batches::new(&records.batches) {
        let (_, bytes) = b?;
        for rec in batch::records(bytes, scratch, usize::MAX)? {
            rec?;
            count += 1;
        }
    }
    if count != u64::from(records.records) {
        return Err(batch::BatchError::RecordCountMismatch);
    }
    Ok(())
}

fn put_meta(
    txn: &WriteTransaction,
    topic: &str,
    partition: u32,
    meta: &PartitionMeta,
) -> Result<(), StorageError> {
    let mut parts = txn.open_table(tables::PARTITIONS)?;
    parts.insert((topic, partition), meta.encode().as_slice())?;
    Ok(())
}

fn create_topic(
    txn: &WriteTransaction,
    commit: &mut Commit,
    name: &str,
    config: TopicConfig,
) -> Result<Result<(), TopicError>, StorageError> {
    if commit.topics.contains_key(name) {
        return Ok(Err(TopicError::Exists(name.to_owned())));
    }
    txn.open_table(tables::TOPICS)?
        .insert(name, config.encode().as_slice())?;
    for p in 0..config.partitions {
        put_meta(txn, name, p, &PartitionMeta::EMPTY)?;
    }
    let table_name = tables::batch_table_name(name);
    txn.open_table(tables::batch_table(&table_name))?;
    let metas = vec![PartitionMeta::EMPTY; config.partitions as usize];
    commit.topics.insert(name.to_owned(), (config, metas));
    commit.ops.push(CatalogOp::Create(name.to_owned()));
    Ok(Ok(()))
}

fn delete_topic(
    txn: &WriteTransaction,
    commit: &mut Commit,
    name: &str,
) -> Result<Result<(), TopicError>, StorageError> {
    let Some((config, _)) = commit.topics.remove(name) else {
        return Ok(Err(TopicError::Unknown(name.to_owned())));
    };
    let table_name = tables::batch_table_name(name);
    txn.delete_table(tables::batch_table(&table_name))?;
    txn.open_table(tables::TOPICS)?.remove(name)?;
    let mut parts = txn.open_table(tables::PARTITIONS)?;
    for p in 0..config.partitions {
        parts.remove((name, p))?;
    }
    txn.open_table(tables::GROUPS)?
        .retain(|(_, topic, _), _| topic != name)?;
    commit.ops.push(CatalogOp::Delete(name.to_owned()));
    Ok(Ok(()))
}

fn commit_offset(
    txn: &WriteTransaction,
    commit: &mut Commit,
    group: &str,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<Result<(), GroupError>, StorageError> {
    match commit.topics.get(topic) {
        None => return Ok(Err(GroupError::UnknownTopic(topic.to_owned()))),
        Some((cfg, _)) if partition >= cfg.partitions => {
            return Ok(Err(GroupError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            }))
        }
        Some(_) => {}
    }
    txn.open_table(tables::GROUPS)?
        .insert((group, topic, partition), offset)?;
    Ok(Ok(()))
}

/// Deletes whole batches of `topic`/`partition` that end at or before `new_start`.
fn trim(
    txn: &WriteTransaction,
    commit: &mut Commit,
    topic: &str,
    partition: u32,
    new_start: u64,
) -> Result<Result<Trimmed, TopicError>, StorageError> {
    let Some((_, metas)) = commit.topics.get_mut(topic) else {
        return Ok(Err(TopicError::Unknown(topic.to_owned())));
    };
    let Some(meta) = metas.get_mut(partition as usize) else {
        return Ok(Err(TopicError::Unknown(topic.to_owned())));
    };
    let table_name = tables::batch_table_name(topic);
    let mut table = txn.open_table(tables::batch_table(&table_name))?;
    let mut doomed = Vec::new();
    let mut trimmed = Trimmed::default();
    for entry in table.range((partition, 0)..(partition, new_start))? {
        let (key, value) = entry?;
        let Ok((header, _)) = batch::parse_header(value.value()) else {
            break;
        };
        if header.next_offset() > new_start {
            break;
        }
        trimmed.batches += 1;
        trimmed.bytes += value.value().len() as u64;
        doomed.push(key.value().1);
    }
    for base in &doomed {
        table.remove((partition, *base))?;
    }
    let old_start = meta.start_offset;
    let first = match table.range((partition, 0)..=(partition, u64::MAX))?.next() {
        Some(entry) => {
            let (key, value) = entry?;
            let ts = batch::parse_header(value.value())
                .ok()
                .map(|(h, _)| u64::try_from(h.first_timestamp).unwrap_or(0));
            Some((key.value().1, ts))
        }
        None => None,
    };
    (meta.start_offset, meta.oldest_timestamp_ms) = first.unwrap_or((meta.end_offset, None));
    trimmed.records = meta.start_offset - old_start;
    meta.bytes = meta.bytes.saturating_sub(trimmed.bytes);
    meta.batches = meta.batches.saturating_sub(trimmed.batches);
    let meta = *meta;
    drop(table);
    put_meta(txn, topic, partition, &meta)?;
    commit.trimmed.add(&trimmed);
    commit
        .ops
        .push(CatalogOp::Publish(topic.to_owned(), partition));
    Ok(Ok(trimmed))
}

/// Bytes a list of state changes writes, for commit sizing.
fn state_bytes(ops: &[StateOp]) -> u64 {
    ops.iter()
        .map(|op| match op {
            StateOp::Put { key, value, .. } => key.len() + value.len(),
            StateOp::Delete { key, .. } => key.len(),
            StateOp::DeleteRange { start, end, .. } => start.len() + end.len(),
        } as u64)
        .sum()
}

/// Applies state changes in order.
fn apply_state(txn: &WriteTransaction, ops: &[StateOp]) -> Result<(), StorageError> {
    for op in ops {
        match op {
            StateOp::Put { table, key, value } => {
                txn.open_table(table.definition())?
                    .insert(key.as_slice(), value.as_slice())?;
            }
            StateOp::Delete { table, key } => {
                txn.open_table(table.definition())?.remove(key.as_slice())?;
            }
            StateOp::DeleteRange { table, start, end } => {
                let mut t = txn.open_table(table.definition())?;
                t.retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
            }
        }
    }
    Ok(())
}

/// Sends a request its outcome (a dropped requester is not an error).
fn answer(req: Request, outcome: Option<Outcome>) {
    match (req, outcome) {
        (Request::Append(a), Some(Outcome::Append(r))) => {
            let _ = a.reply.send(r);
        }
        (
            Request::CreateTopic { reply, .. } | Request::DeleteTopic { reply, .. },
            Some(Outcome::Topic(r)),
        ) => {
            let _ = reply.send(r);
        }
        (Request::CommitOffset { reply, .. }, Some(Outcome::Group(r))) => {
            let _ = reply.send(r);
        }
        (Request::Trim { reply, .. }, Some(Outcome::Trim(r))) => {
            let _ = reply.send(r);
        }
        (Request::State { reply, .. }, Some(Outcome::State(r))) => {
            let _ = reply.send(r);
        }
        // A failed commit may leave a request without its own outcome; dropping its reply
        // sender tells the caller the request was not done.
        _ => {}
    }
}
