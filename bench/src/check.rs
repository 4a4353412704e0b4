//! Read checking: every value the bench writes is derived from (run, key, version), and every
//! READ answer must be a version that was acknowledged before the read was sent, or a later one.

/// Bytes of the value for one (key, version) of this run: a stream of words seeded from the
/// three by splitmix64, so two keys or two versions differ in every 8-byte word (for values of
/// 8 bytes and up) and a value left over from an earlier run never passes for one of this run.
///
/// Word i is `mix(seed + (i + 1) * GAMMA)` with `mix` a bijection ([`word`]), so two seeds
/// that differ give words that differ at every position; `mix` is one multiply and one
/// xor-shift rather than splitmix64's two of each, which about halves what a WRITE spends here.
#[derive(Debug, Clone, Copy)]
pub struct ValueGen {
    run: u64,
    size: usize,
}

/// One step of splitmix64: a fast, well-mixed stream from any seed.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The next word of a value's stream (see [`ValueGen`]): the state steps by splitmix64's
/// increment and goes through a bijective mix (an odd multiply, then an xor-shift).
fn word(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 32)
}

impl ValueGen {
    pub fn new(run: u64, size: usize) -> ValueGen {
        ValueGen { run, size }
    }

    fn seed(&self, key: usize, version: u64) -> u64 {
        let mut s = self.run;
        let a = splitmix(&mut s) ^ key as u64;
        let mut s = a;
        splitmix(&mut s) ^ version
    }

    /// Bytes per value.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Replace `out` with the value for `key` at `version`.
    pub fn fill(&self, key: usize, version: u64, out: &mut Vec<u8>) {
        out.clear();
        out.resize(self.size, 0);
        self.fill_slice(key, version, out);
    }

    /// Write the value for `key` at `version` over `out`, which is exactly [`ValueGen::size`]
    /// bytes long: whole words stored at once, no length checks per word.
    pub fn fill_slice(&self, key: usize, version: u64, out: &mut [u8]) {
        assert_eq!(out.len(), self.size, "a value is {} bytes", self.size);
        let mut state = self.seed(key, version);
        let mut words = out.chunks_exact_mut(8);
        for w in words.by_ref() {
            w.copy_from_slice(&word(&mut state).to_le_bytes());
        }
        let tail = words.into_remainder();
        let n = tail.len();
        if n > 0 {
            tail.copy_from_slice(&word(&mut state).to_le_bytes()[..n]);
        }
    }

    /// Whether `value` is exactly the value for `key` at `version` (compared without allocating).
    pub fn matches(&self, key: usize, version: u64, value: &[u8]) -> bool {
        if value.len() != self.size {
            return false;
        }
        let mut state = self.seed(key, version);
        // Whole words compare as integers: a slice compare per word was a `memcmp` call each,
        // 3% of the whole machine's CPU in a 4x32 READ run, spent in the bench, not the store.
        let mut words = value.chunks_exact(8);
        let whole = words.by_ref().all(|w| {
            u64::from_le_bytes(w.try_into().expect("chunks_exact(8)")) == word(&mut state)
        });
        let tail = words.remainder();
        whole && tail == &word(&mut state).to_le_bytes()[..tail.len()]
    }
}

/// Memory the bench gives [`ValueCache`]; past it, keys share slots.
pub const VALUE_CACHE_BYTES: usize = 64 << 20;

/// The value of each key's newest version sent, so a READ answer is checked with one compare
/// instead of regenerating the stream word by word, and a WRITE sends its value from here.
///
/// Direct-mapped: key k lives in slot k mod slots (slot k while every key has its own), and
/// each slot is tagged with the (key, version) its bytes were generated for. A slot holds
/// exactly what [`ValueGen::fill`] gives for its tag; asking for any other (key, version)
/// regenerates the slot first, so a slot another key or an older version left behind is a
/// miss, never a wrong expectation.
#[derive(Debug, Clone)]
pub struct ValueCache {
    gen: ValueGen,
    /// (key, version) of each slot's bytes; (`usize::MAX`, 0), never a key's, marks it empty.
    tags: Vec<(usize, u64)>,
    bytes: Vec<u8>,
}

impl ValueCache {
    /// A cache for keys `0..keys` in about `budget` bytes (at least one slot).
    pub fn new(gen: ValueGen, keys: usize, budget: usize) -> ValueCache {
        let slots = (budget / gen.size.max(1)).clamp(1, keys.max(1));
        ValueCache {
            gen,
            tags: vec![(usize::MAX, 0); slots],
            bytes: vec![0; slots * gen.size],
        }
    }

    pub fn gen(&self) -> &ValueGen {
        &self.gen
    }

