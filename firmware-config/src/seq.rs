//! `Seq<'a, T>`: a counted run of postcard-encoded items, borrowed from a frame and decoded
//! lazily; `SeqWriter` builds one in a caller's buffer.
//!
//! On the wire a `Seq` is a postcard byte string (varint byte length, then that many bytes)
//! whose content is a varint item count followed by exactly that many postcard-encoded items:
//!
//! ```text
//! varint len | varint count | item 0 | item 1 | ... | item count-1
//!            \_____________________ len bytes ____________________/
//! ```
//!
//! Wrapping the items in a byte string lets a frame decoder skip them without knowing `T`,
//! so decoding a frame only borrows the slice. This module does not allocate, and never trusts
//! the count for anything but stopping: it is not used to size anything.

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{varint, Error};

/// A borrowed sequence of `T`, decoded item by item on iteration.
///
/// Deserializing a `Seq` checks only that its count is a valid varint; call
/// [`validate`](Seq::validate) (or iterate to the end) to check every item.
pub struct Seq<'a, T> {
    /// Everything inside the byte string: count and items.
    bytes: &'a [u8],
    /// The items, after the count.
    items: &'a [u8],
    count: u32,
    item: PhantomData<fn() -> T>,
}

impl<'a, T> Seq<'a, T> {
    /// The sequence with no items (its content is the single byte `0x00`).
    pub const fn empty() -> Self {
        Seq {
            bytes: &[0],
            items: &[],
            count: 0,
            item: PhantomData,
        }
    }

    /// Reads a sequence from its content (varint count, then the items), as found inside the
    /// byte string. Fails with `Malformed` when the count is not a complete, valid varint;
    /// the items are not checked.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        let (count, used) = varint::decode_u32(bytes)?.ok_or(Error::Malformed)?;
        Ok(Seq {
            bytes,
            items: bytes.get(used..).ok_or(Error::Malformed)?,
            count,
            item: PhantomData,
        })
    }

    /// The item count the sequence claims (not checked against its bytes; see
    /// [`validate`](Seq::validate)).
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether the count is zero.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The content as it goes on the wire inside the byte string: count, then items.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// An iterator decoding one item per step; see [`SeqIter`].
    pub fn iter(&self) -> SeqIter<'a, T> {
        SeqIter {
            rest: self.items,
            remaining: self.count,
            done: false,
            item: PhantomData,
        }
    }
}

impl<'a, T: Deserialize<'a>> Seq<'a, T> {
    /// Decodes every item and checks there are exactly `len()` of them with no bytes left.
    /// Costs one item decode per item; never allocates.
    pub fn validate(&self) -> Result<(), Error> {
        self.iter().try_for_each(|item| item.map(drop))
    }
}

impl<T> Default for Seq<'_, T> {
    fn default() -> Self {
        Seq::empty()
    }
}

impl<T> Clone for Seq<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Seq<'_, T> {}

impl<T> PartialEq for Seq<'_, T> {
    /// Two sequences are equal when their wire bytes are.
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> Eq for Seq<'_, T> {}

impl<T> fmt::Debug for Seq<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seq")
            .field("count", &self.count)
            .field("item_bytes", &self.items.len())
            .finish()
    }
}

impl<T> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.bytes)
    }
}

impl<'de: 'a, 'a, T> Deserialize<'de> for Seq<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <&'de [u8]>::deserialize(d)?;
        Seq::from_bytes(bytes).map_err(D::Error::custom)
    }
}

impl<'a, T: Deserialize<'a>> IntoIterator for Seq<'a, T> {
    type Item = Result<T, Error>;
    type IntoIter = SeqIter<'a, T>;

    fn into_iter(self) -> SeqIter<'a, T> {
        self.iter()
    }
}

impl<'a, T: Deserialize<'a>> IntoIterator for &Seq<'a, T> {
    type Item = Result<T, Error>;
    type IntoIter = SeqIter<'a, T>;

    fn into_iter(self) -> SeqIter<'a, T> {
        self.iter()
    }
}

