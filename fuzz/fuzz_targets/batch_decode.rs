//! Fuzzes the record batch decoders in `outpost::log::batch`: what reads stored batches and,
//! later, batches from Kafka peers.
//!
//! The input is read twice:
//! - as a run of stored batches through `Batches` (CRC-checked), walking every record and
//!   header of each, and checking that `validate_with` agrees with that walk;
//! - directly through `records`, which does not check the CRC, so that random bytes reach the
//!   record decoder. When every record decodes, they are re-encoded with `BatchBuilder` and
//!   must decode again to the same records.
//!
//! Decompression is capped at `MAX_DECOMPRESSED`, so bombs end in `DecompressedTooLarge`.
//! Nothing may panic, hang or allocate beyond that cap.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::log::batch::{
    records, validate_with, BatchBuilder, BatchError, BatchHeader, Batches, Compression, Push,
    RecordRef, MAX_BATCH_BYTES,
};

/// Small, so that the fuzzer finds the limit quickly and runs stay fast.
const MAX_DECOMPRESSED: usize = 64 << 10;

/// An owned record, to compare a decode with the decode of its re-encoding.
#[derive(Debug, PartialEq)]
struct Owned {
    timestamp_ms: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Walks every record and header of `batch`; returns them if all decode.
fn walk(batch: &[u8], scratch: &mut Vec<u8>) -> Result<(BatchHeader, Vec<Owned>), BatchError> {
    let iter = records(batch, scratch, MAX_DECOMPRESSED)?;
    let header = *iter.header();
    let mut out = Vec::new();
    for record in iter {
        let record = record?;
        check_offsets(&header, &record);
        out.push(owned(&record)?);
    }
    assert_eq!(out.len(), header.record_count as usize, "count checked");
    Ok((header, out))
}

fn check_offsets(header: &BatchHeader, record: &RecordRef<'_>) {
    assert!(record.offset >= header.base_offset);
    assert!(record.offset < header.next_offset());
}

fn owned(r: &RecordRef<'_>) -> Result<Owned, BatchError> {
    let mut headers = Vec::new();
    for h in r.headers.clone() {
        let (k, v) = h?;
        headers.push((k.to_owned(), v.map(<[u8]>::to_vec)));
    }
    Ok(Owned {
        timestamp_ms: r.timestamp_ms,
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.map(<[u8]>::to_vec),
        headers,
    })
}

/// Re-encodes decoded records into one batch and checks they decode to the same.
fn round_trip(batch: &[u8], decoded: &[Owned], scratch: &mut Vec<u8>) {
    let mut builder = BatchBuilder::new(Compression::None, MAX_BATCH_BYTES);
    for r in records(batch, scratch, MAX_DECOMPRESSED).expect("decoded before") {
        match builder.push_record(&r.expect("decoded before")) {
            Ok(Push::Added) => {}
            // Timestamps far apart can overflow the delta; nothing to compare then.
            Err(BatchError::TimestampOverflow) => return,
            other => panic!("re-encoding a decoded record: {other:?}"),
        }
    }
    let mut out = Vec::new();
    builder.finish_into(&mut out);
    if decoded.is_empty() {
        assert!(out.is_empty());
        return;
    }
    validate_with(&out, scratch, MAX_DECOMPRESSED).expect("our own batch is valid");
    let (_, again) = walk(&out, scratch).expect("our own batch decodes");
    assert_eq!(again, decoded);
}

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    for batch in Batches::new(data) {
        let Ok((_, bytes)) = batch else { break };
        let walked = walk(bytes, &mut scratch).is_ok();
        let validated = validate_with(bytes, &mut scratch, MAX_DECOMPRESSED).is_ok();
        assert_eq!(walked, validated, "validate agrees with a full walk");
    }
    if let Ok((_, decoded)) = walk(data, &mut scratch) {
        round_trip(data, &decoded, &mut scratch);
    }
});
