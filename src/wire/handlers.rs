//! Serving binary-protocol requests against the log, and mapping log errors to error frames.
//!
//! A request is copied out of the read buffer into an [`OwnedRequest`] so it can run in its
//! own task (the buffer moves on). Every error becomes an error frame carrying the request id;
//! an out-of-range fetch becomes `OffsetOutOfRange` with the valid range. `BridgeStatus` is
//! answered from the bridges' [`StatusBoard`], in memory, without a task of its own.

use std::time::Duration;

use outpost_firmware::{codec, AckMode, ErrorCode, Frame, PartitionInfo, SeqWriter};

use outpost_bridge::StatusBoard;

use super::connection::{send, send_error, Replies};
use crate::log::{AppendError, Appended, GroupError, Log, ReadError, TopicError, TopicSpec};

/// Longest long-poll a fetch may ask for.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Room left in a reply frame for everything but the batches.
const FETCH_FRAME_OVERHEAD: u32 = 128;

/// A request copied out of its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedRequest {
    /// `Fetch`.
    Fetch {
        /// Request id.
        id: u32,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// Reply size bound.
        max_bytes: u32,
        /// Long-poll bound.
        max_wait_ms: u32,
    },
    /// `CommitOffset`.
    CommitOffset {
        /// Request id.
        id: u32,
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
    },
    /// `FetchOffset`.
    FetchOffset {
        /// Request id.
        id: u32,
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// `CreateTopic`.
    CreateTopic {
        /// Request id.
        id: u32,
        /// Name.
        name: String,
        /// Settings.
        spec: TopicSpec,
    },
    /// `DeleteTopic`.
    DeleteTopic {
        /// Request id.
        id: u32,
        /// Name.
        name: String,
    },
    /// `ListTopics`.
    ListTopics {
        /// Request id.
        id: u32,
    },
    /// `DescribeTopic`.
    DescribeTopic {
        /// Request id.
        id: u32,
        /// Name.
        name: String,
    },
}

impl OwnedRequest {
    /// Copies a client request out of `frame`; `None` for frames that are not such requests.
    pub fn from_frame(frame: &Frame<'_>) -> Option<Self> {
        Some(match *frame {
            Frame::Fetch {
                request_id,
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
            } => Self::Fetch {
                id: request_id,
                topic: topic.into(),
                partition,
                offset,
                max_bytes,
                max_wait_ms,
            },
            Frame::CommitOffset {
                request_id,
                group,
                topic,
                partition,
                offset,
            } => Self::CommitOffset {
                id: request_id,
                group: group.into(),
                topic: topic.into(),
                partition,
                offset,
            },
            Frame::FetchOffset {
                request_id,
                group,
                topic,
                partition,
            } => Self::FetchOffset {
                id: request_id,
                group: group.into(),
                topic: topic.into(),
                partition,
            },
            Frame::CreateTopic {
                request_id,
                name,
                partitions,
                retention_ms,
                retention_bytes,
                compression,
            } => {
                let spec = TopicSpec {
                    partitions,
                    retention_ms,
                    retention_bytes,
                    compression,
                };
                Self::CreateTopic {
                    id: request_id,
                    name: name.into(),
                    spec,
                }
            }
            Frame::DeleteTopic { request_id, name } => Self::DeleteTopic {
                id: request_id,
                name: name.into(),
            },
            Frame::ListTopics { request_id } => Self::ListTopics { id: request_id },
            Frame::DescribeTopic { request_id, name } => Self::DescribeTopic {
                id: request_id,
                name: name.into(),
            },
            _ => return None,
        })
    }
}

/// Runs `req` and queues its reply.
pub async fn run(req: OwnedRequest, log: &Log, replies: &Replies) {
    match req {
        OwnedRequest::Fetch {
            id,
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        } => {
            let wait = Duration::from_millis(u64::from(max_wait_ms)).min(MAX_FETCH_WAIT);
            fetch(log, replies, id, &topic, partition, offset, max_bytes, wait).await;
        }
        OwnedRequest::CommitOffset {
            id,
            group,
            topic,
            partition,
            offset,
        } => {
            let r = log.commit_offset(&group, &topic, partition, offset).await;
            done_or(replies, id, r.map_err(|e| group_code(&e))).await;
        }
        OwnedRequest::FetchOffset {
            id,
            group,
            topic,
            partition,
        } => match log.fetch_offset(&group, &topic, partition).await {
            Ok(offset) => {
                send(
                    replies,
                    &Frame::OffsetResult {
                        request_id: id,
                        offset,
                    },
                )
                .await
            }
            Err(e) => {
                let (code, msg) = group_code(&e);
                send_error(replies, id, code, &msg).await;
            }
        },
        OwnedRequest::CreateTopic { id, name, spec } => {
            let r = log.create_topic(&name, spec).await;
            done_or(replies, id, r.map_err(|e| topic_code(&e))).await;
        }
        OwnedRequest::DeleteTopic { id, name } => {
            let r = log.delete_topic(&name).await;
            done_or(replies, id, r.map_err(|e| topic_code(&e))).await;
        }
        OwnedRequest::ListTopics { id } => list_topics(log, replies, id, |_| true).await,
        OwnedRequest::DescribeTopic { id, name } => describe_topic(log, replies, id, &name).await,
    }
}

