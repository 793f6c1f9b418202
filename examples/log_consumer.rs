//! A gateway application consuming a topic with a consumer group, committing as it goes.
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --release -- produce readings --value 'temperature=21.5'
//! cargo run --example log_consumer -- 127.0.0.1:7883 readings dashboard
//! ```
//! It resumes where the group last committed, waits for new records (long-poll), and stops
//! after 10 idle seconds.

use std::time::{Duration, Instant};

use outpost::client::Client;
use outpost::log::reader::visit_records;

const IDLE_STOP: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let broker = args.next().unwrap_or_else(|| "127.0.0.1:7883".into());
    let topic = args.next().unwrap_or_else(|| "readings".into());
    let group = args.next().unwrap_or_else(|| "example".into());
    let client = Client::connect(&broker, "log-consumer-example").await?;
    let info = client.describe_topic(&topic).await?;
    let mut positions = Vec::new();
    for p in &info.partition_info {
        let committed = client.fetch_offset(&group, &topic, p.partition).await?;
        positions.push(committed.unwrap_or(p.start_offset));
    }
    let mut scratch = Vec::new();
    let mut last_data = Instant::now();
    while last_data.elapsed() < IDLE_STOP {
        for (p, next) in positions.iter_mut().enumerate() {
            let p = p as u32;
            let fetched = client.fetch(&topic, p, *next, 256 << 10, 500).await?;
            let before = *next;
            visit_records(&fetched.batches, *next, &mut scratch, 16 << 20, |r| {
                let value = r.value.map(String::from_utf8_lossy).unwrap_or_default();
                println!(
                    "partition {p} offset {} ts {}: {value}",
                    r.offset, r.timestamp_ms
                );
                *next = r.offset + 1;
                true
            })?;
            if *next > before {
                client.commit_offset(&group, &topic, p, *next).await?;
                last_data = Instant::now();
            }
        }
    }
    Ok(())
}
