//! Key choice as YCSB makes it: the Zipfian generator of Gray et al. ("Quickly generating
//! billion-record synthetic databases", SIGMOD 1994) exactly as YCSB's `ZipfianGenerator` draws
//! it, and YCSB's default `ScrambledZipfianGenerator`, which hashes the Zipfian rank with FNV so
//! the hot keys are spread over the keyspace instead of bunched at its start. Owns the
//! generators' constants; must never keep per-key state (a generator is a few floats whatever
//! the number of items) and never draw randomness of its own (the caller's [`Rng`] decides).

use crate::rng::Rng;
use libm::pow;

/// YCSB's default Zipfian constant (`ZipfianGenerator.ZIPFIAN_CONSTANT`).
pub const YCSB_ZIPFIAN_CONSTANT: f64 = 0.99;

/// The item count YCSB's scrambled generator draws ranks over before hashing them onto the
/// keyspace (`ScrambledZipfianGenerator.ITEM_COUNT`).
pub const YCSB_ITEM_COUNT: u64 = 10_000_000_000;

/// zeta([`YCSB_ITEM_COUNT`], 0.99) as YCSB hard-codes it (`ScrambledZipfianGenerator.ZETAN`), so
/// that no one sums ten billion terms at start-up.
pub const YCSB_ZETAN: f64 = 26.469_028_201_783_02;

/// Terms of zeta summed one by one; past this an Euler–Maclaurin tail takes over.
const EXACT_TERMS: u64 = 1 << 20;

/// The generalised harmonic number zeta(n, theta) = sum over i in 1..=n of 1 / i^theta.
///
/// The first 2^20 terms are summed exactly (as YCSB sums all of them); the rest comes from the
/// Euler–Maclaurin formula, whose error after the first derivative term is below 1e-17 there, so
/// a billion-record table does not cost a billion `pow` calls to start.
///
/// ```
/// use kvstore::{zeta, YCSB_ZETAN, YCSB_ITEM_COUNT};
/// assert!((zeta(2, 0.99) - (1.0 + 0.5f64.powf(0.99))).abs() < 1e-12);
/// assert!((zeta(YCSB_ITEM_COUNT, 0.99) / YCSB_ZETAN - 1.0).abs() < 1e-9);
/// ```
#[must_use]
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(EXACT_TERMS);
    let mut sum = 0.0;
    for i in 1..=exact {
        sum += 1.0 / pow(i as f64, theta);
    }
    if n > exact {
        // sum_{i=m+1}^{n} f(i) = integral_m^n f + (f(n) - f(m)) / 2 + (f'(n) - f'(m)) / 12 + ...
        // with f(x) = x^-theta.
        let (m, n) = (exact as f64, n as f64);
        let f = |x: f64| pow(x, -theta);
        let df = |x: f64| -theta * pow(x, -theta - 1.0);
        let integral = if (theta - 1.0).abs() < 1e-12 {
            libm::log(n / m)
        } else {
            (pow(n, 1.0 - theta) - pow(m, 1.0 - theta)) / (1.0 - theta)
        };
        sum += integral + (f(n) - f(m)) / 2.0 + (df(n) - df(m)) / 12.0;
    }
    sum
}

/// YCSB's `ZipfianGenerator`: ranks in `[0, items)`, rank 0 the most popular, popularity of rank
/// r proportional to 1 / (r + 1)^theta.
///
/// Ranks 0 and 1 are drawn exactly; the rest by Gray et al.'s closed-form approximation, as in
/// YCSB. Built in O(min(items, 2^20)) time (the zeta sum), a draw is O(1).
///
/// ```
/// use kvstore::{Rng, Zipfian};
/// let zipf = Zipfian::new(1000, 0.99).unwrap();
/// let mut rng = Rng::new(7);
/// let rank = zipf.next(&mut rng);
/// assert!(rank < 1000);
/// // Rank 0 is drawn with probability 1 / zeta(n, theta).
/// assert!((zipf.probability_of_rank0() - 1.0 / kvstore::zeta(1000, 0.99)).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^theta`: below this `u * zetan` means rank 1.
    rank1_bound: f64,
}

impl Zipfian {
    /// A generator over `items` ranks with skew `theta`; `None` unless `items >= 1` and
    /// `0 <= theta < 1` (the formula divides by `1 - theta`).
    #[must_use]
    pub fn new(items: u64, theta: f64) -> Option<Self> {
        if !(0.0..1.0).contains(&theta) {
            return None;
        }
        Self::with_zetan(items, theta, zeta(items, theta))
    }

