//! `outpost bridge status`: what each upstream bridge of a running broker is doing, as a
//! table or as the broker's JSON.
//!
//! The table is rendered by [`render`], a pure function of the status and the broker's
//! clock; this module only asks the broker (the bridges run inside it) and prints.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use outpost_bridge::{BridgeStatus, PartitionStatus, RouteStatus};

use super::{connect, CliError};
pub use outpost_cli_args::bridge::BridgeCommand;

/// Runs a `bridge` subcommand.
pub async fn run(broker: &super::Endpoint, cmd: BridgeCommand) -> Result<(), CliError> {
    let BridgeCommand::Status { json } = cmd;
    let client = connect(broker, "bridge").await?;
    let bridges = client.bridge_status().await?;
    let mut out = std::io::stdout().lock();
    if json {
        // Fails only on I/O: the status has no maps with non-string keys.
        serde_json::to_writer_pretty(&mut out, &bridges).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        // Ages are reckoned on the broker's clock (read at hello), the one the times come from.
        out.write_all(render(&bridges, client.broker_time_ms()).as_bytes())?;
    }
    Ok(())
}

/// The human-readable status: per bridge a line with its connection, then a table with a row
/// per route and partition, then the reason of each waiting route. `now_ms` (ms since the
/// Unix epoch) dates the ages shown.
pub fn render(bridges: &[BridgeStatus], now_ms: u64) -> String {
    if bridges.is_empty() {
        return "no bridges configured\n".to_owned();
    }
    let blocks: Vec<String> = bridges
        .iter()
        .map(|b| format!("{}\n{}", bridge_line(b, now_ms), routes(&b.routes)))
        .collect();
    blocks.join("\n")
}

/// `bridge NAME -> UPSTREAM (client id X): STATE; attempts A, connects C; last error: E`.
fn bridge_line(b: &BridgeStatus, now_ms: u64) -> String {
    let state = match (b.connected, b.next_attempt_in_ms) {
        (true, _) => format!("connected since {}", when(b.since_ms, now_ms)),
        (false, Some(ms)) => format!("disconnected, next attempt in {}s", ms.div_ceil(1000)),
        (false, None) => format!("disconnected since {}", when(b.since_ms, now_ms)),
    };
    let error = match (&b.last_error, b.last_error_ms) {
        (Some(e), Some(at)) => format!("{e} (at {})", when(at, now_ms)),
        (Some(e), None) => e.clone(),
        (None, _) => "-".to_owned(),
    };
    format!(
        "bridge {} -> {} (client id {}): {state}; attempts {}, connects {}; last error: {error}",
        b.name, b.upstream, b.client_id, b.connect_attempts, b.connects
    )
}

/// `2023-11-14T22:13:20Z (5m 2s ago)`.
fn when(ms: u64, now_ms: u64) -> String {
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms));
    let age = Duration::from_secs(now_ms.saturating_sub(ms) / 1000);
    format!("{at} ({} ago)", humantime::format_duration(age))
}

/// The table's header; `LEFT` of its columns hold text (left-aligned), the rest numbers.
const HEADER: [&str; COLUMNS] = [
    "route",
    "topic",
    "partition",
    "checkpoint",
    "acked",
    "log end",
    "lag (records)",
    "lag (s)",
    "inflight",
    "forwarded",
    "dropped",
    "last loss",
    "upstream at",
];
/// Columns of the table.
const COLUMNS: usize = 13;
/// The text columns: route, topic, last loss, upstream position.
const LEFT: [usize; 4] = [0, 1, 11, 12];
/// Indent of the table and the waiting lines under their bridge.
const INDENT: &str = "  ";

/// The table of a bridge's routes (a route with no partitions yet gets a row of `-`), then a
/// line per route that is waiting.
fn routes(routes: &[RouteStatus]) -> String {
    if routes.is_empty() {
        return format!("{INDENT}no routes\n");
    }
    let mut rows = vec![HEADER.map(str::to_owned)];
    for r in routes {
        if r.partitions.is_empty() {
            rows.push(empty_row(r));
        }
        rows.extend(r.partitions.iter().map(|p| partition_row(r, p)));
    }
    let mut out = table(&rows);
    for r in routes {
        if let Some(why) = &r.waiting {
            out.push_str(&format!("{INDENT}route {} waiting: {why}\n", r.name));
        }
        if let Some(why) = &r.upstream_problem {
            out.push_str(&format!("{INDENT}route {} upstream: {why}\n", r.name));
        }
    }
    out
}

