//! Checked decoding and encoding of MQTT 3.1, 3.1.1 and 5.0 control packets.
//!
//! This module owns the bytes of a packet: finding where one ends in a stream
//! ([`frame_len`]), checking and viewing it ([`decode`]) and writing one ([`encode`]). It
//! keeps no state and does no I/O. It does not check topic names and filters beyond their
//! being MQTT strings (wildcards, `$share`: [`super::topic`]), nor anything that needs the
//! connection's state (topic alias ranges, receive maximum, packet identifiers in use, what a
//! client may send first): that is the session's.
//!
//! # Why our own codec
//!
//! - One packet type ([`Packet`]) serves the three protocol levels, so the session has one
//!   code path and fields a level lacks are simply empty.
//! - Decoded packets borrow from the read buffer: strings, payloads, property blocks and
//!   subscription lists are views, and nothing is allocated while decoding.
//! - Every rejection is a [`DecodeError`] that maps to the exact MQTT 5 reason code the
//!   broker must send: Malformed Packet (0x81), Protocol Error (0x82), Packet too large
//!   (0x95) or Unsupported Protocol Version (0x84, a v3 return code 1).
//! - The packet size is checked from the fixed header alone ([`frame_len`]), before the
//!   body is waited for or buffered.
//!
//! # Wire format
//!
//! Every packet is a fixed header and `remaining length` more bytes:
//!
//! | bytes  | field |
//! |--------|-------|
//! | 0      | packet type (bits 7-4, 1..=15) and flags (bits 3-0): PUBLISH has DUP (3), QoS (2-1) and RETAIN (0); PUBREL, SUBSCRIBE and UNSUBSCRIBE have `0b0010`; every other packet `0` |
//! | 1..=4  | remaining length, a Variable Byte Integer (at most 268,435,455) |
//! | …      | variable header, then payload |
//!
//! Data types: integers are big-endian (two or four bytes); a string is a two-byte length
//! and that many bytes of UTF-8 without U+0000; binary data is a two-byte length and bytes;
//! a Variable Byte Integer holds 7 bits per byte, least significant group first, the high
//! bit meaning "more", in at most four bytes and in its shortest form.
//!
//! MQTT 5 properties are a Variable Byte Integer length and then `(identifier, value)`
//! entries, the value's type fixed by the identifier (MQTT 5 section 2.2.2.2). Each packet
//! allows its own set; only User Property (0x26, a string pair) and, in a server's PUBLISH,
//! Subscription Identifier may repeat.
//!
//! | packet | variable header | payload |
//! |--------|-----------------|---------|
//! | CONNECT | protocol name (`MQTT`, or `MQIsdp` for 3.1), level (5, 4, 3), connect flags, keep alive, v5 properties | client id; if will: v5 will properties, will topic, will payload (binary); user name; password (binary) |
//! | CONNACK | acknowledge flags (bit 0 session present), return / reason code, v5 properties | — |
//! | PUBLISH | topic, packet id (QoS > 0 only), v5 properties | application message (the rest) |
//! | PUBACK, PUBREC, PUBREL, PUBCOMP | packet id; v5: reason code and properties, both omitted when success without properties, the properties alone omitted when empty | — |
//! | SUBSCRIBE | packet id, v5 properties | (filter, options byte) entries, at least one |
//! | SUBACK | packet id, v5 properties | one reason code per filter |
//! | UNSUBSCRIBE | packet id, v5 properties | filters, at least one |
//! | UNSUBACK | packet id, v5 properties | v5: one reason code per filter |
//! | PINGREQ, PINGRESP | — | — |
//! | DISCONNECT | v5: reason code and properties, omitted as for PUBACK | — |
//! | AUTH (v5) | reason code and properties, both omitted when success without properties | — |
//!
//! # Encoding
//!
//! [`encode`] writes properties in identifier order, user properties last, and uses the
//! short forms above. It does not check packets against the protocol's rules: what it is
//! given is what is written, with the exceptions its documentation lists.

use super::packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, PubResponse, Publish, QoS,
    SubAck, Subscribe, SubscribeFilters, SubscriptionOptions, UnsubAck, Unsubscribe,
    UnsubscribeFilters, UserProperties, Will,
};

mod properties;
use properties::*;

/// The largest remaining length, and the largest value of any Variable Byte Integer.
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

/// The longest fixed header: the type byte and a four-byte remaining length.
pub const MAX_FIXED_HEADER_LEN: usize = 1 + MAX_VBI_LEN;

/// The most bytes a Variable Byte Integer takes.
const MAX_VBI_LEN: usize = 4;

/// The high bit of a Variable Byte Integer byte: more bytes follow.
const VBI_MORE: u8 = 0x80;

/// The value bits of a Variable Byte Integer byte.
const VBI_VALUE: u8 = 0x7F;

// Packet types (bits 7-4 of the first byte).
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

/// The fixed header flags of PUBREL, SUBSCRIBE and UNSUBSCRIBE.
const FLAGS_0010: u8 = 0b0010;

// PUBLISH fixed header flags.
const PUBLISH_DUP: u8 = 0b1000;
const PUBLISH_QOS_SHIFT: u8 = 1;
const PUBLISH_RETAIN: u8 = 0b0001;

// CONNECT flags.
const CONNECT_RESERVED: u8 = 0x01;
const CONNECT_CLEAN_START: u8 = 0x02;
const CONNECT_WILL: u8 = 0x04;
const CONNECT_WILL_QOS_SHIFT: u8 = 3;
const CONNECT_WILL_RETAIN: u8 = 0x20;
const CONNECT_PASSWORD: u8 = 0x40;
const CONNECT_USERNAME: u8 = 0x80;

/// CONNACK acknowledge flags: bit 0 is Session Present, the others are reserved.
const CONNACK_SESSION_PRESENT: u8 = 0x01;

// Subscription options byte.
const OPTIONS_QOS: u8 = 0b0000_0011;
const OPTIONS_NO_LOCAL: u8 = 0b0000_0100;
const OPTIONS_RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const OPTIONS_RETAIN_HANDLING_SHIFT: u8 = 4;
const OPTIONS_V5_RESERVED: u8 = 0b1100_0000;
const OPTIONS_V3_RESERVED: u8 = 0b1111_1100;

/// The highest v3.1/3.1.1 CONNACK return code (5, not authorized).
const MAX_V3_CONNACK_CODE: u8 = 5;

/// The protocol name of MQTT 3.1.1 and 5.0.
const NAME_MQTT: &[u8] = b"MQTT";
/// The protocol name of MQTT 3.1.
const NAME_MQISDP: &[u8] = b"MQIsdp";

/// MQTT 5 property identifiers (section 2.2.2.2).
mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Why bytes are not a valid packet.
///
/// Each variant maps to the MQTT 5 reason code the broker answers with ([`Self::reason`]);
/// on a v3 connection every variant but [`DecodeError::UnsupportedProtocol`] just closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes cannot be parsed as the packet: a bad length, a truncated or left-over
    /// field, invalid flags, an invalid string, an unknown property (reason 0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet parses but holds data the protocol forbids: a duplicated property, a zero
    /// where one is not allowed, a reason code the packet may not carry (reason 0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The fixed header announces a packet of `size` bytes (fixed header included), more than
    /// the receiver's maximum `max` (reason 0x95).
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The whole packet's size, as its fixed header announces it.
        size: u64,
        /// The receiver's maximum packet size.
        max: u32,
    },
    /// A CONNECT whose protocol name and level are not MQTT 3.1, 3.1.1 or 5.0 (CONNACK
    /// reason 0x84, or v3 return code 1). Nothing after the level byte was checked.
    #[error("unsupported protocol level {level}{}", protocol_name_note(.name_ok))]
    UnsupportedProtocol {
        /// The protocol level byte, which picks the CONNACK format to answer in.
        level: u8,
        /// Whether the protocol name was `MQTT` or `MQIsdp`. When it is not, the client
        /// speaks something else and the connection may simply be closed [MQTT-3.1.2-1].
        name_ok: bool,
    },
}

/// The end of [`DecodeError::UnsupportedProtocol`]'s message.
fn protocol_name_note(name_ok: &bool) -> &'static str {
    if *name_ok {
        ""
    } else {
        " under an unknown protocol name"
    }
}

