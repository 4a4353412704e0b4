//! Hash maps keyed by ids this process hands out itself (sub-request ids, connection ids).
//! Nobody outside can choose those, so they need no flood-resistant SipHash: one multiply and
//! a shift mix them well enough, at a fraction of the cost on every frame.
//! Keys chosen by clients (the key maps) keep std's keyed hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one integer. Both halves of the result vary with every input bit, so
/// the table's bucket index (low bits) and its control byte (high bits) both spread.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only integer keys are expected; fold anything else in byte by byte all the same.
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn sequential_ids_spread_over_buckets_and_control_bytes() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut low = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        for id in 0u64..1024 {
            let h = build.hash_one(id);
            low.insert(h & 1023);
            high.insert(h >> 57);
        }
        // 1024 sequential ids: most low-bit buckets distinct, all 128 top-7-bit tags in use.
        assert!(low.len() > 600, "only {} distinct buckets", low.len());
        assert_eq!(high.len(), 128);
    }

    #[test]
    fn map_works_as_a_map() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000 {
            m.insert(i, i * 2);
        }
        assert!((0..10_000).all(|i| m[&i] == i * 2));
        assert_eq!(m.remove(&5), Some(10));
        assert!(!m.contains_key(&5));
    }
}
