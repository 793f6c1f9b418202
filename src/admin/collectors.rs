//! The broker's metric families: what each one reports and where the value comes from.
//!
//! Counters of the log and the MQTT broker are [`Stat`] tables over their existing atomics;
//! the rest are [`Collector`]s that compute their series at scrape time from live state.
//! Per-partition, consumer-group and bridge series exist only for partitions, committed
//! offsets and routes that exist: their number grows with the topics (a gateway with thousands
//! of partitions serves thousands of series per such family), and consumer-group series stop
//! at [`MAX_GROUP_SERIES`].

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use outpost_bridge::StatusBoard;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

use super::counters::ConnectionStats;
use super::metrics::{counter, counter_family, gauge, gauge_family, Kind, Stat};
use super::system;
use crate::log::Log;
use crate::mqtt::broker::Broker;

/// Most consumer-group offsets reported in one scrape (the rest are left out).
pub const MAX_GROUP_SERIES: usize = 10_000;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Counters of [`crate::log::Stats`].
pub const LOG_STATS: &[Stat<Log>] = &[
    Stat {
        name: "outpost_log_records_appended",
        help: "Records appended to the log, from every protocol.",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().records_appended),
    },
    Stat {
        name: "outpost_log_appended_bytes",
        help: "Bytes of record batches appended to the log, as stored (after compression).",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().bytes_appended),
    },
    Stat {
        name: "outpost_log_commits",
        help: "Write transactions committed by the log writer (one per group of requests).",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().commits),
    },
    Stat {
        name: "outpost_log_durable_commits",
        help: "Commits made durable on disk (fsynced) when they returned.",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().durable_commits),
    },
    Stat {
        name: "outpost_log_fsyncs",
        help: "fsync calls on the log file: one or two per durable commit, a few more when the file is opened.",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().fsyncs),
    },
    Stat {
        name: "outpost_log_writer_requests",
        help: "Requests answered by the log writer: appends, topic changes, offset commits, retention deletes, broker state.",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().requests),
    },
    Stat {
        name: "outpost_log_file_written_bytes",
        help: "Bytes the log store wrote to its file (pages and headers, before the page cache; compare outpost_disk_written_bytes_total for what reached the device).",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().file_bytes_written),
    },
    Stat {
        name: "outpost_retention_deleted_batches",
        help: "Record batches deleted by retention (age, size or free-disk limits).",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().retention_batches),
    },
    Stat {
        name: "outpost_retention_deleted_records",
        help: "Records deleted by retention (age, size or free-disk limits).",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().retention_records),
    },
    Stat {
        name: "outpost_retention_deleted_bytes",
        help: "Stored batch bytes deleted by retention (age, size or free-disk limits).",
        kind: Kind::Counter,
        labels: &[],
        read: |l| load(&l.stats().retention_bytes),
    },
];

/// Counters of [`crate::auth::Security`]: failed logins, ACL denials per action, reloads.
pub const AUTH_STATS: &[Stat<crate::auth::Security>] = &[
    Stat {
        name: "outpost_auth_failures",
        help: "Failed logins: wrong or unknown credentials, refused anonymous clients, wills refused at CONNECT, failed binary-protocol Authenticate.",
        kind: Kind::Counter,
        labels: &[],
        read: |s| s.denials().auth,
    },
    Stat {
        name: "outpost_acl_denied",
        help: "Requests the ACL refused, by action.",
        kind: Kind::Counter,
        labels: &[("action", "publish")],
        read: |s| s.denials().publish,
    },
    Stat {
        name: "outpost_acl_denied",
        help: "Requests the ACL refused, by action.",
        kind: Kind::Counter,
        labels: &[("action", "subscribe")],
        read: |s| s.denials().subscribe,
    },
    Stat {
        name: "outpost_acl_denied",
        help: "Requests the ACL refused, by action.",
        kind: Kind::Counter,
        labels: &[("action", "consume")],
        read: |s| s.denials().consume,
    },
    Stat {
        name: "outpost_acl_denied",
        help: "Requests the ACL refused, by action.",
        kind: Kind::Counter,
        labels: &[("action", "admin")],
        read: |s| s.denials().admin,
    },
    Stat {
        name: "outpost_auth_reloads",
        help: "Reloads (SIGHUP) of the password file and ACL that succeeded.",
        kind: Kind::Counter,
        labels: &[],
        read: |s| s.denials().reloads,
    },
    Stat {
        name: "outpost_auth_reload_failures",
        help: "Reloads of the password file and ACL that failed (the previous files stay in force).",
        kind: Kind::Counter,
        labels: &[],
        read: |s| s.denials().reload_failures,
    },
];

