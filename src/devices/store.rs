//! How devices are stored in the log file's state tables, and the token hash.
//!
//! # `devices/config` (key: device id, UTF-8)
//!
//! ```text
//! u8      record version (1)
//! u64 LE  updated_ms: when the record last changed
//! u8      token present (0 | 1)
//! [u8;32] token hash, when present: BLAKE2s-256("outpost device token\0" | id | "\0" | token)
//! rest    the DeviceConfig bytes exactly as devices receive them (empty: no config)
//! ```
//!
//! # `devices/status` (key: device id, UTF-8)
//!
//! ```text
//! u8      record version (1)
//! u64 LE  last_seen_ms
//! u8      transport (1 tcp, 2 udp)
//! u8      reported config version present (0 | 1), then u32 LE when present
//! u64 LE  sleep_until_ms, u64::MAX when none
//! rest    the peer address as text (`127.0.0.1:50000`)
//! ```
//!
//! Status is written in the background at most once a minute (and at shutdown), never per
//! message: a gateway's SD card is not worn by devices saying hello.

use blake2::{Blake2s256, Digest};
use subtle::ConstantTimeEq;

use super::{Status, Transport};

const RECORD_VERSION: u8 = 1;
/// The length of a token hash.
pub const HASH_LEN: usize = 32;

/// A device's stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the record last changed (ms since the epoch).
    pub updated_ms: u64,
    /// Hash of the device's token.
    pub token_hash: Option<[u8; HASH_LEN]>,
    /// DeviceConfig bytes; empty when no config is stored.
    pub config: Vec<u8>,
}

/// Why a stored record does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("device record is corrupt or from a newer version")]
pub struct CorruptRecord;

/// The token hash of `token` for device `id`.
pub fn token_hash(id: &str, token: &[u8]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::new();
    h.update(b"outpost device token\0");
    h.update(id.as_bytes());
    h.update(b"\0");
    h.update(token);
    h.finalize().into()
}

/// Whether `token` is the one whose hash is `hash`, in constant time.
pub fn token_matches(id: &str, token: &[u8], hash: &[u8; HASH_LEN]) -> bool {
    token_hash(id, token).ct_eq(hash).into()
}

impl Record {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 1 + HASH_LEN + self.config.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.updated_ms.to_le_bytes());
        match &self.token_hash {
            Some(h) => {
                out.push(1);
                out.extend_from_slice(h);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.config);
        out
    }

    /// Reads stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CorruptRecord> {
        let mut r = Reader(bytes);
        if r.u8()? != RECORD_VERSION {
            return Err(CorruptRecord);
        }
        let updated_ms = r.u64()?;
        let token_hash = match r.u8()? {
            0 => None,
            1 => Some(r.array::<HASH_LEN>()?),
            _ => return Err(CorruptRecord),
        };
        Ok(Record {
            updated_ms,
            token_hash,
            config: r.0.to_vec(),
        })
    }
}

/// The stored bytes of a status.
pub fn encode_status(s: &Status) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&s.last_seen_ms.to_le_bytes());
    out.push(match s.transport {
        Transport::Tcp => 1,
        Transport::Udp => 2,
    });
    match s.reported_version {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&s.sleep_until_ms.unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(s.address.as_bytes());
    out
}

/// Reads a stored status.
pub fn decode_status(bytes: &[u8]) -> Result<Status, CorruptRecord> {
    let mut r = Reader(bytes);
    if r.u8()? != RECORD_VERSION {
        return Err(CorruptRecord);
    }
    let last_seen_ms = r.u64()?;
    let transport = match r.u8()? {
        1 => Transport::Tcp,
        2 => Transport::Udp,
        _ => return Err(CorruptRecord),
    };
    let reported_version = match r.u8()? {
        0 => None,
        1 => Some(u32::from_le_bytes(r.array::<4>()?)),
        _ => return Err(CorruptRecord),
    };
    let sleep_until_ms = Some(r.u64()?).filter(|&t| t != u64::MAX);
    let address = std::str::from_utf8(r.0).map_err(|_| CorruptRecord)?.into();
    Ok(Status {
        last_seen_ms,
        transport,
        address,
        reported_version,
        sleep_until_ms,
        connected: false,
    })
}

/// A cursor over stored bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptRecord> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(CorruptRecord)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncations_are_refused() {
        for record in [
            Record {
                updated_ms: 5,
                token_hash: Some([7; HASH_LEN]),
                config: vec![1, 2, 3],
            },
            Record {
                updated_ms: u64::MAX,
                token_hash: None,
                config: Vec::new(),
            },
        ] {
            let bytes = record.encode();
            assert_eq!(Record::decode(&bytes), Ok(record.clone()));
            let fixed = if record.token_hash.is_some() { 42 } else { 10 };
            for end in 0..fixed {
                assert_eq!(Record::decode(&bytes[..end]), Err(CorruptRecord), "{end}");
            }
        }
        assert_eq!(
            Record::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(CorruptRecord)
        );
    }

    #[test]
    fn statuses_round_trip() {
        let status = Status {
            last_seen_ms: 1_700_000_000_000,
            transport: Transport::Udp,
            address: "[::1]:9".into(),
            reported_version: Some(4),
            sleep_until_ms: Some(9),
            connected: false,
        };
        let bytes = encode_status(&status);
        assert_eq!(decode_status(&bytes), Ok(status.clone()));
        let none = Status {
            reported_version: None,
            sleep_until_ms: None,
            transport: Transport::Tcp,
            ..status
        };
        assert_eq!(decode_status(&encode_status(&none)), Ok(none));
        assert_eq!(decode_status(&bytes[..5]), Err(CorruptRecord));
    }

    #[test]
    fn token_hashes_depend_on_device_and_token() {
        let h = token_hash("d1", b"secret");
        assert!(token_matches("d1", b"secret", &h));
        assert!(!token_matches("d1", b"secreT", &h));
        assert!(!token_matches("d2", b"secret", &h));
        assert_ne!(token_hash("d", b"1secret"), token_hash("d1", b"secret"));
    }
}
