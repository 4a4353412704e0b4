//! The primary's read cache: for keys with small values, the committed version's value, so
//! that a READ is answered by the master alone (client → master → client: two messages, two
//! processes) instead of through a slave (four messages, three processes).
//!
//! Owned by the key index (`keymap.rs`), which keys it by a record's position (a key never
//! moves, see there): no key is stored twice. An entry is `(version, value)`.
//!
//! **Why a cached answer is linearizable.** The primary is the single serialization point of
//! every change to a key: each one runs alone in the key's queue (`ops/queue.rs`) and takes
//! effect, as far as any reader can tell, when the key map records its version (`Ctx::record`).
//! A READ today answers with a slave's copy at least as new as the map's version when it
//! starts. A cache hit answers with exactly that version instead, which is what a holder that
//! has it would have sent. Three rules make that true:
//!
//! 1. An entry is only ever filled with a version's own value: when a WRITE, SET or INCR
//!    commits (the value its STOREs carried, at the version they carried), or when a FETCH
//!    answered with the version the map records. Versions are handed out once
//!    (`term.rs`: epoch in the top bits, a counter below), so a version names one value.
//! 2. A hit needs the entry's version to equal the map's version for the key at that moment,
//!    so an entry left behind by a change is never served. Beyond that, the key index drops
//!    the entry whenever it records another version without a value (a probe, an adopted
//!    INVENTORY, a DELETE's tombstone, a write timed out with some copies, a collected
//!    tombstone or a forgotten key): memory goes with it at once.
//! 3. A hit is taken only where the READ would have gone to a slave: on a primary holding its
//!    lease (checked when the request is read and again when it is answered, as for every
//!    answer), not recovering, the key not in doubt (`doubts.rs`: after a takeover the map
//!    may be behind the slaves), nothing ahead of the READ in the key's queue (a READ behind
//!    a write starts only once the write is decided), and a live slave holding the version.
//!    The cache is emptied on a takeover and when stepping down; a restarted master starts
//!    with none.
//!
//! So a hit says what the map-only answers already say on the same grounds (a deleted key's
//! NOT_FOUND, a compare-and-set's CONFLICT): the latest committed state, vouched for by the
//! lease. What it gives up is the slave's epoch fence on the FETCH as a second line behind
//! the lease.
//!
//! Bounded by `--read-cache-mb` (values, plus [`ENTRY_OVERHEAD`] per entry); evicted by CLOCK
//! (an entry read since the hand last passed gets another round). Two kinds of value:
//!
//! - **Small** (at most [`MAX_VALUE`] bytes), from any source: copied into the entry.
//! - **Large** (above [`MAX_VALUE`]), only a WRITE's own value as the [`SharedBytes`] its
//!   STOREs were written from (the buffer the client's frame was read into): kept by
//!   reference, never copied on the write's path, counted by the whole buffer it keeps alive,
//!   and answered from there. Large entries have a bound of their own
//!   (`--read-cache-large-mb`), so a stream of large writes never pushes out the small ones,
//!   and one value takes at most an eighth of it. A large value's READ through a slave costs
//!   two transfers of its bytes (slave → master → client), a hop and a copy; a hit costs one
//!   transfer (`bench-results/large-read-cache-2026-12-04.md`).

use std::cell::Cell;
use std::ops::Deref;

use dsm_net::SharedBytes;

use crate::idmap::IdMap;

/// Default of `--read-cache-mb`.
pub const READ_CACHE_MB: usize = 64;
/// Default of `--read-cache-large-mb`.
pub const READ_CACHE_LARGE_MB: usize = 64;
/// Values longer than this are never cached: a large value's READ costs its bytes, not the
/// hop, and a few of them would push out thousands of small ones.
pub const MAX_VALUE: usize = 4096;
/// What an entry costs besides its value, as counted against the bound: the entry, its map
/// slot and the value's allocation.
pub const ENTRY_OVERHEAD: usize = 64;

