//! The Kafka upstream, on rskafka.
//!
//! One rskafka [`Client`] per connection (bootstrap, metadata, broker connections), one
//! [`PartitionClient`] per upstream partition in use. Records are gathered per upstream
//! partition into batches (closed at the route's `batch_bytes` or when the forwarder flushes)
//! and produced with `acks = all`; the offsets in the produce response acknowledge them.
//!
//! What rskafka does not do, and this module does:
//! - Time limits. rskafka 0.6 has no request timeout: a produce to a hung or killed broker
//!   never returns, nor does `build()` against a port that never answers, and its internal
//!   retry of a refused connection backs off for ever (gaps up to 500 s). Every call runs
//!   under our own timeout (`connect_timeout_secs` for bootstrap, metadata and leader lookup;
//!   3 × `ack_timeout_secs` for a produce), and the forwarder's watchdog rebuilds the
//!   connection when nothing is acknowledged for `ack_timeout_secs`. A produce abandoned at
//!   its timeout may still land: the re-sent records are then duplicates (origin headers).
//! - Order. rskafka writes concurrent requests in the order they are first polled, but each
//!   retries on its own after a connection error, so with more than one request in flight a
//!   retried batch can land after a later one without any failure reaching us. The default
//!   `requests_in_flight = 1` keeps strict order per partition.
//! - Missing topics. A topic that does not exist upstream is looked up again every
//!   [`MISSING_RETRY`] and reported as the route's `upstream_problem` meanwhile, naming it.
//! - Too-large batches. A batch the broker refuses as too large is not re-sent as is: the
//!   partition's batches are limited to half as many records, down to one; a single record
//!   the broker refuses (too large, invalid) is skipped and counted, like MQTT's permanent
//!   refusals.
//!
//! Every produced record carries its key, value, timestamp and headers, plus the origin
//! headers `outpost-gateway`, `outpost-topic`, `outpost-partition` and `outpost-offset`
//! (decimal text), by which an upstream consumer recognizes the duplicates at-least-once
//! delivery allows. rskafka keeps headers in a map: they reach Kafka sorted by name, and of
//! a name given twice only the last value is kept.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::error::Error as KafkaError;
use std::future::Future as _;

