//! [`Frame`]: every message of the binary protocol, borrowed from the bytes it was decoded
//! from. This module defines the frames and their wire format; `codec` adds the length prefix
//! and does the decoding checks. It does no I/O and holds no session state.
//!
//! # Wire format, byte by byte
//!
//! A frame on a stream is
//!
//! ```text
//! varint u32 body_len | body (body_len bytes)
//! ```
//!
//! The body is the [postcard] encoding of [`Frame`], and must be consumed exactly: bytes left
//! over inside a body make the frame malformed. Postcard's encoding of the types used here:
//!
//! | type | bytes |
//! | --- | --- |
//! | `u16`, `u32`, `u64` | unsigned LEB128 varint: 7 bits per byte, least significant first, high bit set on all but the last byte (`300` = `ac 02`); at most 3, 5, 10 bytes |
//! | `Option<T>` | `00` for `None`; `01` then `T` for `Some` |
//! | `&str`, `&[u8]` | varint length, then the bytes (UTF-8 for `&str`) |
//! | enum | varint discriminant (the variant's position, from 0), then the variant's fields |
//! | struct | its fields in declaration order, nothing else |
//! | [`ErrorCode`] | varint `u16` |
//! | [`Seq<T>`](crate::Seq) | a byte string whose content is a varint count, then `count` encoded `T`s |
//!
//! So `Frame::Ping { request_id: 300 }` is `03 12 ac 02`: body length 3, discriminant 18,
//! then `300`. The body begins with the frame discriminant:
//!
//! | disc | frame | fields, in wire order |
//! | --- | --- | --- |
//! | 0 | `Hello` | `version` u16, `client_id` str |
//! | 1 | `HelloAck` | `version` u16, `broker_time_ms` u64, `max_frame_len` u32 |
//! | 2 | `Produce` | `request_id` u32, `topic` str, `partition` Option u32, `ack` [`AckMode`], `records` Seq of [`Record`](crate::Record) |
//! | 3 | `Ack` | `request_id` u32, `partition` u32, `base_offset` u64, `count` u32 |
//! | 4 | `Error` | `request_id` u32, `code` [`ErrorCode`], `message` str |
//! | 5 | `OffsetOutOfRange` | `request_id` u32, `partition` u32, `start` u64, `end` u64 |
//! | 6 | `Fetch` | `request_id` u32, `topic` str, `partition` u32, `offset` u64, `max_bytes` u32, `max_wait_ms` u32 |
//! | 7 | `FetchResult` | `request_id` u32, `partition` u32, `log_start` u64, `high_watermark` u64, `batches` bytes |
//! | 8 | `CommitOffset` | `request_id` u32, `group` str, `topic` str, `partition` u32, `offset` u64 |
//! | 9 | `FetchOffset` | `request_id` u32, `group` str, `topic` str, `partition` u32 |
//! | 10 | `OffsetResult` | `request_id` u32, `offset` Option u64 |
//! | 11 | `CreateTopic` | `request_id` u32, `name` str, `partitions` u32, `retention_ms` Option u64, `retention_bytes` Option u64, `compression` [`Compression`] |
//! | 12 | `DeleteTopic` | `request_id` u32, `name` str |
//! | 13 | `ListTopics` | `request_id` u32 |
//! | 14 | `TopicList` | `request_id` u32, `names` Seq of str |
//! | 15 | `DescribeTopic` | `request_id` u32, `name` str |
//! | 16 | `TopicInfo` | `request_id` u32, `name` str, `partitions` u32, `retention_ms` Option u64, `retention_bytes` Option u64, `compression` [`Compression`], `partition_info` Seq of [`PartitionInfo`] |
//! | 17 | `Done` | `request_id` u32 |
//! | 18 | `Ping` | `request_id` u32 |
//! | 19 | `Pong` | `request_id` u32 |
//! | 20 | `BridgeStatus` | `request_id` u32 |
//! | 21 | `BridgeStatusReply` | `request_id` u32, `json` str |
//! | 22 | `Authenticate` | `request_id` u32, `username` str, `password` bytes |
//! | 23 | `DeviceHello` | `version` u16, `device_id` str, `token` bytes, `config_version` Option u32 |
//! | 24 | `DeviceHelloAck` | `version` u16, `broker_time_ms` u64, `max_frame_len` u32, `config` Option bytes |
//! | 25 | `RegisterAlias` | `request_id` u32, `alias` u16, `topic` str, `partition` Option u32 |
//! | 26 | `ProduceAlias` | `request_id` u32, `alias` u16, `ack` [`AckMode`], `records` Seq of [`Record`](crate::Record) |
//! | 27 | `Reading` | `request_id` u32, `alias` u16, `value` bytes |
//! | 28 | `ConfigRequest` | `request_id` u32 |
//! | 29 | `ConfigReply` | `request_id` u32, `config` Option bytes |
//! | 30 | `Sleep` | `request_id` u32, `duration_ms` u32 |
//! | 31 | `Datagram` | `device_id` str, `token` bytes, `body` bytes |
//! | 32 | `SetDevice` | `request_id` u32, `device_id` str, `config` bytes |
//! | 33 | `SetDeviceToken` | `request_id` u32, `device_id` str, `token` Option bytes |
//! | 34 | `DeleteDevice` | `request_id` u32, `device_id` str |
//! | 35 | `GetDevices` | `request_id` u32, `device_id` Option str |
//! | 36 | `DevicesReply` | `request_id` u32, `json` str |
//!
//! Nested enums: [`AckMode`] is `00` None, `01` Commit; [`Compression`] is `00` None, `01`
//! Gzip, `02` Snappy, `03` Lz4, `04` Zstd. [`PartitionInfo`] is `partition` u32,
//! `start_offset` u64, `end_offset` u64, `bytes` u64, `oldest_timestamp_ms` Option u64. The
//! record and header layouts are in [`record`](crate::record). `BridgeStatusReply.json` is
//! opaque text to this crate: a JSON array whose objects are defined by the broker's
//! `outpost_bridge::BridgeStatus`.
//!
//! The order of variants and fields is the format: golden-bytes tests freeze it. New frames
//! are added at the end; a receiver answers a discriminant it does not know with an `Error`
//! frame (`UNEXPECTED_FRAME` or `MALFORMED_FRAME`), never by closing silently.
//!
//! # Conversation
//!
//! The client sends `Hello` first and the broker answers `HelloAck` (with its clock, for devices
//! without an RTC, and the largest frame it accepts). Every later request carries a
//! `request_id` chosen by the client (non-zero); the reply carries the same id. `Error` with
//! `request_id` 0 concerns the connection, not a request.
//!
//! A broker that requires a login answers every request but `Ping` with `Error`
//! `NOT_AUTHORIZED` until an `Authenticate` succeeded (answered `Done`; a wrong user name or
//! password is `Error` `NOT_AUTHORIZED`, and the connection stays open for another try).
//! Requests its access rules refuse get the same error; the connection stays usable.
//!
//! # Devices
//!
//! A sensor says `DeviceHello` instead of `Hello`: its device id, its token (empty when it
//! has none) and the version of the [`DeviceConfig`](crate::DeviceConfig) it keeps in flash
//! (`None` when it has none). The broker checks the token against the one set with
//! `outpost devices token`, then answers `DeviceHelloAck` with its clock and, when its stored
//! config is newer than the device's, the config's encoded bytes (what the device writes to
//! flash as they are). A wrong token is `Error` `NOT_AUTHORIZED` and the connection closes.
//!
//! Topic aliases keep readings short: an alias is a `u16` standing for a log topic (and
//! optionally a partition) on this connection. The aliases of the device's stored config are
//! defined from the hello on; `RegisterAlias` adds or replaces one (answered `Done`). A
//! connection's aliases die with it: after a reconnect the device registers them again.
//! `Reading` is the smallest produce: one value for an alias, stamped with the broker's clock;
//! `request_id` 0 asks for no reply, any other id for `Done` once it is committed.
//! `ProduceAlias` is `Produce` on an alias, with keys, timestamps, headers and batches. An
//! alias the connection does not know is answered `Error` `UNKNOWN_ALIAS` even when no ack
//! was asked for: the device and the broker disagree, and readings would be lost silently.
//! Over TCP every failed `Reading` or `ProduceAlias` is answered so (an ACL refusal, a
//! failed append too), with the request's id, 0 for a fire-and-forget `Reading`; over UDP
//! nothing is answered unless a reply was asked for. A broker keeps the messages of the
//! errors it sends devices short (well under 90 bytes): device receive buffers are small.
//!
//! `ConfigRequest` asks for the stored config at any time (`ConfigReply`, `None` when there
//! is none). `Sleep` tells the broker when the device will be back (shown by `outpost devices`;
//! answered `Done` unless `request_id` is 0).
//!
//! Over UDP each datagram is one `Datagram` frame body (no length prefix) wrapping one request
//! body: `Reading`, `ProduceAlias` or `Sleep` on the aliases of the device's stored config.
//! The reply, when one is asked for, is one frame body in one datagram (`Done`, `Ack` or
//! `Error`). `SetDevice`, `SetDeviceToken`, `DeleteDevice` and `GetDevices` are the admin
//! frames of `outpost devices`; `DevicesReply.json` is opaque text to this crate.