async fn done_or(replies: &Replies, id: u32, result: Result<(), (ErrorCode, String)>) {
    match result {
        Ok(()) => send(replies, &Frame::Done { request_id: id }).await,
        Err((code, msg)) => send_error(replies, id, code, &msg).await,
    }
}

#[allow(clippy::too_many_arguments)] // a fetch has this many parameters on the wire
async fn fetch(
    log: &Log,
    replies: &Replies,
    id: u32,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: u32,
    wait: Duration,
) {
    // Replies stay within the default frame limit every client accepts.
    let max_frame = codec::DEFAULT_MAX_FRAME_LEN;
    let max_bytes = max_bytes
        .min(max_frame.saturating_sub(FETCH_FRAME_OVERHEAD))
        .max(1);
    let mut result = log.read(topic, partition, offset, max_bytes).await;
    if matches!(&result, Ok(r) if r.batches.is_empty()) && !wait.is_zero() {
        if let Err(e) = log.wait_for(topic, partition, offset, wait).await {
            result = Err(e);
        } else {
            result = log.read(topic, partition, offset, max_bytes).await;
        }
    }
    match result {
        Ok(r) => {
            let frame = Frame::FetchResult {
                request_id: id,
                partition,
                log_start: r.log_start,
                high_watermark: r.high_watermark,
                batches: &r.batches,
            };
            send(replies, &frame).await;
        }
        Err(ReadError::OffsetOutOfRange { start, end, .. }) => {
            let frame = Frame::OffsetOutOfRange {
                request_id: id,
                partition,
                start,
                end,
            };
            send(replies, &frame).await;
        }
        Err(e) => {
            let (code, msg) = read_code(&e);
            send_error(replies, id, code, &msg).await;
        }
    }
}

/// Answers `ListTopics` with the topics `visible` keeps.
pub async fn list_topics(
    log: &Log,
    replies: &Replies,
    id: u32,
    mut visible: impl FnMut(&str) -> bool,
) {
    let mut names = log.list_topics();
    names.retain(|n| visible(n));
    let need: usize = names.iter().map(|n| n.len() + 10).sum::<usize>() + 16;
    let mut buf = vec![0u8; need];
    let mut w = SeqWriter::new(&mut buf);
    for n in &names {
        if w.push(&n.as_str()).is_err() {
            break;
        }
    }
    match w.finish() {
        Ok(seq) => {
            send(
                replies,
                &Frame::TopicList {
                    request_id: id,
                    names: seq,
                },
            )
            .await
        }
        Err(_) => send_error(replies, id, ErrorCode::INTERNAL, "topic list too large").await,
    }
}

async fn describe_topic(log: &Log, replies: &Replies, id: u32, name: &str) {
    let desc = match log.describe_topic(name) {
        Ok(d) => d,
        Err(e) => {
            let (code, msg) = topic_code(&e);
            return send_error(replies, id, code, &msg).await;
        }
    };
    let mut buf = vec![0u8; desc.partitions.len() * 48 + 16];
    let mut w = SeqWriter::new(&mut buf);
    for (p, m) in desc.partitions.iter().enumerate() {
        let info = PartitionInfo {
            partition: p as u32,
            start_offset: m.start_offset,
            end_offset: m.end_offset,
            bytes: m.bytes,
            oldest_timestamp_ms: m.oldest_timestamp_ms,
        };
        if w.push(&info).is_err() {
            break;
        }
    }
    let Ok(seq) = w.finish() else {
        return send_error(replies, id, ErrorCode::INTERNAL, "description too large").await;
    };
    let frame = Frame::TopicInfo {
        request_id: id,
        name,
        partitions: desc.config.partitions,
        retention_ms: desc.config.retention_ms,
        retention_bytes: desc.config.retention_bytes,
        compression: desc.config.compression,
        partition_info: seq,
    };
    send(replies, &frame).await;
}

