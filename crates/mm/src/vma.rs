//! The regions of an address space (VMAs, Linux's `vm_area_struct` in `mm_struct`'s tree) with
//! their permissions, created by an `mmap`-like call, removed by `munmap`, changed by
//! `mprotect`, found in O(log n). Owns the region bookkeeping and the fault decision (what a
//! fault at an address means); must not touch page tables or pages (`AddrSpace`'s mechanisms
//! do: `mm::mmap`, `mm::memory`, `mm::vmscan`).
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use super::layout::{USER_END, USER_START};
use crate::addr::PAGE_SIZE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    pub const READ: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };
}

impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            if self.read { 'r' } else { '-' },
            if self.write { 'w' } else { '-' },
            if self.exec { 'x' } else { '-' }
        )
    }
}

/// One region: `[start, end)`, page aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub name: &'static str,
    /// Mapped at once and never reclaimed, unmapped or re-protected (`VM_LOCKED`-like, and
    /// stronger: the application's stack, which kernel code runs on).
    pub locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmaError {
    Misaligned(u64),
    /// Empty, wrapping, or outside the application's space (page 0 included).
    OutOfRange {
        addr: u64,
        len: u64,
    },
    /// `MAP_FIXED_NOREPLACE`-like: something is there already.
    Exists {
        addr: u64,
    },
    /// No gap large enough.
    NoSpace(u64),
    /// `mprotect` over a hole.
    NotMapped(u64),
    /// Writable and executable at once (W^X), or `mprotect` to no access (the application runs
    /// at EL1, where a present page cannot be made inaccessible without unmapping it).
    BadProt(Prot),
    /// No memory for the pages of a region mapped at once.
    NoMemory,
    /// The range holds a locked region (the application's stack).
    Locked(u64),
}

impl fmt::Display for VmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmaError::Misaligned(a) => write!(f, "{a:#x} is not page aligned"),
            VmaError::OutOfRange { addr, len } => {
                write!(f, "{addr:#x} + {len:#x} is outside the application's space")
            }
            VmaError::Exists { addr } => write!(f, "a region already covers {addr:#x}"),
            VmaError::NoSpace(len) => write!(f, "no free range of {len:#x} bytes"),
            VmaError::NotMapped(a) => write!(f, "{a:#x} is in no region"),
            VmaError::BadProt(p) => write!(
                f,
                "permissions {p} are refused (W^X; mprotect to PROT_NONE is not supported)"
            ),
            VmaError::NoMemory => write!(f, "no memory for the region's pages"),
            VmaError::Locked(a) => write!(f, "{a:#x} is in a locked region"),
        }
    }
}

/// What a fault at an address means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultDecision {
    /// Map a zeroed page with the region's permissions (first touch of a lazy region).
    DemandZero { prot: Prot },
    /// The access is not allowed by the region: a real fault.
    Protection { vma: Vma },
    /// No region: a real fault.
    NoRegion,
}

#[derive(Default)]
pub struct VmaTree {
    vmas: BTreeMap<u64, Vma>,
    /// Where `mmap` without a hint starts looking.
    pub mmap_base: u64,
    /// The region the last fault fell in (Linux's vmacache): faults come in runs.
    last: core::cell::Cell<Option<(u64, u64, Prot)>>,
}

fn check(addr: u64, len: u64) -> Result<u64, VmaError> {
    if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(VmaError::Misaligned(if addr.is_multiple_of(PAGE_SIZE) {
            len
        } else {
            addr
        }));
    }
    let end = addr
        .checked_add(len)
        .filter(|&e| len > 0 && addr >= USER_START && e <= USER_END);
    end.ok_or(VmaError::OutOfRange { addr, len })
}

/// W^X, for every region.
fn check_prot(prot: Prot) -> Result<(), VmaError> {
    if prot.write && prot.exec {
        return Err(VmaError::BadProt(prot));
    }
    Ok(())
}

/// `mprotect` also refuses PROT_NONE: pages may be present, and at EL1 a present page cannot be
/// made inaccessible without unmapping it. (`mmap` takes it: a reserved range, such as a stack
/// guard, where every access is refused and no page ever appears.)
fn check_mprotect(prot: Prot) -> Result<(), VmaError> {
    check_prot(prot)?;
    if !(prot.read || prot.write || prot.exec) {
        return Err(VmaError::BadProt(prot));
    }
    Ok(())
}

impl VmaTree {
    pub fn new() -> VmaTree {
        VmaTree {
            vmas: BTreeMap::new(),
            mmap_base: 0x10_0000_0000,
            last: core::cell::Cell::new(None),
        }
    }

