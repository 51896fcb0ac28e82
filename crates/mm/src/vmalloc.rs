//! The vmalloc area's address-space allocator: areas of whole pages, each followed by an unmapped
//! guard page, found best-fit in O(log n) (free ranges indexed by size and by address), with
//! freed ranges held back until a lazy purge (the TLB is flushed once for many frees, as Linux
//! purges lazily). Portable: this file owns addresses only; mapping and pages are the caller's
//! (`mm::vmap` in the kernel).
#![forbid(unsafe_code)]

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::addr::{PhysAddr, PAGE_SIZE};

/// What an area is for (named in reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmKind {
    /// `vmalloc`: pages allocated and owned by the area.
    Vmalloc,
    /// `vmap`: the caller's pages, mapped contiguously.
    Vmap,
    /// A kernel stack (from vmalloc).
    Stack,
}

impl VmKind {
    pub fn name(self) -> &'static str {
        match self {
            VmKind::Vmalloc => "vmalloc",
            VmKind::Vmap => "vmap",
            VmKind::Stack => "kernel stack",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmArea {
    pub start: u64,
    /// Mapped bytes (the guard page after them is not counted).
    pub size: u64,
    pub kind: VmKind,
    /// The pages behind the area, in order.
    pub pages: Vec<PhysAddr>,
}

impl VmArea {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
    /// Whether `va` is the guard page after the area.
    pub fn guard_contains(&self, va: u64) -> bool {
        va >= self.end() && va < self.end() + PAGE_SIZE
    }
}

/// Where an address falls, for fault reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmLookup<'a> {
    Inside(&'a VmArea),
    /// In the guard page after an area.
    GuardAfter(&'a VmArea),
    /// In the page just below a kernel stack: that stack overflowed.
    StackGuard(&'a VmArea),
    None,
}

pub struct VmapAreas {
    free_by_addr: BTreeMap<u64, u64>,
    free_by_size: BTreeSet<(u64, u64)>,
    busy: BTreeMap<u64, VmArea>,
    /// Freed ranges (area and guard) waiting for the purge.
    lazy: Vec<(u64, u64)>,
    lazy_bytes: u64,
    /// Lazily freed bytes past which the next free asks for a purge.
    pub lazy_max: u64,
}

impl VmapAreas {
    pub fn new(start: u64, end: u64) -> VmapAreas {
        let mut v = VmapAreas {
            free_by_addr: BTreeMap::new(),
            free_by_size: BTreeSet::new(),
            busy: BTreeMap::new(),
            lazy: Vec::new(),
            lazy_bytes: 0,
            lazy_max: 32 << 20,
        };
        v.insert_free(start, end - start);
        v
    }

    fn insert_free(&mut self, start: u64, size: u64) {
        self.free_by_addr.insert(start, size);
        self.free_by_size.insert((size, start));
    }

    fn remove_free(&mut self, start: u64, size: u64) {
        self.free_by_addr.remove(&start);
        self.free_by_size.remove(&(size, start));
    }

    /// Reserves `size` bytes (a multiple of the page size) aligned to `align` plus a guard page;
    /// returns the start. `None` when nothing fits (after a purge the caller may retry).
    pub fn alloc(
        &mut self,
        size: u64,
        align: u64,
        kind: VmKind,
        pages: Vec<PhysAddr>,
    ) -> Option<u64> {
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) || !align.is_power_of_two() {
            return None;
        }
        let align = align.max(PAGE_SIZE);
        let need = size.checked_add(PAGE_SIZE)?;
        let worst = need.checked_add(align - PAGE_SIZE)?;
        // Best fit: the smallest free range that surely holds it.
        let &(fsize, fstart) = self.free_by_size.range((worst, 0)..).next().or_else(|| {
            // A range smaller than the worst case may still fit once aligned.
            self.free_by_size
                .range((need, 0)..)
                .find(|&&(s, st)| st.next_multiple_of(align) + need <= st + s)
        })?;
        let start = fstart.next_multiple_of(align);
        self.remove_free(fstart, fsize);
        if start > fstart {
            self.insert_free(fstart, start - fstart);
        }
        let used_end = start + need;
        if used_end < fstart + fsize {
            self.insert_free(used_end, fstart + fsize - used_end);
        }
        self.busy.insert(
            start,
            VmArea {
                start,
                size,
                kind,
                pages,
            },
        );
        Some(start)
    }

    /// Ends an area. Its range comes back only at the next purge. Returns the area and whether a
    /// purge is due.
    pub fn free(&mut self, start: u64) -> Option<(VmArea, bool)> {
        let area = self.busy.remove(&start)?;
        let bytes = area.size + PAGE_SIZE;
        self.lazy.push((area.start, bytes));
        self.lazy_bytes += bytes;
        Some((area, self.lazy_bytes > self.lazy_max))
    }

    /// The ranges freed since the last purge (for the caller's TLB flush), and their return to
    /// the free ranges, merged with their neighbours.
    pub fn purge(&mut self) -> Vec<(u64, u64)> {
        let lazy = core::mem::take(&mut self.lazy);
        self.lazy_bytes = 0;
        for &(start, size) in &lazy {
            let (mut s, mut e) = (start, start + size);
            if let Some((&ps, &psize)) = self.free_by_addr.range(..s).next_back() {
                if ps + psize == s {
                    self.remove_free(ps, psize);
                    s = ps;
                }
            }
            if let Some(&nsize) = self.free_by_addr.get(&e) {
                self.remove_free(e, nsize);
                e += nsize;
            }
            self.insert_free(s, e - s);
        }
        lazy
    }

    pub fn find(&self, start: u64) -> Option<&VmArea> {
        self.busy.get(&start)
    }

    /// What `va` is, as fault reports say it.
    pub fn lookup(&self, va: u64) -> VmLookup<'_> {
        if let Some((_, area)) = self.busy.range(..=va).next_back() {
            if va < area.end() {
                return VmLookup::Inside(area);
            }
            if area.guard_contains(va) {
                // The page after one area is also the page below the next, if that is a stack.
                if let Some(next) = self.busy.get(&(area.end() + PAGE_SIZE)) {
                    if next.kind == VmKind::Stack {
                        return VmLookup::StackGuard(next);
                    }
                }
                return VmLookup::GuardAfter(area);
            }
        }
        if let Some((_, next)) = self.busy.range(va + 1..).next() {
            if next.kind == VmKind::Stack && va + PAGE_SIZE >= next.start && va < next.start {
                return VmLookup::StackGuard(next);
            }
        }
        VmLookup::None
    }

    pub fn areas(&self) -> impl Iterator<Item = &VmArea> {
        self.busy.values()
    }

    /// Bytes neither busy nor waiting for a purge.
    pub fn free_bytes(&self) -> u64 {
        self.free_by_addr.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE;
    const BASE: u64 = 0xffff_8000_0000_0000;

    use crate::test_rng::Rng;

    #[test]
    fn areas_are_disjoint_aligned_guarded_and_all_come_back() {
        let total = 4096 * P;
        let mut v = VmapAreas::new(BASE, BASE + total);
        v.lazy_max = 64 * P;
        let mut rng = Rng(7);
        let mut live: BTreeMap<u64, u64> = BTreeMap::new();
        for step in 0..5000 {
            if !rng.next().is_multiple_of(3) || live.is_empty() {
                let size = (1 + rng.next() % 16) * P;
                let align = [P, P, 4 * P, 16 * P][(rng.next() % 4) as usize];
                let Some(start) = v.alloc(size, align, VmKind::Vmalloc, Vec::new()) else {
                    v.purge();
                    continue;
                };
                assert_eq!(start % align, 0, "step {step}");
                assert!(start >= BASE && start + size + P <= BASE + total);
                // Neither the area nor its guard page overlaps another area or its guard.
                if let Some((&s, &sz)) = live.range(..start).next_back() {
                    assert!(
                        s + sz + P <= start,
                        "step {step}: {start:#x} overlaps {s:#x}"
                    );
                }
                if let Some((&s, _)) = live.range(start..).next() {
                    assert!(
                        start + size + P <= s,
                        "step {step}: {start:#x} overlaps {s:#x}"
                    );
                }
                live.insert(start, size);
            } else {
                let k = *live
                    .keys()
                    .nth((rng.next() % live.len() as u64) as usize)
                    .unwrap();
                let size = live.remove(&k).unwrap();
                let (area, _) = v.free(k).unwrap();
                assert_eq!((area.start, area.size), (k, size));
                assert!(v.free(k).is_none(), "a second free finds nothing");
            }
        }
        for k in live.keys().copied().collect::<Vec<_>>() {
            v.free(k).unwrap();
        }
        v.purge();
        assert_eq!(v.free_bytes(), total, "every area came back");
        assert_eq!(
            v.free_by_addr.len(),
            1,
            "and the free ranges merged into one"
        );
    }

    #[test]
    fn freed_ranges_wait_for_the_purge() {
        let mut v = VmapAreas::new(BASE, BASE + 8 * P);
        let a = v.alloc(3 * P, P, VmKind::Vmalloc, Vec::new()).unwrap();
        let _b = v.alloc(3 * P, P, VmKind::Vmalloc, Vec::new()).unwrap();
        assert!(v.alloc(P, P, VmKind::Vmalloc, Vec::new()).is_none());
        v.free(a).unwrap();
        assert!(
            v.alloc(P, P, VmKind::Vmalloc, Vec::new()).is_none(),
            "not reusable before the purge"
        );
        assert_eq!(v.purge(), vec![(a, 4 * P)]);
        assert_eq!(v.alloc(3 * P, P, VmKind::Vmalloc, Vec::new()), Some(a));
    }

    #[test]
    fn lookups_name_areas_guards_and_stack_guards() {
        let mut v = VmapAreas::new(BASE, BASE + 64 * P);
        let a = v.alloc(2 * P, P, VmKind::Vmalloc, Vec::new()).unwrap();
        let s = v.alloc(4 * P, P, VmKind::Stack, Vec::new()).unwrap();
        assert_eq!(s, a + 3 * P);
        assert!(matches!(v.lookup(a + P + 5), VmLookup::Inside(x) if x.start == a));
        // The page after `a` is the page below the stack: an overflow of the stack.
        assert!(matches!(v.lookup(a + 2 * P), VmLookup::StackGuard(x) if x.start == s));
        assert!(matches!(v.lookup(s + 4 * P), VmLookup::GuardAfter(x) if x.start == s));
        assert_eq!(v.lookup(s + 6 * P), VmLookup::None);
        let t = v.alloc(P, P, VmKind::Stack, Vec::new()).unwrap();
        assert_eq!(t, s + 5 * P);
        assert!(matches!(v.lookup(s + 4 * P), VmLookup::StackGuard(x) if x.start == t));
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut v = VmapAreas::new(BASE, BASE + 8 * P);
        assert!(v.alloc(0, P, VmKind::Vmalloc, Vec::new()).is_none());
        assert!(v.alloc(100, P, VmKind::Vmalloc, Vec::new()).is_none());
        assert!(v.alloc(P, 3 * P, VmKind::Vmalloc, Vec::new()).is_none());
        assert!(
            v.alloc(8 * P, P, VmKind::Vmalloc, Vec::new()).is_none(),
            "no room for the guard"
        );
        assert!(v.free(BASE).is_none());
    }
}
