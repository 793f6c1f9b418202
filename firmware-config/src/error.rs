//! The crate's one error type: flat, `Copy`, no payload that allocates.
//!
//! Every fallible function in this crate returns [`Error`]. What a peer sent wrongly is
//! [`Error::Malformed`], [`Error::UnknownFrame`], [`Error::FrameTooLarge`] or
//! [`Error::CountMismatch`]; what the caller's buffer lacks is [`Error::BufferTooSmall`].

use core::fmt;

/// Why encoding or decoding failed.
///
/// After any error the input is left as it was: decoders never consume on failure, and
/// writers into caller buffers keep what they had written before the failing call.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The caller's buffer cannot hold the encoded bytes.
    BufferTooSmall,
    /// A length prefix announces a body of `len` bytes, more than the receiver's maximum (or,
    /// when encoding, a body longer than `u32::MAX` bytes, reported as `len: u32::MAX`).
    FrameTooLarge {
        /// The body length announced by the prefix.
        len: u32,
    },
    /// Bytes that do not follow the wire format: a bad varint, a truncated field, invalid
    /// UTF-8, an unknown nested enum value, or bytes left over inside a frame body.
    Malformed,
    /// A frame body starts with a frame discriminant this version does not know.
    UnknownFrame,
    /// A sequence holds fewer or more items than its count says.
    CountMismatch,
    /// A sequence writer was asked to hold more than `u32::MAX` items.
    TooManyItems,
    /// A [`DeviceConfig`](crate::DeviceConfig) in a format this version does not know (written
    /// by a newer gateway).
    UnsupportedFormat {
        /// The format byte found.
        found: u8,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BufferTooSmall => f.write_str("buffer too small for the encoded bytes"),
            Error::FrameTooLarge { len } => {
                write!(
                    f,
                    "frame body of {len} bytes exceeds the maximum frame length"
                )
            }
            Error::Malformed => f.write_str("malformed bytes"),
            Error::UnknownFrame => f.write_str("unknown frame type"),
            Error::CountMismatch => f.write_str("sequence count does not match its items"),
            Error::TooManyItems => f.write_str("sequence holds more than u32::MAX items"),
            Error::UnsupportedFormat { found } => {
                write!(
                    f,
                    "device config in format {found}, this version reads format 1"
                )
            }
        }
    }
}

// `core::error::Error` is what `std::error::Error` re-exports, so this serves `std` users too
// without needing the `std` feature.
impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn display_names_the_problem() {
        let msg = Error::FrameTooLarge { len: 7 }.to_string();
        assert_eq!(
            msg,
            "frame body of 7 bytes exceeds the maximum frame length"
        );
        assert_eq!(Error::UnknownFrame.to_string(), "unknown frame type");
    }
}