use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{self, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use outpost_firmware::partition::partition_for_key;

use crate::config::{BridgeConfig, Compression, Partitioning, SaslMechanism};
use crate::template::{Fields, Template};
use crate::upstream::{MsgId, OutRecord, SendError, Upstream, UpstreamEvent, UpstreamPosition};

/// How long a topic found missing upstream waits before it is looked up again.
pub const MISSING_RETRY: Duration = Duration::from_secs(5);
/// How old known partition counts may get before they are looked up again (Kafka producers
/// refresh metadata every 5 minutes by default, too).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);
/// Bytes a record costs in a batch besides its key, value and header bytes (Kafka's varint
/// framing, an estimate on the high side).
const RECORD_OVERHEAD: usize = 24;
/// Bytes a header costs besides its name and value.
const HEADER_OVERHEAD: usize = 4;
/// A produce request may take this many times `ack_timeout_secs`.
const REQUEST_TIMEOUT_FACTOR: u64 = 3;
/// A Kafka topic name's longest length.
const MAX_TOPIC_LEN: usize = 249;

/// Why the Kafka upstream could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("bridge `{bridge}`: {problem}")]
pub struct SetupError {
    bridge: String,
    problem: String,
}

/// An upstream partition: topic and partition number.
type PartKey = (Arc<str>, u32);

struct Route {
    template: Template,
    partitioning: Partitioning,
    compression: partition::Compression,
    batch_bytes: usize,
}

/// What is known about an upstream topic on this connection.
enum TopicState {
    /// A metadata lookup is under way.
    Looking,
    /// It exists with this many partitions (as of `at`).
    Known { partitions: u32, at: Instant },
    /// It did not exist at the last lookup; looked up again after `retry_at`.
    Missing { retry_at: Instant },
}

/// A batch on its way: the records and the ids they acknowledge, in order.
struct Batch {
    records: Vec<Record>,
    ids: Vec<MsgId>,
    bytes: usize,
    compression: partition::Compression,
}

/// An upstream partition in use on this connection. Its task (see [`partition_task`]) finds
/// the leader, then produces the batches sent to it, in order.
struct PartState {
    /// The leader is known: records are taken.
    ready: bool,
    /// The batch being filled.
    open: Option<Batch>,
    /// Closed batches, to the partition's task.
    batches: mpsc::UnboundedSender<Batch>,
}

/// What the connection's tasks report. Each task sends exactly one, so the channel holds at
/// most one per task: bounded by the number of lookups and produce requests in flight.
enum Raw {
    Connected(Result<Client, String>),
    Topics(Result<Vec<(String, u32)>, String>),
    PartitionReady {
        key: PartKey,
        result: Result<(), Failure>,
    },
    Produced {
        key: PartKey,
        ids: Vec<MsgId>,
        result: Result<Vec<i64>, Failure>,
    },
}

/// What went wrong with a request, as far as the forwarder cares.
#[derive(Debug)]
enum Failure {
    /// The broker refuses these records as they are (too large, invalid): a single record
    /// is skipped; a batch is split.
    Refused(String),
    /// The topic or partition does not exist upstream.
    Missing(String),
    /// Anything else: the connection is rebuilt and the records re-sent.
    Other(String),
}

struct Conn {
    client: Option<Arc<Client>>,
    tx: mpsc::UnboundedSender<Raw>,
    rx: mpsc::UnboundedReceiver<Raw>,
    /// Every task of this connection; dropping the connection aborts them.
    tasks: JoinSet<()>,
    topics: HashMap<Arc<str>, TopicState>,
    parts: HashMap<PartKey, PartState>,
    /// Partitions with an open batch.
    open: Vec<PartKey>,
    /// Events decoded and not yet handed to the forwarder.
    pending: VecDeque<UpstreamEvent>,
    /// A topic lookup is under way.
    listing: bool,
}

/// A Kafka upstream (one client per bridge).
pub struct KafkaUpstream {
    name: String,
    brokers: Vec<String>,
    client_id: String,
    gateway: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<SaslConfig>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_record: usize,
    requests_in_flight: usize,
    routes: Vec<Route>,
    /// The problem each route has now (reported when it changes).
    problems: Vec<Option<String>>,
    /// Partitions whose broker refused a batch as too large: the most records per batch.
    max_records: HashMap<PartKey, usize>,
    conn: Option<Conn>,
    /// Events of a connection that ended (its last acknowledgements, then `Failed`), still
    /// to be handed to the forwarder.
    failed: VecDeque<UpstreamEvent>,
    topic_buf: String,
}

/// Why `send_on` did not take a record.
enum Refusal {
    /// Try again later (connecting, looking up metadata).
    NotReady(String),
    /// The route cannot send until something changes upstream (reported in its status).
    Problem(String),
    /// The record can never be sent.
    TooLarge(String),
}

impl KafkaUpstream {
    /// Builds the upstream of `config` (reading its TLS files and checking its topic names
    /// now, so mistakes show at start).
    pub fn new(config: &BridgeConfig, gateway: &str) -> Result<Self, SetupError> {
        let err = |problem: String| SetupError {
            bridge: config.name.clone(),
            problem,
        };
        let url = config.kafka_url().map_err(|e| err(e.to_string()))?;
        let tls = if url.tls {
            let ca = config.ca_file.as_deref().ok_or_else(|| {
                err("a kafkas:// upstream needs `ca_file` (the CA that signed the brokers' certificates)".to_owned())
            })?;
            let client_cert = match (&config.client_cert_file, &config.client_key_file) {
                (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
                _ => None,
            };
            Some(Arc::new(
                crate::tls::client_config(ca, client_cert).map_err(err)?,
            ))
        } else {
            None
        };
        let sasl = config.sasl().map(|(m, user, password)| {
            let c = Credentials::new(user, password);
            match m {
                SaslMechanism::Plain => SaslConfig::Plain(c),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(c),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(c),
            }
        });
        let mut routes = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let text = config.upstream_topic(r);
            let template = Template::parse(text).map_err(err)?;
            // The name depends only on the gateway, the log topic and the partition: check
            // what partition 0 renders to (other partitions differ in digits only).
            let mut name = String::new();
            template.render(
                &Fields {
                    gateway,
                    topic: &r.topic,
                    partition: 0,
                    key: None,
                    mqtt_topic: None,
                },
                &mut name,
            );
            check_topic_name(&name).map_err(|p| {
                err(format!(
                    "route `{}`: upstream_topic {text:?} gives {name:?}: {p}",
                    r.name()
                ))
            })?;
            routes.push(Route {
                template,
                partitioning: r.partitioning,
                compression: match r.compression {
                    Compression::None => partition::Compression::NoCompression,
                    Compression::Gzip => partition::Compression::Gzip,
                    Compression::Snappy => partition::Compression::Snappy,
                },
                batch_bytes: r.batch_bytes as usize,
            });
        }
        Ok(Self {
            name: config.name.clone(),
            brokers: url.brokers,
            client_id: config.client_id(gateway),
            gateway: gateway.to_owned(),
            tls,
            sasl,
            connect_timeout: Duration::from_secs(u64::from(config.connect_timeout_secs)),
            // The forwarder's watchdog rebuilds the connection when nothing is acknowledged
            // for `ack_timeout_secs`; this bound is for one request stuck while others
            // progress. It is generous because a request also waits behind the others the
            // broker is serving (a 5 s limit re-sent healthy windows to a busy broker).
            request_timeout: Duration::from_secs(
                u64::from(config.ack_timeout_secs).saturating_mul(REQUEST_TIMEOUT_FACTOR),
            ),
            max_record: config.max_packet_bytes as usize,
            requests_in_flight: config.requests_in_flight.max(1) as usize,
            problems: vec![None; routes.len()],
            routes,
            max_records: HashMap::new(),
            conn: None,
            failed: VecDeque::new(),
            topic_buf: String::new(),
        })
    }

    /// rskafka retries refused connections and leader changes by itself, for ever unless its
    /// backoff has a deadline. The deadline keeps those retries short, but they are nested
    /// (produce → leader → connect → metadata): a 5 s deadline was measured returning after
    /// 24 s. Only our own timeouts bound a call.
    fn backoff(&self, limit: Duration) -> rskafka::BackoffConfig {
        rskafka::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(
                limit
                    .saturating_sub(Duration::from_millis(500))
                    .max(Duration::from_millis(500)),
            ),
        }
    }

    /// A client builder for the bootstrap brokers with our TLS, SASL and `backoff`.
    fn client_builder(&self, backoff: rskafka::BackoffConfig) -> ClientBuilder {
        let mut builder = ClientBuilder::new(self.brokers.clone())
            .client_id(self.client_id.as_str())
            .max_message_size(self.max_record.saturating_mul(2).max(16 << 20))
            .backoff_config(backoff);
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone());
        }
        if let Some(sasl) = &self.sasl {
            builder = builder.sasl_config(sasl.clone());
        }
        builder
    }

    /// Sets a route's problem; queues an event when it changed.
    fn set_problem(&mut self, route: usize, problem: Option<String>) {
        if self.problems[route] != problem {
            self.problems[route].clone_from(&problem);
            if let Some(conn) = self.conn.as_mut() {
                conn.pending
                    .push_back(UpstreamEvent::RouteProblem { route, problem });
            }
        }
    }

    /// Starts a lookup of every topic's partition count.
    fn list_topics(&self, conn: &mut Conn) {
        let Some(client) = conn.client.clone() else {
            return;
        };
        if conn.listing {
            return;
        }
        conn.listing = true;
        let tx = conn.tx.clone();
        let limit = self.connect_timeout;
        conn.tasks.spawn(async move {
            let result = match tokio::time::timeout(limit, client.list_topics()).await {
                Ok(Ok(topics)) => Ok(topics
                    .into_iter()
                    .map(|t| (t.name, t.partitions.len() as u32))
                    .collect()),
                Ok(Err(e)) => Err(format!("metadata request failed: {e}")),
                Err(_) => Err(format!(
                    "metadata request: no answer within {} s",
                    limit.as_secs()
                )),
            };
            let _ = tx.send(Raw::Topics(result));
        });
    }

    /// Starts the partition's task (leader lookup, then its produce requests).
    fn open_partition(&self, conn: &mut Conn, key: PartKey) {
        let Some(client) = conn.client.clone() else {
            return;
        };
        let (batches, rx) = mpsc::unbounded_channel();
        conn.parts.insert(
            key.clone(),
            PartState {
                ready: false,
                open: None,
                batches,
            },
        );
        conn.tasks.spawn(partition_task(
            client,
            key,
            rx,
            conn.tx.clone(),
            Limits {
                lookup: self.connect_timeout,
                request: self.request_timeout,
                in_flight: self.requests_in_flight,
            },
        ));
    }

    /// Hands the open batch of `key` to its task.
    fn close_batch(conn: &mut Conn, key: &PartKey) {
        if let Some(p) = conn.parts.get_mut(key) {
            if let Some(b) = p.open.take() {
                // The task lives as long as the connection; if it ended, the watchdog notices
                // the records never acknowledged.
                let _ = p.batches.send(b);
            }
        }
    }

    /// What a task's report means for the forwarder; events go to `conn.pending`.
    fn on_raw(&mut self, raw: Raw) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let keep = self.handle(&mut conn, raw);
        if keep {
            self.conn = Some(conn);
        }
        // Route problems decided while handling land in the (kept) connection's queue.
    }

    /// Handles one report; returns whether the connection lives on.
    fn handle(&mut self, conn: &mut Conn, raw: Raw) -> bool {
        match raw {
            Raw::Connected(Ok(client)) => {
                conn.client = Some(Arc::new(client));
                conn.pending.push_back(UpstreamEvent::Connected {
                    session_present: false,
                });
                true
            }
            Raw::Connected(Err(reason)) | Raw::Topics(Err(reason)) => {
                self.fail_with(conn, reason);
                false
            }
            Raw::Topics(Ok(list)) => {
                conn.listing = false;
                let now = Instant::now();
                let found: HashMap<&str, u32> =
                    list.iter().map(|(n, c)| (n.as_str(), *c)).collect();
                for (name, state) in conn.topics.iter_mut() {
                    *state = match found.get(&**name) {
                        Some(&partitions) if partitions > 0 => TopicState::Known {
                            partitions,
                            at: now,
                        },
                        _ => TopicState::Missing {
                            retry_at: now + MISSING_RETRY,
                        },
                    };
                }
                conn.pending.push_back(UpstreamEvent::Ready);
                true
            }
            Raw::PartitionReady { key, result } => match result {
                Ok(()) => {
                    if let Some(p) = conn.parts.get_mut(&key) {
                        p.ready = true;
                    }
                    conn.pending.push_back(UpstreamEvent::Ready);
                    true
                }
                Err(Failure::Missing(why)) => {
                    // The topic went away (or lost partitions) since the metadata lookup.
                    conn.parts.remove(&key);
                    conn.topics.insert(
                        key.0.clone(),
                        TopicState::Missing {
                            retry_at: Instant::now() + MISSING_RETRY,
                        },
                    );
                    tracing::debug!(bridge = self.name, why, "upstream partition missing");
                    conn.pending.push_back(UpstreamEvent::Ready);
                    true
                }
                Err(Failure::Refused(reason) | Failure::Other(reason)) => {
                    self.fail_with(conn, reason);
                    false
                }
            },
            Raw::Produced { key, ids, result } => match result {
                Ok(offsets) => {
                    acked(&mut conn.pending, key.1, &ids, &offsets);
                    true
                }
                Err(Failure::Refused(reason)) if ids.len() == 1 => {
                    // The record that made its batches too large is skipped: full batches
                    // again.
                    self.max_records.remove(&key);
                    conn.pending.push_back(UpstreamEvent::Rejected {
                        id: ids[0],
                        reason: format!("Kafka refused the record ({}/{}): {reason}", key.0, key.1),
                        permanent: true,
                    });
                    true
                }
                Err(Failure::Refused(reason)) => {
                    let half = (ids.len() / 2).max(1);
                    self.max_records.insert(key.clone(), half);
                    self.fail_with(
                            conn,
                            format!(
                                "Kafka refused a batch of {} records to {}/{} ({reason}); sending at most {half} per request from now on",
                                ids.len(),
                                key.0,
                                key.1
                            ),
                        );
                    false
                }
                Err(Failure::Missing(reason)) => {
                    // The connection (and what it knew of topics) goes; the next one looks the
                    // topic up again and reports it on its route if it is still missing.
                    self.fail_with(conn, format!("{}/{}: {reason}", key.0, key.1));
                    false
                }
                Err(Failure::Other(reason)) => {
                    self.fail_with(conn, reason);
                    false
                }
            },
        }
    }

    /// Ends the connection: what is pending (acknowledgements that arrived before the failure)
    /// is kept in `failed`, then the failure.
    fn fail_with(&mut self, conn: &mut Conn, reason: String) {
        let mut pending = std::mem::take(&mut conn.pending);
        pending.push_back(UpstreamEvent::Failed { reason });
        self.failed = pending;
    }
}

