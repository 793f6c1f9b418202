//! The durable, partitioned log: topics, partitions, offsets and record batches in one redb file.
//!
//! [`Log`] is a cheap-clone handle. All mutations (appends, topic changes, consumer-group
//! offsets, retention deletes) go to one [`writer`] thread, which owns redb's write transaction
//! and commits many requests at once (group commit); a request is answered only after the commit
//! that holds it (see [`crate::config::Fsync`] for when that commit is durable). Reads use redb
//! read transactions on the blocking pool and never wait for the writer. Each partition has a
//! watermark (`tokio::sync::watch`) that long-polling readers wait on.
//!
//! Layout on disk: [`tables`] (every table and value encoding) and [`batch`] (the stored unit).

mod backend;
pub mod batch;
mod codec;
pub mod groups;
pub mod reader;
pub mod retention;
pub mod tables;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, Fsync};
use batch::Compression;
use tables::{PartitionMeta, TopicConfig};
use writer::Request;

pub use reader::{ReadError, ReadResult};

/// Name of the log file inside the data directory.
pub const LOG_FILE_NAME: &str = "outpost.redb";
/// Longest topic name accepted (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Most partitions a topic may have (bounded so per-partition state stays small).
pub const MAX_PARTITIONS: u32 = 1024;

/// A storage failure from redb, shareable between every request of a failed commit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StorageError(#[source] pub Arc<redb::Error>);

impl<E: Into<redb::Error>> From<E> for StorageError {
    fn from(e: E) -> Self {
        Self(Arc::new(e.into()))
    }
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (usually another `outpost serve`) has the file open.
    #[error("log file {path} is in use by another process (is another `outpost serve` running on this data directory?)")]
    InUse {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The file was written by a newer Outpost.
    #[error("log file {path} has format version {found}; this build reads up to {supported}: upgrade Outpost")]
    NewerFormat {
        /// The file.
        path: std::path::PathBuf,
        /// Version in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// redb failed to open or recover the file.
    #[error("cannot open log file {path}: {source}")]
    Storage {
        /// The file.
        path: std::path::PathBuf,
        /// What redb said.
        #[source]
        source: StorageError,
    },
    /// A stored value is damaged or of an unknown encoding.
    #[error("log file {path} holds an unreadable value: {source}")]
    Decode {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        #[source]
        source: tables::DecodeError,
    },
}

/// Why an append was not done. Nothing of a failed append is stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The topic does not exist and auto-creation is off.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// The partition does not exist in the topic.
    #[error("topic `{topic}` has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Partitions of the topic.
        partitions: u32,
    },
    /// The topic name is not valid.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The request carried no records.
    #[error("append with no records")]
    Empty,
    /// The records could not be re-batched (a bug: they were built in-process).
    #[error("invalid batch: {0}")]
    Batch(#[source] Arc<batch::BatchError>),
    /// The commit failed; nothing of it is stored.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The partition is full: retention must delete records that a bridge route with
    /// `overflow = "refuse"` has not forwarded yet. Retry after the bridge catches up.
    #[error("topic `{topic}` partition {partition} is full: a bridge route with overflow = \"refuse\" has not forwarded its oldest records yet")]
    Full {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// The log is shutting down.
    #[error("the log is shutting down")]
    ShuttingDown,
}

/// Why a topic operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TopicError {
    /// Creating a topic that exists.
    #[error("topic `{0}` already exists")]
    Exists(String),
    /// Operating on a topic that does not exist.
    #[error("unknown topic `{0}`")]
    Unknown(String),
    /// The name is not valid.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The partition count is out of range.
    #[error("partition count {0} is out of range 1..={MAX_PARTITIONS}")]
    Partitions(u32),
    /// The commit failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log is shutting down.
    #[error("the log is shutting down")]
    ShuttingDown,
}

/// Why a consumer-group operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    /// The topic does not exist.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("topic `{topic}` has no partition {partition}")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// The group name is empty or too long.
    #[error("group name must be 1..=249 bytes")]
    InvalidGroup,
    /// The commit failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log is shutting down.
    #[error("the log is shutting down")]
    ShuttingDown,
}

