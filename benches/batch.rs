//! Record batch codec: encode 1,000 64-byte records into page-fit batches, iterate them, and
//! validate them (CRC + full walk), per codec. Throughput is per record.
//!
//! Run: `cargo bench --bench batch`. No timing asserts; compare runs, not absolute numbers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use outpost::log::batch::{
    records, validate_with, BatchBuilder, Batches, Compression, Push, PAGE_FIT_LARGE,
};

/// Records per iteration.
const RECORDS: usize = 1_000;
/// Value size: a small telemetry reading.
const VALUE_LEN: usize = 64;
/// Decompression limit for the read benches.
const MAX_DECOMPRESSED: usize = 1 << 20;
const CODECS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::Zstd];

/// JSON-ish readings padded to 64 bytes, varying like telemetry does.
fn values() -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|i| {
            let mut v = format!(
                "{{\"id\":\"sensor-{:03}\",\"t\":{}.{},\"rh\":{}}}",
                i % 40,
                18 + i % 7,
                i % 10,
                40 + i % 23
            )
            .into_bytes();
            v.resize(VALUE_LEN, b' ');
            v
        })
        .collect()
}

/// Encodes every value into page-fit batches appended to `out`.
fn encode(builder: &mut BatchBuilder, values: &[Vec<u8>], out: &mut Vec<u8>) {
    const T0: i64 = 1_700_000_000_000;
    for (i, v) in values.iter().enumerate() {
        let ts = T0 + i as i64;
        if builder.push(ts, None, Some(v), &[]).expect("push") == Push::Full {
            builder.finish_into(out);
            builder.push(ts, None, Some(v), &[]).expect("push");
        }
    }
    builder.finish_into(out);
}

fn encoded(codec: Compression, values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        &mut BatchBuilder::new(codec, PAGE_FIT_LARGE),
        values,
        &mut out,
    );
    out
}

fn bench_encode(c: &mut Criterion) {
    let values = values();
    let mut group = c.benchmark_group("batch/encode");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in CODECS {
        let mut builder = BatchBuilder::new(codec, PAGE_FIT_LARGE);
        let mut out = Vec::with_capacity(RECORDS * 2 * VALUE_LEN);
        group.bench_function(BenchmarkId::from_parameter(codec), |b| {
            b.iter(|| {
                out.clear();
                encode(&mut builder, black_box(&values), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_iterate(c: &mut Criterion) {
    let values = values();
    let mut group = c.benchmark_group("batch/iterate");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in CODECS {
        let bytes = encoded(codec, &values);
        let mut scratch = Vec::new();
        group.bench_function(BenchmarkId::from_parameter(codec), |b| {
            b.iter(|| {
                let mut sum = 0usize;
                for batch in Batches::new(black_box(&bytes)) {
                    let (_, batch) = batch.expect("batch");
                    for r in records(batch, &mut scratch, MAX_DECOMPRESSED).expect("records") {
                        sum += r.expect("record").value.map_or(0, <[u8]>::len);
                    }
                }
                black_box(sum)
            })
        });
    }
    group.finish();
}

fn bench_validate(c: &mut Criterion) {
    let values = values();
    let mut group = c.benchmark_group("batch/validate");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in CODECS {
        let bytes = encoded(codec, &values);
        let batches: Vec<&[u8]> = Batches::new(&bytes).map(|b| b.expect("batch").1).collect();
        let mut scratch = Vec::new();
        group.bench_function(BenchmarkId::from_parameter(codec), |b| {
            b.iter(|| {
                for batch in &batches {
                    validate_with(black_box(batch), &mut scratch, MAX_DECOMPRESSED).expect("valid");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_iterate, bench_validate);
criterion_main!(benches);
