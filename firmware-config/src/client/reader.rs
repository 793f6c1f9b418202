//! [`Reader`]: cuts the broker's byte stream into frames inside the caller's receive buffer.
//!
//! It owns the receive buffer's bookkeeping: where received bytes end, where the next frame
//! starts, and which bytes must be kept (a frame the caller still borrows). It does not
//! decode frame bodies (the [`Session`](super::Session) does) and does no I/O: a driver asks
//! for [`make_space`](Reader::make_space) and [`space`](Reader::space) to read into and reports how much it read with
//! [`filled`](Reader::filled).

use core::ops::Range;

use super::ClientError;
use crate::codec::frame_len;

/// Incremental framing over a caller's buffer. A frame is handed out whole, as the range of
/// its body; it stays in place until the next [`make_space`](Reader::make_space) moves unread
/// bytes down over it (except frames before [`keep`](Reader::keep)'s mark).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a mut [u8],
    /// Bytes before `base` are kept; unread bytes are moved down to `base`, not to 0.
    base: usize,
    /// Where the first unread frame starts.
    start: usize,
    /// Where the received bytes end.
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, empty.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Reader {
            buf,
            base: 0,
            start: 0,
            end: 0,
        }
    }

    /// Forgets every byte received (a new connection).
    pub(crate) fn reset(&mut self) {
        self.base = 0;
        self.start = 0;
        self.end = 0;
    }

    /// Keeps the frames handed out so far in place until [`release`](Self::release).
    pub(crate) fn keep(&mut self) {
        self.base = self.start;
    }

    /// Lets the next [`make_space`](Self::make_space) overwrite every frame handed out.
    pub(crate) fn release(&mut self) {
        self.base = 0;
    }

    /// Moves unread bytes down to the kept ones; returns whether any byte is free after
    /// them. None is free only when the buffer cannot hold even the length prefix of the
    /// next frame.
    pub(crate) fn make_space(&mut self) -> bool {
        if self.start > self.base {
            self.buf.copy_within(self.start..self.end, self.base);
            self.end -= self.start - self.base;
            self.start = self.base;
        }
        self.end < self.buf.len()
    }

    /// The free part of the buffer (empty unless [`make_space`](Self::make_space) said
    /// there is some).
    pub(crate) fn space(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Records that `n` bytes were read into the start of [`space`](Self::space).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// The body of the next whole frame, or `None` until more bytes arrive. Fails with
    /// `FrameTooLarge` as soon as the length prefix announces a frame that cannot fit in the
    /// buffer (beside the kept bytes), and with `Malformed` for a bad prefix.
    pub(crate) fn next(&mut self) -> Result<Option<Range<usize>>, ClientError> {
        let unread = self.buf.get(self.start..self.end).unwrap_or_default();
        let Some((prefix_len, body_len)) = frame_len(unread, u32::MAX)? else {
            return Ok(None);
        };
        let capacity = self.buf.len() - self.base;
        let total = usize::try_from(body_len)
            .ok()
            .and_then(|len| len.checked_add(prefix_len))
            .filter(|&total| total <= capacity)
            .ok_or(ClientError::FrameTooLarge { len: body_len })?;
        if unread.len() < total {
            return Ok(None);
        }
        let body = self.start + prefix_len..self.start + total;
        self.start += total;
        Ok(Some(body))
    }

    /// The bytes of `range` (a body range handed out by [`next`](Self::next)).
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut Reader<'_>, bytes: &[u8]) {
        assert!(reader.make_space());
        let space = reader.space();
        space[..bytes.len()].copy_from_slice(bytes);
        reader.filled(bytes.len());
    }

    #[test]
    fn frames_come_out_whole_across_reads() {
        let mut buf = [0u8; 8];
        let mut r = Reader::new(&mut buf);
        assert_eq!(r.next(), Ok(None));
        feed(&mut r, &[0x02, 0x11]);
        assert_eq!(r.next(), Ok(None));
        feed(&mut r, &[0x05, 0x02, 0x13]);
        assert_eq!(r.next(), Ok(Some(1..3)));
        assert_eq!(r.bytes(1..3), [0x11, 0x05]);
        assert_eq!(r.next(), Ok(None));
        // The half frame moves down to the start of the buffer.
        feed(&mut r, &[0x07]);
        assert_eq!(r.next(), Ok(Some(1..3)));
        assert_eq!(r.bytes(1..3), [0x13, 0x07]);
        assert_eq!(r.next(), Ok(None));
    }

    #[test]
    fn a_frame_larger_than_the_buffer_fails_from_its_prefix() {
        let mut buf = [0u8; 4];
        let mut r = Reader::new(&mut buf);
        feed(&mut r, &[0x04]);
        assert_eq!(r.next(), Err(ClientError::FrameTooLarge { len: 4 }));
        let mut buf = [0u8; 4];
        let mut r = Reader::new(&mut buf);
        feed(&mut r, &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.next(), Ok(None));
        assert!(!r.make_space());
        assert!(r.space().is_empty());
        let mut buf = [0u8; 8];
        let mut r = Reader::new(&mut buf);
        feed(&mut r, &[0xff; 5]);
        assert_eq!(r.next(), Err(ClientError::Malformed));
    }

    #[test]
    fn kept_frames_stay_in_place() {
        let mut buf = [0u8; 8];
        let mut r = Reader::new(&mut buf);
        feed(&mut r, &[0x02, 0xaa, 0xbb, 0x01]);
        assert_eq!(r.next(), Ok(Some(1..3)));
        r.keep();
        // The next frame may use only what is left beside the kept 3 bytes.
        feed(&mut r, &[0xcc]);
        assert_eq!(r.next(), Ok(Some(4..5)));
        feed(&mut r, &[0x06]);
        assert_eq!(r.next(), Err(ClientError::FrameTooLarge { len: 6 }));
        assert_eq!(r.bytes(1..3), [0xaa, 0xbb]);
        r.release();
        r.reset();
        feed(&mut r, &[0x06, 1, 2, 3, 4, 5, 6]);
        assert_eq!(r.next(), Ok(Some(1..7)));
    }
}