/// Why a state change was not stored. Nothing of a failed change is stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The commit failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log is shutting down.
    #[error("the log is shutting down")]
    ShuttingDown,
}

/// Every `(key, value)` of a state table, in key order.
pub type StateEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// One change to a broker-state table ([`tables::StateTable`]), applied by the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    /// Insert or replace `key`.
    Put {
        /// Table.
        table: tables::StateTable,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key` (absent is fine).
    Delete {
        /// Table.
        table: tables::StateTable,
        /// Key bytes.
        key: Vec<u8>,
    },
    /// Remove every key in `start..end`.
    DeleteRange {
        /// Table.
        table: tables::StateTable,
        /// First key removed.
        start: Vec<u8>,
        /// First key kept after the range.
        end: Vec<u8>,
    },
}

/// An invalid topic name.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid topic name `{name}`: use 1..=249 characters of [a-zA-Z0-9._-], not `.` or `..`")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
}

/// Checks a topic name with Kafka's rules (legal characters, length, not `.`/`..`).
pub fn validate_topic_name(name: &str) -> Result<(), NameError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let ok = !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name.chars().all(legal);
    ok.then_some(()).ok_or_else(|| NameError {
        name: name.to_owned(),
    })
}

/// What to create a topic with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Partition count.
    pub partitions: u32,
    /// `retention.ms` (`None` = forever).
    pub retention_ms: Option<u64>,
    /// `retention.bytes` per partition (`None` = unbounded).
    pub retention_bytes: Option<u64>,
    /// Batch compression.
    pub compression: Compression,
}

/// Where an append goes within its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// This partition.
    Partition(u32),
    /// The partition of this key ([`outpost_firmware::partition::partition_for_key`]).
    Key(&'a [u8]),
    /// Round-robin over the topic's partitions.
    Any,
}

/// Records to append: one or more uncompressed batches with base offset 0, built in-process
/// with [`batch::BatchBuilder`]. The writer re-batches them to the topic's size and codec.
#[derive(Debug, Clone, Default)]
pub struct PendingRecords {
    /// Concatenated batches.
    pub batches: Vec<u8>,
    /// Total records in them.
    pub records: u32,
}

/// Where an append landed: records got offsets `base_offset..base_offset + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Partition.
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Number of records.
    pub count: u32,
}

/// A topic and its partitions, as `describe` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Configuration.
    pub config: TopicConfig,
    /// One entry per partition, in order.
    pub partitions: Vec<PartitionMeta>,
}

/// Counters of the log since it was opened.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commits done.
    pub commits: AtomicU64,
    /// Durable (fsynced) commits done.
    pub durable_commits: AtomicU64,
    /// Requests answered by commits (appends, admin, offsets, trims).
    pub requests: AtomicU64,
    /// Time spent applying and committing, in microseconds.
    pub commit_micros: AtomicU64,
    /// Records appended.
    pub records_appended: AtomicU64,
    /// Batch bytes written.
    pub bytes_appended: AtomicU64,
    /// Batches deleted by retention.
    pub retention_batches: AtomicU64,
    /// Records deleted by retention.
    pub retention_records: AtomicU64,
    /// Bytes deleted by retention.
    pub retention_bytes: AtomicU64,
    /// Time per commit (apply and commit, fsync included when durable).
    pub commit_latency: crate::admin::counters::LatencyHistogram,
    /// fsync calls redb made on the log file (one or two per durable commit, more at open).
    pub fsyncs: AtomicU64,
    /// Bytes redb wrote to the log file (pages, headers), before the OS and the device.
    pub file_bytes_written: AtomicU64,
}

/// Live state of one partition, published by the writer after each commit.
#[derive(Debug)]
pub(crate) struct PartitionShared {
    /// End offset (next offset to assign); readers wait on it.
    end: watch::Sender<u64>,
    /// Last committed bookkeeping.
    meta: Mutex<PartitionMeta>,
}

/// Live state of one topic.
#[derive(Debug)]
pub(crate) struct TopicShared {
    config: TopicConfig,
    partitions: Vec<PartitionShared>,
    /// Round-robin cursor for records without key or partition.
    next_partition: AtomicU32,
}