/// Device traffic ([`crate::devices::DeviceCounters`]) and the registry's size.
pub const DEVICE_STATS: &[Stat<crate::devices::Devices>] = &[
    Stat {
        name: "outpost_device_hellos",
        help: "DeviceHello frames accepted over TCP (devices let in).",
        kind: Kind::Counter,
        labels: &[],
        read: |d| load(&d.counters().hellos),
    },
    Stat {
        name: "outpost_device_configs_sent",
        help: "Stored device configs sent to devices (in DeviceHelloAck and ConfigReply).",
        kind: Kind::Counter,
        labels: &[],
        read: |d| load(&d.counters().configs_sent),
    },
    Stat {
        name: "outpost_device_token_failures",
        help: "Devices refused for a wrong token, by transport (each also counts in outpost_auth_failures_total over TCP).",
        kind: Kind::Counter,
        labels: &[("transport", "tcp")],
        read: |d| load(&d.counters().token_failures_tcp),
    },
    Stat {
        name: "outpost_device_token_failures",
        help: "Devices refused for a wrong token, by transport (each also counts in outpost_auth_failures_total over TCP).",
        kind: Kind::Counter,
        labels: &[("transport", "udp")],
        read: |d| load(&d.counters().token_failures_udp),
    },
    Stat {
        name: "outpost_devices_stored",
        help: "Devices stored with outpost devices set/token.",
        kind: Kind::Gauge,
        labels: &[],
        read: |d| d.count() as u64,
    },
    Stat {
        name: "outpost_devices_connected",
        help: "Devices with a binary-protocol TCP connection open now.",
        kind: Kind::Gauge,
        labels: &[],
        read: |d| d.connected() as u64,
    },
];

/// Counters of [`crate::mqtt::broker::MqttStats`] that have no `protocol`-labelled family.
pub const MQTT_STATS: &[Stat<Broker>] = &[
    Stat {
        name: "outpost_mqtt_clients_connected",
        help: "MQTT clients connected now (CONNECT accepted, connection open).",
        kind: Kind::Gauge,
        labels: &[],
        read: |b| load(&b.stats().clients_connected),
    },
    Stat {
        name: "outpost_mqtt_payload_received_bytes",
        help: "Payload bytes of PUBLISH packets accepted from MQTT clients.",
        kind: Kind::Counter,
        labels: &[],
        read: |b| load(&b.stats().bytes_received),
    },
    Stat {
        name: "outpost_mqtt_payload_sent_bytes",
        help: "Payload bytes of PUBLISH packets sent to MQTT clients.",
        kind: Kind::Counter,
        labels: &[],
        read: |b| load(&b.stats().bytes_sent),
    },
    Stat {
        name: "outpost_mqtt_dropped_messages",
        help: "MQTT deliveries dropped for any reason (session queue full, message expired, too large for the client) and QoS 0 publishes refused for a full partition; $SYS/broker/messages/dropped.",
        kind: Kind::Counter,
        labels: &[],
        read: |b| load(&b.stats().messages_dropped),
    },
    Stat {
        name: "outpost_mqtt_queue_full_dropped_messages",
        help: "MQTT deliveries dropped because the subscriber's session queue was full: a slow (or offline persistent) subscriber. The messages are still in the log.",
        kind: Kind::Counter,
        labels: &[],
        read: |b| load(&b.stats().messages_dropped_queue_full),
    },
];

/// The process: memory, file descriptors, device writes, start time, version.
#[derive(Debug)]
pub struct ProcessCollector {
    start_secs: f64,
}

impl ProcessCollector {
    /// A collector for this process, started now.
    pub fn new() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        Self {
            start_secs: now.map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let info =
            enc.encode_descriptor("outpost_build", "Outpost version.", None, MetricType::Info)?;
        BuildInfo.encode(info)?;
        gauge(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, seconds.",
            self.start_secs,
        )?;
        if let Some(rss) = system::resident_bytes() {
            gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size, bytes.",
                rss,
            )?;
        }
        if let Some(fds) = system::open_fds() {
            gauge(
                &mut enc,
                "process_open_fds",
                "Open file descriptors (sockets included).",
                fds,
            )?;
        }
        if let Some(io) = system::proc_io() {
            counter(
                &mut enc,
                "outpost_disk_written_bytes",
                "Bytes this process caused to be written to block devices (Linux /proc/self/io write_bytes: page-cache writeback of the log file and anything else it wrote), what wears an SD card.",
                io.write_bytes,
            )?;
        }
        Ok(())
    }
}