impl KafkaUpstream {
    /// The `origin` partition: the gateway id placed as a key would be.
    fn gateway_partition(&self, partitions: u32) -> u32 {
        partition_for_key(self.gateway.as_bytes(), partitions)
    }

    /// The next event decided already: a dead connection's, then the live one's.
    fn take_pending(&mut self) -> Option<UpstreamEvent> {
        if let Some(ev) = self.failed.pop_front() {
            return Some(ev);
        }
        self.conn.as_mut()?.pending.pop_front()
    }

    /// Adds a record to the open batch of its upstream partition (looking up the topic and
    /// the partition's leader first, when they are not known on this connection).
    fn send_on(&mut self, conn: &mut Conn, id: MsgId, r: &OutRecord<'_>) -> Result<usize, Refusal> {
        if conn.client.is_none() {
            return Err(Refusal::NotReady("connecting".to_owned()));
        }
        let route = &self.routes[r.route];
        route.template.render(
            &Fields {
                gateway: &self.gateway,
                topic: r.topic,
                partition: r.partition,
                key: None,
                mqtt_topic: None,
            },
            &mut self.topic_buf,
        );
        let now = Instant::now();
        let topic: Arc<str> = match conn.topics.get_key_value(self.topic_buf.as_str()) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(self.topic_buf.as_str());
                conn.topics.insert(name.clone(), TopicState::Looking);
                name
            }
        };
        let partitions = match conn.topics.get(&topic) {
            Some(&TopicState::Known { partitions, at }) => {
                if now.duration_since(at) > METADATA_MAX_AGE {
                    self.list_topics(conn);
                }
                partitions
            }
            Some(&TopicState::Missing { retry_at }) => {
                if now >= retry_at {
                    self.list_topics(conn);
                }
                return Err(Refusal::Problem(format!(
                    "upstream topic `{topic}` does not exist in Kafka; create it (looked up again every {} s)",
                    MISSING_RETRY.as_secs()
                )));
            }
            _ => {
                self.list_topics(conn);
                return Err(Refusal::NotReady(format!(
                    "looking up upstream topic `{topic}`"
                )));
            }
        };
        let route = &self.routes[r.route];
        let p = match route.partitioning {
            Partitioning::Same if r.partition >= partitions => {
                return Err(Refusal::Problem(format!(
                    "upstream topic `{topic}` has {partitions} partitions; partitioning = \"same\" needs at least {} for log partition {}",
                    r.partition + 1,
                    r.partition
                )));
            }
            Partitioning::Same => r.partition,
            Partitioning::Key => match r.record.key {
                Some(k) => partition_for_key(k, partitions),
                None => r.partition % partitions,
            },
            Partitioning::Origin => self.gateway_partition(partitions),
        };
        let key: PartKey = (topic, p);
        match conn.parts.get(&key).map(|s| s.ready) {
            Some(true) => {}
            found => {
                if found.is_none() {
                    self.open_partition(conn, key.clone());
                }
                return Err(Refusal::NotReady(format!(
                    "finding the leader of {}/{p}",
                    key.0
                )));
            }
        }
        let (record, size) = to_record(&self.gateway, r);
        if size > self.max_record {
            return Err(Refusal::TooLarge(format!(
                "about {size} bytes > max_packet_bytes ({})",
                self.max_record
            )));
        }
        let max_records = self.max_records.get(&key).copied().unwrap_or(usize::MAX);
        let (compression, batch_bytes) = (route.compression, route.batch_bytes);
        let Some(part) = conn.parts.get_mut(&key) else {
            return Err(Refusal::NotReady("partition state lost".to_owned()));
        };
        let full = part.open.as_ref().is_some_and(|b| {
            b.bytes + size > batch_bytes
                || b.records.len() >= max_records
                || b.compression != compression
        });
        if full {
            // A full batch goes out now; the forwarder's flush sends the rest.
            if let Some(b) = part.open.take() {
                let _ = part.batches.send(b);
            }
        }
        let batch = match part.open.as_mut() {
            Some(b) => b,
            None => {
                if !conn.open.contains(&key) {
                    conn.open.push(key.clone());
                }
                part.open.insert(Batch {
                    records: Vec::new(),
                    ids: Vec::new(),
                    bytes: 0,
                    compression,
                })
            }
        };
        batch.records.push(record);
        batch.ids.push(id);
        batch.bytes += size;
        Ok(size)
    }
}

