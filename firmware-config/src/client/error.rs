//! [`ClientError`]: the one error of the device clients, flat and `Copy`.
//!
//! This module owns the error type and its mapping from the codec's [`Error`]; it decides
//! nothing about the connection (the [`Session`](super::Session) does).

use core::fmt;

use embedded_io::ErrorKind;

use crate::{Error, ErrorCode};

/// Why a client call failed.
///
/// Which errors end the connection: `Transport`, `Closed`, and every error about what the
/// broker sent (`UnexpectedFrame`, `Malformed`, `UnsupportedVersion`, and `FrameTooLarge`
/// for a received frame) leave the stream at an unknown position, so the client stops using
/// it: every later request fails with `NotConnected` until `reconnect`. A `Broker` error
/// leaves the connection usable (but for an error answering the hello). `BufferTooSmall`,
/// `AliasTableFull` and `FrameTooLarge` for a request are found before anything is sent.
/// A timeout is the transport's business: it shows up as `Transport(TimedOut)`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The transport failed to read or write; the kind its error reported.
    Transport(ErrorKind),
    /// The broker closed the connection (the transport read end of stream).
    Closed,
    /// No connection: `connect` was not called, or an earlier error ended the connection.
    NotConnected,
    /// The broker answered with an `Error` frame. `request_id` is the id of the request it
    /// answers: the one waited for, or another (0 for the connection itself, or for a request
    /// sent without an ack, such as a `Reading` on an unknown alias). When it is another,
    /// the outcome of the request waited for is unknown: its late reply is skipped.
    Broker {
        /// The request the error answers; 0 when it concerns the connection.
        request_id: u32,
        /// Why the broker refused.
        code: ErrorCode,
    },
    /// The broker sent a frame that is not an answer here (a request, a second hello
    /// reply, a reply of the wrong kind for the request id, a frame type this version does
    /// not know).
    UnexpectedFrame,
    /// The broker sent bytes that do not decode.
    Malformed,
    /// The broker speaks another protocol version.
    UnsupportedVersion {
        /// The version in the broker's hello reply.
        version: u16,
    },
    /// A frame of `len` body bytes does not fit: a received frame larger than the receive
    /// buffer, or a request larger than the broker's `max_frame_len`.
    FrameTooLarge {
        /// The frame's body length.
        len: u32,
    },
    /// The caller's transmit buffer (or, for a datagram, the output buffer) cannot hold the
    /// request, or the receive buffer is too small to hold even a length prefix.
    BufferTooSmall,
    /// The alias table is full: `register_alias` of a new alias needs a larger `N`.
    AliasTableFull,
}

impl ClientError {
    /// The error of a transport error.
    pub fn transport<E: embedded_io::Error>(e: E) -> Self {
        ClientError::Transport(e.kind())
    }
}

impl From<Error> for ClientError {
    /// Maps a codec error: the peer's bytes (`Malformed`, `CountMismatch`, a config format)
    /// are `Malformed`, an unknown frame type is `UnexpectedFrame`, a full buffer or
    /// sequence is `BufferTooSmall`.
    fn from(e: Error) -> Self {
        match e {
            Error::FrameTooLarge { len } => ClientError::FrameTooLarge { len },
            Error::UnknownFrame => ClientError::UnexpectedFrame,
            Error::BufferTooSmall | Error::TooManyItems => ClientError::BufferTooSmall,
            _ => ClientError::Malformed,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Transport(kind) => write!(f, "transport error: {kind:?}"),
            ClientError::Closed => f.write_str("the broker closed the connection"),
            ClientError::NotConnected => f.write_str("not connected"),
            ClientError::Broker { request_id, code } => {
                write!(f, "broker error {code} for request {request_id}")
            }
            ClientError::UnexpectedFrame => f.write_str("unexpected frame from the broker"),
            ClientError::Malformed => f.write_str("malformed frame from the broker"),
            ClientError::UnsupportedVersion { version } => {
                write!(f, "the broker speaks protocol version {version}")
            }
            ClientError::FrameTooLarge { len } => {
                write!(f, "frame body of {len} bytes does not fit")
            }
            ClientError::BufferTooSmall => f.write_str("buffer too small"),
            ClientError::AliasTableFull => f.write_str("alias table full"),
        }
    }
}

impl core::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn codec_errors_map_flat() {
        assert_eq!(ClientError::from(Error::Malformed), ClientError::Malformed);
        assert_eq!(
            ClientError::from(Error::CountMismatch),
            ClientError::Malformed
        );
        assert_eq!(
            ClientError::from(Error::UnknownFrame),
            ClientError::UnexpectedFrame
        );
        assert_eq!(
            ClientError::from(Error::FrameTooLarge { len: 9 }),
            ClientError::FrameTooLarge { len: 9 }
        );
        assert_eq!(
            ClientError::from(Error::TooManyItems),
            ClientError::BufferTooSmall
        );
    }

    #[test]
    fn display_names_the_code() {
        let e = ClientError::Broker {
            request_id: 3,
            code: ErrorCode::UNKNOWN_ALIAS,
        };
        assert_eq!(
            e.to_string(),
            "broker error UNKNOWN_ALIAS (19) for request 3"
        );
        assert_eq!(
            ClientError::transport(ErrorKind::TimedOut),
            ClientError::Transport(ErrorKind::TimedOut)
        );
    }
}
