//! An open-addressing index from byte-string keys to positions in a caller's dense array,
//! for tables that hold ten million keys and must never pause for long; and [`Chunked`],
//! that array, which grows without copying its records.
//!
//! Each slot holds the position and 32 bits of the key's hash, so a probe rarely looks at a
//! record that is not the one, and growing the index moves slots without reading a record or
//! hashing a key. (std's `HashMap` re-hashes every key when it grows: 150–390 ms at 0.5–1M
//! keys here, long enough for the master's ACK timeout to drop a slave that was only busy.)
//! A removal shifts the entries after it back (linear probing's backward-shift deletion), so
//! there are no tombstones either.
//!
//! Growth is incremental, as Redis rehashes: moving even tags alone, 16M slots in one step
//! took 240 ms of one insert at 7.3M keys (and the records' `Vec` doubling as much again),
//! and at 10M keys the master's stall outlasted its slaves' patience. So a growth only
//! allocates the doubled slots; the old ones stay, and every insert or removal then moves
//! the next [`MIGRATE_STEP`] old slots across, in slot order, until none is left (long before
//! the next growth: that comes after 7/8 of the old size more inserts). Meanwhile a lookup
//! tries the new slots, then the old. Linear probing needs two cares for that: the move
//! starts just after an empty old slot, so no run of full slots wraps past where it began;
//! and a key whose home slot has been moved already but whose entry has not (it sits further
//! along its run) is probed from the first slot not yet moved, which is where its run now
//! starts. Removals from the old slots shift entries back as usual.

mod chunked;

pub use chunked::{Chunked, CHUNK};

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// An empty slot. A full one is `hash32 << 32 | position + 1`, with positions below
/// `u32::MAX`. Empty is zero so that new slots come from the allocator already zeroed
/// (`vec![0; n]` is `calloc`: fresh pages, faulted in as they are first written, so a growth
/// does not write 128 MB of empties in one step).
const EMPTY: u64 = 0;

/// The position a full slot points at.
#[inline]
fn position(e: u64) -> usize {
    (e as u32 - 1) as usize
}

/// The slot for the entry with `tag` at `pos` (below `u32::MAX`).
#[inline]
fn entry(tag: u32, pos: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(pos + 1)
}

/// Old slots moved to the new ones per insert or removal during a growth: the most work
/// any single insert does for growing (beyond placing each moved entry with a short probe;
/// a few microseconds in all). The old slots are all moved, and freed, after 1/32 of their
/// number of inserts: a growth at 7/8 full ends by 29/32, so the two sets of slots are held
/// together briefly (a table of 1M keys, as `make mem` loads, is past its growth).
pub const MIGRATE_STEP: usize = 32;

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
    /// Length 0 or a power of two; linear probing from `hash32 & mask`. Every insert lands
    /// here.
    slots: Vec<u64>,
    /// During a growth, the slots being moved out of (empty otherwise): those from
    /// `start + moved` on (cyclically), until `moved == old.len()`.
    old: Vec<u64>,
    /// An old slot that was empty when the growth began: no run crosses it.
    start: usize,
    /// How many old slots, from `start` on, have been moved (and are empty).
    moved: usize,
    len: usize,
    /// Entries moved from old slots to new since the index was made: tests check the bound.
    moved_entries: u64,
    /// Bytes of old slots freed since the index was made, for callers that count heap.
    freed_bytes: u64,
    /// Old slots moved per insert or removal: [`MIGRATE_STEP`] (tests set less).
    step: usize,
    /// Keyed SipHash: keys come from clients, so where they land must not be predictable.
    hasher: RandomState,
}

impl Default for TagIndex {
    fn default() -> TagIndex {
        TagIndex {
            slots: Vec::new(),
            old: Vec::new(),
            start: 0,
            moved: 0,
            len: 0,
            moved_entries: 0,
            freed_bytes: 0,
            step: MIGRATE_STEP,
            hasher: RandomState::new(),
        }
    }
}

