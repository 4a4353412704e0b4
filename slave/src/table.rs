//! The slave's key table, laid out for memory: a slave holds its share of every key, so bytes
//! per key decide how much data a machine can hold.
//!
//! Each key is one heap block, `[key length: u32][key][value]`, in a dense `Vec` beside its
//! version, found through a [`TagIndex`] (which grows without re-hashing keys, so the slave
//! never stalls for long). A `HashMap<Box<[u8]>, (u64, Box<[u8]>)>` costs 40 bytes a bucket
//! (up to twice that per key just after the table grows) plus a second allocation for the
//! value; this layout costs 24 bytes per record, 9–18 per key for the index and one
//! allocation. `bench-results/memory.md` has the measured figures.

use dsm_index::{Found, TagIndex};

const HEADER: usize = 4;

struct Record {
    version: u64,
    /// `[key length: u32 BE][key][value]`.
    bytes: Box<[u8]>,
}

impl Record {
    fn new(version: u64, key: &[u8], value: &[u8]) -> Record {
        let klen = u32::try_from(key.len()).expect("key over u32::MAX bytes");
        let mut bytes = Vec::with_capacity(HEADER + key.len() + value.len());
        bytes.extend_from_slice(&klen.to_be_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Record {
            version,
            bytes: bytes.into_boxed_slice(),
        }
    }

    fn key_len(&self) -> usize {
        let mut b = [0; HEADER];
        b.copy_from_slice(&self.bytes[..HEADER]);
        u32::from_be_bytes(b) as usize
    }

    fn key(&self) -> &[u8] {
        &self.bytes[HEADER..HEADER + self.key_len()]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[HEADER + self.key_len()..]
    }
}

#[derive(Default)]
pub struct Table {
    records: Vec<Record>,
    index: TagIndex,
}

impl Table {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn find(&self, key: &[u8]) -> Found {
        self.index.find(key, |pos| self.records[pos].key())
    }

    /// The version and value held for `key`.
    pub fn get(&self, key: &[u8]) -> Option<(u64, &[u8])> {
        match self.find(key) {
            Found::At(pos) => {
                let r = &self.records[pos];
                Some((r.version, r.value()))
            }
            Found::Vacant(_) => None,
        }
    }

    /// Drop `key` if the version held is `version` or older (the master found it stale);
    /// returns whether it was dropped. The last record fills the hole.
    pub fn drop_stale(&mut self, key: &[u8], version: u64) -> bool {
        let hash = self.index.hash(key);
        let pos = match self
            .index
            .find_hashed(hash, key, |pos| self.records[pos].key())
        {
            Found::At(pos) if self.records[pos].version <= version => pos,
            _ => return false,
        };
        self.index.remove(hash, pos);
        let last = self.records.len() - 1;
        if pos != last {
            let moved = self.index.hash(self.records[last].key());
            self.index.repoint(moved, last, pos);
        }
        self.records.swap_remove(pos);
        true
    }

    /// The keys and versions of the records from position `from` on, until about `max_bytes`
    /// of keys; and the position to go on from (`None`: that was the end).
    pub fn versions_from(
        &self,
        from: usize,
        max_bytes: usize,
    ) -> (Vec<(Vec<u8>, u64)>, Option<usize>) {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut pos = from;
        while let Some(r) = self.records.get(pos) {
            if bytes >= max_bytes {
                return (out, Some(pos));
            }
            bytes += r.key().len() + 12;
            out.push((r.key().to_vec(), r.version));
            pos += 1;
        }
        (out, None)
    }

    /// Keep `value` as `version` of `key` unless a newer version is already held; returns
    /// the version held afterwards.
    pub fn put(&mut self, key: &[u8], version: u64, value: &[u8]) -> u64 {
        match self.find(key) {
            Found::At(pos) => {
                let r = &mut self.records[pos];
                if r.version >= version {
                    return r.version;
                }
                let start = HEADER + key.len();
                if r.bytes.len() - start == value.len() {
                    r.bytes[start..].copy_from_slice(value);
                } else {
                    r.bytes = Record::new(version, key, value).bytes;
                }
                r.version = version;
            }
            Found::Vacant(vacancy) => {
                self.index.insert(vacancy, self.records.len());
                self.records.push(Record::new(version, key, value));
            }
        }
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_map_that_keeps_the_newest_version() {
        // Against a HashMap model, with key collisions in the probe sequence guaranteed by
        // the number of keys, growth through several sizes, and values changing length.
        let mut t = Table::default();
        let mut model: HashMap<Vec<u8>, (u64, Vec<u8>)> = HashMap::new();
        let mut state = 7u64;
        for step in 0..20_000u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = format!("k{}", (state >> 33) % 3000).into_bytes();
            let version = (state >> 20) % 50;
            let value = vec![step as u8; ((state >> 40) % 5) as usize];
            let expect = match model.get(&key) {
                Some(&(held, _)) if held >= version => held,
                _ => {
                    model.insert(key.clone(), (version, value.clone()));
                    version
                }
            };
            assert_eq!(t.put(&key, version, &value), expect, "step {step}");
        }
        assert_eq!(t.len(), model.len());
        for (k, (v, val)) in &model {
            assert_eq!(t.get(k), Some((*v, &val[..])), "key {k:?}");
        }
        assert_eq!(t.get(b"absent"), None);
    }

    #[test]
    fn older_versions_are_refused_and_values_change_size() {
        let mut t = Table::default();
        assert_eq!(t.put(b"k", 5, b"five"), 5);
        assert_eq!(t.put(b"k", 3, b"three"), 5);
        assert_eq!(t.get(b"k"), Some((5, &b"five"[..])));
        assert_eq!(t.put(b"k", 6, b"a much longer value"), 6);
        assert_eq!(t.get(b"k"), Some((6, &b"a much longer value"[..])));
        assert_eq!(t.put(b"k", 7, b""), 7);
        assert_eq!(t.get(b"k"), Some((7, &b""[..])));
        assert_eq!(t.put(b"", 1, b"empty key"), 1);
        assert_eq!(t.get(b""), Some((1, &b"empty key"[..])));
    }

    #[test]
    fn stale_copies_are_dropped_and_every_record_is_listed_once() {
        let mut t = Table::default();
        for i in 0..500u64 {
            t.put(format!("k{i}").as_bytes(), i + 10, b"v");
        }
        assert!(!t.drop_stale(b"k3", 12), "a newer version stays");
        assert!(t.drop_stale(b"k3", 13));
        assert!(!t.drop_stale(b"k3", 100), "gone already");
        for i in (0..500u64).step_by(7) {
            t.drop_stale(format!("k{i}").as_bytes(), u64::MAX);
        }
        let mut listed = Vec::new();
        let mut from = Some(0);
        while let Some(at) = from {
            let (chunk, next) = t.versions_from(at, 100);
            listed.extend(chunk);
            from = next;
        }
        let mut want: Vec<(Vec<u8>, u64)> = (0..500u64)
            .filter(|i| i % 7 != 0 && *i != 3)
            .map(|i| (format!("k{i}").into_bytes(), i + 10))
            .collect();
        listed.sort();
        want.sort();
        assert_eq!(listed, want);
        for (k, v) in &want {
            assert_eq!(t.get(k).map(|(v, _)| v), Some(*v));
        }
    }
}
