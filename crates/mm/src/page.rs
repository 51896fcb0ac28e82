//! Per-page metadata (the role of Linux's `struct page`) and the memory map that finds it from a
//! page frame number: sections of 128 MiB, each with its own array, so holes between RAM banks
//! cost nothing. Owns the layout of `Page` (32 bytes); must not decide anything about allocation.
// A named exception to the crate's `deny(unsafe_code)`: the memory map (the `struct page` array) lives in raw memory.
#![allow(unsafe_code)]

use alloc::vec::Vec;

use crate::addr::Pfn;

/// Head of a free block on a buddy free list.
pub const PG_BUDDY: u32 = 1 << 0;
/// Head of a live allocation.
pub const PG_ALLOCATED: u32 = 1 << 1;
/// Never given to the allocator (firmware, image, tree, metadata, holes).
pub const PG_RESERVED: u32 = 1 << 2;
/// Free, on a zone's per-CPU list of order-0 pages.
pub const PG_PCP: u32 = 1 << 3;
/// Part of a slab: `private` is the owning cache.
pub const PG_SLAB: u32 = 1 << 5;
const ORDER_SHIFT: u32 = 8;
pub(crate) const ORDER_MASK: u32 = 0xf << ORDER_SHIFT;
const ZONE_SHIFT: u32 = 12;
const ZONE_MASK: u32 = 0x3 << ZONE_SHIFT;

/// The order a page's flags record (meaningful for the head of a block).
pub const fn flags_order(flags: u32) -> u8 {
    ((flags & ORDER_MASK) >> ORDER_SHIFT) as u8
}

/// No page: the end of a list.
pub const NIL: u64 = u64::MAX;

/// What the kernel knows about one 4 KiB page frame.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub flags: u32,
    pub refcount: u32,
    /// List links (free lists now; reclaim's LRU lists later), as page frame numbers.
    pub prev: u64,
    pub next: u64,
    /// The owner's word: the mapping's address for application pages, the cache for slab pages.
    pub private: u64,
}

const _: () = assert!(core::mem::size_of::<Page>() == 32);

impl Page {
    pub const fn new(zone: usize, flags: u32) -> Page {
        Page {
            flags: flags | ((zone as u32) << ZONE_SHIFT),
            refcount: 0,
            prev: NIL,
            next: NIL,
            private: 0,
        }
    }
    pub fn order(&self) -> u8 {
        flags_order(self.flags)
    }
    pub fn set_order(&mut self, order: u8) {
        self.flags = (self.flags & !ORDER_MASK) | ((order as u32) << ORDER_SHIFT);
    }
    pub fn zone(&self) -> usize {
        ((self.flags & ZONE_MASK) >> ZONE_SHIFT) as usize
    }
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// Pages per section (128 MiB).
pub const SECTION_SHIFT: u32 = 15;
pub const PAGES_PER_SECTION: u64 = 1 << SECTION_SHIFT;

/// The memory map: page frame number to metadata.
pub struct MemMap {
    /// Per section from `base`, the address of its first `Page` (null where there is no RAM).
    sections: Vec<*mut Page>,
    /// The first section the table covers (RAM need not start at 0).
    base: usize,
}

// SAFETY: the arrays behind the pointers belong to the memory map alone, and the page allocator
// that owns the map serialises every access.
unsafe impl Send for MemMap {}

impl MemMap {
    /// A map for frames below `end_pfn`, with no section populated yet.
    pub fn new(end_pfn: u64) -> MemMap {
        Self::with_range(0, end_pfn)
    }

    /// A map for frames `[start_pfn, end_pfn)`: the table costs a pointer per 128 MiB of that
    /// span only, wherever RAM sits.
    pub fn with_range(start_pfn: u64, end_pfn: u64) -> MemMap {
        let base = (start_pfn >> SECTION_SHIFT) as usize;
        let n = (end_pfn.div_ceil(PAGES_PER_SECTION) as usize).saturating_sub(base);
        MemMap {
            sections: alloc::vec![core::ptr::null_mut(); n],
            base,
        }
    }

    /// Sections a range of frames touches.
    pub fn sections_of(start: Pfn, end: Pfn) -> core::ops::Range<usize> {
        (start.as_u64() >> SECTION_SHIFT) as usize
            ..(end.as_u64().div_ceil(PAGES_PER_SECTION)) as usize
    }

    /// Gives section `index` its array of `PAGES_PER_SECTION` pages.
    ///
    /// # Safety
    /// `pages` must be valid for reads and writes of `PAGES_PER_SECTION` `Page`s for as long as
    /// the map lives, and used by nothing else. Its contents may be garbage.
    pub unsafe fn populate(&mut self, index: usize, pages: *mut Page) {
        self.sections[index - self.base] = pages;
    }

