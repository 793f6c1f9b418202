//! [`ErrorCode`]: the code an `Error` frame carries, open-ended so that codes added by newer
//! brokers still decode.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Why a request failed, as sent in an `Error` frame (a varint `u16` on the wire).
///
/// A newtype rather than an enum: a code this version does not know decodes fine and reports
/// [`name`](ErrorCode::name) `"UNKNOWN"`. Compare against the associated constants.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

/// Declares the constants and the name table together, so they cannot drift apart.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($value);)*

            /// The constant's name (`"UNKNOWN_TOPIC"`), or `"UNKNOWN"` for a code this
            /// version does not define.
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $($value => stringify!($name),)*
                    _ => "UNKNOWN",
                }
            }
        }
    };
}

codes! {
    /// The `Hello` named a protocol version the broker does not speak.
    UNSUPPORTED_VERSION = 1,
    /// A frame did not decode.
    MALFORMED_FRAME = 2,
    /// A frame's length prefix exceeds the receiver's maximum frame length.
    FRAME_TOO_LARGE = 3,
    /// The named topic does not exist.
    UNKNOWN_TOPIC = 4,
    /// The topic has no such partition.
    UNKNOWN_PARTITION = 5,
    /// The offset is outside the partition's range.
    OFFSET_OUT_OF_RANGE = 6,
    /// A topic of that name already exists.
    TOPIC_EXISTS = 7,
    /// The request decoded but its contents are not acceptable.
    INVALID_REQUEST = 8,
    /// The first frame on a connection must be `Hello`.
    HELLO_REQUIRED = 9,
    /// A broker bug; the request may be retried.
    INTERNAL = 10,
    /// The broker's storage failed; nothing from this request was committed.
    STORAGE = 11,
    /// The broker is shutting down.
    SHUTTING_DOWN = 12,
    /// A record exceeds the broker's record or batch size limit.
    RECORD_TOO_LARGE = 13,
    /// The topic name is not allowed.
    INVALID_TOPIC_NAME = 14,
    /// A frame that is not a request, or not valid in this state of the connection.
    UNEXPECTED_FRAME = 15,
    /// The broker is at a connection or in-flight limit; retry later.
    BUSY = 16,
    /// The partition is full (a bridge with overflow = "refuse" is behind); retry later.
    QUOTA_EXCEEDED = 17,
    /// The client is not logged in (or the login failed), or its access rules refuse the
    /// request.
    NOT_AUTHORIZED = 18,
    /// A `Reading` or `ProduceAlias` named an alias the connection (or, over UDP, the
    /// device's stored config) does not define.
    UNKNOWN_ALIAS = 19,
    /// No device of that id is known to the broker.
    UNKNOWN_DEVICE = 20,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        ErrorCode(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn names_known_and_unknown_codes() {
        assert_eq!(ErrorCode::UNKNOWN_TOPIC.name(), "UNKNOWN_TOPIC");
        assert_eq!(ErrorCode::BUSY.0, 16);
        assert_eq!(ErrorCode::NOT_AUTHORIZED.0, 18);
        assert_eq!(ErrorCode::NOT_AUTHORIZED.name(), "NOT_AUTHORIZED");
        assert_eq!(ErrorCode(999).name(), "UNKNOWN");
        assert_eq!(ErrorCode::STORAGE.to_string(), "STORAGE (11)");
    }

    #[test]
    fn every_code_has_a_distinct_name() {
        for a in 1..=20u16 {
            assert_ne!(ErrorCode(a).name(), "UNKNOWN", "{a}");
            for b in (a + 1)..=20 {
                assert_ne!(ErrorCode(a).name(), ErrorCode(b).name());
            }
        }
    }
}
