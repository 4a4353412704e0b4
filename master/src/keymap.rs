//! The master's key index: for each key, the latest acknowledged version and the slaves that
//! hold it. Only acknowledged writes are recorded here.
//!
//! Laid out for memory, since the master indexes every key: a key's record holds the version
//! and up to two holders inline (16 bytes; R=2, the default, never allocates), longer holder
//! lists live in a side slab that the record points into, and the records sit in a dense
//! [`Chunked`] array found through a [`TagIndex`]. Neither grows in one step: the index moves
//! a few slots per insert and the records go in fixed blocks that never move. (With std's
//! `HashMap` the master paused for its rehash at 918k keys, `make mem` saw a 1 s maximum;
//! with a one-step index and a `Vec`, one insert at 7.3M keys took 240 ms and at 10M the
//! slaves gave up on the master.)
//!
//! A DELETE is recorded like a write, as a tombstone: its version carries
//! [`dsm_wire::TOMBSTONE`]. A collected tombstone leaves a hole in `records` that a later new
//! key fills, so a key never moves: SCAN walks `records` by position, and every key that
//! exists for the whole of a scan is at one position for all of it.
//!
//! The primary's read cache (`cache.rs`) lives here, keyed by those positions, so that every
//! change of a key's version goes through the one place that drops a value it did not come
//! with.

use dsm_index::{Chunked, Found, TagIndex};
use dsm_wire::{is_tombstone, plain_version};
use slab::Slab;

use crate::cache::{CacheStats, NewValue, ValueCache};
use dsm_net::SharedBytes;

/// Index of a slave in the master's slave table. An index is never reused: a slave that rejoins
/// gets a new one, so a dead index can never be mistaken for a live holder.
pub type SlaveIdx = u32;

/// No holder in this inline position.
const NONE: u32 = u32::MAX;
/// The holders are in the spill slab, at the position in the second word.
const SPILLED: u32 = u32::MAX - 1;

/// A key's state, borrowed from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// As recorded: with [`dsm_wire::TOMBSTONE`] for a deleted key.
    pub version: u64,
    pub holders: &'a [SlaveIdx],
}

impl Entry<'_> {
    /// The version without its tombstone bit, as versions are compared.
    pub fn plain(&self) -> u64 {
        plain_version(self.version)
    }

    /// Whether the latest version is a DELETE's tombstone.
    pub fn deleted(&self) -> bool {
        is_tombstone(self.version)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    version: u64,
    /// `[a, b]`, `[a, NONE]`, `[NONE, NONE]`, or `[SPILLED, position in the spill slab]`.
    ids: [u32; 2],
}

/// How a version a slave reports compares with the committed one ([`KeyIndex::reported_hashed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The committed version: the slave is a holder now.
    Held,
    /// Older than the committed version.
    Stale,
    /// Newer than the committed version (`None`: the key is not indexed).
    Newer(Option<u64>),
}

#[derive(Default)]
pub struct KeyIndex {
    records: Chunked<(Box<[u8]>, Slot)>,
    index: TagIndex,
    spill: Slab<Vec<SlaveIdx>>,
    /// Positions in `records` left by collected tombstones, filled by new keys first.
    holes: Vec<u32>,
    /// Committed values of small keys, by position (see `cache.rs`).
    values: ValueCache,
}

/// One page of [`KeyIndex::scan`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub keys: Vec<Vec<u8>>,
    /// Where the next page starts (0: the scan is over).
    pub next: u64,
}

/// A record's position as the read cache keys it.
fn cache_pos(pos: usize) -> u32 {
    u32::try_from(pos).expect("positions fit the tag index")
}

impl KeyIndex {
    /// An empty index with a read cache of at most `limit` bytes of small values (0: none) and
    /// `large_limit` of large ones (`cache.rs`).
    pub fn with_read_cache(limit: usize, large_limit: usize) -> KeyIndex {
        KeyIndex {
            values: ValueCache::new(limit, large_limit),
            ..KeyIndex::default()
        }
    }

