//! [`MockBroker`]: an in-memory transport that answers each request the client writes with
//! the reply it waits for. Only what the demo sends is understood; requests are assumed to
//! be shorter than 128 bytes (a one-byte length prefix). With the `config` feature its hello
//! reply pushes a config.

use core::convert::Infallible;
use core::hint::black_box;

use embedded_io::{ErrorType, Read, Write};

/// The hello reply: protocol 1, clock 1,700,000,000,000 ms, largest frame 1,024, no config.
#[cfg(not(feature = "config"))]
const HELLO_REPLY: &[u8] = &[
    0x0b, 0x18, 0x01, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x80, 0x08, 0x00,
];
/// The same with a config of 29 bytes (version 3, device "d1", two aliases: config.rs's
/// golden one).
#[cfg(feature = "config")]
const HELLO_REPLY: &[u8] = &[
    0x29, 0x18, 0x01, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x80, 0x08, 0x01, 0x1d, //
    0x01, 0x03, 0x02, b'd', b'1', 0x07, b'g', b'w', b':', b'7', b'8', b'8', b'3', 0x90, 0x4e, 0x0a,
    0x01, 0x02, 0x01, 0x01, b't', 0x00, 0xac, 0x02, 0x02, b'h', b'u', 0x01, 0x02,
];
/// Frame discriminants (frame.rs).
const DEVICE_HELLO: u8 = 23;
const REGISTER_ALIAS: u8 = 25;
const PRODUCE_ALIAS: u8 = 26;
const READING: u8 = 27;
const ACK: u8 = 3;
const DONE: u8 = 17;
/// The longest reply built here.
const REPLY_CAP: usize = 64;

/// Replies to the last request, handed out by `read`.
pub struct MockBroker {
    reply: [u8; REPLY_CAP],
    len: usize,
    at: usize,
    offset: u8,
}

impl MockBroker {
    pub const fn new() -> Self {
        MockBroker {
            reply: [0; REPLY_CAP],
            len: 0,
            at: 0,
            offset: 0,
        }
    }

    fn answer(&mut self, request: &[u8]) {
        let (Some(&kind), Some(rest)) = (request.get(1), request.get(2..)) else {
            return;
        };
        let id_len = rest.iter().position(|b| b & 0x80 == 0).map_or(0, |i| i + 1);
        let id = &rest[..id_len];
        match kind {
            DEVICE_HELLO => self.set(&[HELLO_REPLY]),
            REGISTER_ALIAS => self.set(&[&[1 + id_len as u8, DONE], id]),
            READING if id != [0] => self.set(&[&[1 + id_len as u8, DONE], id]),
            PRODUCE_ALIAS => {
                self.offset = self.offset.wrapping_add(4) & 0x7f;
                // Partition 0, base offset, count 4.
                let tail = [0, self.offset, 4];
                self.set(&[&[4 + id_len as u8, ACK], id, &tail]);
            }
            _ => {}
        }
    }

    fn set(&mut self, parts: &[&[u8]]) {
        self.len = 0;
        self.at = 0;
        for part in parts {
            let end = (self.len + part.len()).min(REPLY_CAP);
            self.reply[self.len..end].copy_from_slice(&part[..end - self.len]);
            self.len = end;
        }
    }
}

impl ErrorType for MockBroker {
    type Error = Infallible;
}

impl Write for MockBroker {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.answer(black_box(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl Read for MockBroker {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(self.len - self.at);
        for (to, from) in buf.iter_mut().zip(&self.reply[self.at..self.at + n]) {
            *to = black_box(*from);
        }
        self.at += n;
        Ok(n)
    }
}