impl DecodeError {
    /// The MQTT 5 reason code for this error (from [`super::packet::reason`]), to send in a
    /// CONNACK or DISCONNECT.
    pub fn reason(&self) -> u8 {
        use super::packet::reason;
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => reason::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocol { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field does not fit its length: a remaining length over 268,435,455 bytes, a string
    /// or binary field over 65,535 bytes, or a subscription identifier over 268,435,455.
    #[error("packet too large to encode: a remaining length over 268,435,455 bytes, a string or binary field over 65,535 bytes, or a subscription identifier over 268,435,455")]
    TooLarge,
}

type DecodeResult<T> = Result<T, DecodeError>;
type EncodeResult<T> = Result<T, EncodeError>;

/// A field runs past the end of the packet (or of its property block).
const TRUNCATED: DecodeError = DecodeError::Malformed("a field runs past the end of the packet");

// ---------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------

/// Finds the length of the packet at the start of `buf`, from its fixed header.
///
/// Returns `Ok(None)` while `buf` holds less than the whole fixed header or the whole
/// packet, and `Ok(Some(total_len))` (fixed header and remaining length) once one whole
/// packet is at the start of `buf`; bytes after it are left alone.
///
/// Errors, all decided from the first five bytes at most, so before the body is buffered:
/// [`DecodeError::TooLarge`] as soon as the fixed header announces more than
/// `max_packet_size` bytes; [`DecodeError::Malformed`] for packet type 0 (reserved), a
/// remaining length whose fourth byte still has the continuation bit, or one not in its
/// shortest form [MQTT-1.5.5-1].
pub fn frame_len(buf: &[u8], max_packet_size: u32) -> Result<Option<usize>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    if first >> 4 == 0 {
        return Err(DecodeError::Malformed("reserved packet type 0"));
    }
    let Some((remaining, vbi_len)) = read_vbi(rest)? else {
        return Ok(None);
    };
    // At most 1 + 4 + 268,435,455: no overflow in u64.
    let size = 1 + vbi_len as u64 + u64::from(remaining);
    let too_large = DecodeError::TooLarge {
        size,
        max: max_packet_size,
    };
    if size > u64::from(max_packet_size) {
        return Err(too_large);
    }
    let total = usize::try_from(size).map_err(|_| too_large)?;
    Ok((buf.len() >= total).then_some(total))
}

/// Reads a Variable Byte Integer at the start of `buf`: its value and length, or `None`
/// when `buf` ends inside it.
fn read_vbi(buf: &[u8]) -> DecodeResult<Option<(u32, usize)>> {
    let mut value = 0u32;
    for (i, &byte) in buf.iter().take(MAX_VBI_LEN).enumerate() {
        value |= u32::from(byte & VBI_VALUE) << (7 * i);
        if byte & VBI_MORE == 0 {
            // [MQTT-1.5.5-1]: the shortest form, so a last byte of 0 may only stand alone.
            if i > 0 && byte == 0 {
                return Err(DecodeError::Malformed(
                    "variable byte integer not in its shortest form",
                ));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() < MAX_VBI_LEN {
        return Ok(None);
    }
    Err(DecodeError::Malformed(
        "variable byte integer longer than four bytes",
    ))
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// A cursor over the bytes of a packet body or property block. Every read is checked
/// against the end; none allocates.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the rest of the bytes.
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn take(&mut self, len: usize) -> DecodeResult<&'a [u8]> {
        if len > self.buf.len() {
            return Err(TRUNCATED);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let (head, tail) = self.buf.split_first_chunk::<N>().ok_or(TRUNCATED)?;
        self.buf = tail;
        Ok(*head)
    }

    fn u8(&mut self) -> DecodeResult<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> DecodeResult<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn vbi(&mut self) -> DecodeResult<u32> {
        let (value, len) = read_vbi(self.buf)?.ok_or(TRUNCATED)?;
        self.buf = &self.buf[len..];
        Ok(value)
    }

    /// Binary data: a two-byte length and that many bytes.
    fn binary(&mut self) -> DecodeResult<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// An MQTT UTF-8 string.
    fn string(&mut self) -> DecodeResult<&'a str> {
        mqtt_str(self.binary()?)
    }

    /// A non-zero packet identifier.
    fn packet_id(&mut self) -> DecodeResult<u16> {
        match self.u16()? {
            // [MQTT-2.2.1-3]. A Protocol Error, not Malformed: the field parses, its value is
            // what MQTT 5 forbids (section 1.2's definitions).
            0 => Err(DecodeError::Protocol("packet identifier 0")),
            packet_id => Ok(packet_id),
        }
    }
}

/// Checks `bytes` as an MQTT string: UTF-8 [MQTT-1.5.4-1] (which in Rust also excludes the
/// surrogates U+D800..U+DFFF) without U+0000 [MQTT-1.5.4-2].
fn mqtt_str(bytes: &[u8]) -> DecodeResult<&str> {
    let s = std::str::from_utf8(bytes)
        .map_err(|_| DecodeError::Malformed("string is not valid UTF-8"))?;
    if bytes.contains(&0) {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Decodes one whole packet: exactly the `total_len` bytes [`frame_len`] reported.
///
/// CONNECT is decoded by its own protocol name and level whatever `protocol` says; every
/// other packet by `protocol`, the connection's level. The packet borrows from `packet`.
///
/// Errors: [`DecodeError::Malformed`] when the bytes do not parse (including a remaining
/// length that does not match `packet.len()`, and bytes left over after the last field);
/// [`DecodeError::Protocol`] when they parse to values the protocol forbids;
/// [`DecodeError::UnsupportedProtocol`] for a CONNECT of another protocol or level. Never
/// [`DecodeError::TooLarge`]: that is [`frame_len`]'s check. Nothing is allocated.
///
/// Beyond the fixed checks in the module documentation, the decoder also rejects: a PUBLISH
/// with an empty topic and no topic alias, a client's PUBLISH with a Subscription Identifier
/// [MQTT-3.3.4-6] (so a client cannot decode a server's PUBLISH that carries one), a
/// reason code not listed for its packet, and Authentication Data without a method.
pub fn decode(packet: &[u8], protocol: Protocol) -> Result<Packet<'_>, DecodeError> {
    let (first, body) = fixed_header(packet)?;
    let (kind, flags) = (first >> 4, first & 0x0F);
    check_flags(kind, flags)?;
    let mut r = Reader::new(body);
    let decoded = decode_body(kind, flags, protocol, &mut r)?;
    if !r.is_empty() {
        return Err(DecodeError::Malformed(
            "bytes left over after the last field",
        ));
    }
    Ok(decoded)
}

/// Splits off the fixed header: the first byte and the body the remaining length announces,
/// which must be all the rest.
fn fixed_header(packet: &[u8]) -> DecodeResult<(u8, &[u8])> {
    let (&first, rest) = packet.split_first().ok_or(TRUNCATED)?;
    let (remaining, len) = read_vbi(rest)?.ok_or(TRUNCATED)?;
    let body = &rest[len..];
    if usize::try_from(remaining).ok() != Some(body.len()) {
        return Err(DecodeError::Malformed(
            "remaining length does not match the packet",
        ));
    }
    Ok((first, body))
}

/// Checks the fixed header flags of every packet but PUBLISH: reserved values only
/// ([MQTT-2.2.2-1] in 3.1.1, [MQTT-2.1.3-1] in 5.0; [MQTT-3.6.1-1], [MQTT-3.8.1-1],
/// [MQTT-3.10.1-1] for the `0b0010` of PUBREL, SUBSCRIBE and UNSUBSCRIBE).
fn check_flags(kind: u8, flags: u8) -> DecodeResult<()> {
    let expected = match kind {
        PUBLISH => return Ok(()),
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => FLAGS_0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::Malformed("reserved fixed header flags"));
    }
    Ok(())
}

/// Decodes the variable header and payload of a packet of type `kind`.
fn decode_body<'a>(
    kind: u8,
    flags: u8,
    protocol: Protocol,
    r: &mut Reader<'a>,
) -> DecodeResult<Packet<'a>> {
    Ok(match kind {
        CONNECT => Packet::Connect(decode_connect(r)?),
        CONNACK => Packet::ConnAck(decode_connack(r, protocol)?),
        PUBLISH => Packet::Publish(decode_publish(r, flags, protocol)?),
        PUBACK => Packet::PubAck(decode_pub_response(r, PUBACK, protocol)?),
        PUBREC => Packet::PubRec(decode_pub_response(r, PUBREC, protocol)?),
        PUBREL => Packet::PubRel(decode_pub_response(r, PUBREL, protocol)?),
        PUBCOMP => Packet::PubComp(decode_pub_response(r, PUBCOMP, protocol)?),
        SUBSCRIBE => Packet::Subscribe(decode_subscribe(r, protocol)?),
        SUBACK => Packet::SubAck(decode_suback(r, protocol)?),
        UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(r, protocol)?),
        UNSUBACK => Packet::UnsubAck(decode_unsuback(r, protocol)?),
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect(decode_disconnect(r, protocol)?),
        AUTH if protocol.is_v5() => Packet::Auth(decode_auth(r)?),
        // Type 15 is reserved before MQTT 5 (3.1.1 section 2.2.1).
        AUTH => return Err(DecodeError::Malformed("AUTH before MQTT 5")),
        _ => return Err(DecodeError::Malformed("reserved packet type 0")),
    })
}

/// CONNECT, by its own protocol name and level.
fn decode_connect<'a>(r: &mut Reader<'a>) -> DecodeResult<Connect<'a>> {
    let protocol = decode_protocol(r)?;
    let flags = r.u8()?;
    check_connect_flags(flags, protocol)?;
    let keep_alive = r.u16()?;
    let properties = decode_v5_properties(r, protocol, CONNECT_PROPERTIES)?;
    let client_id = r.string()?;
    let will = match flags & CONNECT_WILL {
        0 => None,
        _ => Some(decode_will(r, flags, protocol)?),
    };
    let username = match flags & CONNECT_USERNAME {
        0 => None,
        _ => Some(r.string()?),
    };
    let password = match flags & CONNECT_PASSWORD {
        0 => None,
        _ => Some(r.binary()?),
    };
    Ok(Connect {
        protocol,
        clean_start: flags & CONNECT_CLEAN_START != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

/// The protocol name and level of a CONNECT. A name and level that are not one of ours is
/// `UnsupportedProtocol` ([MQTT-3.1.2-1], [MQTT-3.1.2-2]) when the name is a valid string,
/// so that the session can answer; a name that is not a string is Malformed.
fn decode_protocol(r: &mut Reader<'_>) -> DecodeResult<Protocol> {
    let name = r.binary()?;
    let level = r.u8()?;
    match (name, level) {
        (NAME_MQTT, 4) => Ok(Protocol::V311),
        (NAME_MQTT, 5) => Ok(Protocol::V5),
        (NAME_MQISDP, 3) => Ok(Protocol::V31),
        _ => {
            mqtt_str(name)?;
            Err(DecodeError::UnsupportedProtocol {
                level,
                name_ok: name == NAME_MQTT || name == NAME_MQISDP,
            })
        }
    }
}

/// Checks the CONNECT flags byte.
fn check_connect_flags(flags: u8, protocol: Protocol) -> DecodeResult<()> {
    // [MQTT-3.1.2-3]
    if flags & CONNECT_RESERVED != 0 {
        return Err(DecodeError::Malformed("reserved CONNECT flag set"));
    }
    let will_qos = (flags >> CONNECT_WILL_QOS_SHIFT) & OPTIONS_QOS;
    let will_bits = will_qos != 0 || flags & CONNECT_WILL_RETAIN != 0;
    // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
    if flags & CONNECT_WILL == 0 && will_bits {
        return Err(DecodeError::Malformed("will QoS or retain without a will"));
    }
    // [MQTT-3.1.2-14]
    if QoS::from_u8(will_qos).is_none() {
        return Err(DecodeError::Malformed("will QoS 3"));
    }
    // [MQTT-3.1.2-22] (3.1 says the same); MQTT 5 allows a password alone.
    let password_alone = flags & CONNECT_PASSWORD != 0 && flags & CONNECT_USERNAME == 0;
    if password_alone && !protocol.is_v5() {
        return Err(DecodeError::Malformed("password without a user name"));
    }
    Ok(())
}

/// The will of a CONNECT whose flags (already checked) have the will flag.
fn decode_will<'a>(r: &mut Reader<'a>, flags: u8, protocol: Protocol) -> DecodeResult<Will<'a>> {
    let properties = decode_v5_properties(r, protocol, WILL_PROPERTIES)?;
    let topic = r.string()?;
    let payload = r.binary()?;
    let qos = QoS::from_u8((flags >> CONNECT_WILL_QOS_SHIFT) & OPTIONS_QOS)
        .ok_or(DecodeError::Malformed("will QoS 3"))?;
    Ok(Will {
        topic,
        payload,
        qos,
        retain: flags & CONNECT_WILL_RETAIN != 0,
        properties,
    })
}

/// CONNACK.
fn decode_connack<'a>(r: &mut Reader<'a>, protocol: Protocol) -> DecodeResult<ConnAck<'a>> {
    let flags = r.u8()?;
    // Bits 7-1 are reserved ([MQTT-3.2.2-1] in MQTT 5).
    if flags & !CONNACK_SESSION_PRESENT != 0 {
        return Err(DecodeError::Malformed("reserved CONNACK flags set"));
    }
    let code = r.u8()?;
    let code_ok = match protocol {
        Protocol::V5 => reason_allowed(CONNACK, code),
        Protocol::V31 | Protocol::V311 => code <= MAX_V3_CONNACK_CODE,
    };
    if !code_ok {
        return Err(DecodeError::Protocol("CONNACK code not defined"));
    }
    Ok(ConnAck {
        session_present: flags & CONNACK_SESSION_PRESENT != 0,
        code,
        properties: decode_v5_properties(r, protocol, CONNACK_PROPERTIES)?,
    })
}

/// PUBLISH.
fn decode_publish<'a>(
    r: &mut Reader<'a>,
    flags: u8,
    protocol: Protocol,
) -> DecodeResult<Publish<'a>> {
    // [MQTT-3.3.1-4]
    let qos = QoS::from_u8((flags >> PUBLISH_QOS_SHIFT) & OPTIONS_QOS)
        .ok_or(DecodeError::Malformed("PUBLISH with QoS 3"))?;
    let dup = flags & PUBLISH_DUP != 0;
    // [MQTT-3.3.1-2]
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = r.string()?;
    let packet_id = match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce | QoS::ExactlyOnce => r.packet_id()?,
    };
    let properties = decode_v5_properties(r, protocol, PUBLISH_PROPERTIES)?;
    check_publish_properties(topic, &properties)?;
    Ok(Publish {
        dup,
        qos,
        retain: flags & PUBLISH_RETAIN != 0,
        topic,
        packet_id,
        properties,
        subscription_ids: &[],
        payload: r.rest(),
    })
}

/// The PUBLISH rules that involve its properties.
fn check_publish_properties(topic: &str, properties: &Properties<'_>) -> DecodeResult<()> {
    // [MQTT-3.3.4-6]: this decoder reads what clients send.
    if properties.subscription_identifier.is_some() {
        return Err(DecodeError::Protocol(
            "subscription identifier in a client's PUBLISH",
        ));
    }
    // MQTT 5 section 3.3.2.1; before MQTT 5 there is no alias and [MQTT-4.7.3-1] applies.
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::Protocol(
            "empty topic name without a topic alias",
        ));
    }
    Ok(())
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (`kind`).
fn decode_pub_response<'a>(
    r: &mut Reader<'a>,
    kind: u8,
    protocol: Protocol,
) -> DecodeResult<PubResponse<'a>> {
    let packet_id = r.packet_id()?;
    let (reason, properties) = decode_short_v5_tail(r, kind, protocol)?;
    Ok(PubResponse {
        packet_id,
        reason,
        properties,
    })
}