use serde::{Deserialize, Serialize};

use crate::{Error, ErrorCode, Records, Seq};

/// One message of the binary protocol. Variant order is the wire discriminant: see the module
/// docs, and never reorder.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Client → broker, first frame on a connection.
    Hello {
        /// The protocol version the client speaks ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
        version: u16,
        /// A name for the device or tool, for logs and metrics.
        client_id: &'a str,
    },
    /// Broker → client, the answer to `Hello`.
    HelloAck {
        /// The protocol version the broker speaks.
        version: u16,
        /// The broker's clock, milliseconds since the Unix epoch.
        broker_time_ms: u64,
        /// The largest frame body the broker accepts, in bytes.
        max_frame_len: u32,
    },
    /// Client → broker: append records to one partition of a topic.
    Produce {
        /// Echoed in the reply.
        request_id: u32,
        /// The log topic.
        topic: &'a str,
        /// The partition; `None` lets the broker choose (by key, else round-robin).
        partition: Option<u32>,
        /// Whether and when the broker replies.
        ack: AckMode,
        /// The records, appended in order as one contiguous offset range.
        #[serde(borrow)]
        records: Records<'a>,
    },
    /// Broker → client: a `Produce` was committed; record `i` got offset `base_offset + i`.
    Ack {
        /// The produce's id.
        request_id: u32,
        /// The partition the records went to.
        partition: u32,
        /// The offset of the first record.
        base_offset: u64,
        /// How many records were appended.
        count: u32,
    },
    /// Broker → client: a request failed, or (with `request_id` 0) the connection has a problem.
    Error {
        /// The failed request's id, or 0 when not tied to a request.
        request_id: u32,
        /// Why it failed.
        code: ErrorCode,
        /// A human-readable explanation.
        message: &'a str,
    },
    /// Broker → client: a `Fetch` asked for an offset outside `start..end`.
    OffsetOutOfRange {
        /// The fetch's id.
        request_id: u32,
        /// The partition fetched.
        partition: u32,
        /// The partition's first offset still stored.
        start: u64,
        /// The partition's next offset to be written.
        end: u64,
    },
    /// Client → broker: read record batches from an offset.
    Fetch {
        /// Echoed in the reply.
        request_id: u32,
        /// The log topic.
        topic: &'a str,
        /// The partition.
        partition: u32,
        /// The first offset wanted.
        offset: u64,
        /// A soft limit on the reply's batch bytes (at least one batch is returned).
        max_bytes: u32,
        /// How long the broker may wait for data when none is there; 0 answers at once.
        max_wait_ms: u32,
    },
    /// Broker → client: the answer to `Fetch`.
    FetchResult {
        /// The fetch's id.
        request_id: u32,
        /// The partition read.
        partition: u32,
        /// The partition's first offset still stored.
        log_start: u64,
        /// The partition's next offset to be written.
        high_watermark: u64,
        /// Concatenated Kafka RecordBatch v2 bytes, opaque to this crate; may be empty.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        batches: &'a [u8],
    },
    /// Client → broker: store a consumer group's next offset to read.
    CommitOffset {
        /// Echoed in the reply (`Done`).
        request_id: u32,
        /// The consumer group.
        group: &'a str,
        /// The log topic.
        topic: &'a str,
        /// The partition.
        partition: u32,
        /// The next offset the group reads.
        offset: u64,
    },
    /// Client → broker: read a consumer group's committed offset.
    FetchOffset {
        /// Echoed in the reply (`OffsetResult`).
        request_id: u32,
        /// The consumer group.
        group: &'a str,
        /// The log topic.
        topic: &'a str,
        /// The partition.
        partition: u32,
    },
    /// Broker → client: the answer to `FetchOffset`.
    OffsetResult {
        /// The request's id.
        request_id: u32,
        /// The committed offset, `None` when the group never committed one.
        offset: Option<u64>,
    },
    /// Client → broker: create a topic.
    CreateTopic {
        /// Echoed in the reply (`Done`).
        request_id: u32,
        /// The topic name.
        name: &'a str,
        /// The number of partitions.
        partitions: u32,
        /// Delete batches older than this; `None` keeps them.
        retention_ms: Option<u64>,
        /// Delete the oldest batches beyond this many bytes per partition; `None`: no limit.
        retention_bytes: Option<u64>,
        /// How stored batches are compressed.
        compression: Compression,
    },
    /// Client → broker: delete a topic, its records and its group offsets.
    DeleteTopic {
        /// Echoed in the reply (`Done`).
        request_id: u32,
        /// The topic name.
        name: &'a str,
    },
    /// Client → broker: list topic names.
    ListTopics {
        /// Echoed in the reply (`TopicList`).
        request_id: u32,
    },
    /// Broker → client: the answer to `ListTopics`.
    TopicList {
        /// The request's id.
        request_id: u32,
        /// The topic names.
        #[serde(borrow)]
        names: Seq<'a, &'a str>,
    },
    /// Client → broker: describe one topic.
    DescribeTopic {
        /// Echoed in the reply (`TopicInfo`).
        request_id: u32,
        /// The topic name.
        name: &'a str,
    },
    /// Broker → client: the answer to `DescribeTopic`.
    TopicInfo {
        /// The request's id.
        request_id: u32,
        /// The topic name.
        name: &'a str,
        /// The number of partitions.
        partitions: u32,
        /// See `CreateTopic`.
        retention_ms: Option<u64>,
        /// See `CreateTopic`.
        retention_bytes: Option<u64>,
        /// See `CreateTopic`.
        compression: Compression,
        /// One entry per partition.
        #[serde(borrow)]
        partition_info: Seq<'a, PartitionInfo>,
    },
    /// Broker → client: a `CreateTopic`, `DeleteTopic` or `CommitOffset` succeeded.
    Done {
        /// The request's id.
        request_id: u32,
    },
    /// Either way: ask for a `Pong`.
    Ping {
        /// Echoed in the `Pong`.
        request_id: u32,
    },
    /// Either way: the answer to `Ping`.
    Pong {
        /// The ping's id.
        request_id: u32,
    },
    /// Client → broker: the status of every upstream bridge.
    BridgeStatus {
        /// Echoed in the reply (`BridgeStatusReply`).
        request_id: u32,
    },
    /// Broker → client: the answer to `BridgeStatus`.
    BridgeStatusReply {
        /// The request's id.
        request_id: u32,
        /// A JSON array with one object per configured bridge, in configuration order (`[]`
        /// when none is). The objects' schema is the broker's `outpost_bridge::BridgeStatus`;
        /// this crate does not parse the text.
        json: &'a str,
    },
    /// Client → broker: log in with a user name and password (answered `Done`, or `Error`
    /// `NOT_AUTHORIZED`).
    Authenticate {
        /// Echoed in the reply.
        request_id: u32,
        /// The user name.
        username: &'a str,
        /// The password (or device token), any bytes.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        password: &'a [u8],
    },
    /// Device → broker, the first frame of a sensor (instead of `Hello`).
    DeviceHello {
        /// The protocol version the device speaks.
        version: u16,
        /// The device's id, as set with `outpost devices set`.
        device_id: &'a str,
        /// The device's token; empty when it has none.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        token: &'a [u8],
        /// The version of the config the device holds; `None` when it holds none.
        config_version: Option<u32>,
    },
    /// Broker → device, the answer to `DeviceHello`.
    DeviceHelloAck {
        /// The protocol version the broker speaks.
        version: u16,
        /// The broker's clock, milliseconds since the Unix epoch.
        broker_time_ms: u64,
        /// The largest frame body the broker accepts, in bytes.
        max_frame_len: u32,
        /// The device's stored config ([`DeviceConfig`](crate::DeviceConfig) bytes) when it
        /// is newer than the device's; `None` otherwise.
        #[serde(borrow, serialize_with = "crate::bytes::serialize_opt")]
        config: Option<&'a [u8]>,
    },
    /// Client → broker: let `alias` stand for `topic` (and `partition`) on this connection.
    RegisterAlias {
        /// Echoed in the reply (`Done`).
        request_id: u32,
        /// The alias.
        alias: u16,
        /// The log topic.
        topic: &'a str,
        /// The partition; `None` lets the broker choose per produce (by key, else
        /// round-robin).
        partition: Option<u32>,
    },
    /// Client → broker: `Produce` to the topic an alias stands for.
    ProduceAlias {
        /// Echoed in the reply.
        request_id: u32,
        /// The alias.
        alias: u16,
        /// Whether and when the broker replies.
        ack: AckMode,
        /// The records, appended in order as one contiguous offset range.
        #[serde(borrow)]
        records: Records<'a>,
    },
    /// Client → broker: one value for an alias, stamped with the broker's clock.
    Reading {
        /// 0: no reply; otherwise echoed in `Done` once committed (or in `Error`).
        request_id: u32,
        /// The alias.
        alias: u16,
        /// The value.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        value: &'a [u8],
    },
    /// Device → broker: send my stored config (`ConfigReply`).
    ConfigRequest {
        /// Echoed in the reply.
        request_id: u32,
    },
    /// Broker → device: the answer to `ConfigRequest`.
    ConfigReply {
        /// The request's id.
        request_id: u32,
        /// The stored [`DeviceConfig`](crate::DeviceConfig) bytes; `None` when none is stored.
        #[serde(borrow, serialize_with = "crate::bytes::serialize_opt")]
        config: Option<&'a [u8]>,
    },
    /// Device → broker: I will be back within `duration_ms` (a hint, not a promise).
    Sleep {
        /// 0: no reply; otherwise echoed in `Done`.
        request_id: u32,
        /// How long the device sleeps, in milliseconds.
        duration_ms: u32,
    },
    /// Device → broker over UDP: one request on behalf of a device, without a connection.
    Datagram {
        /// The device's id.
        device_id: &'a str,
        /// The device's token; empty when it has none.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        token: &'a [u8],
        /// One frame body (no length prefix): `Reading`, `ProduceAlias` or `Sleep`.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        body: &'a [u8],
    },
    /// Admin → broker: store a device's config (answered `DevicesReply` with the device).
    SetDevice {
        /// Echoed in the reply.
        request_id: u32,
        /// The device id.
        device_id: &'a str,
        /// [`DeviceConfig`](crate::DeviceConfig) bytes; a `version` of 0 asks the broker to
        /// take the stored version plus one.
        #[serde(borrow, serialize_with = "crate::bytes::serialize")]
        config: &'a [u8],
    },
    /// Admin → broker: set or clear a device's token (answered `Done`).
    SetDeviceToken {
        /// Echoed in the reply.
        request_id: u32,
        /// The device id.
        device_id: &'a str,
        /// The new token; `None` removes it.
        #[serde(borrow, serialize_with = "crate::bytes::serialize_opt")]
        token: Option<&'a [u8]>,
    },
    /// Admin → broker: forget a device (answered `Done`).
    DeleteDevice {
        /// Echoed in the reply.
        request_id: u32,
        /// The device id.
        device_id: &'a str,
    },
    /// Admin → broker: one device, or all of them (answered `DevicesReply`).
    GetDevices {
        /// Echoed in the reply.
        request_id: u32,
        /// The device id; `None` for every device.
        device_id: Option<&'a str>,
    },
    /// Broker → admin: devices as a JSON array (schema owned by the broker).
    DevicesReply {
        /// The request's id.
        request_id: u32,
        /// The JSON text.
        json: &'a str,
    },
}