/// Decodes a [`Seq`]'s items one at a time.
///
/// Yields `Ok(item)` for each of the `count` items, then ends. Yields one `Err` and then ends
/// when an item does not decode (`Malformed`), when the bytes run out before `count` items
/// (`CountMismatch`), or when bytes remain after them (`CountMismatch`). So an iteration that
/// saw no `Err` has checked the whole sequence. Each step consumes at least one byte for every
/// item type in this crate, so a huge count with few bytes ends quickly.
pub struct SeqIter<'a, T> {
    rest: &'a [u8],
    remaining: u32,
    done: bool,
    item: PhantomData<fn() -> T>,
}

impl<'a, T: Deserialize<'a>> SeqIter<'a, T> {
    fn step(&mut self) -> Option<Result<T, Error>> {
        if self.remaining == 0 {
            return (!self.rest.is_empty()).then_some(Err(Error::CountMismatch));
        }
        self.remaining -= 1;
        Some(self.take())
    }

    fn take(&mut self) -> Result<T, Error> {
        let ran_out = self.rest.is_empty();
        match postcard::take_from_bytes(self.rest) {
            Ok((item, rest)) => {
                self.rest = rest;
                Ok(item)
            }
            Err(postcard::Error::DeserializeUnexpectedEnd) if ran_out => Err(Error::CountMismatch),
            Err(_) => Err(Error::Malformed),
        }
    }
}

impl<'a, T: Deserialize<'a>> Iterator for SeqIter<'a, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.step();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

impl<'a, T: Deserialize<'a>> FusedIterator for SeqIter<'a, T> {}

impl<T> fmt::Debug for SeqIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqIter")
            .field("remaining", &self.remaining)
            .field("bytes_left", &self.rest.len())
            .finish()
    }
}

/// Builds a [`Seq`] in a caller's buffer: [`push`](SeqWriter::push) items, then
/// [`finish`](SeqWriter::finish).
///
/// Pushed items are copied in, so they may borrow from shorter-lived buffers than the
/// result: a `SeqWriter<'b, Record<'b>>` takes a `Record<'x>` of any `'x` (see [`EncodeAs`]),
/// which lets one header buffer be reused for every record.
///
/// The count goes in front of the items but is known only at the end, so the writer keeps
/// room for the count's current varint size and moves the items up by one byte the few times
/// it grows (at 128, 16 384, ... items). The buffer needs no slack beyond the final encoding.
pub struct SeqWriter<'b, T> {
    buf: &'b mut [u8],
    /// Bytes kept in front of the items for the count: always `varint::len_u32(count)`.
    header: usize,
    /// Bytes of items written after the header.
    len: usize,
    count: u32,
    item: PhantomData<fn() -> T>,
}

impl<'b, T> SeqWriter<'b, T> {
    /// A writer filling `buf` from its start. Never fails; a buffer too small shows up as
    /// `BufferTooSmall` from `push` or `finish`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        SeqWriter {
            buf,
            header: varint::len_u32(0),
            len: 0,
            count: 0,
            item: PhantomData,
        }
    }

    /// Items pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes the finished sequence content would take now (count and items).
    pub fn encoded_len(&self) -> usize {
        self.header + self.len
    }

    /// Appends one item. On error (`BufferTooSmall`, `TooManyItems`) the writer holds what it
    /// held before the call and can still be finished.
    pub fn push<U: EncodeAs<T> + ?Sized>(&mut self, item: &U) -> Result<(), Error> {
        let count = self.count.checked_add(1).ok_or(Error::TooManyItems)?;
        let header = varint::len_u32(count);
        let at = header + self.len;
        let free = self.buf.get_mut(at..).ok_or(Error::BufferTooSmall)?;
        let written = postcard::to_slice(item, free).map_err(ser_error)?.len();
        // The new item already sits after the moved items' destination; the ranges of the
        // move may overlap, which `copy_within` allows. In bounds: the items end within the
        // buffer, and their destination ends at `at`, which `get_mut` checked.
        self.buf
            .copy_within(self.header..self.header + self.len, header);
        self.header = header;
        self.len += written;
        self.count = count;
        Ok(())
    }

    /// Writes the count in front of the items and returns the sequence, borrowing the buffer.
    /// Fails with `BufferTooSmall` only when the buffer cannot hold even the count.
    pub fn finish(self) -> Result<Seq<'b, T>, Error> {
        let (count, used) = varint::encode_u32(self.count);
        let out = self.buf;
        out.get_mut(..used)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(&count[..used]);
        let bytes: &'b [u8] = out;
        let bytes = bytes
            .get(..self.header + self.len)
            .ok_or(Error::BufferTooSmall)?;
        Ok(Seq {
            bytes,
            items: bytes.get(used..).ok_or(Error::BufferTooSmall)?,
            count: self.count,
            item: PhantomData,
        })
    }
}