/// The reason code and properties that PUBACK, PUBREC, PUBREL, PUBCOMP and DISCONNECT may
/// omit: absent, the reason is success (0) and there are no properties (MQTT 5 sections
/// 3.4.2.1, 3.4.2.2.1, 3.14.2.1, 3.14.2.2.1). Before MQTT 5 neither exists.
fn decode_short_v5_tail<'a>(
    r: &mut Reader<'a>,
    kind: u8,
    protocol: Protocol,
) -> DecodeResult<(u8, Properties<'a>)> {
    if !protocol.is_v5() || r.is_empty() {
        return Ok((0, Properties::default()));
    }
    let reason = decode_reason(r, kind)?;
    if r.is_empty() {
        return Ok((reason, Properties::default()));
    }
    Ok((reason, decode_properties(r, allowed_for(kind))?))
}

/// A reason code that `kind` may carry (the tables of MQTT 5 section 3).
fn decode_reason(r: &mut Reader<'_>, kind: u8) -> DecodeResult<u8> {
    let code = r.u8()?;
    if !reason_allowed(kind, code) {
        return Err(DecodeError::Protocol(
            "reason code not defined for the packet",
        ));
    }
    Ok(code)
}

/// SUBSCRIBE.
fn decode_subscribe<'a>(r: &mut Reader<'a>, protocol: Protocol) -> DecodeResult<Subscribe<'a>> {
    let packet_id = r.packet_id()?;
    let properties = decode_v5_properties(r, protocol, SUBSCRIBE_PROPERTIES)?;
    let payload = r.rest();
    let mut entries = Reader::new(payload);
    // [MQTT-3.8.3-3]
    if entries.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without a topic filter"));
    }
    while !entries.is_empty() {
        entries.string()?;
        let options = entries.u8()?;
        // [MQTT-3-8.3-4] (sic, 3.1.1): before MQTT 5 only the QoS bits exist.
        if !protocol.is_v5() && options & OPTIONS_V3_RESERVED != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits set",
            ));
        }
        decode_options(options)?;
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters: SubscribeFilters { payload },
    })
}

/// A subscription options byte, by the MQTT 5 layout (a valid v3 byte reads the same).
fn decode_options(byte: u8) -> DecodeResult<SubscriptionOptions> {
    // [MQTT-3.8.3-5]
    if byte & OPTIONS_V5_RESERVED != 0 {
        return Err(DecodeError::Malformed(
            "reserved subscription option bits set",
        ));
    }
    let qos = QoS::from_u8(byte & OPTIONS_QOS)
        .ok_or(DecodeError::Malformed("subscription with QoS 3"))?;
    let retain_handling = byte >> OPTIONS_RETAIN_HANDLING_SHIFT;
    // MQTT 5 section 3.8.3.1: Retain Handling 3 is a protocol error.
    if retain_handling == 3 {
        return Err(DecodeError::Protocol("retain handling 3"));
    }
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & OPTIONS_NO_LOCAL != 0,
        retain_as_published: byte & OPTIONS_RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// SUBACK.
fn decode_suback<'a>(r: &mut Reader<'a>, protocol: Protocol) -> DecodeResult<SubAck<'a>> {
    let packet_id = r.packet_id()?;
    let properties = decode_v5_properties(r, protocol, SUBACK_PROPERTIES)?;
    let reasons = r.rest();
    let valid = |&code: &u8| match protocol {
        Protocol::V5 => reason_allowed(SUBACK, code),
        // 3.1.1 section 3.9.3: granted QoS 0, 1, 2 or failure 0x80.
        Protocol::V31 | Protocol::V311 => matches!(code, 0x00..=0x02 | 0x80),
    };
    check_reasons(reasons, valid)?;
    Ok(SubAck {
        packet_id,
        properties,
        reasons,
    })
}

/// One reason code per filter, at least one (a SUBSCRIBE or UNSUBSCRIBE has at least one
/// filter), each `valid`.
fn check_reasons(reasons: &[u8], valid: impl Fn(&u8) -> bool) -> DecodeResult<()> {
    if reasons.is_empty() {
        return Err(DecodeError::Protocol(
            "acknowledgement without reason codes",
        ));
    }
    if !reasons.iter().all(valid) {
        return Err(DecodeError::Protocol(
            "reason code not defined for the packet",
        ));
    }
    Ok(())
}

/// UNSUBSCRIBE.
fn decode_unsubscribe<'a>(r: &mut Reader<'a>, protocol: Protocol) -> DecodeResult<Unsubscribe<'a>> {
    let packet_id = r.packet_id()?;
    let properties = decode_v5_properties(r, protocol, UNSUBSCRIBE_PROPERTIES)?;
    let payload = r.rest();
    let mut filters = Reader::new(payload);
    // [MQTT-3.10.3-2]
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without a topic filter"));
    }
    while !filters.is_empty() {
        filters.string()?;
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters: UnsubscribeFilters { payload },
    })
}

/// UNSUBACK: before MQTT 5 only a packet identifier.
fn decode_unsuback<'a>(r: &mut Reader<'a>, protocol: Protocol) -> DecodeResult<UnsubAck<'a>> {
    let packet_id = r.packet_id()?;
    if !protocol.is_v5() {
        return Ok(UnsubAck {
            packet_id,
            properties: Properties::default(),
            reasons: &[],
        });
    }
    let properties = decode_properties(r, UNSUBACK_PROPERTIES)?;
    let reasons = r.rest();
    check_reasons(reasons, |&code| reason_allowed(UNSUBACK, code))?;
    Ok(UnsubAck {
        packet_id,
        properties,
        reasons,
    })
}

/// DISCONNECT: before MQTT 5 empty.
fn decode_disconnect<'a>(r: &mut Reader<'a>, protocol: Protocol) -> DecodeResult<Disconnect<'a>> {
    let (reason, properties) = decode_short_v5_tail(r, DISCONNECT, protocol)?;
    Ok(Disconnect { reason, properties })
}

/// AUTH (MQTT 5 only): empty (success, no properties) or a reason code and properties.
fn decode_auth<'a>(r: &mut Reader<'a>) -> DecodeResult<Auth<'a>> {
    if r.is_empty() {
        return Ok(Auth::default());
    }
    Ok(Auth {
        reason: decode_reason(r, AUTH)?,
        properties: decode_properties(r, AUTH_PROPERTIES)?,
    })
}

/// Whether MQTT 5 lets packet type `kind` carry reason code `code` (the reason code tables
/// of sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1 and
/// 3.15.2.1; the values are those of section 2.4).
fn reason_allowed(kind: u8, code: u8) -> bool {
    match kind {
        CONNACK => matches!(
            code,
            0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
        ),
        PUBACK | PUBREC => matches!(
            code,
            0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
        ),
        PUBREL | PUBCOMP => matches!(code, 0x00 | 0x92),
        SUBACK => matches!(
            code,
            0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
        ),
        UNSUBACK => matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
        DISCONNECT => matches!(
            code,
            0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2
        ),
        AUTH => matches!(code, 0x00 | 0x18 | 0x19),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Views over validated bytes
// ---------------------------------------------------------------------------------------

/// Yields `next`'s items until the bytes end or one fails to decode; then it stops for
/// good. Never panics, whatever the bytes.
fn walk<'a, T: 'a>(
    bytes: &'a [u8],
    next: fn(&mut Reader<'a>) -> DecodeResult<T>,
) -> impl Iterator<Item = T> + 'a {
    let mut r = Reader::new(bytes);
    std::iter::from_fn(move || {
        if r.is_empty() {
            return None;
        }
        let item = next(&mut r);
        if item.is_err() {
            r = Reader::new(&[]);
        }
        item.ok()
    })
}

impl<'a> UserProperties<'a> {
    /// The `(name, value)` pairs in wire order, skipping the block's other properties.
    ///
    /// On a block from the decoder or [`encode_user_properties`] this yields every user
    /// property. On other bytes it stops at the first entry that does not decode.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        walk(self.block, read_property).filter_map(|(_, value)| match value {
            Value::Pair(name, value) => Some((name, value)),
            _ => None,
        })
    }

    /// True when [`Self::iter`] yields nothing.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// One SUBSCRIBE entry: a topic filter and its options byte.
fn read_subscribe_entry<'a>(r: &mut Reader<'a>) -> DecodeResult<(&'a str, SubscriptionOptions)> {
    let filter = r.string()?;
    Ok((filter, decode_options(r.u8()?)?))
}

impl<'a> SubscribeFilters<'a> {
    /// The `(topic filter, options)` entries in wire order.
    ///
    /// On a payload from the decoder or [`encode_subscribe_filters`] this yields every
    /// entry. On other bytes it stops at the first entry that does not decode.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, SubscriptionOptions)> + 'a {
        walk(self.payload, read_subscribe_entry)
    }

    /// The number of entries [`Self::iter`] yields.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when [`Self::iter`] yields nothing (never for a decoded SUBSCRIBE).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'a> UnsubscribeFilters<'a> {
    /// The topic filters in wire order.
    ///
    /// On a payload from the decoder or [`encode_unsubscribe_filters`] this yields every
    /// filter. On other bytes it stops at the first one that does not decode.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        walk(self.payload, Reader::string)
    }

    /// The number of filters [`Self::iter`] yields.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when [`Self::iter`] yields nothing (never for a decoded UNSUBSCRIBE).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Where encoded bytes go: a `Vec`, or a counter that only measures them, so that lengths
/// and bytes come from the same code.
trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// A Variable Byte Integer, in its shortest form.
    fn vbi(&mut self, v: usize) -> EncodeResult<()> {
        let mut v = u32::try_from(v)
            .ok()
            .filter(|&v| v <= MAX_REMAINING_LENGTH)
            .ok_or(EncodeError::TooLarge)?;
        loop {
            // The mask keeps 7 bits: the cast loses nothing.
            let byte = (v & u32::from(VBI_VALUE)) as u8;
            v >>= 7;
            if v == 0 {
                self.u8(byte);
                return Ok(());
            }
            self.u8(byte | VBI_MORE);
        }
    }

    fn binary(&mut self, bytes: &[u8]) -> EncodeResult<()> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::TooLarge)?;
        self.u16(len);
        self.put(bytes);
        Ok(())
    }

    fn string(&mut self, s: &str) -> EncodeResult<()> {
        self.binary(s.as_bytes())
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts the bytes put into it.
#[derive(Default)]
struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// What `write` puts, counted.
fn measure(write: impl FnOnce(&mut Counter) -> EncodeResult<()>) -> EncodeResult<usize> {
    let mut counter = Counter::default();
    write(&mut counter)?;
    Ok(counter.0)
}

/// Appends the encoding of `packet` for `protocol` to `out`.
///
/// Before MQTT 5, properties, the reason codes of PUBACK, PUBREC, PUBREL, PUBCOMP and
/// DISCONNECT, and the UNSUBACK payload are not written; a CONNACK `code` and SUBACK
/// `reasons` are written as given (pass v3 return codes). Exceptions to "what is given is
/// written": a CONNECT is written for its own `protocol` field whatever `protocol` says,
/// AUTH always in its MQTT 5 form (do not send one to a v3 client), DUP only at QoS > 0
/// [MQTT-3.3.1-2], the packet identifier of PUBLISH only at QoS > 0, and the subscription
/// options of a v3 SUBSCRIBE as their QoS alone. Filters and user properties are
/// re-encoded from their iterators.
///
/// On error `out` is left as it was.
pub fn encode(
    packet: &Packet<'_>,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let remaining = remaining_len(packet, protocol)?;
    let start = out.len();
    out.reserve(MAX_FIXED_HEADER_LEN + remaining);
    out.u8(first_byte(packet));
    let written = out
        .vbi(remaining)
        .and_then(|()| encode_body(packet, protocol, out));
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// The number of bytes [`encode`] would append for `packet` (for the client's MQTT 5
/// Maximum Packet Size), computed without encoding. Fails exactly when `encode` would.
pub fn encoded_len(packet: &Packet<'_>, protocol: Protocol) -> Result<usize, EncodeError> {
    let remaining = remaining_len(packet, protocol)?;
    let header = measure(|c| c.vbi(remaining))?;
    Ok(1 + header + remaining)
}

/// Appends user-property entries (identifier 0x26 and a string pair each) to `out`: a block
/// that `UserProperties { block }` views, or part of one. On error (a string over 65,535
/// bytes) `out` is left as it was. Strings are written as given: one holding U+0000 makes
/// the receiver reject the packet and [`UserProperties::iter`] stop there.
pub fn encode_user_properties<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    append_all(out, pairs, |out, (name, value)| {
        put_user_property(out, name, value)
    })
}

/// Appends SUBSCRIBE entries (topic filter, MQTT 5 options byte) to `out`: a payload that
/// `SubscribeFilters { payload }` views. On error (a filter over 65,535 bytes) `out` is left
/// as it was.
pub fn encode_subscribe_filters<'a>(
    entries: impl IntoIterator<Item = (&'a str, SubscriptionOptions)>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    append_all(out, entries, |out, (filter, options)| {
        put_subscribe_entry(out, filter, options, Protocol::V5)
    })
}