/// Answers `BridgeStatus` with every bridge's status as JSON (`[]` with no bridges). When the
/// reply's body would exceed `max_frame` bytes, answers `INTERNAL` naming the sizes instead:
/// the connection goes on.
pub async fn bridge_status(board: &StatusBoard, replies: &Replies, id: u32, max_frame: u32) {
    let json = board.to_json();
    let frame = Frame::BridgeStatusReply {
        request_id: id,
        json: &json,
    };
    send_json(replies, &frame, json.len(), max_frame, "bridge status is").await;
}

/// Queues a reply frame carrying `json_len` bytes of JSON when it fits `max_frame`, else
/// answers `INTERNAL` naming the sizes (`what` starts the message): the connection goes on.
async fn send_json(
    replies: &Replies,
    frame: &Frame<'_>,
    json_len: usize,
    max_frame: u32,
    what: &str,
) {
    let mut out = Vec::new();
    // Checked with the decoder's own rule, so the answer is exactly what a receiver with
    // this limit accepts.
    let fits = codec::encode_frame_vec(frame, &mut out).is_ok()
        && codec::frame_len(&out, max_frame).is_ok();
    if fits {
        let _ = replies.send(out).await;
        return;
    }
    let id = frame.request_id().unwrap_or(0);
    let msg = format!(
        "{what} {json_len} bytes of JSON, more than a reply frame holds ({max_frame} bytes)"
    );
    send_error(replies, id, ErrorCode::INTERNAL, &msg).await;
}

/// A device admin request copied out of its frame (`outpost devices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAdmin {
    /// `SetDevice`: store a config.
    Set {
        /// Device id.
        id: String,
        /// DeviceConfig bytes.
        config: Vec<u8>,
    },
    /// `SetDeviceToken`: set or clear the token.
    Token {
        /// Device id.
        id: String,
        /// The token; `None` clears it.
        token: Option<crate::auth::Secret>,
    },
    /// `DeleteDevice`.
    Delete {
        /// Device id.
        id: String,
    },
    /// `GetDevices`: one device or all.
    Get {
        /// Device id; `None` for all.
        id: Option<String>,
    },
}

impl DeviceAdmin {
    /// Copies a device admin request out of `frame`; `None` for other frames.
    pub fn from_frame(frame: &Frame<'_>) -> Option<(u32, Self)> {
        Some(match *frame {
            Frame::SetDevice {
                request_id,
                device_id,
                config,
            } => (
                request_id,
                Self::Set {
                    id: device_id.into(),
                    config: config.to_vec(),
                },
            ),
            Frame::SetDeviceToken {
                request_id,
                device_id,
                token,
            } => (
                request_id,
                Self::Token {
                    id: device_id.into(),
                    token: token.map(crate::auth::Secret::new),
                },
            ),
            Frame::DeleteDevice {
                request_id,
                device_id,
            } => (
                request_id,
                Self::Delete {
                    id: device_id.into(),
                },
            ),
            Frame::GetDevices {
                request_id,
                device_id,
            } => (
                request_id,
                Self::Get {
                    id: device_id.map(Into::into),
                },
            ),
            _ => return None,
        })
    }
}

/// Serves a device admin request: `DevicesReply` (set, get) or `Done` (token, delete), or an
/// error frame (`INVALID_REQUEST` naming the problem, `UNKNOWN_DEVICE`, `STORAGE`).
pub async fn device_admin(
    devices: &crate::devices::Devices,
    replies: &Replies,
    id: u32,
    request: DeviceAdmin,
    max_frame: u32,
) {
    use crate::devices::DeviceError;
    let result = match request {
        DeviceAdmin::Set { id: device, config } => devices
            .set_config(&device, &config)
            .await
            .map(|_| devices.json(Some(&device))),
        DeviceAdmin::Token { id: device, token } => devices
            .set_token(&device, token.as_ref().map(crate::auth::Secret::expose))
            .await
            .map(|()| None),
        DeviceAdmin::Delete { id: device } => devices.delete(&device).await.map(|()| None),
        DeviceAdmin::Get { id: Some(device) } => devices
            .json(Some(&device))
            .map(Some)
            .ok_or(DeviceError::Unknown(device)),
        DeviceAdmin::Get { id: None } => Ok(devices.json(None)),
    };
    match result {
        Ok(Some(json)) => {
            let frame = Frame::DevicesReply {
                request_id: id,
                json: &json,
            };
            let what = "the device list (ask for one device) is";
            send_json(replies, &frame, json.len(), max_frame, what).await;
        }
        Ok(None) => send(replies, &Frame::Done { request_id: id }).await,
        Err(e) => {
            let code = match &e {
                DeviceError::Unknown(_) => ErrorCode::UNKNOWN_DEVICE,
                DeviceError::InvalidId(_) | DeviceError::InvalidConfig(_) => {
                    ErrorCode::INVALID_REQUEST
                }
                DeviceError::Storage(_) => ErrorCode::STORAGE,
            };
            send_error(replies, id, code, &e.to_string()).await;
        }
    }
}