/// The number of frame variants: the discriminants this version knows are `0..FRAME_KINDS`.
pub(crate) const FRAME_KINDS: u32 = 37;

impl Frame<'_> {
    /// The id of the request this frame is or answers. `None` for `Hello` and `HelloAck`,
    /// and for an `Error` with `request_id` 0 (a connection-level error).
    pub fn request_id(&self) -> Option<u32> {
        use Frame as F;
        match *self {
            F::Hello { .. }
            | F::HelloAck { .. }
            | F::DeviceHello { .. }
            | F::DeviceHelloAck { .. }
            | F::Datagram { .. }
            | F::Error { request_id: 0, .. } => None,
            F::Produce { request_id, .. }
            | F::Ack { request_id, .. }
            | F::Error { request_id, .. }
            | F::OffsetOutOfRange { request_id, .. }
            | F::Fetch { request_id, .. }
            | F::FetchResult { request_id, .. }
            | F::CommitOffset { request_id, .. }
            | F::FetchOffset { request_id, .. }
            | F::OffsetResult { request_id, .. }
            | F::CreateTopic { request_id, .. }
            | F::DeleteTopic { request_id, .. }
            | F::ListTopics { request_id }
            | F::TopicList { request_id, .. }
            | F::DescribeTopic { request_id, .. }
            | F::TopicInfo { request_id, .. }
            | F::Done { request_id }
            | F::Ping { request_id }
            | F::Pong { request_id }
            | F::BridgeStatus { request_id }
            | F::BridgeStatusReply { request_id, .. }
            | F::Authenticate { request_id, .. }
            | F::RegisterAlias { request_id, .. }
            | F::ProduceAlias { request_id, .. }
            | F::Reading { request_id, .. }
            | F::ConfigRequest { request_id }
            | F::ConfigReply { request_id, .. }
            | F::Sleep { request_id, .. }
            | F::SetDevice { request_id, .. }
            | F::SetDeviceToken { request_id, .. }
            | F::DeleteDevice { request_id, .. }
            | F::GetDevices { request_id, .. }
            | F::DevicesReply { request_id, .. } => Some(request_id),
        }
    }

    /// The variant's name (`"Produce"`), for logs and error messages.
    pub fn name(&self) -> &'static str {
        use Frame as F;
        match self {
            F::Hello { .. } => "Hello",
            F::HelloAck { .. } => "HelloAck",
            F::Produce { .. } => "Produce",
            F::Ack { .. } => "Ack",
            F::Error { .. } => "Error",
            F::OffsetOutOfRange { .. } => "OffsetOutOfRange",
            F::Fetch { .. } => "Fetch",
            F::FetchResult { .. } => "FetchResult",
            F::CommitOffset { .. } => "CommitOffset",
            F::FetchOffset { .. } => "FetchOffset",
            F::OffsetResult { .. } => "OffsetResult",
            F::CreateTopic { .. } => "CreateTopic",
            F::DeleteTopic { .. } => "DeleteTopic",
            F::ListTopics { .. } => "ListTopics",
            F::TopicList { .. } => "TopicList",
            F::DescribeTopic { .. } => "DescribeTopic",
            F::TopicInfo { .. } => "TopicInfo",
            F::Done { .. } => "Done",
            F::Ping { .. } => "Ping",
            F::Pong { .. } => "Pong",
            F::BridgeStatus { .. } => "BridgeStatus",
            F::BridgeStatusReply { .. } => "BridgeStatusReply",
            F::Authenticate { .. } => "Authenticate",
            F::DeviceHello { .. } => "DeviceHello",
            F::DeviceHelloAck { .. } => "DeviceHelloAck",
            F::RegisterAlias { .. } => "RegisterAlias",
            F::ProduceAlias { .. } => "ProduceAlias",
            F::Reading { .. } => "Reading",
            F::ConfigRequest { .. } => "ConfigRequest",
            F::ConfigReply { .. } => "ConfigReply",
            F::Sleep { .. } => "Sleep",
            F::Datagram { .. } => "Datagram",
            F::SetDevice { .. } => "SetDevice",
            F::SetDeviceToken { .. } => "SetDeviceToken",
            F::DeleteDevice { .. } => "DeleteDevice",
            F::GetDevices { .. } => "GetDevices",
            F::DevicesReply { .. } => "DevicesReply",
        }
    }

    /// Decodes every sequence the frame carries (records with their headers, topic names,
    /// partition infos) and checks each is well-formed. Decoding a frame does not do this;
    /// a receiver that wants all-or-nothing handling calls it before acting.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Frame::Produce { records, .. } | Frame::ProduceAlias { records, .. } => {
                records.validate_all()
            }
            Frame::TopicList { names, .. } => names.validate(),
            Frame::TopicInfo { partition_info, .. } => partition_info.validate(),
            _ => Ok(()),
        }
    }
}