/// Appends UNSUBSCRIBE topic filters to `out`: a payload that
/// `UnsubscribeFilters { payload }` views. On error (a filter over 65,535 bytes) `out` is
/// left as it was.
pub fn encode_unsubscribe_filters<'a>(
    filters: impl IntoIterator<Item = &'a str>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    append_all(out, filters, |out, filter| out.string(filter))
}

/// Puts every item into `out`, or nothing if one fails.
fn append_all<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut put: impl FnMut(&mut Vec<u8>, T) -> EncodeResult<()>,
) -> EncodeResult<()> {
    let start = out.len();
    let written = items.into_iter().try_for_each(|item| put(out, item));
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// The remaining length of `packet`, checked against the maximum.
fn remaining_len(packet: &Packet<'_>, protocol: Protocol) -> EncodeResult<usize> {
    let len = measure(|c| encode_body(packet, protocol, c))?;
    if len > MAX_REMAINING_LENGTH as usize {
        return Err(EncodeError::TooLarge);
    }
    Ok(len)
}

/// The fixed header's first byte: type and flags.
fn first_byte(packet: &Packet<'_>) -> u8 {
    let (kind, flags) = match packet {
        Packet::Connect(_) => (CONNECT, 0),
        Packet::ConnAck(_) => (CONNACK, 0),
        Packet::Publish(p) => (PUBLISH, publish_flags(p)),
        Packet::PubAck(_) => (PUBACK, 0),
        Packet::PubRec(_) => (PUBREC, 0),
        Packet::PubRel(_) => (PUBREL, FLAGS_0010),
        Packet::PubComp(_) => (PUBCOMP, 0),
        Packet::Subscribe(_) => (SUBSCRIBE, FLAGS_0010),
        Packet::SubAck(_) => (SUBACK, 0),
        Packet::Unsubscribe(_) => (UNSUBSCRIBE, FLAGS_0010),
        Packet::UnsubAck(_) => (UNSUBACK, 0),
        Packet::PingReq => (PINGREQ, 0),
        Packet::PingResp => (PINGRESP, 0),
        Packet::Disconnect(_) => (DISCONNECT, 0),
        Packet::Auth(_) => (AUTH, 0),
    };
    (kind << 4) | flags
}

/// DUP (only at QoS > 0, [MQTT-3.3.1-2]), QoS and RETAIN.
fn publish_flags(p: &Publish<'_>) -> u8 {
    let dup = p.dup && p.qos != QoS::AtMostOnce;
    let mut flags = (p.qos as u8) << PUBLISH_QOS_SHIFT;
    if dup {
        flags |= PUBLISH_DUP;
    }
    if p.retain {
        flags |= PUBLISH_RETAIN;
    }
    flags
}

/// Everything after the fixed header.
fn encode_body<S: Sink>(packet: &Packet<'_>, protocol: Protocol, s: &mut S) -> EncodeResult<()> {
    match packet {
        Packet::Connect(c) => encode_connect(c, s),
        Packet::ConnAck(c) => encode_connack(c, protocol, s),
        Packet::Publish(p) => encode_publish(p, protocol, s),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            s.u16(p.packet_id);
            encode_short_v5_tail(p.reason, &p.properties, protocol, false, s)
        }
        Packet::Subscribe(sub) => encode_subscribe(sub, protocol, s),
        Packet::SubAck(a) => encode_ack(a.packet_id, &a.properties, a.reasons, protocol, s),
        Packet::Unsubscribe(u) => encode_unsubscribe(u, protocol, s),
        Packet::UnsubAck(a) if protocol.is_v5() => {
            encode_ack(a.packet_id, &a.properties, a.reasons, protocol, s)
        }
        Packet::UnsubAck(a) => {
            s.u16(a.packet_id);
            Ok(())
        }
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => encode_short_v5_tail(d.reason, &d.properties, protocol, true, s),
        Packet::Auth(a) => encode_auth(a, s),
    }
}

/// CONNECT, for its own protocol level.
fn encode_connect<S: Sink>(c: &Connect<'_>, s: &mut S) -> EncodeResult<()> {
    let name = match c.protocol {
        Protocol::V31 => NAME_MQISDP,
        Protocol::V311 | Protocol::V5 => NAME_MQTT,
    };
    s.binary(name)?;
    s.u8(c.protocol.level());
    s.u8(connect_flags(c));
    s.u16(c.keep_alive);
    encode_v5_properties(&c.properties, c.protocol, s)?;
    s.string(c.client_id)?;
    if let Some(will) = &c.will {
        encode_v5_properties(&will.properties, c.protocol, s)?;
        s.string(will.topic)?;
        s.binary(will.payload)?;
    }
    if let Some(username) = c.username {
        s.string(username)?;
    }
    if let Some(password) = c.password {
        s.binary(password)?;
    }
    Ok(())
}

