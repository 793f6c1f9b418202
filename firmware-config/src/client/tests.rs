//! The clients against [`FakeBroker`]: the conversation of the `frame` module's "Devices"
//! section, the broker's errors, garbage from the broker, reconnects and the clock.

use std::boxed::Box;
use std::vec::Vec;

use embedded_io::ErrorKind;

use super::mock::{
    block_on, bytes, standard, FakeBroker, BASE_OFFSET, BROKER_MAX_FRAME, BROKER_TIME_MS,
};
use super::*;
use crate::{AckMode, DeviceConfig, ErrorCode, Frame, Record, SeqWriter};

const DEVICE: Device<'static> = Device {
    id: "d1",
    token: b"tk",
};
const TEMP: &[u8] = &[0x00, 0x00, 0xb4, 0x41];

type Blocking<'a> = blocking::Client<'a, FakeBroker, 2>;
type Async<'a> = asynch::Client<'a, FakeBroker, 2>;

fn handler(f: impl FnMut(&Frame<'_>) -> Vec<u8> + 'static) -> FakeBroker {
    FakeBroker::with(Box::new(f))
}

/// The config of config.rs's golden test, encoded.
const SMALL_CONFIG: &[u8] = &[
    0x01, 0x03, 0x02, b'd', b'1', 0x07, b'g', b'w', b':', b'7', b'8', b'8', b'3', 0x90, 0x4e, 0x0a,
    0x01, 0x02, 0x01, 0x01, b't', 0x00, 0xac, 0x02, 0x02, b'h', b'u', 0x01, 0x02,
];

/// A broker pushing `config` in its hello reply, standard otherwise.
fn pushing(config: &'static [u8]) -> FakeBroker {
    handler(move |frame| match frame {
        Frame::DeviceHello { .. } => bytes(&Frame::DeviceHelloAck {
            version: 1,
            broker_time_ms: BROKER_TIME_MS,
            max_frame_len: BROKER_MAX_FRAME,
            config: Some(config),
        }),
        other => standard(other),
    })
}

#[test]
fn connect_says_hello_and_syncs_the_clock() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    assert_eq!(client.broker_time_ms(0), None);
    let welcome = client.connect(Some(3), 5_000).unwrap();
    let expected = Welcome {
        version: 1,
        broker_time_ms: BROKER_TIME_MS,
        max_frame_len: BROKER_MAX_FRAME,
        config: None,
    };
    assert_eq!(welcome, expected);
    assert_eq!(client.broker_time_ms(5_000), Some(BROKER_TIME_MS));
    assert_eq!(client.broker_time_ms(7_500), Some(BROKER_TIME_MS + 2_500));
    assert!(client.session().is_connected());
    let mut io = client.into_transport();
    // The golden DeviceHello of frame.rs: "d1", token "tk", config version 3.
    let hello = [
        0x0a, 0x17, 0x01, 0x02, b'd', b'1', 0x02, b't', b'k', 0x01, 0x03,
    ];
    assert_eq!(io.requests(), [hello.to_vec()]);
}

#[test]
fn requests_before_connect_fail() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    assert_eq!(
        client.reading(1, TEMP, AckMode::None),
        Err(ClientError::NotConnected)
    );
    assert_eq!(client.ping(), Err(ClientError::NotConnected));
    assert!(client.into_transport().requests().is_empty());
}

#[test]
fn a_pushed_config_is_handed_out_as_its_bytes() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; RX_LEN_FOR_CONFIG]);
    let mut client = Blocking::new(pushing(SMALL_CONFIG), DEVICE, &mut tx, &mut rx);
    let welcome = client.connect(None, 0).unwrap();
    assert_eq!(welcome.config, Some(SMALL_CONFIG));
    let config = DeviceConfig::decode(welcome.config.unwrap()).unwrap();
    assert_eq!(config.version, 3);
    assert_eq!(config.alias(300).map(|a| a.topic.as_str()), Some("hu"));
}

