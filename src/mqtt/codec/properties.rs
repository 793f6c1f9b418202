//! MQTT 5 properties: which a packet may carry, decoding a property block with its rules
//! (types fixed by the identifier, repeats, value ranges), and encoding one (MQTT 5 section
//! 2.2.2). Split from [`super`] so that the packet layer reads on its own.

use super::*;

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// A set of property identifiers (bit `id` set), the ones a packet may carry.
#[derive(Clone, Copy)]
pub(super) struct Allowed(u64);

impl Allowed {
    const fn of(ids: &[u8]) -> Self {
        let mut bits = 0u64;
        let mut i = 0;
        while i < ids.len() {
            bits |= 1 << ids[i];
            i += 1;
        }
        Allowed(bits)
    }

    fn contains(self, id: u8) -> bool {
        id < 64 && self.0 & (1 << id) != 0
    }
}

// Which properties each packet may carry: the table of MQTT 5 section 2.2.2.2.
pub(super) const CONNECT_PROPERTIES: Allowed = Allowed::of(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
    id::REQUEST_PROBLEM_INFORMATION,
    id::REQUEST_RESPONSE_INFORMATION,
    id::RECEIVE_MAXIMUM,
    id::TOPIC_ALIAS_MAXIMUM,
    id::USER_PROPERTY,
    id::MAXIMUM_PACKET_SIZE,
]);
pub(super) const WILL_PROPERTIES: Allowed = Allowed::of(&[
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::CONTENT_TYPE,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::WILL_DELAY_INTERVAL,
    id::USER_PROPERTY,
]);
pub(super) const CONNACK_PROPERTIES: Allowed = Allowed::of(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::ASSIGNED_CLIENT_IDENTIFIER,
    id::SERVER_KEEP_ALIVE,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
    id::RESPONSE_INFORMATION,
    id::SERVER_REFERENCE,
    id::REASON_STRING,
    id::RECEIVE_MAXIMUM,
    id::TOPIC_ALIAS_MAXIMUM,
    id::MAXIMUM_QOS,
    id::RETAIN_AVAILABLE,
    id::USER_PROPERTY,
    id::MAXIMUM_PACKET_SIZE,
    id::WILDCARD_SUBSCRIPTION_AVAILABLE,
    id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    id::SHARED_SUBSCRIPTION_AVAILABLE,
]);
pub(super) const PUBLISH_PROPERTIES: Allowed = Allowed::of(&[
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::CONTENT_TYPE,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::SUBSCRIPTION_IDENTIFIER,
    id::TOPIC_ALIAS,
    id::USER_PROPERTY,
]);
/// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
pub(super) const ACK_PROPERTIES: Allowed = Allowed::of(&[id::REASON_STRING, id::USER_PROPERTY]);
pub(super) const SUBACK_PROPERTIES: Allowed = ACK_PROPERTIES;
pub(super) const UNSUBACK_PROPERTIES: Allowed = ACK_PROPERTIES;
pub(super) const SUBSCRIBE_PROPERTIES: Allowed =
    Allowed::of(&[id::SUBSCRIPTION_IDENTIFIER, id::USER_PROPERTY]);
pub(super) const UNSUBSCRIBE_PROPERTIES: Allowed = Allowed::of(&[id::USER_PROPERTY]);
pub(super) const DISCONNECT_PROPERTIES: Allowed = Allowed::of(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::SERVER_REFERENCE,
    id::REASON_STRING,
    id::USER_PROPERTY,
]);
pub(super) const AUTH_PROPERTIES: Allowed = Allowed::of(&[
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
    id::REASON_STRING,
    id::USER_PROPERTY,
]);

/// The properties a packet with an optional reason code may carry.
pub(super) fn allowed_for(kind: u8) -> Allowed {
    match kind {
        DISCONNECT => DISCONNECT_PROPERTIES,
        _ => ACK_PROPERTIES,
    }
}

