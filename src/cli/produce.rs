//! `outpost produce TOPIC`: one record per stdin line, or `--value`.
//!
//! Lines are grouped into produce requests (up to [`LINES_PER_REQUEST`] lines or
//! [`BYTES_PER_REQUEST`] bytes) and up to [`WINDOW`] requests are in flight; they are sent in
//! order on one connection, so records are stored in input order. The command exits after
//! every request is acknowledged (committed), or at the first error.

use std::collections::VecDeque;

use outpost_firmware::AckMode;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{connect, CliError};
use crate::client::{Client, NewRecord, PendingAck};
pub use outpost_cli_args::produce::ProduceArgs;

/// Lines per produce request.
const LINES_PER_REQUEST: usize = 500;
/// Bytes per produce request.
const BYTES_PER_REQUEST: usize = 256 << 10;
/// Requests in flight.
const WINDOW: usize = 8;
struct Producer<'a> {
    client: Client,
    args: &'a ProduceArgs,
    inflight: VecDeque<PendingAck>,
    acked: u64,
}

impl Producer<'_> {
    fn record(&self, value: &str) -> NewRecord {
        NewRecord {
            key: self.args.key.as_ref().map(|k| k.as_bytes().to_vec()),
            value: value.as_bytes().to_vec(),
            timestamp_ms: None,
            headers: self.args.headers.clone(),
        }
    }

    async fn send(&mut self, records: &[NewRecord]) -> Result<(), CliError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.inflight.len() >= WINDOW {
            self.wait_one().await?;
        }
        let pending = self
            .client
            .send_produce(
                &self.args.topic,
                self.args.partition,
                records,
                AckMode::Commit,
            )
            .await?;
        self.inflight.push_back(pending);
        Ok(())
    }

    async fn wait_one(&mut self) -> Result<(), CliError> {
        let Some(p) = self.inflight.pop_front() else {
            return Ok(());
        };
        if let Some(ack) = p.wait().await? {
            self.acked += u64::from(ack.count);
            if self.args.verbose {
                let last = ack.base_offset + u64::from(ack.count) - 1;
                eprintln!(
                    "partition {} offsets {}..={}",
                    ack.partition, ack.base_offset, last
                );
            }
        }
        Ok(())
    }
}

/// Runs `produce`.
pub async fn run(broker: &super::Endpoint, args: ProduceArgs) -> Result<(), CliError> {
    let client = connect(broker, "produce").await?;
    let mut p = Producer {
        client,
        args: &args,
        inflight: VecDeque::new(),
        acked: 0,
    };
    if let Some(v) = &args.value {
        let rec = p.record(v);
        p.send(&[rec]).await?;
    } else {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(line) = lines.next_line().await? {
            bytes += line.len();
            batch.push(p.record(&line));
            if batch.len() >= LINES_PER_REQUEST || bytes >= BYTES_PER_REQUEST {
                p.send(&batch).await?;
                batch.clear();
                bytes = 0;
            }
        }
        p.send(&batch).await?;
    }
    while !p.inflight.is_empty() {
        p.wait_one().await?;
    }
    if args.verbose {
        eprintln!("{} record(s) acknowledged", p.acked);
    }
    Ok(())
}
