//! An async client of the binary protocol (std, tokio), used by the CLI, `bench` and tests.
//!
//! One TCP connection, many requests in flight: each request gets an id, a writer task sends
//! frames, a reader task routes replies to their waiters by id. `&self` methods may be called
//! from many tasks at once. When the connection drops, every waiting call fails with
//! [`ClientError::Closed`]. The client trusts its broker only as far as the frame decoder
//! does: replies larger than [`MAX_REPLY_FRAME`] close the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outpost_firmware::{codec, AckMode, ErrorCode, Frame, Header, Record, SeqWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Opens the TCP connection (bounded by the connect timeout), Nagle off.
async fn tcp_connect(addr: &str) -> Result<TcpStream, ClientError> {
    let connect_err = |source| ClientError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
    stream.set_nodelay(true).map_err(connect_err)?;
    Ok(stream)
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Largest reply frame accepted.
pub const MAX_REPLY_FRAME: u32 = 16 << 20;
/// How long `connect` waits for TCP and the hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for the socket.
const SEND_QUEUE: usize = 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed.
    #[error("cannot reach broker at {addr} — is `outpost serve` running? ({source})")]
    Connect {
        /// Address tried.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection was closed (by the broker, or after a fatal error).
    #[error("the connection to the broker was closed")]
    Closed,
    /// The broker sent bytes that do not decode.
    #[error("protocol error: {0}")]
    Protocol(outpost_firmware::Error),
    /// The broker answered with a frame this call did not expect.
    #[error("unexpected reply from the broker: {0}")]
    Unexpected(&'static str),
    /// The broker refused the request.
    #[error("broker error {name} ({code}): {message}", name = code.name(), code = code.0)]
    Broker {
        /// Error code.
        code: ErrorCode,
        /// The broker's message.
        message: String,
    },
    /// A fetch asked for an offset outside `[start, end]`.
    #[error("offset out of range: the partition holds [{start}, {end}]")]
    OffsetOutOfRange {
        /// Log start offset.
        start: u64,
        /// Log end offset.
        end: u64,
    },
    /// The broker did not answer in time.
    #[error("timed out waiting for the broker")]
    Timeout,
    /// The bridge status the broker sent is not the JSON this client reads (a broker of
    /// another version?).
    #[error("the broker's bridge status does not parse: {0}")]
    BridgeStatusJson(#[source] serde_json::Error),
    /// The broker's device list is not the JSON this client expects.
    #[error("the broker's device list does not parse: {0}")]
    DevicesJson(#[source] serde_json::Error),
    /// The TLS settings cannot be used (a CA, certificate or key file).
    #[error("TLS: {0}")]
    TlsConfig(String),
    /// The TLS handshake with the broker failed.
    #[error("TLS handshake with {addr} failed: {source}")]
    Handshake {
        /// Address tried.
        addr: String,
        /// Why (rustls's alert or certificate error).
        #[source]
        source: std::io::Error,
    },
}

/// How to reach a broker's TLS listener: the CA to verify it with and, for mutual TLS,
/// this client's certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM file of the CA certificates the broker's certificate must chain to.
    pub ca_file: std::path::PathBuf,
    /// PEM certificate chain of this client (mutual TLS).
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
    /// The name the broker's certificate must carry; default: the host part of the address.
    pub server_name: Option<String>,
}

impl ClientTls {
    /// A connector for `addr` and the name the server's certificate must carry.
    pub fn connector(
        &self,
        addr: &str,
    ) -> Result<
        (
            tokio_rustls::TlsConnector,
            rustls::pki_types::ServerName<'static>,
        ),
        ClientError,
    > {
        let config = std::sync::Arc::new(self.config()?);
        let host = match &self.server_name {
            Some(name) => name.clone(),
            None => host_of(addr).to_owned(),
        };
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| ClientError::TlsConfig(format!("{host:?} is not a valid server name")))?;
        Ok((tokio_rustls::TlsConnector::from(config), name))
    }

    /// Builds the rustls configuration (the `ring` provider; shared with the bridge).
    fn config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let client_cert = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => {
                return Err(ClientError::TlsConfig(
                    "a client certificate needs both its certificate and its key file".to_owned(),
                ))
            }
        };
        outpost_bridge::tls::client_config(&self.ca_file, client_cert)
            .map_err(ClientError::TlsConfig)
    }
}

/// A reply frame, owned.
#[derive(Debug)]
struct Reply(Vec<u8>);