/// One property value, by the type its identifier fixes.
pub(super) enum Value<'a> {
    Byte(u8),
    Two(u16),
    Four(u32),
    Vbi(u32),
    Str(&'a str),
    Binary(&'a [u8]),
    Pair(&'a str, &'a str),
}

/// Reads one property: its identifier and its value. An unknown identifier is Malformed
/// (MQTT 5 section 2.2.2.2).
pub(super) fn read_property<'a>(r: &mut Reader<'a>) -> DecodeResult<(u8, Value<'a>)> {
    use id::*;
    // Identifiers are Variable Byte Integers, but every defined one is below 0x80: a first
    // byte with the continuation bit is an unknown identifier too.
    let id = r.u8()?;
    let value = match id {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => Value::Byte(r.u8()?),
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => {
            Value::Two(r.u16()?)
        }
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => Value::Four(r.u32()?),
        SUBSCRIPTION_IDENTIFIER => Value::Vbi(r.vbi()?),
        CONTENT_TYPE
        | RESPONSE_TOPIC
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => Value::Str(r.string()?),
        CORRELATION_DATA | AUTHENTICATION_DATA => Value::Binary(r.binary()?),
        USER_PROPERTY => Value::Pair(r.string()?, r.string()?),
        _ => return Err(UNKNOWN_PROPERTY),
    };
    Ok((id, value))
}

/// An identifier that is not a property, or one read as the wrong type.
pub(super) const UNKNOWN_PROPERTY: DecodeError =
    DecodeError::Malformed("unknown property identifier");

/// A property block when `protocol` is MQTT 5; no properties otherwise.
pub(super) fn decode_v5_properties<'a>(
    r: &mut Reader<'a>,
    protocol: Protocol,
    allowed: Allowed,
) -> DecodeResult<Properties<'a>> {
    match protocol {
        Protocol::V5 => decode_properties(r, allowed),
        Protocol::V31 | Protocol::V311 => Ok(Properties::default()),
    }
}

/// A property block: its length, then properties of the `allowed` set, each at most once
/// but User Property. `user_properties` views the whole block when it holds one, and is
/// empty otherwise.
pub(super) fn decode_properties<'a>(
    r: &mut Reader<'a>,
    allowed: Allowed,
) -> DecodeResult<Properties<'a>> {
    let len = r.vbi()?;
    let block = r.take(usize::try_from(len).map_err(|_| TRUNCATED)?)?;
    let mut properties = Properties::default();
    let mut entries = Reader::new(block);
    while !entries.is_empty() {
        let (id, value) = read_property(&mut entries)?;
        // MQTT 5 section 2.2.2.2: "an Identifier which is not valid for its packet type" is
        // a Malformed Packet.
        if !allowed.contains(id) {
            return Err(DecodeError::Malformed(
                "property not allowed in this packet",
            ));
        }
        if id == id::USER_PROPERTY {
            properties.user_properties = UserProperties { block };
        }
        set_property(&mut properties, id, value)?;
    }
    // MQTT 5 sections 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.4.
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "authentication data without a method",
        ));
    }
    Ok(properties)
}

/// Stores one property, checking that it is not a repeat and that its value is allowed.
pub(super) fn set_property<'a>(
    p: &mut Properties<'a>,
    id: u8,
    value: Value<'a>,
) -> DecodeResult<()> {
    match value {
        Value::Byte(v) => set_byte(p, id, v),
        Value::Two(v) => set_two(p, id, v),
        Value::Four(v) => set_four(p, id, v),
        // MQTT 5 section 3.8.2.1.2: 0 is a protocol error; the VBI caps it at 268,435,455.
        Value::Vbi(0) => Err(DecodeError::Protocol("subscription identifier 0")),
        Value::Vbi(v) => once(&mut p.subscription_identifier, v),
        Value::Str(v) => set_str(p, id, v),
        Value::Binary(v) => set_binary(p, id, v),
        // User properties may repeat; `decode_properties` records the block.
        Value::Pair(..) => Ok(()),
    }
}

/// Stores a property that may appear only once (MQTT 5 section 2.2.2.2 and each packet's
/// property list: "It is a Protocol Error to include ... more than once").
pub(super) fn once<T>(slot: &mut Option<T>, value: T) -> DecodeResult<()> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(DecodeError::Protocol("property appears twice")),
    }
}

