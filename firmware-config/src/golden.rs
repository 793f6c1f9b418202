//! Golden bytes for every frame: the wire format frozen. A failing test here means the format
//! changed; that needs a new `PROTOCOL_VERSION`, not a new expected array.
//!
//! Each expected array was derived by hand from the table in `frame`'s module docs (varints
//! checked with an independent LEB128 encoder), not copied from this crate's output.

use std::vec::Vec;

use crate::{AckMode, Compression, ErrorCode, Frame, Header, Record, Seq, SeqWriter};

/// `TopicList.names` = ["a", "bc"]: count 2, then each string (length, bytes).
pub(crate) const NAMES: &[u8] = &[0x02, 0x01, b'a', 0x02, b'b', b'c'];

/// `TopicInfo.partition_info` = one partition: count 1; partition 0, start 0, end 2,
/// bytes 150 (`96 01`), oldest timestamp Some(1).
pub(crate) const PARTITIONS: &[u8] = &[0x01, 0x00, 0x00, 0x02, 0x96, 0x01, 0x01, 0x01];

/// Two records: count 2, then
/// record 0: timestamp Some(1000) (`01 e8 07`), key Some("k") (`01 01 6b`), value "v1"
/// (`02 76 31`), headers [("h", "x")] (`05` bytes: count `01`, key `01 68`, value `01 78`);
/// record 1: timestamp None, key None, value "v2", headers [] (`01` byte: count `00`).
pub(crate) const TWO_RECORDS: &[u8] = &[
    0x02, //
    0x01, 0xe8, 0x07, 0x01, 0x01, b'k', 0x02, b'v', b'1', 0x05, 0x01, 0x01, b'h', 0x01,
    b'x', //
    0x00, 0x00, 0x02, b'v', b'2', 0x01, 0x00,
];

/// A `Produce` of [`TWO_RECORDS`]: body length 30; discriminant 2, request 1, topic "s",
/// partition None, ack None (`00`), records (byte string of 23 = `17`).
pub(crate) const PRODUCE_TWO_RECORDS: &[u8] = &[
    0x1e, 0x02, 0x01, 0x01, b's', 0x00, 0x00, 0x17, //
    0x02, //
    0x01, 0xe8, 0x07, 0x01, 0x01, b'k', 0x02, b'v', b'1', 0x05, 0x01, 0x01, b'h', 0x01,
    b'x', //
    0x00, 0x00, 0x02, b'v', b'2', 0x01, 0x00,
];

/// One bare record (`Record::new(b"v")`): count 1; timestamp None, key None, value "v",
/// headers [].
pub(crate) const ONE_RECORD: &[u8] = &[0x01, 0x00, 0x00, 0x01, b'v', 0x01, 0x00];

