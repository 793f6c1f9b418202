//! The broker's replies as the device clients see them: [`parse_reply`] turns one frame body
//! into a [`Parsed`] reply (owning no bytes: a config is a range of the body), and
//! [`Parsed::matched`] decides what it means for the request being waited for. Shared by the
//! stream session and the UDP helpers; no I/O, no state.
//!
//! # Why a decoder of its own
//!
//! [`decode_body`](crate::decode_body) decodes every [`Frame`](crate::Frame) through serde's
//! derive, and on a Cortex-M4F that visitor for 37 variants was most of the client: the
//! whole firmware image (thumb-demo) took 18.1 KiB of `.text`, over the 16 KiB target. A
//! device receives only six frames (`DeviceHelloAck`, `Done`, `Ack`, `Pong`, `ConfigReply`,
//! `Error`), so [`parse_reply`] reads those six by hand, following postcard's rules exactly
//! (varint limits per integer width, option tags 0 and 1, UTF-8 for the `Error` message,
//! no bytes left over), and refuses every other discriminant. The tests hold it to
//! `decode_body`: on the golden frames, on every one-byte mutation of them, and on random
//! bytes, both give the same reply or both refuse; the `device_reply` fuzz target checks
//! the same.

use core::ops::Range;

use super::session::Wait;
use super::{ClientError, Produced};
use crate::ErrorCode;

/// Discriminants of the frames a device receives (frame.rs's table).
const ACK: u32 = 3;
const ERROR: u32 = 4;
const DONE: u32 = 17;
const PONG: u32 = 19;
const DEVICE_HELLO_ACK: u32 = 24;
const CONFIG_REPLY: u32 = 29;

/// One reply frame, with its byte fields as ranges of the body it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// `DeviceHelloAck`.
    Welcome {
        version: u16,
        broker_time_ms: u64,
        max_frame_len: u32,
        config: Option<Range<usize>>,
    },
    /// `Done`.
    Done { request_id: u32 },
    /// `Ack`.
    Ack { request_id: u32, produced: Produced },
    /// `Pong`.
    Pong { request_id: u32 },
    /// `ConfigReply`.
    Config {
        request_id: u32,
        config: Option<Range<usize>>,
    },
    /// `Error` (its message is checked, not kept: the client's errors are `Copy`).
    Error { request_id: u32, code: ErrorCode },
    /// A reply to another request than the one waited for: skip it.
    Stale,
}

/// Parses one frame body from the broker. A discriminant this version does not know, and
/// a frame a broker never sends a device, is `UnexpectedFrame`; bytes that do not decode
/// (or are left over) are `Malformed`.
pub(crate) fn parse_reply(body: &[u8]) -> Result<Parsed, ClientError> {
    let mut c = Cursor { body, at: 0 };
    let kind = c.u32()?;
    let parsed = match kind {
        DEVICE_HELLO_ACK => Parsed::Welcome {
            version: c.u16()?,
            broker_time_ms: c.u64()?,
            max_frame_len: c.u32()?,
            config: c.option_bytes()?,
        },
        DONE => Parsed::Done {
            request_id: c.u32()?,
        },
        ACK => Parsed::Ack {
            request_id: c.u32()?,
            produced: Produced {
                partition: c.u32()?,
                base_offset: c.u64()?,
                count: c.u32()?,
            },
        },
        PONG => Parsed::Pong {
            request_id: c.u32()?,
        },
        CONFIG_REPLY => Parsed::Config {
            request_id: c.u32()?,
            config: c.option_bytes()?,
        },
        ERROR => {
            let request_id = c.u32()?;
            let code = ErrorCode(c.u16()?);
            c.str()?;
            Parsed::Error { request_id, code }
        }
        // A frame for brokers or admins, or a discriminant this version does not know.
        _ => return Err(ClientError::UnexpectedFrame),
    };
    c.finish()?;
    Ok(parsed)
}