impl<T> fmt::Debug for SeqWriter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqWriter")
            .field("count", &self.count)
            .field("bytes", &(self.header + self.len))
            .field("capacity", &self.buf.len())
            .finish()
    }
}

/// A value that encodes as one item of a `Seq<T>`: `T` itself, up to lifetimes.
///
/// [`SeqWriter::push`] takes any `U: EncodeAs<T>`, so an item borrowing short-lived data can
/// go into a sequence whose items, once decoded, borrow from the sequence's own buffer. The
/// encoding of `U` must be a valid encoding of `T`. Implemented for the item types this crate
/// uses and for primitives; implement it for your own item types (`impl EncodeAs<Mine> for
/// Mine {}`).
pub trait EncodeAs<T>: Serialize {}

impl EncodeAs<&str> for &str {}
impl EncodeAs<&[u8]> for &[u8] {}
impl<'x, 'y> EncodeAs<crate::Record<'y>> for crate::Record<'x> {}
impl<'x, 'y> EncodeAs<crate::Header<'y>> for crate::Header<'x> {}
impl EncodeAs<crate::PartitionInfo> for crate::PartitionInfo {}

/// `EncodeAs<T> for T` for types without lifetimes.
macro_rules! encode_as_self {
    ($($t:ty),*) => { $(impl EncodeAs<$t> for $t {})* };
}

encode_as_self!(
    bool,
    u8,
    u16,
    u32,
    u64,
    u128,
    i8,
    i16,
    i32,
    i64,
    i128,
    char,
    ()
);

