//! Address types, the leaf every other part builds on. A physical address, a virtual address and a
//! page frame number are different things; keeping them apart in the type system stops the
//! commonest kernel bug before it compiles. Owns arithmetic on addresses and ranges (the page size,
//! alignment, a device's `dma-ranges` window, sorting and merging ranges); must never dereference
//! an address and never name another part of Ferrite (a crate with no dependency: the compiler
//! checks).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A CPU physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(u64);

/// A virtual address in one of the two translation regimes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(u64);

/// A page frame number: a physical address divided by the page size.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(u64);

macro_rules! address_common {
    ($t:ident) => {
        impl $t {
            pub const fn new(value: u64) -> Self {
                Self(value)
            }
            pub const fn as_u64(self) -> u64 {
                self.0
            }
            pub const fn is_aligned(self, align: u64) -> bool {
                align.is_power_of_two() && self.0 & (align - 1) == 0
            }
            /// Rounds down to `align`, a power of two.
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }
            /// Rounds up to `align`, a power of two; `None` if that passes the top of the space.
            pub const fn align_up(self, align: u64) -> Option<Self> {
                match self.0.checked_add(align - 1) {
                    Some(v) => Some(Self(v & !(align - 1))),
                    None => None,
                }
            }
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
            pub const fn checked_sub(self, bytes: u64) -> Option<Self> {
                match self.0.checked_sub(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:#x})"), self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_common!(PhysAddr);
address_common!(VirtAddr);

impl PhysAddr {
    /// The frame holding this address.
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }
}

impl Pfn {
    pub const fn new(value: u64) -> Self {
        Self(value)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    pub const fn addr(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

/// A half-open range of physical memory `[base, base + size)`. The end may be 2^64 exactly, so it
/// is computed in 128 bits where it matters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct PhysRange {
    pub base: PhysAddr,
    pub size: u64,
}

impl PhysRange {
    pub const fn new(base: PhysAddr, size: u64) -> Self {
        Self { base, size }
    }
    /// One past the last byte, as a 128-bit number so a range ending at 2^64 is representable.
    pub const fn end(&self) -> u128 {
        self.base.0 as u128 + self.size as u128
    }
    pub const fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub const fn contains(&self, addr: PhysAddr) -> bool {
        addr.0 >= self.base.0 && (addr.0 as u128) < self.end()
    }
    /// True when `other` lies wholly inside `self`.
    pub const fn covers(&self, other: &PhysRange) -> bool {
        other.base.0 >= self.base.0 && other.end() <= self.end()
    }
    /// The overlap of two ranges, if any.
    pub fn intersect(&self, other: &PhysRange) -> Option<PhysRange> {
        let base = self.base.0.max(other.base.0);
        let end = self.end().min(other.end());
        if (base as u128) < end {
            Some(PhysRange::new(PhysAddr(base), (end - base as u128) as u64))
        } else {
            None
        }
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#012x}-{:#012x}]",
            self.base.0,
            self.end().saturating_sub(1)
        )
    }
}

/// Sorts ranges and merges those that overlap or touch, in place; empty ranges are dropped.
pub fn normalize(ranges: &mut Vec<PhysRange>) {
    ranges.retain(|r| r.size != 0);
    ranges.sort();
    let mut out: Vec<PhysRange> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        if let Some(last) = out.last_mut() {
            if r.base.as_u64() as u128 <= last.end() {
                let end = last.end().max(r.end());
                last.size = (end - last.base.as_u64() as u128).min(u64::MAX as u128) as u64;
                continue;
            }
        }
        out.push(r);
    }
    *ranges = out;
}

/// One window of a device's `dma-ranges`: CPU `[cpu, cpu + size)` is bus `[bus, bus + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaRange {
    pub cpu: PhysAddr,
    pub bus: u64,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        let a = PhysAddr::new(0x1234);
        assert_eq!(a.align_down(0x1000), PhysAddr::new(0x1000));
        assert_eq!(a.align_up(0x1000), Some(PhysAddr::new(0x2000)));
        assert_eq!(PhysAddr::new(u64::MAX).align_up(0x1000), None);
        assert!(PhysAddr::new(0x2000).is_aligned(0x1000));
        assert!(!a.is_aligned(0x1000));
        assert_eq!(a.pfn(), Pfn::new(1));
        assert_eq!(Pfn::new(3).addr(), PhysAddr::new(0x3000));
    }

    #[test]
    fn ranges_reach_the_top_of_the_space() {
        let r = PhysRange::new(PhysAddr::new(u64::MAX - 0xfff), 0x1000);
        assert_eq!(r.end(), 1u128 << 64);
        assert!(r.contains(PhysAddr::new(u64::MAX)));
        let s = PhysRange::new(PhysAddr::new(0x1000), 0x1000);
        assert!(!s.contains(PhysAddr::new(0x2000)));
        assert_eq!(
            s.intersect(&PhysRange::new(PhysAddr::new(0x1800), 0x1000)),
            Some(PhysRange::new(PhysAddr::new(0x1800), 0x800))
        );
        assert_eq!(
            s.intersect(&PhysRange::new(PhysAddr::new(0x2000), 0x10)),
            None
        );
        assert!(s.covers(&PhysRange::new(PhysAddr::new(0x1100), 0x10)));
    }

    #[test]
    fn normalize_sorts_merges_and_drops_empty_ranges() {
        let r = |base: u64, size: u64| PhysRange::new(PhysAddr::new(base), size);
        let mut v = alloc::vec![
            r(0x5000, 0x1000),
            r(0x1000, 0x1000),
            r(0x9000, 0),
            r(0x2000, 0x800),
            r(0x1800, 0x100),
            r(u64::MAX - 0xfff, 0x1000),
            r(u64::MAX - 0x1fff, 0x2000),
        ];
        normalize(&mut v);
        assert_eq!(
            v,
            alloc::vec![
                r(0x1000, 0x1800),
                r(0x5000, 0x1000),
                r(u64::MAX - 0x1fff, 0x2000)
            ]
        );
    }
}