impl Reply {
    fn frame(&self) -> Frame<'_> {
        // The reader task decoded these exact bytes before routing them here.
        codec::decode_frame(&self.0, MAX_REPLY_FRAME)
            .ok()
            .flatten()
            .map(|(f, _)| f)
            .expect("reply bytes were validated by the reader task")
    }
}

/// Request id → waiter. `None` once the connection is closed: a call registering after that
/// fails at once instead of waiting for a reply that cannot come.
type Waiters = Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Reply>>>>>;

/// Registers a waiter for `id`, or fails when the connection is closed.
fn register(waiters: &Waiters, id: u32) -> Result<oneshot::Receiver<Reply>, ClientError> {
    let (tx, rx) = oneshot::channel();
    let mut w = waiters.lock().unwrap_or_else(|e| e.into_inner());
    w.as_mut().ok_or(ClientError::Closed)?.insert(id, tx);
    Ok(rx)
}

/// Marks the connection closed and fails every waiting call.
fn close(waiters: &Waiters) {
    waiters.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// A connected client.
pub struct Client {
    out: mpsc::Sender<Vec<u8>>,
    waiters: Waiters,
    next_id: AtomicU32,
    broker_time_ms: u64,
    max_frame_len: u32,
}

/// Where a produce landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Partition.
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Records stored.
    pub count: u32,
}

/// A fetch reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Log start offset.
    pub log_start: u64,
    /// High watermark (log end offset).
    pub high_watermark: u64,
    /// Whole batches; the first may start before the requested offset.
    pub batches: Vec<u8>,
}

/// A topic as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// `retention.ms`.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`.
    pub retention_bytes: Option<u64>,
    /// Codec.
    pub compression: outpost_firmware::Compression,
    /// Per partition: start, end, bytes, oldest timestamp.
    pub partition_info: Vec<outpost_firmware::PartitionInfo>,
}

