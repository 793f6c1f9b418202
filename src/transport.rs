//! [`Transport`]: the byte stream of one connection, plain TCP or TLS, so the MQTT and
//! binary-protocol connection tasks are written once for both.
//!
//! An enum rather than a generic parameter: the connection tasks are large, and one copy of
//! each keeps the binary small. The TLS stream is boxed so an idle plain connection does not
//! pay for rustls's state in its task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// Largest first read of a plain connection without a buffer, on the stack (see
/// [`Transport::read_some`]).
const QUIET_READ: usize = 4 << 10;

/// A connection's stream.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP, handshake done (server side, or client side in `bench`).
    Tls(Box<TlsStream<TcpStream>>),
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The remote address, when the socket still knows it.
    pub addr: Option<std::net::SocketAddr>,
    /// The user name a verified client certificate gives (`identity_as_username`); such a
    /// client is authenticated by its certificate.
    pub cert_identity: Option<String>,
}

impl Transport {
    /// The TCP socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(s) => s,
            Transport::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Reads at most `room` more bytes into `buf`, reserving `first` bytes when `buf` has no
    /// capacity yet. A plain socket with no buffer reads its first bytes on the stack and
    /// allocates only for what arrived, so an idle connection holds no read buffer (a wake-up
    /// without data is common: readiness is cleared only by a read that would block); TLS
    /// reads through rustls, which may hold decrypted bytes the socket no longer signals, so
    /// it reads directly. Cancel-safe.
    pub async fn read_some(
        &mut self,
        buf: &mut Vec<u8>,
        room: usize,
        first: usize,
    ) -> io::Result<usize> {
        use bytes::BufMut;
        let reserve = |buf: &mut Vec<u8>| {
            buf.reserve(if buf.capacity() == 0 {
                room.min(first)
            } else {
                room
            })
        };
        match self {
            Transport::Tcp(s) => loop {
                s.readable().await?;
                let read = if buf.capacity() == 0 {
                    let mut quiet = [0u8; QUIET_READ];
                    let len = room.min(first).clamp(1, QUIET_READ);
                    s.try_read(&mut quiet[..len])
                        .inspect(|&n| buf.extend_from_slice(&quiet[..n]))
                } else {
                    reserve(buf);
                    s.try_read_buf(&mut buf.limit(room))
                };
                match read {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            },
            Transport::Tls(s) => {
                reserve(buf);
                tokio::io::AsyncReadExt::read_buf(s, &mut buf.limit(room)).await
            }
        }
    }

    /// Splits into halves a reader task and a writer task can own.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Transport::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Transport::Tls(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// The reading half of a [`Transport`].
#[derive(Debug)]
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<Box<TlsStream<TcpStream>>>),
}

/// The writing half of a [`Transport`].
#[derive(Debug)]
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<Box<TlsStream<TcpStream>>>),
}

/// Forwards a poll to whichever variant is live.
macro_rules! delegate {
    ($self:expr, $s:ident => $call:expr) => {
        match $self.get_mut() {
            Self::Tcp($s) => $call,
            Self::Tls($s) => $call,
        }
    };
}

/// `AsyncRead` for a type whose variants all implement it.
macro_rules! async_read {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                delegate!(self, s => Pin::new(s).poll_read(cx, buf))
            }
        }
    };
}

/// `AsyncWrite` for a type whose variants all implement it.
macro_rules! async_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                delegate!(self, s => Pin::new(s).poll_write(cx, buf))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                delegate!(self, s => Pin::new(s).poll_flush(cx))
            }

            fn poll_shutdown(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                delegate!(self, s => Pin::new(s).poll_shutdown(cx))
            }
        }
    };
}

async_read!(Transport);
async_read!(ReadHalf);
async_write!(Transport);
async_write!(WriteHalf);