    /// The region containing `addr`: O(log n).
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| addr < v.end)
    }

    fn overlaps(&self, start: u64, end: u64) -> Option<u64> {
        if let Some(v) = self.find(start) {
            return Some(v.start.max(start));
        }
        self.vmas.range(start..end).next().map(|(&s, _)| s)
    }

    /// `mmap`: a lazy anonymous region of `len` bytes, at `hint` exactly if given (refused if it
    /// overlaps), else in the first gap at or above `mmap_base`. Nothing is mapped until touched.
    pub fn mmap(
        &mut self,
        hint: Option<u64>,
        len: u64,
        prot: Prot,
        name: &'static str,
    ) -> Result<u64, VmaError> {
        check_prot(prot)?;
        let start = match hint {
            Some(addr) => {
                let end = check(addr, len)?;
                if let Some(at) = self.overlaps(addr, end) {
                    return Err(VmaError::Exists { addr: at });
                }
                addr
            }
            None => {
                check(USER_START, len)?;
                let mut cursor = self.mmap_base;
                loop {
                    let end = cursor
                        .checked_add(len)
                        .filter(|&e| e <= USER_END)
                        .ok_or(VmaError::NoSpace(len))?;
                    match self.overlaps(cursor, end) {
                        None => break cursor,
                        Some(at) => cursor = self.find(at).map_or(at + PAGE_SIZE, |v| v.end),
                    }
                }
            }
        };
        self.vmas.insert(
            start,
            Vma {
                start,
                end: start + len,
                prot,
                name,
                locked: false,
            },
        );
        self.last.set(None);
        Ok(start)
    }

    /// Cuts regions so that `addr` is a boundary.
    fn split_at(&mut self, addr: u64) {
        let Some(v) = self.find(addr).cloned() else {
            return;
        };
        if v.start == addr {
            return;
        }
        self.vmas.insert(
            v.start,
            Vma {
                end: addr,
                ..v.clone()
            },
        );
        self.vmas.insert(addr, Vma { start: addr, ..v });
    }

    /// `munmap`: removes whatever lies in the range (holes are fine); returns the removed pieces
    /// (the caller unmaps their pages).
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<Vec<Vma>, VmaError> {
        let end = check(addr, len)?;
        self.refuse_locked(addr, end)?;
        self.last.set(None);
        self.split_at(addr);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(addr..end).map(|(&k, _)| k).collect();
        Ok(keys
            .into_iter()
            .filter_map(|k| self.vmas.remove(&k))
            .collect())
    }

    /// `mprotect`: new permissions for a range wholly inside regions.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), VmaError> {
        check_mprotect(prot)?;
        let end = check(addr, len)?;
        let mut a = addr;
        while a < end {
            let v = self.find(a).ok_or(VmaError::NotMapped(a))?;
            a = v.end;
        }
        self.refuse_locked(addr, end)?;
        self.last.set(None);
        self.split_at(addr);
        self.split_at(end);
        for (_, v) in self.vmas.range_mut(addr..end) {
            v.prot = prot;
        }
        Ok(())
    }

    fn refuse_locked(&self, addr: u64, end: u64) -> Result<(), VmaError> {
        let first = self.find(addr).map_or(addr, |v| v.start);
        match self
            .vmas
            .range(first..end)
            .find(|(_, v)| v.locked && v.end > addr)
        {
            Some((_, v)) => Err(VmaError::Locked(v.start.max(addr))),
            None => Ok(()),
        }
    }

    /// Locks (or unlocks) the regions wholly inside `[addr, addr + len)`: see `Vma::locked`.
    pub fn set_locked(&mut self, addr: u64, len: u64, locked: bool) -> Result<(), VmaError> {
        let end = check(addr, len)?;
        self.split_at(addr);
        self.split_at(end);
        for (_, v) in self.vmas.range_mut(addr..end) {
            v.locked = locked;
        }
        Ok(())
    }

    /// Whether `addr` is in a locked region.
    pub fn is_locked(&self, addr: u64) -> bool {
        self.find(addr).is_some_and(|v| v.locked)
    }

    /// What a fault at `addr` with this access means.
    pub fn decide(&self, addr: u64, write: bool, exec: bool) -> FaultDecision {
        let allows = |prot: Prot| {
            if exec {
                prot.exec
            } else if write {
                prot.write
            } else {
                prot.read
            }
        };
        // The region of the previous fault, when it allows this access too (a refusal is
        // decided by the full lookup, which names the region in the report).
        if let Some((start, end, prot)) = self.last.get() {
            if start <= addr && addr < end && allows(prot) {
                return FaultDecision::DemandZero { prot };
            }
        }
        match self.find(addr) {
            None => FaultDecision::NoRegion,
            Some(v) if allows(v.prot) => {
                self.last.set(Some((v.start, v.end, v.prot)));
                FaultDecision::DemandZero { prot: v.prot }
            }
            Some(v) => FaultDecision::Protection { vma: v.clone() },
        }
    }

    pub fn regions(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE;

    #[test]
    fn mmap_finds_gaps_and_refuses_overlaps_and_page_zero() {
        let mut a = VmaTree::new();
        let x = a.mmap(None, 4 * P, Prot::RW, "x").unwrap();
        let y = a.mmap(None, 2 * P, Prot::READ, "y").unwrap();
        assert_eq!(y, x + 4 * P);
        assert_eq!(
            a.mmap(Some(x + P), P, Prot::RW, "z"),
            Err(VmaError::Exists { addr: x + P })
        );
        assert!(matches!(
            a.mmap(Some(0), P, Prot::RW, "null"),
            Err(VmaError::OutOfRange { .. })
        ));
        assert!(matches!(
            a.mmap(Some(USER_END - P), 2 * P, Prot::RW, "top"),
            Err(VmaError::OutOfRange { .. })
        ));
        assert_eq!(
            a.mmap(Some(x + 1), P, Prot::RW, "odd"),
            Err(VmaError::Misaligned(x + 1))
        );
        assert_eq!(a.find(x + 3 * P + 5).map(|v| v.name), Some("x"));
        assert_eq!(a.find(y + 2 * P), None);
    }

    #[test]
    fn locked_regions_refuse_munmap_and_mprotect_until_unlocked() {
        let mut a = VmaTree::new();
        let x = a.mmap(None, 4 * P, Prot::RW, "stack").unwrap();
        a.set_locked(x, 4 * P, true).unwrap();
        assert!(a.is_locked(x + P) && !a.is_locked(x + 4 * P));
        assert_eq!(a.munmap(x + P, P), Err(VmaError::Locked(x + P)));
        assert_eq!(a.munmap(x - 8 * P, 16 * P), Err(VmaError::Locked(x)));
        assert_eq!(a.mprotect(x, P, Prot::READ), Err(VmaError::Locked(x)));
        assert_eq!(a.regions().count(), 1);
        a.set_locked(x, 4 * P, false).unwrap();
        assert_eq!(a.munmap(x, 4 * P).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn the_last_region_cache_never_outlives_a_change() {
        let mut a = VmaTree::new();
        let x = a.mmap(None, 4 * P, Prot::RW, "x").unwrap();
        assert!(matches!(
            a.decide(x, true, false),
            FaultDecision::DemandZero { .. }
        ));
        // Cached now; a change of permissions or mapping must be seen by the next fault.
        a.mprotect(x, 4 * P, Prot::READ).unwrap();
        assert!(matches!(
            a.decide(x + P, true, false),
            FaultDecision::Protection { .. }
        ));
        assert!(matches!(
            a.decide(x + P, false, false),
            FaultDecision::DemandZero { .. }
        ));
        a.munmap(x, 4 * P).unwrap();
        assert_eq!(a.decide(x + P, false, false), FaultDecision::NoRegion);
        // Outside the cached region the lookup decides.
        let y = a.mmap(None, P, Prot::RW, "y").unwrap();
        assert!(matches!(
            a.decide(y, true, false),
            FaultDecision::DemandZero { .. }
        ));
        assert_eq!(a.decide(y + P, true, false), FaultDecision::NoRegion);
    }

    #[test]
    fn munmap_and_mprotect_split_regions() {
        let mut a = VmaTree::new();
        let x = a.mmap(None, 8 * P, Prot::RW, "x").unwrap();
        let removed = a.munmap(x + 2 * P, 2 * P).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!((removed[0].start, removed[0].end), (x + 2 * P, x + 4 * P));
        assert!(a.find(x + 2 * P).is_none());
        assert_eq!(a.find(x + P).map(|v| v.end), Some(x + 2 * P));
        a.mprotect(x + 5 * P, P, Prot::READ).unwrap();
        assert_eq!(
            a.decide(x + 5 * P, true, false),
            FaultDecision::Protection {
                vma: a.find(x + 5 * P).unwrap().clone()
            }
        );
        assert_eq!(
            a.decide(x + 6 * P, true, false),
            FaultDecision::DemandZero { prot: Prot::RW }
        );
        assert_eq!(a.decide(x + 2 * P, false, false), FaultDecision::NoRegion);
        assert_eq!(
            a.decide(x, false, true),
            FaultDecision::Protection {
                vma: a.find(x).unwrap().clone()
            }
        );
        assert_eq!(
            a.mprotect(x + P, 3 * P, Prot::READ),
            Err(VmaError::NotMapped(x + 2 * P))
        );
        assert_eq!(a.regions().count(), 4);
        let wx = Prot {
            read: true,
            write: true,
            exec: true,
        };
        assert_eq!(a.mprotect(x, P, wx), Err(VmaError::BadProt(wx)));
        assert_eq!(
            a.mprotect(x, P, Prot::NONE),
            Err(VmaError::BadProt(Prot::NONE))
        );
        assert_eq!(a.mmap(None, P, wx, "wx"), Err(VmaError::BadProt(wx)));
        // A reserved range: every access is refused, naming the region.
        let g = a.mmap(None, P, Prot::NONE, "guard").unwrap();
        for (write, exec) in [(false, false), (true, false), (false, true)] {
            assert!(matches!(
                a.decide(g, write, exec),
                FaultDecision::Protection { vma } if vma.name == "guard"
            ));
        }
    }
}
