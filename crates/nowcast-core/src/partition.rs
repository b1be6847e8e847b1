//! Entity partitioning, identical to Apache Kafka's default partitioner.
//!
//! The embedded log and the Kafka transport place an entity's records on the same partition
//! number for the same partition count: `(murmur2(key) & 0x7fffffff) % partitions`. A topic
//! written by any Kafka producer that uses the default partitioner is therefore co-partitioned
//! with nowcast's own topics.

/// Kafka's 32-bit murmur2 hash of `data` (seed `0x9747b28c`), as in
/// `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition an entity key belongs to among `partitions` partitions.
///
/// # Panics
/// Panics if `partitions` is zero; configuration validation rejects that earlier.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "partition count must be positive");
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_reference_values() {
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), *expected, "murmur2({input})");
        }
    }

    #[test]
    fn every_key_lands_in_range() {
        for i in 0..1000 {
            let key = format!("user-{i}");
            assert!(partition_for_key(key.as_bytes(), 7) < 7);
        }
    }
}