/// Byte properties: every one is 0 or 1, anything else a protocol error.
pub(super) fn set_byte(p: &mut Properties<'_>, id: u8, v: u8) -> DecodeResult<()> {
    if v > 1 {
        return Err(DecodeError::Protocol("byte property other than 0 or 1"));
    }
    let slot = match id {
        id::PAYLOAD_FORMAT_INDICATOR => &mut p.payload_format_indicator,
        id::REQUEST_PROBLEM_INFORMATION => &mut p.request_problem_information,
        id::REQUEST_RESPONSE_INFORMATION => &mut p.request_response_information,
        id::MAXIMUM_QOS => &mut p.maximum_qos,
        id::RETAIN_AVAILABLE => &mut p.retain_available,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => &mut p.wildcard_subscription_available,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => &mut p.subscription_identifier_available,
        id::SHARED_SUBSCRIPTION_AVAILABLE => &mut p.shared_subscription_available,
        _ => return Err(UNKNOWN_PROPERTY),
    };
    once(slot, v)
}

/// Two Byte Integer properties; Receive Maximum and Topic Alias may not be 0.
pub(super) fn set_two(p: &mut Properties<'_>, id: u8, v: u16) -> DecodeResult<()> {
    let slot = match id {
        id::SERVER_KEEP_ALIVE => &mut p.server_keep_alive,
        id::TOPIC_ALIAS_MAXIMUM => &mut p.topic_alias_maximum,
        // MQTT 5 section 3.1.2.11.3 (and 3.2.2.3.3).
        id::RECEIVE_MAXIMUM if v == 0 => return Err(DecodeError::Protocol("receive maximum 0")),
        id::RECEIVE_MAXIMUM => &mut p.receive_maximum,
        // MQTT 5 section 3.3.2.3.4.
        id::TOPIC_ALIAS if v == 0 => return Err(DecodeError::Protocol("topic alias 0")),
        id::TOPIC_ALIAS => &mut p.topic_alias,
        _ => return Err(UNKNOWN_PROPERTY),
    };
    once(slot, v)
}

/// Four Byte Integer properties; Maximum Packet Size may not be 0.
pub(super) fn set_four(p: &mut Properties<'_>, id: u8, v: u32) -> DecodeResult<()> {
    let slot = match id {
        id::MESSAGE_EXPIRY_INTERVAL => &mut p.message_expiry_interval,
        id::SESSION_EXPIRY_INTERVAL => &mut p.session_expiry_interval,
        id::WILL_DELAY_INTERVAL => &mut p.will_delay_interval,
        // MQTT 5 section 3.1.2.11.4 (and 3.2.2.3.6).
        id::MAXIMUM_PACKET_SIZE if v == 0 => {
            return Err(DecodeError::Protocol("maximum packet size 0"))
        }
        id::MAXIMUM_PACKET_SIZE => &mut p.maximum_packet_size,
        _ => return Err(UNKNOWN_PROPERTY),
    };
    once(slot, v)
}

/// String properties.
pub(super) fn set_str<'a>(p: &mut Properties<'a>, id: u8, v: &'a str) -> DecodeResult<()> {
    let slot = match id {
        id::CONTENT_TYPE => &mut p.content_type,
        id::RESPONSE_TOPIC => &mut p.response_topic,
        id::ASSIGNED_CLIENT_IDENTIFIER => &mut p.assigned_client_identifier,
        id::AUTHENTICATION_METHOD => &mut p.authentication_method,
        id::RESPONSE_INFORMATION => &mut p.response_information,
        id::SERVER_REFERENCE => &mut p.server_reference,
        id::REASON_STRING => &mut p.reason_string,
        _ => return Err(UNKNOWN_PROPERTY),
    };
    once(slot, v)
}

/// Binary Data properties.
pub(super) fn set_binary<'a>(p: &mut Properties<'a>, id: u8, v: &'a [u8]) -> DecodeResult<()> {
    let slot = match id {
        id::CORRELATION_DATA => &mut p.correlation_data,
        id::AUTHENTICATION_DATA => &mut p.authentication_data,
        _ => return Err(UNKNOWN_PROPERTY),
    };
    once(slot, v)
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// A property block (length and properties) when `protocol` is MQTT 5.
pub(super) fn encode_v5_properties<S: Sink>(
    properties: &Properties<'_>,
    protocol: Protocol,
    s: &mut S,
) -> EncodeResult<()> {
    match protocol {
        Protocol::V5 => encode_property_block(properties, &[], s),
        Protocol::V31 | Protocol::V311 => Ok(()),
    }
}

