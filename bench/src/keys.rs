//! Bench key names (`bench:<n>`, zero-padded or not), rendered once into a cache instead of
//! once per request, and the order a run visits keys in, chosen without a division.

/// Every bench key starts with this; the key number follows in decimal.
pub const KEY_PREFIX: &[u8] = b"bench:";

/// Decimal digits of `n` (1 for 0).
pub fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The smallest `--key-size` that gives each of `keys` keys its own name of exactly that many
/// bytes: the prefix and the digits of the largest key number, `keys - 1`.
pub fn min_key_size(keys: usize) -> usize {
    KEY_PREFIX.len() + digits(keys.saturating_sub(1))
}

/// Memory the bench gives [`KeyNames`]; past it, keys share slots.
pub const KEY_NAME_CACHE_BYTES: usize = 16 << 20;

/// Key names rendered once instead of once per request: a direct-mapped table, key k in slot
/// k mod slots (slot k while every key has its own), each slot tagged with the key whose name
/// it holds, so a slot another key took is rendered again, never sent under the wrong name.
#[derive(Debug, Clone)]
pub struct KeyNames {
    /// Key numbers are zero-padded to this many digits (0: not padded).
    width: usize,
    /// Bytes per slot: the longest name of keys `0..keys`.
    stride: usize,
    /// (key, name length) of each slot; key `usize::MAX` (never a key number) marks it empty.
    tags: Vec<(usize, usize)>,
    bytes: Vec<u8>,
}

impl KeyNames {
    /// Names of keys `0..keys` zero-padded to `width` digits, in about `budget` bytes.
    pub fn new(keys: usize, width: usize, budget: usize) -> KeyNames {
        let stride = KEY_PREFIX.len() + width.max(digits(keys.saturating_sub(1)));
        let slots = (budget / stride).clamp(1, keys.max(1));
        KeyNames {
            width,
            stride,
            tags: vec![(usize::MAX, 0); slots],
            bytes: vec![0; slots * stride],
        }
    }

    /// Slots: one per key when the budget allows.
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.tags.len()
    }

    /// The name of key number `key` (below the `keys` the table was made for).
    #[inline]
    pub fn name(&mut self, key: usize) -> &[u8] {
        let slots = self.tags.len();
        // No division while every key has its own slot.
        let slot = if key < slots { key } else { key % slots };
        if self.tags[slot].0 != key {
            self.render(slot, key);
        }
        let start = slot * self.stride;
        &self.bytes[start..start + self.tags[slot].1]
    }

    /// Render `key`'s name into `slot`, which held another key's (or none).
    #[inline(never)]
    fn render(&mut self, slot: usize, key: usize) {
        let bytes = &mut self.bytes[slot * self.stride..(slot + 1) * self.stride];
        self.tags[slot] = (key, render_key(key, self.width, bytes));
    }
}

/// `bench:<key>` into `out`, the number zero-padded to at least `width` digits (0: as is).
pub fn key_name(key: usize, width: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(KEY_PREFIX.len() + width.max(digits(key)), 0);
    render_key(key, width, out);
}

/// `bench:<key>` (as [`key_name`]) over the front of `out`, without the formatting machinery;
/// returns its length. `out` must have room for it.
fn render_key(key: usize, width: usize, out: &mut [u8]) -> usize {
    let len = KEY_PREFIX.len() + width.max(digits(key));
    let (prefix, number) = out[..len].split_at_mut(KEY_PREFIX.len());
    prefix.copy_from_slice(KEY_PREFIX);
    // Right to left; once the number runs out the rest is the zero padding.
    let mut n = key;
    for d in number.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    len
}

/// `r` (uniform over u64) mapped to `0..n` (n >= 1) by a multiply instead of a division, as
/// evenly as `r % n` would.
pub fn below(r: u64, n: usize) -> usize {
    ((u128::from(r) * n as u128) >> 64) as usize
}

/// Key `i mod keys` for the `i`-th request of a write or read run, by counting up (the
/// requests are planned in order) instead of a division each; any other `i` is divided.
#[derive(Debug, Clone)]
pub struct KeyCycle {
    keys: usize,
    /// The `i` expected next, and its key.
    next_i: u64,
    next_key: usize,
}

