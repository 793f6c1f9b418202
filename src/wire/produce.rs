//! Turning the records of a produce (TCP `Produce`/`ProduceAlias`/`Reading`, UDP datagrams)
//! into log batches, and choosing their partition. Shared by every transport so that a record
//! means the same thing however it arrived.

use outpost_firmware::{ErrorCode, Record, Records};

use crate::log::batch::{BatchBuilder, BatchError, Push};
use crate::log::{PendingRecords, Target};

/// Encodes a produce's records into one or more uncompressed batches, with the broker's
/// clock for records without a timestamp. Every record (and header) is checked before any
/// is encoded, and `builder` starts empty: nothing of a rejected produce reaches another.
pub fn encode_records(
    builder: &mut BatchBuilder,
    records: &Records<'_>,
) -> Result<PendingRecords, (ErrorCode, &'static str)> {
    let malformed = (ErrorCode::MALFORMED_FRAME, "malformed records");
    records.validate_all().map_err(|_| malformed)?;
    builder.clear();
    let now = crate::log::now_ms();
    let mut pending = PendingRecords::default();
    for rec in records.iter() {
        let rec: Record<'_> = rec.map_err(|_| malformed)?;
        if push(builder, &rec, now).map_err(|_| malformed)? == Push::Full {
            builder.finish_into(&mut pending.batches);
            push(builder, &rec, now).map_err(|_| malformed)?;
        }
        pending.records += 1;
    }
    if pending.records == 0 {
        return Err((ErrorCode::INVALID_REQUEST, "produce with no records"));
    }
    builder.finish_into(&mut pending.batches);
    Ok(pending)
}

/// Encodes one value stamped with the broker's clock (a `Reading`).
pub fn encode_value(
    builder: &mut BatchBuilder,
    value: &[u8],
) -> Result<PendingRecords, (ErrorCode, &'static str)> {
    builder.clear();
    let rec = Record::new(value);
    let mut pending = PendingRecords::default();
    push(builder, &rec, crate::log::now_ms())
        .map_err(|_| (ErrorCode::RECORD_TOO_LARGE, "value too large"))?;
    pending.records = 1;
    builder.finish_into(&mut pending.batches);
    Ok(pending)
}

fn push(builder: &mut BatchBuilder, rec: &Record<'_>, now: u64) -> Result<Push, BatchError> {
    let ts = i64::try_from(rec.timestamp_ms.unwrap_or(now)).unwrap_or(i64::MAX);
    let headers = rec
        .headers
        .iter()
        .map(|h| h.map(|h| (h.key, Some(h.value))));
    builder.push_iter(ts, rec.key, Some(rec.value), headers)
}

/// Where a produce goes: its explicit partition, else its records' common key, else
/// round-robin. Records with different keys need an explicit partition (one produce is one
/// contiguous offset range in one partition).
pub fn target_of<'a>(
    partition: Option<u32>,
    records: &'a Records<'a>,
) -> Result<Target<'a>, &'static str> {
    if let Some(p) = partition {
        return Ok(Target::Partition(p));
    }
    let mut keys = records.iter().filter_map(Result::ok).map(|r| r.key);
    let first = keys.next().flatten();
    if keys.any(|k| k != first) {
        return Err("records with different keys in one produce need an explicit partition");
    }
    Ok(first.map_or(Target::Any, Target::Key))
}
