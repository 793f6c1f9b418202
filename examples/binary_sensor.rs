//! A sensor on the binary protocol: the firmware's blocking client
//! (`outpost_firmware::client::blocking`) on std, over a `TcpStream` through `FromStd`.
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --example binary_sensor -- --device dev42 --count 5 --interval-ms 500 --ack
//! ```
//!
//! It says hello as device `--device` (env `OUTPOST_DEVICE`, default `dev42`) with token
//! `--token` (env `OUTPOST_DEVICE_TOKEN`, default none), keeps its config in `--config-file`
//! (the device's "flash": its version goes in the hello, and a config the gateway pushes is
//! written there), uses the config's first alias or else registers alias 1 for topic
//! `sensors`, and sends a temperature reading every `--interval-ms` (default 1000), `--count`
//! times (default 10), with an ack when `--ack` is given. A lost connection is reconnected
//! (hello again, aliases again) up to three times in a row. Gateway: `--gateway`
//! (default 127.0.0.1:7883).

use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use outpost_firmware::client::{blocking::Client, ClientError, Device, FromStd};
use outpost_firmware::{AckMode, DeviceConfig, MAX_ENCODED_LEN};

const DEFAULT_GATEWAY: &str = "127.0.0.1:7883";
const DEFAULT_TOPIC: &str = "sensors";
const DEFAULT_ALIAS: u16 = 1;
/// A gateway that does not answer within this is taken as gone.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect attempts in a row before giving up.
const MAX_RECONNECTS: u32 = 3;
/// Receive buffer: room for a pushed config (see `outpost_firmware::client::RX_LEN_FOR_CONFIG`).
const RX_LEN: usize = outpost_firmware::client::RX_LEN_FOR_CONFIG;

type Io = FromStd<TcpStream>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("binary_sensor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let stored = args.config_file.as_deref().and_then(read_config);
    let device = Device {
        id: &args.device,
        token: args.token.as_bytes(),
    };
    let (mut tx, mut rx) = ([0u8; 256], [0u8; RX_LEN]);
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let mut client: Client<'_, Io> = Client::new(dial(&args.gateway)?, device, &mut tx, &mut rx);
    let version = stored.as_ref().map(|c| c.version);
    println!(
        "connecting to {} as {} (config version {version:?})",
        args.gateway, args.device
    );
    let welcome = client.connect(version, now_ms())?;
    println!(
        "welcome: broker time {} ms, largest frame {} bytes",
        welcome.broker_time_ms, welcome.max_frame_len
    );
    let config = match welcome.config {
        Some(bytes) => Some(store_config(bytes, args.config_file.as_deref())?),
        None => stored,
    };
    let alias = match config.as_ref().and_then(|c| c.aliases.first()) {
        Some(entry) => {
            println!(
                "using alias {} of the config: topic {}",
                entry.alias, entry.topic
            );
            entry.alias
        }
        None => {
            client.register_alias(DEFAULT_ALIAS, DEFAULT_TOPIC, None)?;
            println!("registered alias {DEFAULT_ALIAS} for topic {DEFAULT_TOPIC}");
            DEFAULT_ALIAS
        }
    };
    let ack = if args.ack {
        AckMode::Commit
    } else {
        AckMode::None
    };
    let version = config.as_ref().map(|c| c.version);
    for n in 0..args.count {
        let celsius = 20.0 + (n % 50) as f32 * 0.1;
        let result = client.reading(alias, &celsius.to_le_bytes(), ack);
        let broker_ms = client.broker_time_ms(now_ms()).unwrap_or_default();
        match result {
            Ok(()) => {
                println!("reading {n}: {celsius:.1} °C at broker time {broker_ms} ms ({ack:?})")
            }
            Err(e) => {
                println!("reading {n} failed: {e}");
                if !client.session().is_connected() {
                    reconnect(&mut client, &args.gateway, version, now_ms)?;
                }
            }
        }
        if n + 1 < args.count {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
    Ok(())
}

/// Reconnects (hello, then the registered aliases again), a few times at most.
fn reconnect(
    client: &mut Client<'_, Io>,
    gateway: &str,
    version: Option<u32>,
    now_ms: impl Fn() -> u64,
) -> Result<(), ClientError> {
    let mut last = ClientError::NotConnected;
    for attempt in 1..=MAX_RECONNECTS {
        std::thread::sleep(IO_TIMEOUT / 5 * attempt);
        let Ok(io) = dial(gateway) else { continue };
        match client.reconnect(io, version, now_ms()) {
            Ok(_) => {
                println!("reconnected (attempt {attempt}); aliases registered again");
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn dial(gateway: &str) -> std::io::Result<Io> {
    let stream = TcpStream::connect(gateway)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(FromStd::new(stream))
}

fn read_config(path: &str) -> Option<DeviceConfig> {
    let bytes = std::fs::read(path).ok()?;
    match DeviceConfig::decode(&bytes) {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("ignoring {path}: {e}");
            None
        }
    }
}

/// What firmware does with a pushed config: write the bytes to flash as they are, decode.
fn store_config(
    bytes: &[u8],
    path: Option<&str>,
) -> Result<DeviceConfig, Box<dyn std::error::Error>> {
    let config = DeviceConfig::decode(bytes)?;
    println!(
        "the gateway pushed config version {} ({} of at most {MAX_ENCODED_LEN} bytes): every {} ms, {} aliases",
        config.version,
        bytes.len(),
        config.sample_interval_ms,
        config.aliases.len()
    );
    if let Some(path) = path {
        std::fs::write(path, bytes)?;
        println!("stored it in {path}");
    }
    Ok(config)
}

struct Args {
    gateway: String,
    device: String,
    token: String,
    config_file: Option<String>,
    interval_ms: u64,
    count: u64,
    ack: bool,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let env =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let mut args = Args {
            gateway: DEFAULT_GATEWAY.into(),
            device: env("OUTPOST_DEVICE", "dev42"),
            token: env("OUTPOST_DEVICE_TOKEN", ""),
            config_file: None,
            interval_ms: 1000,
            count: 10,
            ack: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--gateway" => args.gateway = value()?,
                "--device" => args.device = value()?,
                "--token" => args.token = value()?,
                "--config-file" => args.config_file = Some(value()?),
                "--interval-ms" => args.interval_ms = number(&value()?)?,
                "--count" => args.count = number(&value()?)?,
                "--ack" => args.ack = true,
                _ => return Err(format!("unknown argument {arg}; see the example's docs")),
            }
        }
        Ok(args)
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}