/// A record to produce, owned by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Vec<u8>,
    /// Timestamp (the broker stamps it when `None`).
    pub timestamp_ms: Option<u64>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A user name and password for brokers that require a login.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects, says hello and, with `credentials`, logs in (`Authenticate`). A refused
    /// login is [`ClientError::Broker`] with `NOT_AUTHORIZED`.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Self, ClientError> {
        let client = Self::connect(addr, client_id).await?;
        if let Some(c) = credentials {
            client.authenticate(&c.user, c.password.as_bytes()).await?;
        }
        Ok(client)
    }

    /// Logs in with a user name and password.
    pub async fn authenticate(&self, user: &str, password: &[u8]) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::Authenticate {
            request_id: id,
            username: user,
            password,
        };
        let reply = tokio::time::timeout(CONNECT_TIMEOUT, self.call_raw(id, &frame))
            .await
            .map_err(|_| ClientError::Timeout)??;
        expect_done(reply)
    }

    /// Connects and says hello.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Self, ClientError> {
        let stream = tcp_connect(addr).await?;
        Self::hello(Self::start(stream), client_id).await
    }

    /// Connects to a TLS listener (`[wire.tls]`), verifies the broker's certificate, and
    /// says hello.
    pub async fn connect_tls(
        addr: &str,
        client_id: &str,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        let (connector, name) = tls.connector(addr)?;
        let tcp = tcp_connect(addr).await?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|source| ClientError::Handshake {
                addr: addr.to_owned(),
                source,
            })?;
        Self::hello(Self::start(stream), client_id).await
    }

    /// Sends `Hello` and reads the broker's answer.
    async fn hello(mut client: Self, client_id: &str) -> Result<Self, ClientError> {
        let hello = Frame::Hello {
            version: outpost_firmware::PROTOCOL_VERSION,
            client_id,
        };
        let reply = tokio::time::timeout(CONNECT_TIMEOUT, client.call_raw(0, &hello))
            .await
            .map_err(|_| ClientError::Timeout)??;
        match reply.frame() {
            Frame::HelloAck {
                broker_time_ms,
                max_frame_len,
                ..
            } => {
                client.broker_time_ms = broker_time_ms;
                client.max_frame_len = max_frame_len;
                Ok(client)
            }
            other => Err(refusal(&other)),
        }
    }

    fn start<S>(stream: S) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (rd, mut wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let on_write_error = waiters.clone();
        tokio::spawn(async move {
            // Coalesce queued frames into one write: one syscall for many small requests.
            let mut out = Vec::with_capacity(64 << 10);
            while let Some(bytes) = rx.recv().await {
                out.clear();
                out.extend_from_slice(&bytes);
                while out.len() < (256 << 10) {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                // Flush: a TLS stream holds records until flushed (a no-op on TCP).
                if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
                    close(&on_write_error);
                    return;
                }
            }
        });
        tokio::spawn(read_loop(rd, waiters.clone()));
        Self {
            out: tx,
            waiters,
            next_id: AtomicU32::new(1),
            broker_time_ms: 0,
            max_frame_len: codec::DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// The broker's clock at hello time (ms since the epoch).
    pub fn broker_time_ms(&self) -> u64 {
        self.broker_time_ms
    }

    /// The largest frame the broker accepts.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    fn next_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    async fn call_raw(&self, id: u32, frame: &Frame<'_>) -> Result<Reply, ClientError> {
        let mut bytes = Vec::new();
        codec::encode_frame_vec(frame, &mut bytes).map_err(ClientError::Protocol)?;
        let rx = register(&self.waiters, id)?;
        self.out
            .send(bytes)
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Sends a request built for a fresh id and waits for its reply.
    async fn call(&self, make: impl FnOnce(u32) -> Frame<'static>) -> Result<Reply, ClientError> {
        let id = self.next_id();
        self.call_raw(id, &make(id)).await
    }

    /// Produces `records` to `topic` (one partition: `partition`, or the records' common key,
    /// or round-robin). With `AckMode::Commit`, returns after the broker committed them.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: &[NewRecord],
        ack: AckMode,
    ) -> Result<Option<Ack>, ClientError> {
        self.send_produce(topic, partition, records, ack)
            .await?
            .wait()
            .await
    }

    /// Sends a produce and returns without waiting for its ack. Produces sent one after the
    /// other from one task are stored in that order; await each [`PendingAck`] for the result.
    pub async fn send_produce(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: &[NewRecord],
        ack: AckMode,
    ) -> Result<PendingAck, ClientError> {
        self.send_records(records, ack, |request_id, records| {
            encode(&Frame::Produce {
                request_id,
                topic,
                partition,
                ack,
                records,
            })
        })
        .await
    }

    /// Like [`send_produce`](Self::send_produce), to the topic a registered alias stands for
    /// (`ProduceAlias`).
    pub async fn send_produce_alias(
        &self,
        alias: u16,
        records: &[NewRecord],
        ack: AckMode,
    ) -> Result<PendingAck, ClientError> {
        self.send_records(records, ack, |request_id, records| {
            encode(&Frame::ProduceAlias {
                request_id,
                alias,
                ack,
                records,
            })
        })
        .await
    }

    /// Lets `alias` stand for `topic` (and `partition`) on this connection.
    pub async fn register_alias(
        &self,
        alias: u16,
        topic: &str,
        partition: Option<u32>,
    ) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::RegisterAlias {
            request_id: id,
            alias,
            topic,
            partition,
        };
        expect_done(self.call_raw(id, &frame).await?)
    }

    async fn send_records(
        &self,
        records: &[NewRecord],
        ack: AckMode,
        frame: impl FnOnce(u32, outpost_firmware::Records<'_>) -> Result<Vec<u8>, ClientError>,
    ) -> Result<PendingAck, ClientError> {
        let mut buf = vec![0u8; encoded_estimate(records)];
        let records = encode_records(records, &mut buf)?;
        let id = self.next_id();
        let bytes = frame(id, records)?;
        let rx = match ack {
            AckMode::Commit => Some(register(&self.waiters, id)?),
            AckMode::None => None,
        };
        self.out
            .send(bytes)
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(PendingAck(rx))
    }

    /// Fetches batches from `offset`, waiting up to `max_wait_ms` for data at the end.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<Fetched, ClientError> {
        let id = self.next_id();
        let frame = Frame::Fetch {
            request_id: id,
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        };
        let reply = self.call_raw(id, &frame).await?;
        match reply.frame() {
            Frame::FetchResult {
                log_start,
                high_watermark,
                batches,
                ..
            } => Ok(Fetched {
                log_start,
                high_watermark,
                batches: batches.to_vec(),
            }),
            Frame::OffsetOutOfRange { start, end, .. } => {
                Err(ClientError::OffsetOutOfRange { start, end })
            }
            other => Err(refusal(&other)),
        }
    }

    /// Creates a topic.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
        compression: outpost_firmware::Compression,
    ) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::CreateTopic {
            request_id: id,
            name,
            partitions,
            retention_ms,
            retention_bytes,
            compression,
        };
        expect_done(self.call_raw(id, &frame).await?)
    }

    /// Deletes a topic with its records and group offsets.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::DeleteTopic {
            request_id: id,
            name,
        };
        expect_done(self.call_raw(id, &frame).await?)
    }

    /// Names of all topics.
    pub async fn list_topics(&self) -> Result<Vec<String>, ClientError> {
        let reply = self.call(|id| Frame::ListTopics { request_id: id }).await?;
        match reply.frame() {
            Frame::TopicList { names, .. } => names
                .iter()
                .map(|n| n.map(str::to_owned).map_err(ClientError::Protocol))
                .collect(),
            other => Err(refusal(&other)),
        }
    }

    /// A topic's configuration and partitions.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        let id = self.next_id();
        let frame = Frame::DescribeTopic {
            request_id: id,
            name,
        };
        let reply = self.call_raw(id, &frame).await?;
        match reply.frame() {
            Frame::TopicInfo {
                name,
                partitions,
                retention_ms,
                retention_bytes,
                compression,
                partition_info,
                ..
            } => Ok(TopicInfo {
                name: name.to_owned(),
                partitions,
                retention_ms,
                retention_bytes,
                compression,
                partition_info: partition_info
                    .iter()
                    .collect::<Result<_, _>>()
                    .map_err(ClientError::Protocol)?,
            }),
            other => Err(refusal(&other)),
        }
    }

    /// Commits `offset` as the next offset `group` reads from `topic`/`partition`.
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::CommitOffset {
            request_id: id,
            group,
            topic,
            partition,
            offset,
        };
        expect_done(self.call_raw(id, &frame).await?)
    }

    /// The committed offset of `group`, if any.
    pub async fn fetch_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ClientError> {
        let id = self.next_id();
        let frame = Frame::FetchOffset {
            request_id: id,
            group,
            topic,
            partition,
        };
        match self.call_raw(id, &frame).await?.frame() {
            Frame::OffsetResult { offset, .. } => Ok(offset),
            other => Err(refusal(&other)),
        }
    }

    /// The status of every bridge the broker runs, in configuration order (empty when none
    /// is configured).
    pub async fn bridge_status(&self) -> Result<Vec<outpost_bridge::BridgeStatus>, ClientError> {
        let reply = self
            .call(|id| Frame::BridgeStatus { request_id: id })
            .await?;
        match reply.frame() {
            Frame::BridgeStatusReply { json, .. } => {
                serde_json::from_str(json).map_err(ClientError::BridgeStatusJson)
            }
            other => Err(refusal(&other)),
        }
    }

    /// Stores a device's config (encoded [`outpost_firmware::DeviceConfig`] bytes; version 0
    /// takes the next one) and returns the device as the broker now has it (JSON object).
    pub async fn set_device(
        &self,
        device_id: &str,
        config: &[u8],
    ) -> Result<serde_json::Value, ClientError> {
        let id = self.next_id();
        let frame = Frame::SetDevice {
            request_id: id,
            device_id,
            config,
        };
        let reply = self.call_raw(id, &frame).await?;
        first_device(devices_json(&reply)?)
    }

    /// Sets a device's token, or removes it with `None`.
    pub async fn set_device_token(
        &self,
        device_id: &str,
        token: Option<&[u8]>,
    ) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::SetDeviceToken {
            request_id: id,
            device_id,
            token,
        };
        expect_done(self.call_raw(id, &frame).await?)
    }

    /// Forgets a device.
    pub async fn delete_device(&self, device_id: &str) -> Result<(), ClientError> {
        let id = self.next_id();
        let frame = Frame::DeleteDevice {
            request_id: id,
            device_id,
        };
        expect_done(self.call_raw(id, &frame).await?)
    }

    /// Devices as the broker reports them (JSON objects: config, token set, last seen,
    /// address, reported config version, sleep hint); one when `device_id` is given.
    pub async fn get_devices(
        &self,
        device_id: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        let id = self.next_id();
        let frame = Frame::GetDevices {
            request_id: id,
            device_id,
        };
        devices_json(&self.call_raw(id, &frame).await?)
    }

    /// Round trip to the broker.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self
            .call(|id| Frame::Ping { request_id: id })
            .await?
            .frame()
        {
            Frame::Pong { .. } => Ok(()),
            other => Err(refusal(&other)),
        }
    }
}

