//! [`DeviceConfig`]: what a device keeps in flash, and what the gateway serves it.
//!
//! The same bytes travel the whole way: `outpost devices set` encodes the config, the broker
//! stores those bytes, sends them in `DeviceHelloAck` / `ConfigReply`, and the device writes
//! them to flash as they are and decodes them at boot. So the encoding is a format of its own,
//! versioned apart from the wire protocol.
//!
//! # Encoding
//!
//! ```text
//! u8 format (CONFIG_FORMAT = 1) | postcard(DeviceConfig)
//! ```
//!
//! with the struct's fields in declaration order (see [`crate::frame`] for postcard's
//! encoding of each type): `version` u32, `device_id` str, `gateway` str,
//! `sample_interval_ms` u32, `batch_size` u16, `ack` [`AckMode`], `aliases` as a varint count
//! then each [`AliasEntry`] (`alias` u16, `topic` str, `partition` Option u32).
//!
//! Every field is bounded ([`MAX_DEVICE_ID_LEN`], [`MAX_GATEWAY_LEN`], [`MAX_TOPIC_LEN`],
//! [`MAX_ALIASES`]), so the encoding of any config fits [`MAX_ENCODED_LEN`] bytes: a device
//! reserves that much flash and one buffer of that size, and never needs more.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::seq::ser_error;
use crate::{AckMode, Error};

/// The encoding's format byte, the first byte of every encoded config.
pub const CONFIG_FORMAT: u8 = 1;
/// Longest device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 32;
/// Longest gateway address (`host:port`), in bytes.
pub const MAX_GATEWAY_LEN: usize = 64;
/// Longest topic name in an alias entry, in bytes.
pub const MAX_TOPIC_LEN: usize = 64;
/// Most alias entries in one config.
pub const MAX_ALIASES: usize = 16;

/// Bytes of the longest varint of a `u16`, `u32`.
const VARINT_U16: usize = 3;
const VARINT_U32: usize = 5;
/// A string of at most 127 bytes has a one-byte length.
const STR_LEN: usize = 1;

/// The largest encoding of a [`DeviceConfig`], format byte included: 1,298 bytes.
///
/// Every field at its maximum: format (1), version (5), device id (1 + 32), gateway
/// (1 + 64), sample interval (5), batch size (3), ack (1), alias count (1) and 16 aliases of
/// (3 + 1 + 64 + 1 + 5) bytes each.
pub const MAX_ENCODED_LEN: usize = 1
    + VARINT_U32
    + (STR_LEN + MAX_DEVICE_ID_LEN)
    + (STR_LEN + MAX_GATEWAY_LEN)
    + VARINT_U32
    + VARINT_U16
    + 1
    + 1
    + MAX_ALIASES * ALIAS_ENTRY_MAX_LEN;

/// The largest encoding of one [`AliasEntry`].
const ALIAS_ENTRY_MAX_LEN: usize = VARINT_U16 + (STR_LEN + MAX_TOPIC_LEN) + 1 + VARINT_U32;

// The one-byte length prefixes above hold only while every bound stays below 128.
const _: () = assert!(MAX_DEVICE_ID_LEN < 128 && MAX_GATEWAY_LEN < 128);
const _: () = assert!(MAX_TOPIC_LEN < 128 && MAX_ALIASES < 128);

/// One topic alias a device may use from its hello on, without registering it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    /// The alias the device sends.
    pub alias: u16,
    /// The log topic it stands for.
    pub topic: String<MAX_TOPIC_LEN>,
    /// The partition; `None` lets the broker choose per produce.
    pub partition: Option<u32>,
}

/// A device's configuration, as kept in its flash and stored by the gateway.
///
/// Bounded and allocation-free (`heapless`), so firmware can hold one in a static.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Grows with every change the gateway makes; a device holding an older version gets the
    /// new config in its hello reply. 0 in `SetDevice` asks the broker for stored + 1.
    pub version: u32,
    /// The device's id, as the gateway knows it.
    pub device_id: String<MAX_DEVICE_ID_LEN>,
    /// Where the device connects: `host:port` of the gateway's binary-protocol listener.
    pub gateway: String<MAX_GATEWAY_LEN>,
    /// How often the device samples, in milliseconds.
    pub sample_interval_ms: u32,
    /// Readings per produce (1: one produce per reading).
    pub batch_size: u16,
    /// Whether the device asks for acks.
    pub ack: AckMode,
    /// Aliases defined from the hello on (and the only ones usable over UDP).
    pub aliases: Vec<AliasEntry, MAX_ALIASES>,
}

