//! Device clients: what firmware links to talk to the broker, over a stream (`DeviceHello`,
//! aliases, readings, batches, config, sleep hints) or over datagrams.
//!
//! - [`Session`] (module [`session`]) is the sans-I/O core: it builds requests into the
//!   caller's transmit buffer, cuts the broker's bytes into frames in the caller's receive
//!   buffer, allocates request ids, matches replies, keeps the alias table for reconnects
//!   and the broker's clock. No I/O, no clock, no allocation, no panic on any input.
//! - [`blocking::Client`] drives it over [`embedded_io`]'s `Read + Write`,
//!   [`asynch::Client`] over [`embedded_io_async`]'s; both have the same calls.
//! - [`udp`] builds a `Datagram` and reads the answer datagram.
//! - With the `std` feature, `FromStd` (from `embedded-io-adapters`) runs the blocking
//!   client over `std::net::TcpStream`.
//!
//! What this module does not do: sockets, timers, retries, or deciding when to reconnect
//! (each call fails with a [`ClientError`]; after one that ends the connection, calls fail
//! with `NotConnected` until [`reconnect`](blocking::Client::reconnect)).
//!
//! # Memory
//!
//! The caller provides both buffers. The transmit buffer holds one request (a 4-byte
//! reading is 15 bytes); the receive buffer one reply ([`REPLY_ROOM`] bytes do), or a
//! pushed config with its hello reply ([`RX_LEN_FOR_CONFIG`], 1,450 bytes). A pushed config
//! is handed out as the bytes in the receive buffer rather than decoded into a
//! [`DeviceConfig`](crate::DeviceConfig): the bytes are already there and are what the
//! device writes to flash as they are, while a decoded `DeviceConfig` would be a second
//! copy of about 1.4 KiB of RAM. Decode them when needed (at boot, from flash).
//!
//! # Example
//!
//! ```
//! use outpost_firmware::client::{blocking::Client, Device};
//! use outpost_firmware::AckMode;
//! # use embedded_io::{ErrorType, Read, Write};
//! # /// A broker that answers the hello (clock 1,000 ms, no config) and one `Done`.
//! # struct Script { replies: &'static [u8], at: usize }
//! # impl ErrorType for Script { type Error = core::convert::Infallible; }
//! # impl Read for Script {
//! #     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
//! #         let n = buf.len().min(self.replies.len() - self.at);
//! #         buf[..n].copy_from_slice(&self.replies[self.at..self.at + n]);
//! #         self.at += n;
//! #         Ok(n)
//! #     }
//! # }
//! # impl Write for Script {
//! #     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
//! #     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! # }
//! # let socket = Script {
//! #     replies: &[0x07, 0x18, 0x01, 0xe8, 0x07, 0x80, 0x08, 0x00, 0x02, 0x11, 0x01],
//! #     at: 0,
//! # };
//! let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
//! let device = Device { id: "dev42", token: b"" };
//! let mut client: Client<'_, _> = Client::new(socket, device, &mut tx, &mut rx);
//! let welcome = client.connect(None, 0)?;
//! assert_eq!((welcome.broker_time_ms, welcome.config), (1_000, None));
//! client.reading(1, &22.5f32.to_le_bytes(), AckMode::None)?;
//! client.register_alias(2, "humidity", None)?;
//! assert_eq!(client.broker_time_ms(250), Some(1_250));
//! # Ok::<(), outpost_firmware::client::ClientError>(())
//! ```

pub mod asynch;
pub mod blocking;
mod error;
mod reader;
mod reply;
pub mod session;
mod types;
pub mod udp;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use error::ClientError;
pub use session::{Session, DEFAULT_ALIASES, HELLO_REPLY_MAX_LEN, REPLY_ROOM, RX_LEN_FOR_CONFIG};
pub use types::{Alias, Device, Produced, RequestIds, TimeSync, Welcome};

/// Runs the blocking client over a `std::io::Read + Write` (such as `TcpStream`):
/// `Client::new(FromStd::new(stream), ...)`. Its errors map to [`ClientError::Transport`]
/// with the `std::io::ErrorKind`'s counterpart (a read timeout set with
/// `set_read_timeout` is `Transport(TimedOut)`, or `Transport(Other)` for `WouldBlock`).
#[cfg(feature = "std")]
pub use embedded_io_adapters::std::FromStd;
