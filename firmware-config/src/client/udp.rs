//! Datagrams: one request of a device without a connection, and the broker's answer.
//!
//! [`encode_datagram`] writes one `Datagram` frame body (no length prefix: the datagram
//! delimits it) wrapping one request body, [`decode_reply`] reads the answer datagram. Over
//! UDP only the aliases of the device's stored config exist; nothing is registered, there is
//! no hello and no clock. This module owns the two codecs, not a socket (`no_std` has none;
//! the `udp_sensor` example uses `std::net::UdpSocket`).

use super::reply::{parse_reply, Parsed};
use super::{ClientError, Device, Produced};
use crate::codec::encode_body;
use crate::{varint, AckMode, Frame, Records, MAX_PREFIX_LEN};

/// One request a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpRequest<'x> {
    /// One value for an alias; `request_id` 0 asks for no answer, any other for `Done`.
    Reading {
        /// 0, or the id the answer echoes.
        request_id: u32,
        /// An alias of the device's stored config.
        alias: u16,
        /// The value.
        value: &'x [u8],
    },
    /// Records for an alias; `AckMode::Commit` asks for `Ack`.
    Produce {
        /// The id the answer echoes.
        request_id: u32,
        /// An alias of the device's stored config.
        alias: u16,
        /// Whether the broker answers.
        ack: AckMode,
        /// The records, built with [`SeqWriter`](crate::SeqWriter).
        records: Records<'x>,
    },
    /// The device's sleep hint; `request_id` 0 asks for no answer, any other for `Done`.
    Sleep {
        /// 0, or the id the answer echoes.
        request_id: u32,
        /// How long the device sleeps, in milliseconds.
        duration_ms: u32,
    },
}

impl<'x> UdpRequest<'x> {
    /// The request a frame is, for the three frames a datagram may wrap; `None` otherwise.
    /// (The broker reads datagrams with it; records are not validated here.)
    pub fn from_frame(frame: Frame<'x>) -> Option<Self> {
        Some(match frame {
            Frame::Reading {
                request_id,
                alias,
                value,
            } => UdpRequest::Reading {
                request_id,
                alias,
                value,
            },
            Frame::ProduceAlias {
                request_id,
                alias,
                ack,
                records,
            } => UdpRequest::Produce {
                request_id,
                alias,
                ack,
                records,
            },
            Frame::Sleep {
                request_id,
                duration_ms,
            } => UdpRequest::Sleep {
                request_id,
                duration_ms,
            },
            _ => return None,
        })
    }

    /// The id an answer echoes.
    pub fn request_id(&self) -> u32 {
        match *self {
            UdpRequest::Reading { request_id, .. }
            | UdpRequest::Produce { request_id, .. }
            | UdpRequest::Sleep { request_id, .. } => request_id,
        }
    }

    /// Whether the device asked for an answer: `Commit` for records, a non-zero request id
    /// otherwise.
    pub fn wants_reply(&self) -> bool {
        match *self {
            UdpRequest::Produce { ack, .. } => ack == AckMode::Commit,
            UdpRequest::Reading { request_id, .. } | UdpRequest::Sleep { request_id, .. } => {
                request_id != 0
            }
        }
    }

    /// The frame the datagram wraps.
    pub fn frame(&self) -> Frame<'x> {
        match *self {
            UdpRequest::Reading {
                request_id,
                alias,
                value,
            } => Frame::Reading {
                request_id,
                alias,
                value,
            },
            UdpRequest::Produce {
                request_id,
                alias,
                ack,
                records,
            } => Frame::ProduceAlias {
                request_id,
                alias,
                ack,
                records,
            },
            UdpRequest::Sleep {
                request_id,
                duration_ms,
            } => Frame::Sleep {
                request_id,
                duration_ms,
            },
        }
    }
}

/// The answer to a datagram that asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpReply {
    /// `Done`: the reading (or sleep hint) with this id was committed (recorded).
    Done {
        /// The request's id.
        request_id: u32,
    },
    /// `Ack`: the records with this id were committed.
    Ack {
        /// The request's id.
        request_id: u32,
        /// Where they went.
        produced: Produced,
    },
}

/// Writes the datagram of `request` on behalf of `device` into `buf` and returns it (a
/// sub-slice of `buf`, starting at its start).
///
/// `buf` needs the datagram's length plus 4 bytes (room for the inner body's length before
/// it is known). Fails with `BufferTooSmall` when it is shorter.
pub fn encode_datagram<'b>(
    device: Device<'_>,
    request: &UdpRequest<'_>,
    buf: &'b mut [u8],
) -> Result<&'b [u8], ClientError> {
    // The fields before the body are those of the same datagram with an empty body, whose
    // encoding ends in the empty body's length byte (0).
    let empty = Frame::Datagram {
        device_id: device.id,
        token: device.token,
        body: &[],
    };
    let fixed = encode_body(&empty, buf)?.len() - 1;
    let room = fixed + MAX_PREFIX_LEN;
    let tail = buf.get_mut(room..).ok_or(ClientError::BufferTooSmall)?;
    let inner = encode_body(&request.frame(), tail)?.len();
    let inner_u32 = u32::try_from(inner).map_err(|_| ClientError::BufferTooSmall)?;
    let (len, len_len) = varint::encode_u32(inner_u32);
    // In bounds: `room` (= fixed + 5) and the inner body after it were checked by `get_mut`.
    buf[fixed..fixed + len_len].copy_from_slice(&len[..len_len]);
    buf.copy_within(room..room + inner, fixed + len_len);
    Ok(&buf[..fixed + len_len + inner])
}