impl TopicShared {
    fn new(config: TopicConfig, metas: &[PartitionMeta]) -> Self {
        let partitions = metas
            .iter()
            .map(|m| PartitionShared {
                end: watch::Sender::new(m.end_offset),
                meta: Mutex::new(*m),
            })
            .collect();
        Self {
            config,
            partitions,
            next_partition: AtomicU32::new(0),
        }
    }

    /// Publishes a committed meta and wakes readers waiting on the watermark.
    fn publish(&self, partition: u32, meta: PartitionMeta) {
        let Some(p) = self.partitions.get(partition as usize) else {
            return;
        };
        // A poisoned lock only means a reader panicked; the value is a plain copy.
        *p.meta.lock().unwrap_or_else(|e| e.into_inner()) = meta;
        p.end.send_replace(meta.end_offset);
    }

    fn meta(&self, partition: u32) -> Option<PartitionMeta> {
        let p = self.partitions.get(partition as usize)?;
        Some(*p.meta.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Topic name → live state. Readers clone the `Arc` and drop the lock at once.
pub(crate) type Catalog = RwLock<HashMap<String, Arc<TopicShared>>>;

struct Inner {
    db: Arc<Database>,
    requests: mpsc::Sender<Request>,
    catalog: Arc<Catalog>,
    stats: Arc<Stats>,
    defaults: TopicConfig,
    auto_create: bool,
    gateway_id: String,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Retention holds of bridges in refuse mode, shared with the writer.
    holds: Arc<retention::Holds>,
}

/// Handle to the open log. Clones share one file, writer and catalog.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

/// Milliseconds since the Unix epoch, saturating at 0 for clocks before it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Log {
    /// Opens (or creates) the log in `config.data_dir` and starts its writer thread.
    ///
    /// Must be called inside a tokio runtime. After a crash, redb's quick repair restores the
    /// last durable commit; nothing acknowledged under `fsync = "always"` is lost.
    pub fn open(config: &Config) -> Result<Self, OpenError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| OpenError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let path = config.log_path();
        let stats = Arc::new(Stats::default());
        let db = open_database(&path, config.log.cache_bytes, stats.clone())?;
        let gateway_id = init_meta(&db, &path, &config.gateway_id)?;
        let loaded = load_catalog(&db).map_err(|e| match e {
            LoadError::Storage(source) => OpenError::Storage {
                path: path.clone(),
                source,
            },
            LoadError::Decode(source) => OpenError::Decode {
                path: path.clone(),
                source,
            },
        })?;
        Ok(Self::start(config, Arc::new(db), loaded, gateway_id, stats))
    }

    fn start(
        config: &Config,
        db: Arc<Database>,
        loaded: Loaded,
        gateway_id: String,
        stats: Arc<Stats>,
    ) -> Self {
        let catalog: Arc<Catalog> = Arc::new(RwLock::new(
            loaded
                .iter()
                .map(|(name, (cfg, metas))| (name.clone(), Arc::new(TopicShared::new(*cfg, metas))))
                .collect(),
        ));
        // Capped by tokio's limit, which on 32-bit targets (armv7) is below u32::MAX.
        let queue = (config.log.writer_queue as usize).min(tokio::sync::Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::channel(queue);
        let defaults = topic_defaults(config);
        let holds = Arc::new(retention::Holds::default());
        let writer = writer::Writer::new(writer::WriterParts {
            holds: holds.clone(),
            db: db.clone(),
            requests: rx,
            catalog: catalog.clone(),
            stats: stats.clone(),
            topics: loaded,
            options: writer::WriterOptions::from_config(config),
            defaults,
        });
        let handle = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("outpost-writer".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| writer.run(&handle));
                if std::panic::catch_unwind(run).is_err() {
                    // Without its writer the broker can only refuse work. Every acknowledged
                    // record is committed, so dying and being restarted loses nothing.
                    tracing::error!("the log writer panicked; aborting");
                    std::process::abort();
                }
            })
            // Spawning a thread fails only when the OS is out of resources at start-up.
            .expect("spawn the log writer thread");
        Self {
            inner: Arc::new(Inner {
                db,
                requests: tx,
                catalog,
                stats,
                defaults,
                auto_create: config.log.auto_create_topics,
                gateway_id,
                writer: Mutex::new(Some(thread)),
                holds,
            }),
        }
    }