    /// As [`Zipfian::new`] with zeta(items, theta) supplied, as YCSB does for its scrambled
    /// generator's ten billion items; `None` also if `zetan` is not positive and finite.
    #[must_use]
    pub fn with_zetan(items: u64, theta: f64, zetan: f64) -> Option<Self> {
        if items == 0 || !(0.0..1.0).contains(&theta) || !(zetan.is_finite() && zetan > 0.0) {
            return None;
        }
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - pow(2.0 / items as f64, 1.0 - theta)) / (1.0 - zeta2 / zetan);
        Some(Self {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            rank1_bound: 1.0 + pow(0.5, theta),
        })
    }

    /// The number of ranks.
    #[must_use]
    pub const fn items(&self) -> u64 {
        self.items
    }

    /// The skew.
    #[must_use]
    pub const fn theta(&self) -> f64 {
        self.theta
    }

    /// The zeta(items, theta) the generator normalises by.
    #[must_use]
    pub const fn zetan(&self) -> f64 {
        self.zetan
    }

    /// The probability the generator gives rank 0: 1 / zeta(items, theta).
    #[must_use]
    pub fn probability_of_rank0(&self) -> f64 {
        1.0 / self.zetan
    }

    /// The next rank, in `[0, items)`.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.rank1_bound {
            return 1.min(self.items - 1);
        }
        let rank = (self.items as f64 * pow(self.eta * u - self.eta + 1.0, self.alpha)) as u64;
        // YCSB can return `items` itself when rounding lifts the power to 1; clamp instead.
        rank.min(self.items - 1)
    }
}

/// YCSB's `Utils.fnvhash64`: FNV-1a over the eight little-end-first bytes of `value`, then the
/// absolute value as a signed number (Java's `Math.abs`; `i64::MIN` stays 2^63 here, where Java
/// would go negative).
///
/// ```
/// assert_eq!(kvstore::fnvhash64(0), 0x5738_07cd_d7e5_c63b);
/// ```
#[must_use]
pub const fn fnvhash64(value: u64) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET_BASIS;
    let mut v = value;
    let mut i = 0;
    while i < 8 {
        hash ^= v & 0xff;
        hash = hash.wrapping_mul(PRIME);
        v >>= 8;
        i += 1;
    }
    (hash as i64).wrapping_abs() as u64
}

/// YCSB's default key chooser, `ScrambledZipfianGenerator` with theta 0.99: a Zipfian rank over
/// [`YCSB_ITEM_COUNT`] + 1 items (as YCSB builds it: `ZipfianGenerator(0, ITEM_COUNT)`, bounds
/// inclusive) with the hard-coded [`YCSB_ZETAN`], hashed by [`fnvhash64`] and reduced modulo
/// `items`. The popularity curve is still Zipfian, but the hot items land all over `[0, items)`.
///
/// ```
/// use kvstore::{Rng, ScrambledZipfian};
/// let keys = ScrambledZipfian::new(100_000).unwrap();
/// let mut rng = Rng::new(3);
/// assert!(keys.next(&mut rng) < 100_000);
/// ```
#[derive(Clone, Debug)]
pub struct ScrambledZipfian {
    ranks: Zipfian,
    items: u64,
}

impl ScrambledZipfian {
    /// A chooser over `[0, items)`; `None` if `items` is 0. Construction is O(1).
    #[must_use]
    pub fn new(items: u64) -> Option<Self> {
        if items == 0 {
            return None;
        }
        let ranks = Zipfian::with_zetan(YCSB_ITEM_COUNT + 1, YCSB_ZIPFIAN_CONSTANT, YCSB_ZETAN)?;
        Some(Self { ranks, items })
    }

    /// The number of items chosen among.
    #[must_use]
    pub const fn items(&self) -> u64 {
        self.items
    }

    /// The item a rank lands on: where the rank's popularity goes in the keyspace.
    #[must_use]
    pub const fn item_of_rank(&self, rank: u64) -> u64 {
        fnvhash64(rank) % self.items
    }

    /// The next item, in `[0, items)`.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        self.item_of_rank(self.ranks.next(rng))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const SAMPLES: usize = 1_000_000;

    fn histogram(n: u64, draw: impl Fn(&mut Rng) -> u64, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..SAMPLES {
            let r = draw(&mut rng);
            assert!(r < n, "draw {r} out of [0, {n})");
            counts[r as usize] += 1;
        }
        counts
    }