/// Reads the broker's answer datagram. An `Error` answer is `Err(Broker { .. })` with its
/// request id and code; a frame that is not an answer is `UnexpectedFrame`; bytes that do
/// not decode (a truncated datagram) are `Malformed`.
pub fn decode_reply(datagram: &[u8]) -> Result<UdpReply, ClientError> {
    match parse_reply(datagram)? {
        Parsed::Done { request_id } => Ok(UdpReply::Done { request_id }),
        Parsed::Ack {
            request_id,
            produced,
        } => Ok(UdpReply::Ack {
            request_id,
            produced,
        }),
        Parsed::Error { request_id, code } => Err(ClientError::Broker { request_id, code }),
        _ => Err(ClientError::UnexpectedFrame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::ONE_RECORD;
    use crate::{decode_body, ErrorCode, Seq};

    const DEVICE: Device<'static> = Device {
        id: "d1",
        token: b"",
    };

    #[test]
    fn golden_datagram_of_a_reading() {
        // The golden `Datagram` frame (frame.rs) without its length prefix.
        let expected = [
            0x1f, 0x02, b'd', b'1', 0x00, 0x05, 0x1b, 0x00, 0x01, 0x01, 0x07,
        ];
        let reading = UdpRequest::Reading {
            request_id: 0,
            alias: 1,
            value: &[7],
        };
        let mut buf = [0u8; 15];
        assert_eq!(
            encode_datagram(DEVICE, &reading, &mut buf),
            Ok(&expected[..])
        );
        let mut short = [0u8; 14];
        let got = encode_datagram(DEVICE, &reading, &mut short);
        assert_eq!(got, Err(ClientError::BufferTooSmall));
    }

    #[test]
    fn datagrams_wrap_the_request_body() {
        let records = Seq::from_bytes(ONE_RECORD).unwrap();
        let long = [0x5a; 300];
        let requests = [
            UdpRequest::Produce {
                request_id: 6,
                alias: 1,
                ack: AckMode::Commit,
                records,
            },
            UdpRequest::Sleep {
                request_id: 2,
                duration_ms: 60_000,
            },
            UdpRequest::Reading {
                request_id: 70_000,
                alias: 300,
                value: &long,
            },
        ];
        let device = Device {
            id: "sensor-7",
            token: b"secret",
        };
        for request in requests {
            let mut buf = [0u8; 400];
            let datagram = encode_datagram(device, &request, &mut buf)
                .unwrap()
                .to_vec();
            let Ok(Frame::Datagram {
                device_id,
                token,
                body,
            }) = decode_body(&datagram)
            else {
                panic!("not a datagram: {datagram:02x?}");
            };
            assert_eq!((device_id, token), ("sensor-7", &b"secret"[..]));
            assert_eq!(decode_body(body), Ok(request.frame()));
        }
    }

    #[test]
    fn replies_decode_and_errors_are_errors() {
        assert_eq!(
            decode_reply(&[0x11, 0x11]),
            Ok(UdpReply::Done { request_id: 17 })
        );
        let ack = [0x03, 0x07, 0x02, 0xac, 0x02, 0x02];
        let produced = Produced {
            partition: 2,
            base_offset: 300,
            count: 2,
        };
        let expected = UdpReply::Ack {
            request_id: 7,
            produced,
        };
        assert_eq!(decode_reply(&ack), Ok(expected));
        let error = [0x04, 0x07, 0x13, 0x02, b'n', b'o'];
        let code = ErrorCode::UNKNOWN_ALIAS;
        let expected = ClientError::Broker {
            request_id: 7,
            code,
        };
        assert_eq!(decode_reply(&error), Err(expected));
        assert_eq!(
            decode_reply(&[0x13, 0x01]),
            Err(ClientError::UnexpectedFrame)
        );
        for end in 0..ack.len() {
            assert_eq!(decode_reply(&ack[..end]), Err(ClientError::Malformed));
        }
        assert_eq!(
            decode_reply(&[0x11, 0x11, 0x00]),
            Err(ClientError::Malformed)
        );
        assert_eq!(decode_reply(&[0x7f]), Err(ClientError::UnexpectedFrame));
    }
}