/// `outpost_build_info{version="..."} 1`.
struct BuildInfo;

impl EncodeMetric for BuildInfo {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), fmt::Error> {
        encoder.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }
}

/// Connections, socket bytes and messages per listener (`protocol` label).
#[derive(Debug)]
pub struct TrafficCollector {
    /// The MQTT broker (messages sent), when MQTT is enabled.
    pub mqtt: Option<Broker>,
    /// Each listener's counters with its `protocol` label.
    pub listeners: Vec<(&'static str, Arc<ConnectionStats>)>,
}

impl Collector for TrafficCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snaps: Vec<_> = self
            .listeners
            .iter()
            .map(|(p, s)| ([("protocol", *p)], s.snapshot()))
            .collect();
        let rows = |f: fn(&super::counters::ConnectionSnapshot) -> u64| {
            snaps.iter().map(move |(l, s)| (*l, f(s)))
        };
        gauge_family(
            &mut enc,
            "outpost_connections",
            "Client connections open now.",
            rows(|s| s.open),
        )?;
        counter_family(
            &mut enc,
            "outpost_connections_accepted",
            "Client connections accepted (refused ones included).",
            rows(|s| s.accepted),
        )?;
        counter_family(
            &mut enc,
            "outpost_connections_refused",
            "Client connections refused because the listener's connection limit was reached.",
            rows(|s| s.refused),
        )?;
        counter_family(
            &mut enc,
            "outpost_tls_handshake_failures",
            "TLS handshakes that failed on a TLS listener (timeout, a plain-TCP client, a refused or missing client certificate).",
            rows(|s| s.tls_handshake_failures),
        )?;
        counter_family(
            &mut enc,
            "outpost_network_received_bytes",
            "Bytes read from client sockets.",
            rows(|s| s.bytes_received),
        )?;
        counter_family(
            &mut enc,
            "outpost_network_sent_bytes",
            "Bytes written to client sockets.",
            rows(|s| s.bytes_sent),
        )?;
        counter_family(
            &mut enc,
            "outpost_messages_received",
            "Messages received from clients: MQTT PUBLISH packets, binary-protocol records in produce frames.",
            rows(|s| s.messages_received),
        )?;
        let sent = self
            .mqtt
            .iter()
            .map(|b| ([("protocol", "mqtt")], load(&b.stats().messages_sent)));
        counter_family(
            &mut enc,
            "outpost_messages_sent",
            "Messages sent to clients: MQTT PUBLISH packets (the binary protocol serves fetched batches, counted in outpost_network_sent_bytes_total).",
            sent,
        )
    }
}

/// The log's live state: commit latency, partitions, consumer groups, file and disk.
pub struct LogCollector {
    /// The log.
    pub log: Log,
    /// Its file.
    pub log_path: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
}

impl fmt::Debug for LogCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogCollector")
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl Collector for LogCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let h = self.log.stats().commit_latency.snapshot();
        let mut m = enc.encode_descriptor(
            "outpost_log_commit_duration_seconds",
            "Time per log commit: applying a group of requests and committing it, fsync included when durable.",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum_secs, h.count, &h.buckets, None,
        )?;
        if let Ok(meta) = std::fs::metadata(&self.log_path) {
            gauge(
                &mut enc,
                "outpost_log_file_size_bytes",
                "Size of the log file (it never shrinks: freed pages are reused).",
                meta.len(),
            )?;
        }
        if let Some((free, size)) = system::disk_space(&self.data_dir) {
            gauge(
                &mut enc,
                "outpost_disk_free_bytes",
                "Free bytes (for unprivileged users) of the file system holding the data directory.",
                free,
            )?;
            gauge(
                &mut enc,
                "outpost_disk_size_bytes",
                "Size of the file system holding the data directory, bytes.",
                size,
            )?;
        }
        self.partitions(&mut enc)?;
        self.groups(&mut enc)
    }
}

impl LogCollector {
    fn partitions(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let topics: Vec<_> = self
            .log
            .list_topics()
            .iter()
            .filter_map(|t| self.log.describe_topic(t).ok())
            .collect();
        let metas = || {
            topics.iter().flat_map(|t| {
                t.partitions.iter().enumerate().map(move |(p, m)| {
                    // A partition index is below MAX_PARTITIONS (1024).
                    let labels = ([("topic", t.name.as_str())], [("partition", p as u32)]);
                    (labels, *m)
                })
            })
        };
        gauge_family(
            enc,
            "outpost_log_end_offset",
            "Log end offset of a partition: the offset the next record gets.",
            metas().map(|(l, m)| (l, m.end_offset)),
        )?;
        gauge_family(
            enc,
            "outpost_log_start_offset",
            "Log start offset of a partition: its oldest record still stored.",
            metas().map(|(l, m)| (l, m.start_offset)),
        )?;
        gauge_family(
            enc,
            "outpost_log_size_bytes",
            "Stored bytes of a partition (its record batches as stored).",
            metas().map(|(l, m)| (l, m.bytes)),
        )?;
        gauge_family(
            enc,
            "outpost_log_batches",
            "Record batches stored in a partition.",
            metas().map(|(l, m)| (l, m.batches)),
        )
    }

