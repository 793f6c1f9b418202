//! How MQTT state is stored in the log file's state tables ([`crate::log::tables::StateTable`]).
//!
//! Values are [postcard](https://postcard.jamesmunns.com/wire-format) encodings of the
//! `Stored*` structs below (varint integers, length-prefixed strings and bytes, `Option` as a
//! 0/1 tag), each starting with an encoding version byte so that a newer build can read older
//! files and an older build refuses newer values instead of misreading them.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `mqtt/sessions` | client id (UTF-8) | [`StoredSession`] |
//! | `mqtt/queue` | client id, `0x00`, sequence `u64` big-endian | [`StoredDelivery`] |
//! | `mqtt/retained` | topic name (UTF-8) | [`StoredMessage`] |
//! | `mqtt/inbound` | client id, `0x00`, packet id `u16` big-endian | empty: an inbound QoS 2 message stored, PUBREL not yet received |
//!
//! A client id never contains U+0000 ([MQTT-1.5.4-2]), so `client id ++ 0x00` is a prefix no
//! other session's keys share, and one range delete removes a session's queue; big-endian
//! sequences keep a session's rows in queue order.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::message::{Message, MessageProps};
use super::packet::{QoS, SubscriptionOptions};
use super::session::Delivery;
use super::subscriptions::Subscription;
use crate::log::tables::StateTable;
use crate::log::StateOp;

/// Encoding version of every value written by this build.
const VERSION: u8 = 1;

/// Why a stored value could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PersistError {
    /// The bytes are not a value of this encoding.
    #[error("stored MQTT {what} does not decode: {detail}")]
    Decode {
        /// Which value.
        what: &'static str,
        /// What postcard said.
        detail: String,
    },
    /// The value was written by a newer build.
    #[error("stored MQTT {what} has encoding version {version}; this build reads {VERSION}")]
    Version {
        /// Which value.
        what: &'static str,
        /// Version found.
        version: u8,
    },
}

/// A message as stored (retained, or inside a queued delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage<'a> {
    /// Encoding version.
    pub version: u8,
    /// Topic.
    pub topic: &'a str,
    /// Payload.
    pub payload: &'a [u8],
    /// QoS as published.
    pub qos: u8,
    /// Retain flag as published.
    pub retain: bool,
    /// Acceptance time, ms since the epoch.
    pub received_ms: u64,
    /// Message expiry interval, seconds.
    pub expiry_secs: Option<u32>,
    /// Payload format indicator.
    pub payload_format: Option<u8>,
    /// Content type.
    pub content_type: Option<&'a str>,
    /// Response topic.
    pub response_topic: Option<&'a str>,
    /// Correlation data.
    pub correlation_data: Option<&'a [u8]>,
    /// User properties block (`0x26` entries).
    pub user_properties: &'a [u8],
}

/// A delivery queued for (or in flight to) a persistent session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDelivery<'a> {
    /// Encoding version.
    pub version: u8,
    /// Delivery QoS.
    pub qos: u8,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers.
    pub sub_ids: Vec<u32>,
    /// Packet id it was sent with (QoS 2), 0 when not sent.
    pub packet_id: u16,
    /// PUBREC received.
    pub released: bool,
    /// The message.
    #[serde(borrow)]
    pub message: StoredMessage<'a>,
}

/// One subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    /// Full filter text (with any `$share/GROUP/` prefix).
    pub filter: String,
    /// Maximum QoS.
    pub qos: u8,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling.
    pub retain_handling: u8,
    /// Subscription identifier.
    pub id: Option<u32>,
}

/// A persistent session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Encoding version.
    pub version: u8,
    /// Session expiry interval, seconds (`u32::MAX`: never).
    pub expiry_secs: u32,
    /// When the client disconnected, ms since the epoch; 0 while connected.
    pub disconnected_ms: u64,
    /// Subscriptions.
    pub subscriptions: Vec<StoredSubscription>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

fn decode<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, PersistError> {
    match bytes.first() {
        Some(&v) if v > VERSION => {
            return Err(PersistError::Version { what, version: v });
        }
        _ => {}
    }
    postcard::from_bytes(bytes).map_err(|e| PersistError::Decode {
        what,
        detail: e.to_string(),
    })
}

impl<'a> StoredMessage<'a> {
    /// The stored form of `m`.
    pub fn of(m: &'a Message) -> Self {
        let p = m.props.as_deref();
        Self {
            version: VERSION,
            topic: &m.topic,
            payload: &m.payload,
            qos: m.qos as u8,
            retain: m.retain,
            received_ms: m.received_ms,
            expiry_secs: m.expiry_secs,
            payload_format: p.and_then(|p| p.payload_format),
            content_type: p.and_then(|p| p.content_type.as_deref()),
            response_topic: p.and_then(|p| p.response_topic.as_deref()),
            correlation_data: p.and_then(|p| p.correlation_data.as_deref()),
            user_properties: p.map_or(&[], |p| &p.user_properties[..]),
        }
    }