    /// This gateway's stable id.
    pub fn gateway_id(&self) -> &str {
        &self.inner.gateway_id
    }

    /// Counters since open.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<TopicShared>> {
        let catalog = self.inner.catalog.read().unwrap_or_else(|e| e.into_inner());
        catalog.get(name).cloned()
    }

    /// The live state of `topic`, checking that it has `partition`.
    pub(crate) fn lookup(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<TopicShared>, ReadError> {
        let t = self
            .topic(topic)
            .ok_or_else(|| ReadError::UnknownTopic(topic.to_owned()))?;
        if partition as usize >= t.partitions.len() {
            return Err(ReadError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            });
        }
        Ok(t)
    }

    /// A partition's bookkeeping as of the last commit.
    pub fn partition_meta(&self, topic: &str, partition: u32) -> Result<PartitionMeta, ReadError> {
        let t = self.lookup(topic, partition)?;
        // `lookup` checked the index.
        Ok(t.meta(partition).unwrap_or(PartitionMeta::EMPTY))
    }

    /// Names of all topics, sorted.
    pub fn list_topics(&self) -> Vec<String> {
        let catalog = self.inner.catalog.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = catalog.keys().cloned().collect();
        names.sort();
        names
    }

    /// A topic's configuration and per-partition bookkeeping as of the last commit.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription, TopicError> {
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_owned()))?;
        let partitions = (0..topic.config.partitions)
            .filter_map(|p| topic.meta(p))
            .collect();
        Ok(TopicDescription {
            name: name.to_owned(),
            config: topic.config,
            partitions,
        })
    }

    async fn call<T, E: From<Shutdown>>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Request,
    ) -> Result<T, E> {
        self.enqueue(make).await?.wait().await
    }

    /// Queues a request for the writer; waits only for room in the queue.
    async fn enqueue<T, E: From<Shutdown>>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Request,
    ) -> Result<Pending<T, E>, E> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .requests
            .send(make(tx))
            .await
            .map_err(|_| E::from(Shutdown))?;
        Ok(Pending(rx))
    }

    /// Creates a topic. Durable (per the fsync mode) when this returns `Ok`.
    pub async fn create_topic(&self, name: &str, spec: TopicSpec) -> Result<(), TopicError> {
        validate_topic_name(name)?;
        if spec.partitions == 0 || spec.partitions > MAX_PARTITIONS {
            return Err(TopicError::Partitions(spec.partitions));
        }
        let config = TopicConfig {
            partitions: spec.partitions,
            retention_ms: spec.retention_ms,
            retention_bytes: spec.retention_bytes,
            compression: spec.compression,
            created_ms: now_ms(),
        };
        let name = name.to_owned();
        self.call(|reply| Request::CreateTopic {
            name,
            config,
            reply,
        })
        .await
    }

    /// Deletes a topic, its records and its consumer-group offsets.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let name = name.to_owned();
        self.call(|reply| Request::DeleteTopic { name, reply })
            .await
    }

    /// Resolves `target` to a partition of `topic` (using the default partition count for a
    /// topic that does not exist yet and will be auto-created).
    pub fn resolve_partition(&self, topic: &str, target: Target<'_>) -> Result<u32, AppendError> {
        let shared = self.topic(topic);
        let count = match &shared {
            Some(t) => t.config.partitions,
            None if self.inner.auto_create => self.inner.defaults.partitions,
            None => return Err(AppendError::UnknownTopic(topic.to_owned())),
        };
        Ok(match target {
            Target::Partition(p) => p,
            Target::Key(key) => outpost_firmware::partition::partition_for_key(key, count),
            Target::Any => shared.map_or(0, |t| {
                t.next_partition.fetch_add(1, Ordering::Relaxed) % count
            }),
        })
    }

    /// Appends records to one partition; returns after the commit that stores them.
    ///
    /// On `Ok`, the records are stored at `base_offset..base_offset + count` (durably under
    /// `fsync = "always"`). On `Err`, none of them is stored.
    pub async fn append(
        &self,
        topic: &str,
        target: Target<'_>,
        records: PendingRecords,
    ) -> Result<Appended, AppendError> {
        self.enqueue_append(topic, target, records)
            .await?
            .wait()
            .await
    }

    /// Queues an append and returns at once with a handle to await its commit. Appends queued
    /// one after the other by one task are stored in that order.
    pub async fn enqueue_append(
        &self,
        topic: &str,
        target: Target<'_>,
        records: PendingRecords,
    ) -> Result<Pending<Appended, AppendError>, AppendError> {
        self.enqueue_append_with_state(topic, target, records, Vec::new())
            .await
    }

    /// As [`Log::enqueue_append`], and applies `state` in the same commit if the append
    /// succeeds (for example an MQTT message queued for offline sessions with the record).
    ///
    /// Fails at once with [`AppendError::Full`] while the partition is blocked for a bridge
    /// in refuse mode (see [`Log::hold_retention`]).
    pub async fn enqueue_append_with_state(
        &self,
        topic: &str,
        target: Target<'_>,
        records: PendingRecords,
        state: Vec<StateOp>,
    ) -> Result<Pending<Appended, AppendError>, AppendError> {
        validate_topic_name(topic)?;
        if records.records == 0 {
            return Err(AppendError::Empty);
        }
        let partition = self.resolve_partition(topic, target)?;
        if self.inner.holds.is_blocked(topic, partition) {
            return Err(AppendError::Full {
                topic: topic.to_owned(),
                partition,
            });
        }
        let topic = topic.to_owned();
        self.enqueue(|reply| {
            Request::Append(writer::AppendRequest {
                topic,
                partition,
                records,
                state,
                reply,
            })
        })
        .await
    }

    /// Keeps retention from deleting offsets at or above `offset` of `topic`/`partition` on behalf
    /// of `holder` (a bridge route in refuse mode); `None` releases `holder`'s hold.
    ///
    /// Several holders may hold one partition; retention keeps everything at or above the
    /// lowest of their offsets. Where the byte limit or the disk floor needs held records
    /// gone, appends to the partition fail with [`AppendError::Full`] until the floor reaches
    /// the offset retention waits for: a call that moves it there (or releases the last hold
    /// below it) lets appends in again at once. Holds live in memory only. See
    /// [`retention`] for the rules.
    pub fn hold_retention(&self, holder: &str, topic: &str, partition: u32, offset: Option<u64>) {
        self.inner.holds.set(holder, topic, partition, offset);
    }

    /// The retention holds (for the retention task).
    pub(crate) fn holds(&self) -> &retention::Holds {
        &self.inner.holds
    }

    /// Queues broker-state changes; the returned handle resolves after their commit.
    pub async fn enqueue_state(
        &self,
        ops: Vec<StateOp>,
    ) -> Result<Pending<(), StateError>, StateError> {
        self.enqueue(|reply| Request::State { ops, reply }).await
    }

    /// Every entry of a state table, in key order (read at startup to restore state).
    pub fn read_state(&self, table: tables::StateTable) -> Result<StateEntries, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let t = txn.open_table(table.definition())?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Stores `offset` as the next offset `group` will read from `topic`/`partition`.
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), GroupError> {
        check_group(group)?;
        self.check_partition(topic, partition)?;
        let (group, topic) = (group.to_owned(), topic.to_owned());
        self.call(|reply| Request::CommitOffset {
            group,
            topic,
            partition,
            offset,
            reply,
        })
        .await
    }

    /// The committed offset of `group` on `topic`/`partition`, if any.
    pub async fn fetch_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, GroupError> {
        check_group(group)?;
        self.check_partition(topic, partition)?;
        let db = self.inner.db.clone();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        let result = tokio::task::spawn_blocking(move || -> Result<Option<u64>, StorageError> {
            let txn = db.begin_read()?;
            let table = match txn.open_table(tables::GROUPS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(table
                .get((group.as_str(), topic.as_str(), partition))?
                .map(|v| v.value()))
        })
        .await;
        // The closure does not panic; a JoinError here means the runtime is shutting down.
        result
            .map_err(|_| GroupError::ShuttingDown)?
            .map_err(Into::into)
    }

    fn check_partition(&self, topic: &str, partition: u32) -> Result<(), GroupError> {
        let t = self
            .topic(topic)
            .ok_or_else(|| GroupError::UnknownTopic(topic.to_owned()))?;
        if partition >= t.config.partitions {
            return Err(GroupError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            });
        }
        Ok(())
    }

    /// Deletes the batches of `topic`/`partition` below `new_start` (a batch boundary).
    pub(crate) async fn trim(
        &self,
        topic: &str,
        partition: u32,
        new_start: u64,
    ) -> Result<retention::Trimmed, TopicError> {
        let topic = topic.to_owned();
        self.call(|reply| Request::Trim {
            topic,
            partition,
            new_start,
            reply,
        })
        .await
    }

    /// Waits until `topic`/`partition` has data at or beyond `offset`, or `max_wait` passes.
    /// Returns the end offset seen last.
    pub async fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_wait: Duration,
    ) -> Result<u64, ReadError> {
        let t = self.lookup(topic, partition)?;
        let mut rx = t.partitions[partition as usize].end.subscribe();
        drop(t);
        let waited = tokio::time::timeout(max_wait, rx.wait_for(|&end| end > offset))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|end| *end);
        // Timed out, or the topic was deleted (sender dropped): report what we saw last.
        Ok(waited.unwrap_or_else(|| *rx.borrow()))
    }

    /// One line for the log: commits, requests and records per commit, time per commit.
    pub fn stats_summary(&self) -> String {
        let s = &self.inner.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let commits = get(&s.commits).max(1);
        format!(
            "{} commits ({} durable), {:.1} requests and {:.1} records per commit, {:.3} ms per commit",
            get(&s.commits),
            get(&s.durable_commits),
            get(&s.requests) as f64 / commits as f64,
            get(&s.records_appended) as f64 / commits as f64,
            get(&s.commit_micros) as f64 / commits as f64 / 1000.0,
        )
    }

    /// Stops the writer after it commits everything already queued. Later calls fail with
    /// `ShuttingDown`. Idempotent.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .requests
            .send(Request::Shutdown(tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        let thread = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            // The writer has replied and is returning; joining does not block for long.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.inner.db
    }
}

