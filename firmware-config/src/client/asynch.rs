//! [`Client`]: the device client over an async [`embedded_io_async`] transport (an
//! embassy-net socket, or a tokio `TcpStream` through `embedded-io-adapters`' `FromTokio`).
//! The same API as [`blocking::Client`](super::blocking::Client), with `async` calls; it owns
//! the transport and drives a [`Session`], which does everything but the reads and writes.
//!
//! Each call sends one request and, when it asks for a reply, reads until that reply comes:
//! one request in flight at a time. Timeouts are the caller's (wrap a call in the executor's
//! timeout; a call dropped midway leaves the stream at an unknown position: reconnect).

use embedded_io_async::{Read, ReadReady, Write};

use super::session::{Reply, Request, Wait};
use super::{Alias, ClientError, Device, Produced, Session, Welcome, DEFAULT_ALIASES};
use crate::{AckMode, Error, Record, Records, SeqWriter};

/// A device client over an async transport `T`, remembering up to `N` registered aliases.
/// See the [module docs](super) for an example.
#[derive(Debug)]
pub struct Client<'a, T, const N: usize = DEFAULT_ALIASES> {
    io: T,
    session: Session<'a, N>,
}

impl<'a, T: Read + Write, const N: usize> Client<'a, T, N> {
    /// A client for `device` over `io`, not yet connected, building requests in `tx` and
    /// receiving in `rx` (see [`Session::new`] for their sizes).
    pub fn new(io: T, device: Device<'a>, tx: &'a mut [u8], rx: &'a mut [u8]) -> Self {
        Client {
            io,
            session: Session::new(device, tx, rx),
        }
    }