    /// Back to a message (the publisher is not kept).
    pub fn to_message(&self) -> Message {
        let has_props = self.payload_format.is_some()
            || self.content_type.is_some()
            || self.response_topic.is_some()
            || self.correlation_data.is_some()
            || !self.user_properties.is_empty();
        Message {
            topic: self.topic.into(),
            payload: Bytes::copy_from_slice(self.payload),
            qos: QoS::from_u8(self.qos).unwrap_or(QoS::AtMostOnce),
            retain: self.retain,
            props: has_props.then(|| {
                Box::new(MessageProps {
                    payload_format: self.payload_format,
                    content_type: self.content_type.map(Into::into),
                    response_topic: self.response_topic.map(Into::into),
                    correlation_data: self.correlation_data.map(Bytes::copy_from_slice),
                    user_properties: Bytes::copy_from_slice(self.user_properties),
                })
            }),
            received_ms: self.received_ms,
            expiry_secs: self.expiry_secs,
            publisher: None,
        }
    }
}

/// Encodes a retained message.
pub fn encode_retained(m: &Message) -> Vec<u8> {
    encode(&StoredMessage::of(m))
}

/// Decodes a retained message.
pub fn decode_retained(bytes: &[u8]) -> Result<Message, PersistError> {
    decode::<StoredMessage<'_>>("retained message", bytes).map(|s| s.to_message())
}

/// Key of a queue row.
pub fn queue_key(client_id: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(client_id.len() + 9);
    k.extend_from_slice(client_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a queue row key into client id and sequence.
pub fn split_queue_key(key: &[u8]) -> Option<(&str, u64)> {
    let cut = key.len().checked_sub(9)?;
    if key[cut] != 0 {
        return None;
    }
    let id = std::str::from_utf8(&key[..cut]).ok()?;
    let seq = u64::from_be_bytes(key[cut + 1..].try_into().ok()?);
    Some((id, seq))
}

/// Encodes a delivery row.
pub fn encode_delivery(d: &Delivery) -> Vec<u8> {
    encode(&StoredDelivery {
        version: VERSION,
        qos: d.qos as u8,
        retain: d.retain,
        sub_ids: d.sub_ids.clone(),
        packet_id: d.packet_id,
        released: d.released,
        message: StoredMessage::of(&d.msg),
    })
}

/// Decodes a delivery row (its `seq` comes from the key).
pub fn decode_delivery(bytes: &[u8], seq: u64) -> Result<Delivery, PersistError> {
    let s: StoredDelivery<'_> = decode("queued message", bytes)?;
    Ok(Delivery {
        msg: Arc::new(s.message.to_message()),
        qos: QoS::from_u8(s.qos).unwrap_or(QoS::AtLeastOnce),
        retain: s.retain,
        sub_ids: s.sub_ids,
        seq: Some(seq),
        packet_id: s.packet_id,
        released: s.released,
    })
}

/// The op storing a delivery row.
pub fn put_delivery(client_id: &str, d: &Delivery, seq: u64) -> StateOp {
    StateOp::Put {
        table: StateTable::MqttQueue,
        key: queue_key(client_id, seq),
        value: encode_delivery(d),
    }
}

/// The op removing a delivery row.
pub fn delete_delivery(client_id: &str, seq: u64) -> StateOp {
    StateOp::Delete {
        table: StateTable::MqttQueue,
        key: queue_key(client_id, seq),
    }
}

/// Key of an inbound QoS 2 row.
fn inbound_key(client_id: &str, packet_id: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(client_id.len() + 3);
    k.extend_from_slice(client_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&packet_id.to_be_bytes());
    k
}

/// Splits an inbound QoS 2 row key into client id and packet id.
pub fn split_inbound_key(key: &[u8]) -> Option<(&str, u16)> {
    let cut = key.len().checked_sub(3)?;
    if key[cut] != 0 {
        return None;
    }
    let id = std::str::from_utf8(&key[..cut]).ok()?;
    Some((id, u16::from_be_bytes([key[cut + 1], key[cut + 2]])))
}

/// The op recording that an inbound QoS 2 message is stored and awaits PUBREL.
pub fn put_inbound(client_id: &str, packet_id: u16) -> StateOp {
    StateOp::Put {
        table: StateTable::MqttInbound,
        key: inbound_key(client_id, packet_id),
        value: Vec::new(),
    }
}

/// The op forgetting an inbound QoS 2 message (PUBREL arrived).
pub fn delete_inbound(client_id: &str, packet_id: u16) -> StateOp {
    StateOp::Delete {
        table: StateTable::MqttInbound,
        key: inbound_key(client_id, packet_id),
    }
}

/// The ops removing a session, its whole queue and its inbound QoS 2 rows.
pub fn delete_session(client_id: &str) -> [StateOp; 3] {
    let mut start = client_id.as_bytes().to_vec();
    start.push(0);
    let mut end = client_id.as_bytes().to_vec();
    end.push(1);
    [
        StateOp::Delete {
            table: StateTable::MqttSessions,
            key: client_id.as_bytes().to_vec(),
        },
        StateOp::DeleteRange {
            table: StateTable::MqttQueue,
            start: start.clone(),
            end: end.clone(),
        },
        StateOp::DeleteRange {
            table: StateTable::MqttInbound,
            start,
            end,
        },
    ]
}

/// The op storing a session.
pub fn put_session(
    client_id: &str,
    expiry_secs: u32,
    disconnected_ms: u64,
    subs: &[(String, Subscription)],
) -> StateOp {
    let stored = StoredSession {
        version: VERSION,
        expiry_secs,
        disconnected_ms,
        subscriptions: subs
            .iter()
            .map(|(filter, s)| StoredSubscription {
                filter: filter.clone(),
                qos: s.options.qos as u8,
                no_local: s.options.no_local,
                retain_as_published: s.options.retain_as_published,
                retain_handling: s.options.retain_handling,
                id: s.id,
            })
            .collect(),
    };
    StateOp::Put {
        table: StateTable::MqttSessions,
        key: client_id.as_bytes().to_vec(),
        value: encode(&stored),
    }
}

/// Decodes a session row.
pub fn decode_session(bytes: &[u8]) -> Result<StoredSession, PersistError> {
    decode("session", bytes)
}

impl StoredSubscription {
    /// The subscription it stands for.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos: QoS::from_u8(self.qos).unwrap_or(QoS::AtMostOnce),
                no_local: self.no_local,
                retain_as_published: self.retain_as_published,
                retain_handling: self.retain_handling,
            },
            id: self.id,
        }
    }
}

