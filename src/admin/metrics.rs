//! The metrics registry: which counter sources are exposed, and the helpers that write them in
//! the OpenMetrics text format (which Prometheus scrapes natively).
//!
//! Nothing is copied into metric objects as it happens: every value is read at scrape time
//! from counters that already exist (atomics in [`crate::log::Stats`],
//! [`crate::mqtt::broker::MqttStats`], [`ConnectionStats`]) or from live state (partition
//! metadata, the `groups` table, the bridges' [`StatusBoard`], the device registry, `/proc`,
//! `statvfs`). A scrape reads redb and `/proc`, so [`encode`] is meant for a blocking thread.
//!
//! # Adding a counter source
//! 1. Keep the counters where they are updated, as atomics in a struct shared by `Arc` (or
//!    reachable from a cheap-clone handle), e.g. `AuthStats { denials: AtomicU64, .. }`.
//! 2. Describe them in a `const` table of [`Stat`] rows (name without `_total`, help, kind,
//!    labels, a `fn` reading the value) and register a [`StatTable`]; or, for series computed
//!    from state, implement [`Collector`] with the helpers [`counter`], [`gauge`],
//!    [`counter_family`] and [`gauge_family`].
//! 3. Hand the handle over in [`Sources`] (or call `register_collector` on the registry
//!    [`registry`] returns) before the server sets it on the listener.
//!
//! Names follow Prometheus conventions: an `outpost_` prefix, base units (seconds, bytes),
//! counters written with a `_total` suffix (added by the encoder: a family name never ends in
//! `_total`). A family appears once per scrape, so series of one name from several sources
//! (a `protocol` label, say) come from one collector.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use outpost_bridge::StatusBoard;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::collectors::{BridgeCollector, LogCollector, ProcessCollector, TrafficCollector};
use super::counters::ConnectionStats;
use crate::log::Log;
use crate::mqtt::broker::Broker;

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a [`Stat`] row.
pub type StaticLabels = &'static [(&'static str, &'static str)];

/// Everything the metrics read.
pub struct Sources {
    /// The log: counters, partition metadata, consumer-group offsets.
    pub log: Log,
    /// The log file (its size on disk).
    pub log_path: PathBuf,
    /// The data directory (free space of its file system).
    pub data_dir: PathBuf,
    /// The MQTT broker, when MQTT is enabled.
    pub mqtt: Option<Broker>,
    /// The bridges' status.
    pub bridges: StatusBoard,
    /// Each listener's counters with its `protocol` label (`"wire"`, `"mqtt"`, ...).
    pub listeners: Vec<(&'static str, Arc<ConnectionStats>)>,
    /// Logins and ACL checks (their denial counters).
    pub security: crate::auth::Security,
    /// The device registry (device traffic counters, stored and connected devices).
    pub devices: crate::devices::Devices,
    /// The UDP socket's counters, when `[udp]` is enabled.
    pub udp: Option<Arc<crate::udp::UdpStats>>,
}

/// Builds the registry of every Outpost metric.
pub fn registry(sources: Sources) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(ProcessCollector::new()));
    r.register_collector(Box::new(TrafficCollector {
        mqtt: sources.mqtt.clone(),
        listeners: sources.listeners,
    }));
    r.register_collector(Box::new(StatTable::new(
        sources.log.clone(),
        super::collectors::LOG_STATS,
    )));
    r.register_collector(Box::new(LogCollector {
        log: sources.log,
        log_path: sources.log_path,
        data_dir: sources.data_dir,
    }));
    if let Some(broker) = sources.mqtt {
        r.register_collector(Box::new(StatTable::new(
            broker,
            super::collectors::MQTT_STATS,
        )));
    }
    r.register_collector(Box::new(BridgeCollector {
        board: sources.bridges,
    }));
    r.register_collector(Box::new(StatTable::new(
        sources.security,
        super::collectors::AUTH_STATS,
    )));
    r.register_collector(Box::new(StatTable::new(
        sources.devices,
        super::collectors::DEVICE_STATS,
    )));
    if let Some(udp) = sources.udp {
        r.register_collector(Box::new(StatTable::new(udp, crate::udp::UDP_STATS)));
    }
    r
}

/// The registry in the OpenMetrics text format, `# EOF` included.
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(16 << 10);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// Whether a [`Stat`] only goes up or goes both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic since start; written with a `_total` suffix.
    Counter,
    /// A current value.
    Gauge,
}

/// One series read from a source of type `T`.
pub struct Stat<T> {
    /// Family name, without `_total`.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The series' labels; rows of one family are consecutive and differ only here.
    pub labels: StaticLabels,
    /// Reads the value.
    pub read: fn(&T) -> u64,
}

/// A collector over a table of [`Stat`] rows: one family per run of rows with the same name.
pub struct StatTable<T: 'static> {
    source: T,
    stats: &'static [Stat<T>],
}

