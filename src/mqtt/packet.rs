//! MQTT control packets (3.1, 3.1.1 and 5.0) as borrowed views of the bytes they came from.
//!
//! One set of types serves every protocol level: fields a level does not have are left at
//! their defaults (`properties` empty, reason codes `0`). Decoding ([`super::codec::decode`])
//! borrows strings and payloads from the read buffer; nothing is allocated per packet. The
//! same types are encoded ([`super::codec::encode`]) for the level of the connection.
//!
//! Strings are `&str` only after the decoder checked them as MQTT UTF-8 strings
//! ([MQTT-1.5.4-1], [MQTT-1.5.4-2]: valid UTF-8, no U+0000).

/// The protocol level from CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// MQTT 3.1 (`MQIsdp`, level 3).
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Protocol {
    /// True for MQTT 5.0.
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }

    /// The protocol level byte.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V31 => 3,
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }
}

/// Quality of service of a publish or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// From the two wire bits; `3` is not a QoS.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// MQTT 5 user properties: a view over an encoded property block.
///
/// Holds the whole property block of a packet (or a block holding only user properties) and
/// yields the `0x26` entries in order; the decoder has checked every entry, so iteration
/// cannot fail. User properties may be interleaved with other properties on the wire, which
/// is why this is a filter over the block and not a separate slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserProperties<'a> {
    /// A property block (without its length prefix) that the decoder validated, or that
    /// [`super::codec::encode_user_properties`] produced.
    pub block: &'a [u8],
}

/// MQTT 5 properties. Every field is optional; a v3 packet has none.
///
/// The decoder rejects a property that is not allowed in the packet it appears in as a
/// malformed packet (MQTT 5 section 2.2.2.2), and one that appears twice when only one is
/// allowed as a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Properties<'a> {
    /// 0x01 Payload Format Indicator (0 bytes, 1 UTF-8).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<&'a str>,
    /// 0x08 Response Topic.
    pub response_topic: Option<&'a str>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<&'a [u8]>,
    /// 0x0B Subscription Identifier (1..=268,435,455). Decoded from SUBSCRIBE; for outgoing
    /// PUBLISH packets, which may carry several, see [`Publish::subscription_ids`].
    pub subscription_identifier: Option<u32>,
    /// 0x11 Session Expiry Interval, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<&'a str>,
    /// 0x13 Server Keep Alive, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<&'a str>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<&'a [u8]>,
    /// 0x17 Request Problem Information (0 or 1).
    pub request_problem_information: Option<u8>,
    /// 0x18 Will Delay Interval, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19 Request Response Information (0 or 1).
    pub request_response_information: Option<u8>,
    /// 0x1A Response Information.
    pub response_information: Option<&'a str>,
    /// 0x1C Server Reference.
    pub server_reference: Option<&'a str>,
    /// 0x1F Reason String.
    pub reason_string: Option<&'a str>,
    /// 0x21 Receive Maximum (non-zero).
    pub receive_maximum: Option<u16>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23 Topic Alias (non-zero).
    pub topic_alias: Option<u16>,
    /// 0x24 Maximum QoS (0 or 1).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available (0 or 1).
    pub retain_available: Option<u8>,
    /// 0x26 User Property, any number.
    pub user_properties: UserProperties<'a>,
    /// 0x27 Maximum Packet Size (non-zero).
    pub maximum_packet_size: Option<u32>,
    /// 0x28 Wildcard Subscription Available (0 or 1).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifiers Available (0 or 1).
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A Shared Subscription Available (0 or 1).
    pub shared_subscription_available: Option<u8>,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Will<'a> {
    /// Will topic (a topic name; the session checks it has no wildcards).
    pub topic: &'a str,
    /// Will payload.
    pub payload: &'a [u8],
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (v5).
    pub properties: Properties<'a>,
}

/// CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Protocol level.
    pub protocol: Protocol,
    /// Clean Session (v3) / Clean Start (v5).
    pub clean_start: bool,
    /// Keep alive, seconds; 0 = off.
    pub keep_alive: u16,
    /// Properties (v5).
    pub properties: Properties<'a>,
    /// Client identifier, possibly empty.
    pub client_id: &'a str,
    /// Will message, when the will flag is set.
    pub will: Option<Will<'a>>,
    /// User name.
    pub username: Option<&'a str>,
    /// Password.
    pub password: Option<&'a [u8]>,
}

/// CONNACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck<'a> {
    /// Session Present.
    pub session_present: bool,
    /// v5 reason code; for v3 the session passes the v3 return code (0..=5) here.
    pub code: u8,
    /// Properties (v5).
    pub properties: Properties<'a>,
}

/// PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; empty when a v5 topic alias stands for it.
    pub topic: &'a str,
    /// Packet identifier; `0` at QoS 0 (not on the wire).
    pub packet_id: u16,
    /// Properties (v5).
    pub properties: Properties<'a>,
    /// Subscription identifiers to send (server → client only; encoded after `properties`).
    pub subscription_ids: &'a [u32],
    /// Application payload.
    pub payload: &'a [u8],
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: a packet id, a reason code (v5) and properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubResponse<'a> {
    /// Packet identifier.
    pub packet_id: u16,
    /// v5 reason code (`0` = success); not sent on v3.
    pub reason: u8,
    /// Properties (v5).
    pub properties: Properties<'a>,
}

/// Subscription options of one SUBSCRIBE entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// v5 No Local.
    pub no_local: bool,
    /// v5 Retain As Published.
    pub retain_as_published: bool,
    /// v5 Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
}

/// The entries of a SUBSCRIBE payload, iterated from the validated bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeFilters<'a> {
    /// The payload (topic filter + options byte, repeated), validated by the decoder.
    pub payload: &'a [u8],
}

/// SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Packet identifier.
    pub packet_id: u16,
    /// Properties (v5: subscription identifier, user properties).
    pub properties: Properties<'a>,
    /// At least one `(filter, options)` entry ([MQTT-3.8.3-3]).
    pub filters: SubscribeFilters<'a>,
}

/// SUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    /// Packet identifier.
    pub packet_id: u16,
    /// Properties (v5).
    pub properties: Properties<'a>,
    /// One reason code per filter (v3: 0, 1, 2 or 0x80).
    pub reasons: &'a [u8],
}

/// The topic filters of an UNSUBSCRIBE payload, iterated from the validated bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeFilters<'a> {
    /// The payload (topic filters), validated by the decoder.
    pub payload: &'a [u8],
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet identifier.
    pub packet_id: u16,
    /// Properties (v5).
    pub properties: Properties<'a>,
    /// At least one topic filter ([MQTT-3.10.3-2]).
    pub filters: UnsubscribeFilters<'a>,
}

/// UNSUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubAck<'a> {
    /// Packet identifier.
    pub packet_id: u16,
    /// Properties (v5).
    pub properties: Properties<'a>,
    /// One reason code per filter (v5 only; v3 UNSUBACK has no payload).
    pub reasons: &'a [u8],
}

/// DISCONNECT (v5 carries a reason code and properties; v3 has neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disconnect<'a> {
    /// Reason code (`0` = normal disconnection).
    pub reason: u8,
    /// Properties (v5).
    pub properties: Properties<'a>,
}

/// AUTH (v5 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Auth<'a> {
    /// Reason code.
    pub reason: u8,
    /// Properties.
    pub properties: Properties<'a>,
}