/// A frame's bytes, length prefix included.
fn encode(frame: &Frame<'_>) -> Result<Vec<u8>, ClientError> {
    let mut bytes = Vec::new();
    codec::encode_frame_vec(frame, &mut bytes).map_err(ClientError::Protocol)?;
    Ok(bytes)
}

/// The devices of a `DevicesReply`.
fn devices_json(reply: &Reply) -> Result<Vec<serde_json::Value>, ClientError> {
    match reply.frame() {
        Frame::DevicesReply { json, .. } => {
            serde_json::from_str(json).map_err(ClientError::DevicesJson)
        }
        other => Err(refusal(&other)),
    }
}

fn first_device(mut devices: Vec<serde_json::Value>) -> Result<serde_json::Value, ClientError> {
    match devices.len() {
        1 => Ok(devices.remove(0)),
        _ => Err(ClientError::Protocol(outpost_firmware::Error::Malformed)),
    }
}

/// A produce on its way; [`PendingAck::wait`] gives its ack (`None` for fire-and-forget).
#[derive(Debug)]
pub struct PendingAck(Option<oneshot::Receiver<Reply>>);

impl PendingAck {
    /// Waits for the broker's answer.
    pub async fn wait(self) -> Result<Option<Ack>, ClientError> {
        let Some(rx) = self.0 else { return Ok(None) };
        let reply = rx.await.map_err(|_| ClientError::Closed)?;
        match reply.frame() {
            Frame::Ack {
                partition,
                base_offset,
                count,
                ..
            } => Ok(Some(Ack {
                partition,
                base_offset,
                count,
            })),
            other => Err(refusal(&other)),
        }
    }
}

