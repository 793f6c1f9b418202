//! `outpost bench produce|consume`: a load generator against a running broker.
//!
//! `produce` runs `--producers` connections, each keeping `--window` produce requests in
//! flight (sent in order, acks awaited oldest first), `--batch` records of `--record-size`
//! bytes per request, until `--records` records are acknowledged. It reports records/s, MB/s
//! and the ack latency of requests (p50/p99/p99.9, from send to ack), with a progress bar on
//! stderr. Numbers are for comparing configurations on one machine, not absolute.
//!
//! `mqtt` and `mqtt-idle` load any MQTT broker: see [`super::bench_mqtt`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use outpost_firmware::AckMode;

use super::{connect, CliError};
use crate::client::{ClientError, NewRecord};
use crate::log::reader::visit_records;
pub use outpost_cli_args::bench::{BenchCommand, ConsumeBench, ProduceBench};

/// Runs a `bench` subcommand.
pub async fn run(broker: &super::Endpoint, cmd: BenchCommand) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Produce(b) => produce(broker, b).await,
        BenchCommand::Consume(b) => consume(broker, b).await,
        // They log in with --user/--password; their TLS options are their own (--cafile
        // ...), as their address is (--addr, the MQTT listener).
        BenchCommand::Mqtt(b) => super::bench_mqtt::run(b, broker.credentials.as_ref()).await,
        BenchCommand::MqttIdle(b) => {
            super::bench_mqtt::run_idle(b, broker.credentials.as_ref()).await
        }
    }
}

struct ProducerResult {
    latencies: Histogram<u64>,
    records: u64,
}

async fn produce(broker: &super::Endpoint, b: ProduceBench) -> Result<(), CliError> {
    if b.producers == 0 || b.window == 0 || b.batch == 0 {
        return Err(CliError::Usage(
            "--producers, --window and --batch must be positive",
        ));
    }
    let admin = connect(broker, "bench").await?;
    match admin
        .create_topic(
            &b.topic,
            b.partitions,
            None,
            None,
            outpost_firmware::Compression::None,
        )
        .await
    {
        Ok(()) | Err(ClientError::Broker { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let bar = progress(&b);
    let per = b.records / u64::from(b.producers);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..b.producers {
        let quota = if i == 0 {
            per + b.records % u64::from(b.producers)
        } else {
            per
        };
        let (b2, bar, broker) = (b.clone(), bar.clone(), broker.clone());
        tasks.push(tokio::spawn(async move {
            producer(&broker, &b2, quota, &bar).await
        }));
    }
    let mut hist = new_histogram();
    let mut total = 0;
    for t in tasks {
        let r = t
            .await
            .map_err(|_| CliError::Usage("a producer task panicked"))??;
        // Same bounds on both sides: adding cannot fail.
        let _ = hist.add(&r.latencies);
        total += r.records;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    report(&b, total, elapsed, &hist);
    Ok(())
}

fn progress(b: &ProduceBench) -> Arc<ProgressBar> {
    let bar = if b.quiet || b.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(b.records)
    };
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Arc::new(bar)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits: fixed bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The alias `--alias` registers for the topic.
const BENCH_ALIAS: u16 = 1;

async fn producer(
    broker: &super::Endpoint,
    b: &ProduceBench,
    quota: u64,
    bar: &ProgressBar,
) -> Result<ProducerResult, CliError> {
    let client = connect(broker, "bench-producer").await?;
    if b.alias {
        client.register_alias(BENCH_ALIAS, &b.topic, None).await?;
    }
    let value: Vec<u8> = (0..b.record_size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut hist = new_histogram();
    let mut inflight: VecDeque<(Instant, crate::client::PendingAck, u32)> = VecDeque::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut records = Vec::new();
    while acked < quota {
        while sent < quota && inflight.len() < b.window as usize {
            let n = u64::from(b.batch).min(quota - sent) as u32;
            records.clear();
            records.extend((0..n).map(|_| NewRecord {
                value: value.clone(),
                ..NewRecord::default()
            }));
            let p = if b.alias {
                client
                    .send_produce_alias(BENCH_ALIAS, &records, AckMode::Commit)
                    .await?
            } else {
                client
                    .send_produce(&b.topic, None, &records, AckMode::Commit)
                    .await?
            };
            inflight.push_back((Instant::now(), p, n));
            sent += u64::from(n);
        }
        let Some((at, p, n)) = inflight.pop_front() else {
            break;
        };
        p.wait().await?;
        let _ = hist.record(at.elapsed().as_micros().max(1) as u64);
        acked += u64::from(n);
        bar.inc(u64::from(n));
    }
    Ok(ProducerResult {
        latencies: hist,
        records: acked,
    })
}

fn report(b: &ProduceBench, records: u64, elapsed: Duration, hist: &Histogram<u64>) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rps = records as f64 / secs;
    let mbps = rps * b.record_size as f64 / 1e6;
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    if b.json {
        let obj = serde_json::json!({
            "records": records, "seconds": secs, "records_per_sec": rps, "mb_per_sec": mbps,
            "ack_p50_ms": q(0.5), "ack_p99_ms": q(0.99), "ack_p999_ms": q(0.999),
            "producers": b.producers, "window": b.window, "batch": b.batch, "record_size": b.record_size,
        });
        println!("{obj}");
    } else {
        println!("{records} records in {secs:.2} s: {rps:.0} records/s, {mbps:.2} MB/s (values)");
        println!(
            "ack latency per request: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            q(0.5),
            q(0.99),
            q(0.999)
        );
    }
}

async fn consume(broker: &super::Endpoint, b: ConsumeBench) -> Result<(), CliError> {
    let client = connect(broker, "bench-consume").await?;
    let info = client.describe_topic(&b.topic).await?;
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut scratch = Vec::new();
    for p in &info.partition_info {
        let mut next = p.start_offset;
        while next < p.end_offset {
            let f = client
                .fetch(&b.topic, p.partition, next, b.fetch_bytes, 0)
                .await?;
            bytes += f.batches.len() as u64;
            let visited = visit_records(&f.batches, next, &mut scratch, 16 << 20, |r| {
                records += 1;
                next = r.offset + 1;
                true
            });
            if visited.is_err() || f.batches.is_empty() {
                return Err(CliError::Client(ClientError::Unexpected(
                    "fetch returned no readable batches",
                )));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if b.json {
        println!(
            "{}",
            serde_json::json!({"records": records, "seconds": secs, "records_per_sec": records as f64 / secs, "mb_per_sec": bytes as f64 / secs / 1e6})
        );
    } else {
        println!(
            "{records} records ({bytes} stored bytes) in {secs:.2} s: {:.0} records/s, {:.2} MB/s",
            records as f64 / secs,
            bytes as f64 / secs / 1e6
        );
    }
    Ok(())
}
