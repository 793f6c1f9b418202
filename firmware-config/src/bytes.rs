//! Serde helpers that write `&[u8]` fields as one postcard byte string (varint length, then the
//! bytes in one copy) instead of serde's default of a sequence of `u8`. Both produce the same
//! bytes in postcard; this is only faster. Deserializing needs no helper: `&'a [u8]` borrows.

use serde::{Serialize, Serializer};

/// Serializes a borrowed byte slice as a byte string.
pub(crate) fn serialize<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

/// Serializes an optional byte slice: postcard's option tag, then a byte string.
pub(crate) fn serialize_opt<S: Serializer>(bytes: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_some(&Bytes(b)),
        None => s.serialize_none(),
    }
}

/// A byte slice that serializes as a byte string.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}