fn expect_done(reply: Reply) -> Result<(), ClientError> {
    match reply.frame() {
        Frame::Done { .. } => Ok(()),
        other => Err(refusal(&other)),
    }
}

/// The error a non-matching reply stands for.
fn refusal(frame: &Frame<'_>) -> ClientError {
    match frame {
        Frame::Error { code, message, .. } => ClientError::Broker {
            code: *code,
            message: (*message).to_owned(),
        },
        Frame::OffsetOutOfRange { start, end, .. } => ClientError::OffsetOutOfRange {
            start: *start,
            end: *end,
        },
        _ => ClientError::Unexpected("a reply of another kind"),
    }
}

fn encoded_estimate(records: &[NewRecord]) -> usize {
    let per = |r: &NewRecord| {
        let headers: usize = r.headers.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
        r.key.as_ref().map_or(0, Vec::len) + r.value.len() + headers + 32
    };
    records.iter().map(per).sum::<usize>() + 16
}

fn encode_records<'b>(
    records: &[NewRecord],
    buf: &'b mut [u8],
) -> Result<outpost_firmware::Records<'b>, ClientError> {
    let mut hbuf = Vec::new();
    let mut w = SeqWriter::new(buf);
    for r in records {
        hbuf.clear();
        hbuf.resize(
            r.headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 10)
                .sum::<usize>()
                + 8,
            0,
        );
        let mut hw = SeqWriter::new(&mut hbuf);
        for (k, v) in &r.headers {
            hw.push(&Header { key: k, value: v })
                .map_err(ClientError::Protocol)?;
        }
        let headers = hw.finish().map_err(ClientError::Protocol)?;
        let rec = Record {
            timestamp_ms: r.timestamp_ms,
            key: r.key.as_deref(),
            value: &r.value,
            headers,
        };
        w.push(&rec).map_err(ClientError::Protocol)?;
    }
    w.finish().map_err(ClientError::Protocol)
}

async fn read_loop<R: tokio::io::AsyncRead>(rd: tokio::io::ReadHalf<R>, waiters: Waiters) {
    let mut rd = rd;
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let mut at = 0;
        loop {
            match codec::decode_frame(&buf[at..], MAX_REPLY_FRAME) {
                Ok(Some((frame, used))) => {
                    route(&frame, &buf[at..at + used], &waiters);
                    at += used;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = ?e, "undecodable reply from the broker; closing");
                    close(&waiters);
                    return;
                }
            }
        }
        // Drop the decoded frames once per read, not once per frame.
        buf.drain(..at);
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                close(&waiters);
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn route(frame: &Frame<'_>, bytes: &[u8], waiters: &Waiters) {
    let id = match frame {
        Frame::HelloAck { .. } => 0,
        f => f.request_id().unwrap_or(0),
    };
    let mut w = waiters.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = w.as_mut().and_then(|w| w.remove(&id)) {
        let _ = tx.send(Reply(bytes.to_vec()));
    } else if let Frame::Error { code, message, .. } = frame {
        tracing::warn!(code = code.0, message, "broker error");
    }
}
