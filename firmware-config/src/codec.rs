//! Framing: a varint length prefix in front of each postcard-encoded [`Frame`] body, and the
//! checked, incremental decoder for a byte stream.
//!
//! This module owns the prefix and every check a receiver needs before trusting a body: the
//! prefix is a valid varint, the body is within the receiver's maximum, the discriminant is
//! known, the body decodes and is consumed exactly. It does no I/O, keeps no state between
//! calls and never allocates, except `encode_frame_vec` (`alloc` feature). Sequences inside a
//! frame are not decoded here; see [`Frame::validate`].

use crate::frame::FRAME_KINDS;
use crate::seq::ser_error;
use crate::{varint, Error, Frame};

/// The protocol version this crate speaks, sent in `Hello` and `HelloAck`.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame body a receiver accepts unless configured otherwise: 1 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 1 << 20;

/// The broker's default TCP port for the binary protocol.
pub const DEFAULT_PORT: u16 = 7883;

/// The longest length prefix: a `u32` varint takes at most 5 bytes.
pub const MAX_PREFIX_LEN: usize = varint::MAX_LEN;

/// Reads the length prefix at the start of `buf`.
///
/// Returns `Ok(None)` while the prefix is incomplete, else `(prefix_len, body_len)`: the whole
/// frame is `prefix_len + body_len` bytes. Fails with `FrameTooLarge` as soon as the prefix
/// announces more than `max_len` body bytes, before any of the body has arrived, and with
/// `Malformed` on a prefix longer than 5 bytes or overflowing `u32`.
pub fn frame_len(buf: &[u8], max_len: u32) -> Result<Option<(usize, u32)>, Error> {
    let Some((body_len, prefix_len)) = varint::decode_u32(buf)? else {
        return Ok(None);
    };
    if body_len > max_len {
        return Err(Error::FrameTooLarge { len: body_len });
    }
    Ok(Some((prefix_len, body_len)))
}

/// Decodes the frame at the start of `buf`, borrowing from it.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (call again with more bytes),
/// else the frame and the bytes it took (prefix and body); bytes after it are left alone.
/// Errors: `FrameTooLarge` (see [`frame_len`]), `UnknownFrame` for a discriminant this version
/// does not know, `Malformed` for a bad prefix, a body that does not decode, or a body with
/// bytes left over. A body is never awaited, copied or allocated past `max_len`.
pub fn decode_frame(buf: &[u8], max_len: u32) -> Result<Option<(Frame<'_>, usize)>, Error> {
    let Some((prefix_len, body_len)) = frame_len(buf, max_len)? else {
        return Ok(None);
    };
    let end = usize::try_from(body_len)
        .ok()
        .and_then(|len| len.checked_add(prefix_len))
        .ok_or(Error::FrameTooLarge { len: body_len })?;
    let Some(body) = buf.get(prefix_len..end) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, end)))
}

/// Decodes a frame body without a length prefix (for a transport that delimits frames
/// itself, such as one frame per datagram). The whole of `body` must be the frame.
pub fn decode_body(body: &[u8]) -> Result<Frame<'_>, Error> {
    let (kind, _) = varint::decode_u32(body)?.ok_or(Error::Malformed)?;
    // Checked here because postcard reports an unknown variant as a generic serde error.
    if kind >= FRAME_KINDS {
        return Err(Error::UnknownFrame);
    }
    match postcard::take_from_bytes(body) {
        Ok((frame, [])) => Ok(frame),
        _ => Err(Error::Malformed),
    }
}

/// The bytes [`encode_frame`] writes for `frame`: prefix and body.
pub fn encoded_len(frame: &Frame<'_>) -> Result<usize, Error> {
    let body_len = body_len(frame)?;
    usize::try_from(body_len)
        .ok()
        .and_then(|len| len.checked_add(varint::len_u32(body_len)))
        .ok_or(Error::FrameTooLarge { len: body_len })
}

/// Writes `frame` (prefix, then body) at the start of `buf` and returns the written bytes.
/// Fails with `BufferTooSmall` when they do not fit, `FrameTooLarge` for a body over
/// `u32::MAX` bytes. Does not check the receiver's maximum frame length.
pub fn encode_frame<'b>(frame: &Frame<'_>, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
    let body_len = body_len(frame)?;
    let (prefix, prefix_len) = varint::encode_u32(body_len);
    let total = encoded_len(frame)?;
    let out = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    let (head, body) = out
        .split_at_mut_checked(prefix_len)
        .ok_or(Error::BufferTooSmall)?;
    head.copy_from_slice(&prefix[..prefix_len]);
    postcard::to_slice(frame, body).map_err(ser_error)?;
    Ok(out)
}

/// Writes a frame body without a length prefix at the start of `buf`; see [`decode_body`].
pub fn encode_body<'b>(frame: &Frame<'_>, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
    postcard::to_slice(frame, buf)
        .map(|written| &*written)
        .map_err(ser_error)
}