    /// Slots: one per key when the budget allows.
    pub fn slots(&self) -> usize {
        self.tags.len()
    }

    /// The value of `key` at `version` (>= 1), generated into the key's slot unless it is
    /// already there.
    #[inline]
    pub fn value(&mut self, key: usize, version: u64) -> &[u8] {
        debug_assert!(version >= 1, "versions count from 1");
        let slots = self.tags.len();
        // No division while every key has its own slot.
        let slot = if key < slots { key } else { key % slots };
        if self.tags[slot] != (key, version) {
            self.generate(slot, key, version);
        }
        let size = self.gen.size;
        &self.bytes[slot * size..(slot + 1) * size]
    }

    /// Generate `key` at `version` into `slot`, which held another (key, version) or none.
    #[inline(never)]
    fn generate(&mut self, slot: usize, key: usize, version: u64) {
        let size = self.gen.size;
        self.gen.fill_slice(
            key,
            version,
            &mut self.bytes[slot * size..(slot + 1) * size],
        );
        self.tags[slot] = (key, version);
    }

    /// Whether `value` is exactly the value of `key` at `version` (>= 1): one compare against
    /// the cached bytes.
    #[inline]
    pub fn matches(&mut self, key: usize, version: u64, value: &[u8]) -> bool {
        self.value(key, version) == value
    }
}

/// The outcome of checking one READ answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// A value, but not one this key may hold at this point.
    Mismatch,
    /// Every benched key is written before it is read, so NOT_FOUND is always wrong.
    NotFound,
}

#[derive(Debug, Clone, Copy, Default)]
struct KeyVersions {
    /// Highest version sent in a WRITE (versions count from 1; 0 = never written).
    sent: u64,
    /// Highest version the master acknowledged with OK.
    acked: u64,
}

/// Per-key write history of this run. Only one connection writes any one key, so the master
/// sees a key's writes in the order they were sent and versions grow in that order.
#[derive(Debug, Clone)]
pub struct KeyBook {
    keys: Vec<KeyVersions>,
}

impl KeyBook {
    pub fn new(keys: usize) -> KeyBook {
        KeyBook {
            keys: vec![KeyVersions::default(); keys],
        }
    }

    /// The version of a WRITE about to be sent.
    pub fn next_write(&mut self, key: usize) -> u64 {
        let k = &mut self.keys[key];
        k.sent += 1;
        k.sent
    }

    /// The master said OK to `version` of `key`.
    pub fn acked(&mut self, key: usize, version: u64) {
        let k = &mut self.keys[key];
        k.acked = k.acked.max(version);
    }

    /// The newest version sent of `key` (0: never written).
    pub fn newest(&self, key: usize) -> u64 {
        self.keys[key].sent
    }

    /// What a READ sent now must at least see: the latest acknowledged version.
    pub fn read_floor(&self, key: usize) -> u64 {
        self.keys[key].acked
    }

    /// Check a READ answer (`None` = NOT_FOUND) for a read sent when the floor was `floor`.
    /// Any version from `floor` to the latest sent is acceptable: writes sent after the read
    /// went out, or that failed with an unknown outcome, are concurrent with it.
    #[inline(always)]
    pub fn check(
        &self,
        values: &mut ValueCache,
        key: usize,
        floor: u64,
        value: Option<&[u8]>,
    ) -> Verdict {
        let Some(value) = value else {
            return Verdict::NotFound;
        };
        let newest = self.keys[key].sent;
        // The newest candidate is the usual answer: try it first, against the cached bytes
        // (a WRITE put them there when it was sent).
        if floor.max(1) <= newest && values.matches(key, newest, value) {
            return Verdict::Ok;
        }
        Self::check_older(values.gen(), key, floor, newest, value)
    }

