//! The same sensor over MQTT 3.1.1 (rumqttc): a temperature reading published at QoS 1 to
//! `site/<device>/temperature`, waiting for each PUBACK. For comparing with
//! `binary_sensor` (same readings, a fraction of the bytes on the wire).
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --example mqtt_sensor -- --device dev42 --count 5 --interval-ms 500
//! ```
//!
//! Broker: `--broker` (default 127.0.0.1:1883); device: `--device` (env `OUTPOST_DEVICE`,
//! default `dev42`), also the MQTT client id; `--count` readings (default 10) every
//! `--interval-ms` (default 1000). The payload is the temperature as text (`21.5`).

use std::process::ExitCode;
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const DEFAULT_BROKER: &str = "127.0.0.1:1883";
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long to wait for the connection's next event (CONNACK, PUBACK).
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events to read while waiting for one PUBACK (pings and the like come in between).
const MAX_EVENTS_PER_READING: usize = 20;
/// Requests rumqttc may queue.
const REQUEST_CAP: usize = 10;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqtt_sensor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let (host, port) = args
        .broker
        .rsplit_once(':')
        .ok_or(format!("--broker {}: expected host:port", args.broker))?;
    let mut options = MqttOptions::new(args.device.clone(), host, port.parse()?);
    options.set_keep_alive(KEEP_ALIVE);
    let (client, mut connection) = Client::new(options, REQUEST_CAP);
    let topic = format!("site/{}/temperature", args.device);
    println!("publishing to {topic} on {} (QoS 1)", args.broker);
    for n in 0..args.count {
        let celsius = 20.0 + (n % 50) as f32 * 0.1;
        client.publish(
            topic.as_str(),
            QoS::AtLeastOnce,
            false,
            format!("{celsius:.1}"),
        )?;
        let mut acked = false;
        for _ in 0..MAX_EVENTS_PER_READING {
            match connection.recv_timeout(EVENT_TIMEOUT) {
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    println!(
                        "reading {n}: {celsius:.1} °C acked (packet id {})",
                        ack.pkid
                    );
                    acked = true;
                    break;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("connection failed: {e}").into()),
                Err(e) => return Err(format!("no PUBACK for reading {n}: {e:?}").into()),
            }
        }
        if !acked {
            return Err(
                format!("no PUBACK for reading {n} among {MAX_EVENTS_PER_READING} events").into(),
            );
        }
        if n + 1 < args.count {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
    client.disconnect()?;
    // Let the DISCONNECT go out.
    let _ = connection.recv_timeout(EVENT_TIMEOUT);
    Ok(())
}

struct Args {
    broker: String,
    device: String,
    interval_ms: u64,
    count: u64,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Args {
            broker: DEFAULT_BROKER.into(),
            device: std::env::var("OUTPOST_DEVICE").unwrap_or_else(|_| "dev42".into()),
            interval_ms: 1000,
            count: 10,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--broker" => args.broker = value()?,
                "--device" => args.device = value()?,
                "--interval-ms" => args.interval_ms = number(&value()?)?,
                "--count" => args.count = number(&value()?)?,
                _ => return Err(format!("unknown argument {arg}; see the example's docs")),
            }
        }
        Ok(args)
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}
