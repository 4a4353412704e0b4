//! Read checking: every value the bench writes is derived from (run, key, version), and every
//! READ answer must be a version that was acknowledged before the read was sent, or a later one.

/// Bytes of the value for one (key, version) of this run: a splitmix64 stream seeded from the
/// three, so two keys or two versions differ in every 8-byte word (for values of 8 bytes and
/// up) and a value left over from an earlier run never passes for one of this run.
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

    /// Replace `out` with the value for `key` at `version`.
    pub fn fill(&self, key: usize, version: u64, out: &mut Vec<u8>) {
        out.clear();
        let mut state = self.seed(key, version);
        while out.len() < self.size {
            let word = splitmix(&mut state).to_le_bytes();
            let n = (self.size - out.len()).min(8);
            out.extend_from_slice(&word[..n]);
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
            u64::from_le_bytes(w.try_into().expect("chunks_exact(8)")) == splitmix(&mut state)
        });
        let tail = words.remainder();
        whole && tail == &splitmix(&mut state).to_le_bytes()[..tail.len()]
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

    /// What a READ sent now must at least see: the latest acknowledged version.
    pub fn read_floor(&self, key: usize) -> u64 {
        self.keys[key].acked
    }

    /// Check a READ answer (`None` = NOT_FOUND) for a read sent when the floor was `floor`.
    /// Any version from `floor` to the latest sent is acceptable: writes sent after the read
    /// went out, or that failed with an unknown outcome, are concurrent with it.
    pub fn check(&self, gen: &ValueGen, key: usize, floor: u64, value: Option<&[u8]>) -> Verdict {
        let Some(value) = value else {
            return Verdict::NotFound;
        };
        let newest = self.keys[key].sent;
        // The newest candidate is the usual answer: try it first.
        let found = (floor.max(1)..=newest)
            .rev()
            .any(|v| gen.matches(key, v, value));
        if found {
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

    #[test]
    fn a_read_sees_the_acked_version_or_a_later_one() {
        let g = ValueGen::new(1, 32);
        let mut book = KeyBook::new(2);
        let v1 = book.next_write(0);
        book.acked(0, v1);
        let floor = book.read_floor(0);
        assert_eq!(floor, 1);
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 0, 1))),
            Verdict::Ok
        );
        // A write in flight while the read is: either answer is fine.
        let v2 = book.next_write(0);
        let floor = book.read_floor(0);
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 0, 1))),
            Verdict::Ok
        );
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 0, v2))),
            Verdict::Ok
        );
        // Once v2 is acknowledged, a read sent afterwards must not see v1 again.
        book.acked(0, v2);
        let floor = book.read_floor(0);
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 0, 1))),
            Verdict::Mismatch
        );
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 0, 2))),
            Verdict::Ok
        );
        // Another key's value, a version never sent, NOT_FOUND, garbage.
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 1, 2))),
            Verdict::Mismatch
        );
        assert_eq!(
            book.check(&g, 0, floor, Some(&value(&g, 0, 3))),
            Verdict::Mismatch
        );
        assert_eq!(book.check(&g, 0, floor, None), Verdict::NotFound);
        assert_eq!(book.check(&g, 0, floor, Some(b"x")), Verdict::Mismatch);
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
        let book = KeyBook::new(1);
        assert_eq!(
            book.check(&g, 0, 0, Some(&value(&g, 0, 0))),
            Verdict::Mismatch
        );
        assert_eq!(book.check(&g, 0, 0, None), Verdict::NotFound);
    }
}
