//! An accepted application message, owned and shared by every session it goes to.

use std::sync::Arc;

use bytes::Bytes;

use super::packet::{Properties, Publish, QoS, UserProperties};
use super::subscriptions::SessionId;

/// The v5 properties a message carries from publisher to subscribers ([MQTT-3.3.2-15]..: the
/// server forwards them unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProps {
    /// Payload Format Indicator.
    pub payload_format: Option<u8>,
    /// Content Type.
    pub content_type: Option<Box<str>>,
    /// Response Topic.
    pub response_topic: Option<Box<str>>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties, as an encoded block of `0x26` entries (empty: none).
    pub user_properties: Bytes,
}

impl MessageProps {
    /// Copies the forwarded properties of a PUBLISH; `None` when it has none (every v3 message).
    pub fn from_properties(
        p: &Properties<'_>,
    ) -> Result<Option<Box<Self>>, super::codec::EncodeError> {
        let has_any = p.payload_format_indicator.is_some()
            || p.content_type.is_some()
            || p.response_topic.is_some()
            || p.correlation_data.is_some()
            || !p.user_properties.is_empty();
        if !has_any {
            return Ok(None);
        }
        let mut users = Vec::new();
        super::codec::encode_user_properties(p.user_properties.iter(), &mut users)?;
        Ok(Some(Box::new(Self {
            payload_format: p.payload_format_indicator,
            content_type: p.content_type.map(Into::into),
            response_topic: p.response_topic.map(Into::into),
            correlation_data: p.correlation_data.map(Bytes::copy_from_slice),
            user_properties: Bytes::from(users),
        })))
    }

    /// The user properties as a view.
    pub fn user_properties(&self) -> UserProperties<'_> {
        UserProperties {
            block: &self.user_properties,
        }
    }
}

/// An application message the broker accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (never an alias).
    pub topic: Box<str>,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag it was published with.
    pub retain: bool,
    /// Forwarded v5 properties, if any.
    pub props: Option<Box<MessageProps>>,
    /// When the broker accepted it, ms since the Unix epoch.
    pub received_ms: u64,
    /// v5 Message Expiry Interval in seconds, counted from `received_ms`.
    pub expiry_secs: Option<u32>,
    /// The session that published it (`None` for the broker's own messages and restored ones).
    pub publisher: Option<SessionId>,
}

/// A shared message.
pub type SharedMessage = Arc<Message>;

impl Message {
    /// Builds a message from an accepted PUBLISH whose topic (alias resolved) is `topic`.
    pub fn from_publish(
        publish: &Publish<'_>,
        topic: &str,
        now_ms: u64,
        publisher: Option<SessionId>,
    ) -> Result<Self, super::codec::EncodeError> {
        Ok(Self {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(publish.payload),
            qos: publish.qos,
            retain: publish.retain,
            props: MessageProps::from_properties(&publish.properties)?,
            received_ms: now_ms,
            expiry_secs: publish.properties.message_expiry_interval,
            publisher,
        })
    }

    /// Seconds of life left at `now_ms`: `Some(None)` = no expiry, `Some(Some(s))` = `s`
    /// seconds left, `None` = expired (must not be delivered, [MQTT-3.3.2-5]).
    pub fn remaining_expiry(&self, now_ms: u64) -> Option<Option<u32>> {
        let Some(secs) = self.expiry_secs else {
            return Some(None);
        };
        let elapsed = now_ms.saturating_sub(self.received_ms) / 1000;
        let left = u64::from(secs).checked_sub(elapsed)?;
        // An interval that has just run out is expired too.
        (left > 0).then(|| Some(u32::try_from(left).unwrap_or(u32::MAX)))
    }

    /// Bytes this message holds, for accounting.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(expiry: Option<u32>) -> Message {
        Message {
            topic: "a".into(),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            props: None,
            received_ms: 10_000,
            expiry_secs: expiry,
            publisher: None,
        }
    }

    #[test]
    fn expiry_counts_down_and_runs_out() {
        // [MQTT-3.3.2-6]: the forwarded interval is the received one minus the time waited.
        assert_eq!(msg(None).remaining_expiry(99_999_999), Some(None));
        assert_eq!(msg(Some(5)).remaining_expiry(10_000), Some(Some(5)));
        assert_eq!(msg(Some(5)).remaining_expiry(12_500), Some(Some(3)));
        assert_eq!(msg(Some(5)).remaining_expiry(15_000), None);
        assert_eq!(msg(Some(5)).remaining_expiry(60_000), None);
    }
}
