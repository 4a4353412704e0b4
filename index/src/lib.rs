//! An open-addressing index from byte-string keys to positions in a caller's dense `Vec`,
//! for tables that hold a million keys and must never pause for long.
//!
//! Each slot holds the position and 32 bits of the key's hash, so a probe rarely looks at a
//! record that is not the one, and growing the index moves slots without reading a record or
//! hashing a key. (std's `HashMap` re-hashes every key when it grows: 150–390 ms at 0.5–1M
//! keys here, long enough for the master's ACK timeout to drop a slave that was only busy.)
//! A removal shifts the entries after it back (linear probing's backward-shift deletion), so
//! there are no tombstones either.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// An empty slot. A full one is `hash32 << 32 | position`, with positions below `u32::MAX`.
const EMPTY: u64 = u64::MAX;

/// Where a key is, or where it would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Its position in the caller's records.
    At(usize),
    /// Absent: pass this to [`TagIndex::insert`] along with the new record's position.
    Vacant(Vacancy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vacancy {
    slot: usize,
    hash: u32,
}

pub struct TagIndex {
    /// Length 0 or a power of two; linear probing from `hash32 & mask`.
    slots: Vec<u64>,
    len: usize,
    /// Keyed SipHash: keys come from clients, so where they land must not be predictable.
    hasher: RandomState,
}

impl Default for TagIndex {
    fn default() -> TagIndex {
        TagIndex {
            slots: Vec::new(),
            len: 0,
            hasher: RandomState::new(),
        }
    }
}

impl TagIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.len = 0;
    }

    /// This index's keyed hash of `key`, for [`TagIndex::find_hashed`]: a caller that looks
    /// one key up in several places (or in a map of its own) hashes it once.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Look `key` up; `key_at(position)` gives the key of a record the index points to.
    pub fn find<'a>(&self, key: &[u8], key_at: impl Fn(usize) -> &'a [u8]) -> Found {
        self.find_hashed(self.hash(key), key, key_at)
    }

    /// [`TagIndex::find`] with `hash` = [`TagIndex::hash`] of `key`, computed earlier.
    pub fn find_hashed<'a>(
        &self,
        hash: u64,
        key: &[u8],
        key_at: impl Fn(usize) -> &'a [u8],
    ) -> Found {
        debug_assert_eq!(hash, self.hash(key), "hash of another key or index");
        let hash = (hash >> 32) as u32;
        if self.slots.is_empty() {
            return Found::Vacant(Vacancy { slot: 0, hash });
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            let e = self.slots[slot];
            if e == EMPTY {
                return Found::Vacant(Vacancy { slot, hash });
            }
            let pos = e as u32 as usize;
            if (e >> 32) as u32 == hash && key_at(pos) == key {
                return Found::At(pos);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The position that the first slot a lookup with `hash` reads points at, if its tag
    /// matches: most likely the key's record. Reading that slot (and then the record) for a
    /// batch of keys before looking them up lets their cache misses overlap instead of
    /// queueing one behind another: at a million keys a lookup is two or three misses, and
    /// safe Rust has no prefetch instruction, but a plain read in a tight loop does the same.
    pub fn likely(&self, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = (hash >> 32) as u32;
        let e = self.slots[tag as usize & (self.slots.len() - 1)];
        (e != EMPTY && (e >> 32) as u32 == tag).then_some(e as u32 as usize)
    }

    /// Record that the key `find` reported vacant now lives at `pos`. Panics on a position of
    /// `u32::MAX` or more (over 4 billion keys).
    pub fn insert(&mut self, vacancy: Vacancy, pos: usize) {
        let pos = u32::try_from(pos)
            .ok()
            .filter(|&p| p != u32::MAX)
            .expect("over 4 billion keys in one index");
        let entry = u64::from(vacancy.hash) << 32 | u64::from(pos);
        self.len += 1;
        if self.len * 8 > self.slots.len() * 7 {
            self.grow();
            let mask = self.slots.len() - 1;
            let mut slot = vacancy.hash as usize & mask;
            while self.slots[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = entry;
        } else {
            self.slots[vacancy.slot] = entry;
        }
    }

    /// Forget the key at position `pos`, found with `hash` (= [`TagIndex::hash`] of its key).
    /// Returns false if the index has no entry for it.
    pub fn remove(&mut self, hash: u64, pos: usize) -> bool {
        let Some(mut hole) = self.slot_of(hash, pos) else {
            return false;
        };
        let mask = self.slots.len() - 1;
        self.len -= 1;
        // Move back every later entry of the run that may sit in the hole: one whose home
        // slot is not cyclically in (hole, its slot].
        let mut slot = (hole + 1) & mask;
        loop {
            let e = self.slots[slot];
            if e == EMPTY {
                break;
            }
            let home = (e >> 32) as usize & mask;
            let stays = if hole <= slot {
                hole < home && home <= slot
            } else {
                hole < home || home <= slot
            };
            if !stays {
                self.slots[hole] = e;
                hole = slot;
            }
            slot = (slot + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        true
    }

    /// The entry for the key at `from` (whose hash is `hash`) now points at `to`: the caller
    /// moved the record (to fill a hole, say). Returns false if there is no such entry.
    pub fn repoint(&mut self, hash: u64, from: usize, to: usize) -> bool {
        let Some(slot) = self.slot_of(hash, from) else {
            return false;
        };
        let to = u32::try_from(to).expect("over 4 billion keys in one index");
        self.slots[slot] = (self.slots[slot] >> 32) << 32 | u64::from(to);
        true
    }

    /// The slot whose entry has `hash`'s tag and points at `pos`.
    fn slot_of(&self, hash: u64, pos: usize) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = (hash >> 32) as u32;
        let want = u64::from(tag) << 32 | pos as u64;
        let mask = self.slots.len() - 1;
        let mut slot = tag as usize & mask;
        loop {
            match self.slots[slot] {
                EMPTY => return None,
                e if e == want => return Some(slot),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Bytes the slots take on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    /// The slots `len` entries need: a power of two (at least 16) they fill to at most 7/8.
    fn size_for(&self, len: usize) -> usize {
        let mut size = self.slots.len().max(16);
        while len * 8 > size * 7 {
            size *= 2;
        }
        size
    }

    /// How many more bytes the slots would take after `additional` more inserts.
    pub fn growth_bytes(&self, additional: usize) -> usize {
        if (self.len + additional) * 8 <= self.slots.len() * 7 {
            return 0;
        }
        (self.size_for(self.len + additional) - self.slots.len()) * std::mem::size_of::<u64>()
    }

    /// Make room for `additional` more inserts now, so that they do not allocate; an error
    /// (the allocation failed) leaves the index as it was. For a caller under a memory cap
    /// that must not abort on a failed allocation. A [`Vacancy`] found before this call is
    /// stale after it: look the key up again.
    pub fn try_reserve(
        &mut self,
        additional: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        if (self.len + additional) * 8 <= self.slots.len() * 7 {
            return Ok(());
        }
        let size = self.size_for(self.len + additional);
        let mut slots = Vec::new();
        slots.try_reserve_exact(size)?;
        slots.resize(size, EMPTY);
        self.rehash_into(slots);
        Ok(())
    }

    /// Double the slots (at least 16) and place every entry again from the hash bits it
    /// carries.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        self.rehash_into(vec![EMPTY; size]);
    }

    /// Move every entry into `slots` (empty, a power of two long) and keep those.
    fn rehash_into(&mut self, mut slots: Vec<u64>) {
        let mask = slots.len() - 1;
        for &e in self.slots.iter().filter(|&&e| e != EMPTY) {
            let mut slot = (e >> 32) as usize & mask;
            while slots[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            slots[slot] = e;
        }
        self.slots = slots;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn likely_names_the_position_the_first_probe_points_at() {
        let mut idx = TagIndex::default();
        assert_eq!(idx.likely(idx.hash(b"k")), None, "no slots yet");
        let h = idx.hash(b"k");
        let Found::Vacant(v) = idx.find_hashed(h, b"k", |_| &b""[..]) else {
            panic!("absent");
        };
        idx.insert(v, 0);
        assert_eq!(
            idx.likely(h),
            Some(0),
            "alone, a key sits in its first slot"
        );
    }
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn finds_what_was_inserted_through_growth_and_clear() {
        let mut index = TagIndex::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut model: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in 0..50_000u32 {
            // Repeats: about a third of the lookups find an existing key.
            let key = format!("key-{}", (i * 7919) % 35_000).into_bytes();
            match index.find(&key, |p| &keys[p]) {
                Found::At(pos) => assert_eq!(model[&key], pos, "{key:?}"),
                Found::Vacant(v) => {
                    assert!(!model.contains_key(&key), "{key:?} was inserted before");
                    index.insert(v, keys.len());
                    model.insert(key.clone(), keys.len());
                    keys.push(key);
                }
            }
        }
        assert_eq!(index.len(), model.len());
        for (key, &pos) in &model {
            assert_eq!(index.find(key, |p| &keys[p]), Found::At(pos));
        }
        assert!(matches!(
            index.find(b"absent", |p| &keys[p]),
            Found::Vacant(_)
        ));
        index.clear();
        assert!(index.is_empty());
        assert!(matches!(
            index.find(b"key-1", |p| &keys[p]),
            Found::Vacant(_)
        ));
    }

    /// Removals (with the caller filling each hole with its last record, as a `Vec`'s
    /// `swap_remove` does) mixed with inserts, against a `HashMap`, on an index small enough
    /// that runs wrap around the end of the slots.
    #[test]
    fn removal_keeps_every_other_key_findable() {
        let mut index = TagIndex::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut model: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut state = 11u64;
        for step in 0..40_000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = format!("k{}", (state >> 33) % 300).into_bytes();
            match index.find(&key, |p| &keys[p]) {
                Found::At(pos) if step % 3 != 0 => {
                    assert_eq!(model.remove(&key), Some(pos));
                    assert!(index.remove(index.hash(&key), pos));
                    let last = keys.len() - 1;
                    if pos != last {
                        let moved = keys[last].clone();
                        assert!(index.repoint(index.hash(&moved), last, pos));
                        model.insert(moved, pos);
                    }
                    keys.swap_remove(pos);
                }
                Found::At(pos) => assert_eq!(model[&key], pos),
                Found::Vacant(v) => {
                    index.insert(v, keys.len());
                    model.insert(key.clone(), keys.len());
                    keys.push(key);
                }
            }
            assert_eq!(index.len(), model.len(), "step {step}");
        }
        for (key, &pos) in &model {
            assert_eq!(index.find(key, |p| &keys[p]), Found::At(pos), "{key:?}");
        }
        assert!(!index.remove(index.hash(b"absent"), 0));
    }

    #[test]
    fn reserving_room_means_inserts_do_not_grow() {
        let mut index = TagIndex::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        assert_eq!(index.heap_bytes(), 0);
        assert_eq!(index.growth_bytes(1), 16 * 8);
        for i in 0..1000u32 {
            let key = format!("k{i}").into_bytes();
            let before = index.heap_bytes();
            let growth = index.growth_bytes(1);
            index.try_reserve(1).unwrap();
            assert_eq!(index.heap_bytes(), before + growth, "key {i}");
            let Found::Vacant(v) = index.find(&key, |p| &keys[p]) else {
                panic!("k{i} is new");
            };
            let reserved = index.heap_bytes();
            index.insert(v, keys.len());
            keys.push(key);
            assert_eq!(index.heap_bytes(), reserved, "the insert allocated");
        }
        for (pos, key) in keys.iter().enumerate() {
            assert_eq!(index.find(key, |p| &keys[p]), Found::At(pos));
        }
    }
}
