//! Fuzzes `outpost::udp::parse`, which every UDP datagram from the network goes through
//! before anything about its sender is looked up, and `outpost::udp::encode_reply`, which
//! bounds every reply.
//!
//! Input: the datagram. When it parses, the target checks that
//! - the request's records (a `ProduceAlias`) iterate to an end without error (`parse`
//!   validated them);
//! - the datagram re-encodes, no longer than the input (encoding is canonical), to bytes that
//!   parse to an equal datagram;
//! - every reply the broker could send to it (`Done`, the largest `Ack`, an `Error` whose
//!   message is the datagram's text) fits three times the datagram, or is not sent.
//! For any input, an `Error` reply bounded by the input's length never exceeds that bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::udp::{encode_reply, parse, Datagram, Request, AMPLIFICATION_LIMIT};
use outpost_firmware::{codec, ErrorCode, Frame};

fuzz_target!(|data: &[u8]| {
    check_error_bound(data);
    let Ok(datagram) = parse(data) else {
        return;
    };
    if let Request::Produce { records, .. } = &datagram.request {
        for record in records {
            let record = record.expect("parse validated the records");
            for header in record.headers.iter() {
                header.expect("parse validated the headers");
            }
        }
    }
    check_round_trip(&datagram, data.len());
    check_replies(&datagram, data.len());
});

/// An error reply with `data` (lossy UTF-8) as its message, bounded by `data.len()`.
fn check_error_bound(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let error = Frame::Error {
        request_id: u32::MAX,
        code: ErrorCode::INTERNAL,
        message: &text,
    };
    let mut buf = [0u8; 256];
    if let Some(bytes) = encode_reply(&error, data.len(), &mut buf) {
        assert!(bytes.len() <= data.len());
        assert!(codec::decode_body(bytes).is_ok());
    }
}

/// Rebuilds the frames of `datagram`, encodes them and parses the result again.
fn check_round_trip(datagram: &Datagram<'_>, used: usize) {
    let inner = datagram.request.frame();
    let mut body = vec![0u8; used];
    let body = codec::encode_body(&inner, &mut body).expect("the body re-encodes in as many bytes");
    let outer = Frame::Datagram {
        device_id: datagram.device_id,
        token: datagram.token,
        body,
    };
    let mut out = vec![0u8; used];
    let out = codec::encode_body(&outer, &mut out).expect("the datagram re-encodes in as many bytes");
    assert!(out.len() <= used);
    assert_eq!(&parse(out).expect("a re-encoded datagram parses"), datagram);
}

/// Every reply to `datagram` fits `AMPLIFICATION_LIMIT` times its length, or is dropped.
fn check_replies(datagram: &Datagram<'_>, len: usize) {
    let limit = len * AMPLIFICATION_LIMIT;
    let request_id = datagram.request.request_id();
    let replies = [
        Frame::Done { request_id },
        Frame::Ack {
            request_id,
            partition: u32::MAX,
            base_offset: u64::MAX,
            count: u32::MAX,
        },
        Frame::Error {
            request_id,
            code: ErrorCode::UNKNOWN_ALIAS,
            message: datagram.device_id,
        },
    ];
    let mut buf = [0u8; 256];
    for reply in &replies {
        if let Some(bytes) = encode_reply(reply, limit, &mut buf) {
            assert!(bytes.len() <= limit);
        }
    }
}