    /// [`KeyBook::check`] for an answer that is not the newest version: any version from
    /// `floor` (at least 1) to the one before `newest` passes. These are regenerated, so they
    /// do not evict the newest from the cache.
    #[inline(never)]
    fn check_older(gen: &ValueGen, key: usize, floor: u64, newest: u64, value: &[u8]) -> Verdict {
        if (floor.max(1)..newest)
            .rev()
            .any(|v| gen.matches(key, v, value))
        {
            Verdict::Ok
        } else {
            Verdict::Mismatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_depend_on_run_key_and_version() {
        let g = ValueGen::new(42, 64);
        let mut a = Vec::new();
        g.fill(3, 1, &mut a);
        assert_eq!(a.len(), 64);
        assert!(g.matches(3, 1, &a));
        assert!(!g.matches(4, 1, &a), "another key");
        assert!(!g.matches(3, 2, &a), "another version");
        assert!(!ValueGen::new(43, 64).matches(3, 1, &a), "another run");
        assert!(!g.matches(3, 1, &a[..63]), "short");
        let mut flipped = a.clone();
        flipped[63] ^= 1;
        assert!(!g.matches(3, 1, &flipped), "last byte");
    }

    #[test]
    fn other_keys_versions_and_runs_differ_in_every_word() {
        let size = 256;
        let g = ValueGen::new(99, size);
        let mut seen = std::collections::HashSet::new();
        let mut values = Vec::new();
        for key in 0..20 {
            for version in 1..20 {
                values.push(value(&g, key, version));
            }
        }
        values.push(value(&ValueGen::new(100, size), 0, 1));
        for (i, a) in values.iter().enumerate() {
            for b in &values[..i] {
                let same = a
                    .chunks_exact(8)
                    .zip(b.chunks_exact(8))
                    .filter(|(x, y)| x == y)
                    .count();
                assert_eq!(same, 0);
            }
            // No word repeats within a value or across values either.
            for w in a.chunks_exact(8) {
                assert!(seen.insert(w.to_vec()));
            }
        }
    }

    #[test]
    fn odd_and_tiny_sizes_round_trip() {
        for size in [1, 7, 8, 9, 100, 4097] {
            let g = ValueGen::new(7, size);
            let mut v = vec![0xAA; 3];
            g.fill(11, 5, &mut v);
            assert_eq!(v.len(), size);
            assert!(g.matches(11, 5, &v), "size {size}");
        }
        // Eight bytes or more: the first word alone tells keys apart.
        let g = ValueGen::new(7, 8);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        g.fill(0, 1, &mut a);
        g.fill(1, 1, &mut b);
        assert_ne!(a, b);
    }

    fn value(g: &ValueGen, key: usize, version: u64) -> Vec<u8> {
        let mut v = Vec::new();
        g.fill(key, version, &mut v);
        v
    }

    /// Budgets for a cache of `keys` keys of `size` bytes: a slot per key, fewer, one.
    fn budgets(keys: usize, size: usize) -> [usize; 3] {
        [VALUE_CACHE_BYTES, size * keys.div_ceil(2).max(1), 0]
    }

    #[test]
    fn a_read_sees_the_acked_version_or_a_later_one() {
        let g = ValueGen::new(1, 32);
        for budget in budgets(2, 32) {
            let c = &mut ValueCache::new(g, 2, budget);
            let mut book = KeyBook::new(2);
            let v1 = book.next_write(0);
            book.acked(0, v1);
            let floor = book.read_floor(0);
            assert_eq!(floor, 1);
            assert_eq!(book.check(c, 0, floor, Some(&value(&g, 0, 1))), Verdict::Ok);
            // A write in flight while the read is: either answer is fine.
            let v2 = book.next_write(0);
            let floor = book.read_floor(0);
            assert_eq!(book.check(c, 0, floor, Some(&value(&g, 0, 1))), Verdict::Ok);
            assert_eq!(
                book.check(c, 0, floor, Some(&value(&g, 0, v2))),
                Verdict::Ok
            );
            // Once v2 is acknowledged, a read sent afterwards must not see v1 again.
            book.acked(0, v2);
            let floor = book.read_floor(0);
            assert_eq!(
                book.check(c, 0, floor, Some(&value(&g, 0, 1))),
                Verdict::Mismatch
            );
            assert_eq!(book.check(c, 0, floor, Some(&value(&g, 0, 2))), Verdict::Ok);
            // Another key's value, a version never sent, NOT_FOUND, garbage.
            assert_eq!(
                book.check(c, 0, floor, Some(&value(&g, 1, 2))),
                Verdict::Mismatch
            );
            assert_eq!(
                book.check(c, 0, floor, Some(&value(&g, 0, 3))),
                Verdict::Mismatch
            );
            assert_eq!(book.check(c, 0, floor, None), Verdict::NotFound);
            assert_eq!(book.check(c, 0, floor, Some(b"x")), Verdict::Mismatch);
        }
    }

    #[test]
    fn fill_slice_writes_the_stream_matches_checks() {
        for size in [1, 7, 8, 9, 64, 100, 4097] {
            let g = ValueGen::new(9, size);
            let mut v = vec![0x55; size];
            g.fill_slice(3, 2, &mut v);
            assert!(g.matches(3, 2, &v), "size {size}");
            assert_eq!(v, value(&g, 3, 2));
        }
    }

    #[test]
    fn cached_values_are_exactly_the_generated_ones() {
        for size in [1, 9, 64] {
            let g = ValueGen::new(5, size);
            for budget in budgets(5, size) {
                let mut c = ValueCache::new(g, 5, budget);
                let mut rng = 3;
                for _ in 0..200 {
                    let key = (splitmix(&mut rng) % 5) as usize;
                    let version = 1 + splitmix(&mut rng) % 3;
                    let want = value(&g, key, version);
                    assert_eq!(c.value(key, version), &want[..], "{size} {budget}");
                    assert!(c.matches(key, version, &want));
                }
            }
        }
        assert_eq!(ValueCache::new(ValueGen::new(1, 64), 5, 1 << 20).slots(), 5);
        assert_eq!(ValueCache::new(ValueGen::new(1, 64), 5, 130).slots(), 2);
        assert_eq!(ValueCache::new(ValueGen::new(1, 64), 5, 0).slots(), 1);
        assert_eq!(ValueCache::new(ValueGen::new(1, 64), 0, 1 << 20).slots(), 1);
    }

    #[test]
    fn a_cached_value_still_rejects_every_wrong_answer() {
        let g = ValueGen::new(11, 64);
        for budget in budgets(3, 64) {
            let mut c = ValueCache::new(g, 3, budget);
            let good = c.value(1, 4).to_vec();
            assert!(c.matches(1, 4, &good));
            for i in [0, 7, 8, 31, 63] {
                let mut bad = good.clone();
                bad[i] ^= 0x01;
                assert!(!c.matches(1, 4, &bad), "byte {i} flipped, budget {budget}");
            }
            assert!(!c.matches(1, 4, &good[..63]), "short");
            let mut long = good.clone();
            long.push(0);
            assert!(!c.matches(1, 4, &long), "long");
            assert!(!c.matches(1, 4, &[]), "empty");
            assert!(!c.matches(1, 4, &value(&g, 2, 4)), "another key");
            assert!(!c.matches(1, 4, &value(&g, 1, 3)), "another version");
            assert!(
                !c.matches(1, 4, &value(&ValueGen::new(12, 64), 1, 4)),
                "another run"
            );
            // Whatever the slot held before, the answer is the one for the tag asked.
            assert!(c.matches(1, 4, &good));
        }
    }

    #[test]
    fn a_slot_another_key_or_version_took_is_regenerated() {
        let g = ValueGen::new(2, 16);
        // One slot for three keys: every key takes it from the one before.
        let mut c = ValueCache::new(g, 3, 0);
        assert_eq!(c.slots(), 1);
        let k0 = c.value(0, 1).to_vec();
        let k2 = c.value(2, 1).to_vec();
        assert_ne!(k0, k2);
        assert!(c.matches(0, 1, &k0));
        assert!(!c.matches(0, 1, &k2));
        assert!(c.matches(2, 1, &k2));
        // A newer version of the same key replaces the older one.
        let v2 = c.value(2, 2).to_vec();
        assert!(!c.matches(2, 2, &k2));
        assert!(c.matches(2, 2, &v2));
        // The book asks the cache for the newest version sent, even when no WRITE of it went
        // through the cache: an older cached value cannot stand in for it.
        let mut c = ValueCache::new(g, 1, VALUE_CACHE_BYTES);
        let mut book = KeyBook::new(1);
        let v1 = book.next_write(0);
        book.acked(0, v1);
        let old = c.value(0, v1).to_vec();
        let v2 = book.next_write(0);
        book.acked(0, v2);
        assert_eq!(book.check(&mut c, 0, v2, Some(&old)), Verdict::Mismatch);
        assert_eq!(
            book.check(&mut c, 0, v2, Some(&value(&g, 0, v2))),
            Verdict::Ok
        );
        assert_eq!(book.check(&mut c, 0, v1, Some(&old)), Verdict::Ok);
    }

    #[test]
    fn acks_out_of_order_keep_the_highest() {
        let mut book = KeyBook::new(1);
        let a = book.next_write(0);
        let b = book.next_write(0);
        book.acked(0, b);
        book.acked(0, a);
        assert_eq!(book.read_floor(0), b);
    }

    #[test]
    fn a_never_written_key_matches_nothing() {
        let g = ValueGen::new(1, 16);
        let c = &mut ValueCache::new(g, 1, VALUE_CACHE_BYTES);
        let book = KeyBook::new(1);
        assert_eq!(
            book.check(c, 0, 0, Some(&value(&g, 0, 0))),
            Verdict::Mismatch
        );
        assert_eq!(
            book.check(c, 0, 0, Some(&value(&g, 0, 1))),
            Verdict::Mismatch
        );
        assert_eq!(book.check(c, 0, 0, None), Verdict::NotFound);
    }
}