impl DeviceConfig {
    /// Writes the format byte and the config at the start of `buf`; returns the written bytes.
    /// A buffer of [`MAX_ENCODED_LEN`] bytes always suffices.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
        let (format, body) = buf.split_first_mut().ok_or(Error::BufferTooSmall)?;
        *format = CONFIG_FORMAT;
        let len = postcard::to_slice(self, body).map_err(ser_error)?.len();
        Ok(&buf[..=len])
    }

    /// Reads a config written by [`encode`](Self::encode). The whole of `bytes` must be the
    /// config. Errors: `UnsupportedFormat` for another format byte (a newer gateway),
    /// `Malformed` for anything else that does not decode or exceeds a bound.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.split_first() {
            Some((&CONFIG_FORMAT, body)) => match postcard::take_from_bytes(body) {
                Ok((config, [])) => Ok(config),
                _ => Err(Error::Malformed),
            },
            Some((&found, _)) => Err(Error::UnsupportedFormat { found }),
            None => Err(Error::Malformed),
        }
    }

    /// The entry of `alias`, if the config defines it.
    pub fn alias(&self, alias: u16) -> Option<&AliasEntry> {
        self.aliases.iter().find(|a| a.alias == alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<const N: usize>(s: &str) -> String<N> {
        String::try_from(s).unwrap()
    }

    fn small() -> DeviceConfig {
        let mut aliases = Vec::new();
        aliases
            .push(AliasEntry {
                alias: 1,
                topic: text("t"),
                partition: None,
            })
            .unwrap();
        aliases
            .push(AliasEntry {
                alias: 300,
                topic: text("hu"),
                partition: Some(2),
            })
            .unwrap();
        DeviceConfig {
            version: 3,
            device_id: text("d1"),
            gateway: text("gw:7883"),
            sample_interval_ms: 10_000,
            batch_size: 10,
            ack: AckMode::Commit,
            aliases,
        }
    }

    /// Derived by hand from the table in the module docs: format 1, version 3, "d1",
    /// "gw:7883", 10,000 (`90 4e`), 10, Commit (`01`), 2 aliases: (1, "t", None),
    /// (300 = `ac 02`, "hu", Some(2)).
    const SMALL: &[u8] = &[
        0x01, 0x03, 0x02, b'd', b'1', 0x07, b'g', b'w', b':', b'7', b'8', b'8', b'3', 0x90, 0x4e,
        0x0a, 0x01, 0x02, 0x01, 0x01, b't', 0x00, 0xac, 0x02, 0x02, b'h', b'u', 0x01, 0x02,
    ];

    fn largest() -> DeviceConfig {
        let long = |n: usize| -> std::string::String { "x".repeat(n) };
        let mut aliases = Vec::new();
        for i in 0..MAX_ALIASES {
            let entry = AliasEntry {
                alias: u16::MAX - i as u16,
                topic: text(&long(MAX_TOPIC_LEN)),
                partition: Some(u32::MAX),
            };
            aliases.push(entry).unwrap();
        }
        DeviceConfig {
            version: u32::MAX,
            device_id: text(&long(MAX_DEVICE_ID_LEN)),
            gateway: text(&long(MAX_GATEWAY_LEN)),
            sample_interval_ms: u32::MAX,
            batch_size: u16::MAX,
            ack: AckMode::Commit,
            aliases,
        }
    }

    #[test]
    fn golden_bytes() {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        assert_eq!(small().encode(&mut buf), Ok(SMALL));
        assert_eq!(DeviceConfig::decode(SMALL), Ok(small()));
        assert_eq!(small().alias(300).map(|a| a.partition), Some(Some(2)));
        assert_eq!(small().alias(2), None);
    }

    #[test]
    fn the_largest_config_fills_max_encoded_len_exactly() {
        assert_eq!(MAX_ENCODED_LEN, 1298);
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let bytes = largest().encode(&mut buf).unwrap();
        assert_eq!(bytes.len(), MAX_ENCODED_LEN);
        assert_eq!(DeviceConfig::decode(bytes), Ok(largest()));
        let mut short = [0u8; MAX_ENCODED_LEN - 1];
        assert_eq!(largest().encode(&mut short), Err(Error::BufferTooSmall));
        assert_eq!(small().encode(&mut []), Err(Error::BufferTooSmall));
    }

    #[test]
    fn bad_bytes_are_refused() {
        assert_eq!(DeviceConfig::decode(&[]), Err(Error::Malformed));
        let mut newer = SMALL.to_vec();
        newer[0] = 2;
        assert_eq!(
            DeviceConfig::decode(&newer),
            Err(Error::UnsupportedFormat { found: 2 })
        );
        let mut trailing = SMALL.to_vec();
        trailing.push(0);
        assert_eq!(DeviceConfig::decode(&trailing), Err(Error::Malformed));
        for end in 1..SMALL.len() {
            assert_eq!(DeviceConfig::decode(&SMALL[..end]), Err(Error::Malformed));
        }
        // A device id of 33 bytes exceeds MAX_DEVICE_ID_LEN.
        let mut long_id = std::vec![0x01, 0x03, 33];
        long_id.extend_from_slice(&[b'x'; 33]);
        long_id.extend_from_slice(&SMALL[5..]);
        assert_eq!(DeviceConfig::decode(&long_id), Err(Error::Malformed));
        // 17 aliases exceed MAX_ALIASES.
        let mut many = SMALL[..17].to_vec();
        many.push(17);
        for _ in 0..17 {
            many.extend_from_slice(&[0x01, 0x01, b't', 0x00]);
        }
        assert_eq!(DeviceConfig::decode(&many), Err(Error::Malformed));
    }

    #[test]
    fn mutations_never_panic() {
        for at in 0..SMALL.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bytes = SMALL.to_vec();
                bytes[at] = value;
                if let Ok(config) = DeviceConfig::decode(&bytes) {
                    let mut buf = [0u8; MAX_ENCODED_LEN];
                    let again = config.encode(&mut buf).unwrap();
                    assert_eq!(DeviceConfig::decode(again), Ok(config));
                }
            }
        }
    }
}