/// Whether the broker answers a `Produce`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// Fire-and-forget: no reply, not even on error.
    None,
    /// Reply with `Ack` once the records are committed (durable per the broker's settings),
    /// or with `Error`.
    Commit,
}

/// How a topic's stored batches are compressed. Variant order matches Kafka's codec ids.
///
/// The one codec type of the whole project: the wire, the log's batches and the configuration
/// file (where it is written in lower case: `"zstd"`). postcard encodes the variant index, so
/// the serde names do not affect the wire format.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed (Kafka id 0).
    #[default]
    None,
    /// gzip (Kafka id 1).
    Gzip,
    /// Snappy, Kafka's xerial framing (Kafka id 2).
    Snappy,
    /// LZ4 frame format (Kafka id 3).
    Lz4,
    /// Zstandard (Kafka id 4).
    Zstd,
}

impl Compression {
    /// Kafka's codec id, the low three bits of a RecordBatch's attributes.
    pub const fn kafka_id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with Kafka id `id`, or `None` for an id Kafka does not define.
    pub const fn from_kafka_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Lower-case name, as Kafka's `compression.type` and our configuration file write it.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl core::fmt::Display for Compression {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One partition of a topic, as `TopicInfo` reports it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: u32,
    /// The first offset still stored.
    pub start_offset: u64,
    /// The next offset to be written.
    pub end_offset: u64,
    /// Stored batch bytes.
    pub bytes: u64,
    /// The oldest stored record's timestamp; `None` when the partition is empty.
    pub oldest_timestamp_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::frames;

