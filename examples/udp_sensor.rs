//! A sensor over UDP: one `Datagram` per reading, on an alias of the device's stored config
//! (nothing is registered over UDP), without a connection: MQTT-SN's QoS -1, or with
//! `--ack` one answer datagram per reading.
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --release -- devices set dev42 --file device.toml   # defines alias 1
//! cargo run --example udp_sensor -- --device dev42 --count 5 --ack
//! ```
//!
//! The alias is `--alias` (default: the first alias of `--config-file`, the device's stored
//! config as `binary_sensor` writes it, else 1). Gateway: `--gateway` (default
//! 127.0.0.1:7883, the broker's UDP port). Device and token as in `binary_sensor`
//! (`--device`/`OUTPOST_DEVICE`, `--token`/`OUTPOST_DEVICE_TOKEN`). A reading whose answer
//! does not come within a second is reported lost; nothing is retried.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use outpost_firmware::client::udp::{decode_reply, encode_datagram, UdpReply, UdpRequest};
use outpost_firmware::client::{Device, RequestIds};
use outpost_firmware::DeviceConfig;

const DEFAULT_GATEWAY: &str = "127.0.0.1:7883";
const DEFAULT_ALIAS: u16 = 1;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// A datagram of a reading is under 100 bytes for ids and tokens of a few dozen.
const DATAGRAM_LEN: usize = 512;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_sensor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let gateway: SocketAddr = args.gateway.parse()?;
    let alias = args
        .alias
        .unwrap_or_else(|| config_alias(args.config_file.as_deref()));
    let local: SocketAddr = if gateway.ip().is_loopback() {
        "127.0.0.1:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(gateway)?;
    socket.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let device = Device {
        id: &args.device,
        token: args.token.as_bytes(),
    };
    let mut ids = RequestIds::new();
    let (mut out, mut answer) = ([0u8; DATAGRAM_LEN], [0u8; DATAGRAM_LEN]);
    println!("sending to {gateway} as {} on alias {alias}", args.device);
    for n in 0..args.count {
        let celsius = 20.0 + (n % 50) as f32 * 0.1;
        let value = celsius.to_le_bytes();
        let request_id = if args.ack { ids.allocate() } else { 0 };
        let reading = UdpRequest::Reading {
            request_id,
            alias,
            value: &value,
        };
        let datagram = encode_datagram(device, &reading, &mut out)?;
        socket.send(datagram)?;
        print!("reading {n}: {celsius:.1} °C, {} bytes", datagram.len());
        if args.ack {
            match socket.recv(&mut answer) {
                Ok(len) => match decode_reply(&answer[..len]) {
                    Ok(UdpReply::Done { request_id: id }) if id == request_id => {
                        print!(", committed")
                    }
                    Ok(other) => print!(", unexpected answer {other:?}"),
                    Err(e) => print!(", refused: {e}"),
                },
                Err(e) => print!(", no answer ({e}): lost"),
            }
        }
        println!();
        if n + 1 < args.count {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
    Ok(())
}

/// The first alias of the stored config, else the default.
fn config_alias(path: Option<&str>) -> u16 {
    let config = path.and_then(|p| std::fs::read(p).ok());
    let config = config.and_then(|bytes| DeviceConfig::decode(&bytes).ok());
    config
        .and_then(|c| c.aliases.first().map(|a| a.alias))
        .unwrap_or(DEFAULT_ALIAS)
}

struct Args {
    gateway: String,
    device: String,
    token: String,
    config_file: Option<String>,
    alias: Option<u16>,
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
            alias: None,
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
                "--alias" => args.alias = Some(number(&value()?)?),
                "--interval-ms" => args.interval_ms = number(&value()?)?,
                "--count" => args.count = number(&value()?)?,
                "--ack" => args.ack = true,
                _ => return Err(format!("unknown argument {arg}; see the example's docs")),
            }
        }
        Ok(args)
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}
