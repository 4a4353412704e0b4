//! Rendezvous (highest-random-weight) placement of keys on slaves, with a hash that is stable
//! across builds, machines and Rust versions (std's hasher promises none of that).

/// FNV-1a over the bytes, then a splitmix64 finaliser so that nearby inputs spread out.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser: a bijection with good avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of `slave_hash` for `key_hash`; the slaves with the highest weights hold the key.
pub fn weight(key_hash: u64, slave_hash: u64) -> u64 {
    mix(key_hash ^ slave_hash.rotate_left(17))
}

/// Order the slave indices in `order` by descending weight for the key, ties broken by index
/// so the order is total; `hash_of(idx)` is the hash of that slave's id. In place, with each
/// weight computed once: every write ranks the live slaves, and weighing inside a sort's
/// comparisons cost more than the rest of starting the write.
pub fn rank_in_place(key_hash: u64, order: &mut [u32], hash_of: impl Fn(u32) -> u64) {
    const SMALL: usize = 16;
    if order.len() > SMALL {
        order.sort_unstable_by_key(|&idx| std::cmp::Reverse((weight(key_hash, hash_of(idx)), idx)));
        return;
    }
    // Insertion sort of (weight, index) pairs, best first: a handful of slaves.
    let mut ranked = [(0u64, 0u32); SMALL];
    for (n, &idx) in order.iter().enumerate() {
        let item = (weight(key_hash, hash_of(idx)), idx);
        let mut pos = n;
        while pos > 0 && ranked[pos - 1] < item {
            ranked[pos] = ranked[pos - 1];
            pos -= 1;
        }
        ranked[pos] = item;
    }
    for (slot, &(_, idx)) in order.iter_mut().zip(ranked.iter()) {
        *slot = idx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slaves(n: u32) -> Vec<(u32, u64)> {
        (0..n)
            .map(|i| (i, stable_hash(format!("slave-{i}").as_bytes())))
            .collect()
    }

    /// `rank_in_place` over `(index, id hash)` pairs.
    fn rank(key_hash: u64, slaves: &[(u32, u64)]) -> Vec<u32> {
        let mut order: Vec<u32> = slaves.iter().map(|&(i, _)| i).collect();
        let hash_of = |i: u32| slaves.iter().find(|&&(j, _)| j == i).unwrap().1;
        rank_in_place(key_hash, &mut order, hash_of);
        order
    }

    #[test]
    fn ranking_in_place_keeps_the_order_of_a_sorted_scored_copy() {
        // The order placement had before it ranked in place: like the hash, the order must
        // not change between releases.
        for n in [1, 3, 5, 16, 17, 40] {
            let s = slaves(n);
            ranking_matches_scored_copy(&s);
        }
    }

    fn ranking_matches_scored_copy(s: &[(u32, u64)]) {
        for k in 0..2000 {
            let kh = stable_hash(format!("key-{k}").as_bytes());
            let mut scored: Vec<(u64, u32)> = s.iter().map(|&(i, h)| (weight(kh, h), i)).collect();
            scored.sort_unstable_by(|a, b| b.cmp(a));
            let expect: Vec<u32> = scored.into_iter().map(|(_, i)| i).collect();
            assert_eq!(rank(kh, s), expect);
        }
    }

    #[test]
    fn hash_is_stable() {
        // Pinned values: placement must not change between releases or machines.
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_eq!(stable_hash(b"key-1"), stable_hash(b"key-1"));
    }

    #[test]
    fn spread_is_even_for_r2_over_3() {
        let s = slaves(3);
        let mut counts = [0u32; 3];
        for k in 0..3000 {
            let order = rank(stable_hash(format!("key-{k}").as_bytes()), &s);
            for &i in &order[..2] {
                counts[i as usize] += 1;
            }
        }
        // Even share is 2000 each; every slave within 10% of it.
        for c in counts {
            assert!((1800..=2200).contains(&c), "uneven spread {counts:?}");
        }
    }

    #[test]
    fn removing_a_slave_moves_only_its_keys() {
        let all = slaves(5);
        let without: Vec<_> = all.iter().copied().filter(|(i, _)| *i != 2).collect();
        for k in 0..1000 {
            let kh = stable_hash(format!("k{k}").as_bytes());
            let before = rank(kh, &all);
            let after = rank(kh, &without);
            let expect: Vec<u32> = before.into_iter().filter(|&i| i != 2).collect();
            assert_eq!(after, expect, "rendezvous order must survive a removal");
        }
    }
}
