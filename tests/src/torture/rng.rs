//! A seeded SplitMix64 generator: the whole torture run (workload and nemesis) follows from one
//! printed seed, so a schedule can be replayed. Not cryptographic; no `rand` needed.

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough mixing for
/// choosing keys, operations and faults.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent stream for `stream` (a client number, the nemesis), so adding a client
    /// does not shift the numbers every other one draws.
    pub fn stream(seed: u64, stream: u64) -> Rng {
        let mut r = Rng::new(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0), by Lemire's multiply-shift (bias below 2^-32 for small n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "Rng::between({lo}, {hi})");
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An index into `weights` chosen in proportion to them; `None` if they are all 0.
    pub fn weighted(&mut self, weights: &[u64]) -> Option<usize> {
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut pick = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if pick < w {
                return Some(i);
            }
            pick -= w;
        }
        unreachable!("pick < total")
    }
}

/// A seed from the clock, for runs that do not name one (printed so they can be replayed).
pub fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Rng::new(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers_and_streams_differ() {
        let (mut r1, mut r2) = (Rng::new(7), Rng::new(7));
        let a: Vec<u64> = (0..5).map(|_| r1.next_u64()).collect();
        let b: Vec<u64> = (0..5).map(|_| r2.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(Rng::stream(7, 1).next_u64(), Rng::stream(7, 2).next_u64());
        // The reference output of SplitMix64 seeded with 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn below_between_and_weighted_stay_in_range_and_cover_it() {
        let mut r = Rng::new(42);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            let n = r.below(6) as usize;
            seen[n] += 1;
            let b = r.between(3, 5);
            assert!((3..=5).contains(&b));
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        let mut picks = [0u32; 3];
        for _ in 0..3000 {
            picks[r.weighted(&[1, 0, 2]).unwrap()] += 1;
        }
        assert_eq!(picks[1], 0);
        assert!(picks[2] > picks[0], "{picks:?}");
        assert_eq!(r.weighted(&[0, 0]), None);
    }
}