/// Maps a postcard serialization error: a full buffer is the only one our types can cause.
pub(crate) fn ser_error(e: postcard::Error) -> Error {
    match e {
        postcard::Error::SerializeBufferFull => Error::BufferTooSmall,
        _ => Error::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::vec::Vec;

    fn build<'b, T: EncodeAs<T>>(buf: &'b mut [u8], items: &[T]) -> Seq<'b, T> {
        let mut w = SeqWriter::new(buf);
        for item in items {
            w.push(item).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn empty_is_a_single_zero() {
        let mut buf = [0u8; 4];
        let built: Seq<'_, u32> = build(&mut buf, &[]);
        assert_eq!(built.as_bytes(), [0x00]);
        assert_eq!(built, Seq::empty());
        assert_eq!(Seq::<u32>::default(), Seq::empty());
        assert!(built.is_empty());
        assert_eq!(built.iter().next(), None);
    }

    #[test]
    fn writes_count_then_items_and_reads_them_back() {
        let mut buf = [0u8; 16];
        let seq = build(&mut buf, &[1u32, 300, 7]);
        assert_eq!(seq.as_bytes(), [0x03, 0x01, 0xac, 0x02, 0x07]);
        assert_eq!(seq.len(), 3);
        let items: Result<Vec<u32>, Error> = seq.iter().collect();
        assert_eq!(items, Ok(std::vec![1, 300, 7]));
        assert_eq!(seq.validate(), Ok(()));
    }

    #[test]
    fn count_header_grows_past_127_items() {
        let items: Vec<u8> = (0..=199).collect();
        let mut buf = [0u8; 202];
        let seq = build(&mut buf, &items);
        assert_eq!(&seq.as_bytes()[..3], [0xc8, 0x01, 0x00]);
        assert_eq!(seq.as_bytes().len(), 202);
        let back: Vec<u8> = seq.iter().map(Result::unwrap).collect();
        assert_eq!(back, items);
    }

    #[test]
    fn full_buffer_keeps_earlier_items() {
        let mut buf = [0u8; 4];
        let mut w = SeqWriter::new(&mut buf);
        w.push(&"ab").unwrap();
        assert_eq!(w.push(&"c"), Err(Error::BufferTooSmall));
        assert_eq!((w.count(), w.encoded_len()), (1, 4));
        assert_eq!(w.finish().unwrap().as_bytes(), [0x01, 0x02, b'a', b'b']);
    }

    #[test]
    fn header_growth_that_does_not_fit_keeps_earlier_items() {
        // 127 one-byte items fill 128 bytes; the 128th needs a 2-byte count and 130 bytes.
        let mut buf = [0u8; 129];
        let mut w = SeqWriter::new(&mut buf);
        for i in 0..127u8 {
            w.push(&i).unwrap();
        }
        assert_eq!(w.push(&127u8), Err(Error::BufferTooSmall));
        let seq = w.finish().unwrap();
        assert_eq!(seq.len(), 127);
        assert_eq!(seq.iter().map(Result::unwrap).last(), Some(126));
    }

    #[test]
    fn empty_buffer_fails_only_on_use() {
        let mut buf = [0u8; 0];
        let mut w = SeqWriter::<u8>::new(&mut buf);
        assert_eq!(w.push(&1), Err(Error::BufferTooSmall));
        assert_eq!(w.finish(), Err(Error::BufferTooSmall));
    }

    #[test]
    fn from_bytes_needs_a_complete_count() {
        assert_eq!(Seq::<u8>::from_bytes(&[]), Err(Error::Malformed));
        assert_eq!(Seq::<u8>::from_bytes(&[0x80]), Err(Error::Malformed));
        assert_eq!(Seq::<u8>::from_bytes(&[0x01, 0x05]).map(|s| s.len()), Ok(1));
    }

    #[test]
    fn too_few_items_is_count_mismatch() {
        let seq = Seq::<u8>::from_bytes(&[0x03, 0x0a, 0x0b]).unwrap();
        let got: Vec<_> = seq.iter().collect();
        assert_eq!(got, [Ok(0x0a), Ok(0x0b), Err(Error::CountMismatch)]);
        assert_eq!(seq.validate(), Err(Error::CountMismatch));
    }

    #[test]
    fn trailing_bytes_are_count_mismatch() {
        let seq = Seq::<u8>::from_bytes(&[0x01, 0x0a, 0x0b]).unwrap();
        let got: Vec<_> = seq.iter().collect();
        assert_eq!(got, [Ok(0x0a), Err(Error::CountMismatch)]);
    }

    #[test]
    fn huge_count_ends_at_the_bytes() {
        let seq = Seq::<&str>::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, b'a']).unwrap();
        assert_eq!(seq.len(), u32::MAX);
        assert_eq!(seq.iter().count(), 2);
        assert_eq!(seq.validate(), Err(Error::CountMismatch));
        assert_eq!(seq.iter().size_hint(), (0, None));
    }

    #[test]
    fn bad_item_is_malformed_and_ends_iteration() {
        // Second string claims 5 bytes but has 1.
        let seq = Seq::<&str>::from_bytes(&[0x03, 0x01, b'a', 0x05, b'b']).unwrap();
        let got: Vec<_> = seq.iter().collect();
        assert_eq!(got, [Ok("a"), Err(Error::Malformed)]);
    }

    #[test]
    fn debug_shows_sizes_not_items() {
        let seq = Seq::<u8>::from_bytes(&[0x02, 0x0a, 0x0b]).unwrap();
        assert_eq!(format!("{seq:?}"), "Seq { count: 2, item_bytes: 2 }");
    }

    #[test]
    fn round_trips_through_postcard() {
        let mut buf = [0u8; 8];
        let seq = build(&mut buf, &["x"]);
        let mut out = [0u8; 8];
        let wire = postcard::to_slice(&seq, &mut out).unwrap();
        assert_eq!(wire, [0x03, 0x01, 0x01, b'x']);
        let back: Seq<'_, &str> = postcard::from_bytes(wire).unwrap();
        assert_eq!(back, seq);
    }
}
