//! Hostile bytes on the binary-protocol port: truncated, oversized, unknown-version and
//! garbage frames get an error frame or a closed connection; the broker keeps serving others.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{runtime, temp_dir, Broker};
use outpost_firmware::{codec, ErrorCode, Frame, PROTOCOL_VERSION};

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn send(s: &mut TcpStream, frame: &Frame<'_>) {
    let mut out = Vec::new();
    codec::encode_frame_vec(frame, &mut out).unwrap();
    s.write_all(&out).unwrap();
}

/// Reads frames until one arrives or the peer closes; returns the raw frame bytes.
fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    for _ in 0..1000 {
        if let Ok(Some((_, used))) = codec::decode_frame(buf, 1 << 20) {
            let bytes = buf[..used].to_vec();
            buf.drain(..used);
            return Some(bytes);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    None
}

fn error_code(bytes: &[u8]) -> Option<ErrorCode> {
    match codec::decode_frame(bytes, 1 << 20).ok()??.0 {
        Frame::Error { code, .. } => Some(code),
        _ => None,
    }
}

/// Asserts the broker closes the connection: EOF or reset, not our read timeout (10 s).
fn assert_closed(s: &mut TcpStream, buf: &[u8]) {
    assert!(
        codec::decode_frame(buf, 1 << 20).ok().flatten().is_none(),
        "unexpected frame"
    );
    let mut chunk = [0u8; 4096];
    for _ in 0..1000 {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection stayed open ({e})"),
        }
    }
    panic!("connection kept sending");
}

fn hello(s: &mut TcpStream, buf: &mut Vec<u8>) {
    send(
        s,
        &Frame::Hello {
            version: PROTOCOL_VERSION,
            client_id: "bad",
        },
    );
    let ack = read_frame(s, buf).unwrap();
    assert!(matches!(
        codec::decode_frame(&ack, 1 << 20).unwrap().unwrap().0,
        Frame::HelloAck { .. }
    ));
}

#[test]
fn hostile_frames_get_errors_and_never_take_the_broker_down() {
    let dir = temp_dir();
    let broker = Broker::start(
        &dir.path().join("data"),
        "[wire]\nlisten = \"127.0.0.1:0\"\nmax_frame_bytes = 65536\nidle_timeout_ms = 1000\n",
    );
    let addr = broker.addr.clone();
    let mut buf = Vec::new();

    // Unknown protocol version: error frame, then close.
    let mut s = connect(&addr);
    send(
        &mut s,
        &Frame::Hello {
            version: 99,
            client_id: "x",
        },
    );
    assert_eq!(
        error_code(&read_frame(&mut s, &mut buf).unwrap()),
        Some(ErrorCode::UNSUPPORTED_VERSION)
    );
    assert_closed(&mut s, &buf);

    // A request before hello.
    buf.clear();
    let mut s = connect(&addr);
    send(&mut s, &Frame::Ping { request_id: 1 });
    assert_eq!(
        error_code(&read_frame(&mut s, &mut buf).unwrap()),
        Some(ErrorCode::HELLO_REQUIRED)
    );
    assert_closed(&mut s, &buf);

    // A length prefix announcing 1 GiB: refused before any body is buffered.
    buf.clear();
    let mut s = connect(&addr);
    hello(&mut s, &mut buf);
    s.write_all(&[0x80, 0x80, 0x80, 0x80, 0x04]).unwrap();
    assert_eq!(
        error_code(&read_frame(&mut s, &mut buf).unwrap()),
        Some(ErrorCode::FRAME_TOO_LARGE)
    );
    assert_closed(&mut s, &buf);

    // A length prefix that never ends (varint overflow).
    buf.clear();
    let mut s = connect(&addr);
    hello(&mut s, &mut buf);
    s.write_all(&[0xff; 8]).unwrap();
    assert!(matches!(
        error_code(&read_frame(&mut s, &mut buf).unwrap()),
        Some(ErrorCode::MALFORMED_FRAME | ErrorCode::FRAME_TOO_LARGE)
    ));
    assert_closed(&mut s, &buf);

    // Garbage inside a well-delimited frame: an error frame, and the connection goes on.
    buf.clear();
    let mut s = connect(&addr);
    hello(&mut s, &mut buf);
    s.write_all(&[5, 0xfe, 0xff, 0xff, 0x01, 0x02]).unwrap();
    assert_eq!(
        error_code(&read_frame(&mut s, &mut buf).unwrap()),
        Some(ErrorCode::MALFORMED_FRAME)
    );
    send(&mut s, &Frame::Ping { request_id: 9 });
    let pong = read_frame(&mut s, &mut buf).unwrap();
    assert!(matches!(
        codec::decode_frame(&pong, 1 << 20).unwrap().unwrap().0,
        Frame::Pong { request_id: 9 }
    ));

    // A truncated frame and a vanished peer.
    let mut s = connect(&addr);
    s.write_all(&[40, 0, 1, 2]).unwrap();
    drop(s);

    // A peer stalled inside a frame is closed after the idle timeout (1 s here).
    buf.clear();
    let mut s = connect(&addr);
    hello(&mut s, &mut buf);
    s.write_all(&[40, 0, 1, 2]).unwrap();
    assert_closed(&mut s, &buf);

    // Random garbage from several connections.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        let mut s = connect(&addr);
        let junk: Vec<u8> = (0..256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = s.write_all(&junk);
        // An error frame and a close, or (junk that reads as a partial frame) the idle close.
        let mut b = Vec::new();
        let _ = read_frame(&mut s, &mut b);
    }

    // The broker still serves a normal client.
    let rt = runtime();
    rt.block_on(async {
        let c = outpost::client::Client::connect(&addr, "good")
            .await
            .unwrap();
        c.ping().await.unwrap();
        c.list_topics().await.unwrap();
    });
    let stderr = broker.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