/// The ops storing or clearing a retained message.
pub fn retained_op(m: &Message) -> StateOp {
    if m.payload.is_empty() {
        StateOp::Delete {
            table: StateTable::MqttRetained,
            key: m.topic.as_bytes().to_vec(),
        }
    } else {
        StateOp::Put {
            table: StateTable::MqttRetained,
            key: m.topic.as_bytes().to_vec(),
            value: encode_retained(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hi"),
            qos: QoS::ExactlyOnce,
            retain: true,
            props: Some(Box::new(MessageProps {
                payload_format: Some(1),
                content_type: Some("text/plain".into()),
                response_topic: None,
                correlation_data: Some(Bytes::from_static(b"\x01")),
                user_properties: Bytes::new(),
            })),
            received_ms: 1_700_000_000_000,
            expiry_secs: Some(60),
            publisher: None,
        }
    }

    #[test]
    fn retained_round_trips() {
        let m = message();
        assert_eq!(decode_retained(&encode_retained(&m)).unwrap(), m);
    }

    #[test]
    fn delivery_round_trips_and_keys_order_by_sequence() {
        let d = Delivery {
            msg: Arc::new(message()),
            qos: QoS::ExactlyOnce,
            retain: false,
            sub_ids: vec![3, 9],
            seq: Some(7),
            packet_id: 12,
            released: true,
        };
        let back = decode_delivery(&encode_delivery(&d), 7).unwrap();
        assert_eq!(
            (
                back.qos,
                back.sub_ids.clone(),
                back.packet_id,
                back.released
            ),
            (d.qos, d.sub_ids.clone(), 12, true)
        );
        assert_eq!(*back.msg, *d.msg);
        assert!(queue_key("c", 255) < queue_key("c", 256));
        assert_eq!(
            split_queue_key(&queue_key("dev-1", 42)),
            Some(("dev-1", 42))
        );
        // A session's range holds none of another session's keys, even a prefix-named one.
        let [_, StateOp::DeleteRange { start, end, .. }, _] = delete_session("c") else {
            panic!("range delete expected");
        };
        let other = queue_key("c1", 0);
        assert!(!(start.as_slice()..end.as_slice()).contains(&other.as_slice()));
        assert!((start.as_slice()..end.as_slice()).contains(&queue_key("c", u64::MAX).as_slice()));
    }

    #[test]
    fn newer_version_is_refused() {
        let mut bytes = encode_retained(&message());
        bytes[0] = VERSION + 1;
        assert!(matches!(
            decode_retained(&bytes),
            Err(PersistError::Version { .. })
        ));
        assert!(decode_retained(&[VERSION, 0xff]).is_err());
    }
}