/// A property block: its length, then the properties.
pub(super) fn encode_property_block<S: Sink>(
    properties: &Properties<'_>,
    subscription_ids: &[u32],
    s: &mut S,
) -> EncodeResult<()> {
    let len = measure(|c| encode_properties(properties, subscription_ids, c))?;
    s.vbi(len)?;
    encode_properties(properties, subscription_ids, s)
}

/// Every property that is set, in identifier order, then the user properties, then the
/// subscription identifiers of a server's PUBLISH. Values are not checked.
pub(super) fn encode_properties<S: Sink>(
    p: &Properties<'_>,
    subscription_ids: &[u32],
    s: &mut S,
) -> EncodeResult<()> {
    put_byte(s, id::PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    put_four(s, id::MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
    put_str(s, id::CONTENT_TYPE, p.content_type)?;
    put_str(s, id::RESPONSE_TOPIC, p.response_topic)?;
    put_binary(s, id::CORRELATION_DATA, p.correlation_data)?;
    put_vbi(s, p.subscription_identifier)?;
    put_four(s, id::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    put_str(
        s,
        id::ASSIGNED_CLIENT_IDENTIFIER,
        p.assigned_client_identifier,
    )?;
    put_two(s, id::SERVER_KEEP_ALIVE, p.server_keep_alive);
    put_str(s, id::AUTHENTICATION_METHOD, p.authentication_method)?;
    put_binary(s, id::AUTHENTICATION_DATA, p.authentication_data)?;
    put_byte(
        s,
        id::REQUEST_PROBLEM_INFORMATION,
        p.request_problem_information,
    );
    put_four(s, id::WILL_DELAY_INTERVAL, p.will_delay_interval);
    put_byte(
        s,
        id::REQUEST_RESPONSE_INFORMATION,
        p.request_response_information,
    );
    put_str(s, id::RESPONSE_INFORMATION, p.response_information)?;
    put_str(s, id::SERVER_REFERENCE, p.server_reference)?;
    put_str(s, id::REASON_STRING, p.reason_string)?;
    put_two(s, id::RECEIVE_MAXIMUM, p.receive_maximum);
    put_two(s, id::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    put_two(s, id::TOPIC_ALIAS, p.topic_alias);
    put_byte(s, id::MAXIMUM_QOS, p.maximum_qos);
    put_byte(s, id::RETAIN_AVAILABLE, p.retain_available);
    put_four(s, id::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    put_byte(
        s,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        p.wildcard_subscription_available,
    );
    put_byte(
        s,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        p.subscription_identifier_available,
    );
    put_byte(
        s,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
        p.shared_subscription_available,
    );
    for (name, value) in p.user_properties.iter() {
        put_user_property(s, name, value)?;
    }
    subscription_ids
        .iter()
        .try_for_each(|&v| put_vbi(s, Some(v)))
}

pub(super) fn put_byte<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.u8(id);
        s.u8(v);
    }
}

pub(super) fn put_two<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.u8(id);
        s.u16(v);
    }
}

pub(super) fn put_four<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.u8(id);
        s.u32(v);
    }
}

/// A Subscription Identifier, the only Variable Byte Integer property.
pub(super) fn put_vbi<S: Sink>(s: &mut S, v: Option<u32>) -> EncodeResult<()> {
    let Some(v) = v else { return Ok(()) };
    s.u8(id::SUBSCRIPTION_IDENTIFIER);
    s.vbi(usize::try_from(v).map_err(|_| EncodeError::TooLarge)?)
}

pub(super) fn put_str<S: Sink>(s: &mut S, id: u8, v: Option<&str>) -> EncodeResult<()> {
    put_binary(s, id, v.map(str::as_bytes))
}

pub(super) fn put_binary<S: Sink>(s: &mut S, id: u8, v: Option<&[u8]>) -> EncodeResult<()> {
    let Some(v) = v else { return Ok(()) };
    s.u8(id);
    s.binary(v)
}

pub(super) fn put_user_property<S: Sink>(s: &mut S, name: &str, value: &str) -> EncodeResult<()> {
    s.u8(id::USER_PROPERTY);
    s.string(name)?;
    s.string(value)
}