impl<T> StatTable<T> {
    /// Reads `stats` from `source` at each scrape.
    pub fn new(source: T, stats: &'static [Stat<T>]) -> Self {
        Self { source, stats }
    }
}

impl<T> fmt::Debug for StatTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.stats.iter().map(|s| s.name).collect();
        f.debug_struct("StatTable").field("stats", &names).finish()
    }
}

impl<T: Send + Sync + 'static> Collector for StatTable<T> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut rest = self.stats;
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|s| s.name == first.name).count();
            let (family, tail) = rest.split_at(n);
            let rows = family.iter().map(|s| (s.labels, (s.read)(&self.source)));
            let (name, help) = (first.name, first.help);
            match (first.kind, family) {
                // Unlabeled: `name 1`, not `name{} 1`.
                (Kind::Counter, [one]) if one.labels.is_empty() => {
                    counter(&mut encoder, name, help, (one.read)(&self.source))?
                }
                (Kind::Gauge, [one]) if one.labels.is_empty() => {
                    gauge(&mut encoder, name, help, (one.read)(&self.source))?
                }
                (Kind::Counter, _) => counter_family(&mut encoder, name, help, rows)?,
                (Kind::Gauge, _) => gauge_family(&mut encoder, name, help, rows)?,
            }
            rest = tail;
        }
        Ok(())
    }
}

/// Writes a counter family with one unlabeled series.
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// Writes a gauge family with one unlabeled series.
pub fn gauge<N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> fmt::Result {
    let metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// Writes a counter family with one series per `(labels, value)`.
pub fn counter_family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes a gauge family with one series per `(labels, value)`.
pub fn gauge_family<L: EncodeLabelSet, N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, N)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A plain-text body for scrape failures (the encoder writes to a `String`, so only a bug in
/// a collector makes it fail).
pub fn failure_text(e: fmt::Error) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "metrics encoding failed: {e}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Demo {
        a: AtomicU64,
        b: AtomicU64,
    }

    const DEMO: &[Stat<Arc<Demo>>] = &[
        Stat {
            name: "demo_things",
            help: "Things, by colour.",
            kind: Kind::Counter,
            labels: &[("colour", "red")],
            read: |d| d.a.load(Ordering::Relaxed),
        },
        Stat {
            name: "demo_things",
            help: "Things, by colour.",
            kind: Kind::Counter,
            labels: &[("colour", "blue")],
            read: |d| d.b.load(Ordering::Relaxed),
        },
        Stat {
            name: "demo_level_bytes",
            help: "A level.",
            kind: Kind::Gauge,
            labels: &[],
            read: |d| d.a.load(Ordering::Relaxed) * 2,
        },
    ];

    #[test]
    fn a_stat_table_writes_one_family_per_name() {
        let demo = Arc::new(Demo::default());
        demo.a.store(3, Ordering::Relaxed);
        demo.b.store(4, Ordering::Relaxed);
        let mut r = Registry::default();
        r.register_collector(Box::new(StatTable::new(demo, DEMO)));
        let text = encode(&r).unwrap();
        assert_eq!(
            text,
            "# HELP demo_things Things, by colour.\n\
             # TYPE demo_things counter\n\
             demo_things_total{colour=\"red\"} 3\n\
             demo_things_total{colour=\"blue\"} 4\n\
             # HELP demo_level_bytes A level.\n\
             # TYPE demo_level_bytes gauge\n\
             demo_level_bytes 6\n\
             # EOF\n"
        );
    }

    #[derive(Debug)]
    struct Labelled;

    impl Collector for Labelled {
        fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
            counter(&mut enc, "x_events", "Events.", 1)?;
            gauge(&mut enc, "x_ratio", "A ratio.", 0.5)?;
            let rows = [(([("group", "a\"b\\c\nd")], [("partition", 7u32)]), 9u64)];
            gauge_family(&mut enc, "x_lag", "Lag.", rows)?;
            counter_family(
                &mut enc,
                "x_empty",
                "None yet.",
                Vec::<([(&str, &str); 1], u64)>::new(),
            )
        }
    }

    #[test]
    fn helpers_write_labels_escaped_and_empty_families_bare() {
        let mut r = Registry::default();
        r.register_collector(Box::new(Labelled));
        let text = encode(&r).unwrap();
        assert!(text.contains("\nx_events_total 1\n"), "{text}");
        assert!(text.contains("\nx_ratio 0.5\n"), "{text}");
        assert!(
            text.contains("\nx_lag{group=\"a\\\"b\\\\c\\nd\",partition=\"7\"} 9\n"),
            "{text}"
        );
        assert!(
            text.ends_with("# HELP x_empty None yet.\n# TYPE x_empty counter\n# EOF\n"),
            "{text}"
        );
    }
}
