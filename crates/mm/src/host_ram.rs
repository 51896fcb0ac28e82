//! Host memory standing in for RAM, for the host tests and `host-bench`: a leaked, zeroed arena
//! aligned to the largest buddy block (so buddy blocks are naturally aligned as host addresses
//! too), seen as the page frames from a chosen physical address, with a memory map for them.
//! Owns nothing but that arena; must never be built into the kernel.
// A named exception to the crate's `deny(unsafe_code)`: host memory handed out as page frames.
#![allow(unsafe_code)]

use alloc::vec;
use core::alloc::Layout;

use super::page::{MemMap, Page, PAGES_PER_SECTION};
use super::page_alloc::PhysMem;
use super::zone::MAX_ORDER;
use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};

/// A host arena as page frames (`PhysMem`).
pub struct HostRam {
    base: *mut u8,
    base_pfn: u64,
}

// SAFETY: the arena is leaked (lives for the whole run) and belongs to the page allocator that
// owns this `HostRam`, which serialises every access to it.
unsafe impl Send for HostRam {}

// SAFETY: every frame from `base_pfn` for the arena's size lies inside the leaked arena, which is
// readable and writable; the allocator is given only those frames (`HostRam::new`'s map).
unsafe impl PhysMem for HostRam {
    fn page_ptr(&self, pfn: u64) -> *mut u8 {
        self.base
            .wrapping_add(((pfn - self.base_pfn) << PAGE_SHIFT) as usize)
    }
}

impl HostRam {
    /// `size` bytes of fresh zeroed host memory as the frames from physical address `base`, and a
    /// memory map covering them (for `PageAllocator::new`). The arena is taken from `calloc`
    /// with room to align it by hand, so its pages cost nothing until touched.
    pub fn new(base: u64, size: usize) -> (HostRam, MemMap) {
        let align = (PAGE_SIZE as usize) << MAX_ORDER;
        assert!(size > 0 && base.is_multiple_of(align as u64));
        let layout = Layout::from_size_align(size + align, 8).expect("arena layout");
        // SAFETY: a non-zero size.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        assert!(!p.is_null(), "no host memory for a {size}-byte arena");
        let arena = p.wrapping_add(p.align_offset(align));
        let end = base + size as u64;
        let mut map = MemMap::new(end >> PAGE_SHIFT);
        for sec in MemMap::sections_of(Pfn::new(base >> PAGE_SHIFT), Pfn::new(end >> PAGE_SHIFT)) {
            map.populate_leaked(
                sec,
                vec![Page::new(0, 0); PAGES_PER_SECTION as usize].leak(),
            );
        }
        let ram = HostRam {
            base: arena,
            base_pfn: base >> PAGE_SHIFT,
        };
        (ram, map)
    }

    /// The host address of the first frame.
    pub fn host_base(&self) -> usize {
        self.base as usize
    }
}