    /// Forget every key (a primary stepping down, whose map the new primary's snapshot
    /// replaces); the read cache keeps its bound and its counters, and no value.
    pub fn reset(&mut self) {
        let mut values = std::mem::take(&mut self.values);
        values.clear();
        *self = KeyIndex {
            values,
            ..KeyIndex::default()
        };
    }

    /// Drop every cached value (a takeover: this map may be behind the slaves).
    pub fn clear_values(&mut self) {
        self.values.clear();
    }

    /// The read cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.values.stats()
    }

    fn find(&self, key: &[u8]) -> Found {
        self.index.find(key, |pos| &self.records[pos].0)
    }

    pub fn get(&self, key: &[u8]) -> Option<Entry<'_>> {
        self.get_hashed(self.hash(key), key)
    }

    /// The keyed hash [`KeyIndex::get_hashed`] takes. Client-chosen keys need a hash they
    /// cannot aim at one bucket, and that costs: the master computes it once per operation.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.index.hash(key)
    }

    /// [`KeyIndex::get`] with `hash` = [`KeyIndex::hash`] of `key`.
    pub fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<Entry<'_>> {
        match self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        {
            Found::At(pos) => Some(self.entry(&self.records[pos].1)),
            Found::Vacant(_) => None,
        }
    }

    /// [`KeyIndex::get_hashed`], and the cached value if the read cache holds the entry's
    /// version's (never for a tombstone) and `servable` says the entry's holders allow an
    /// answer. Counts a hit or a miss when it looks.
    #[inline]
    pub fn get_with_value(
        &self,
        hash: u64,
        key: &[u8],
        servable: impl FnOnce(&[SlaveIdx]) -> bool,
    ) -> Option<(Entry<'_>, Option<&[u8]>)> {
        self.look(hash, key, servable, true)
    }

    /// [`KeyIndex::get_with_value`] counting a hit but not a miss (see [`ValueCache::hit`]).
    #[inline]
    pub fn get_if_cached(
        &self,
        hash: u64,
        key: &[u8],
        servable: impl FnOnce(&[SlaveIdx]) -> bool,
    ) -> Option<(Entry<'_>, Option<&[u8]>)> {
        self.look(hash, key, servable, false)
    }

    #[inline]
    fn look(
        &self,
        hash: u64,
        key: &[u8],
        servable: impl FnOnce(&[SlaveIdx]) -> bool,
        count_miss: bool,
    ) -> Option<(Entry<'_>, Option<&[u8]>)> {
        match self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        {
            Found::At(pos) => {
                let slot = &self.records[pos].1;
                let entry = self.entry(slot);
                let look =
                    self.values.enabled() && !is_tombstone(slot.version) && servable(entry.holders);
                let value = match look {
                    true if count_miss => self.values.get(cache_pos(pos), slot.version),
                    true => self.values.hit(cache_pos(pos), slot.version),
                    false => None,
                };
                Some((entry, value))
            }
            Found::Vacant(_) => None,
        }
    }

    /// The key's large cached value at `version`, by reference (see [`ValueCache::large`]).
    pub fn large_value(&self, hash: u64, key: &[u8], version: u64) -> Option<SharedBytes> {
        match self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        {
            Found::At(pos) => self.values.large(cache_pos(pos), version),
            Found::Vacant(_) => None,
        }
    }

    /// Cache `value` as the key's, if `version` is still its committed version (a FETCH's
    /// answer: another read may have recorded a newer one meanwhile).
    pub fn keep_value(&mut self, hash: u64, key: &[u8], version: u64, value: &[u8]) {
        if !self.values.fits(value.len()) || is_tombstone(version) {
            return;
        }
        if let Found::At(pos) = self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        {
            if self.records[pos].1.version == version {
                self.values
                    .put(cache_pos(pos), version, NewValue::Copy(value));
            }
        }
    }

    /// Record `version` on `holders`, replacing what the key had.
    pub fn commit(&mut self, key: &[u8], version: u64, holders: &[SlaveIdx]) {
        self.commit_hashed(self.hash(key), key, version, holders)
    }

    /// [`KeyIndex::commit`] with `hash` = [`KeyIndex::hash`] of `key`.
    #[inline]
    pub fn commit_hashed(&mut self, hash: u64, key: &[u8], version: u64, holders: &[SlaveIdx]) {
        self.commit_valued(hash, key, version, holders, None)
    }

    /// [`KeyIndex::commit_hashed`], with `value`, when known, the value `version` wrote: the
    /// read cache keeps it (`cache.rs` says which). A new version without a value drops the
    /// cached one.
    pub fn commit_valued(
        &mut self,
        hash: u64,
        key: &[u8],
        version: u64,
        holders: &[SlaveIdx],
        value: Option<NewValue<'_>>,
    ) {
        assert!(
            holders.iter().all(|&h| h < SPILLED),
            "slave index out of range"
        );
        let found = self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0);
        let ids = self.store(holders);
        let slot = Slot { version, ids };
        let (pos, old) = match found {
            Found::At(pos) => {
                let old = std::mem::replace(&mut self.records[pos].1, slot);
                self.release(old.ids);
                (pos, Some(old.version))
            }
            Found::Vacant(vacancy) => match self.holes.pop() {
                Some(pos) => {
                    self.index.insert(vacancy, pos as usize);
                    self.records[pos as usize] = (key.into(), slot);
                    (pos as usize, None)
                }
                None => {
                    let pos = self.records.len();
                    self.index.insert(vacancy, pos);
                    self.records.push((key.into(), slot));
                    (pos, None)
                }
            },
        };
        if !self.values.enabled() {
            return;
        }
        match value.filter(|_| !is_tombstone(version)) {
            Some(value) => self.values.put(cache_pos(pos), version, value),
            // Holders changing at the same version keep the value; anything else drops it.
            None if old != Some(version) => self.values.remove(cache_pos(pos)),
            None => {}
        }
    }

    /// Forget `key` altogether (its tombstone was collected). Its position becomes a hole
    /// for a later new key; no other key moves. Returns whether it was indexed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let Found::At(pos) = self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        else {
            return false;
        };
        self.index.remove(hash, pos);
        self.values.remove(cache_pos(pos));
        let hole = Slot {
            version: 0,
            ids: [NONE, NONE],
        };
        let (_, old) = std::mem::replace(&mut self.records[pos], (Box::default(), hole));
        self.release(old.ids);
        self.holes
            .push(u32::try_from(pos).expect("positions fit the tag index"));
        true
    }

    /// One page of the keys that exist (not deleted) and start with `prefix`, from position
    /// `cursor` on: at most `limit` keys, and at most `budget` positions looked at, so that a
    /// page costs the event loop a bounded amount of work whatever the prefix matches. A key
    /// that exists from the first page to the last is in one of them (keys never move).
    pub fn scan(&self, prefix: &[u8], cursor: u64, limit: usize, budget: usize) -> ScanPage {
        let mut page = ScanPage::default();
        let start = usize::try_from(cursor).unwrap_or(usize::MAX);
        let mut pos = start;
        while pos < self.records.len() && pos - start < budget && page.keys.len() < limit {
            let (key, slot) = &self.records[pos];
            pos += 1;
            if slot.version != 0 && !is_tombstone(slot.version) && key.starts_with(prefix) {
                page.keys.push(key.to_vec());
            }
        }
        if pos < self.records.len() {
            page.next = pos as u64;
        }
        page
    }

    /// Add `slave` to the holders of `key` (`hash` = [`KeyIndex::hash`] of it), in place, if
    /// the key is indexed; the version stays. Returns whether the key is indexed.
    pub fn add_holder_hashed(&mut self, hash: u64, key: &[u8], slave: SlaveIdx) -> bool {
        let Found::At(pos) = self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        else {
            return false;
        };
        self.add_holder_at(pos, slave);
        true
    }

    /// Read, for each of `hashes` ([`KeyIndex::hash`] of keys about to be looked up), the
    /// index slot and the record it most likely points at, so that the lookups that follow
    /// find them in the cache: the reads of one pass do not depend on each other, so their
    /// misses overlap (see [`TagIndex::likely`]). Returns a value to hand to
    /// [`std::hint::black_box`], so the reads are not optimised away.
    pub fn warm(&self, hashes: &[u64], likely: &mut Vec<usize>) -> u64 {
        likely.clear();
        likely.extend(hashes.iter().filter_map(|&h| self.index.likely(h)));
        likely.iter().fold(0, |sink, &pos| {
            let (key, slot) = &self.records[pos];
            sink ^ slot.version ^ u64::from(key.first().copied().unwrap_or(0))
        })
    }

    /// A slave reports holding `key` (`hash` = [`KeyIndex::hash`] of it) at `version`: with
    /// one lookup, make it a holder if that is the committed version, or say how the report
    /// compares. An inventory of a million keys is a million of these.
    pub fn reported_hashed(
        &mut self,
        hash: u64,
        key: &[u8],
        version: u64,
        slave: SlaveIdx,
    ) -> Reported {
        match self
            .index
            .find_hashed(hash, key, |pos| &self.records[pos].0)
        {
            Found::At(pos) => {
                let committed = plain_version(self.records[pos].1.version);
                let version = plain_version(version);
                if committed == version {
                    self.add_holder_at(pos, slave);
                    Reported::Held
                } else if committed > version {
                    Reported::Stale
                } else {
                    Reported::Newer(Some(committed))
                }
            }
            Found::Vacant(_) => Reported::Newer(None),
        }
    }

    fn add_holder_at(&mut self, pos: usize, slave: SlaveIdx) {
        assert!(slave < SPILLED, "slave index out of range");
        let slot = &mut self.records[pos].1;
        match slot.ids {
            [SPILLED, at] => {
                let list = &mut self.spill[at as usize];
                if !list.contains(&slave) {
                    list.push(slave);
                }
            }
            [NONE, _] => slot.ids = [slave, NONE],
            [a, NONE] if a != slave => slot.ids = [a, slave],
            [a, b] if a != slave && b != slave && b != NONE => {
                let at = self.spill.insert(vec![a, b, slave]);
                slot.ids = [SPILLED, u32::try_from(at).expect("spill slab over u32")];
            }
            _ => {}
        }
    }

    /// Change the holders of `key` (if it is indexed) with `f`; the version stays.
    pub fn update_holders(&mut self, key: &[u8], f: impl FnOnce(&mut Vec<SlaveIdx>)) {
        let Found::At(pos) = self.find(key) else {
            return;
        };
        let slot = self.records[pos].1;
        let mut holders = self.entry(&slot).holders.to_vec();
        f(&mut holders);
        self.commit(key, slot.version, &holders);
    }

    pub fn len(&self) -> usize {
        self.records.len() - self.holes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The holders of every key (tombstones included) at positions `from..from + budget`, to
    /// `f`: a walk in bounded slices. Returns where the next slice starts (`None`: the walk is
    /// over). Keys never move, so a key that stays from the first slice to the last is seen
    /// once.
    pub fn walk(
        &self,
        from: usize,
        budget: usize,
        mut f: impl FnMut(&[SlaveIdx]),
    ) -> Option<usize> {
        let end = from.saturating_add(budget).min(self.records.len());
        for pos in from..end {
            let s = &self.records[pos].1;
            if s.version != 0 {
                f(self.entry(s).holders);
            }
        }
        (end < self.records.len()).then_some(end)
    }

    /// Every key (tombstones included), in the order of their positions.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Entry<'_>)> {
        self.records
            .iter()
            .filter(|(_, s)| s.version != 0)
            .map(|(k, s)| (&k[..], self.entry(s)))
    }

    fn entry<'a>(&'a self, s: &'a Slot) -> Entry<'a> {
        let holders: &[SlaveIdx] = match s.ids {
            [SPILLED, at] => &self.spill[at as usize],
            [NONE, _] => &[],
            [_, NONE] => &s.ids[..1],
            _ => &s.ids[..],
        };
        Entry {
            version: s.version,
            holders,
        }
    }

    fn store(&mut self, holders: &[SlaveIdx]) -> [u32; 2] {
        match *holders {
            [] => [NONE, NONE],
            [a] => [a, NONE],
            [a, b] => [a, b],
            _ => {
                let at = self.spill.insert(holders.to_vec());
                [SPILLED, u32::try_from(at).expect("spill slab over u32")]
            }
        }
    }

    fn release(&mut self, ids: [u32; 2]) {
        if let [SPILLED, at] = ids {
            self.spill.remove(at as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_lists_of_every_length_round_trip() {
        let mut k = KeyIndex::default();
        for n in 0..6u32 {
            let holders: Vec<u32> = (0..n).map(|i| i * 7 + 1).collect();
            k.commit(b"key", u64::from(n), &holders);
            let e = k.get(b"key").unwrap();
            assert_eq!((e.version, e.holders), (u64::from(n), &holders[..]));
        }
        // Shrinking from a spilled list back to inline frees the spill entry.
        k.commit(b"key", 9, &[3, 4]);
        assert!(k.spill.is_empty());
        assert_eq!(k.len(), 1);
        assert_eq!(k.get(b"other"), None);
    }

    #[test]
    fn update_holders_keeps_the_version() {
        let mut k = KeyIndex::default();
        k.commit(b"a", 5, &[1, 2]);
        k.update_holders(b"a", |h| h.push(3));
        assert_eq!(
            k.get(b"a"),
            Some(Entry {
                version: 5,
                holders: &[1, 2, 3]
            })
        );
        k.update_holders(b"a", |h| h.retain(|&x| x != 1 && x != 2));
        assert_eq!(k.get(b"a").unwrap().holders, &[3]);
        assert!(k.spill.is_empty());
        k.update_holders(b"missing", |h| h.push(1));
        for (n, want) in [
            (7u32, vec![3, 7]),
            (7, vec![3, 7]),
            (9, vec![3, 7, 9]),
            (9, vec![3, 7, 9]),
        ] {
            assert!(k.add_holder_hashed(k.hash(b"a"), b"a", n));
            assert_eq!(k.get(b"a").unwrap().holders, &want[..]);
        }
        assert_eq!(k.get(b"a").unwrap().version, 5);
        assert!(!k.add_holder_hashed(k.hash(b"missing"), b"missing", 1));
        assert_eq!(k.get(b"missing"), None);
        let all: Vec<_> = k.iter().map(|(key, e)| (key.to_vec(), e.version)).collect();
        assert_eq!(all, vec![(b"a".to_vec(), 5)]);
    }

    #[test]
    fn removed_keys_leave_holes_that_new_keys_fill_without_moving_others() {
        let mut k = KeyIndex::default();
        for (i, key) in [&b"p/a"[..], b"p/b", b"q/c", b"p/d"].iter().enumerate() {
            k.commit(key, i as u64 + 1, &[1]);
        }
        k.commit(b"p/b", 9 | dsm_wire::TOMBSTONE, &[1, 2, 3]);
        assert!(k.get(b"p/b").unwrap().deleted());
        assert_eq!(k.get(b"p/b").unwrap().plain(), 9);
        let all = k.scan(b"p/", 0, 100, 100);
        assert_eq!(all.keys, vec![b"p/a".to_vec(), b"p/d".to_vec()]);
        assert_eq!(all.next, 0);
        assert!(k.remove(b"p/b"));
        assert!(!k.remove(b"p/b"));
        assert!(k.spill.is_empty());
        assert_eq!(k.len(), 3);
        assert_eq!(k.get(b"p/b"), None);
        // A bounded page: two positions looked at, then the cursor says where to go on.
        let first = k.scan(b"", 0, 100, 2);
        assert_eq!((first.keys, first.next), (vec![b"p/a".to_vec()], 2));
        k.commit(b"p/e", 20, &[1]);
        assert_eq!(k.len(), 4);
        let rest = k.scan(b"", 2, 100, 100);
        assert_eq!(rest.keys, vec![b"q/c".to_vec(), b"p/d".to_vec()]);
        // The new key took the hole at position 1.
        assert_eq!(k.scan(b"p/e", 0, 10, 10).keys, vec![b"p/e".to_vec()]);
        let limited = k.scan(b"", 0, 1, 100);
        assert_eq!((limited.keys.len(), limited.next), (1, 1));
        assert_eq!(k.iter().count(), 4);
    }

    #[test]
    fn the_read_cache_holds_only_the_committed_versions_value() {
        let mut k = KeyIndex::with_read_cache(1 << 20, 1 << 20);
        let h = k.hash(b"a");
        let cached = |k: &KeyIndex| {
            k.get_with_value(k.hash(b"a"), b"a", |_| true)
                .and_then(|(_, v)| v.map(<[u8]>::to_vec))
        };
        k.commit_valued(h, b"a", 5, &[1], Some(NewValue::Copy(b"five")));
        assert_eq!(cached(&k), Some(b"five".to_vec()));
        // New holders at the same version keep it.
        k.update_holders(b"a", |h| h.push(2));
        assert_eq!(cached(&k), Some(b"five".to_vec()));
        // A FETCH's answer of an older version is not kept over it.
        k.keep_value(h, b"a", 4, b"four");
        assert_eq!(cached(&k), Some(b"five".to_vec()));
        // A new version without a value (a probe, an INVENTORY) drops it.
        k.commit_hashed(h, b"a", 6, &[1]);
        assert_eq!(cached(&k), None);
        assert_eq!(k.cache_stats().entries, 0);
        k.keep_value(h, b"a", 6, b"six");
        assert_eq!(cached(&k), Some(b"six".to_vec()));
        // A tombstone is never cached, and drops the value.
        k.commit_valued(
            h,
            b"a",
            7 | dsm_wire::TOMBSTONE,
            &[1],
            Some(NewValue::Copy(b"")),
        );
        assert_eq!(cached(&k), None);
        k.commit_valued(h, b"a", 8, &[1], Some(NewValue::Copy(b"eight")));
        assert!(k.remove(b"a"));
        assert_eq!(
            k.cache_stats().entries,
            0,
            "a forgotten key drops its value"
        );
        k.commit_valued(h, b"a", 9, &[1], Some(NewValue::Copy(b"nine")));
        k.reset();
        assert_eq!(k.cache_stats().entries, 0);
        // A new index: a new keyed hash.
        let h = k.hash(b"a");
        k.commit_valued(h, b"a", 10, &[1], Some(NewValue::Copy(b"ten")));
        assert_eq!(cached(&k), Some(b"ten".to_vec()), "reset keeps the bound");
        k.clear_values();
        assert_eq!(cached(&k), None);
        // Without a cache nothing is kept.
        let mut off = KeyIndex::default();
        let h = off.hash(b"a");
        off.commit_valued(h, b"a", 1, &[1], Some(NewValue::Copy(b"one")));
        assert_eq!(
            off.get_with_value(h, b"a", |_| true).and_then(|(_, v)| v),
            None
        );
        // Holders that cannot serve (none live): no value, and no hit counted.
        let hits = k.cache_stats().hits;
        let h = k.hash(b"a");
        assert_eq!(
            k.get_with_value(h, b"a", |_| false).and_then(|(_, v)| v),
            None
        );
        assert_eq!(k.cache_stats().hits, hits);
    }

    #[test]
    fn a_tombstone_reported_at_the_committed_version_is_held() {
        let mut k = KeyIndex::default();
        let v = 7 | dsm_wire::TOMBSTONE;
        k.commit(b"a", v, &[1]);
        assert_eq!(k.reported_hashed(k.hash(b"a"), b"a", v, 2), Reported::Held);
        assert_eq!(k.reported_hashed(k.hash(b"a"), b"a", 6, 3), Reported::Stale);
        assert_eq!(
            k.reported_hashed(k.hash(b"a"), b"a", 8, 3),
            Reported::Newer(Some(7))
        );
    }
}