/// A partition's row; `upstream at` is `partition@offset` of the last acknowledged record
/// upstream (Kafka), `-` when the upstream has no offsets (MQTT) or nothing is acknowledged.
fn partition_row(r: &RouteStatus, p: &PartitionStatus) -> [String; COLUMNS] {
    let loss = p
        .last_loss
        .map_or("-".to_owned(), |(a, b)| format!("{a}..{b}"));
    let upstream = match (p.upstream_partition, p.upstream_offset) {
        (Some(up), Some(o)) => format!("{up}@{o}"),
        _ => "-".to_owned(),
    };
    [
        r.name.clone(),
        r.topic.clone(),
        p.partition.to_string(),
        p.checkpoint.to_string(),
        p.acked.to_string(),
        p.log_end.to_string(),
        p.lag_records.to_string(),
        format!("{:.1}", p.lag_secs),
        p.inflight.to_string(),
        p.forwarded.to_string(),
        p.dropped.to_string(),
        loss,
        upstream,
    ]
}

fn empty_row(r: &RouteStatus) -> [String; COLUMNS] {
    let mut row = [(); COLUMNS].map(|()| "-".to_owned());
    row[0] = r.name.clone();
    row[1] = r.topic.clone();
    row
}

/// Aligns `rows` in columns two spaces apart, each line indented.
fn table(rows: &[[String; COLUMNS]]) -> String {
    let mut widths = [0usize; COLUMNS];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if LEFT.contains(&i) {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(INDENT);
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z.
    const T0: u64 = 1_700_000_000_000;

    fn partition(partition: u32, acked: u64, last_loss: Option<(u64, u64)>) -> PartitionStatus {
        PartitionStatus {
            partition,
            checkpoint: acked,
            acked,
            inflight: 4,
            log_start: 0,
            log_end: 1500,
            lag_records: 1500 - acked,
            lag_secs: 2.34,
            forwarded: acked,
            dropped: last_loss.map_or(0, |(a, b)| b - a),
            last_loss,
            upstream_partition: None,
            upstream_offset: None,
        }
    }

    fn bridges() -> Vec<BridgeStatus> {
        let up = BridgeStatus {
            name: "cloud".into(),
            upstream: "mqtts://broker.example:8883".into(),
            client_id: "gw-7".into(),
            connected: true,
            since_ms: T0 - 302_000,
            connect_attempts: 3,
            connects: 1,
            next_attempt_in_ms: None,
            last_error: Some("connection refused".into()),
            last_error_ms: Some(T0 - 310_000),
            routes: vec![
                RouteStatus {
                    name: "readings".into(),
                    topic: "sensors".into(),
                    upstream_topic: "site/{partition}".into(),
                    waiting: None,
                    upstream_problem: None,
                    partitions: vec![
                        partition(0, 1200, None),
                        partition(1, 1000, Some((10, 250))),
                    ],
                },
                RouteStatus {
                    name: "alarms".into(),
                    topic: "alarms".into(),
                    upstream_topic: "site/alarms".into(),
                    waiting: Some("topic `alarms` does not exist yet".into()),
                    upstream_problem: None,
                    partitions: vec![],
                },
            ],
        };
        let down = BridgeStatus {
            name: "backup".into(),
            upstream: "mqtt://10.0.0.2:1883".into(),
            client_id: "gw-7b".into(),
            connected: false,
            since_ms: T0 - 5_000,
            connect_attempts: 9,
            next_attempt_in_ms: Some(2_500),
            ..BridgeStatus::default()
        };
        vec![up, down]
    }

    #[test]
    fn renders_bridges_routes_and_partitions() {
        let expected = "\
bridge cloud -> mqtts://broker.example:8883 (client id gw-7): connected since 2023-11-14T22:08:18Z (5m 2s ago); attempts 3, connects 1; last error: connection refused (at 2023-11-14T22:08:10Z (5m 10s ago))
  route     topic    partition  checkpoint  acked  log end  lag (records)  lag (s)  inflight  forwarded  dropped  last loss  upstream at
  readings  sensors          0        1200   1200     1500            300      2.3         4       1200        0  -          -
  readings  sensors          1        1000   1000     1500            500      2.3         4       1000      240  10..250    -
  alarms    alarms           -           -      -        -              -        -         -          -        -  -          -
  route alarms waiting: topic `alarms` does not exist yet

bridge backup -> mqtt://10.0.0.2:1883 (client id gw-7b): disconnected, next attempt in 3s; attempts 9, connects 0; last error: -
  no routes
";
        assert_eq!(render(&bridges(), T0), expected);
    }

    #[test]
    fn no_bridges() {
        assert_eq!(render(&[], T0), "no bridges configured\n");
    }

    #[test]
    fn disconnected_without_a_planned_attempt_shows_since_when() {
        let b = BridgeStatus {
            name: "b".into(),
            since_ms: T0,
            ..BridgeStatus::default()
        };
        let line = bridge_line(&b, T0 + 999);
        assert!(
            line.contains(": disconnected since 2023-11-14T22:13:20Z (0s ago);"),
            "{line}"
        );
    }
}