/// A value to cache: bytes to copy (small values only), or a WRITE's shared value (kept by
/// reference when large, copied when small).
#[derive(Clone, Copy)]
pub enum NewValue<'a> {
    Copy(&'a [u8]),
    Share(&'a SharedBytes),
}

impl NewValue<'_> {
    pub fn len(&self) -> usize {
        match self {
            NewValue::Copy(v) => v.len(),
            NewValue::Share(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an entry keeping the large value `v` counts: the buffer it keeps alive, and
/// [`ENTRY_OVERHEAD`].
fn large_weight(v: &SharedBytes) -> usize {
    v.buffer_len().max(v.len()) + ENTRY_OVERHEAD
}

enum Stored {
    Small(Box<[u8]>),
    Large(SharedBytes),
}

impl Stored {
    /// A large shared value by reference; anything else copied.
    fn of(value: NewValue<'_>) -> Stored {
        match value {
            NewValue::Share(v) if v.len() > MAX_VALUE => Stored::Large(v.clone()),
            NewValue::Share(v) => Stored::Small(v[..].into()),
            NewValue::Copy(v) => Stored::Small(v.into()),
        }
    }

    /// What the entry holding it counts against its bound, [`ENTRY_OVERHEAD`] included: a large
    /// value's whole buffer, which it keeps alive.
    fn weight(&self) -> usize {
        match self {
            Stored::Small(v) => v.len() + ENTRY_OVERHEAD,
            Stored::Large(v) => large_weight(v),
        }
    }

    fn is_large(&self) -> bool {
        matches!(self, Stored::Large(_))
    }
}

impl Deref for Stored {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Stored::Small(v) => v,
            Stored::Large(v) => v,
        }
    }
}

struct Cached {
    /// The record's position in the key index.
    pos: u32,
    version: u64,
    value: Stored,
    /// Read since the clock hand last passed.
    used: Cell<bool>,
}

/// Counters for `/metrics`.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: u64,
    /// Counted against the bounds: values, the buffers large values keep alive, and
    /// [`ENTRY_OVERHEAD`] per entry.
    pub bytes: u64,
    /// Of `bytes`, what large values count against their own bound.
    pub large_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

#[derive(Default)]
pub struct ValueCache {
    /// Bytes the small entries may take (0: no cache at all).
    limit: usize,
    /// Bytes the large entries may take (0: none kept).
    large_limit: usize,
    /// Position in the key index → index in `entries`.
    map: IdMap<u32, u32>,
    entries: Vec<Cached>,
    hand: usize,
    bytes: usize,
    /// Of `bytes`, what large entries cost (with their [`ENTRY_OVERHEAD`]).
    large_bytes: usize,
    hits: Cell<u64>,
    misses: Cell<u64>,
    evictions: u64,
}

impl ValueCache {
    /// A cache of at most `limit` bytes of small entries (0: no cache) and `large_limit` of
    /// large ones.
    pub fn new(limit: usize, large_limit: usize) -> ValueCache {
        ValueCache {
            limit,
            large_limit: if limit == 0 { 0 } else { large_limit },
            ..ValueCache::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// The value cached for the record at `pos` if it is `version`'s (a hit), else `None` (a
    /// miss, counted).
    #[inline]
    pub fn get(&self, pos: u32, version: u64) -> Option<&[u8]> {
        let got = self.hit(pos, version);
        if got.is_none() {
            self.misses.set(self.misses.get() + 1);
        }
        got
    }

    /// [`ValueCache::get`] counting a hit only: a miss is left for the look that follows it
    /// (a READ's fast path that falls back to its ordinary start, which looks again).
    #[inline]
    pub fn hit(&self, pos: u32, version: u64) -> Option<&[u8]> {
        let hit = (self.map.get(&pos))
            .map(|&i| &self.entries[i as usize])
            .filter(|e| e.version == version);
        match hit {
            Some(e) => {
                e.used.set(true);
                self.hits.set(self.hits.get() + 1);
                Some(&e.value)
            }
            None => None,
        }
    }

    /// The large value cached for the record at `pos` at `version`, by reference (a READ's
    /// answer written from the cache's buffer); `None` for a small value or none. Counts
    /// nothing: the look that found the hit counted it.
    pub fn large(&self, pos: u32, version: u64) -> Option<SharedBytes> {
        let i = *self.map.get(&pos)?;
        match &self.entries[i as usize] {
            Cached {
                version: v,
                value: Stored::Large(value),
                ..
            } if *v == version => Some(value.clone()),
            _ => None,
        }
    }

    /// Whether `len` bytes of value may be cached (copied: small values only).
    #[inline]
    pub fn fits(&self, len: usize) -> bool {
        len <= MAX_VALUE && len + ENTRY_OVERHEAD <= self.limit
    }

    /// Whether `value` may be cached: small, or large and shared within the large bound.
    #[inline]
    pub fn takes(&self, value: NewValue<'_>) -> bool {
        match value {
            NewValue::Share(v) if v.len() > MAX_VALUE => large_weight(v) <= self.large_limit / 8,
            _ => self.fits(value.len()),
        }
    }

    /// Cache `value` as the record at `pos`'s value at `version`, replacing what it had; a
    /// value it does not take only removes the old entry.
    pub fn put(&mut self, pos: u32, version: u64, value: NewValue<'_>) {
        if !self.takes(value) {
            return self.remove(pos);
        }
        if let Some(&i) = self.map.get(&pos) {
            let e = &mut self.entries[i as usize];
            let old = (e.value.weight(), e.value.is_large());
            e.version = version;
            match (&mut e.value, value) {
                // A small value of the same length: into the entry's own allocation.
                (Stored::Small(old), NewValue::Copy(new)) if old.len() == new.len() => {
                    old.copy_from_slice(new)
                }
                (Stored::Small(old), NewValue::Share(new))
                    if old.len() == new.len() && new.len() <= MAX_VALUE =>
                {
                    old.copy_from_slice(new)
                }
                (old, new) => *old = Stored::of(new),
            }
            let new = (e.value.weight(), e.value.is_large());
            self.uncount(old);
            self.count(new);
        } else {
            let stored = Stored::of(value);
            let i = u32::try_from(self.entries.len()).expect("cache entries fit u32");
            self.map.insert(pos, i);
            self.count((stored.weight(), stored.is_large()));
            self.entries.push(Cached {
                pos,
                version,
                value: stored,
                // A new entry survives the hand's first pass.
                used: Cell::new(true),
            });
        }
        self.evict();
    }

    /// Forget the record at `pos`'s value.
    #[inline]
    pub fn remove(&mut self, pos: u32) {
        if self.map.is_empty() {
            return;
        }
        if let Some(i) = self.map.remove(&pos) {
            self.remove_at(i as usize);
        }
    }

    /// Forget everything (takeover, stepping down).
    pub fn clear(&mut self) {
        self.map.clear();
        self.entries.clear();
        self.hand = 0;
        self.bytes = 0;
        self.large_bytes = 0;
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len() as u64,
            bytes: self.bytes as u64,
            large_bytes: self.large_bytes as u64,
            hits: self.hits.get(),
            misses: self.misses.get(),
            evictions: self.evictions,
        }
    }

    /// CLOCK: past a bound, the hand clears the `used` mark of entries of that kind read since
    /// it last came by and evicts the first one not read; it passes over entries of a kind
    /// within its bound without touching their marks.
    fn evict(&mut self) {
        loop {
            let over = self.bytes - self.large_bytes > self.limit;
            let large_over = self.large_bytes > self.large_limit;
            if !(over || large_over) || self.entries.is_empty() {
                return;
            }
            if self.hand >= self.entries.len() {
                self.hand = 0;
            }
            let e = &self.entries[self.hand];
            let large = e.value.is_large();
            if (large && !large_over) || (!large && !over) {
                self.hand += 1;
                continue;
            }
            if e.used.replace(false) {
                self.hand += 1;
                continue;
            }
            let pos = e.pos;
            self.map.remove(&pos);
            // The entry moved into the hand's place is looked at next.
            self.remove_at(self.hand);
            self.evictions += 1;
        }
    }

    /// Count an entry of `weight` bytes (`large`: against the large bound too).
    fn count(&mut self, (weight, large): (usize, bool)) {
        self.bytes += weight;
        if large {
            self.large_bytes += weight;
        }
    }

    /// Stop counting what [`ValueCache::count`] counted.
    fn uncount(&mut self, (weight, large): (usize, bool)) {
        self.bytes -= weight;
        if large {
            self.large_bytes -= weight;
        }
    }

    /// Remove `entries[i]` (already gone from the map), moving the last entry into its place.
    fn remove_at(&mut self, i: usize) {
        let gone = self.entries.swap_remove(i);
        self.uncount((gone.value.weight(), gone.value.is_large()));
        if let Some(moved) = self.entries.get(i) {
            self.map.insert(moved.pos, i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_needs_the_version_asked_for() {
        let mut c = ValueCache::new(1 << 20, 1 << 20);
        c.put(3, 10, NewValue::Copy(b"ten"));
        assert_eq!(c.get(3, 10), Some(&b"ten"[..]));
        assert_eq!(c.get(3, 11), None);
        assert_eq!(c.get(4, 10), None);
        c.put(3, 11, NewValue::Copy(b"eleven"));
        assert_eq!(c.get(3, 10), None);
        assert_eq!(c.get(3, 11), Some(&b"eleven"[..]));
        c.remove(3);
        assert_eq!(c.get(3, 11), None);
        let s = c.stats();
        assert_eq!((s.entries, s.bytes, s.hits, s.misses), (0, 0, 2, 4));
    }

    #[test]
    fn large_values_are_not_kept_and_replace_nothing_stale() {
        let mut c = ValueCache::new(1 << 20, 1 << 20);
        c.put(1, 5, NewValue::Copy(b"small"));
        c.put(1, 6, NewValue::Copy(&vec![0; MAX_VALUE + 1]));
        assert_eq!(
            c.get(1, 5),
            None,
            "the older value went with the new version"
        );
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.stats().bytes, 0);
        let off = ValueCache::new(0, 1 << 20);
        assert!(!off.enabled() && !off.fits(1));
    }

    #[test]
    fn large_values_are_shared_counted_by_their_buffer_and_held_to_their_own_bound() {
        let large = 1 << 20;
        let mut c = ValueCache::new(ENTRY_OVERHEAD + 8, large);
        let small = [9u8; 8];
        c.put(0, 1, NewValue::Copy(&small));
        let big = SharedBytes::from(vec![7u8; 100_000]);
        c.put(1, 2, NewValue::Share(&big));
        assert_eq!(c.get(1, 2), Some(&big[..]));
        assert_eq!(c.large(1, 2).as_deref(), Some(&big[..]));
        assert_eq!(c.large(1, 3), None, "another version");
        assert_eq!(c.large(0, 1), None, "a small value is not shared");
        assert_eq!(
            c.stats().bytes as usize,
            small.len() + big.buffer_len() + 2 * ENTRY_OVERHEAD
        );
        // Copied large values are refused; a shared one over an eighth of its bound too.
        c.put(2, 3, NewValue::Copy(&big));
        let huge = SharedBytes::from(vec![1u8; large / 8]);
        c.put(3, 4, NewValue::Share(&huge));
        assert_eq!((c.get(2, 3), c.get(3, 4)), (None, None));
        // Past the large bound, large ones go and the small one stays, although it was never
        // read since the hand passed and the small bound is full.
        for pos in 4..20 {
            c.put(pos, u64::from(pos), NewValue::Share(&big));
        }
        let s = c.stats();
        assert!(c.large_bytes <= large, "{s:?}");
        assert!(s.evictions > 0, "{s:?}");
        assert_eq!(c.get(0, 1), Some(&small[..]));
        // A small shared value is copied, not kept by reference; the small bound then pushes
        // out one of the two small ones (CLOCK picks which), and no large one.
        let (entries, large_bytes) = (c.stats().entries, c.large_bytes);
        let other = SharedBytes::from(vec![3u8; 8]);
        c.put(20, 5, NewValue::Share(&other));
        assert_eq!(c.large(20, 5), None);
        let kept = [c.hit(0, 1).is_some(), c.hit(20, 5).is_some()];
        assert_eq!(kept.iter().filter(|&&k| k).count(), 1, "{kept:?}");
        assert_eq!((c.stats().entries, c.large_bytes), (entries, large_bytes));
        let mut fresh = ValueCache::new(1 << 10, 0);
        fresh.put(1, 1, NewValue::Share(&other));
        assert_eq!(fresh.get(1, 1), Some(&[3u8; 8][..]));
        // The bookkeeping returns to nothing.
        for pos in 0..21 {
            c.remove(pos);
        }
        assert_eq!((c.stats().bytes, c.large_bytes), (0, 0));
        // Without a cache, no large values either.
        let mut off = ValueCache::new(0, large);
        off.put(1, 2, NewValue::Share(&big));
        assert_eq!(off.get(1, 2), None);
    }

    #[test]
    fn the_bound_evicts_what_was_not_read_since_the_hand_passed() {
        let each = 100 + ENTRY_OVERHEAD;
        let mut c = ValueCache::new(each * 4, 0);
        for pos in 0..4 {
            c.put(pos, u64::from(pos) + 1, NewValue::Copy(&[pos as u8; 100]));
        }
        assert_eq!(c.stats().bytes as usize, each * 4);
        // The fifth entry goes over: the hand clears every mark, then evicts entry 0.
        c.put(4, 5, NewValue::Copy(&[4; 100]));
        assert_eq!(c.stats().entries, 4);
        assert_eq!(c.get(0, 1), None);
        // Entry 1 is read: the next eviction passes it over and takes entry 2... or the one
        // swapped into the hand's place; whichever goes, a read one stays.
        assert!(c.get(1, 2).is_some());
        c.put(5, 6, NewValue::Copy(&[5; 100]));
        assert_eq!(c.stats().entries, 4);
        assert!(c.get(1, 2).is_some(), "an entry read since the pass stays");
        assert_eq!(c.stats().evictions, 2);
        assert!(c.stats().bytes as usize <= each * 4);
        // Every surviving entry still maps to itself.
        for pos in 0..6u32 {
            if let Some(v) = c.get(pos, u64::from(pos) + 1) {
                assert_eq!(v, &[pos as u8; 100][..]);
            }
        }
        c.clear();
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.get(1, 2), None);
    }
}