/// A request queued for the writer; [`Pending::wait`] resolves after its commit.
#[derive(Debug)]
pub struct Pending<T, E>(oneshot::Receiver<Result<T, E>>);

impl<T, E: From<Shutdown>> Pending<T, E> {
    /// Waits for the commit that holds the request (or its failure).
    pub async fn wait(self) -> Result<T, E> {
        self.0.await.map_err(|_| E::from(Shutdown))?
    }

    /// The outcome if the commit is over, `None` while it runs. After `Some`, the outcome is
    /// gone: do not ask again.
    pub fn try_result(&mut self) -> Option<Result<T, E>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(E::from(Shutdown))),
        }
    }
}

impl<T, E: From<Shutdown>> std::future::Future for Pending<T, E> {
    type Output = Result<T, E>;

    /// Polling `&mut Pending` waits without consuming it (cancel-safe).
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(E::from(Shutdown))))
    }
}

/// Marker for "the writer is gone".
pub struct Shutdown;

impl From<Shutdown> for AppendError {
    fn from(_: Shutdown) -> Self {
        Self::ShuttingDown
    }
}
impl From<Shutdown> for TopicError {
    fn from(_: Shutdown) -> Self {
        Self::ShuttingDown
    }
}
impl From<Shutdown> for StateError {
    fn from(_: Shutdown) -> Self {
        Self::ShuttingDown
    }
}
impl From<Shutdown> for GroupError {
    fn from(_: Shutdown) -> Self {
        Self::ShuttingDown
    }
}