impl KeyCycle {
    pub fn new(keys: usize) -> KeyCycle {
        KeyCycle {
            keys,
            next_i: 0,
            next_key: 0,
        }
    }

    #[inline]
    pub fn key(&mut self, i: u64) -> usize {
        let key = if i == self.next_i {
            self.next_key
        } else {
            (i % self.keys as u64) as usize
        };
        self.next_i = i.wrapping_add(1);
        // After u64::MAX comes 0, whose key is 0 too.
        self.next_key = if key + 1 == self.keys || self.next_i == 0 {
            0
        } else {
            key + 1
        };
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::splitmix;

    #[test]
    fn key_names_are_decimal() {
        let mut b = Vec::new();
        for (k, s) in [(0, "bench:0"), (7, "bench:7"), (1234567, "bench:1234567")] {
            key_name(k, 0, &mut b);
            assert_eq!(b, s.as_bytes());
        }
        key_name(usize::MAX, 0, &mut b);
        assert_eq!(b, format!("bench:{}", usize::MAX).as_bytes());
    }

    #[test]
    fn min_key_size_counts_the_largest_key_number() {
        assert_eq!(
            (digits(0), digits(9), digits(10), digits(999_999)),
            (1, 1, 2, 6)
        );
        assert_eq!(digits(usize::MAX), usize::MAX.to_string().len());
        // Keys 0..K-1: K = 10 needs one digit, K = 11 two.
        assert_eq!(
            (min_key_size(1), min_key_size(10), min_key_size(11)),
            (7, 7, 8)
        );
        assert_eq!(min_key_size(1_000_000), 12);
        assert_eq!(min_key_size(1_000_001), 13);
    }

    #[test]
    fn key_name_table_holds_each_keys_own_name() {
        for width in [0, 4] {
            let mut want = Vec::new();
            // A slot per key, fewer slots than keys, one slot.
            for budget in [KEY_NAME_CACHE_BYTES, 40, 0] {
                let mut names = KeyNames::new(1000, width, budget);
                assert!(names.slots() >= 1 && names.slots() <= 1000);
                let mut rng = 7;
                for i in 0..3000 {
                    let key = if i < 1000 {
                        i
                    } else {
                        (splitmix(&mut rng) % 1000) as usize
                    };
                    key_name(key, width, &mut want);
                    assert_eq!(names.name(key), &want[..], "{key} {width} {budget}");
                }
            }
        }
        assert_eq!(KeyNames::new(1000, 0, KEY_NAME_CACHE_BYTES).slots(), 1000);
        assert_eq!(KeyNames::new(1000, 0, 0).slots(), 1);
        assert_eq!(KeyNames::new(0, 0, KEY_NAME_CACHE_BYTES).slots(), 1);
        // 10 keys in two slots of "bench:N": keys 0 and 2 take turns in slot 0.
        let mut names = KeyNames::new(10, 0, 14);
        assert_eq!(names.slots(), 2);
        assert_eq!(names.name(0), b"bench:0");
        assert_eq!(names.name(2), b"bench:2");
        assert_eq!(names.name(0), b"bench:0");
        assert_eq!(names.name(9), b"bench:9");
    }

    #[test]
    fn the_key_cycle_is_i_mod_keys_in_any_order() {
        for keys in [1, 2, 7, 1000] {
            let mut c = KeyCycle::new(keys);
            let mut rng = 1;
            let mut i = 0u64;
            for _ in 0..5000 {
                // Mostly in order (the closed loop), sometimes skipping or going back.
                i = match splitmix(&mut rng) % 8 {
                    0 => splitmix(&mut rng) % 100_000,
                    1 => u64::MAX - splitmix(&mut rng) % 3,
                    _ => i.wrapping_add(1),
                };
                assert_eq!(c.key(i), (i % keys as u64) as usize, "{keys} keys, i {i}");
            }
        }
    }

    #[test]
    fn below_spreads_evenly_and_stays_in_range() {
        let mut counts = [0u32; 7];
        let mut rng = 3;
        for _ in 0..70_000 {
            counts[below(splitmix(&mut rng), 7)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(
            (below(0, 5), below(u64::MAX, 5), below(u64::MAX, 1)),
            (0, 4, 0)
        );
    }
}
