//! Fuzzes `outpost::mqtt::codec`, the decoder every byte from an MQTT client goes through.
//!
//! Input: the first byte picks the maximum packet size (`1 << (byte % 30)`, so 1 B to
//! 512 MiB, to reach the `TooLarge` path); the rest is the stream. For each protocol level
//! the stream is framed packet by packet with `frame_len`; each framed packet is decoded
//! and, when it decodes, the target checks that
//! - `frame_len` on one byte fewer asks for more (`Ok(None)`);
//! - every view in it (user properties, subscribe and unsubscribe filters) iterates;
//! - it re-encodes (as `encoded_len` says, no longer than the input: the codec writes the
//!   shortest form) to bytes that decode to a packet saying the same, and re-encoding that
//!   gives the same bytes.
//!
//! The iterators also walk the raw stream, as they must stop, not panic, on any bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::mqtt::codec::{decode, encode, encoded_len, frame_len, DecodeError};
use outpost::mqtt::packet::{
    Packet, Protocol, SubscribeFilters, SubscriptionOptions, UnsubscribeFilters, UserProperties,
};

/// `max = 1 << (first byte % MAX_SIZE_SHIFTS)`: up to past the largest possible packet.
const MAX_SIZE_SHIFTS: u8 = 30;

const LEVELS: [Protocol; 3] = [Protocol::V31, Protocol::V311, Protocol::V5];

fuzz_target!(|data: &[u8]| {
    let Some((&shift, stream)) = data.split_first() else {
        return;
    };
    let max = 1u32 << (shift % MAX_SIZE_SHIFTS);
    for protocol in LEVELS {
        walk_stream(stream, max, protocol);
    }
    UserProperties { block: stream }.iter().for_each(drop);
    assert!(SubscribeFilters { payload: stream }.len() <= stream.len());
    assert!(UnsubscribeFilters { payload: stream }.len() <= stream.len());
});

/// Frames and checks packets until the stream ends or does not frame.
fn walk_stream(mut stream: &[u8], max: u32, protocol: Protocol) {
    loop {
        match frame_len(stream, max) {
            Ok(Some(len)) => {
                assert!(len >= 2 && len <= stream.len() && len as u64 <= u64::from(max));
                assert_eq!(frame_len(&stream[..len - 1], max), Ok(None));
                check_packet(&stream[..len], protocol);
                stream = &stream[len..];
            }
            Ok(None) => return,
            Err(e) => {
                assert!(matches!(
                    e,
                    DecodeError::Malformed(_) | DecodeError::TooLarge { .. }
                ));
                return;
            }
        }
    }
}

/// Decodes one framed packet and, if it decodes, checks its views and its re-encoding.
fn check_packet(bytes: &[u8], protocol: Protocol) {
    let Ok(packet) = decode(bytes, protocol) else {
        return;
    };
    let meaning = Meaning::of(&packet);
    let mut out = Vec::new();
    encode(&packet, protocol, &mut out).expect("a decoded packet re-encodes");
    assert_eq!(encoded_len(&packet, protocol), Ok(out.len()));
    // The encoder writes short forms, except that a v5 DISCONNECT with a reason code always
    // carries its (possibly empty) property length: one byte more than the shortest form.
    let slack = usize::from(matches!(packet, Packet::Disconnect(d) if d.reason != 0));
    assert!(
        out.len() <= bytes.len() + slack,
        "re-encoding grew: {} > {}",
        out.len(),
        bytes.len()
    );
    assert_eq!(frame_len(&out, u32::MAX), Ok(Some(out.len())));
    let again = decode(&out, protocol).expect("a re-encoded packet decodes");
    assert_eq!(Meaning::of(&again), meaning);
    let mut twice = Vec::new();
    encode(&again, protocol, &mut twice).expect("a decoded packet re-encodes");
    assert_eq!(twice, out, "re-encoding is not stable");
}

/// What a packet says: its views replaced by their items, since the re-encoded property
/// block holds the same properties in another order.
#[derive(Debug, PartialEq)]
struct Meaning<'a> {
    packet: Packet<'a>,
    user_properties: Vec<Vec<(&'a str, &'a str)>>,
    subscribe: Vec<(&'a str, SubscriptionOptions)>,
    unsubscribe: Vec<&'a str>,
}

impl<'a> Meaning<'a> {
    fn of(packet: &Packet<'a>) -> Self {
        let mut packet = *packet;
        let (mut subscribe, mut unsubscribe) = (Vec::new(), Vec::new());
        match &mut packet {
            Packet::Subscribe(s) => {
                subscribe = s.filters.iter().collect();
                assert_eq!(subscribe.len(), s.filters.len());
                assert!(!subscribe.is_empty(), "a decoded SUBSCRIBE has an entry");
                s.filters.payload = &[];
            }
            Packet::Unsubscribe(u) => {
                unsubscribe = u.filters.iter().collect();
                assert!(
                    !unsubscribe.is_empty(),
                    "a decoded UNSUBSCRIBE has a filter"
                );
                u.filters.payload = &[];
            }
            _ => {}
        }
        let user_properties = Packet::properties_mut(&mut packet)
            .into_iter()
            .map(|p| std::mem::take(&mut p.user_properties).iter().collect())
            .collect();
        Meaning {
            packet,
            user_properties,
            subscribe,
            unsubscribe,
        }
    }
}