    /// Says hello (`DeviceHello` with the device id, token and `config_version`, the
    /// version of the config the device holds), waits for the broker's answer, then
    /// registers again every alias of the table (none on a new client; one the broker now
    /// refuses is dropped from the table). `local_ms` is the
    /// local clock now, for [`broker_time_ms`](Self::broker_time_ms).
    ///
    /// The returned [`Welcome`] carries the broker's clock and largest frame, and the new
    /// config's bytes when the broker holds a newer one (borrowed from `rx`).
    pub async fn connect(
        &mut self,
        config_version: Option<u32>,
        local_ms: u64,
    ) -> Result<Welcome<'_>, ClientError> {
        let hello = self.session.hello(config_version, local_ms)?;
        self.exchange(hello).await?;
        let mut index = 0;
        while let Some(request) = self.session.reregister(index)? {
            match self.exchange(request).await {
                Ok(_) => index += 1,
                // The broker refuses this alias now (its topic is gone, or no longer
                // allowed): it leaves the table instead of failing every reconnect; its
                // readings then get `UNKNOWN_ALIAS`, which the caller sees.
                Err(ClientError::Broker { .. }) => {
                    let alias = self.session.aliases()[index].alias;
                    self.session.forget_alias(alias);
                }
                Err(e) => return Err(e),
            }
        }
        self.session.welcome().ok_or(ClientError::NotConnected)
    }

    /// Replaces the transport (the old one is dropped) and [`connect`](Self::connect)s over
    /// the new one: hello again, then every alias registered so far.
    pub async fn reconnect(
        &mut self,
        io: T,
        config_version: Option<u32>,
        local_ms: u64,
    ) -> Result<Welcome<'_>, ClientError> {
        self.io = io;
        self.connect(config_version, local_ms).await
    }

    /// Lets `alias` stand for `topic` (and `partition`) and waits for `Done`; the alias is
    /// then in the table that [`reconnect`](Self::reconnect) registers again. Aliases of the
    /// device's stored config need no registration.
    pub async fn register_alias(
        &mut self,
        alias: u16,
        topic: &'a str,
        partition: Option<u32>,
    ) -> Result<(), ClientError> {
        let request = self.session.register_alias(alias, topic, partition)?;
        self.exchange(request).await.map(drop)
    }

    /// Sends one value for `alias` (stamped with the broker's clock). With
    /// `AckMode::Commit`, returns once it is committed; with `AckMode::None`, once it is
    /// written to the transport (an unknown alias is then reported by a later call).
    pub async fn reading(
        &mut self,
        alias: u16,
        value: &[u8],
        ack: AckMode,
    ) -> Result<(), ClientError> {
        let request = self.session.reading(alias, value, ack)?;
        self.exchange(request).await.map(drop)
    }

    /// Produces `records` (built with [`SeqWriter`]) to `alias`'s topic. With
    /// `AckMode::Commit`, returns where they were committed.
    pub async fn produce(
        &mut self,
        alias: u16,
        records: Records<'_>,
        ack: AckMode,
    ) -> Result<Option<Produced>, ClientError> {
        let request = self.session.produce(alias, records, ack)?;
        self.exchange(request).await.map(produced)
    }

    /// Produces the records `fill` pushes, written straight into `tx` (no batch buffer).
    /// See [`Session::produce_with`].
    pub async fn produce_with<F>(
        &mut self,
        alias: u16,
        ack: AckMode,
        fill: F,
    ) -> Result<Option<Produced>, ClientError>
    where
        F: FnOnce(&mut SeqWriter<'_, Record<'_>>) -> Result<(), Error>,
    {
        let request = self.session.produce_with(alias, ack, fill)?;
        self.exchange(request).await.map(produced)
    }

    /// Asks for the device's stored config: its bytes (borrowed from `rx`), or `None` when
    /// the broker stores none.
    pub async fn request_config(&mut self) -> Result<Option<&[u8]>, ClientError> {
        let request = self.session.config_request()?;
        self.exchange(request).await?;
        Ok(self.session.config())
    }

    /// Tells the broker the device sleeps for `duration_ms`; with `AckMode::Commit`, waits
    /// for `Done`.
    pub async fn sleep(&mut self, duration_ms: u32, ack: AckMode) -> Result<(), ClientError> {
        let request = self.session.sleep(duration_ms, ack)?;
        self.exchange(request).await.map(drop)
    }

    /// Sends `Ping` and waits for `Pong`.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        let request = self.session.ping()?;
        self.exchange(request).await.map(drop)
    }

    /// Reads what the broker sent without being asked, as far as the transport says it is
    /// ready (`ReadReady`), without waiting for more: returns the first
    /// `Error` among it (such as `UNKNOWN_ALIAS` for a reading sent without an ack), or
    /// `Ok(())` when nothing is wrong so far. Fails with `NotConnected` without a connection.
    pub async fn poll(&mut self) -> Result<(), ClientError>
    where
        T: ReadReady,
    {
        loop {
            self.session.poll_reply(Wait::Nothing)?;
            match self.io.read_ready() {
                Ok(true) => self.read_some().await?,
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.session.fail(ClientError::transport(e))),
            }
        }
    }

    /// The broker's time now, from the local clock now; `None` before the first hello reply.
    pub fn broker_time_ms(&self, local_now_ms: u64) -> Option<u64> {
        self.session.broker_time_ms(local_now_ms)
    }

    /// The aliases registered so far.
    pub fn aliases(&self) -> &[Alias<'a>] {
        self.session.aliases()
    }

    /// Removes `alias` from the table, so reconnects no longer register it.
    pub fn forget_alias(&mut self, alias: u16) -> bool {
        self.session.forget_alias(alias)
    }

    /// The session: connection state, clock, aliases.
    pub fn session(&self) -> &Session<'a, N> {
        &self.session
    }

    /// The transport, for its own settings (timeouts, say).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The transport, giving up the client.
    pub fn into_transport(self) -> T {
        self.io
    }

    /// Sends `request` and waits for its reply, if it asks for one.
    async fn exchange(&mut self, request: Request) -> Result<Option<Reply>, ClientError> {
        self.send(&request).await?;
        match request.wait() {
            Wait::Nothing => Ok(None),
            wait => self.wait(wait).await.map(Some),
        }
    }

    async fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut bytes = self.session.transmit(request);
        let mut result = Ok(());
        while !bytes.is_empty() && result.is_ok() {
            result = match self.io.write(bytes).await {
                // `write` returns 0 only for an empty buffer; anything else is a dead peer
                // (and `write_all` would panic on it).
                Ok(0) => Err(ClientError::Closed),
                Ok(n) => {
                    bytes = bytes.get(n..).unwrap_or_default();
                    Ok(())
                }
                Err(e) => Err(ClientError::transport(e)),
            };
        }
        if result.is_ok() {
            result = self.io.flush().await.map_err(ClientError::transport);
        }
        result.map_err(|e| self.session.fail(e))
    }

    async fn wait(&mut self, wait: Wait) -> Result<Reply, ClientError> {
        loop {
            if let Some(reply) = self.session.poll_reply(wait)? {
                return Ok(reply);
            }
            self.read_some().await?;
        }
    }

    async fn read_some(&mut self) -> Result<(), ClientError> {
        let buf = self.session.read_buf()?;
        match self.io.read(buf).await {
            Ok(n) => self.session.received(n),
            Err(e) => Err(self.session.fail(ClientError::transport(e))),
        }
    }
}

fn produced(reply: Option<Reply>) -> Option<Produced> {
    match reply {
        Some(Reply::Ack(produced)) => Some(produced),
        _ => None,
    }
}
