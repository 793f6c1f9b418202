//! [`Session`]: the sans-I/O core both clients drive. It owns the device's side of one
//! connection: building requests into the caller's transmit buffer, cutting the broker's
//! bytes into frames in the caller's receive buffer, request ids, matching replies to the
//! request waited for, the alias table to register again after a reconnect, and the broker's
//! clock from the hello reply.
//!
//! It does no I/O and reads no clock: a driver (such as [`blocking::Client`]) writes
//! [`transmit`](Session::transmit)'s bytes, reads into [`read_buf`](Session::read_buf),
//! reports with [`received`](Session::received), and calls
//! [`poll_reply`](Session::poll_reply) until the reply it waits for comes out. The local
//! time is passed in.
//!
//! [`blocking::Client`]: super::blocking::Client

use core::ops::Range;

use heapless::Vec;

use super::reader::Reader;
use super::reply::{parse_reply, Parsed};
use super::{Alias, ClientError, Device, Produced, RequestIds, TimeSync, Welcome};
use crate::codec::{encode_body, encode_frame, frame_len, MAX_PREFIX_LEN, PROTOCOL_VERSION};
use crate::{varint, AckMode, Error, Frame, Record, Records, Seq, SeqWriter, MAX_ENCODED_LEN};

/// What a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Nothing: the request asked for no reply.
    Nothing,
    /// The hello reply.
    Welcome,
    /// `Done` with this request id.
    Done(u32),
    /// `Ack` with this request id.
    Ack(u32),
    /// `Pong` with this request id.
    Pong(u32),
    /// `ConfigReply` with this request id.
    Config(u32),
}

impl Wait {
    /// The request id waited for; `None` for `Nothing` and `Welcome`.
    pub const fn request_id(self) -> Option<u32> {
        match self {
            Wait::Nothing | Wait::Welcome => None,
            Wait::Done(id) | Wait::Ack(id) | Wait::Pong(id) | Wait::Config(id) => Some(id),
        }
    }
}

/// A request written into the transmit buffer: send [`Session::transmit`], then (unless
/// [`wait`](Request::wait) is `Nothing`) call [`Session::poll_reply`] until it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    start: usize,
    len: usize,
    wait: Wait,
}

impl Request {
    /// What the request waits for.
    pub const fn wait(&self) -> Wait {
        self.wait
    }
}

/// The reply waited for arrived. Its contents, where they are more than this, are read from
/// the session: [`Session::welcome`], [`Session::config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The hello reply.
    Welcome,
    /// `Done`.
    Done,
    /// `Ack`: the batch was committed.
    Ack(Produced),
    /// `Pong`.
    Pong,
    /// `ConfigReply`.
    Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No usable stream: before the hello, or after an error that ended the connection.
    Disconnected,
    /// The hello is sent, its reply not yet received.
    Greeting,
    /// The hello was answered.
    Connected,
}

/// What the hello reply said, but the config bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Greeting {
    version: u16,
    broker_time_ms: u64,
    max_frame_len: u32,
}

/// How many registered aliases a client remembers unless told otherwise.
pub const DEFAULT_ALIASES: usize = 4;

/// The longest hello reply: one carrying a config of [`MAX_ENCODED_LEN`] bytes. Length
/// prefix (2, for a body under 16 KiB), discriminant (1), version (3), clock (10), largest
/// frame (5), option tag (1), config length (2), config: 1,322 bytes.
pub const HELLO_REPLY_MAX_LEN: usize = 2 + 1 + 3 + 10 + 5 + 1 + 2 + MAX_ENCODED_LEN;

/// Receive-buffer room for the hello reply without a config (at most 23 bytes, kept while
/// the aliases are registered again) and one more reply: `Done` (at most 7 bytes), `Ack`
/// (27), `Pong`, `ConfigReply` without a config, or an `Error` whose message is up to about
/// 90 bytes (the broker keeps the messages it sends devices well below that). An `Error`
/// with a longer message than fits ends the connection with `FrameTooLarge` instead of
/// reporting its code.
pub const REPLY_ROOM: usize = 128;

/// A receive buffer this long takes any config the broker pushes in its hello reply, and
/// keeps it readable while the aliases are registered again after it.
pub const RX_LEN_FOR_CONFIG: usize = HELLO_REPLY_MAX_LEN + REPLY_ROOM;

// The config's length takes two varint bytes, the hello reply's length prefix too.
const _: () = assert!(MAX_ENCODED_LEN < 1 << 14 && HELLO_REPLY_MAX_LEN < 1 << 14);