/// Time and concurrency limits of a partition's task.
#[derive(Clone, Copy)]
struct Limits {
    lookup: Duration,
    request: Duration,
    in_flight: usize,
}

/// One upstream partition: finds its leader (reported as [`Raw::PartitionReady`]), then
/// produces the batches it receives, up to `in_flight` at a time, reporting each outcome.
///
/// Order: each produce future is polled once before the next batch is taken, which puts its
/// request in the broker connection's write queue (rskafka writes under a fair lock), so
/// requests reach the broker in batch order even when several are in flight. Separate tasks
/// per request would race for the socket.
async fn partition_task(
    client: Arc<Client>,
    key: PartKey,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    tx: mpsc::UnboundedSender<Raw>,
    limits: Limits,
) {
    let lookup =
        client.partition_client(key.0.to_string(), key.1 as i32, UnknownTopicHandling::Error);
    let pc = match tokio::time::timeout(limits.lookup, lookup).await {
        Ok(Ok(c)) => Arc::new(c),
        Ok(Err(e)) => {
            let _ = tx.send(Raw::PartitionReady {
                key,
                result: Err(classify(&e, "leader lookup")),
            });
            return;
        }
        Err(_) => {
            let failure = Failure::Other(format!(
                "leader lookup for {}/{}: no answer within {} s",
                key.0,
                key.1,
                limits.lookup.as_secs()
            ));
            let _ = tx.send(Raw::PartitionReady {
                key,
                result: Err(failure),
            });
            return;
        }
    };
    let _ = tx.send(Raw::PartitionReady {
        key: key.clone(),
        result: Ok(()),
    });
    let mut requests = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(done) = requests.join_next(), if !requests.is_empty() => {
                let Ok(raw) = done else { return };
                if tx.send(raw).is_err() {
                    return;
                }
            }
            batch = batches.recv(), if requests.len() < limits.in_flight => {
                let Some(batch) = batch else { return };
                let mut request = Box::pin(produce(pc.clone(), key.clone(), batch, limits.request));
                // The first poll writes the request (or queues it for the socket) in order.
                match std::future::poll_fn(|cx| std::task::Poll::Ready(request.as_mut().poll(cx))).await {
                    std::task::Poll::Ready(raw) => {
                        if tx.send(raw).is_err() {
                            return;
                        }
                    }
                    std::task::Poll::Pending => {
                        requests.spawn(request);
                    }
                }
            }
        }
    }
}