#[test]
fn the_largest_hello_reply_fits_hello_reply_max_len() {
    // Every field at its longest: version 1 over three bytes, u64::MAX, u32::MAX, and a
    // config of MAX_ENCODED_LEN bytes (body 1,320 = `a8 0a`; config length 1,298 = `92 0a`).
    let mut reply = std::vec![0xa8, 0x0a, 0x18, 0x81, 0x80, 0x00];
    reply.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    reply.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x92, 0x0a]);
    reply.extend_from_slice(&[0xab; crate::MAX_ENCODED_LEN]);
    assert_eq!(reply.len(), HELLO_REPLY_MAX_LEN);
    let connect = |rx: &mut [u8]| {
        let reply = reply.clone();
        let mut tx = [0u8; 64];
        let io = handler(move |_| reply.clone());
        let mut client = Blocking::new(io, DEVICE, &mut tx, rx);
        let welcome = client.connect(Some(u32::MAX), 0);
        welcome.map(|w| (w.broker_time_ms, w.config.map(<[u8]>::len)))
    };
    let mut rx = std::vec![0u8; HELLO_REPLY_MAX_LEN];
    let expected = (u64::MAX, Some(crate::MAX_ENCODED_LEN));
    assert_eq!(connect(&mut rx), Ok(expected));
    // One byte short: the hello reply is refused from its length prefix.
    let mut rx = std::vec![0u8; HELLO_REPLY_MAX_LEN - 1];
    assert_eq!(
        connect(&mut rx),
        Err(ClientError::FrameTooLarge { len: 1320 })
    );
}

#[test]
fn a_config_too_large_for_rx_ends_the_connection_cleanly() {
    // The hello reply with this config is 42 bytes.
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 41]);
    let mut client = Blocking::new(pushing(SMALL_CONFIG), DEVICE, &mut tx, &mut rx);
    let got = client.connect(None, 0).map(|w| w.config.is_some());
    assert_eq!(got, Err(ClientError::FrameTooLarge { len: 41 }));
    assert!(!client.session().is_connected());
    assert_eq!(client.ping(), Err(ClientError::NotConnected));
}

#[test]
fn aliases_are_registered_and_remembered() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.register_alias(300, "temp", None).unwrap();
    client.register_alias(2, "hum", Some(1)).unwrap();
    // Replacing one needs no room; a third does.
    client.register_alias(300, "temperature", Some(4)).unwrap();
    assert_eq!(
        client.register_alias(3, "wind", None),
        Err(ClientError::AliasTableFull)
    );
    let expected = [
        Alias {
            alias: 300,
            topic: "temperature",
            partition: Some(4),
        },
        Alias {
            alias: 2,
            topic: "hum",
            partition: Some(1),
        },
    ];
    assert_eq!(client.aliases(), expected);
    assert!(client.forget_alias(2));
    assert!(!client.forget_alias(2));
    let mut io = client.into_transport();
    // The golden RegisterAlias of frame.rs, with request id 1.
    let golden = [
        0x0a, 0x19, 0x01, 0xac, 0x02, 0x04, b't', b'e', b'm', b'p', 0x00,
    ];
    assert_eq!(io.requests()[1], golden);
    assert_eq!(io.requests().len(), 4);
}