/// Room in front of the records for everything of a `ProduceAlias` frame that precedes them:
/// length prefix, discriminant (1), request id (5), alias (3), ack (1), records length (5).
const PRODUCE_HEAD: usize = MAX_PREFIX_LEN + 1 + 5 + 3 + 1 + MAX_PREFIX_LEN;
/// The encoding of an empty records sequence: byte-string length 1, then count 0.
const EMPTY_SEQ_LEN: usize = 2;

/// One device connection, without I/O. `N` is the most aliases the client remembers.
///
/// Memory: the two caller buffers, plus the session itself: 172 bytes with one alias on
/// `thumbv7em-none-eabihf` (thumb-demo), 20 more per alias. Nothing is allocated.
#[derive(Debug)]
pub struct Session<'a, const N: usize> {
    device: Device<'a>,
    tx: &'a mut [u8],
    reader: Reader<'a>,
    ids: RequestIds,
    aliases: Vec<Alias<'a>, N>,
    /// A `RegisterAlias` in flight: recorded in `aliases` when its `Done` comes.
    registering: Option<(u32, Alias<'a>)>,
    state: State,
    /// The local clock when the hello was sent.
    hello_local_ms: u64,
    greeting: Option<Greeting>,
    time: Option<TimeSync>,
    /// The config bytes of the last hello reply or `ConfigReply`, in the receive buffer.
    config: Option<Range<usize>>,
}

impl<'a, const N: usize> Session<'a, N> {
    /// A disconnected session for `device`, building requests in `tx` and receiving in `rx`.
    ///
    /// `tx` must hold the largest request: the hello (10 bytes plus the device id and
    /// token), a registration (17 bytes plus the topic), a reading (11 bytes plus the
    /// value), a batch. `rx` must hold the largest reply: [`REPLY_ROOM`] bytes do for
    /// everything but a pushed config, [`RX_LEN_FOR_CONFIG`] for any config too. A reply
    /// that does not fit ends the connection with `FrameTooLarge`.
    pub fn new(device: Device<'a>, tx: &'a mut [u8], rx: &'a mut [u8]) -> Self {
        Session {
            device,
            tx,
            reader: Reader::new(rx),
            ids: RequestIds::new(),
            aliases: Vec::new(),
            registering: None,
            state: State::Disconnected,
            hello_local_ms: 0,
            greeting: None,
            time: None,
            config: None,
        }
    }