/// One produce request under our time limit.
async fn produce(pc: Arc<PartitionClient>, key: PartKey, batch: Batch, limit: Duration) -> Raw {
    let Batch {
        records,
        ids,
        compression,
        ..
    } = batch;
    let result = match tokio::time::timeout(limit, pc.produce(records, compression)).await {
        Ok(Ok(offsets)) => Ok(offsets),
        Ok(Err(e)) => Err(classify(&e, "produce")),
        Err(_) => Err(Failure::Other(format!(
            "produce to {}/{}: no answer within {} s (broker hung or overloaded)",
            key.0,
            key.1,
            limit.as_secs()
        ))),
    };
    Raw::Produced { key, ids, result }
}

/// The acknowledgements of a produced batch: runs of consecutive offsets of one slot.
fn acked(out: &mut VecDeque<UpstreamEvent>, partition: u32, ids: &[MsgId], offsets: &[i64]) {
    let mut i = 0;
    while i < ids.len() {
        let first = ids[i];
        let mut j = i + 1;
        while j < ids.len()
            && ids[j].slot == first.slot
            && ids[j].offset == first.offset + (j - i) as u64
        {
            j += 1;
        }
        let position = offsets
            .get(j - 1)
            .and_then(|&o| u64::try_from(o).ok())
            .map(|offset| UpstreamPosition { partition, offset });
        out.push_back(UpstreamEvent::Acked {
            slot: first.slot,
            offsets: first.offset..first.offset + (j - i) as u64,
            position,
        });
        i = j;
    }
}