/// Reads postcard's encoding field by field; every failure is `Malformed`.
struct Cursor<'b> {
    body: &'b [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, ClientError> {
        let byte = *self.body.get(self.at).ok_or(ClientError::Malformed)?;
        self.at += 1;
        Ok(byte)
    }

    /// A varint of an integer `bits` wide, as postcard reads it: at most `ceil(bits / 7)`
    /// bytes, the last of which may carry only the bits left (over-long encodings of small
    /// values are accepted, as postcard does).
    fn varint(&mut self, bits: u32) -> Result<u64, ClientError> {
        let max_len = bits.div_ceil(7);
        let last_max = (1u8 << (bits % 7)) - 1;
        let mut value = 0u64;
        for i in 0..max_len {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let overflows = i == max_len - 1 && byte > last_max;
                return if overflows {
                    Err(ClientError::Malformed)
                } else {
                    Ok(value)
                };
            }
        }
        Err(ClientError::Malformed)
    }

    fn u16(&mut self) -> Result<u16, ClientError> {
        let value = self.varint(u16::BITS)?;
        u16::try_from(value).map_err(|_| ClientError::Malformed)
    }

    fn u32(&mut self) -> Result<u32, ClientError> {
        let value = self.varint(u32::BITS)?;
        u32::try_from(value).map_err(|_| ClientError::Malformed)
    }

    fn u64(&mut self) -> Result<u64, ClientError> {
        self.varint(u64::BITS)
    }

    /// A byte string (its length a `usize` varint, as postcard reads lengths): its range.
    fn bytes(&mut self) -> Result<Range<usize>, ClientError> {
        let len = self.varint(usize::BITS)?;
        let start = self.at;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.body.len())
            .ok_or(ClientError::Malformed)?;
        self.at = end;
        Ok(start..end)
    }

    fn option_bytes(&mut self) -> Result<Option<Range<usize>>, ClientError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            _ => Err(ClientError::Malformed),
        }
    }

    /// A string, checked for UTF-8 and dropped.
    fn str(&mut self) -> Result<(), ClientError> {
        let range = self.bytes()?;
        let bytes = self.body.get(range).ok_or(ClientError::Malformed)?;
        core::str::from_utf8(bytes)
            .map(drop)
            .map_err(|_| ClientError::Malformed)
    }

    /// The whole body must be consumed.
    fn finish(self) -> Result<(), ClientError> {
        match self.at == self.body.len() {
            true => Ok(()),
            false => Err(ClientError::Malformed),
        }
    }
}

impl Parsed {
    /// The same reply with its ranges moved by `offset` (where the body starts in a larger
    /// buffer).
    pub(crate) fn located(self, offset: usize) -> Self {
        let shift = |r: Range<usize>| r.start + offset..r.end + offset;
        match self {
            Parsed::Welcome {
                version,
                broker_time_ms,
                max_frame_len,
                config,
            } => Parsed::Welcome {
                version,
                broker_time_ms,
                max_frame_len,
                config: config.map(shift),
            },
            Parsed::Config { request_id, config } => Parsed::Config {
                request_id,
                config: config.map(shift),
            },
            other => other,
        }
    }

    /// The request id the reply carries; `None` for the hello reply and `Stale`.
    fn request_id(&self) -> Option<u32> {
        match *self {
            Parsed::Done { request_id }
            | Parsed::Ack { request_id, .. }
            | Parsed::Pong { request_id }
            | Parsed::Config { request_id, .. }
            | Parsed::Error { request_id, .. } => Some(request_id),
            Parsed::Welcome { .. } | Parsed::Stale => None,
        }
    }

