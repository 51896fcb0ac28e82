//! The crate's own small, portable pseudo-random numbers: SplitMix64 (for seeding, for mixing a
//! key and for the value streams) and xoshiro256** (the workload's generator). Owns nothing but
//! their state; must never read an outside source of entropy or time, so that a seed fixes a run
//! bit for bit on Ferrite and on Linux alike.

/// SplitMix64's output function, a bijection on `u64` that scatters nearby inputs far apart.
///
/// Being a bijection is why the workload uses it to turn record numbers into keys: distinct
/// record numbers can never collide.
///
/// ```
/// use kvstore::mix64;
/// assert_ne!(mix64(1), mix64(2));
/// assert_eq!(mix64(7), mix64(7));
/// ```
#[must_use]
pub const fn mix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64 (Steele, Lea and Flood): one word of state, every seed good. The value streams
/// use it because a fresh one per (key, version) costs nothing to start.
///
/// ```
/// use kvstore::SplitMix64;
/// let mut a = SplitMix64::new(42);
/// let mut b = SplitMix64::new(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next word of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64 as its authors recommend: the
/// workload's generator for operation kinds and Zipfian draws.
///
/// ```
/// use kvstore::Rng;
/// let mut rng = Rng::new(1);
/// let u = rng.next_f64();
/// assert!((0.0..1.0).contains(&u));
/// assert!(rng.below(10) < 10);
/// ```
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        // Four consecutive SplitMix64 outputs are never all zero (it is a bijection of distinct
        // states), so the state is valid for every seed.
        Self {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform double in `[0, 1)` from the top 53 bits (what Java's `nextDouble` gives YCSB).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, n)` without modulo bias (Lemire's multiply-and-reject); `n == 0`
    /// gives 0.
    pub fn below(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_after_seeding() {
        // The reference implementation's first outputs for the state {1, 2, 3, 4}.
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let first: [u64; 3] = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        assert_eq!(first, [11520, 0, 1509978240]);
    }

    #[test]
    fn splitmix_matches_reference() {
        // SplitMix64 seeded with 1234567: the published first outputs.
        let mut sm = SplitMix64::new(1234567);
        assert_eq!(sm.next_u64(), 6457827717110365317);
        assert_eq!(sm.next_u64(), 3203168211198807973);
    }

    #[test]
    fn below_stays_in_range_and_f64_in_unit_interval() {
        let mut rng = Rng::new(9);
        for n in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
        for _ in 0..10_000 {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