/// Sorts an rskafka error into what the forwarder does about it.
fn classify(e: &KafkaError, what: &str) -> Failure {
    if let KafkaError::ServerError {
        protocol_error,
        error_message,
        ..
    } = e
    {
        let text = match error_message {
            Some(m) => format!("{protocol_error}: {m}"),
            None => protocol_error.to_string(),
        };
        match protocol_error {
            ProtocolError::MessageTooLarge
            | ProtocolError::RecordListTooLarge
            | ProtocolError::InvalidRecord
            | ProtocolError::CorruptMessage => return Failure::Refused(text),
            ProtocolError::UnknownTopicOrPartition => return Failure::Missing(text),
            _ => return Failure::Other(format!("{what}: Kafka answered {text}")),
        }
    }
    Failure::Other(format!("{what}: {e}"))
}

/// Checks a Kafka topic name: 1-249 characters of `A-Z a-z 0-9 . _ -`, not `.` or `..`.
fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "a Kafka topic name has 1-{MAX_TOPIC_LEN} characters"
        ));
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are not Kafka topic names".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed in a Kafka topic name (use A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// The record as rskafka takes it, with the origin headers; and its size estimate.
fn to_record(gateway: &str, r: &OutRecord<'_>) -> (Record, usize) {
    let rec = r.record;
    let mut headers = BTreeMap::new();
    for &(k, v) in rec.headers {
        if !k.starts_with("outpost-") {
            headers.insert(k.to_owned(), v.to_vec());
        }
    }
    headers.insert("outpost-gateway".to_owned(), gateway.as_bytes().to_vec());
    headers.insert("outpost-topic".to_owned(), r.topic.as_bytes().to_vec());
    headers.insert(
        "outpost-partition".to_owned(),
        r.partition.to_string().into_bytes(),
    );
    headers.insert(
        "outpost-offset".to_owned(),
        rec.offset.to_string().into_bytes(),
    );
    let size = RECORD_OVERHEAD
        + rec.key.map_or(0, <[u8]>::len)
        + rec.value.len()
        + headers
            .iter()
            .map(|(k, v)| HEADER_OVERHEAD + k.len() + v.len())
            .sum::<usize>();
    let timestamp =
        rskafka::chrono::DateTime::from_timestamp_millis(rec.timestamp_ms).unwrap_or_default();
    (
        Record {
            key: rec.key.map(<[u8]>::to_vec),
            value: Some(rec.value.to_vec()),
            headers,
            timestamp,
        },
        size,
    )
}