    #[test]
    fn rank0_and_rank1_frequencies_match_theory_at_theta_099() {
        let n = 1000;
        let zipf = Zipfian::new(n, 0.99).unwrap();
        let counts = histogram(n, |rng| zipf.next(rng), 11);
        let zetan = zeta(n, 0.99);
        for (rank, expected) in [(0usize, 1.0 / zetan), (1, pow(0.5, 0.99) / zetan)] {
            let observed = counts[rank] as f64 / SAMPLES as f64;
            // Five standard deviations of a binomial proportion over SAMPLES draws.
            let sigma = (expected * (1.0 - expected) / SAMPLES as f64).sqrt();
            assert!(
                (observed - expected).abs() < 5.0 * sigma,
                "rank {rank}: observed {observed}, expected {expected}"
            );
        }
        // The popularity is monotone over the head and the tail is still drawn.
        assert!(counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[10]);
        assert!(counts[500..].iter().sum::<u64>() > 0);
    }

    #[test]
    fn every_draw_is_in_range_even_for_tiny_and_huge_item_counts() {
        let mut rng = Rng::new(5);
        for n in [1u64, 2, 3, 10, 1 << 40, u64::MAX / 2] {
            let zipf = Zipfian::new(n, 0.99).unwrap();
            let scrambled = ScrambledZipfian::new(n).unwrap();
            for _ in 0..20_000 {
                assert!(zipf.next(&mut rng) < n);
                assert!(scrambled.next(&mut rng) < n);
            }
        }
        assert!(Zipfian::new(0, 0.99).is_none());
        assert!(Zipfian::new(10, 1.0).is_none());
        assert!(Zipfian::new(10, f64::NAN).is_none());
        assert!(ScrambledZipfian::new(0).is_none());
    }

    #[test]
    fn a_fixed_seed_fixes_the_sequence() {
        let zipf = Zipfian::new(100_000, 0.99).unwrap();
        let scrambled = ScrambledZipfian::new(100_000).unwrap();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..1000)
                .map(|_| (zipf.next(&mut rng), scrambled.next(&mut rng)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn zeta_tail_matches_the_exact_sum_and_ycsbs_constant() {
        let n = 3_000_000u64;
        let exact: f64 = (1..=n).map(|i| 1.0 / pow(i as f64, 0.99)).sum();
        assert!((zeta(n, 0.99) / exact - 1.0).abs() < 1e-12);
        assert!((zeta(YCSB_ITEM_COUNT, 0.99) / YCSB_ZETAN - 1.0).abs() < 1e-9);
    }

    #[test]
    fn fnvhash64_matches_ycsb() {
        // The definition restated as YCSB writes it (octet = val & 0xff; val >>= 8; hash ^=
        // octet; hash *= prime; eight times, then Math.abs).
        let reference = |mut v: u64| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for _ in 0..8 {
                h = (h ^ (v & 0xff)).wrapping_mul(0x100_0000_01b3);
                v >>= 8;
            }
            (h as i64).unsigned_abs()
        };
        for v in [0u64, 1, 12345, u64::MAX, 1 << 63] {
            assert_eq!(fnvhash64(v), reference(v));
        }
    }

    #[test]
    fn scrambling_spreads_the_hot_keys_over_the_keyspace() {
        let n = 10_000u64;
        let plain = Zipfian::new(n, 0.99).unwrap();
        let scrambled = ScrambledZipfian::new(n).unwrap();
        let tenths = |counts: &[u64]| {
            let mut t = [0u64; 10];
            for (i, c) in counts.iter().enumerate() {
                t[i * 10 / n as usize] += c;
            }
            t.map(|c| c as f64 / SAMPLES as f64)
        };
        let plain_tenths = tenths(&histogram(n, |rng| plain.next(rng), 1));
        let scrambled_counts = histogram(n, |rng| scrambled.next(rng), 1);
        let scrambled_tenths = tenths(&scrambled_counts);
        // Unscrambled, the first tenth of the keys takes most of the accesses.
        assert!(plain_tenths[0] > 0.6, "{plain_tenths:?}");
        // Scrambled, every tenth gets roughly its share (the hottest key alone is about 4%).
        for t in scrambled_tenths {
            assert!((0.05..0.17).contains(&t), "{scrambled_tenths:?}");
        }
        // Still Zipfian: the hottest key is far hotter than the average key, and it sits where
        // rank 0 hashes to.
        let (hottest, &max) = scrambled_counts
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .unwrap();
        assert!(max as f64 / SAMPLES as f64 > 0.03);
        assert_eq!(hottest as u64, scrambled.item_of_rank(0));
    }
}
