//! The host tests' random numbers: xorshift64*, deterministic and good enough to drive model
//! tests. Test builds only; must never be used where randomness matters.
#![forbid(unsafe_code)]

pub struct Rng(pub u64);

impl Rng {
    /// A generator whose state is spread from `seed` (never zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