    #[test]
    fn request_id_of_every_frame() {
        for (frame, bytes) in frames() {
            // After the prefix and the discriminant, every frame but the hellos starts
            // with its request id.
            let on_wire = crate::varint::decode_u32(&bytes[2..]).unwrap().unwrap().0;
            let expected = match frame {
                Frame::Hello { .. } | Frame::HelloAck { .. } => None,
                Frame::DeviceHello { .. } | Frame::DeviceHelloAck { .. } => None,
                Frame::Datagram { .. } => None,
                Frame::Error { request_id: 0, .. } => None,
                _ => Some(on_wire),
            };
            assert_eq!(frame.request_id(), expected, "{frame:?}");
        }
    }

    #[test]
    fn names_are_distinct() {
        let frames = frames();
        let kinds = FRAME_KINDS as usize;
        for (i, (a, _)) in frames.iter().take(kinds).enumerate() {
            for (b, _) in frames.iter().take(kinds).skip(i + 1) {
                assert_ne!(a.name(), b.name());
            }
        }
        assert_eq!(Frame::Ping { request_id: 1 }.name(), "Ping");
    }

    #[test]
    fn validate_checks_partition_info() {
        let bad = Frame::TopicInfo {
            request_id: 1,
            name: "t",
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            compression: Compression::None,
            partition_info: Seq::from_bytes(&[0x01, 0x00]).unwrap(),
        };
        assert_eq!(bad.validate(), Err(Error::Malformed));
    }

    #[test]
    fn compression_kafka_ids() {
        for id in 0..=4u8 {
            let c = Compression::from_kafka_id(id).unwrap();
            assert_eq!(c.kafka_id(), id);
        }
        assert_eq!(Compression::from_kafka_id(5), None);
        assert_eq!(Compression::Zstd.kafka_id(), 4);
        assert_eq!(Compression::default(), Compression::None);
    }
}