fn check_group(group: &str) -> Result<(), GroupError> {
    if group.is_empty() || group.len() > MAX_TOPIC_NAME_LEN {
        return Err(GroupError::InvalidGroup);
    }
    Ok(())
}

fn topic_defaults(config: &Config) -> TopicConfig {
    let d = &config.topic_defaults;
    TopicConfig {
        partitions: d.partitions,
        retention_ms: d.retention_ms(),
        retention_bytes: d.retention_bytes(),
        compression: d.compression,
        created_ms: 0,
    }
}

fn open_database(path: &Path, cache_bytes: u64, stats: Arc<Stats>) -> Result<Database, OpenError> {
    let mut builder = Database::builder();
    // Always sized: redb's default cache is 1 GiB (FIELD-NOTES.md).
    builder.set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX));
    // As `Builder::create` opens it, with writes and fsyncs counted.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(redb::DatabaseError::from)
        .and_then(|file| backend::CountingBackend::new(file, stats))
        .and_then(|backend| builder.create_with_backend(backend));
    opened.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse {
            path: path.to_owned(),
        },
        other => OpenError::Storage {
            path: path.to_owned(),
            source: other.into(),
        },
    })
}

/// Checks the format version and returns the gateway id, writing both on first open.
fn init_meta(db: &Database, path: &Path, configured_id: &str) -> Result<String, OpenError> {
    let storage = |source: StorageError| OpenError::Storage {
        path: path.to_owned(),
        source,
    };
    let run = || -> Result<Result<String, u32>, StorageError> {
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        let id = {
            let mut meta = txn.open_table(tables::META)?;
            let version = meta
                .get(tables::META_FORMAT_VERSION)?
                .map(|v| le_u32(v.value()));
            if let Some(found) = version.filter(|&v| v > tables::FORMAT_VERSION) {
                return Ok(Err(found));
            }
            meta.insert(
                tables::META_FORMAT_VERSION,
                tables::FORMAT_VERSION.to_le_bytes().as_slice(),
            )?;
            let stored = meta
                .get(tables::META_GATEWAY_ID)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            let id = match (configured_id, stored) {
                ("", Some(stored)) => stored,
                ("", None) => generate_gateway_id(),
                (configured, _) => configured.to_owned(),
            };
            meta.insert(tables::META_GATEWAY_ID, id.as_bytes())?;
            // Create the fixed tables so readers never see them missing.
            txn.open_table(tables::TOPICS)?;
            txn.open_table(tables::PARTITIONS)?;
            txn.open_table(tables::GROUPS)?;
            for table in tables::StateTable::ALL {
                txn.open_table(table.definition())?;
            }
            id
        };
        txn.commit()?;
        Ok(Ok(id))
    };
    match run().map_err(storage)? {
        Ok(id) => Ok(id),
        Err(found) => Err(OpenError::NewerFormat {
            path: path.to_owned(),
            found,
            supported: tables::FORMAT_VERSION,
        }),
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    let n = bytes.len().min(4);
    b[..n].copy_from_slice(&bytes[..n]);
    u32::from_le_bytes(b)
}

/// A random 16-hex-digit id, made once per log file.
fn generate_gateway_id() -> String {
    format!("gw-{:016x}", rand::random::<u64>())
}

/// Topic name → (config, partition metas), as stored.
pub(crate) type Loaded = HashMap<String, (TopicConfig, Vec<PartitionMeta>)>;

enum LoadError {
    Storage(StorageError),
    Decode(tables::DecodeError),
}

impl<E: Into<redb::Error>> From<E> for LoadError {
    fn from(e: E) -> Self {
        Self::Storage(StorageError::from(e))
    }
}

fn load_catalog(db: &Database) -> Result<Loaded, LoadError> {
    let txn = db.begin_read()?;
    let topics = txn.open_table(tables::TOPICS)?;
    let parts = txn.open_table(tables::PARTITIONS)?;
    let mut loaded = Loaded::new();
    for entry in topics.iter()? {
        let (name, value) = entry?;
        let config = TopicConfig::decode(value.value()).map_err(LoadError::Decode)?;
        let mut metas = Vec::with_capacity(config.partitions.min(MAX_PARTITIONS) as usize);
        for p in 0..config.partitions {
            let meta = match parts.get((name.value(), p))? {
                Some(v) => PartitionMeta::decode(v.value()).map_err(LoadError::Decode)?,
                None => PartitionMeta::EMPTY,
            };
            metas.push(meta);
        }
        loaded.insert(name.value().to_owned(), (config, metas));
    }
    Ok(loaded)
}

impl Fsync {
    /// Whether every commit is durable.
    pub fn every_commit(self) -> bool {
        matches!(self, Fsync::Always)
    }
}

#[cfg(test)]
mod log_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["sensors", "a.b_c-d", "X9"] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(250);
        for bad in ["", ".", "..", "a/b", "a b", "ü", long.as_str()] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
