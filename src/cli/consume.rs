//! `outpost consume TOPIC`: prints records, from an offset, the beginning, the end, or a
//! consumer group's committed position.
//!
//! Without `--follow`, it stops at the high watermark each partition had when it was first
//! read. With `--group`, the next offset of each partition is committed when it stops.

use std::io::Write;

use super::{connect, CliError};
use crate::client::{Client, ClientError};
use crate::log::batch::RecordRef;
use crate::log::reader::visit_records;
pub use outpost_cli_args::consume::{ConsumeArgs, Format};

/// Bytes asked for per fetch.
const FETCH_BYTES: u32 = 512 << 10;
/// Long-poll wait with --follow.
const FOLLOW_WAIT_MS: u32 = 1000;
/// Largest decompressed batch accepted.
const MAX_DECOMPRESSED: usize = 16 << 20;

struct Cursor {
    partition: u32,
    next: u64,
    /// Stop at this offset (without --follow).
    stop: Option<u64>,
}

/// Runs `consume`.
pub async fn run(broker: &super::Endpoint, args: ConsumeArgs) -> Result<(), CliError> {
    let client = connect(broker, "consume").await?;
    let info = client.describe_topic(&args.topic).await?;
    if args.offset.is_some() && args.partition.is_none() && info.partitions > 1 {
        return Err(CliError::Usage(
            "--offset needs --partition on a topic with several partitions",
        ));
    }
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..info.partitions).collect(),
    };
    let mut cursors = Vec::new();
    for p in partitions {
        let pi = info.partition_info.iter().find(|i| i.partition == p);
        let (start, end) = pi.map_or((0, 0), |i| (i.start_offset, i.end_offset));
        let committed = match &args.group {
            Some(g) => client.fetch_offset(g, &args.topic, p).await?,
            None => None,
        };
        let next =
            args.offset
                .or(committed)
                .unwrap_or(if args.from_beginning { start } else { end });
        cursors.push(Cursor {
            partition: p,
            next,
            stop: (!args.follow).then_some(end),
        });
    }
    let mut printed = 0u64;
    let result = consume_loop(&client, &args, &mut cursors, &mut printed).await;
    if let Some(g) = &args.group {
        for c in &cursors {
            client
                .commit_offset(g, &args.topic, c.partition, c.next)
                .await?;
        }
    }
    result
}

async fn consume_loop(
    client: &Client,
    args: &ConsumeArgs,
    cursors: &mut [Cursor],
    printed: &mut u64,
) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut scratch = Vec::new();
    loop {
        let mut active = false;
        for c in cursors.iter_mut() {
            if c.stop.is_some_and(|s| c.next >= s) {
                continue;
            }
            active = true;
            // One partition: long-poll; several: short waits, so none starves the others.
            let wait = if args.partition.is_some() {
                FOLLOW_WAIT_MS
            } else {
                100
            };
            let fetched = match client
                .fetch(&args.topic, c.partition, c.next, FETCH_BYTES, wait)
                .await
            {
                Ok(f) => f,
                Err(ClientError::OffsetOutOfRange { start, end }) if args.offset.is_none() => {
                    // The group's or our position fell out of retention: restart at the start.
                    eprintln!("partition {}: offset {} out of range [{start}, {end}]; resuming at {start}", c.partition, c.next);
                    c.next = start;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut error = None;
            let visit = visit_records(
                &fetched.batches,
                c.next,
                &mut scratch,
                MAX_DECOMPRESSED,
                |r| {
                    if args.max.is_some_and(|m| *printed >= m) || error.is_some() {
                        return false;
                    }
                    if let Err(e) = print_record(&mut out, args, c.partition, r) {
                        error = Some(e);
                    }
                    c.next = r.offset + 1;
                    *printed += 1;
                    true
                },
            );
            if let Some(e) = error {
                return Err(e.into());
            }
            if visit.is_err() {
                return Err(CliError::Client(ClientError::Unexpected(
                    "a fetched batch does not decode",
                )));
            }
            out.flush()?;
            if args.max.is_some_and(|m| *printed >= m) {
                return Ok(());
            }
        }
        if !active {
            return Ok(());
        }
    }
}

fn print_record(
    out: &mut impl Write,
    args: &ConsumeArgs,
    partition: u32,
    r: &RecordRef<'_>,
) -> std::io::Result<()> {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    match args.format {
        Format::Text => {
            let value = text(r.value).unwrap_or_default();
            if args.print_key {
                writeln!(out, "{}\t{}", text(r.key).unwrap_or_default(), value)
            } else {
                writeln!(out, "{value}")
            }
        }
        Format::Json => {
            let headers: Vec<serde_json::Value> = r
                .headers
                .clone()
                .filter_map(Result::ok)
                .map(|(k, v)| serde_json::json!({ "key": k, "value": text(v) }))
                .collect();
            let obj = serde_json::json!({
                "topic": args.topic, "partition": partition, "offset": r.offset,
                "timestamp": r.timestamp_ms, "key": text(r.key), "value": text(r.value),
                "headers": headers,
            });
            writeln!(out, "{obj}")
        }
    }
}