/// Where an entry was found: which slots, and which one.
#[derive(Clone, Copy)]
enum At {
    New(usize),
    Old(usize),
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
        self.old = Vec::new();
        self.moved = 0;
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
    #[inline]
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
                break;
            }
            let pos = position(e);
            if (e >> 32) as u32 == hash && key_at(pos) == key {
                return Found::At(pos);
            }
            slot = (slot + 1) & mask;
        }
        if !self.old.is_empty() {
            if let Some(pos) = self.find_old(hash, key, key_at) {
                return Found::At(pos);
            }
        }
        Found::Vacant(Vacancy { slot, hash })
    }

    /// The old slot a probe for `tag` starts at: its home, or the first slot not yet moved
    /// if its home has been (a run that began before it now begins there).
    fn old_home(&self, tag: u32) -> usize {
        let mask = self.old.len() - 1;
        let home = tag as usize & mask;
        if home.wrapping_sub(self.start) & mask < self.moved {
            (self.start + self.moved) & mask
        } else {
            home
        }
    }

    #[cold]
    fn find_old<'a>(
        &self,
        tag: u32,
        key: &[u8],
        key_at: impl Fn(usize) -> &'a [u8],
    ) -> Option<usize> {
        let mask = self.old.len() - 1;
        let mut slot = self.old_home(tag);
        loop {
            let e = self.old[slot];
            if e == EMPTY {
                return None;
            }
            let pos = position(e);
            if (e >> 32) as u32 == tag && key_at(pos) == key {
                return Some(pos);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The position that the first slot a lookup with `hash` reads points at, if its tag
    /// matches: most likely the key's record. Reading that slot (and then the record) for a
    /// batch of keys before looking them up lets their cache misses overlap instead of
    /// queueing one behind another: at a million keys a lookup is two or three misses, and
    /// safe Rust has no prefetch instruction, but a plain read in a tight loop does the same.
    /// During a growth, the old slots are read too if the new one does not match.
    pub fn likely(&self, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = (hash >> 32) as u32;
        let e = self.slots[tag as usize & (self.slots.len() - 1)];
        if e != EMPTY && (e >> 32) as u32 == tag {
            return Some(position(e));
        }
        if self.old.is_empty() {
            return None;
        }
        let e = self.old[self.old_home(tag)];
        (e != EMPTY && (e >> 32) as u32 == tag).then(|| position(e))
    }

    /// Record that the key `find` reported vacant now lives at `pos`. Panics on a position of
    /// `u32::MAX` or more (over 4 billion keys).
    pub fn insert(&mut self, vacancy: Vacancy, pos: usize) {
        let pos = u32::try_from(pos)
            .ok()
            .filter(|&p| p != u32::MAX)
            .expect("over 4 billion keys in one index");
        let entry = entry(vacancy.hash, pos);
        self.len += 1;
        if self.slots.is_empty() {
            self.slots = vec![EMPTY; 16];
            self.place(entry);
            return;
        }
        self.slots[vacancy.slot] = entry;
        if !self.old.is_empty() {
            self.migrate(self.step);
        } else if self.len * 8 > self.slots.len() * 7 {
            let size = self.slots.len() * 2;
            self.begin_growth(vec![EMPTY; size]);
            self.migrate(self.step);
        }
    }

    /// Put `entry` in the new slots, probing from its home.
    fn place(&mut self, entry: u64) {
        let mask = self.slots.len() - 1;
        let mut slot = (entry >> 32) as usize & mask;
        while self.slots[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = entry;
    }

    /// Start moving every entry into `slots` (empty, a power of two long, larger), a few at
    /// a time. Finishes a growth still under way first (which inserts never leave unfinished).
    fn begin_growth(&mut self, slots: Vec<u64>) {
        if !self.old.is_empty() {
            self.migrate(usize::MAX);
        }
        self.old = std::mem::replace(&mut self.slots, slots);
        // At most 7/8 full: there is an empty slot, and a growth starts just after an insert,
        // when runs are about a dozen slots long on average.
        self.start = self
            .old
            .iter()
            .position(|&e| e == EMPTY)
            .expect("an index at most 7/8 full has an empty slot");
        self.moved = 0;
    }

    /// Move up to `budget` more old slots into the new ones; free the old ones when done.
    fn migrate(&mut self, budget: usize) {
        let mask = self.old.len().wrapping_sub(1);
        let end = self.moved.saturating_add(budget).min(self.old.len());
        while self.moved < end {
            let slot = (self.start + self.moved) & mask;
            let e = std::mem::replace(&mut self.old[slot], EMPTY);
            self.moved += 1;
            if e != EMPTY {
                self.place(e);
                self.moved_entries += 1;
            }
        }
        if self.moved == self.old.len() {
            self.freed_bytes += self.growing_bytes() as u64;
            self.old = Vec::new();
            self.moved = 0;
        }
    }

    /// Entries moved from old slots to new so far, over the index's life: with
    /// [`MIGRATE_STEP`], the bound on what one insert or removal moves.
    pub fn moved_entries(&self) -> u64 {
        self.moved_entries
    }

    /// An index that moves `step` old slots per insert or removal while growing: small steps
    /// leave runs half moved between calls for longer.
    #[cfg(test)]
    fn with_step(step: usize) -> TagIndex {
        TagIndex {
            step,
            ..TagIndex::default()
        }
    }

    /// Whether a growth is under way (old slots still hold entries to move).
    pub fn growing(&self) -> bool {
        !self.old.is_empty()
    }

    /// Forget the key at position `pos`, found with `hash` (= [`TagIndex::hash`] of its key).
    /// Returns false if the index has no entry for it.
    pub fn remove(&mut self, hash: u64, pos: usize) -> bool {
        let Some(at) = self.slot_of(hash, pos) else {
            return false;
        };
        self.len -= 1;
        // In the old slots too: an entry whose home slot has been moved lies, as seen from
        // `start`, before the hole, so it moves back as it would anyway.
        match at {
            At::New(hole) => Self::shift_back(&mut self.slots, hole),
            At::Old(hole) => Self::shift_back(&mut self.old, hole),
        }
        if !self.old.is_empty() {
            self.migrate(self.step);
        }
        true
    }

    /// Empty `slots[hole]` and move back every later entry of its run that may sit in the
    /// hole: one whose home slot is not cyclically in (hole, its slot].
    fn shift_back(slots: &mut [u64], mut hole: usize) {
        let mask = slots.len() - 1;
        let mut slot = (hole + 1) & mask;
        loop {
            let e = slots[slot];
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
                slots[hole] = e;
                hole = slot;
            }
            slot = (slot + 1) & mask;
        }
        slots[hole] = EMPTY;
    }

    /// The entry for the key at `from` (whose hash is `hash`) now points at `to`: the caller
    /// moved the record (to fill a hole, say). Returns false if there is no such entry.
    pub fn repoint(&mut self, hash: u64, from: usize, to: usize) -> bool {
        let Some(at) = self.slot_of(hash, from) else {
            return false;
        };
        let to = u32::try_from(to)
            .ok()
            .filter(|&p| p != u32::MAX)
            .expect("over 4 billion keys in one index");
        let e = match at {
            At::New(slot) => &mut self.slots[slot],
            At::Old(slot) => &mut self.old[slot],
        };
        *e = entry((*e >> 32) as u32, to);
        true
    }

    /// The slot whose entry has `hash`'s tag and points at `pos`.
    fn slot_of(&self, hash: u64, pos: usize) -> Option<At> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = (hash >> 32) as u32;
        let Ok(pos) = u32::try_from(pos) else {
            return None;
        };
        let want = u64::from(tag) << 32 | (u64::from(pos) + 1);
        let probe = |slots: &[u64], mut slot: usize| {
            let mask = slots.len() - 1;
            loop {
                match slots[slot] {
                    EMPTY => return None,
                    e if e == want => return Some(slot),
                    _ => slot = (slot + 1) & mask,
                }
            }
        };
        if let Some(slot) = probe(&self.slots, tag as usize & (self.slots.len() - 1)) {
            return Some(At::New(slot));
        }
        if self.old.is_empty() {
            return None;
        }
        probe(&self.old, self.old_home(tag)).map(At::Old)
    }

    /// Bytes the slots take on the heap (during a growth, the old and the new).
    pub fn heap_bytes(&self) -> usize {
        (self.slots.capacity() + self.old.capacity()) * std::mem::size_of::<u64>()
    }

    /// Bytes of old slots freed when growths ended, over the index's life: the heap that
    /// [`TagIndex::heap_bytes`] gave back without a removal (an insert can end a growth).
    pub fn freed_bytes(&self) -> u64 {
        self.freed_bytes
    }

    /// Bytes of old slots that a growth under way will free when it ends.
    pub fn growing_bytes(&self) -> usize {
        self.old.capacity() * std::mem::size_of::<u64>()
    }

    /// The slots `len` entries need: a power of two (at least 16) they fill to at most 7/8.
    fn size_for(&self, len: usize) -> usize {
        let mut size = self.slots.len().max(16);
        while len * 8 > size * 7 {
            size *= 2;
        }
        size
    }

    /// How many more bytes the slots would take after `additional` more inserts (with the
    /// old slots of a growth, which are freed only when every entry has moved).
    pub fn growth_bytes(&self, additional: usize) -> usize {
        if (self.len + additional) * 8 <= self.slots.len() * 7 {
            return 0;
        }
        (self.size_for(self.len + additional) * std::mem::size_of::<u64>())
            .saturating_sub(self.growing_bytes())
    }

    /// Make room for `additional` more inserts now, so that they do not allocate; an error
    /// (the allocation failed) leaves the index as it was. For a caller under a memory cap
    /// that must not abort on a failed allocation. A [`Vacancy`] found before this call is
    /// stale after it: look the key up again. Room for more than the next growth finishes a
    /// growth under way at once.
    pub fn try_reserve(
        &mut self,
        additional: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        if (self.len + additional) * 8 <= self.slots.len() * 7 {
            return Ok(());
        }
        let size = self.size_for(self.len + additional);
        // std has no fallible zeroed allocation: try one of the size, give it back, and take
        // it zeroed (one thread: what was just free is free again).
        Vec::<u64>::new().try_reserve_exact(size)?;
        let slots = vec![EMPTY; size];
        if self.slots.is_empty() {
            self.slots = slots;
        } else {
            self.begin_growth(slots);
        }
        Ok(())
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
            let freeing = index.growing_bytes();
            index.insert(v, keys.len());
            keys.push(key);
            // It allocates nothing; it may end a growth, which frees the old slots.
            let freed = freeing - index.growing_bytes();
            assert_eq!(index.heap_bytes() + freed, reserved, "the insert allocated");
        }
        for (pos, key) in keys.iter().enumerate() {
            assert_eq!(index.find(key, |p| &keys[p]), Found::At(pos));
        }
    }

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// Inserts, removals (the caller filling each hole with its last record) and lookups of
    /// present and absent keys, against a `HashMap`, through many growths, with the key count
    /// swinging up and down so that removals, repoints and lookups land on old slots while
    /// they are being moved, and small sizes make runs wrap around the end of the slots.
    /// Seeded; the index's own hash keys differ per run, so each run places keys anew.
    #[test]
    fn matches_a_map_while_growing_incrementally() {
        for seed in 1..=6u64 {
            // Step 1 also leaves growths unfinished when the next begins.
            let mut index = TagIndex::with_step([1, 2, MIGRATE_STEP][seed as usize % 3]);
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut model: HashMap<Vec<u8>, usize> = HashMap::new();
            let mut state = seed;
            let (mut growths, mut removed_growing, mut found_growing) = (0, 0, 0);
            let mut was_growing = false;
            // The share of inserts goes 3/4, 1/4, 3/4...: the table fills and drains.
            for step in 0..120_000u32 {
                let filling = (step / 15_000) % 2 == 0;
                let space = 1 + (lcg(&mut state) % 40_000);
                let key = format!("k{space}").into_bytes();
                let insert = lcg(&mut state) % 4 < if filling { 3 } else { 1 };
                let growing = index.growing();
                if growing && !was_growing {
                    growths += 1;
                }
                was_growing = growing;
                match index.find(&key, |p| &keys[p]) {
                    Found::At(pos) => {
                        assert_eq!(model.get(&key), Some(&pos), "seed {seed} step {step}");
                        found_growing += usize::from(growing);
                        if !insert {
                            removed_growing += usize::from(growing);
                            model.remove(&key);
                            assert!(index.remove(index.hash(&key), pos));
                            let last = keys.len() - 1;
                            if pos != last {
                                let moved = keys[last].clone();
                                assert!(index.repoint(index.hash(&moved), last, pos));
                                model.insert(moved, pos);
                            }
                            keys.swap_remove(pos);
                        }
                    }
                    Found::Vacant(v) => {
                        assert!(!model.contains_key(&key), "seed {seed} step {step}: lost");
                        if insert {
                            index.insert(v, keys.len());
                            model.insert(key.clone(), keys.len());
                            keys.push(key);
                        }
                    }
                }
                assert_eq!(index.len(), model.len(), "seed {seed} step {step}");
                if step % 9_973 == 0 {
                    for (key, &pos) in &model {
                        let found = index.find(key, |p| &keys[p]);
                        assert_eq!(found, Found::At(pos), "seed {seed} step {step}");
                    }
                }
            }
            for (key, &pos) in &model {
                assert_eq!(index.find(key, |p| &keys[p]), Found::At(pos), "seed {seed}");
            }
            assert!(growths >= 8, "seed {seed}: {growths} growths");
            assert!(removed_growing > 50, "seed {seed}: {removed_growing}");
            assert!(found_growing > 200, "seed {seed}: {found_growing}");
            assert!(!index.remove(index.hash(b"absent"), 0));
        }
    }

    /// No insert moves more than [`MIGRATE_STEP`] entries, every growth moves each entry the
    /// old slots held exactly once, and it is over before the next growth begins.
    #[test]
    fn no_insert_moves_more_than_the_step() {
        let mut index = TagIndex::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut owed = 0u64;
        let mut growths = 0;
        for i in 0..300_000u32 {
            let key = format!("key-{i}").into_bytes();
            let Found::Vacant(v) = index.find(&key, |p| &keys[p]) else {
                panic!("key-{i} is new");
            };
            let (before, was_growing, size) =
                (index.moved_entries(), index.growing(), index.slots.len());
            index.insert(v, keys.len());
            keys.push(key);
            let moved = index.moved_entries() - before;
            assert!(moved <= MIGRATE_STEP as u64, "insert {i} moved {moved}");
            if index.slots.len() != size && size != 0 {
                assert!(
                    !was_growing,
                    "insert {i}: a growth began before the last ended"
                );
                growths += 1;
                // The new entry is placed first, then moved with the rest: all are owed a move.
                owed += index.len() as u64;
            }
            if index.growing() && !was_growing && index.len() > 1000 {
                // Nearly every entry is still in the old slots: `likely` reads those too.
                let hits = (0..keys.len())
                    .filter(|&p| index.likely(index.hash(&keys[p])) == Some(p))
                    .count();
                assert!(hits > keys.len() / 3, "{hits} of {}", keys.len());
            }
        }
        assert!(growths >= 14, "{growths} growths");
        let mut i = keys.len();
        while index.growing() {
            let key = format!("key-{i}").into_bytes();
            let Found::Vacant(v) = index.find(&key, |p| &keys[p]) else {
                panic!("new");
            };
            index.insert(v, keys.len());
            keys.push(key);
            i += 1;
        }
        assert_eq!(index.moved_entries(), owed);
        assert!(
            index.heap_bytes() == index.slots.len() * 8,
            "the old slots are freed"
        );
        for (pos, key) in keys.iter().enumerate() {
            assert_eq!(index.find(key, |p| &keys[p]), Found::At(pos));
        }
    }
}
