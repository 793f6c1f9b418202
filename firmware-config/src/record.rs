//! The records a `Produce` frame carries: [`Record`], its [`Header`]s, and [`Records`], the
//! lazily decoded sequence of them. All borrowed from the frame's bytes; nothing allocates.
//!
//! Wire layout of one record (postcard, fields in this order):
//!
//! ```text
//! timestamp_ms  option tag (0x00 | 0x01), then varint u64 when 0x01
//! key           option tag (0x00 | 0x01), then varint length + bytes when 0x01
//! value         varint length + bytes
//! headers       a Seq of Header: varint length, varint count, then each header
//! ```
//!
//! and of one header: `key` (varint length + UTF-8 bytes), `value` (varint length + bytes).

use serde::{Deserialize, Serialize};

use crate::{Error, Seq};

/// A produce's records: a [`Seq`] of [`Record`].
pub type Records<'a> = Seq<'a, Record<'a>>;

/// One record to append to a log partition.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Milliseconds since the Unix epoch at the device; `None` lets the broker stamp it with
    /// its own clock when appending.
    pub timestamp_ms: Option<u64>,
    /// The partitioning and compaction key, if any.
    #[serde(borrow, serialize_with = "crate::bytes::serialize_opt")]
    pub key: Option<&'a [u8]>,
    /// The payload.
    #[serde(borrow, serialize_with = "crate::bytes::serialize")]
    pub value: &'a [u8],
    /// Application headers, in order; keys may repeat.
    #[serde(borrow)]
    pub headers: Seq<'a, Header<'a>>,
}

impl<'a> Record<'a> {
    /// A record with only a value: no timestamp, no key, no headers.
    pub const fn new(value: &'a [u8]) -> Self {
        Record {
            timestamp_ms: None,
            key: None,
            value,
            headers: Seq::empty(),
        }
    }
}

/// One record header: a UTF-8 key and opaque bytes, as Kafka's record headers.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header name.
    pub key: &'a str,
    /// The header value.
    #[serde(borrow, serialize_with = "crate::bytes::serialize")]
    pub value: &'a [u8],
}

impl Records<'_> {
    /// Checks every record and every record's headers (counts, no trailing bytes, each field
    /// well-formed). [`Seq::validate`] alone checks the records but not their headers.
    pub fn validate_all(&self) -> Result<(), Error> {
        self.iter()
            .try_for_each(|record| record.and_then(|r| r.headers.validate()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeqWriter;

    #[test]
    fn bare_record_bytes() {
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&Record::new(b"hi"), &mut buf).unwrap();
        // timestamp None, key None, value "hi", headers [].
        assert_eq!(bytes, [0x00, 0x00, 0x02, b'h', b'i', 0x01, 0x00]);
    }

    #[test]
    fn validate_all_reaches_into_headers() {
        // One record whose headers claim 2 but hold 1 header.
        let bad_headers: &[u8] = &[0x02, 0x01, b'h', 0x00];
        let record = Record {
            headers: Seq::from_bytes(bad_headers).unwrap(),
            ..Record::new(b"v")
        };
        let mut buf = [0u8; 32];
        let mut w = SeqWriter::new(&mut buf);
        w.push(&record).unwrap();
        let records: Records<'_> = w.finish().unwrap();
        assert_eq!(records.validate(), Ok(()));
        assert_eq!(records.validate_all(), Err(Error::CountMismatch));
    }

    /// Compiles only if pushed records may borrow a header buffer that is reused for the
    /// next record, while the result borrows only the records buffer.
    fn records_with_reused_header_buffer<'b>(
        values: &[&[u8]],
        buf: &'b mut [u8],
    ) -> Result<Records<'b>, Error> {
        let mut hbuf = [0u8; 16];
        let mut w = SeqWriter::new(buf);
        for value in values {
            let mut hw = SeqWriter::new(&mut hbuf);
            hw.push(&Header { key: "v", value })?;
            let record = Record {
                headers: hw.finish()?,
                ..Record::new(value)
            };
            w.push(&record)?;
        }
        w.finish()
    }

    #[test]
    fn header_buffer_can_be_reused_per_record() {
        let mut buf = [0u8; 64];
        let records = records_with_reused_header_buffer(&[b"1", b"22"], &mut buf).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records.validate_all(), Ok(()));
        let second = records.iter().nth(1).unwrap().unwrap();
        let header = second.headers.iter().next().unwrap().unwrap();
        assert_eq!((second.value, header.value), (&b"22"[..], &b"22"[..]));
    }

    #[test]
    fn validate_all_accepts_good_records() {
        let (mut hbuf, mut rbuf) = ([0u8; 16], [0u8; 64]);
        let mut hw = SeqWriter::new(&mut hbuf);
        hw.push(&Header {
            key: "a",
            value: b"1",
        })
        .unwrap();
        hw.push(&Header {
            key: "a",
            value: b"2",
        })
        .unwrap();
        let record = Record {
            timestamp_ms: Some(u64::MAX),
            key: Some(b""),
            value: b"",
            headers: hw.finish().unwrap(),
        };
        let mut w = SeqWriter::new(&mut rbuf);
        w.push(&record).unwrap();
        let records = w.finish().unwrap();
        assert_eq!(records.validate_all(), Ok(()));
        assert_eq!(records.iter().next(), Some(Ok(record)));
    }
}