impl Upstream for KafkaUpstream {
    fn connect(&mut self) {
        self.conn = None;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let limit = self.connect_timeout;
        let builder = self.client_builder(self.backoff(limit));
        let probe = self.client_builder(rskafka::BackoffConfig {
            deadline: Some(Duration::ZERO),
            ..self.backoff(limit)
        });
        let (brokers, task_tx) = (self.brokers.join(","), tx.clone());
        tasks.spawn(async move {
            let result = match tokio::time::timeout(limit, builder.build()).await {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(e)) => Err(format!("cannot connect to Kafka ({brokers}): {e}")),
                // rskafka retried until our limit without saying why (a refused SASL
                // password, a TLS failure: each attempt may take longer than its backoff
                // deadline counts): one attempt without retries names the cause.
                Err(_) => Err(match tokio::time::timeout(limit, probe.build()).await {
                    Ok(Err(e)) => format!(
                        "cannot connect to Kafka ({brokers}): no answer within {} s; one more \
                         attempt: {e}",
                        limit.as_secs()
                    ),
                    _ => format!(
                        "cannot connect to Kafka ({brokers}): no answer within {} s",
                        limit.as_secs()
                    ),
                }),
            };
            let _ = task_tx.send(Raw::Connected(result));
        });
        tracing::debug!(
            bridge = self.name,
            brokers = self.brokers.join(","),
            "connecting"
        );
        self.conn = Some(Conn {
            client: None,
            tx,
            rx,
            tasks,
            topics: HashMap::new(),
            parts: HashMap::new(),
            open: Vec::new(),
            pending: VecDeque::new(),
            listing: false,
        });
    }

    fn send(&mut self, id: MsgId, r: &OutRecord<'_>) -> Result<usize, SendError> {
        let Some(mut conn) = self.conn.take() else {
            return Err(SendError::NotReady("not connected".to_owned()));
        };
        let res = self.send_on(&mut conn, id, r);
        self.conn = Some(conn);
        match res {
            Ok(bytes) => {
                if self.problems[r.route].is_some() {
                    self.set_problem(r.route, None);
                }
                Ok(bytes)
            }
            Err(Refusal::NotReady(why)) => Err(SendError::NotReady(why)),
            Err(Refusal::Problem(why)) => {
                self.set_problem(r.route, Some(why.clone()));
                Err(SendError::NotReady(why))
            }
            Err(Refusal::TooLarge(why)) => Err(SendError::TooLarge(why)),
        }
    }

    fn flush(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        for key in std::mem::take(&mut conn.open) {
            Self::close_batch(&mut conn, &key);
        }
        self.conn = Some(conn);
    }

    async fn next_event(&mut self) -> UpstreamEvent {
        loop {
            if let Some(ev) = self.take_pending() {
                return ev;
            }
            let Some(conn) = self.conn.as_mut() else {
                return std::future::pending().await;
            };
            match conn.rx.recv().await {
                Some(raw) => self.on_raw(raw),
                // Unreachable while `conn` holds a sender; treat as lost.
                None => {
                    self.conn = None;
                    return UpstreamEvent::Failed {
                        reason: "the connection's tasks ended".to_owned(),
                    };
                }
            }
        }
    }

    fn try_next_event(&mut self) -> Option<UpstreamEvent> {
        loop {
            if let Some(ev) = self.take_pending() {
                return Some(ev);
            }
            let raw = self.conn.as_mut()?.rx.try_recv().ok()?;
            self.on_raw(raw);
        }
    }

    fn disconnect(&mut self) {
        // Dropping the connection aborts its tasks (the JoinSet) and rskafka's connections.
        self.conn = None;
        self.failed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceRecord;

    #[test]
    fn acknowledgements_group_runs_of_one_slot() {
        let id = |slot, offset| MsgId { slot, offset };
        let ids = [id(0, 5), id(0, 6), id(1, 9), id(0, 7), id(0, 9)];
        let mut out = VecDeque::new();
        acked(&mut out, 3, &ids, &[100, 101, 102, 103, 104]);
        let pos = |offset| {
            Some(UpstreamPosition {
                partition: 3,
                offset,
            })
        };
        assert_eq!(
            Vec::from(out),
            vec![
                UpstreamEvent::Acked {
                    slot: 0,
                    offsets: 5..7,
                    position: pos(101)
                },
                UpstreamEvent::Acked {
                    slot: 1,
                    offsets: 9..10,
                    position: pos(102)
                },
                UpstreamEvent::Acked {
                    slot: 0,
                    offsets: 7..8,
                    position: pos(103)
                },
                UpstreamEvent::Acked {
                    slot: 0,
                    offsets: 9..10,
                    position: pos(104)
                },
            ]
        );
    }

    #[test]
    fn topic_names() {
        assert!(check_topic_name("edge-gw1.sensors_2").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_keep_fields_and_carry_their_origin() {
        let headers = [("unit", &b"C"[..]), ("outpost-offset", &b"forged"[..])];
        let rec = SourceRecord {
            offset: 42,
            timestamp_ms: 1_700_000_000_123,
            key: Some(b"k"),
            value: b"21.5",
            headers: &headers,
        };
        let r = OutRecord {
            route: 0,
            topic: "sensors",
            partition: 2,
            record: &rec,
        };
        let (k, size) = to_record("gw1", &r);
        assert_eq!(k.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(k.value.as_deref(), Some(&b"21.5"[..]));
        assert_eq!(k.timestamp.timestamp_millis(), 1_700_000_000_123);
        let h = |n: &str| {
            k.headers
                .get(n)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(h("unit").as_deref(), Some("C"));
        assert_eq!(h("outpost-gateway").as_deref(), Some("gw1"));
        assert_eq!(h("outpost-topic").as_deref(), Some("sensors"));
        assert_eq!(h("outpost-partition").as_deref(), Some("2"));
        // A record cannot forge its origin.
        assert_eq!(h("outpost-offset").as_deref(), Some("42"));
        assert!(size > k.approximate_size());
    }
}
