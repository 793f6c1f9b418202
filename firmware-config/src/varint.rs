//! LEB128 varints for `u32`, as postcard writes them: seven bits per byte, least significant
//! group first, high bit set on every byte but the last. Used for the frame length prefix and
//! for sequence counts, the two places this crate reads varints itself.

use crate::Error;

/// The most bytes a `u32` varint takes.
pub(crate) const MAX_LEN: usize = 5;

/// The largest value the fifth byte may hold: 32 - 4 * 7 = 4 bits, no continuation.
const LAST_BYTE_MAX: u8 = 0x0f;

const CONTINUE: u8 = 0x80;
const PAYLOAD: u8 = 0x7f;

/// Encodes `value`; returns the buffer and how many of its bytes are used.
pub(crate) fn encode_u32(mut value: u32) -> ([u8; MAX_LEN], usize) {
    let mut out = [0u8; MAX_LEN];
    let mut n = 0;
    while value > u32::from(PAYLOAD) {
        out[n] = (value as u8 & PAYLOAD) | CONTINUE;
        value >>= 7;
        n += 1;
    }
    out[n] = value as u8;
    (out, n + 1)
}

/// How many bytes `encode_u32(value)` writes.
pub(crate) const fn len_u32(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0x0fff_ffff => 4,
        _ => 5,
    }
}

/// Decodes a varint at the start of `buf`: `Ok(None)` when `buf` ends inside it,
/// `Err(Malformed)` when it runs past five bytes or overflows `u32`, else the value and the
/// bytes it took. Over-long encodings (`0x80 0x00` for 0) are accepted, as postcard does.
pub(crate) fn decode_u32(buf: &[u8]) -> Result<Option<(u32, usize)>, Error> {
    let mut value = 0u32;
    for (i, &byte) in buf.iter().take(MAX_LEN).enumerate() {
        if i == MAX_LEN - 1 && byte > LAST_BYTE_MAX {
            return Err(Error::Malformed);
        }
        value |= u32::from(byte & PAYLOAD) << (7 * i);
        if byte & CONTINUE == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    // Fewer than five bytes, all with the continuation bit: the rest has not arrived.
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: u32) -> std::vec::Vec<u8> {
        let (buf, n) = encode_u32(value);
        buf[..n].to_vec()
    }

    #[test]
    fn encodes_like_leb128() {
        assert_eq!(encoded(0), [0x00]);
        assert_eq!(encoded(0x7f), [0x7f]);
        assert_eq!(encoded(0x80), [0x80, 0x01]);
        assert_eq!(encoded(300), [0xac, 0x02]);
        assert_eq!(encoded(1 << 20), [0x80, 0x80, 0x40]);
        assert_eq!(encoded(u32::MAX), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn len_matches_encoding() {
        for v in [
            0,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0x1f_ffff,
            0x20_0000,
            0x0fff_ffff,
            u32::MAX,
        ] {
            assert_eq!(len_u32(v), encoded(v).len(), "{v:#x}");
        }
    }

    #[test]
    fn decodes_round_trip() {
        for v in [
            0,
            1,
            0x7f,
            0x80,
            300,
            1 << 20,
            0x0fff_ffff,
            0x1000_0000,
            u32::MAX,
        ] {
            let bytes = encoded(v);
            assert_eq!(decode_u32(&bytes), Ok(Some((v, bytes.len()))));
        }
    }

    #[test]
    fn incomplete_is_none() {
        assert_eq!(decode_u32(&[]), Ok(None));
        assert_eq!(decode_u32(&[0x80]), Ok(None));
        assert_eq!(decode_u32(&[0xff, 0xff, 0xff, 0xff]), Ok(None));
    }

    #[test]
    fn rejects_long_or_overflowing() {
        assert_eq!(
            decode_u32(&[0xff, 0xff, 0xff, 0xff, 0x10]),
            Err(Error::Malformed)
        );
        assert_eq!(
            decode_u32(&[0x80, 0x80, 0x80, 0x80, 0x80]),
            Err(Error::Malformed)
        );
        assert_eq!(
            decode_u32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn accepts_overlong_like_postcard() {
        assert_eq!(decode_u32(&[0x80, 0x00]), Ok(Some((0, 2))));
    }
}