    fn groups(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        // A storage error leaves the families empty for this scrape; the log reports it.
        let offsets = self.log.group_offsets(MAX_GROUP_SERIES).unwrap_or_default();
        let rows: Vec<_> = offsets
            .iter()
            .filter_map(|g| {
                let end = self
                    .log
                    .partition_meta(&g.topic, g.partition)
                    .ok()?
                    .end_offset;
                let labels = (
                    [("group", g.group.as_str()), ("topic", g.topic.as_str())],
                    [("partition", g.partition)],
                );
                Some((labels, g.offset, end.saturating_sub(g.offset)))
            })
            .collect();
        gauge_family(
            enc,
            "outpost_consumer_group_offset",
            "Committed offset of a consumer group: the next offset it will read.",
            rows.iter().map(|(l, o, _)| (*l, *o)),
        )?;
        gauge_family(
            enc,
            "outpost_consumer_group_lag",
            "Records a consumer group has not consumed yet: log end offset minus committed offset.",
            rows.iter().map(|(l, _, lag)| (*l, *lag)),
        )
    }
}

/// Each bridge and route, from the bridges' status board.
#[derive(Debug)]
pub struct BridgeCollector {
    /// The board the forwarders keep fresh.
    pub board: StatusBoard,
}

impl Collector for BridgeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let bridges = self.board.snapshot();
        let per_bridge = || bridges.iter().map(|b| ([("bridge", b.name.as_str())], b));
        gauge_family(
            &mut enc,
            "outpost_bridge_connected",
            "1 while the bridge is connected upstream, else 0.",
            per_bridge().map(|(l, b)| (l, u64::from(b.connected))),
        )?;
        counter_family(
            &mut enc,
            "outpost_bridge_connect_attempts",
            "Upstream connection attempts of the bridge.",
            per_bridge().map(|(l, b)| (l, b.connect_attempts)),
        )?;
        counter_family(
            &mut enc,
            "outpost_bridge_connects",
            "Upstream connections of the bridge that reached CONNACK.",
            per_bridge().map(|(l, b)| (l, b.connects)),
        )?;
        let routes = || {
            bridges.iter().flat_map(|b| {
                b.routes
                    .iter()
                    .map(move |r| ([("bridge", b.name.as_str()), ("route", r.name.as_str())], r))
            })
        };
        gauge_family(
            &mut enc,
            "outpost_bridge_route_waiting",
            "1 while the route cannot forward (its log topic does not exist yet, or was deleted), else 0.",
            routes().map(|(l, r)| (l, u64::from(r.waiting.is_some()))),
        )?;
        let parts = || {
            routes().flat_map(|(l, r)| {
                r.partitions
                    .iter()
                    .map(move |p| ((l, [("partition", p.partition)]), p))
            })
        };
        gauge_family(
            &mut enc,
            "outpost_bridge_lag_records",
            "Records of a route's partition not yet acknowledged upstream.",
            parts().map(|(l, p)| (l, p.lag_records)),
        )?;
        gauge_family(
            &mut enc,
            "outpost_bridge_lag_seconds",
            "Age of the oldest record of a route's partition not yet acknowledged upstream (0 when none).",
            parts().map(|(l, p)| (l, p.lag_secs)),
        )?;
        gauge_family(
            &mut enc,
            "outpost_bridge_inflight_records",
            "Records of a route's partition sent upstream and not yet acknowledged.",
            parts().map(|(l, p)| (l, p.inflight)),
        )?;
        counter_family(
            &mut enc,
            "outpost_bridge_forwarded_records",
            "Records of a route's partition acknowledged upstream.",
            parts().map(|(l, p)| (l, p.forwarded)),
        )?;
        counter_family(
            &mut enc,
            "outpost_bridge_dropped_records",
            "Records of a route's partition never forwarded: deleted by retention first, or too large for the upstream.",
            parts().map(|(l, p)| (l, p.dropped)),
        )
    }
}