/// Any MQTT control packet.
///
/// CONNECT (with its will's properties) makes this enum large; packets are decoded onto the
/// stack one at a time and never stored, and boxing would allocate per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNECT (type 1).
    Connect(Connect<'a>),
    /// CONNACK (type 2).
    ConnAck(ConnAck<'a>),
    /// PUBLISH (type 3).
    Publish(Publish<'a>),
    /// PUBACK (type 4).
    PubAck(PubResponse<'a>),
    /// PUBREC (type 5).
    PubRec(PubResponse<'a>),
    /// PUBREL (type 6).
    PubRel(PubResponse<'a>),
    /// PUBCOMP (type 7).
    PubComp(PubResponse<'a>),
    /// SUBSCRIBE (type 8).
    Subscribe(Subscribe<'a>),
    /// SUBACK (type 9).
    SubAck(SubAck<'a>),
    /// UNSUBSCRIBE (type 10).
    Unsubscribe(Unsubscribe<'a>),
    /// UNSUBACK (type 11).
    UnsubAck(UnsubAck<'a>),
    /// PINGREQ (type 12).
    PingReq,
    /// PINGRESP (type 13).
    PingResp,
    /// DISCONNECT (type 14).
    Disconnect(Disconnect<'a>),
    /// AUTH (type 15, v5).
    Auth(Auth<'a>),
}

impl<'a> Packet<'a> {
    /// Every property set of the packet, mutably (a CONNECT's will has its own); empty for
    /// PINGREQ and PINGRESP. For tests and the fuzz target, which normalise packets.
    pub fn properties_mut(&mut self) -> Vec<&mut Properties<'a>> {
        match self {
            Packet::Connect(c) => {
                let mut all = vec![&mut c.properties];
                all.extend(c.will.as_mut().map(|w| &mut w.properties));
                all
            }
            Packet::ConnAck(c) => vec![&mut c.properties],
            Packet::Publish(p) => vec![&mut p.properties],
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                vec![&mut r.properties]
            }
            Packet::Subscribe(s) => vec![&mut s.properties],
            Packet::SubAck(a) => vec![&mut a.properties],
            Packet::Unsubscribe(u) => vec![&mut u.properties],
            Packet::UnsubAck(a) => vec![&mut a.properties],
            Packet::Disconnect(d) => vec![&mut d.properties],
            Packet::Auth(a) => vec![&mut a.properties],
            Packet::PingReq | Packet::PingResp => Vec::new(),
        }
    }
}

/// MQTT 5 reason codes used by the broker (section 2.4). v3 return codes are separate
/// (see [`connack_v3`]).
pub mod reason {
    /// Success / Normal disconnection / Granted QoS 0.
    pub const SUCCESS: u8 = 0x00;
    /// Granted QoS 1.
    pub const GRANTED_QOS_1: u8 = 0x01;
    /// Granted QoS 2.
    pub const GRANTED_QOS_2: u8 = 0x02;
    /// Disconnect with Will Message.
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    /// No matching subscribers.
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    /// No subscription existed.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    /// Continue authentication.
    pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
    /// Unspecified error.
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    /// Malformed Packet.
    pub const MALFORMED_PACKET: u8 = 0x81;
    /// Protocol Error.
    pub const PROTOCOL_ERROR: u8 = 0x82;
    /// Implementation specific error.
    pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
    /// Unsupported Protocol Version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    /// Client Identifier not valid.
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    /// Bad User Name or Password.
    pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
    /// Not authorized.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// Server unavailable.
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    /// Server busy.
    pub const SERVER_BUSY: u8 = 0x89;
    /// Server shutting down.
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    /// Bad authentication method.
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    /// Keep Alive timeout.
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    /// Session taken over.
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    /// Topic Filter invalid.
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    /// Topic Name invalid.
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    /// Packet Identifier in use.
    pub const PACKET_IDENTIFIER_IN_USE: u8 = 0x91;
    /// Packet Identifier not found.
    pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
    /// Receive Maximum exceeded.
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    /// Topic Alias invalid.
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    /// Packet too large.
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    /// Message rate too high.
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    /// Quota exceeded.
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    /// Administrative action.
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
    /// Payload format invalid.
    pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
    /// Retain not supported.
    pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
    /// QoS not supported.
    pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
    /// Shared Subscriptions not supported.
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
    /// Connection rate exceeded.
    pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
    /// Maximum connect time.
    pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
    /// Subscription Identifiers not supported.
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
    /// Wildcard Subscriptions not supported.
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;
}

/// The v3.1/3.1.1 CONNACK return code for a v5 CONNACK reason code.
pub fn connack_v3(reason: u8) -> u8 {
    match reason {
        reason::SUCCESS => 0,
        reason::UNSUPPORTED_PROTOCOL_VERSION => 1,
        reason::CLIENT_IDENTIFIER_NOT_VALID => 2,
        reason::SERVER_UNAVAILABLE | reason::SERVER_BUSY | reason::SERVER_SHUTTING_DOWN => 3,
        reason::BAD_USER_NAME_OR_PASSWORD => 4,
        _ => 5,
    }
}
