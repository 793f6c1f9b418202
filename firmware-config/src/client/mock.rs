//! Test transports: [`FakeBroker`], an in-memory broker for both clients. It answers every
//! whole request frame written to it with the bytes a handler returns, hands them out in
//! reads of at most `chunk` bytes, and keeps each request's bytes for assertions.

use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec;

use embedded_io::ErrorKind;

use crate::{decode_frame, encode_frame, ErrorCode, Frame};

/// What the fake broker answers to one request frame: the bytes to send back.
pub(crate) type Handler = Box<dyn FnMut(&Frame<'_>) -> Vec<u8>>;

/// The clock the standard handler's hello reply carries.
pub(crate) const BROKER_TIME_MS: u64 = 1_700_000_000_000;
/// The largest frame the standard handler's hello reply announces.
pub(crate) const BROKER_MAX_FRAME: u32 = 4096;
/// The base offset of the standard handler's acks.
pub(crate) const BASE_OFFSET: u64 = 100;

pub(crate) struct FakeBroker {
    handler: Handler,
    written: Vec<u8>,
    answered: usize,
    pending: VecDeque<u8>,
    /// The most bytes one read or write moves.
    pub(crate) chunk: usize,
    /// Every request frame answered, length prefix included, in order.
    requests: Vec<Vec<u8>>,
    /// When set, reads fail with this kind.
    pub(crate) read_error: Option<ErrorKind>,
    /// When set, writes return `Ok(0)`.
    pub(crate) write_zero: bool,
}

impl FakeBroker {
    /// A broker answering with `standard`.
    pub(crate) fn new() -> Self {
        FakeBroker::with(Box::new(standard))
    }

    /// A broker answering with `handler`.
    pub(crate) fn with(handler: Handler) -> Self {
        FakeBroker {
            handler,
            written: Vec::new(),
            answered: 0,
            pending: VecDeque::new(),
            chunk: usize::MAX,
            requests: Vec::new(),
            read_error: None,
            write_zero: false,
        }
    }

    /// Every request frame received, length prefix included, in order.
    pub(crate) fn requests(&mut self) -> &[Vec<u8>] {
        self.answer();
        &self.requests
    }

    /// The request frames received, decoded.
    pub(crate) fn frames(&mut self) -> Vec<Frame<'_>> {
        self.answer();
        fn decode(bytes: &[u8]) -> Frame<'_> {
            decode_frame(bytes, u32::MAX).unwrap().unwrap().0
        }
        self.requests.iter().map(|b| decode(b)).collect()
    }

    /// Answers every whole request written so far.
    fn answer(&mut self) {
        while let Ok(Some((frame, used))) = decode_frame(&self.written[self.answered..], u32::MAX) {
            let reply = (self.handler)(&frame);
            let end = self.answered + used;
            self.requests
                .push(self.written[self.answered..end].to_vec());
            self.answered = end;
            self.pending.extend(reply);
        }
    }

    fn do_read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if let Some(kind) = self.read_error {
            return Err(kind);
        }
        self.answer();
        let n = buf.len().min(self.chunk).min(self.pending.len());
        for (to, from) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *to = from;
        }
        // Nothing to send and nothing asked: the broker has closed the connection.
        Ok(n)
    }

    fn do_write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if self.write_zero {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk);
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn ready(&mut self) -> bool {
        self.answer();
        !self.pending.is_empty()
    }
}

/// The encoding of `frame`, length prefix included.
pub(crate) fn bytes(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = std::vec![0u8; 4096];
    let len = encode_frame(frame, &mut buf).unwrap().len();
    buf.truncate(len);
    buf
}

/// A broker that does what the protocol says, with no config and no errors.
pub(crate) fn standard(frame: &Frame<'_>) -> Vec<u8> {
    let reply = match *frame {
        Frame::DeviceHello { .. } => Frame::DeviceHelloAck {
            version: 1,
            broker_time_ms: BROKER_TIME_MS,
            max_frame_len: BROKER_MAX_FRAME,
            config: None,
        },
        Frame::RegisterAlias { request_id, .. } => Frame::Done { request_id },
        Frame::Reading { request_id: 0, .. } | Frame::Sleep { request_id: 0, .. } => {
            return Vec::new()
        }
        Frame::Reading { request_id, .. } | Frame::Sleep { request_id, .. } => {
            Frame::Done { request_id }
        }
        Frame::ProduceAlias {
            request_id,
            ack,
            records,
            ..
        } => match ack {
            crate::AckMode::None => return Vec::new(),
            crate::AckMode::Commit => Frame::Ack {
                request_id,
                partition: 0,
                base_offset: BASE_OFFSET,
                count: records.len(),
            },
        },
        Frame::ConfigRequest { request_id } => Frame::ConfigReply {
            request_id,
            config: None,
        },
        Frame::Ping { request_id } => Frame::Pong { request_id },
        _ => Frame::Error {
            request_id: 0,
            code: ErrorCode::UNEXPECTED_FRAME,
            message: "not a device request",
        },
    };
    bytes(&reply)
}

impl embedded_io::ErrorType for FakeBroker {
    type Error = ErrorKind;
}

impl embedded_io::Read for FakeBroker {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.do_read(buf)
    }
}

impl embedded_io::Write for FakeBroker {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.do_write(buf)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl embedded_io::ReadReady for FakeBroker {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.ready())
    }
}

impl embedded_io_async::Read for FakeBroker {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.do_read(buf)
    }
}

impl embedded_io_async::Write for FakeBroker {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.do_write(buf)
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// Runs a future over the fake transport, which is always ready, to its end.
pub(crate) fn block_on<F: core::future::Future>(future: F) -> F::Output {
    use core::task::{Context, Poll, Waker};
    // Every await on the fake transport is ready at once; a few polls are plenty.
    const MAX_POLLS: usize = 1_000;
    let mut future = core::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the future did not finish over an always-ready transport");
}