fn seq<T>(bytes: &'static [u8]) -> Seq<'static, T> {
    // The constants above are well-formed; a typo fails the test right here.
    Seq::from_bytes(bytes).expect("golden sequence bytes")
}

/// One frame of every variant (and a few edge values), each with its encoding: length prefix
/// then body. Discriminants in order 0..=36, then extras.
pub(crate) fn frames() -> Vec<(Frame<'static>, &'static [u8])> {
    std::vec![
        (
            Frame::Hello {
                version: 1,
                client_id: "dev-1"
            },
            &[0x08, 0x00, 0x01, 0x05, b'd', b'e', b'v', b'-', b'1'],
        ),
        (
            Frame::HelloAck {
                version: 1,
                broker_time_ms: 1_700_000_000_000,
                max_frame_len: 1 << 20,
            },
            &[0x0b, 0x01, 0x01, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x80, 0x80, 0x40],
        ),
        (
            Frame::Produce {
                request_id: 7,
                topic: "t",
                partition: Some(2),
                ack: AckMode::Commit,
                records: Seq::empty(),
            },
            &[0x09, 0x02, 0x07, 0x01, b't', 0x01, 0x02, 0x01, 0x01, 0x00],
        ),
        (
            Frame::Ack {
                request_id: 7,
                partition: 2,
                base_offset: 300,
                count: 2
            },
            &[0x06, 0x03, 0x07, 0x02, 0xac, 0x02, 0x02],
        ),
        (
            Frame::Error {
                request_id: 7,
                code: ErrorCode::UNKNOWN_TOPIC,
                message: "no"
            },
            &[0x06, 0x04, 0x07, 0x04, 0x02, b'n', b'o'],
        ),
        (
            Frame::OffsetOutOfRange {
                request_id: 9,
                partition: 0,
                start: 10,
                end: 200
            },
            &[0x06, 0x05, 0x09, 0x00, 0x0a, 0xc8, 0x01],
        ),
        (
            Frame::Fetch {
                request_id: 10,
                topic: "t",
                partition: 1,
                offset: 128,
                max_bytes: 65536,
                max_wait_ms: 500,
            },
            &[0x0c, 0x06, 0x0a, 0x01, b't', 0x01, 0x80, 0x01, 0x80, 0x80, 0x04, 0xf4, 0x03],
        ),
        (
            Frame::FetchResult {
                request_id: 10,
                partition: 1,
                log_start: 0,
                high_watermark: 3,
                batches: &[0xde, 0xad],
            },
            &[0x08, 0x07, 0x0a, 0x01, 0x00, 0x03, 0x02, 0xde, 0xad],
        ),
        (
            Frame::CommitOffset {
                request_id: 11,
                group: "g",
                topic: "t",
                partition: 0,
                offset: 5
            },
            &[0x08, 0x08, 0x0b, 0x01, b'g', 0x01, b't', 0x00, 0x05],
        ),
        (
            Frame::FetchOffset {
                request_id: 12,
                group: "g",
                topic: "t",
                partition: 0
            },
            &[0x07, 0x09, 0x0c, 0x01, b'g', 0x01, b't', 0x00],
        ),
        (
            Frame::OffsetResult {
                request_id: 12,
                offset: Some(5)
            },
            &[0x04, 0x0a, 0x0c, 0x01, 0x05],
        ),
        (
            Frame::CreateTopic {
                request_id: 13,
                name: "t",
                partitions: 3,
                retention_ms: Some(86_400_000),
                retention_bytes: None,
                compression: Compression::Zstd,
            },
            &[0x0c, 0x0b, 0x0d, 0x01, b't', 0x03, 0x01, 0x80, 0xb8, 0x99, 0x29, 0x00, 0x04],
        ),
        (
            Frame::DeleteTopic {
                request_id: 14,
                name: "t"
            },
            &[0x04, 0x0c, 0x0e, 0x01, b't'],
        ),
        (Frame::ListTopics { request_id: 15 }, &[0x02, 0x0d, 0x0f]),
        (
            Frame::TopicList {
                request_id: 15,
                names: seq(NAMES)
            },
            &[0x09, 0x0e, 0x0f, 0x06, 0x02, 0x01, b'a', 0x02, b'b', b'c'],
        ),
        (
            Frame::DescribeTopic {
                request_id: 16,
                name: "t"
            },
            &[0x04, 0x0f, 0x10, 0x01, b't'],
        ),
        (
            Frame::TopicInfo {
                request_id: 16,
                name: "t",
                partitions: 1,
                retention_ms: None,
                retention_bytes: Some(1024),
                compression: Compression::Lz4,
                partition_info: seq(PARTITIONS),
            },
            &[
                0x13, 0x10, 0x10, 0x01, b't', 0x01, 0x00, 0x01, 0x80, 0x08, 0x03, //
                0x08, 0x01, 0x00, 0x00, 0x02, 0x96, 0x01, 0x01, 0x01,
            ],
        ),
        (Frame::Done { request_id: 17 }, &[0x02, 0x11, 0x11]),
        (Frame::Ping { request_id: 300 }, &[0x03, 0x12, 0xac, 0x02]),
        (Frame::Pong { request_id: 300 }, &[0x03, 0x13, 0xac, 0x02]),
        (Frame::BridgeStatus { request_id: 18 }, &[0x02, 0x14, 0x12]),
        (
            Frame::BridgeStatusReply {
                request_id: 18,
                json: "[]"
            },
            &[0x05, 0x15, 0x12, 0x02, b'[', b']'],
        ),
        // Body 7 bytes: discriminant 22, request 19, "u", password bytes "pw".
        (
            Frame::Authenticate {
                request_id: 19,
                username: "u",
                password: b"pw"
            },
            &[0x07, 0x16, 0x13, 0x01, b'u', 0x02, b'p', b'w'],
        ),
        (
            Frame::DeviceHello {
                version: 1,
                device_id: "d1",
                token: b"tk",
                config_version: Some(3),
            },
            &[0x0a, 0x17, 0x01, 0x02, b'd', b'1', 0x02, b't', b'k', 0x01, 0x03],
        ),
        (
            Frame::DeviceHelloAck {
                version: 1,
                broker_time_ms: 1_700_000_000_000,
                max_frame_len: 1 << 20,
                config: Some(&[0x01, 0x02]),
            },
            &[
                0x0f, 0x18, 0x01, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x80, 0x80, 0x40, 0x01, 0x02,
                0x01, 0x02,
            ],
        ),
        (
            Frame::RegisterAlias {
                request_id: 5,
                alias: 300,
                topic: "temp",
                partition: None,
            },
            &[0x0a, 0x19, 0x05, 0xac, 0x02, 0x04, b't', b'e', b'm', b'p', 0x00],
        ),
        (
            Frame::ProduceAlias {
                request_id: 6,
                alias: 1,
                ack: AckMode::Commit,
                records: seq(ONE_RECORD),
            },
            &[0x0c, 0x1a, 0x06, 0x01, 0x01, 0x07, 0x01, 0x00, 0x00, 0x01, b'v', 0x01, 0x00],
        ),
        (
            // 22.5f32, little-endian.
            Frame::Reading {
                request_id: 0,
                alias: 1,
                value: &[0x00, 0x00, 0xb4, 0x41],
            },
            &[0x08, 0x1b, 0x00, 0x01, 0x04, 0x00, 0x00, 0xb4, 0x41],
        ),
        (Frame::ConfigRequest { request_id: 9 }, &[0x02, 0x1c, 0x09]),
        (
            Frame::ConfigReply {
                request_id: 9,
                config: None,
            },
            &[0x03, 0x1d, 0x09, 0x00],
        ),
        (
            // 60,000 = `e0 d4 03`.
            Frame::Sleep {
                request_id: 2,
                duration_ms: 60_000,
            },
            &[0x05, 0x1e, 0x02, 0xe0, 0xd4, 0x03],
        ),
        (
            // Wrapping `Reading { request_id: 0, alias: 1, value: [7] }`.
            Frame::Datagram {
                device_id: "d1",
                token: b"",
                body: &[0x1b, 0x00, 0x01, 0x01, 0x07],
            },
            &[0x0b, 0x1f, 0x02, b'd', b'1', 0x00, 0x05, 0x1b, 0x00, 0x01, 0x01, 0x07],
        ),
        (
            Frame::SetDevice {
                request_id: 3,
                device_id: "d1",
                config: &[0x01, 0x00],
            },
            &[0x08, 0x20, 0x03, 0x02, b'd', b'1', 0x02, 0x01, 0x00],
        ),
        (
            Frame::SetDeviceToken {
                request_id: 4,
                device_id: "d1",
                token: Some(b"s"),
            },
            &[0x08, 0x21, 0x04, 0x02, b'd', b'1', 0x01, 0x01, b's'],
        ),
        (
            Frame::DeleteDevice {
                request_id: 4,
                device_id: "d1",
            },
            &[0x05, 0x22, 0x04, 0x02, b'd', b'1'],
        ),
        (
            Frame::GetDevices {
                request_id: 8,
                device_id: None,
            },
            &[0x03, 0x23, 0x08, 0x00],
        ),
        (
            Frame::DevicesReply {
                request_id: 8,
                json: "[]",
            },
            &[0x05, 0x24, 0x08, 0x02, b'[', b']'],
        ),
        // Extras: the other side of options, a code this version does not name, and status
        // text with a two-byte UTF-8 character (`é` = `c3 a9`).
        (
            Frame::OffsetResult {
                request_id: 12,
                offset: None
            },
            &[0x03, 0x0a, 0x0c, 0x00],
        ),
        (
            Frame::Error {
                request_id: 0,
                code: ErrorCode(999),
                message: ""
            },
            &[0x05, 0x04, 0x00, 0xe7, 0x07, 0x00],
        ),
        (
            Frame::BridgeStatusReply {
                request_id: 1,
                json: "[{\"name\":\"é\"}]"
            },
            &[
                0x12, 0x15, 0x01, 0x0f, b'[', b'{', b'"', b'n', b'a', b'm', b'e', b'"', b':', b'"',
                0xc3, 0xa9, b'"', b'}', b']',
            ],
        ),
        (
            Frame::Produce {
                request_id: 1,
                topic: "s",
                partition: None,
                ack: AckMode::None,
                records: seq(TWO_RECORDS),
            },
            PRODUCE_TWO_RECORDS,
        ),
        (
            Frame::DeviceHello {
                version: 1,
                device_id: "d",
                token: b"",
                config_version: None,
            },
            &[0x06, 0x17, 0x01, 0x01, b'd', 0x00, 0x00],
        ),
        (
            Frame::ConfigReply {
                request_id: 1,
                config: Some(&[0xaa]),
            },
            &[0x05, 0x1d, 0x01, 0x01, 0x01, 0xaa],
        ),
        (
            Frame::SetDeviceToken {
                request_id: 1,
                device_id: "d1",
                token: None,
            },
            &[0x06, 0x21, 0x01, 0x02, b'd', b'1', 0x00],
        ),
        (
            Frame::GetDevices {
                request_id: 1,
                device_id: Some("d1"),
            },
            &[0x06, 0x23, 0x01, 0x01, 0x02, b'd', b'1'],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_frame, encode_frame, encoded_len, PartitionInfo};

    fn encode(frame: &Frame<'_>) -> Vec<u8> {
        let mut buf = std::vec![0u8; 256];
        encode_frame(frame, &mut buf).unwrap().to_vec()
    }

    #[test]
    fn every_frame_encodes_to_its_golden_bytes() {
        for (frame, expected) in frames() {
            assert_eq!(encode(&frame), expected, "{frame:?}");
            assert_eq!(encoded_len(&frame), Ok(expected.len()), "{frame:?}");
        }
    }

    #[test]
    fn every_golden_frame_decodes_back() {
        for (frame, bytes) in frames() {
            let decoded = decode_frame(bytes, u32::MAX).unwrap().unwrap();
            assert_eq!(decoded, (frame.clone(), bytes.len()), "{frame:?}");
            assert_eq!(frame.validate(), Ok(()), "{frame:?}");
        }
    }

    #[test]
    fn golden_covers_every_discriminant_in_order() {
        let frames = frames();
        for (disc, (frame, bytes)) in frames.iter().take(37).enumerate() {
            assert_eq!(usize::from(bytes[1]), disc, "{}", frame.name());
        }
        assert_eq!(crate::frame::FRAME_KINDS, 37);
    }

    #[test]
    fn writer_builds_the_golden_names() {
        let mut buf = [0u8; 16];
        let mut w = SeqWriter::new(&mut buf);
        w.push(&"a").unwrap();
        w.push(&"bc").unwrap();
        assert_eq!(w.finish().unwrap().as_bytes(), NAMES);
    }

    #[test]
    fn writer_builds_the_golden_partitions() {
        let info = PartitionInfo {
            partition: 0,
            start_offset: 0,
            end_offset: 2,
            bytes: 150,
            oldest_timestamp_ms: Some(1),
        };
        let mut buf = [0u8; 16];
        let mut w = SeqWriter::new(&mut buf);
        w.push(&info).unwrap();
        assert_eq!(w.finish().unwrap().as_bytes(), PARTITIONS);
    }

    #[test]
    fn produce_with_two_records_built_from_structs() {
        let (mut hbuf, mut rbuf) = ([0u8; 16], [0u8; 64]);
        let mut hw = SeqWriter::new(&mut hbuf);
        hw.push(&Header {
            key: "h",
            value: b"x",
        })
        .unwrap();
        let first = Record {
            timestamp_ms: Some(1000),
            key: Some(b"k"),
            value: b"v1",
            headers: hw.finish().unwrap(),
        };
        let mut rw = SeqWriter::new(&mut rbuf);
        rw.push(&first).unwrap();
        rw.push(&Record::new(b"v2")).unwrap();
        let records = rw.finish().unwrap();
        assert_eq!(records.as_bytes(), TWO_RECORDS);
        let frame = Frame::Produce {
            request_id: 1,
            topic: "s",
            partition: None,
            ack: AckMode::None,
            records,
        };
        assert_eq!(encode(&frame), PRODUCE_TWO_RECORDS);
    }

    #[test]
    fn two_records_decode_field_by_field() {
        let (frame, _) = decode_frame(PRODUCE_TWO_RECORDS, 64).unwrap().unwrap();
        let Frame::Produce { records, .. } = frame else {
            panic!("not a produce: {frame:?}");
        };
        let got: Vec<Record<'_>> = records.iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].timestamp_ms, got[0].key, got[0].value),
            (Some(1000), Some(&b"k"[..]), &b"v1"[..])
        );
        let headers: Vec<Header<'_>> = got[0].headers.iter().map(Result::unwrap).collect();
        assert_eq!(
            headers,
            [Header {
                key: "h",
                value: b"x"
            }]
        );
        assert_eq!(got[1], Record::new(b"v2"));
    }
}