/// Answers a produce: an `Ack` after commit (if asked for), an error frame on failure.
pub async fn answer_append(
    replies: &Replies,
    id: u32,
    ack: AckMode,
    result: Result<Appended, AppendError>,
) {
    match result {
        Ok(a) if ack == AckMode::Commit => {
            let frame = Frame::Ack {
                request_id: id,
                partition: a.partition,
                base_offset: a.base_offset,
                count: a.count,
            };
            send(replies, &frame).await;
        }
        Ok(_) => {}
        Err(e) => {
            let (code, msg) = append_code(&e);
            send_error(replies, id, code, &msg).await;
        }
    }
}

/// Error frame for an append failure.
pub fn append_code(e: &AppendError) -> (ErrorCode, String) {
    let code = match e {
        AppendError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC,
        AppendError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
        AppendError::InvalidName(_) => ErrorCode::INVALID_TOPIC_NAME,
        AppendError::Empty | AppendError::Batch(_) => ErrorCode::INVALID_REQUEST,
        AppendError::Storage(_) => ErrorCode::STORAGE,
        AppendError::ShuttingDown => ErrorCode::SHUTTING_DOWN,
        AppendError::Full { .. } => ErrorCode::QUOTA_EXCEEDED,
    };
    (code, e.to_string())
}

/// Error frame for a topic operation failure.
pub fn topic_code(e: &TopicError) -> (ErrorCode, String) {
    let code = match e {
        TopicError::Exists(_) => ErrorCode::TOPIC_EXISTS,
        TopicError::Unknown(_) => ErrorCode::UNKNOWN_TOPIC,
        TopicError::InvalidName(_) => ErrorCode::INVALID_TOPIC_NAME,
        TopicError::Partitions(_) => ErrorCode::INVALID_REQUEST,
        TopicError::Storage(_) => ErrorCode::STORAGE,
        TopicError::ShuttingDown => ErrorCode::SHUTTING_DOWN,
    };
    (code, e.to_string())
}

/// Error frame for a consumer-group failure.
pub fn group_code(e: &GroupError) -> (ErrorCode, String) {
    let code = match e {
        GroupError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC,
        GroupError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
        GroupError::InvalidGroup => ErrorCode::INVALID_REQUEST,
        GroupError::Storage(_) => ErrorCode::STORAGE,
        GroupError::ShuttingDown => ErrorCode::SHUTTING_DOWN,
    };
    (code, e.to_string())
}

/// Error frame for a read failure (out-of-range has its own frame).
pub fn read_code(e: &ReadError) -> (ErrorCode, String) {
    let code = match e {
        ReadError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC,
        ReadError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
        ReadError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        ReadError::Storage(_) | ReadError::Decode(_) | ReadError::Corrupt(_) => ErrorCode::STORAGE,
        ReadError::ShuttingDown => ErrorCode::SHUTTING_DOWN,
    };
    (code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_partition_is_quota_exceeded() {
        let full = AppendError::Full {
            topic: "t".to_owned(),
            partition: 3,
        };
        let (code, msg) = append_code(&full);
        assert_eq!(code, ErrorCode::QUOTA_EXCEEDED);
        assert!(msg.contains("partition 3 is full"), "{msg}");
    }
}

/// `bridge_status` against an empty board (the bridge crate fills boards; this one's JSON is
/// `[]`).
#[cfg(test)]
mod bridge_status_tests {
    use super::*;

    /// The one frame `bridge_status` queues.
    async fn status_reply(max_frame: u32) -> Vec<u8> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        bridge_status(&StatusBoard::new(), &tx, 7, max_frame).await;
        rx.recv().await.expect("one reply")
    }

    #[tokio::test]
    async fn bridge_status_fits_exactly_or_is_refused_with_internal() {
        // Body: discriminant 21, id 7, "[]" = 5 bytes.
        let bytes = status_reply(5).await;
        let (frame, _) = codec::decode_frame(&bytes, 5).unwrap().unwrap();
        let expected = Frame::BridgeStatusReply {
            request_id: 7,
            json: "[]",
        };
        assert_eq!(frame, expected);

        let bytes = status_reply(4).await;
        let (frame, _) = codec::decode_frame(&bytes, u32::MAX).unwrap().unwrap();
        let Frame::Error {
            request_id: 7,
            code: ErrorCode::INTERNAL,
            message,
        } = frame
        else {
            panic!("{frame:?}");
        };
        assert!(message.contains("bridge status is 2 bytes"), "{message}");
    }
}
