//! Fuzzes `outpost_firmware::decode_frame`, the decoder every byte from a device or client
//! goes through.
//!
//! Input: the first byte picks the receiver's maximum body length (`1 << (byte % 21)`, so
//! 1 B to 1 MiB, to reach the `FrameTooLarge` path); the rest is the stream. When a frame
//! decodes, the target checks that
//! - it used no more bytes than given, and one byte fewer means "need more" (`Ok(None)`);
//! - every sequence in it (records, each record's headers, topic names, partition infos)
//!   iterates to an end, and `Frame::validate` agrees with that walk;
//! - it re-encodes, no longer than the input (encoding is canonical), to bytes that decode to
//!   an equal frame, identically through `encode_frame` and `encode_frame_vec`, and stably.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_firmware::{decode_frame, encode_frame, encode_frame_vec, Error, Frame, Records};

/// `max_len = 1 << (first byte % MAX_LEN_SHIFTS)`: up to `DEFAULT_MAX_FRAME_LEN` (1 MiB).
const MAX_LEN_SHIFTS: u8 = 21;

fuzz_target!(|data: &[u8]| {
    let Some((&shift, stream)) = data.split_first() else {
        return;
    };
    let max_len = 1u32 << (shift % MAX_LEN_SHIFTS);
    let Ok(Some((frame, used))) = decode_frame(stream, max_len) else {
        return;
    };
    assert!(used > 0 && used <= stream.len());
    assert_eq!(decode_frame(&stream[..used - 1], max_len), Ok(None));
    check_sequences(&frame);
    check_round_trip(&frame, used, max_len);
});

/// Walks every sequence the frame carries and checks `validate` reaches the same verdict.
fn check_sequences(frame: &Frame<'_>) {
    let walked = match frame {
        Frame::Produce { records, .. } => walk_records(records),
        Frame::TopicList { names, .. } => walk(names.iter()),
        Frame::TopicInfo { partition_info, .. } => walk(partition_info.iter()),
        _ => Ok(()),
    };
    assert_eq!(frame.validate(), walked, "{frame:?}");
}

/// Decodes every record and every header of every record; stops at the first error.
fn walk_records(records: &Records<'_>) -> Result<(), Error> {
    for record in records {
        walk(record?.headers.iter())?;
    }
    Ok(())
}

/// Drains a sequence iterator; an `Err` must be its last item.
fn walk<T>(mut items: impl Iterator<Item = Result<T, Error>>) -> Result<(), Error> {
    for item in items.by_ref() {
        if let Err(e) = item {
            assert!(
                items.next().is_none(),
                "a sequence iterator went on after an error"
            );
            return Err(e);
        }
    }
    Ok(())
}

/// Re-encodes `frame` (decoded from `used` bytes) and decodes it again.
fn check_round_trip(frame: &Frame<'_>, used: usize, max_len: u32) {
    let mut out = Vec::new();
    let appended = encode_frame_vec(frame, &mut out).expect("a decoded frame re-encodes");
    assert_eq!(appended, out.len());
    // Postcard accepts over-long varints; we write the shortest, so never more bytes.
    assert!(
        out.len() <= used,
        "re-encoding grew: {} > {used}",
        out.len()
    );
    let (again, again_used) = decode_frame(&out, max_len)
        .expect("a re-encoded frame decodes")
        .expect("a re-encoded frame is whole");
    assert_eq!(again_used, out.len());
    assert_eq!(&again, frame);
    let mut buf = vec![0u8; out.len()];
    assert_eq!(encode_frame(frame, &mut buf), Ok(&out[..]));
    let mut twice = Vec::new();
    encode_frame_vec(&again, &mut twice).expect("a decoded frame re-encodes");
    assert_eq!(twice, out, "re-encoding is not stable");
}
