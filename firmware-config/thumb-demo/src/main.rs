//! A minimal firmware image: the blocking device client over a mock transport, on a
//! Cortex-M4F. It exists to prove the client links for `thumbv7em-none-eabihf` and to
//! measure what it costs (scripts/firmware-check.sh prints the sizes and fails past the
//! targets: 16 KiB of code, 2 KiB of RAM besides the caller's buffers).
//!
//! The loop connects, registers one alias, sends a reading every iteration (every other one
//! with an ack) and a batch of four records every 16th. The "broker" is [`MockBroker`]: it
//! answers each request with the reply the client waits for, and every byte it hands the
//! client goes through `core::hint::black_box`, so the compiler cannot fold the decoding
//! away. With the `config` feature, the broker pushes a config in its hello reply and the
//! firmware decodes it (what a device does at boot), to measure `DeviceConfig::decode` too.
//!
//! Buffers and the client live in statics (cortex-m-rt turns the entry's `static mut`s
//! into `&'static mut`), so `.bss` shows their RAM: `nm -S` lists `TX`, `RX` (the caller's
//! buffers) and `CLIENT`.

#![no_std]
#![no_main]

mod broker;

use core::hint::black_box;

use cortex_m_rt::entry;
use outpost_firmware::client::{blocking::Client, Device};
use outpost_firmware::{AckMode, Record};
use panic_halt as _;

use broker::MockBroker;

/// The transmit buffer: the hello (device id and token) is the largest request here.
const TX_LEN: usize = 64;
/// The receive buffer: room for any reply, or for a pushed config with the `config` feature.
#[cfg(not(feature = "config"))]
const RX_LEN: usize = outpost_firmware::client::REPLY_ROOM;
#[cfg(feature = "config")]
const RX_LEN: usize = outpost_firmware::client::RX_LEN_FOR_CONFIG;
/// Aliases the client remembers for reconnects.
const ALIASES: usize = 1;
/// The one alias this device registers.
const TEMPERATURE: u16 = 1;
/// Every this many iterations, a batch instead of one reading.
const BATCH_EVERY: u32 = 16;

type DemoClient = Client<'static, MockBroker, ALIASES>;

// The RAM target of the client, checked for this target's pointer width.
const _: () = assert!(core::mem::size_of::<DemoClient>() <= 2048);

#[entry]
fn main() -> ! {
    static mut TX: [u8; TX_LEN] = [0; TX_LEN];
    static mut RX: [u8; RX_LEN] = [0; RX_LEN];
    static mut CLIENT: Option<DemoClient> = None;

    let device = Device {
        id: "dev42",
        token: b"0123456789abcdef",
    };
    let client = CLIENT.insert(Client::new(MockBroker::new(), device, TX, RX));
    let mut now_ms: u64 = 0;
    let mut iteration: u32 = 0;
    loop {
        if !client.session().is_connected() {
            connect(client, now_ms);
        }
        let value = black_box(iteration).to_le_bytes();
        let result = if iteration.is_multiple_of(BATCH_EVERY) {
            batch(client, &value)
        } else {
            let ack = if iteration.is_multiple_of(2) {
                AckMode::Commit
            } else {
                AckMode::None
            };
            client.reading(TEMPERATURE, &value, ack)
        };
        black_box(result.is_ok());
        iteration = iteration.wrapping_add(1);
        now_ms += black_box(1_000);
    }
}

/// Hello (announcing no config), then the alias; failures are retried by the loop.
fn connect(client: &mut DemoClient, now_ms: u64) {
    match client.connect(None, now_ms) {
        Ok(welcome) => {
            black_box(welcome.broker_time_ms);
            #[cfg(feature = "config")]
            apply_config(welcome.config);
        }
        Err(e) => {
            black_box(e);
            return;
        }
    }
    let registered = client.register_alias(TEMPERATURE, "temperature", None);
    black_box(registered.is_ok());
}

/// Four records stamped with the broker's clock, written straight into the transmit buffer.
fn batch(
    client: &mut DemoClient,
    value: &[u8],
) -> Result<(), outpost_firmware::client::ClientError> {
    let stamp = client.broker_time_ms(black_box(0));
    let produced = client.produce_with(TEMPERATURE, AckMode::Commit, |records| {
        for _ in 0..4 {
            let record = Record {
                timestamp_ms: stamp,
                ..Record::new(value)
            };
            records.push(&record)?;
        }
        Ok(())
    })?;
    black_box(produced);
    Ok(())
}

/// What a device does with a pushed config: keep the bytes (flash), decode, use.
#[cfg(feature = "config")]
fn apply_config(bytes: Option<&[u8]>) {
    if let Some(bytes) = bytes {
        if let Ok(config) = outpost_firmware::DeviceConfig::decode(black_box(bytes)) {
            black_box(config.sample_interval_ms);
        }
    }
}
