//! The early allocator (Linux's memblock): RAM banks and reserved ranges, and top-down allocation
//! of what the boot needs before the page allocator exists (the page metadata). Owns the
//! bookkeeping until the hand-over, when `free_ranges` tells the page allocator exactly what is
//! free: every byte of RAM is then either free or reserved, never both, never neither.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use crate::addr::{normalize, PhysAddr, PhysRange, PAGE_SIZE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemblockError {
    /// No free range of RAM holds the request below the limit.
    NoSpace {
        size: u64,
        align: u64,
    },
    BadAlignment(u64),
}

impl fmt::Display for MemblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemblockError::NoSpace { size, align } => {
                write!(f, "no free {size:#x} bytes aligned to {align:#x} in RAM")
            }
            MemblockError::BadAlignment(a) => write!(f, "alignment {a:#x} is not a power of two"),
        }
    }
}

pub struct Memblock {
    memory: Vec<PhysRange>,
    reserved: Vec<PhysRange>,
    /// Bytes handed out by `alloc` (also in `reserved`).
    allocated: u64,
}

impl Memblock {
    /// RAM is taken in whole pages; reservations are widened to whole pages.
    pub fn new(memory: &[PhysRange], reserved: &[PhysRange]) -> Memblock {
        let mut mem: Vec<PhysRange> = memory
            .iter()
            .filter_map(|r| {
                let start = r.base.align_up(PAGE_SIZE)?;
                let end = (r.end().min(u64::MAX as u128) as u64) & !(PAGE_SIZE - 1);
                (end > start.as_u64()).then(|| PhysRange::new(start, end - start.as_u64()))
            })
            .collect();
        normalize(&mut mem);
        let mut res: Vec<PhysRange> = Vec::new();
        for r in reserved {
            let start = r.base.align_down(PAGE_SIZE);
            let end = r.end().min(u64::MAX as u128 + 1);
            let end = end.div_ceil(PAGE_SIZE as u128) * PAGE_SIZE as u128;
            let size = (end - start.as_u64() as u128).min(u64::MAX as u128) as u64;
            // Only what lies in RAM matters.
            for m in &mem {
                if let Some(part) = m.intersect(&PhysRange::new(start, size)) {
                    res.push(part);
                }
            }
        }
        normalize(&mut res);
        Memblock {
            memory: mem,
            reserved: res,
            allocated: 0,
        }
    }

    pub fn memory(&self) -> &[PhysRange] {
        &self.memory
    }
    pub fn reserved(&self) -> &[PhysRange] {
        &self.reserved
    }
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
    }
    pub fn total(&self) -> u64 {
        self.memory.iter().map(|r| r.size).sum()
    }
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved.iter().map(|r| r.size).sum()
    }

    /// RAM not reserved, sorted.
    pub fn free_ranges(&self) -> Vec<PhysRange> {
        let mut free = Vec::new();
        for m in &self.memory {
            let mut cursor = m.base.as_u64() as u128;
            for r in &self.reserved {
                if r.end() <= cursor || r.base.as_u64() as u128 >= m.end() {
                    continue;
                }
                if (r.base.as_u64() as u128) > cursor {
                    free.push(PhysRange::new(
                        PhysAddr::new(cursor as u64),
                        (r.base.as_u64() as u128 - cursor) as u64,
                    ));
                }
                cursor = cursor.max(r.end());
            }
            if cursor < m.end() {
                free.push(PhysRange::new(
                    PhysAddr::new(cursor as u64),
                    (m.end() - cursor) as u64,
                ));
            }
        }
        free
    }

    /// Reserves a range (clipped to RAM).
    pub fn reserve(&mut self, range: PhysRange) {
        for m in &self.memory {
            if let Some(part) = m.intersect(&range) {
                self.reserved.push(part);
            }
        }
        normalize(&mut self.reserved);
    }

    /// Allocates `size` bytes aligned to `align` from the top of free RAM below `limit`, as
    /// memblock allocates by default (keeping low, DMA-capable memory for those who need it).
    pub fn alloc(
        &mut self,
        size: u64,
        align: u64,
        limit: Option<u64>,
    ) -> Result<PhysAddr, MemblockError> {
        if !align.is_power_of_two() {
            return Err(MemblockError::BadAlignment(align));
        }
        let size = size.next_multiple_of(PAGE_SIZE);
        let align = align.max(PAGE_SIZE);
        let limit = limit.map(|l| l as u128).unwrap_or(u128::MAX);
        let base = self
            .free_ranges()
            .iter()
            .rev()
            .find_map(|r| {
                let end = r.end().min(limit);
                let start = end.checked_sub(size as u128)? as u64 & !(align - 1);
                (start >= r.base.as_u64() && size > 0).then_some(start)
            })
            .ok_or(MemblockError::NoSpace { size, align })?;
        self.reserve(PhysRange::new(PhysAddr::new(base), size));
        self.allocated += size;
        Ok(PhysAddr::new(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, size: u64) -> PhysRange {
        PhysRange::new(PhysAddr::new(base), size)
    }

    #[test]
    fn free_and_reserved_partition_ram_exactly() {
        let mut mb = Memblock::new(
            &[r(0x4000_0000, 0x4000_0000), r(0x1_0000_0000, 0x1000_0000)],
            &[
                r(0x4008_0123, 0x20_0000),
                r(0x4800_0000, 0x10_0000),
                r(0x10, 0x20),
                r(0x7fff_f000, 0x2000),
            ],
        );
        mb.alloc(0x10_0000, 0x1000, None).unwrap();
        let free = mb.free_ranges();
        let free_bytes: u64 = free.iter().map(|r| r.size).sum();
        assert_eq!(free_bytes + mb.reserved_bytes(), mb.total());
        for f in &free {
            assert!(
                mb.reserved().iter().all(|res| res.intersect(f).is_none()),
                "{f} overlaps a reservation"
            );
            assert!(mb.memory().iter().any(|m| m.covers(f)));
        }
        // The misaligned image reservation was widened to whole pages.
        assert!(mb
            .reserved()
            .iter()
            .any(|x| x.base == PhysAddr::new(0x4008_0000)));
    }

    #[test]
    fn allocates_top_down_below_a_limit() {
        let mut mb = Memblock::new(
            &[r(0x4000_0000, 0x4000_0000), r(0x1_0000_0000, 0x4000_0000)],
            &[],
        );
        assert_eq!(
            mb.alloc(0x2000, 0x1000, None),
            Ok(PhysAddr::new(0x1_3fff_e000))
        );
        assert_eq!(
            mb.alloc(0x1000, 0x1000, Some(0x1_0000_0000)),
            Ok(PhysAddr::new(0x7fff_f000))
        );
        assert_eq!(
            mb.alloc(0x1000, 0x20_0000, None),
            Ok(PhysAddr::new(0x1_3fe0_0000))
        );
        assert!(matches!(
            mb.alloc(0x1_0000_0000, 0x1000, None),
            Err(MemblockError::NoSpace { .. })
        ));
        assert_eq!(
            mb.alloc(0x1000, 3, None),
            Err(MemblockError::BadAlignment(3))
        );
        assert_eq!(mb.allocated_bytes(), 0x4000);
    }
}