/// The CONNECT flags byte for what `c` holds.
fn connect_flags(c: &Connect<'_>) -> u8 {
    let mut flags = 0;
    if c.clean_start {
        flags |= CONNECT_CLEAN_START;
    }
    if let Some(will) = &c.will {
        flags |= CONNECT_WILL | ((will.qos as u8) << CONNECT_WILL_QOS_SHIFT);
        if will.retain {
            flags |= CONNECT_WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= CONNECT_USERNAME;
    }
    if c.password.is_some() {
        flags |= CONNECT_PASSWORD;
    }
    flags
}

/// CONNACK: flags, the code as given, MQTT 5 properties.
fn encode_connack<S: Sink>(c: &ConnAck<'_>, protocol: Protocol, s: &mut S) -> EncodeResult<()> {
    s.u8(if c.session_present {
        CONNACK_SESSION_PRESENT
    } else {
        0
    });
    s.u8(c.code);
    encode_v5_properties(&c.properties, protocol, s)
}

/// PUBLISH: topic, packet identifier at QoS > 0, MQTT 5 properties with the subscription
/// identifiers, payload.
fn encode_publish<S: Sink>(p: &Publish<'_>, protocol: Protocol, s: &mut S) -> EncodeResult<()> {
    s.string(p.topic)?;
    if p.qos != QoS::AtMostOnce {
        s.u16(p.packet_id);
    }
    if protocol.is_v5() {
        encode_property_block(&p.properties, p.subscription_ids, s)?;
    }
    s.put(p.payload);
    Ok(())
}

/// The reason code and properties of PUBACK, PUBREC, PUBREL, PUBCOMP and DISCONNECT (MQTT 5
/// only), in the shortest form: nothing for success without properties, the reason code
/// alone when there are no properties — except that `keep_empty_properties` writes the empty
/// property length after a reason code (for DISCONNECT: some clients, rumqttc 0.25 among
/// them, wait for it and miss the reason otherwise; both forms are valid, MQTT 5 3.14.2.2.1).
fn encode_short_v5_tail<S: Sink>(
    reason: u8,
    properties: &Properties<'_>,
    protocol: Protocol,
    keep_empty_properties: bool,
    s: &mut S,
) -> EncodeResult<()> {
    if !protocol.is_v5() {
        return Ok(());
    }
    let empty = measure(|c| encode_properties(properties, &[], c))? == 0;
    if empty && reason == 0 {
        return Ok(());
    }
    s.u8(reason);
    if empty && !keep_empty_properties {
        return Ok(());
    }
    encode_property_block(properties, &[], s)
}

/// SUBSCRIBE: the entries are re-encoded from [`SubscribeFilters::iter`].
fn encode_subscribe<S: Sink>(
    sub: &Subscribe<'_>,
    protocol: Protocol,
    s: &mut S,
) -> EncodeResult<()> {
    s.u16(sub.packet_id);
    encode_v5_properties(&sub.properties, protocol, s)?;
    for (filter, options) in sub.filters.iter() {
        put_subscribe_entry(s, filter, options, protocol)?;
    }
    Ok(())
}

/// One SUBSCRIBE entry; before MQTT 5 the options byte is the QoS alone.
fn put_subscribe_entry<S: Sink>(
    s: &mut S,
    filter: &str,
    options: SubscriptionOptions,
    protocol: Protocol,
) -> EncodeResult<()> {
    s.string(filter)?;
    let mut byte = options.qos as u8;
    if protocol.is_v5() {
        if options.no_local {
            byte |= OPTIONS_NO_LOCAL;
        }
        if options.retain_as_published {
            byte |= OPTIONS_RETAIN_AS_PUBLISHED;
        }
        byte |= options.retain_handling << OPTIONS_RETAIN_HANDLING_SHIFT;
    }
    s.u8(byte);
    Ok(())
}

/// SUBACK, or MQTT 5 UNSUBACK: packet identifier, properties, reason codes as given.
fn encode_ack<S: Sink>(
    packet_id: u16,
    properties: &Properties<'_>,
    reasons: &[u8],
    protocol: Protocol,
    s: &mut S,
) -> EncodeResult<()> {
    s.u16(packet_id);
    encode_v5_properties(properties, protocol, s)?;
    s.put(reasons);
    Ok(())
}

/// UNSUBSCRIBE: the filters are re-encoded from [`UnsubscribeFilters::iter`].
fn encode_unsubscribe<S: Sink>(
    u: &Unsubscribe<'_>,
    protocol: Protocol,
    s: &mut S,
) -> EncodeResult<()> {
    s.u16(u.packet_id);
    encode_v5_properties(&u.properties, protocol, s)?;
    u.filters.iter().try_for_each(|filter| s.string(filter))
}

/// AUTH: nothing for success without properties, else reason code and properties.
fn encode_auth<S: Sink>(a: &Auth<'_>, s: &mut S) -> EncodeResult<()> {
    let empty = measure(|c| encode_properties(&a.properties, &[], c))? == 0;
    if empty && a.reason == 0 {
        return Ok(());
    }
    s.u8(a.reason);
    encode_property_block(&a.properties, &[], s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::packet::reason;

    const LEVELS: [Protocol; 3] = [Protocol::V31, Protocol::V311, Protocol::V5];

    /// Encodes `packet`, checking that `encoded_len` agrees.
    fn enc(packet: &Packet<'_>, protocol: Protocol) -> Vec<u8> {
        let mut out = vec![0xAA];
        encode(packet, protocol, &mut out).expect("encodes");
        assert_eq!(out[0], 0xAA, "encode appends");
        out.remove(0);
        assert_eq!(encoded_len(packet, protocol), Ok(out.len()));
        out
    }

    /// Decodes `bytes`, checking that `frame_len` sees exactly one packet in them.
    fn dec(bytes: &[u8], protocol: Protocol) -> Result<Packet<'_>, DecodeError> {
        assert_eq!(frame_len(bytes, u32::MAX), Ok(Some(bytes.len())));
        decode(bytes, protocol)
    }

    /// `bytes` decode to `expected` and `expected` encodes to `bytes`.
    fn golden(bytes: &[u8], protocol: Protocol, expected: Packet<'_>) {
        assert_eq!(dec(bytes, protocol), Ok(expected));
        assert_eq!(enc(&expected, protocol), bytes);
    }

    /// A packet with first byte `first` and body `body`.
    fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        out.vbi(body.len()).unwrap();
        out.extend_from_slice(body);
        out
    }

    /// A property block with its length.
    fn block(props: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.vbi(props.len()).unwrap();
        out.extend_from_slice(props);
        out
    }

    /// A v5 QoS 0 PUBLISH to `t` with the property entries `props` and payload `x`.
    fn publish_v5(props: &[u8]) -> Vec<u8> {
        let body = [&[0, 1, b't'][..], &block(props), b"x"].concat();
        packet(0x30, &body)
    }

    /// A v5 CONNECT (clean start, empty client id) with the property entries `props`.
    fn connect_v5(props: &[u8]) -> Vec<u8> {
        let head = [0, 4, b'M', b'Q', b'T', b'T', 5, CONNECT_CLEAN_START, 0, 0];
        packet(0x10, &[&head[..], &block(props), &[0, 0]].concat())
    }

    /// A CONNECT with protocol `name`, `level` and `flags`, then `rest` (no properties).
    fn connect_raw(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
        let len = u8::try_from(name.len()).unwrap();
        let body = [&[0, len][..], name, &[level, flags, 0, 0], rest].concat();
        packet(0x10, &body)
    }

    fn malformed(bytes: &[u8], protocol: Protocol, why: &'static str) {
        let e = decode(bytes, protocol).unwrap_err();
        assert_eq!(e, DecodeError::Malformed(why), "{bytes:02x?}");
        assert_eq!(e.reason(), reason::MALFORMED_PACKET);
    }

    fn protocol_error(bytes: &[u8], protocol: Protocol, why: &'static str) {
        let e = decode(bytes, protocol).unwrap_err();
        assert_eq!(e, DecodeError::Protocol(why), "{bytes:02x?}");
        assert_eq!(e.reason(), reason::PROTOCOL_ERROR);
    }

    const TRUNCATED_WHY: &str = "a field runs past the end of the packet";

    // ---- golden bytes -------------------------------------------------------------------

    #[rustfmt::skip]
    const CONNECT_V311: &[u8] = &[
        0x10, 35,
        0, 4, b'M', b'Q', b'T', b'T', 4,
        0xCE, // user name, password, will QoS 1, will, clean session
        0, 60,
        0, 3, b'c', b'i', b'd',
        0, 3, b'w', b'/', b't',
        0, 3, b'b', b'y', b'e',
        0, 4, b'u', b's', b'e', b'r',
        0, 2, b'p', b'w',
    ];

    #[test]
    fn golden_connect_v311_with_will_user_and_password() {
        let expected = Packet::Connect(Connect {
            protocol: Protocol::V311,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::default(),
            client_id: "cid",
            will: Some(Will {
                topic: "w/t",
                payload: b"bye",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            }),
            username: Some("user"),
            password: Some(b"pw"),
        });
        golden(CONNECT_V311, Protocol::V311, expected);
        // CONNECT goes by its own level, whatever the connection's.
        assert_eq!(decode(CONNECT_V311, Protocol::V5), Ok(expected));
        assert_eq!(enc(&expected, Protocol::V31), CONNECT_V311);
    }

    #[rustfmt::skip]
    const CONNECT_V5: &[u8] = &[
        0x10, 42,
        0, 4, b'M', b'Q', b'T', b'T', 5,
        0x46, // password, will (QoS 0), clean start: no user name, which MQTT 5 allows
        0, 10,
        15,
        0x11, 0, 0, 0x0E, 0x10, // session expiry 3600
        0x21, 0, 20, // receive maximum 20
        0x26, 0, 1, b'k', 0, 1, b'v',
        0, 0, // empty client id
        5, 0x18, 0, 0, 0, 5, // will delay 5
        0, 1, b't',
        0, 0,
        0, 1, 0xFF,
    ];

    #[test]
    fn golden_connect_v5_with_properties() {
        let expected = Packet::Connect(Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 10,
            properties: Properties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(20),
                user_properties: UserProperties {
                    block: &[
                        0x11, 0, 0, 0x0E, 0x10, 0x21, 0, 20, 0x26, 0, 1, b'k', 0, 1, b'v',
                    ],
                },
                ..Properties::default()
            },
            client_id: "",
            will: Some(Will {
                topic: "t",
                payload: b"",
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Properties {
                    will_delay_interval: Some(5),
                    ..Properties::default()
                },
            }),
            username: None,
            password: Some(&[0xFF]),
        });
        golden(CONNECT_V5, Protocol::V311, expected);
        let Ok(Packet::Connect(c)) = decode(CONNECT_V5, Protocol::V5) else {
            panic!("decodes")
        };
        assert_eq!(
            c.properties.user_properties.iter().collect::<Vec<_>>(),
            [("k", "v")]
        );
    }

    #[test]
    fn golden_publish_v3_qos0_and_qos1() {
        #[rustfmt::skip]
        let qos0 = [0x31, 10, 0, 3, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o'];
        #[rustfmt::skip]
        let qos1 = [0x3A, 6, 0, 1, b't', 0x12, 0x34, b'x'];
        let expected0 = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "a/b",
            packet_id: 0,
            properties: Properties::default(),
            subscription_ids: &[],
            payload: b"hello",
        });
        let expected1 = Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t",
            packet_id: 0x1234,
            properties: Properties::default(),
            subscription_ids: &[],
            payload: b"x",
        });
        for protocol in [Protocol::V31, Protocol::V311] {
            golden(&qos0, protocol, expected0);
            golden(&qos1, protocol, expected1);
        }
    }

    #[rustfmt::skip]
    const PUBLISH_V5: &[u8] = &[
        0x32, 18,
        0, 1, b't',
        0, 7,
        11,
        0x23, 0, 5, // topic alias 5
        0x26, 0, 1, b'a', 0, 2, b'b', b'c',
        b'p',
    ];

    #[test]
    fn golden_publish_v5_with_topic_alias_and_user_properties() {
        let expected = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t",
            packet_id: 7,
            properties: Properties {
                topic_alias: Some(5),
                user_properties: UserProperties {
                    block: &[0x23, 0, 5, 0x26, 0, 1, b'a', 0, 2, b'b', b'c'],
                },
                ..Properties::default()
            },
            subscription_ids: &[],
            payload: b"p",
        });
        golden(PUBLISH_V5, Protocol::V5, expected);
        // An empty topic stands for the alias's.
        let aliased = [0x30, 7, 0, 0, 3, 0x23, 0, 1, b'z'];
        let Ok(Packet::Publish(p)) = dec(&aliased, Protocol::V5) else {
            panic!("decodes")
        };
        assert_eq!(
            (p.topic, p.properties.topic_alias, p.payload),
            ("", Some(1), &b"z"[..])
        );
        assert_eq!(enc(&Packet::Publish(p), Protocol::V5), aliased);
    }

    #[test]
    fn golden_publish_v5_from_the_server_with_subscription_ids() {
        let p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t",
            packet_id: 0,
            properties: Properties {
                message_expiry_interval: Some(1),
                ..Properties::default()
            },
            subscription_ids: &[1, 200],
            payload: b"",
        };
        #[rustfmt::skip]
        let bytes = [
            0x30, 14, 0, 1, b't',
            10, 0x02, 0, 0, 0, 1, 0x0B, 1, 0x0B, 0xC8, 0x01,
        ];
        assert_eq!(enc(&Packet::Publish(p), Protocol::V5), bytes);
        // What a client may not send [MQTT-3.3.4-6].
        protocol_error(&bytes, Protocol::V5, "property appears twice");
    }

    #[rustfmt::skip]
    const SUBSCRIBE_V5: &[u8] = &[
        0x82, 15,
        0, 10,
        2, 0x0B, 7, // subscription identifier 7
        0, 3, b'a', b'/', b'#', 0x2E, // QoS 2, no local, retain as published, handling 2
        0, 1, b'x', 0x01,
    ];

    #[test]
    fn golden_subscribe_v5_with_options() {
        let expected = Packet::Subscribe(Subscribe {
            packet_id: 10,
            properties: Properties {
                subscription_identifier: Some(7),
                ..Properties::default()
            },
            filters: SubscribeFilters {
                payload: &SUBSCRIBE_V5[7..],
            },
        });
        golden(SUBSCRIBE_V5, Protocol::V5, expected);
        let Packet::Subscribe(sub) = expected else {
            unreachable!()
        };
        let entries: Vec<_> = sub.filters.iter().collect();
        let first = SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
        };
        let second = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        };
        assert_eq!(entries, [("a/#", first), ("x", second)]);
        assert_eq!((sub.filters.len(), sub.filters.is_empty()), (2, false));
    }

    #[test]
    fn golden_suback_v3_and_v5() {
        let v3 = [0x90, 5, 0, 10, 0x00, 0x01, 0x80];
        let v5 = [0x90, 5, 0, 10, 0, 0x02, 0x8F];
        let expected = |reasons| {
            Packet::SubAck(SubAck {
                packet_id: 10,
                properties: Properties::default(),
                reasons,
            })
        };
        golden(&v3, Protocol::V311, expected(&[0x00, 0x01, 0x80]));
        golden(&v5, Protocol::V5, expected(&[0x02, 0x8F]));
    }

    #[test]
    fn golden_pub_responses_short_and_long() {
        let ack = |packet_id, reason| PubResponse {
            packet_id,
            reason,
            properties: Properties::default(),
        };
        let short = [0x40, 2, 0x12, 0x34];
        for protocol in LEVELS {
            golden(&short, protocol, Packet::PubAck(ack(0x1234, 0)));
        }
        golden(
            &[0x40, 3, 0x12, 0x34, 0x10],
            Protocol::V5,
            Packet::PubAck(ack(0x1234, 0x10)),
        );
        golden(&[0x62, 2, 0, 1], Protocol::V5, Packet::PubRel(ack(1, 0)));
        golden(
            &[0x70, 3, 0, 1, 0x92],
            Protocol::V5,
            Packet::PubComp(ack(1, 0x92)),
        );
        let with_reason_string = Packet::PubRec(PubResponse {
            packet_id: 1,
            reason: 0x80,
            properties: Properties {
                reason_string: Some("x"),
                ..Properties::default()
            },
        });
        golden(
            &[0x50, 8, 0, 1, 0x80, 4, 0x1F, 0, 1, b'x'],
            Protocol::V5,
            with_reason_string,
        );
        // Success with an empty property block is the short form, re-encoded short.
        let long = [0x40, 4, 0x12, 0x34, 0, 0];
        assert_eq!(
            decode(&long, Protocol::V5),
            Ok(Packet::PubAck(ack(0x1234, 0)))
        );
        // Before MQTT 5 the reason code is not written.
        assert_eq!(
            enc(&Packet::PubAck(ack(0x1234, 0x10)), Protocol::V311),
            short
        );
    }

    #[test]
    fn golden_disconnect_v5_with_reason() {
        let with_string = Packet::Disconnect(Disconnect {
            reason: reason::DISCONNECT_WITH_WILL,
            properties: Properties {
                reason_string: Some("bye"),
                ..Properties::default()
            },
        });
        #[rustfmt::skip]
        let bytes = [0xE0, 8, 0x04, 6, 0x1F, 0, 3, b'b', b'y', b'e'];
        golden(&bytes, Protocol::V5, with_string);
        let taken_over = Packet::Disconnect(Disconnect {
            reason: reason::SESSION_TAKEN_OVER,
            properties: Properties::default(),
        });
        // Decoded from the short form; encoded with the empty property length.
        assert_eq!(decode(&[0xE0, 1, 0x8E], Protocol::V5), Ok(taken_over));
        golden(&[0xE0, 2, 0x8E, 0], Protocol::V5, taken_over);
        golden(
            &[0xE0, 0],
            Protocol::V5,
            Packet::Disconnect(Disconnect::default()),
        );
        golden(
            &[0xE0, 0],
            Protocol::V311,
            Packet::Disconnect(Disconnect::default()),
        );
        assert_eq!(enc(&taken_over, Protocol::V311), [0xE0, 0]);
    }

    #[rustfmt::skip]
    const CONNACK_V5: &[u8] = &[
        0x20, 18,
        0x01, 0x00,
        15,
        0x12, 0, 2, b'a', b'b', // assigned client identifier
        0x21, 0, 10, // receive maximum
        0x22, 0, 5, // topic alias maximum
        0x24, 1, // maximum QoS 1
        0x25, 0, // retain not available
    ];

    #[test]
    fn golden_connack_v3_and_v5() {
        let expected = Packet::ConnAck(ConnAck {
            session_present: true,
            code: reason::SUCCESS,
            properties: Properties {
                assigned_client_identifier: Some("ab"),
                receive_maximum: Some(10),
                topic_alias_maximum: Some(5),
                maximum_qos: Some(1),
                retain_available: Some(0),
                ..Properties::default()
            },
        });
        golden(CONNACK_V5, Protocol::V5, expected);
        let refused = Packet::ConnAck(ConnAck {
            session_present: false,
            code: 5,
            properties: Properties::default(),
        });
        golden(&[0x20, 2, 0, 5], Protocol::V311, refused);
    }

    #[test]
    fn golden_unsubscribe_unsuback_ping_auth() {
        let unsubscribe = Packet::Unsubscribe(Unsubscribe {
            packet_id: 9,
            properties: Properties::default(),
            filters: UnsubscribeFilters {
                payload: &[0, 3, b'a', b'/', b'b'],
            },
        });
        golden(
            &[0xA2, 7, 0, 9, 0, 3, b'a', b'/', b'b'],
            Protocol::V311,
            unsubscribe,
        );
        let unsuback = |reasons| {
            Packet::UnsubAck(UnsubAck {
                packet_id: 9,
                properties: Properties::default(),
                reasons,
            })
        };
        golden(&[0xB0, 2, 0, 9], Protocol::V311, unsuback(&[]));
        golden(
            &[0xB0, 5, 0, 9, 0, 0x00, 0x11],
            Protocol::V5,
            unsuback(&[0x00, 0x11]),
        );
        golden(&[0xC0, 0], Protocol::V31, Packet::PingReq);
        golden(&[0xD0, 0], Protocol::V5, Packet::PingResp);
        golden(&[0xF0, 0], Protocol::V5, Packet::Auth(Auth::default()));
        let auth = Packet::Auth(Auth {
            reason: reason::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some("SCRM"),
                ..Properties::default()
            },
        });
        #[rustfmt::skip]
        let bytes = [0xF0, 9, 0x18, 7, 0x15, 0, 4, b'S', b'C', b'R', b'M'];
        golden(&bytes, Protocol::V5, auth);
    }

    #[test]
    fn user_properties_may_interleave_and_repeat() {
        #[rustfmt::skip]
        let props = [
            0x26, 0, 1, b'k', 0, 1, b'1',
            0x02, 0, 0, 0, 9,
            0x26, 0, 1, b'k', 0, 1, b'2',
        ];
        let bytes = publish_v5(&props);
        let Ok(Packet::Publish(p)) = dec(&bytes, Protocol::V5) else {
            panic!("decodes")
        };
        assert_eq!(p.properties.message_expiry_interval, Some(9));
        assert_eq!(p.properties.user_properties.block, props);
        let pairs: Vec<_> = p.properties.user_properties.iter().collect();
        assert_eq!(pairs, [("k", "1"), ("k", "2")]);
        // Re-encoded in identifier order, user properties last: same length, same meaning.
        let again = enc(&Packet::Publish(p), Protocol::V5);
        assert_eq!(again.len(), bytes.len());
        #[rustfmt::skip]
        let reordered = [
            0x02, 0, 0, 0, 9,
            0x26, 0, 1, b'k', 0, 1, b'1',
            0x26, 0, 1, b'k', 0, 1, b'2',
        ];
        assert_eq!(again, publish_v5(&reordered));
    }

    // ---- round trips --------------------------------------------------------------------

    /// What a packet says: blocks replaced by their items, since blocks with different bytes
    /// can say the same.
    #[derive(Debug, PartialEq)]
    struct Meaning<'a> {
        packet: Packet<'a>,
        user_properties: Vec<Vec<(&'a str, &'a str)>>,
        subscribe: Vec<(&'a str, SubscriptionOptions)>,
        unsubscribe: Vec<&'a str>,
    }

    fn meaning<'a>(packet: &Packet<'a>) -> Meaning<'a> {
        let mut packet = *packet;
        let (mut subscribe, mut unsubscribe) = (vec![], vec![]);
        match &mut packet {
            Packet::Subscribe(s) => {
                subscribe = s.filters.iter().collect();
                s.filters.payload = &[];
            }
            Packet::Unsubscribe(u) => {
                unsubscribe = u.filters.iter().collect();
                u.filters.payload = &[];
            }
            _ => {}
        }
        let user_properties = Packet::properties_mut(&mut packet)
            .into_iter()
            .map(|p| std::mem::take(&mut p.user_properties).iter().collect())
            .collect();
        Meaning {
            packet,
            user_properties,
            subscribe,
            unsubscribe,
        }
    }

    /// What is left of a packet's meaning on a v3 connection.
    fn as_v3(mut m: Meaning<'_>) -> Meaning<'_> {
        Packet::properties_mut(&mut m.packet)
            .into_iter()
            .for_each(|p| *p = Properties::default());
        m.user_properties.iter_mut().for_each(Vec::clear);
        for (_, options) in &mut m.subscribe {
            *options = SubscriptionOptions {
                qos: options.qos,
                ..SubscriptionOptions::default()
            };
        }
        match &mut m.packet {
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                r.reason = 0;
            }
            Packet::Disconnect(d) => d.reason = 0,
            Packet::UnsubAck(a) => a.reasons = &[],
            _ => {}
        }
        m
    }

    /// Blocks the samples view.
    struct Blocks {
        user: Vec<u8>,
        subscribe: Vec<u8>,
        unsubscribe: Vec<u8>,
    }

    fn blocks() -> Blocks {
        let mut user = Vec::new();
        encode_user_properties([("k", "v"), ("k", "w"), ("", "")], &mut user).unwrap();
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 1,
        };
        let mut subscribe = Vec::new();
        let entries = [("a/+", options), ("#", SubscriptionOptions::default())];
        encode_subscribe_filters(entries, &mut subscribe).unwrap();
        let mut unsubscribe = Vec::new();
        encode_unsubscribe_filters(["a/+", "#"], &mut unsubscribe).unwrap();
        Blocks {
            user,
            subscribe,
            unsubscribe,
        }
    }

    fn connect_sample<'a>(user: UserProperties<'a>, protocol: Protocol) -> Connect<'a> {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 30,
            properties: Properties {
                session_expiry_interval: Some(60),
                receive_maximum: Some(10),
                maximum_packet_size: Some(1024),
                topic_alias_maximum: Some(4),
                request_problem_information: Some(0),
                request_response_information: Some(1),
                authentication_method: Some("m"),
                authentication_data: Some(b"d"),
                user_properties: user,
                ..Properties::default()
            },
            client_id: "client",
            will: Some(Will {
                topic: "w",
                payload: b"gone",
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: Properties {
                    will_delay_interval: Some(5),
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(9),
                    content_type: Some("text/plain"),
                    response_topic: Some("r"),
                    correlation_data: Some(b"c"),
                    user_properties: user,
                    ..Properties::default()
                },
            }),
            username: Some("u"),
            password: Some(b"p"),
        }
    }

    fn connack_properties(user: UserProperties<'_>) -> Properties<'_> {
        Properties {
            session_expiry_interval: Some(1),
            assigned_client_identifier: Some("id"),
            server_keep_alive: Some(2),
            authentication_method: Some("m"),
            authentication_data: Some(b""),
            response_information: Some("ri"),
            server_reference: Some("sr"),
            reason_string: Some("rs"),
            receive_maximum: Some(3),
            topic_alias_maximum: Some(4),
            maximum_qos: Some(1),
            retain_available: Some(0),
            maximum_packet_size: Some(5),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(0),
            shared_subscription_available: Some(1),
            user_properties: user,
            ..Properties::default()
        }
    }

    fn publish_sample<'a>(user: UserProperties<'a>, qos: QoS) -> Publish<'a> {
        Publish {
            dup: qos != QoS::AtMostOnce,
            qos,
            retain: true,
            topic: "a/b",
            packet_id: if qos == QoS::AtMostOnce { 0 } else { 65535 },
            properties: Properties {
                payload_format_indicator: Some(0),
                message_expiry_interval: Some(u32::MAX),
                content_type: Some("c"),
                response_topic: Some("r"),
                correlation_data: Some(b"cd"),
                topic_alias: Some(1),
                user_properties: user,
                ..Properties::default()
            },
            subscription_ids: &[],
            payload: &[0, 1, 2, 0xFF],
        }
    }

    /// Every packet kind (AUTH at MQTT 5 only), with every field a level can carry set.
    fn samples(b: &Blocks, protocol: Protocol) -> Vec<Packet<'_>> {
        let user = UserProperties { block: &b.user };
        let acked = Properties {
            reason_string: Some("why"),
            user_properties: user,
            ..Properties::default()
        };
        let response = |packet_id, reason, properties| PubResponse {
            packet_id,
            reason,
            properties,
        };
        let mut all = vec![
            Packet::Connect(connect_sample(user, protocol)),
            Packet::Connect(Connect {
                protocol,
                clean_start: false,
                keep_alive: 0,
                properties: Properties::default(),
                client_id: "",
                will: None,
                username: None,
                password: None,
            }),
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: 0,
                properties: connack_properties(user),
            }),
            Packet::Publish(publish_sample(user, QoS::AtMostOnce)),
            Packet::Publish(publish_sample(user, QoS::ExactlyOnce)),
            Packet::PubAck(response(1, 0x10, acked)),
            Packet::PubAck(response(2, 0, Properties::default())),
            Packet::PubRec(response(3, 0x80, Properties::default())),
            Packet::PubRel(response(4, 0x92, acked)),
            Packet::PubComp(response(5, 0, acked)),
            Packet::Subscribe(Subscribe {
                packet_id: 6,
                properties: Properties {
                    subscription_identifier: Some(MAX_REMAINING_LENGTH),
                    user_properties: user,
                    ..Properties::default()
                },
                filters: SubscribeFilters {
                    payload: &b.subscribe,
                },
            }),
            Packet::SubAck(SubAck {
                packet_id: 6,
                properties: acked,
                reasons: &[0x01, 0x80],
            }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 7,
                properties: Properties {
                    user_properties: user,
                    ..Properties::default()
                },
                filters: UnsubscribeFilters {
                    payload: &b.unsubscribe,
                },
            }),
            Packet::UnsubAck(UnsubAck {
                packet_id: 7,
                properties: acked,
                reasons: &[0x00, 0x11],
            }),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect(Disconnect {
                reason: reason::DISCONNECT_WITH_WILL,
                properties: Properties {
                    session_expiry_interval: Some(0),
                    server_reference: Some("other"),
                    ..acked
                },
            }),
            Packet::Disconnect(Disconnect::default()),
        ];
        if protocol.is_v5() {
            all.push(Packet::Auth(Auth {
                reason: 0x19,
                properties: Properties {
                    authentication_method: Some("m"),
                    authentication_data: Some(b"data"),
                    ..acked
                },
            }));
        }
        all
    }

    #[test]
    fn round_trip_every_packet_kind_at_every_level() {
        let b = blocks();
        for protocol in LEVELS {
            let mut kinds = Vec::new();
            for sample in samples(&b, protocol) {
                let bytes = enc(&sample, protocol);
                kinds.push(bytes[0] >> 4);
                let decoded = dec(&bytes, protocol)
                    .unwrap_or_else(|e| panic!("{sample:?} at {protocol:?}: {e}"));
                let mut want = meaning(&sample);
                if !protocol.is_v5() {
                    want = as_v3(want);
                }
                assert_eq!(meaning(&decoded), want, "{protocol:?}");
                assert_eq!(enc(&decoded, protocol), bytes, "re-encoding is stable");
            }
            kinds.dedup();
            let last = if protocol.is_v5() { AUTH } else { DISCONNECT };
            assert_eq!(kinds, (CONNECT..=last).collect::<Vec<_>>(), "{protocol:?}");
        }
    }

    #[test]
    fn auth_does_not_decode_before_v5() {
        let auth = enc(&Packet::Auth(Auth::default()), Protocol::V311);
        assert_eq!(auth, [0xF0, 0]);
        for protocol in [Protocol::V31, Protocol::V311] {
            malformed(&auth, protocol, "AUTH before MQTT 5");
        }
    }

    // ---- framing ------------------------------------------------------------------------

    #[test]
    fn frame_len_waits_for_the_fixed_header_and_the_body() {
        assert_eq!(frame_len(&[], 100), Ok(None));
        assert_eq!(frame_len(&[0x30], 100), Ok(None));
        assert_eq!(frame_len(&[0x30, 0x80], 100), Ok(None));
        assert_eq!(frame_len(&[0x30, 0x03, 0, 1], 100), Ok(None));
        assert_eq!(frame_len(&[0x30, 0x03, 0, 1, b't'], 100), Ok(Some(5)));
        // Bytes after the packet are the next packet's.
        assert_eq!(frame_len(&[0xC0, 0, 0xD0, 0], 100), Ok(Some(2)));
        // Exactly the maximum is allowed.
        assert_eq!(frame_len(&[0xC0, 0], 2), Ok(Some(2)));
    }

    #[test]
    fn frame_len_reads_four_byte_remaining_lengths() {
        let max = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
        assert_eq!(frame_len(&max[..4], u32::MAX), Ok(None));
        assert_eq!(
            frame_len(&max, u32::MAX),
            Ok(None),
            "the body is not there yet"
        );
        let size = 5 + u64::from(MAX_REMAINING_LENGTH);
        let too_large = DecodeError::TooLarge { size, max: 1000 };
        assert_eq!(frame_len(&max, 1000), Err(too_large));
        assert_eq!(too_large.reason(), reason::PACKET_TOO_LARGE);
        // 128 = 0x80 0x01, 16,384 = 0x80 0x80 0x01.
        let err = |size| Err(DecodeError::TooLarge { size, max: 100 });
        assert_eq!(frame_len(&[0x30, 0x80, 0x01], 100), err(131));
        assert_eq!(frame_len(&[0x30, 0x80, 0x80, 0x01], 100), err(16_388));
    }

    #[test]
    fn frame_len_detects_too_large_from_the_header_alone() {
        // Remaining length 200: nothing of the body is there.
        let header = [0x30, 0xC8, 0x01];
        let e = frame_len(&header, 202).unwrap_err();
        assert_eq!(
            e,
            DecodeError::TooLarge {
                size: 203,
                max: 202
            }
        );
        assert_eq!(frame_len(&header, 203), Ok(None));
    }

    #[test]
    fn frame_len_rejects_bad_headers() {
        let five = DecodeError::Malformed("variable byte integer longer than four bytes");
        assert_eq!(
            frame_len(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], u32::MAX),
            Err(five)
        );
        assert_eq!(
            frame_len(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01], 9),
            Err(five)
        );
        let long = DecodeError::Malformed("variable byte integer not in its shortest form");
        assert_eq!(frame_len(&[0x30, 0x80, 0x00], 100), Err(long));
        assert_eq!(frame_len(&[0x30, 0xFF, 0x80, 0x00], 100), Err(long));
        let zero = DecodeError::Malformed("reserved packet type 0");
        assert_eq!(frame_len(&[0x00], 100), Err(zero));
        assert_eq!(frame_len(&[0x0F, 0], 100), Err(zero));
        assert_eq!(decode(&[0x00, 0], Protocol::V5), Err(zero));
    }

    #[test]
    fn encoded_remaining_lengths_cross_their_byte_boundaries() {
        // Topic "t" (3 bytes) plus payload: remaining lengths 127, 128, 16,383, 16,384.
        let payload = vec![7u8; 16_381];
        for (remaining, header) in [(127, 2), (128, 3), (16_383, 3), (16_384, 4)] {
            let p = Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t",
                packet_id: 0,
                properties: Properties::default(),
                subscription_ids: &[],
                payload: &payload[..remaining - 3],
            });
            let bytes = enc(&p, Protocol::V311);
            assert_eq!(bytes.len(), header + remaining);
            assert_eq!(dec(&bytes, Protocol::V311), Ok(p));
        }
    }

    // ---- decoding errors ----------------------------------------------------------------

    #[test]
    fn reserved_fixed_header_flags_are_malformed() {
        let why = "reserved fixed header flags";
        malformed(&[0x60, 2, 0, 1], Protocol::V311, why); // PUBREL 0b0000
        malformed(&[0x63, 2, 0, 1], Protocol::V5, why); // PUBREL 0b0011
        malformed(&[0x80, 6, 0, 1, 0, 1, b'a', 0], Protocol::V311, why); // SUBSCRIBE
        malformed(&[0xA0, 5, 0, 1, 0, 1, b'a'], Protocol::V311, why); // UNSUBSCRIBE
        malformed(&[0x42, 2, 0, 1], Protocol::V311, why); // PUBACK
        malformed(&[0xC1, 0], Protocol::V31, why); // PINGREQ
        malformed(&[0xE8, 0], Protocol::V5, why); // DISCONNECT
        let mut connect = CONNECT_V311.to_vec();
        connect[0] = 0x12;
        malformed(&connect, Protocol::V311, why);
    }

    #[test]
    fn publish_flags() {
        malformed(&[0x36, 3, 0, 1, b't'], Protocol::V311, "PUBLISH with QoS 3");
        let why = "DUP set on a QoS 0 PUBLISH";
        malformed(&[0x38, 3, 0, 1, b't'], Protocol::V5, why);
        malformed(&[0x39, 3, 0, 1, b't'], Protocol::V31, why);
    }

    #[test]
    fn remaining_length_must_be_consumed_exactly() {
        let left_over = "bytes left over after the last field";
        malformed(&[0xC0, 1, 0], Protocol::V311, left_over);
        malformed(&[0x40, 3, 0, 1, 0], Protocol::V311, left_over);
        malformed(&[0xE0, 1, 0], Protocol::V311, left_over);
        malformed(&[0xB0, 3, 0, 1, 0], Protocol::V311, left_over);
        malformed(&[0x20, 3, 0, 0, 0], Protocol::V311, left_over);
        let mut connect = CONNECT_V311.to_vec();
        connect[1] += 1;
        connect.push(0);
        malformed(&connect, Protocol::V311, left_over);
        // v5 CONNACK: its property length is not optional.
        malformed(&[0x20, 2, 0, 0], Protocol::V5, TRUNCATED_WHY);
        malformed(&[0x40, 1, 0], Protocol::V311, TRUNCATED_WHY);
        malformed(&[0x30, 3, 0, 5, b't'], Protocol::V311, TRUNCATED_WHY);
        let mismatch = "remaining length does not match the packet";
        malformed(
            &CONNECT_V311[..CONNECT_V311.len() - 1],
            Protocol::V311,
            mismatch,
        );
        malformed(&[0xC0, 0, 0xC0, 0], Protocol::V311, mismatch);
        malformed(&[], Protocol::V311, TRUNCATED_WHY);
        malformed(&[0x30, 0x80], Protocol::V311, TRUNCATED_WHY);
    }

    #[test]
    fn strings_must_be_utf8_without_nul() {
        let utf8 = "string is not valid UTF-8";
        malformed(&[0x30, 4, 0, 2, 0xC3, 0x28], Protocol::V311, utf8);
        // An encoded surrogate (U+D800) is not UTF-8 [MQTT-1.5.4-1].
        malformed(&[0x30, 5, 0, 3, 0xED, 0xA0, 0x80], Protocol::V311, utf8);
        malformed(
            &[0x30, 4, 0, 2, b'a', 0],
            Protocol::V311,
            "string contains U+0000",
        );
        let nul_filter = [0xA2, 5, 0, 1, 0, 1, 0];
        malformed(&nul_filter, Protocol::V311, "string contains U+0000");
        let bad_user = publish_v5(&[0x26, 0, 1, 0xFF, 0, 0]);
        malformed(&bad_user, Protocol::V5, utf8);
    }

    #[test]
    fn packet_identifiers_must_not_be_zero() {
        let why = "packet identifier 0";
        for protocol in LEVELS {
            protocol_error(&[0x32, 5, 0, 1, b't', 0, 0], protocol, why);
            protocol_error(&[0x40, 2, 0, 0], protocol, why);
            protocol_error(&[0x50, 2, 0, 0], protocol, why);
            protocol_error(&[0x62, 2, 0, 0], protocol, why);
            protocol_error(&[0x70, 2, 0, 0], protocol, why);
            protocol_error(&[0xB0, 2, 0, 0], protocol, why);
        }
        protocol_error(&[0x82, 6, 0, 0, 0, 1, b'a', 0], Protocol::V311, why);
        protocol_error(&[0xA2, 5, 0, 0, 0, 1, b'a'], Protocol::V311, why);
        protocol_error(&[0x82, 7, 0, 0, 0, 0, 1, b'a', 0], Protocol::V5, why);
    }

    #[test]
    fn connect_of_other_protocols_is_unsupported() {
        let unsupported = |name: &[u8], level| {
            decode(&connect_raw(name, level, 0x02, &[0, 0]), Protocol::V311).unwrap_err()
        };
        let e = unsupported(b"MQTX", 4);
        assert_eq!(
            e,
            DecodeError::UnsupportedProtocol {
                level: 4,
                name_ok: false
            }
        );
        assert_eq!(e.reason(), reason::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(
            e.to_string(),
            "unsupported protocol level 4 under an unknown protocol name"
        );
        let e = unsupported(b"MQTT", 6);
        assert_eq!(
            e,
            DecodeError::UnsupportedProtocol {
                level: 6,
                name_ok: true
            }
        );
        assert_eq!(e.to_string(), "unsupported protocol level 6");
        assert!(matches!(
            unsupported(b"MQTT", 3),
            DecodeError::UnsupportedProtocol {
                level: 3,
                name_ok: true
            }
        ));
        assert!(matches!(
            unsupported(b"MQIsdp", 4),
            DecodeError::UnsupportedProtocol {
                level: 4,
                name_ok: true
            }
        ));
        // Nothing after the level byte is read: a future version may differ there.
        let bare = packet(0x10, &[0, 4, b'M', b'Q', b'T', b'T', 6]);
        assert!(matches!(
            decode(&bare, Protocol::V5),
            Err(DecodeError::UnsupportedProtocol { level: 6, .. })
        ));
        // Without a name and level there is nothing to answer.
        malformed(
            &packet(0x10, &[0, 4, b'M', b'Q', b'T', b'T']),
            Protocol::V5,
            TRUNCATED_WHY,
        );
        malformed(&packet(0x10, &[0, 4, b'M']), Protocol::V5, TRUNCATED_WHY);
        let not_a_string = connect_raw(&[0xFF, 0xFE], 4, 0x02, &[0, 0]);
        malformed(&not_a_string, Protocol::V311, "string is not valid UTF-8");
    }

    #[test]
    fn connect_flags_are_checked() {
        let mqtt = |flags, rest: &[u8]| connect_raw(b"MQTT", 4, flags, rest);
        let client_id = [0, 1, b'c'];
        assert!(decode(&mqtt(0x02, &client_id), Protocol::V311).is_ok());
        let reserved = "reserved CONNECT flag set";
        malformed(&mqtt(0x03, &client_id), Protocol::V311, reserved);
        let no_will = "will QoS or retain without a will";
        malformed(&mqtt(0x08, &client_id), Protocol::V311, no_will);
        malformed(&mqtt(0x10, &client_id), Protocol::V311, no_will);
        malformed(&mqtt(0x20, &client_id), Protocol::V311, no_will);
        let will = [&client_id[..], &[0, 1, b'w', 0, 0]].concat();
        assert!(decode(&mqtt(0x2C, &will), Protocol::V311).is_ok());
        malformed(&mqtt(0x1C, &will), Protocol::V311, "will QoS 3");
        let password = [&client_id[..], &[0, 1, b'p']].concat();
        let alone = "password without a user name";
        malformed(&mqtt(0x40, &password), Protocol::V311, alone);
        malformed(
            &connect_raw(b"MQIsdp", 3, 0x40, &password),
            Protocol::V31,
            alone,
        );
        // MQTT 5 allows a password alone (and the same flags with a property block).
        let v5 = connect_raw(b"MQTT", 5, 0x40, &[&[0][..], &password].concat());
        let Ok(Packet::Connect(c)) = decode(&v5, Protocol::V311) else {
            panic!("decodes")
        };
        assert_eq!((c.username, c.password), (None, Some(&b"p"[..])));
    }

    #[test]
    fn unknown_properties_are_malformed() {
        let why = "unknown property identifier";
        for id in [0x00, 0x04, 0x2B, 0x7F, 0x80] {
            malformed(&publish_v5(&[id, 0]), Protocol::V5, why);
        }
        // 0x81 0x00: an identifier written as a two-byte Variable Byte Integer.
        malformed(&publish_v5(&[0x81, 0x00, 0]), Protocol::V5, why);
    }

    #[test]
    fn properties_must_be_allowed_in_their_packet() {
        let why = "property not allowed in this packet";
        malformed(&publish_v5(&[0x11, 0, 0, 0, 1]), Protocol::V5, why);
        malformed(&connect_v5(&[0x23, 0, 1]), Protocol::V5, why);
        malformed(&connect_v5(&[0x18, 0, 0, 0, 1]), Protocol::V5, why); // a will property
        malformed(&[0x40, 6, 0, 1, 0x10, 2, 0x24, 1], Protocol::V5, why);
        let subscribe = [0x82, 10, 0, 1, 3, 0x23, 0, 1, 0, 1, b'a', 0];
        malformed(&subscribe, Protocol::V5, why);
    }

    #[test]
    fn properties_may_appear_once_but_user_properties() {
        let why = "property appears twice";
        protocol_error(&publish_v5(&[0x01, 0, 0x01, 1]), Protocol::V5, why);
        protocol_error(&connect_v5(&[0x21, 0, 1, 0x21, 0, 1]), Protocol::V5, why);
        let twice = [0x26, 0, 1, b'a', 0, 0, 0x26, 0, 1, b'a', 0, 0];
        let bytes = publish_v5(&twice);
        let Ok(Packet::Publish(p)) = decode(&bytes, Protocol::V5) else {
            panic!("decodes")
        };
        assert_eq!(p.properties.user_properties.iter().count(), 2);
    }

    #[test]
    fn property_values_are_checked() {
        let v5 = Protocol::V5;
        let subscribe = |props: &[u8]| {
            let body = [&[0, 1][..], &block(props), &[0, 1, b'a', 0]].concat();
            packet(0x82, &body)
        };
        protocol_error(&subscribe(&[0x0B, 0]), v5, "subscription identifier 0");
        let max_id = subscribe(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F]);
        let Ok(Packet::Subscribe(s)) = decode(&max_id, v5) else {
            panic!("decodes")
        };
        assert_eq!(
            s.properties.subscription_identifier,
            Some(MAX_REMAINING_LENGTH)
        );
        let long = "variable byte integer longer than four bytes";
        malformed(&subscribe(&[0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), v5, long);
        protocol_error(&connect_v5(&[0x21, 0, 0]), v5, "receive maximum 0");
        protocol_error(
            &connect_v5(&[0x27, 0, 0, 0, 0]),
            v5,
            "maximum packet size 0",
        );
        protocol_error(&publish_v5(&[0x23, 0, 0]), v5, "topic alias 0");
        let byte = "byte property other than 0 or 1";
        protocol_error(&publish_v5(&[0x01, 2]), v5, byte);
        protocol_error(&connect_v5(&[0x17, 2]), v5, byte);
        protocol_error(&connect_v5(&[0x19, 0xFF]), v5, byte);
        let connack = |props: &[u8]| packet(0x20, &[&[0, 0][..], &block(props)].concat());
        protocol_error(&connack(&[0x24, 2]), v5, byte);
        protocol_error(&connack(&[0x2A, 3]), v5, byte);
        let sub_id = "subscription identifier in a client's PUBLISH";
        protocol_error(&publish_v5(&[0x0B, 1]), v5, sub_id);
        let no_method = "authentication data without a method";
        protocol_error(&connect_v5(&[0x16, 0, 0]), v5, no_method);
        assert!(decode(&connect_v5(&[0x15, 0, 1, b'm', 0x16, 0, 0]), v5).is_ok());
    }

    #[test]
    fn property_blocks_are_bounded() {
        // The property length runs past the packet.
        let body = [0, 1, b't', 10, 0x01, 0];
        malformed(&packet(0x30, &body), Protocol::V5, TRUNCATED_WHY);
        // A property runs past its block (into the payload).
        let body = [0, 1, b't', 2, 0x02, 0, 0, 0, 1];
        malformed(&packet(0x30, &body), Protocol::V5, TRUNCATED_WHY);
        // A string property runs past its block.
        malformed(
            &publish_v5(&[0x03, 0, 9, b'a']),
            Protocol::V5,
            TRUNCATED_WHY,
        );
    }

    #[test]
    fn subscribe_entries_are_checked() {
        let (v311, v5) = (Protocol::V311, Protocol::V5);
        let none = "SUBSCRIBE without a topic filter";
        protocol_error(&[0x82, 2, 0, 1], v311, none);
        protocol_error(&[0x82, 3, 0, 1, 0], v5, none);
        let entry = |protocol: Protocol, options| {
            let props: &[u8] = if protocol.is_v5() { &[0] } else { &[] };
            let body = [&[0, 1][..], props, &[0, 1, b'a', options]].concat();
            decode(&packet(0x82, &body), protocol).map(|_| ())
        };
        let reserved = Err(DecodeError::Malformed(
            "reserved subscription option bits set",
        ));
        assert_eq!(entry(v311, 0x04), reserved);
        assert_eq!(entry(v311, 0x02), Ok(()));
        assert_eq!(entry(v5, 0x04), Ok(()));
        assert_eq!(entry(v5, 0x40), reserved);
        assert_eq!(entry(v5, 0x80), reserved);
        assert_eq!(
            entry(v5, 0x30),
            Err(DecodeError::Protocol("retain handling 3"))
        );
        let qos3 = Err(DecodeError::Malformed("subscription with QoS 3"));
        assert_eq!(entry(v311, 0x03), qos3);
        assert_eq!(entry(v5, 0x03), qos3);
        malformed(&[0x82, 5, 0, 1, 0, 1, b'a'], v311, TRUNCATED_WHY);
    }

    #[test]
    fn unsubscribe_needs_a_filter() {
        let why = "UNSUBSCRIBE without a topic filter";
        protocol_error(&[0xA2, 2, 0, 1], Protocol::V311, why);
        protocol_error(&[0xA2, 3, 0, 1, 0], Protocol::V5, why);
        malformed(&[0xA2, 4, 0, 1, 0, 1], Protocol::V311, TRUNCATED_WHY);
    }

    #[test]
    fn publish_needs_a_topic_or_an_alias() {
        let why = "empty topic name without a topic alias";
        protocol_error(&[0x30, 2, 0, 0], Protocol::V311, why);
        protocol_error(&[0x30, 3, 0, 0, 0], Protocol::V5, why);
    }

    #[test]
    fn reason_codes_must_fit_their_packet() {
        let why = "reason code not defined for the packet";
        protocol_error(&[0x40, 3, 0, 1, 0x92], Protocol::V5, why);
        protocol_error(&[0x62, 3, 0, 1, 0x10], Protocol::V5, why);
        protocol_error(&[0xE0, 1, 0x01], Protocol::V5, why);
        protocol_error(&[0xF0, 2, 0x04, 0], Protocol::V5, why);
        protocol_error(&[0x90, 3, 0, 1, 0x03], Protocol::V311, why);
        protocol_error(&[0x90, 4, 0, 1, 0, 0x11], Protocol::V5, why);
        protocol_error(&[0xB0, 4, 0, 1, 0, 0x01], Protocol::V5, why);
        let none = "acknowledgement without reason codes";
        protocol_error(&[0x90, 2, 0, 1], Protocol::V311, none);
        protocol_error(&[0xB0, 3, 0, 1, 0], Protocol::V5, none);
        let connack = "CONNACK code not defined";
        protocol_error(&[0x20, 2, 0, 6], Protocol::V311, connack);
        protocol_error(&[0x20, 3, 0, 0x01, 0], Protocol::V5, connack);
        malformed(
            &[0x20, 2, 0x02, 0],
            Protocol::V311,
            "reserved CONNACK flags set",
        );
        // AUTH has no short form with a reason code alone.
        malformed(&[0xF0, 1, 0x18], Protocol::V5, TRUNCATED_WHY);
    }

    #[test]
    fn every_error_has_its_reason_code() {
        let cases = [
            (DecodeError::Malformed("x"), 0x81),
            (DecodeError::Protocol("x"), 0x82),
            (DecodeError::TooLarge { size: 2, max: 1 }, 0x95),
            (
                DecodeError::UnsupportedProtocol {
                    level: 9,
                    name_ok: true,
                },
                0x84,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.reason(), code, "{e}");
        }
        let too_large = DecodeError::TooLarge { size: 2, max: 1 };
        assert_eq!(
            too_large.to_string(),
            "packet of 2 bytes exceeds the maximum of 1"
        );
    }

    // ---- encoding errors and iterators --------------------------------------------------

    #[test]
    fn oversized_fields_do_not_encode_and_leave_out_alone() {
        let long = "x".repeat(65_536);
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: &long,
            packet_id: 0,
            properties: Properties::default(),
            subscription_ids: &[],
            payload: b"",
        });
        let mut out = vec![1, 2];
        assert_eq!(
            encode(&p, Protocol::V311, &mut out),
            Err(EncodeError::TooLarge)
        );
        assert_eq!(out, [1, 2]);
        assert_eq!(encoded_len(&p, Protocol::V311), Err(EncodeError::TooLarge));
        assert_eq!(
            encode_user_properties([("a", "b"), ("c", long.as_str())], &mut out),
            Err(EncodeError::TooLarge)
        );
        assert_eq!(out, [1, 2]);
        let Packet::Publish(mut p) = p else {
            unreachable!()
        };
        p.topic = &long[..65_535];
        assert_eq!(
            encoded_len(&Packet::Publish(p), Protocol::V311),
            Ok(1 + 3 + 65_537)
        );
        p.subscription_ids = &[MAX_REMAINING_LENGTH + 1];
        let e = encode(&Packet::Publish(p), Protocol::V5, &mut out);
        assert_eq!((e, out.len()), (Err(EncodeError::TooLarge), 2));
    }

    #[test]
    fn remaining_length_over_the_maximum_does_not_encode() {
        // Zeroed pages: measuring does not touch them.
        let payload = vec![0u8; MAX_REMAINING_LENGTH as usize - 2];
        let mut p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "",
            packet_id: 0,
            properties: Properties::default(),
            subscription_ids: &[],
            payload: &payload,
        };
        let at_max = encoded_len(&Packet::Publish(p), Protocol::V311);
        assert_eq!(at_max, Ok(5 + MAX_REMAINING_LENGTH as usize));
        p.topic = "t";
        let mut out = Vec::new();
        let e = encode(&Packet::Publish(p), Protocol::V311, &mut out);
        assert_eq!((e, out.capacity()), (Err(EncodeError::TooLarge), 0));
    }

    #[test]
    fn iterators_stop_on_bytes_the_decoder_did_not_check() {
        let user = |block: &'static [u8]| UserProperties { block }.iter().collect::<Vec<_>>();
        assert_eq!(user(&[0x26, 0, 5, b'a']), []);
        assert_eq!(user(&[0x26, 0, 1, b'a', 0, 0, 0x26]), [("a", "")]);
        assert_eq!(
            user(&[0x02, 0, 0, 0, 1, 0x26, 0, 0, 0, 1, b'b']),
            [("", "b")]
        );
        assert_eq!(user(&[0x99, 0x26, 0, 0, 0, 0]), []);
        assert!(UserProperties {
            block: &[0x02, 0, 0, 0, 1]
        }
        .is_empty());
        assert!(UserProperties::default().is_empty());
        #[rustfmt::skip]
        let subscribe = SubscribeFilters {
            payload: &[0, 1, b'a', 0x01, 0, 1, b'b', 0x03, 0, 1, b'c', 0],
        };
        assert_eq!(subscribe.iter().map(|(f, _)| f).collect::<Vec<_>>(), ["a"]);
        assert_eq!(subscribe.len(), 1);
        let unsubscribe = UnsubscribeFilters {
            payload: &[0, 1, b'a', 0, 5, b'b'],
        };
        assert_eq!(unsubscribe.iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(UnsubscribeFilters { payload: &[0] }.len(), 0);
        assert!(UnsubscribeFilters { payload: &[0xFF] }.is_empty());
        // Every string of up to two bytes (the fuzz target does longer ones): no panic, and
        // never more items than bytes.
        for len in 0..=2 {
            for n in 0..(1u32 << (8 * len)) {
                let bytes = &n.to_le_bytes()[..len];
                assert!(UserProperties { block: bytes }.iter().count() <= len);
                assert!(SubscribeFilters { payload: bytes }.len() <= len);
                assert!(UnsubscribeFilters { payload: bytes }.len() <= len);
            }
        }
    }
}