#[test]
fn a_refused_registration_is_not_remembered() {
    let io = handler(|frame| match frame {
        Frame::RegisterAlias { request_id, .. } => bytes(&Frame::Error {
            request_id: *request_id,
            code: ErrorCode::NOT_AUTHORIZED,
            message: "no",
        }),
        other => standard(other),
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    let refused = ClientError::Broker {
        request_id: 1,
        code: ErrorCode::NOT_AUTHORIZED,
    };
    assert_eq!(client.register_alias(1, "t", None), Err(refused));
    assert!(client.aliases().is_empty());
    // The connection is still usable.
    assert_eq!(client.ping(), Ok(()));
}

#[test]
fn readings_with_and_without_ack() {
    let (mut tx, mut rx) = ([0u8; 32], [0u8; 32]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.reading(1, TEMP, AckMode::None).unwrap();
    client.reading(1, TEMP, AckMode::Commit).unwrap();
    client.reading(1, TEMP, AckMode::Commit).unwrap();
    let mut io = client.into_transport();
    // The golden Reading of frame.rs (request id 0), then ids 1 and 2.
    let fire_and_forget = [0x08, 0x1b, 0x00, 0x01, 0x04, 0x00, 0x00, 0xb4, 0x41];
    assert_eq!(io.requests()[1], fire_and_forget);
    let ids: Vec<_> = io.frames().iter().skip(1).map(Frame::request_id).collect();
    assert_eq!(ids, [Some(0), Some(1), Some(2)]);
}

#[test]
fn the_smallest_buffers_for_readings() {
    // tx: the hello of "d1"/"tk" is 10 bytes, a 4-byte reading 9 (with an id under 128).
    // rx: the hello reply without a config is 12 bytes here, a `Done` 3.
    let (mut tx, mut rx) = ([0u8; 10], [0u8; 12]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.reading(1, TEMP, AckMode::Commit).unwrap();
    assert_eq!(
        client.reading(1, &[0; 6], AckMode::Commit),
        Err(ClientError::BufferTooSmall)
    );
    // A failed build sends nothing and leaves the connection up.
    assert_eq!(client.reading(1, TEMP, AckMode::None), Ok(()));
    let (mut tx, mut rx) = ([0u8; 9], [0u8; 12]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    let got = client.connect(None, 0).map(drop);
    assert_eq!(got, Err(ClientError::BufferTooSmall));
    let (mut tx, mut rx) = ([0u8; 11], [0u8; 11]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    let got = client.connect(None, 0).map(drop);
    assert_eq!(got, Err(ClientError::FrameTooLarge { len: 11 }));
}

#[test]
fn batches_are_acked_with_their_offsets() {
    let (mut tx, mut rx) = ([0u8; 128], [0u8; 64]);
    let mut batch = [0u8; 64];
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    let mut writer = SeqWriter::new(&mut batch);
    for value in [&b"1"[..], b"22", b"333"] {
        let record = Record {
            timestamp_ms: Some(1_000),
            ..Record::new(value)
        };
        writer.push(&record).unwrap();
    }
    let records = writer.finish().unwrap();
    let produced = client.produce(7, records, AckMode::Commit).unwrap();
    let expected = Produced {
        partition: 0,
        base_offset: BASE_OFFSET,
        count: 3,
    };
    assert_eq!(produced, Some(expected));
    // The same records pushed straight into tx make the same frame (request id 2).
    let produced = client.produce_with(7, AckMode::Commit, |w| {
        for value in [&b"1"[..], b"22", b"333"] {
            w.push(&Record {
                timestamp_ms: Some(1_000),
                ..Record::new(value)
            })?;
        }
        Ok(())
    });
    assert_eq!(produced, Ok(Some(expected)));
    assert_eq!(client.produce(7, records, AckMode::None), Ok(None));
    let mut io = client.into_transport();
    let frames = io.frames();
    let Frame::ProduceAlias { records: sent, .. } = frames[2] else {
        panic!("{:?}", frames[2]);
    };
    assert_eq!(sent, records);
    let mut again = bytes(&frames[1]);
    again[2] = 2; // request id 1 -> 2: the one byte where the two frames differ
    assert_eq!(io.requests()[2], again);
}

#[test]
fn produce_with_writes_the_golden_produce_alias() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    // frame.rs's golden ProduceAlias has request id 6: five ids first.
    for _ in 0..5 {
        client.ping().unwrap();
    }
    client
        .produce_with(1, AckMode::Commit, |w| w.push(&Record::new(b"v")))
        .unwrap();
    let golden = [
        0x0c, 0x1a, 0x06, 0x01, 0x01, 0x07, 0x01, 0x00, 0x00, 0x01, b'v', 0x01, 0x00,
    ];
    assert_eq!(client.into_transport().requests()[6], golden);
}

#[test]
fn produce_with_large_batches_and_full_buffers() {
    // A one-byte record takes 6 bytes: 167 fit with the frame's head.
    let (mut tx, mut rx) = ([0u8; 1024], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    // 150 records: a two-byte count and a two-byte records length.
    let produced = client.produce_with(1, AckMode::Commit, |w| {
        (0..150u8).try_for_each(|i| w.push(&Record::new(&[i])))
    });
    assert_eq!(produced.map(|p| p.map(|p| p.count)), Ok(Some(150)));
    // Too many to fit: the push error fails the request; nothing is sent.
    let full = client.produce_with(1, AckMode::Commit, |w| {
        (0..255u8).try_for_each(|i| w.push(&Record::new(&[i])))
    });
    assert_eq!(full, Err(ClientError::BufferTooSmall));
    // Ignoring it sends what fits.
    let fits = client.produce_with(1, AckMode::Commit, |w| {
        let _ = (0..255u8).try_for_each(|i| w.push(&Record::new(&[i])));
        Ok(())
    });
    let count = fits.unwrap().unwrap().count;
    assert_eq!(count, 167);
    let mut io = client.into_transport();
    assert_eq!(io.requests().len(), 3);
    for frame in io.frames() {
        frame.validate().unwrap();
    }
}

#[test]
fn a_request_over_the_brokers_max_frame_is_not_sent() {
    let io = handler(|frame| match frame {
        Frame::DeviceHello { .. } => bytes(&Frame::DeviceHelloAck {
            version: 1,
            broker_time_ms: 0,
            max_frame_len: 8,
            config: None,
        }),
        other => standard(other),
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    // Body: 27, 0, 1, 4, then 4 value bytes = 8: fits. One more byte does not.
    client.reading(1, TEMP, AckMode::None).unwrap();
    assert_eq!(
        client.reading(1, &[0; 5], AckMode::None),
        Err(ClientError::FrameTooLarge { len: 9 })
    );
    assert!(client.session().is_connected());
    assert_eq!(client.into_transport().requests().len(), 2);
}

#[test]
fn broker_errors_are_reported_with_their_code() {
    let io = handler(|frame| match frame {
        Frame::Reading { request_id, .. } => bytes(&Frame::Error {
            request_id: *request_id,
            code: ErrorCode::UNKNOWN_ALIAS,
            message: "alias 9 is not registered",
        }),
        other => standard(other),
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    let expected = ClientError::Broker {
        request_id: 1,
        code: ErrorCode::UNKNOWN_ALIAS,
    };
    assert_eq!(client.reading(9, TEMP, AckMode::Commit), Err(expected));
    assert_eq!(client.ping(), Ok(()));
    // Without an ack the error comes later, as a connection-level one (request id 0).
    client.reading(9, TEMP, AckMode::None).unwrap();
    let later = ClientError::Broker {
        request_id: 0,
        code: ErrorCode::UNKNOWN_ALIAS,
    };
    assert_eq!(client.ping(), Err(later));
    // The ping's own Pong, late, is skipped by the next wait.
    assert_eq!(client.ping(), Ok(()));
}

#[test]
fn poll_reports_errors_of_fire_and_forget_requests() {
    let io = handler(|frame| match frame {
        Frame::Reading { alias: 9, .. } => bytes(&Frame::Error {
            request_id: 0,
            code: ErrorCode::UNKNOWN_ALIAS,
            message: "",
        }),
        other => standard(other),
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.reading(1, TEMP, AckMode::None).unwrap();
    assert_eq!(client.poll(), Ok(()));
    client.reading(9, TEMP, AckMode::None).unwrap();
    let expected = ClientError::Broker {
        request_id: 0,
        code: ErrorCode::UNKNOWN_ALIAS,
    };
    assert_eq!(client.poll(), Err(expected));
    assert_eq!(client.poll(), Ok(()));
    assert_eq!(client.ping(), Ok(()));
}

#[test]
fn stale_replies_are_skipped_and_wrong_kinds_refused() {
    let io = handler(|frame| match frame {
        Frame::Ping { request_id } => [
            bytes(&Frame::Done { request_id: 999 }),
            bytes(&Frame::Ack {
                request_id: 998,
                partition: 0,
                base_offset: 0,
                count: 0,
            }),
            bytes(&Frame::Pong {
                request_id: *request_id,
            }),
        ]
        .concat(),
        Frame::Sleep { request_id, .. } => bytes(&Frame::Pong {
            request_id: *request_id,
        }),
        other => standard(other),
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    assert_eq!(client.ping(), Ok(()));
    assert_eq!(
        client.sleep(60_000, AckMode::Commit),
        Err(ClientError::UnexpectedFrame)
    );
    assert_eq!(client.ping(), Err(ClientError::NotConnected));
}

#[test]
fn a_refused_hello_ends_the_connection() {
    let io = handler(|_| {
        bytes(&Frame::Error {
            request_id: 0,
            code: ErrorCode::NOT_AUTHORIZED,
            message: "wrong token",
        })
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    let refused = ClientError::Broker {
        request_id: 0,
        code: ErrorCode::NOT_AUTHORIZED,
    };
    assert_eq!(client.connect(None, 0).map(|_| ()), Err(refused));
    assert_eq!(client.ping(), Err(ClientError::NotConnected));
}

#[test]
fn another_protocol_version_is_refused() {
    let io = handler(|_| {
        bytes(&Frame::DeviceHelloAck {
            version: 2,
            broker_time_ms: 0,
            max_frame_len: 0,
            config: None,
        })
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    let got = client.connect(None, 0).map(|_| ());
    assert_eq!(got, Err(ClientError::UnsupportedVersion { version: 2 }));
}

/// Connects a client to a broker that answers the hello with `reply`; returns the error.
fn hello_answered_with(reply: Vec<u8>) -> ClientError {
    let mut reply = Some(reply);
    let io = handler(move |_| reply.take().unwrap_or_default());
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 48]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    let error = client.connect(None, 0).map(|_| ()).unwrap_err();
    assert!(!client.session().is_connected());
    error
}

#[test]
fn garbage_from_the_broker_is_a_clean_error() {
    // A frame a broker never sends a device; a discriminant nobody knows; a body that does
    // not decode; a bad length prefix; a frame larger than rx; the stream ending mid-frame.
    let cases = [
        (
            bytes(&Frame::Ping { request_id: 1 }),
            ClientError::UnexpectedFrame,
        ),
        (std::vec![0x01, 0x7f], ClientError::UnexpectedFrame),
        (std::vec![0x02, 0x18, 0x01], ClientError::Malformed),
        (std::vec![0xff; 6], ClientError::Malformed),
        (
            std::vec![0xb0, 0x09],
            ClientError::FrameTooLarge { len: 1200 },
        ),
        (std::vec![0x05, 0x18, 0x01], ClientError::Closed),
        (Vec::new(), ClientError::Closed),
    ];
    for (reply, expected) in cases {
        assert_eq!(hello_answered_with(reply.clone()), expected, "{reply:02x?}");
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()[0]
    };
    for n in 0..3_000 {
        // Half of them a plausible prefix and a reply discriminant, the rest anything.
        let mut garbage: Vec<u8> = (0..n % 40).map(|_| next()).collect();
        if n % 2 == 0 && garbage.len() > 2 {
            garbage[0] = (garbage.len() - 1) as u8;
            garbage[1] = [3, 4, 17, 19, 24, 29][n % 6];
        }
        let g = garbage.clone();
        let io = handler(move |frame| match frame {
            Frame::Ping { .. } => g.clone(),
            other => standard(other),
        });
        let (mut tx, mut rx) = ([0u8; 64], [0u8; 32]);
        let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
        client.connect(None, 0).unwrap();
        let _ = client.ping();
        let _ = client.reading(1, TEMP, AckMode::Commit);
    }
}

#[test]
fn replies_arriving_a_byte_at_a_time() {
    let mut io = pushing(SMALL_CONFIG);
    io.chunk = 1;
    let (mut tx, mut rx) = ([0u8; 64], [0u8; RX_LEN_FOR_CONFIG]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    assert_eq!(client.connect(None, 0).unwrap().config, Some(SMALL_CONFIG));
    client.register_alias(1, "temperature", None).unwrap();
    client.reading(1, TEMP, AckMode::Commit).unwrap();
    assert_eq!(client.request_config(), Ok(None));
    assert_eq!(client.into_transport().requests().len(), 4);
}

#[test]
fn config_request_sleep_and_ping() {
    let io = handler(|frame| match frame {
        Frame::ConfigRequest { request_id } => bytes(&Frame::ConfigReply {
            request_id: *request_id,
            config: Some(SMALL_CONFIG),
        }),
        other => standard(other),
    });
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    assert_eq!(client.request_config(), Ok(Some(SMALL_CONFIG)));
    client.sleep(60_000, AckMode::Commit).unwrap();
    client.sleep(60_000, AckMode::None).unwrap();
    client.ping().unwrap();
    let mut io = client.into_transport();
    let golden_config_request = [0x02, 0x1c, 0x01];
    assert_eq!(io.requests()[1], golden_config_request);
    // The golden Sleep has request id 2, as this one.
    assert_eq!(io.requests()[2], [0x05, 0x1e, 0x02, 0xe0, 0xd4, 0x03]);
    assert_eq!(io.requests()[3], [0x05, 0x1e, 0x00, 0xe0, 0xd4, 0x03]);
}

#[test]
fn transport_errors_end_the_connection() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.transport_mut().read_error = Some(ErrorKind::TimedOut);
    assert_eq!(
        client.ping(),
        Err(ClientError::Transport(ErrorKind::TimedOut))
    );
    assert_eq!(client.ping(), Err(ClientError::NotConnected));
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.transport_mut().write_zero = true;
    assert_eq!(
        client.reading(1, TEMP, AckMode::None),
        Err(ClientError::Closed)
    );
    assert!(!client.session().is_connected());
}

#[test]
fn writes_of_a_byte_at_a_time_send_whole_frames() {
    let mut io = FakeBroker::new();
    io.chunk = 1;
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(io, DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.reading(1, TEMP, AckMode::Commit).unwrap();
    assert_eq!(client.into_transport().requests().len(), 2);
}

#[test]
fn reconnect_registers_the_aliases_again() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; 64]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(Some(3), 0).unwrap();
    client.register_alias(1, "temperature", None).unwrap();
    client.register_alias(2, "humidity", Some(2)).unwrap();
    client.transport_mut().read_error = Some(ErrorKind::ConnectionReset);
    assert!(client.reading(1, TEMP, AckMode::Commit).is_err());
    assert_eq!(
        client.reading(1, TEMP, AckMode::None),
        Err(ClientError::NotConnected)
    );
    let welcome = client
        .reconnect(FakeBroker::new(), Some(3), 60_000)
        .unwrap();
    assert_eq!(welcome.broker_time_ms, BROKER_TIME_MS);
    assert_eq!(client.broker_time_ms(61_000), Some(BROKER_TIME_MS + 1_000));
    client.reading(2, TEMP, AckMode::Commit).unwrap();
    let mut io = client.into_transport();
    let frames = io.frames();
    assert!(matches!(
        frames[0],
        Frame::DeviceHello {
            config_version: Some(3),
            ..
        }
    ));
    let registered: Vec<_> = frames[1..3]
        .iter()
        .map(|f| match *f {
            Frame::RegisterAlias {
                alias,
                topic,
                partition,
                ..
            } => (alias, topic, partition),
            _ => panic!("{f:?}"),
        })
        .collect();
    assert_eq!(
        registered,
        [(1, "temperature", None), (2, "humidity", Some(2))]
    );
    assert_eq!(frames.len(), 4);
}

#[test]
fn reconnect_drops_an_alias_the_broker_now_refuses() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; REPLY_ROOM]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    client.register_alias(1, "gone", None).unwrap();
    client.register_alias(2, "humidity", None).unwrap();
    // The new broker refuses "gone" (deleted topic, revoked right) and takes the rest.
    let refusing = handler(|frame| match *frame {
        Frame::RegisterAlias {
            request_id,
            topic: "gone",
            ..
        } => bytes(&Frame::Error {
            request_id,
            code: ErrorCode::NOT_AUTHORIZED,
            message: "not authorized to produce to this topic",
        }),
        ref other => standard(other),
    });
    client.reconnect(refusing, None, 0).unwrap();
    let left: Vec<u16> = client.aliases().iter().map(|a| a.alias).collect();
    assert_eq!(left, [2]);
    client.reading(2, TEMP, AckMode::Commit).unwrap();
    // The next reconnect no longer asks for it.
    client.reconnect(FakeBroker::new(), None, 0).unwrap();
    let mut io = client.into_transport();
    let registrations = io
        .frames()
        .iter()
        .filter(|f| matches!(f, Frame::RegisterAlias { .. }))
        .count();
    assert_eq!(registrations, 1);
}

#[test]
fn reconnect_keeps_a_pushed_config_readable_while_registering() {
    let (mut tx, mut rx) = ([0u8; 64], [0u8; RX_LEN_FOR_CONFIG]);
    let mut client = Blocking::new(FakeBroker::new(), DEVICE, &mut tx, &mut rx);
    client.connect(None, 0).unwrap();
    for alias in 1..=2 {
        client.register_alias(alias, "temperature", None).unwrap();
    }
    let welcome = client.reconnect(pushing(SMALL_CONFIG), None, 0).unwrap();
    assert_eq!(welcome.config, Some(SMALL_CONFIG));
    assert_eq!(client.into_transport().requests().len(), 3);
}

#[test]
fn the_async_client_has_the_same_conversation() {
    let (mut tx, mut rx) = ([0u8; 128], [0u8; RX_LEN_FOR_CONFIG]);
    let mut io = pushing(SMALL_CONFIG);
    io.chunk = 3;
    let mut client = Async::new(io, DEVICE, &mut tx, &mut rx);
    block_on(async {
        let welcome = client.connect(None, 1_000).await.unwrap();
        assert_eq!(welcome.config, Some(SMALL_CONFIG));
        client.register_alias(1, "temperature", None).await.unwrap();
        client.reading(1, TEMP, AckMode::Commit).await.unwrap();
        client.reading(1, TEMP, AckMode::None).await.unwrap();
        let produced = client
            .produce_with(1, AckMode::Commit, |w| w.push(&Record::new(TEMP)))
            .await
            .unwrap();
        assert_eq!(produced.map(|p| p.count), Some(1));
        assert_eq!(client.request_config().await, Ok(None));
        client.sleep(1, AckMode::Commit).await.unwrap();
        client.ping().await.unwrap();
        assert_eq!(client.poll().await, Ok(()));
        client.transport_mut().read_error = Some(ErrorKind::BrokenPipe);
        let broken = ClientError::Transport(ErrorKind::BrokenPipe);
        assert_eq!(client.ping().await, Err(broken));
        client
            .reconnect(FakeBroker::new(), Some(3), 2_000)
            .await
            .unwrap();
        assert_eq!(client.broker_time_ms(2_500), Some(BROKER_TIME_MS + 500));
    });
    assert_eq!(client.aliases().len(), 1);
    let frames = client.into_transport().frames().len();
    // The new broker saw the hello and the registration again.
    assert_eq!(frames, 2);
}
