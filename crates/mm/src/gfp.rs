//! GFP ("get free pages") flags: which zones a request may use and how hard to try. Linux's names
//! and meanings, so a kernel engineer reads `Gfp::KERNEL | Gfp::ZERO` as they would in C. Owns the
//! flag values only; must never encode policy (that is `page_alloc`).
#![forbid(unsafe_code)]

use core::ops::{BitOr, BitOrAssign};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Gfp(u32);

impl Gfp {
    /// Ordinary kernel memory: any zone, NORMAL first.
    pub const KERNEL: Gfp = Gfp(0);
    /// Only the DMA zone (the most restricted DMA master can reach it).
    pub const DMA: Gfp = Gfp(1 << 0);
    /// DMA32 or DMA: below 4 GiB.
    pub const DMA32: Gfp = Gfp(1 << 1);
    /// Return zeroed memory.
    pub const ZERO: Gfp = Gfp(1 << 2);
    /// Do not warn on failure (the caller has a fallback).
    pub const NOWARN: Gfp = Gfp(1 << 3);
    /// Fail rather than call reclaim a second time.
    pub const NORETRY: Gfp = Gfp(1 << 4);
    /// Must not fail: reclaim as long as it makes progress, then stop the kernel with a report.
    pub const NOFAIL: Gfp = Gfp(1 << 5);
    /// May dip below the min watermark (emergency allocations that free memory soon).
    pub const HIGH: Gfp = Gfp(1 << 6);
    /// Interrupt context, or a caller that must not wait (Linux's `GFP_ATOMIC`): never reclaims,
    /// never waits for a lock (fails instead), may dip below the min watermark by half (as
    /// `HIGH`, Linux's `ALLOC_HARDER`). Interrupt context implies it; anything else there is
    /// refused with a report.
    pub const ATOMIC: Gfp = Gfp(1 << 7);

    pub const fn bits(self) -> u32 {
        self.0
    }
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

impl BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}

impl BitOrAssign for Gfp {
    fn bitor_assign(&mut self, rhs: Gfp) {
        self.0 |= rhs.0;
    }
}

impl core::fmt::Debug for Gfp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [(Gfp, &str); 8] = [
            (Gfp::DMA, "DMA"),
            (Gfp::DMA32, "DMA32"),
            (Gfp::ZERO, "ZERO"),
            (Gfp::NOWARN, "NOWARN"),
            (Gfp::NORETRY, "NORETRY"),
            (Gfp::NOFAIL, "NOFAIL"),
            (Gfp::HIGH, "HIGH"),
            (Gfp::ATOMIC, "ATOMIC"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                write!(f, "{}{name}", if first { "" } else { "|" })?;
                first = false;
            }
        }
        if first {
            write!(f, "KERNEL")?;
        }
        Ok(())
    }
}
