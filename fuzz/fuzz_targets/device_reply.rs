//! Fuzzes the device client's side of the conversation: every byte a broker sends a device.
//!
//! The input is used three ways:
//! - as one answer datagram: `client::udp::decode_reply` (the client's hand-checked reply
//!   decoder) must agree with `decode_body` (serde's derive): the same `Done`, `Ack` or
//!   `Error`, or neither;
//! - as the stream after a hello (first byte: receive-buffer size and read chunk), driven
//!   through `client::Session` like a client does (hello, then pings, config requests and
//!   acked readings as replies come): no panic, the reader never hands out more than it
//!   received, and a hello reply it accepts is the one `decode_frame` sees, config bytes
//!   and all;
//! - as a stored config: `DeviceConfig::decode`, and when it decodes, encoding it again
//!   fits `MAX_ENCODED_LEN`, is no longer than the input, decodes to the same config and
//!   re-encodes identically.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_firmware::client::session::{Reply, Wait};
use outpost_firmware::client::udp::{decode_reply, UdpReply};
use outpost_firmware::client::{ClientError, Device, Session};
use outpost_firmware::{decode_body, decode_frame, AckMode, DeviceConfig, Frame, MAX_ENCODED_LEN};

const DEVICE: Device<'static> = Device {
    id: "fuzz",
    token: b"token",
};
/// Receive buffers of 8 to 260 bytes, reads of 1 to 22 bytes.
const RX_STEPS: usize = 64;
const RX_STEP: usize = 4;
const RX_MIN: usize = 8;
const CHUNK_STEP: usize = 7;

fuzz_target!(|data: &[u8]| {
    check_datagram(data);
    check_stream(data);
    check_config(data);
});

fn check_datagram(data: &[u8]) {
    let hand = decode_reply(data);
    match (hand, decode_body(data)) {
        (Ok(UdpReply::Done { request_id }), Ok(Frame::Done { request_id: id })) => {
            assert_eq!(request_id, id)
        }
        (
            Ok(UdpReply::Ack {
                request_id,
                produced,
            }),
            Ok(Frame::Ack {
                request_id: id,
                partition,
                base_offset,
                count,
            }),
        ) => {
            assert_eq!(
                (
                    request_id,
                    produced.partition,
                    produced.base_offset,
                    produced.count
                ),
                (id, partition, base_offset, count)
            )
        }
        (
            Err(ClientError::Broker { request_id, code }),
            Ok(Frame::Error {
                request_id: id,
                code: c,
                ..
            }),
        ) => {
            assert_eq!((request_id, code), (id, c))
        }
        (Ok(reply), serde) => panic!("hand {reply:?}, serde {serde:?}"),
        (Err(ClientError::Broker { .. }), serde) => panic!("hand Error, serde {serde:?}"),
        (Err(_), Ok(frame @ (Frame::Done { .. } | Frame::Ack { .. } | Frame::Error { .. }))) => {
            panic!("hand refused {frame:?}")
        }
        (Err(_), _) => {}
    }
}

fn check_stream(data: &[u8]) {
    let Some((&shape, stream)) = data.split_first() else {
        return;
    };
    let rx_len = RX_MIN + usize::from(shape) % RX_STEPS * RX_STEP;
    let chunk = 1 + usize::from(shape >> 6) * CHUNK_STEP;
    let mut tx = [0u8; 64];
    let mut rx = vec![0u8; rx_len];
    let mut session: Session<'_, 2> = Session::new(DEVICE, &mut tx, &mut rx);
    let mut wait = session.hello(None, 0).expect("the hello fits").wait();
    let mut fed = 0;
    let mut requests = 0u32;
    // Each round consumes input or ends; the bound is only a guard.
    for _ in 0..=2 * stream.len() + 2 {
        match session.poll_reply(wait) {
            Ok(Some(reply)) => {
                if reply == Reply::Welcome {
                    check_welcome(&session, stream);
                }
                requests += 1;
                wait = match next_request(&mut session, requests) {
                    Ok(wait) => wait,
                    Err(_) => return,
                };
            }
            Ok(None) if fed == stream.len() => return,
            Ok(None) => {
                let Ok(buf) = session.read_buf() else { return };
                let n = chunk.min(stream.len() - fed).min(buf.len());
                buf[..n].copy_from_slice(&stream[fed..fed + n]);
                fed += n;
                if session.received(n).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    panic!("the session neither progressed nor ended");
}

/// The hello reply the session accepted is the stream's first frame.
fn check_welcome(session: &Session<'_, 2>, stream: &[u8]) {
    let welcome = session.welcome().expect("a welcome after Reply::Welcome");
    let Ok(Some((
        Frame::DeviceHelloAck {
            version,
            broker_time_ms,
            max_frame_len,
            config,
        },
        _,
    ))) = decode_frame(stream, u32::MAX)
    else {
        panic!("the session accepted a hello reply decode_frame does not see");
    };
    assert_eq!(
        (
            welcome.version,
            welcome.broker_time_ms,
            welcome.max_frame_len,
            welcome.config
        ),
        (version, broker_time_ms, max_frame_len, config)
    );
}

/// The next request of a device: pings, config requests and acked readings in turn.
fn next_request(session: &mut Session<'_, 2>, n: u32) -> Result<Wait, ClientError> {
    let request = match n % 3 {
        0 => session.ping()?,
        1 => session.config_request()?,
        _ => session.reading(1, &n.to_le_bytes(), AckMode::Commit)?,
    };
    Ok(request.wait())
}

fn check_config(data: &[u8]) {
    let Ok(config) = DeviceConfig::decode(data) else {
        return;
    };
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let again = config
        .encode(&mut buf)
        .expect("a decoded config fits MAX_ENCODED_LEN");
    // Postcard accepts over-long varints; we write the shortest, so never more bytes.
    assert!(again.len() <= data.len());
    assert_eq!(DeviceConfig::decode(again).as_ref(), Ok(&config));
    let again = again.to_vec();
    let mut twice = [0u8; MAX_ENCODED_LEN];
    assert_eq!(config.encode(&mut twice), Ok(&again[..]));
}
