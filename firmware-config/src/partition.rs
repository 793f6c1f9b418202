//! Which partition a keyed record goes to: Kafka's default partitioner, shared by the broker's
//! log (where it is part of the storage contract) and the Kafka bridge (`partitioning =
//! "key"`), so both place a key exactly where a Kafka producer would.
//!
//! A keyed record goes to `(murmur2(key) & 0x7fff_ffff) % partitions`: Kafka's default
//! partitioner, bit for bit, so a key lands in the same partition here, after a restart, in
//! any later version, and in an upstream Kafka cluster with the same partition count. This
//! rule is part of the storage contract and pinned by tests with Kafka's own test vectors.
//! Records without a key are placed by the caller (the broker's log spreads them round-robin).
//!
//! murmur2 is written here because it is twenty lines, has to match Kafka's Java code
//! exactly (seed, signedness, tail handling), and no maintained crate pins that variant.

/// Kafka's murmur2 seed.
const SEED: u32 = 0x9747_b28c;
/// murmur2 multiplier.
const M: u32 = 0x5bd1_e995;
/// murmur2 shift.
const R: u32 = 24;

/// Kafka's `Utils.murmur2`, returning the same 32 bits (Kafka's `int`) as `u32`.
pub fn murmur2(data: &[u8]) -> u32 {
    // The length is mixed in as Kafka's 32-bit int; keys longer than 4 GiB cannot occur.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a keyed record among `partitions` (which must be non-zero).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`, as Java ints.
    #[test]
    fn matches_kafka_test_vectors() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()) as i32, expected, "{input}");
        }
    }

    #[test]
    fn same_key_same_partition_and_spread() {
        assert_eq!(
            partition_for_key(b"sensor-7", 12),
            partition_for_key(b"sensor-7", 12)
        );
        // Pinned: changing this breaks every stored keyed topic's layout.
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        let mut seen = [0u32; 4];
        for i in 0..400u32 {
            let key = [b'd', b'e', b'v', b'-', (i / 100) as u8, (i % 100) as u8];
            seen[partition_for_key(&key, 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
