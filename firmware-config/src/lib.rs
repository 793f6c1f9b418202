//! `outpost-firmware`: the binary wire protocol of Outpost, for device firmware, the broker,
//! the CLI and tests alike.
//!
//! What it owns: the [`Frame`]s (module [`frame`], which describes the wire format byte by
//! byte), their length-prefixed framing and checked decoding ([`codec`]), the records a
//! produce carries ([`record`]), the lazily decoded sequences that hold them ([`seq`]), and
//! the [`DeviceConfig`] a device keeps in flash ([`config`]), and the device clients that
//! firmware links ([`client`]: a sans-I/O session, blocking and async drivers over the
//! caller's `embedded-io` transport, datagram helpers).
//! What it does not do: sockets or other I/O of its own, timers, the broker's sessions, or
//! parsing the Kafka record batches that `FetchResult` carries (opaque bytes here).
//!
//! # Guarantees
//!
//! - `#![no_std]`, no `unsafe`, and no allocation in the core API: frames borrow from the
//!   received bytes and builders write into caller buffers.
//! - No panic on any input. Every length a peer sends is checked before use; a sequence's
//!   item count is never used to size anything.
//! - Decoding is incremental: [`decode_frame`] says when it needs more bytes, and rejects an
//!   oversize frame from its length prefix alone.
//!
//! # Features
//!
//! - `alloc`: adds `encode_frame_vec`, appending a frame to a `Vec`.
//! - `std` (implies `alloc`): turns on `std` in postcard and serde.
//!
//! Both are off by default; without them no dependency uses `std`.
//!
//! # Example
//!
//! ```
//! use outpost_firmware::{decode_frame, encode_frame, Frame, DEFAULT_MAX_FRAME_LEN};
//!
//! let mut buf = [0u8; 64];
//! let bytes = encode_frame(&Frame::Ping { request_id: 300 }, &mut buf)?;
//! assert_eq!(bytes, [0x03, 0x12, 0xac, 0x02]);
//! let (frame, used) = decode_frame(bytes, DEFAULT_MAX_FRAME_LEN)?.expect("a whole frame");
//! assert_eq!((frame, used), (Frame::Ping { request_id: 300 }, 4));
//! # Ok::<(), outpost_firmware::Error>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod bytes;
pub mod client;
pub mod codec;
pub mod config;
mod error;
mod error_code;
pub mod frame;
#[cfg(test)]
mod golden;
pub mod partition;
pub mod record;
pub mod seq;
mod varint;

#[cfg(feature = "alloc")]
pub use codec::encode_frame_vec;
pub use codec::{
    decode_body, decode_frame, encode_body, encode_frame, encoded_len, frame_len,
    DEFAULT_MAX_FRAME_LEN, DEFAULT_PORT, MAX_PREFIX_LEN, PROTOCOL_VERSION,
};
pub use config::{AliasEntry, DeviceConfig, MAX_ENCODED_LEN};
pub use error::Error;
pub use error_code::ErrorCode;
pub use frame::{AckMode, Compression, Frame, PartitionInfo};
/// The bounded containers of [`DeviceConfig`], re-exported so callers name the same version.
pub use heapless;
pub use record::{Header, Record, Records};
pub use seq::{EncodeAs, Seq, SeqIter, SeqWriter};