    /// Whether the hello was answered and no error has ended the connection since.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The device this session speaks for.
    pub fn device(&self) -> Device<'a> {
        self.device
    }

    /// The aliases registered so far (and registered again by every hello's follow-up).
    pub fn aliases(&self) -> &[Alias<'a>] {
        &self.aliases
    }

    /// Removes `alias` from the table (the broker keeps it until the connection ends);
    /// returns whether it was there.
    pub fn forget_alias(&mut self, alias: u16) -> bool {
        let Some(at) = self.aliases.iter().position(|a| a.alias == alias) else {
            return false;
        };
        self.aliases.remove(at);
        true
    }

    /// The broker's clock as of the last hello reply.
    pub fn time(&self) -> Option<TimeSync> {
        self.time
    }

    /// The broker's time now (see [`TimeSync::broker_time_ms`]), once a hello was answered.
    pub fn broker_time_ms(&self, local_now_ms: u64) -> Option<u64> {
        self.time.map(|t| t.broker_time_ms(local_now_ms))
    }

    /// The last hello reply, with its config bytes while they are still in the receive
    /// buffer (until the next request).
    pub fn welcome(&self) -> Option<Welcome<'_>> {
        self.greeting.map(|g| Welcome {
            version: g.version,
            broker_time_ms: g.broker_time_ms,
            max_frame_len: g.max_frame_len,
            config: self.config(),
        })
    }

    /// The config bytes of the last hello reply or `ConfigReply`, until the next request.
    pub fn config(&self) -> Option<&[u8]> {
        self.config.clone().map(|range| self.reader.bytes(range))
    }

    /// Starts a connection: forgets every byte received and writes `DeviceHello` announcing
    /// `config_version` (the version of the config the device holds). `local_ms` is the
    /// local clock now, the other half of the time sync.
    pub fn hello(
        &mut self,
        config_version: Option<u32>,
        local_ms: u64,
    ) -> Result<Request, ClientError> {
        self.state = State::Disconnected;
        self.reader.reset();
        self.greeting = None;
        self.config = None;
        self.registering = None;
        let frame = Frame::DeviceHello {
            version: PROTOCOL_VERSION,
            device_id: self.device.id,
            token: self.device.token,
            config_version,
        };
        let len = encode_frame(&frame, self.tx)?.len();
        self.hello_local_ms = local_ms;
        self.state = State::Greeting;
        Ok(Request {
            start: 0,
            len,
            wait: Wait::Welcome,
        })
    }

    /// Writes `RegisterAlias`; the alias goes into the table when its `Done` comes (and
    /// replaces an entry for the same alias). Fails with `AliasTableFull` when the table
    /// holds `N` other aliases.
    pub fn register_alias(
        &mut self,
        alias: u16,
        topic: &'a str,
        partition: Option<u32>,
    ) -> Result<Request, ClientError> {
        let known = self.aliases.iter().any(|a| a.alias == alias);
        if !known && self.aliases.is_full() {
            return Err(ClientError::AliasTableFull);
        }
        self.begin()?;
        self.registration(Alias {
            alias,
            topic,
            partition,
        })
    }

    /// Writes the registration of the table's `index`th alias again, after a hello (the
    /// hello reply's config bytes stay readable); `None` past the end of the table.
    pub fn reregister(&mut self, index: usize) -> Result<Option<Request>, ClientError> {
        let Some(&entry) = self.aliases.get(index) else {
            return Ok(None);
        };
        self.check_connected()?;
        self.registration(entry).map(Some)
    }

    fn registration(&mut self, entry: Alias<'a>) -> Result<Request, ClientError> {
        let id = self.ids.allocate();
        let frame = Frame::RegisterAlias {
            request_id: id,
            alias: entry.alias,
            topic: entry.topic,
            partition: entry.partition,
        };
        let request = self.encode(&frame, Wait::Done(id))?;
        self.registering = Some((id, entry));
        Ok(request)
    }

    /// Writes a `Reading`: with `AckMode::Commit` it waits for `Done` (the value is
    /// committed), with `AckMode::None` it waits for nothing (request id 0).
    pub fn reading(
        &mut self,
        alias: u16,
        value: &[u8],
        ack: AckMode,
    ) -> Result<Request, ClientError> {
        self.begin()?;
        let (request_id, wait) = self.optional_reply(ack, Wait::Done);
        let frame = Frame::Reading {
            request_id,
            alias,
            value,
        };
        self.encode(&frame, wait)
    }

    /// Writes a `ProduceAlias` of `records` (built with [`SeqWriter`] in a buffer of the
    /// caller's); with `AckMode::Commit` it waits for `Ack`.
    pub fn produce(
        &mut self,
        alias: u16,
        records: Records<'_>,
        ack: AckMode,
    ) -> Result<Request, ClientError> {
        self.begin()?;
        let request_id = self.ids.allocate();
        let frame = Frame::ProduceAlias {
            request_id,
            alias,
            ack,
            records,
        };
        self.encode(&frame, ack_wait(ack, request_id))
    }

    /// Writes a `ProduceAlias` whose records `fill` pushes straight into the transmit
    /// buffer, so the batch needs no buffer of its own. `fill`'s error (a push that did not
    /// fit: `BufferTooSmall`) fails the request; to send what fits, ignore it in `fill`.
    pub fn produce_with<F>(
        &mut self,
        alias: u16,
        ack: AckMode,
        fill: F,
    ) -> Result<Request, ClientError>
    where
        F: FnOnce(&mut SeqWriter<'_, Record<'_>>) -> Result<(), Error>,
    {
        self.begin()?;
        let records = self
            .tx
            .get_mut(PRODUCE_HEAD..)
            .ok_or(ClientError::BufferTooSmall)?;
        let mut writer = SeqWriter::new(records);
        fill(&mut writer)?;
        let records_len = writer.finish()?.as_bytes().len();
        let request_id = self.ids.allocate();
        let start = self.produce_head(request_id, alias, ack, records_len)?;
        let len = PRODUCE_HEAD - start + records_len;
        self.checked(start, len, ack_wait(ack, request_id))
    }

    /// Writes everything of a `ProduceAlias` before its `records_len` bytes of records (which
    /// sit at `PRODUCE_HEAD`) right in front of them; returns where the frame starts.
    fn produce_head(
        &mut self,
        request_id: u32,
        alias: u16,
        ack: AckMode,
        records_len: usize,
    ) -> Result<usize, ClientError> {
        // The frame's fields before the records are those of the same frame with no
        // records, whose body ends in the empty sequence's two bytes.
        let empty = Frame::ProduceAlias {
            request_id,
            alias,
            ack,
            records: Seq::empty(),
        };
        let mut fixed = [0u8; PRODUCE_HEAD];
        let fixed_len = encode_body(&empty, &mut fixed)?.len() - EMPTY_SEQ_LEN;
        let too_large = ClientError::BufferTooSmall;
        let records_len_u32 = u32::try_from(records_len).map_err(|_| too_large)?;
        let (seq_prefix, seq_prefix_len) = varint::encode_u32(records_len_u32);
        let body_len = fixed_len + seq_prefix_len + records_len;
        let body_len = u32::try_from(body_len).map_err(|_| too_large)?;
        let (prefix, prefix_len) = varint::encode_u32(body_len);
        let start = PRODUCE_HEAD - (prefix_len + fixed_len + seq_prefix_len);
        // In bounds: the three parts take at most PRODUCE_HEAD bytes, and `tx` is longer
        // than PRODUCE_HEAD (the records were written after it).
        let parts = [
            &prefix[..prefix_len],
            &fixed[..fixed_len],
            &seq_prefix[..seq_prefix_len],
        ];
        let mut at = start;
        for part in parts {
            self.tx[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Ok(start)
    }

    /// Writes a `ConfigRequest`, answered by `ConfigReply`: then [`config`](Self::config).
    pub fn config_request(&mut self) -> Result<Request, ClientError> {
        self.begin()?;
        let request_id = self.ids.allocate();
        self.encode(
            &Frame::ConfigRequest { request_id },
            Wait::Config(request_id),
        )
    }

    /// Writes a `Sleep` hint; with `AckMode::Commit` it waits for `Done`.
    pub fn sleep(&mut self, duration_ms: u32, ack: AckMode) -> Result<Request, ClientError> {
        self.begin()?;
        let (request_id, wait) = self.optional_reply(ack, Wait::Done);
        let frame = Frame::Sleep {
            request_id,
            duration_ms,
        };
        self.encode(&frame, wait)
    }

    /// Writes a `Ping`, answered by `Pong`.
    pub fn ping(&mut self) -> Result<Request, ClientError> {
        self.begin()?;
        let request_id = self.ids.allocate();
        self.encode(&Frame::Ping { request_id }, Wait::Pong(request_id))
    }

    /// The bytes of `request` to send, all of them, in order.
    pub fn transmit(&self, request: &Request) -> &[u8] {
        let end = request.start + request.len;
        self.tx.get(request.start..end).unwrap_or_default()
    }

    /// The free part of the receive buffer, to read into. Fails with `NotConnected` when
    /// there is no connection, and ends it with `BufferTooSmall` when the buffer is full
    /// (which [`MAX_PREFIX_LEN`] bytes of room beside a kept hello reply prevent).
    pub fn read_buf(&mut self) -> Result<&mut [u8], ClientError> {
        if self.state == State::Disconnected {
            return Err(ClientError::NotConnected);
        }
        if !self.reader.make_space() {
            return Err(self.fail(ClientError::BufferTooSmall));
        }
        Ok(self.reader.space())
    }

    /// Records that the driver read `n` bytes into [`read_buf`](Self::read_buf). `n == 0`
    /// is the end of the stream: the connection ends with `Closed`.
    pub fn received(&mut self, n: usize) -> Result<(), ClientError> {
        if n == 0 {
            return Err(self.fail(ClientError::Closed));
        }
        self.reader.filled(n);
        Ok(())
    }

    /// Ends the connection because of `error` (a transport error the driver saw), and
    /// returns it.
    pub fn fail(&mut self, error: ClientError) -> ClientError {
        self.state = State::Disconnected;
        self.registering = None;
        error
    }

    /// Decodes the frames received so far until the reply `wait` is waiting for.
    ///
    /// `Ok(None)`: not there yet, read more. `Ok(Some(_))`: it came (and its effects are
    /// applied: the hello reply sets the clock and the connection up, a registration's
    /// `Done` records the alias). Replies with other request ids (the late answers to
    /// requests whose wait ended early) are skipped. An `Error` frame ends the wait as
    /// `Broker`, whichever request it answers. Anything else ends the connection.
    /// With `Wait::Nothing` it drains what is buffered: `Ok(None)` when nothing was wrong.
    pub fn poll_reply(&mut self, wait: Wait) -> Result<Option<Reply>, ClientError> {
        if self.state == State::Disconnected {
            return Err(ClientError::NotConnected);
        }
        loop {
            let parsed = match self.next_parsed(wait) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            };
            if let Some(reply) = self.apply(parsed, wait)? {
                return Ok(Some(reply));
            }
        }
    }

    /// The next frame received, parsed and matched against `wait`.
    fn next_parsed(&mut self, wait: Wait) -> Result<Option<Parsed>, ClientError> {
        let Some(body) = self.reader.next()? else {
            return Ok(None);
        };
        let offset = body.start;
        let parsed = parse_reply(self.reader.bytes(body))?;
        Ok(Some(parsed.located(offset).matched(wait)?))
    }

    /// Applies a reply that matched `wait`; `None` for one to skip.
    fn apply(&mut self, parsed: Parsed, wait: Wait) -> Result<Option<Reply>, ClientError> {
        let reply = match parsed {
            Parsed::Stale => return Ok(None),
            Parsed::Error { request_id, code } => {
                let error = ClientError::Broker { request_id, code };
                // A refused hello ends the connection (the broker closes it).
                return Err(if wait == Wait::Welcome {
                    self.fail(error)
                } else {
                    error
                });
            }
            Parsed::Welcome {
                version,
                broker_time_ms,
                max_frame_len,
                config,
            } => {
                if version != PROTOCOL_VERSION {
                    return Err(self.fail(ClientError::UnsupportedVersion { version }));
                }
                self.welcomed(broker_time_ms, max_frame_len, config);
                Reply::Welcome
            }
            Parsed::Done { .. } => {
                self.registered(wait);
                Reply::Done
            }
            Parsed::Ack { produced, .. } => Reply::Ack(produced),
            Parsed::Pong { .. } => Reply::Pong,
            Parsed::Config { config, .. } => {
                self.config = config;
                Reply::Config
            }
        };
        Ok(Some(reply))
    }

    fn welcomed(&mut self, broker_time_ms: u64, max_frame_len: u32, config: Option<Range<usize>>) {
        self.greeting = Some(Greeting {
            version: PROTOCOL_VERSION,
            broker_time_ms,
            max_frame_len,
        });
        self.time = Some(TimeSync::new(broker_time_ms, self.hello_local_ms));
        self.config = config;
        self.state = State::Connected;
        // The config bytes stay readable while the aliases are registered again.
        self.reader.keep();
    }

    fn registered(&mut self, wait: Wait) {
        let Some((id, entry)) = self.registering else {
            return;
        };
        if wait != Wait::Done(id) {
            return;
        }
        self.registering = None;
        match self.aliases.iter_mut().find(|a| a.alias == entry.alias) {
            Some(slot) => *slot = entry,
            None => {
                // Room was checked before sending; a table filled meanwhile (by another
                // registration answered out of order) keeps what it has.
                let _ = self.aliases.push(entry);
            }
        }
    }

    /// The request id and wait of a request that asks for a reply only with an ack.
    fn optional_reply(&mut self, ack: AckMode, wait: fn(u32) -> Wait) -> (u32, Wait) {
        match ack {
            AckMode::None => (0, Wait::Nothing),
            AckMode::Commit => {
                let id = self.ids.allocate();
                (id, wait(id))
            }
        }
    }

    /// Checks the connection and lets the receive buffer reuse the bytes of earlier replies.
    fn begin(&mut self) -> Result<(), ClientError> {
        self.check_connected()?;
        self.reader.release();
        self.config = None;
        Ok(())
    }

    fn check_connected(&self) -> Result<(), ClientError> {
        match self.state {
            State::Connected => Ok(()),
            _ => Err(ClientError::NotConnected),
        }
    }

    fn encode(&mut self, frame: &Frame<'_>, wait: Wait) -> Result<Request, ClientError> {
        let len = encode_frame(frame, self.tx)?.len();
        self.checked(0, len, wait)
    }

    /// The request of the frame at `start..start + len`, checked against the broker's
    /// largest frame.
    fn checked(&self, start: usize, len: usize, wait: Wait) -> Result<Request, ClientError> {
        let max = self.greeting.map_or(u32::MAX, |g| g.max_frame_len);
        let bytes = self.tx.get(start..start + len).unwrap_or_default();
        frame_len(bytes, max)?;
        Ok(Request { start, len, wait })
    }
}

fn ack_wait(ack: AckMode, request_id: u32) -> Wait {
    match ack {
        AckMode::None => Wait::Nothing,
        AckMode::Commit => Wait::Ack(request_id),
    }
}