    /// What this reply means while waiting for `wait`: itself when it answers the request
    /// (or is an `Error`, which ends any wait), `Stale` when it answers another request,
    /// and `UnexpectedFrame` when it cannot come now (a hello reply after the hello, a
    /// reply before the hello reply, a reply of the wrong kind for the request id).
    pub(crate) fn matched(self, wait: Wait) -> Result<Parsed, ClientError> {
        let kind_fits = matches!(
            (&self, wait),
            (Parsed::Welcome { .. }, Wait::Welcome)
                | (Parsed::Done { .. }, Wait::Done(_))
                | (Parsed::Ack { .. }, Wait::Ack(_))
                | (Parsed::Pong { .. }, Wait::Pong(_))
                | (Parsed::Config { .. }, Wait::Config(_))
        );
        match (&self, wait) {
            (Parsed::Error { .. }, _) => Ok(self),
            (Parsed::Welcome { .. }, _) | (_, Wait::Welcome) if !kind_fits => {
                Err(ClientError::UnexpectedFrame)
            }
            _ if self.request_id() != wait.request_id() => Ok(Parsed::Stale),
            _ if kind_fits => Ok(self),
            _ => Err(ClientError::UnexpectedFrame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::frames;
    use crate::{decode_body, Frame};
    use std::vec::Vec;

    /// The reference: `decode_body` (serde's derive), mapped to `Parsed`.
    fn reference(body: &[u8]) -> Result<Parsed, ClientError> {
        let within = |bytes: &[u8]| {
            let start = bytes.as_ptr() as usize - body.as_ptr() as usize;
            start..start + bytes.len()
        };
        let parsed = match decode_body(body)? {
            Frame::DeviceHelloAck {
                version,
                broker_time_ms,
                max_frame_len,
                config,
            } => Parsed::Welcome {
                version,
                broker_time_ms,
                max_frame_len,
                config: config.map(within),
            },
            Frame::Done { request_id } => Parsed::Done { request_id },
            Frame::Ack {
                request_id,
                partition,
                base_offset,
                count,
            } => Parsed::Ack {
                request_id,
                produced: Produced {
                    partition,
                    base_offset,
                    count,
                },
            },
            Frame::Pong { request_id } => Parsed::Pong { request_id },
            Frame::ConfigReply { request_id, config } => Parsed::Config {
                request_id,
                config: config.map(within),
            },
            Frame::Error {
                request_id, code, ..
            } => Parsed::Error { request_id, code },
            _ => return Err(ClientError::UnexpectedFrame),
        };
        Ok(parsed)
    }

    /// The hand decoder and the reference agree on `body`: the same reply, or both refuse.
    fn agree(body: &[u8]) {
        let (hand, serde) = (parse_reply(body), reference(body));
        match (&hand, &serde) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{body:02x?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{body:02x?}: hand {hand:?}, serde {serde:?}"),
        }
    }

    #[test]
    fn golden_frames_parse_as_decode_body_does() {
        for (frame, bytes) in frames() {
            let body = &bytes[1..];
            agree(body);
            let reply = matches!(
                frame,
                Frame::DeviceHelloAck { .. }
                    | Frame::Done { .. }
                    | Frame::Ack { .. }
                    | Frame::Pong { .. }
                    | Frame::ConfigReply { .. }
                    | Frame::Error { .. }
            );
            assert_eq!(parse_reply(body).is_ok(), reply, "{frame:?}");
        }
    }

    #[test]
    fn mutated_golden_frames_parse_as_decode_body_does() {
        for (_, bytes) in frames() {
            let body = &bytes[1..];
            for at in 0..body.len() {
                for value in [0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0xff, body[at] ^ 0x01] {
                    let mut body = body.to_vec();
                    body[at] = value;
                    agree(&body);
                    agree(&body[..at]);
                }
            }
            let mut longer = body.to_vec();
            longer.push(0);
            agree(&longer);
        }
    }

    #[test]
    fn random_replies_parse_as_decode_body_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        };
        // Bodies that start with a reply's discriminant, so most get past the first byte.
        let kinds = [ACK, ERROR, DONE, PONG, DEVICE_HELLO_ACK, CONFIG_REPLY];
        for n in 0..20_000 {
            let kind = kinds[n % kinds.len()] as u8;
            let mut body: Vec<u8> = std::vec![kind];
            body.extend((0..n % 24).map(|_| next()));
            agree(&body);
        }
    }

    #[test]
    fn varint_limits_follow_postcard() {
        // Done { request_id } with a 5-byte id: 0x0f in the last byte is the most a u32 takes.
        agree(&[0x11, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            parse_reply(&[0x11, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Ok(Parsed::Done {
                request_id: u32::MAX
            })
        );
        assert_eq!(
            parse_reply(&[0x11, 0xff, 0xff, 0xff, 0xff, 0x10]),
            Err(ClientError::Malformed)
        );
        // Over-long but in range, as postcard accepts.
        assert_eq!(
            parse_reply(&[0x11, 0x81, 0x00]),
            Ok(Parsed::Done { request_id: 1 })
        );
        // An error code is a u16: three bytes, the last at most 3.
        agree(&[0x04, 0x01, 0xff, 0xff, 0x03, 0x00]);
        agree(&[0x04, 0x01, 0xff, 0xff, 0x04, 0x00]);
        assert!(parse_reply(&[0x04, 0x01, 0xff, 0xff, 0x04, 0x00]).is_err());
        // An Error message that is not UTF-8.
        agree(&[0x04, 0x01, 0x13, 0x01, 0xff]);
        assert_eq!(
            parse_reply(&[0x04, 0x01, 0x13, 0x01, 0xff]),
            Err(ClientError::Malformed)
        );
        // Option tag 2.
        assert_eq!(
            parse_reply(&[0x1d, 0x01, 0x02]),
            Err(ClientError::Malformed)
        );
        assert_eq!(parse_reply(&[]), Err(ClientError::Malformed));
        assert_eq!(parse_reply(&[0x25]), Err(ClientError::UnexpectedFrame));
    }

    #[test]
    fn config_ranges_point_into_the_body() {
        // The golden hello reply carries config bytes [01 02] at the end of its body.
        let body = [
            0x18, 0x01, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x80, 0x80, 0x40, 0x01, 0x02, 0x01,
            0x02,
        ];
        let parsed = parse_reply(&body).unwrap();
        let Parsed::Welcome { config, .. } = parsed.clone() else {
            panic!("{parsed:?}");
        };
        assert_eq!(config, Some(13..15));
        let Parsed::Welcome { config, .. } = parsed.located(100) else {
            panic!("not a welcome");
        };
        assert_eq!(config, Some(113..115));
        let reply = parse_reply(&[0x1d, 0x01, 0x01, 0x01, 0xaa]).unwrap();
        let expected = Parsed::Config {
            request_id: 1,
            config: Some(4..5),
        };
        assert_eq!(reply, expected);
    }

    #[test]
    fn matching_by_request_id_and_kind() {
        let done = |request_id| Parsed::Done { request_id };
        assert_eq!(done(3).matched(Wait::Done(3)), Ok(done(3)));
        assert_eq!(done(2).matched(Wait::Done(3)), Ok(Parsed::Stale));
        assert_eq!(done(2).matched(Wait::Nothing), Ok(Parsed::Stale));
        let unexpected = Err(ClientError::UnexpectedFrame);
        assert_eq!(done(3).matched(Wait::Ack(3)), unexpected);
        assert_eq!(done(3).matched(Wait::Welcome), unexpected);
        let error = Parsed::Error {
            request_id: 0,
            code: ErrorCode::UNKNOWN_ALIAS,
        };
        for wait in [Wait::Welcome, Wait::Done(1), Wait::Nothing] {
            assert_eq!(error.clone().matched(wait), Ok(error.clone()));
        }
        let welcome = Parsed::Welcome {
            version: 1,
            broker_time_ms: 0,
            max_frame_len: 0,
            config: None,
        };
        assert_eq!(welcome.clone().matched(Wait::Welcome), Ok(welcome.clone()));
        assert_eq!(welcome.matched(Wait::Done(1)), unexpected);
        let pong = Parsed::Pong { request_id: 4 };
        assert_eq!(pong.clone().matched(Wait::Pong(4)), Ok(pong));
    }
}
