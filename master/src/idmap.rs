//! Ids this process hands out itself, and maps keyed by them. Nobody outside can choose those,
//! so they need no flood-resistant SipHash: for sub-request ids one multiply and a shift mix
//! them well enough ([`IdMap`]), and connection ids, small and dense, index a vector
//! ([`ConnMap`]). Keys chosen by clients (the key maps) keep std's keyed hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A connection, as the event loop numbers them (its slab key).
pub type ConnId = usize;

/// An operation in flight (its slot in the master's slab of operations).
pub(crate) type OpId = usize;

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

/// A map from connection ids (the event loop's slab keys: small, dense and reused) to `V`, as
/// a vector indexed by the id: a lookup per frame costs an index, not a hash.
pub struct ConnMap<V> {
    slots: Vec<Option<V>>,
}

impl<V> Default for ConnMap<V> {
    fn default() -> ConnMap<V> {
        ConnMap { slots: Vec::new() }
    }
}

impl<V> ConnMap<V> {
    pub fn get(&self, id: &usize) -> Option<&V> {
        self.slots.get(*id).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: &usize) -> Option<&mut V> {
        self.slots.get_mut(*id).and_then(Option::as_mut)
    }

    /// Returns the value the id had.
    pub fn insert(&mut self, id: usize, value: V) -> Option<V> {
        if self.slots.len() <= id {
            self.slots.resize_with(id + 1, || None);
        }
        self.slots[id].replace(value)
    }

    pub fn remove(&mut self, id: &usize) -> Option<V> {
        self.slots.get_mut(*id).and_then(Option::take)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }

    /// Every id and its value (a pass over the slots: for rare events only).
    pub fn iter(&self) -> impl Iterator<Item = (usize, &V)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, v)| v.as_ref().map(|v| (id, v)))
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
    fn conn_map_works_as_a_map() {
        let mut m: ConnMap<String> = ConnMap::default();
        assert_eq!(m.get(&3), None);
        assert_eq!(m.remove(&3), None);
        assert_eq!(m.insert(3, "a".into()), None);
        assert_eq!(m.insert(0, "b".into()), None);
        assert_eq!(m.insert(3, "c".into()).as_deref(), Some("a"));
        m.get_mut(&0).unwrap().push('!');
        assert_eq!(m.get(&0).map(String::as_str), Some("b!"));
        assert_eq!(m.get(&1), None);
        assert_eq!(m.remove(&3).as_deref(), Some("c"));
        assert_eq!(m.get(&3), None);
        assert_eq!(m.get(&1000), None);
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