    /// `populate` with an array the map then owns for good (host memory maps leak one per
    /// section): the ownership the unsafe version asks its caller to promise, in the type.
    pub fn populate_leaked(&mut self, index: usize, pages: &'static mut [Page]) {
        assert_eq!(
            pages.len(),
            PAGES_PER_SECTION as usize,
            "a section's worth of pages"
        );
        self.sections[index - self.base] = pages.as_mut_ptr();
    }

    pub fn is_populated(&self, index: usize) -> bool {
        index
            .checked_sub(self.base)
            .and_then(|i| self.sections.get(i))
            .is_some_and(|p| !p.is_null())
    }

    /// A read-only copy of the section table, for lock-free metadata lookups by the owners of
    /// allocated pages (slab's `kfree`). Valid as long as the map lives; the table never moves.
    pub fn view(&self) -> MemMapView {
        MemMapView {
            sections: self.sections.as_ptr(),
            len: self.sections.len(),
            base: self.base,
            blocks: core::ptr::null(),
            nblocks: 0,
            block_base: 0,
        }
    }

    /// `view`, with the page allocator's block states, so lookups skip metadata that was never
    /// initialised (lazily initialised blocks hold whatever RAM held).
    pub(crate) fn view_with_blocks(&self, blocks: &[u8], block_base: u64) -> MemMapView {
        MemMapView {
            blocks: blocks.as_ptr(),
            nblocks: blocks.len(),
            block_base,
            ..self.view()
        }
    }

    /// The metadata of `pfn`, if its section has a map.
    #[inline]
    pub fn get_mut(&mut self, pfn: u64) -> Option<&mut Page> {
        // SAFETY: `get` returns a pointer into a populated array that only this map hands out,
        // and `&mut self` makes the reference unique.
        self.get(pfn).map(|p| unsafe { &mut *p })
    }

    /// The metadata of `pfn`, if its section has a map, as a pointer (for initialising it).
    #[inline]
    pub fn get(&self, pfn: u64) -> Option<*mut Page> {
        let section = *self
            .sections
            .get(((pfn >> SECTION_SHIFT) as usize).wrapping_sub(self.base))?;
        if section.is_null() {
            return None;
        }
        // The index is below PAGES_PER_SECTION, inside the populated array (so the arithmetic
        // never wraps; only dereferencing the result needs the map's promise).
        Some(section.wrapping_add((pfn & (PAGES_PER_SECTION - 1)) as usize))
    }
}

/// See `MemMap::view`.
#[derive(Clone, Copy)]
pub struct MemMapView {
    sections: *const *mut Page,
    len: usize,
    base: usize,
    /// The page allocator's per-4 MiB-block metadata states (null: unknown, trust every entry).
    blocks: *const u8,
    nblocks: usize,
    block_base: u64,
}

/// The block state meaning "every page's metadata here is initialised" (see `page_alloc`).
pub(crate) const BLOCK_INIT: u8 = 1;

// SAFETY: the table it points at is never written after the map is built, and lives as long as
// the kernel; the `Page`s behind it belong to whoever owns the page they describe.
unsafe impl Send for MemMapView {}
// SAFETY: as above.
unsafe impl Sync for MemMapView {}

impl MemMapView {
    pub const fn empty() -> MemMapView {
        MemMapView {
            sections: core::ptr::null(),
            len: 0,
            base: 0,
            blocks: core::ptr::null(),
            nblocks: 0,
            block_base: 0,
        }
    }

    /// The metadata of `pfn`, if its section has a map and (when block states are known) its
    /// block's metadata is initialised.
    #[inline(always)]
    pub fn get(&self, pfn: u64) -> Option<*mut Page> {
        if !self.blocks.is_null() {
            let b = (pfn >> 10).wrapping_sub(self.block_base) as usize;
            // SAFETY: b < nblocks, inside the state array, which lives as long as the allocator
            // (the kernel's life); a volatile read, as the allocator may change it under its lock.
            if b >= self.nblocks || unsafe { self.blocks.add(b).read_volatile() } != BLOCK_INIT {
                return None;
            }
        }
        let index = ((pfn >> SECTION_SHIFT) as usize).wrapping_sub(self.base);
        if index >= self.len {
            return None;
        }
        // SAFETY: index < len, inside the section table `view` copied.
        let section = unsafe { *self.sections.add(index) };
        if section.is_null() {
            return None;
        }
        // SAFETY: the offset is below PAGES_PER_SECTION, inside the populated array. (`add`, not
        // `wrapping_add`: an in-bounds offset of a non-null pointer is known non-null, which
        // spares the callers' `NonNull::new` a test on the fault and kfree paths.)
        Some(unsafe { section.add((pfn & (PAGES_PER_SECTION - 1)) as usize) })
    }
}
