//! The blocking device client over a real socket on loopback: `std::net::TcpStream`
//! through `client::FromStd`, against a scripted broker on a thread (the real broker's device
//! side is tested end to end elsewhere). Every socket has a timeout; nothing sleeps.
//!
//! Needs the `std` feature, which `cargo test --workspace` turns on (the broker depends on
//! it); `cargo test -p outpost-firmware --features std` runs it alone. No dev-dependency on
//! purpose: one would show `std` in `cargo tree -e features` of the no_std build.

#![cfg(feature = "std")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use outpost_firmware::client::{blocking, Device, FromStd};
use outpost_firmware::{decode_frame, encode_frame, AckMode, Frame, Record};

const TIMEOUT: Duration = Duration::from_secs(10);
const DEVICE: Device<'static> = Device {
    id: "dev42",
    token: b"",
};
const BROKER_TIME_MS: u64 = 1_700_000_000_000;

/// A broker that accepts `connections` connections one after the other and answers each
/// device request as the protocol says; returns the names of the frames of each connection.
fn scripted_broker(connections: usize) -> (String, JoinHandle<Vec<Vec<&'static str>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let broker = std::thread::spawn(move || {
        (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                serve(stream)
            })
            .collect()
    });
    (address, broker)
}

/// Answers one connection until the device closes it.
fn serve(mut stream: TcpStream) -> Vec<&'static str> {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (mut received, mut names) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            return names;
        }
        received.extend_from_slice(&buf[..n]);
        while let Ok(Some((frame, used))) = decode_frame(&received, u32::MAX) {
            names.push(frame.name());
            if let Some(reply) = answer(&frame) {
                let mut out = [0u8; 64];
                stream
                    .write_all(encode_frame(&reply, &mut out).unwrap())
                    .unwrap();
            }
            received.drain(..used);
        }
    }
}

fn answer(frame: &Frame<'_>) -> Option<Frame<'static>> {
    Some(match *frame {
        Frame::DeviceHello { .. } => Frame::DeviceHelloAck {
            version: 1,
            broker_time_ms: BROKER_TIME_MS,
            max_frame_len: 1 << 20,
            config: None,
        },
        Frame::RegisterAlias { request_id, .. } => Frame::Done { request_id },
        Frame::Reading { request_id: 0, .. } => return None,
        Frame::Reading { request_id, .. } => Frame::Done { request_id },
        Frame::ProduceAlias {
            request_id,
            records,
            ..
        } => Frame::Ack {
            request_id,
            partition: 0,
            base_offset: 7,
            count: records.len(),
        },
        Frame::Ping { request_id } => Frame::Pong { request_id },
        _ => return None,
    })
}

fn dial(address: &str) -> FromStd<TcpStream> {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    FromStd::new(stream)
}

#[test]
fn blocking_client_over_std_tcp_stream() {
    let (address, broker) = scripted_broker(2);
    let (mut tx, mut rx) = ([0u8; 128], [0u8; 128]);
    let mut client: blocking::Client<'_, _> =
        blocking::Client::new(dial(&address), DEVICE, &mut tx, &mut rx);
    let welcome = client.connect(None, 0).unwrap();
    assert_eq!(welcome.broker_time_ms, BROKER_TIME_MS);
    client.register_alias(1, "sensors", None).unwrap();
    client
        .reading(1, &21.5f32.to_le_bytes(), AckMode::None)
        .unwrap();
    client
        .reading(1, &21.6f32.to_le_bytes(), AckMode::Commit)
        .unwrap();
    let produced = client
        .produce_with(1, AckMode::Commit, |w| {
            (0..3u8).try_for_each(|i| w.push(&Record::new(&[i])))
        })
        .unwrap();
    assert_eq!(produced.map(|p| (p.base_offset, p.count)), Some((7, 3)));
    // A new connection: hello again, and the alias registered again.
    client.reconnect(dial(&address), None, 0).unwrap();
    client.ping().unwrap();
    drop(client);
    let seen = broker.join().unwrap();
    assert_eq!(
        seen[0],
        [
            "DeviceHello",
            "RegisterAlias",
            "Reading",
            "Reading",
            "ProduceAlias"
        ]
    );
    assert_eq!(seen[1], ["DeviceHello", "RegisterAlias", "Ping"]);
}
