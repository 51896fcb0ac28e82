//! SIMD kernels of portable algorithms, for the kernel build: each computes exactly what its
//! portable twin computes (a self-test compares them), only with Advanced SIMD registers.
//! Owns no algorithm; must never differ from the portable version in any bit.

use core::arch::aarch64::{uint64x2_t, vaddq_u64, vgetq_lane_u64, vld1q_u64};

/// Fletcher's two running sums over four lanes of words (word i feeds lane i % 4), from the
/// lane values `a` and `b`, as `mm::swapfile::page_checksum` defines them. `words.len()` must
/// be a multiple of 4.
pub fn fletcher4(a: [u64; 4], b: [u64; 4], words: &[u64]) -> ([u64; 4], [u64; 4]) {
    assert!(words.len().is_multiple_of(4));
    if !(words.as_ptr() as usize).is_multiple_of(16) {
        // Vector loads here are aligned ones (the kernel is built for strict alignment, where
        // an unaligned vector load becomes sixteen byte loads): words not 16-byte aligned take
        // the portable path.
        return crate::mm::swapfile::fletcher4_portable(a, b, words);
    }
    let pair = |x: u64, y: u64| -> uint64x2_t {
        let v = [x, y];
        // SAFETY: reads the two words of `v` (Advanced SIMD is part of the kernel's target).
        unsafe { vld1q_u64(v.as_ptr()) }
    };
    let (mut a01, mut a23) = (pair(a[0], a[1]), pair(a[2], a[3]));
    let (mut b01, mut b23) = (pair(b[0], b[1]), pair(b[2], b[3]));
    let p = words.as_ptr().cast::<uint64x2_t>();
    for i in 0..words.len() / 4 {
        // SAFETY: `words` is 16-byte aligned and 2 * i + 1 < len / 2 vectors of two words lie
        // inside it; every bit pattern is a valid vector.
        let (lo, hi) = unsafe { (p.add(2 * i).read(), p.add(2 * i + 1).read()) };
        // SAFETY: Advanced SIMD additions on values (part of the kernel's target).
        unsafe {
            a01 = vaddq_u64(a01, lo);
            a23 = vaddq_u64(a23, hi);
            b01 = vaddq_u64(b01, a01);
            b23 = vaddq_u64(b23, a23);
        }
    }
    let lanes = |v: uint64x2_t| -> [u64; 2] {
        // SAFETY: lane extraction (Advanced SIMD is part of the kernel's target).
        unsafe { [vgetq_lane_u64::<0>(v), vgetq_lane_u64::<1>(v)] }
    };
    let (a0, a1, b0, b1) = (lanes(a01), lanes(a23), lanes(b01), lanes(b23));
    ([a0[0], a0[1], a1[0], a1[1]], [b0[0], b0[1], b1[0], b1[1]])
}