/// Appends `frame` (prefix, then body) to `out` and returns how many bytes were appended.
/// On error `out` is left as it was; the only possible error is `FrameTooLarge`, for a body
/// over `u32::MAX` bytes.
#[cfg(feature = "alloc")]
pub fn encode_frame_vec(frame: &Frame<'_>, out: &mut alloc::vec::Vec<u8>) -> Result<usize, Error> {
    let total = encoded_len(frame)?;
    let start = out.len();
    let end = start.checked_add(total).ok_or(Error::BufferTooSmall)?;
    out.resize(end, 0);
    let written = out
        .get_mut(start..)
        .ok_or(Error::BufferTooSmall)
        .and_then(|tail| encode_frame(frame, tail).map(<[u8]>::len));
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// The postcard body length of `frame`.
fn body_len(frame: &Frame<'_>) -> Result<u32, Error> {
    let size = postcard::ser_flavors::Size::default();
    let len = postcard::serialize_with_flavor(frame, size).map_err(ser_error)?;
    u32::try_from(len).map_err(|_| Error::FrameTooLarge { len: u32::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::frames;
    use crate::Seq;
    use std::vec::Vec;

    const PING: &[u8] = &[0x03, 0x12, 0xac, 0x02];

    #[test]
    fn every_strict_prefix_needs_more_bytes() {
        for (frame, bytes) in frames() {
            for end in 0..bytes.len() {
                assert_eq!(
                    decode_frame(&bytes[..end], u32::MAX),
                    Ok(None),
                    "{frame:?} {end}"
                );
            }
        }
    }

    #[test]
    fn decodes_back_to_back_frames_from_one_buffer() {
        let mut stream: Vec<u8> = Vec::new();
        for (_, bytes) in frames() {
            stream.extend_from_slice(bytes);
        }
        let mut at = 0;
        for (frame, bytes) in frames() {
            let (got, used) = decode_frame(&stream[at..], u32::MAX).unwrap().unwrap();
            assert_eq!((got, used), (frame, bytes.len()));
            at += used;
        }
        assert_eq!(decode_frame(&stream[at..], u32::MAX), Ok(None));
    }

    #[test]
    fn oversize_prefix_fails_before_the_body_arrives() {
        // 0x81 0x01 = 129 body bytes, none of them present.
        let prefix = [0x81, 0x01];
        assert_eq!(
            decode_frame(&prefix, 128),
            Err(Error::FrameTooLarge { len: 129 })
        );
        assert_eq!(
            frame_len(&prefix, 128),
            Err(Error::FrameTooLarge { len: 129 })
        );
        assert_eq!(decode_frame(&prefix, 129), Ok(None));
        let max = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let len = u32::MAX;
        assert_eq!(
            decode_frame(&max, DEFAULT_MAX_FRAME_LEN),
            Err(Error::FrameTooLarge { len })
        );
    }

    #[test]
    fn frame_len_reports_prefix_and_body() {
        assert_eq!(frame_len(&[], 10), Ok(None));
        assert_eq!(frame_len(&[0x80], 10), Ok(None));
        assert_eq!(frame_len(PING, 10), Ok(Some((1, 3))));
        assert_eq!(frame_len(&[0x81, 0x01], 200), Ok(Some((2, 129))));
        assert_eq!(frame_len(&[0xff; 5], u32::MAX), Err(Error::Malformed));
    }

    #[test]
    fn bad_prefix_varint_is_malformed() {
        assert_eq!(decode_frame(&[0xff; 5], u32::MAX), Err(Error::Malformed));
        assert_eq!(decode_frame(&[0x80; 8], u32::MAX), Err(Error::Malformed));
        assert_eq!(decode_frame(&[0xff, 0xff, 0xff, 0xff], u32::MAX), Ok(None));
    }

    #[test]
    fn unknown_discriminant_is_unknown_frame() {
        // 37: the first discriminant after `DevicesReply`.
        assert_eq!(decode_frame(&[0x01, 0x25], 64), Err(Error::UnknownFrame));
        assert_eq!(
            decode_frame(&[0x03, 0x80, 0x01, 0x00], 64),
            Err(Error::UnknownFrame)
        );
        let huge = [0x05, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(decode_frame(&huge, 64), Err(Error::UnknownFrame));
        assert_eq!(decode_body(&[0x25]), Err(Error::UnknownFrame));
    }

    #[test]
    fn broken_bodies_are_malformed() {
        let cases: &[&[u8]] = &[
            &[0x00],                                                 // empty body
            &[0x05, 0xff, 0xff, 0xff, 0xff, 0xff],                   // discriminant overflows u32
            &[0x04, 0x12, 0xac, 0x02, 0x00],                         // Ping with a trailing byte
            &[0x02, 0x00, 0x01],                                     // Hello without client_id
            &[0x04, 0x00, 0x01, 0x01, 0xff],                         // client_id not UTF-8
            &[0x04, 0x00, 0x01, 0x64, b'x'], // client_id longer than the body
            &[0x03, 0x0a, 0x01, 0x02],       // option tag 2
            &[0x08, 0x02, 0x01, 0x01, b't', 0x00, 0x02, 0x01, 0x00], // AckMode 2
            &[0x07, 0x0b, 0x01, 0x01, b't', 0x01, 0x00, 0x00, 0x05], // Compression 5
            &[0x04, 0x0e, 0x01, 0x01, 0x80], // TopicList count cut short
            &[0x03, 0x0e, 0x01, 0x00],       // TopicList with an empty byte string
            &[0x03, 0x14, 0x01, 0x00],       // BridgeStatus with a trailing byte
            &[0x04, 0x15, 0x01, 0x01, 0xff], // BridgeStatusReply json not UTF-8
            &[0x04, 0x15, 0x01, 0x05, b'['], // BridgeStatusReply json cut short
            &[0x05, 0x16, 0x01, 0x01, 0xff, 0x00], // Authenticate user name not UTF-8
            &[0x05, 0x16, 0x01, 0x00, 0x02, b'p'], // Authenticate password cut short
        ];
        for bytes in cases {
            assert_eq!(
                decode_frame(bytes, 64),
                Err(Error::Malformed),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn huge_count_with_short_body_fails_on_validate() {
        // TopicList whose names claim u32::MAX items but hold one.
        let bytes = [
            0x0a, 0x0e, 0x01, 0x07, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, b'a',
        ];
        let (frame, used) = decode_frame(&bytes, 64).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        let Frame::TopicList { names, .. } = frame else {
            panic!("{frame:?}");
        };
        assert_eq!(names.len(), u32::MAX);
        let mut it = names.iter();
        assert_eq!(it.next(), Some(Ok("a")));
        assert_eq!(it.next(), Some(Err(Error::CountMismatch)));
        assert_eq!(it.next(), None);
        assert_eq!(frame.validate(), Err(Error::CountMismatch));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        };
        for len in 0..4000 {
            let bytes: Vec<u8> = (0..len % 40).map(|_| next()).collect();
            check_round_trip(&bytes);
        }
    }

    #[test]
    fn mutated_golden_frames_never_panic() {
        for (_, bytes) in frames() {
            for at in 0..bytes.len() {
                for value in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, bytes[at] ^ 0x01] {
                    let mut bytes = bytes.to_vec();
                    bytes[at] = value;
                    check_round_trip(&bytes);
                }
            }
        }
    }

    /// Decodes `bytes`; if a frame comes out, validates it and checks it re-encodes to bytes
    /// that decode to the same frame and are no longer than the input's (encoding is canonical).
    fn check_round_trip(bytes: &[u8]) {
        if let Ok(Some((frame, used))) = decode_frame(bytes, 64) {
            let _ = frame.validate();
            let mut buf = [0u8; 128];
            let again = encode_frame(&frame, &mut buf).unwrap();
            assert!(again.len() <= used, "{bytes:02x?}");
            assert_eq!(decode_frame(again, 64).unwrap().unwrap().0, frame);
        }
    }

    #[test]
    fn encode_into_short_buffers_fails_cleanly() {
        for (frame, bytes) in frames() {
            let mut buf = std::vec![0u8; bytes.len()];
            for short in 0..bytes.len() {
                let got = encode_frame(&frame, &mut buf[..short]);
                assert_eq!(got, Err(Error::BufferTooSmall), "{frame:?} {short}");
            }
            assert_eq!(encode_frame(&frame, &mut buf), Ok(bytes));
        }
    }

    #[test]
    fn bodies_round_trip_without_prefix() {
        for (frame, bytes) in frames() {
            let mut buf = [0u8; 64];
            let body = encode_body(&frame, &mut buf).unwrap();
            assert_eq!(body, &bytes[1..]);
            assert_eq!(decode_body(body), Ok(frame));
        }
    }

    #[test]
    fn long_body_gets_a_multi_byte_prefix() {
        let batches = [0xabu8; 300];
        let frame = Frame::FetchResult {
            request_id: 1,
            partition: 0,
            log_start: 0,
            high_watermark: 0,
            batches: &batches,
        };
        let mut buf = [0u8; 400];
        let bytes = encode_frame(&frame, &mut buf).unwrap();
        // Body: 5 header bytes + 2 length bytes + 300 = 307 = 0xb3 0x02.
        assert_eq!(&bytes[..3], [0xb3, 0x02, 0x07]);
        assert_eq!(
            decode_frame(bytes, 306),
            Err(Error::FrameTooLarge { len: 307 })
        );
        assert_eq!(decode_frame(bytes, 307), Ok(Some((frame, 309))));
    }

    #[test]
    fn seq_with_bad_count_varint_is_malformed() {
        let names = Seq::<&str>::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(names, Err(Error::Malformed));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn encode_frame_vec_appends() {
        let mut out = std::vec![0xee];
        for (frame, bytes) in frames() {
            out.truncate(1);
            assert_eq!(encode_frame_vec(&frame, &mut out), Ok(bytes.len()));
            assert_eq!((out[0], &out[1..]), (0xee, bytes));
        }
    }
}
