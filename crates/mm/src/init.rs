//! Bringing up the page allocator at boot, from the machine description: the early allocator
//! over RAM minus every reservation, the page metadata (one 1 MiB array per 128 MiB section of
//! RAM, taken top-down from the early allocator), the zones, and the hand-over. Runs once the
//! linear map exists; owns nothing afterwards (the allocator lives in `PAGES`).
// A named exception to the crate's `deny(unsafe_code)`: the linear map's frames are raw memory; `PageBox` lends their bytes.
#![allow(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::layout;
use super::memblock::Memblock;
use super::page::{MemMap, Page, PAGES_PER_SECTION};
use super::page_alloc::{GlobalPages, PageAllocator, PageBox, PhysMem};
use super::zone::zone_limits;
use crate::addr::{Pfn, PhysRange, PAGE_SHIFT};
use crate::machine::Machine;

/// Page contents through the linear map.
pub struct LinearMap;

// SAFETY: after `map_linear`, every frame of RAM the allocator manages is mapped read-write at
// `PAGE_OFFSET + pa`.
unsafe impl PhysMem for LinearMap {
    #[inline]
    fn page_ptr(&self, pfn: u64) -> *mut u8 {
        layout::phys_to_virt(Pfn::new(pfn).addr()).as_u64() as *mut u8
    }

    #[cfg(target_os = "none")]
    fn zero_page(&self, pfn: u64) {
        // SAFETY: the linear map maps the frame, page-aligned, Normal cacheable and writable; the
        // allocator calls this only on frames it is handing out, so nothing else uses it.
        super::cpu::zero_page(unsafe { &mut *self.page_ptr(pfn).cast::<super::cpu::PageBytes>() })
    }
}

/// The kernel's page allocator.
pub static PAGES: GlobalPages<LinearMap> = GlobalPages::new();

/// An owned block's contents, through the linear map: the block is this value's alone, so its
/// bytes can be borrowed like any other owned buffer's (and mapped for DMA by borrowing them).
impl PageBox<'_, LinearMap> {
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `size()` bytes at the block's linear-map address, mapped read-write (see the
        // `PhysMem` impl) and owned by this value until it drops; `&self` keeps them unchanged.
        unsafe { core::slice::from_raw_parts(self.bytes(), self.size() as usize) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`; `&mut self` makes the borrow exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.bytes(), self.size() as usize) }
    }

    fn bytes(&self) -> *mut u8 {
        layout::phys_to_virt(self.phys()).as_u64() as *mut u8
    }
}

static REPORT: spin::Once<InitReport> = spin::Once::new();

/// What `init` did, once it has run.
pub fn report() -> Option<InitReport> {
    REPORT.get().copied()
}

/// What the bring-up did, for the boot log and the self-tests.
#[derive(Debug, Clone, Copy)]
pub struct InitReport {
    pub ram: u64,
    pub reserved: u64,
    pub metadata_bytes: u64,
    pub sections: usize,
}

/// Builds and installs the page allocator. `extra_reserved` are ranges the boot still uses that
/// the machine description does not know (none today: the image and tree are in it).
pub fn init(
    machine: &Machine,
    zone_dma_bits: Option<u32>,
    debug_pagealloc: bool,
) -> Result<InitReport, String> {
    let reservations: Vec<PhysRange> = machine.reservations().into_iter().map(|(r, _)| r).collect();
    let mut mb = Memblock::new(&machine.memory, &reservations);
    let memory: Vec<PhysRange> = mb.memory().to_vec();
    let (Some(first), Some(last)) = (memory.first(), memory.last()) else {
        return Err("no RAM".into());
    };
    let (dram_start, dram_end) = (first.base.as_u64(), last.end() as u64);
    let limits = zone_limits(machine.dma_limit, zone_dma_bits, dram_start, dram_end);

    let mut map = MemMap::with_range(dram_start >> PAGE_SHIFT, dram_end >> PAGE_SHIFT);
    let mut wanted: Vec<usize> = Vec::new();
    for bank in &memory {
        let (s, e) = (bank.base.pfn(), Pfn::new((bank.end() >> PAGE_SHIFT) as u64));
        wanted.extend(MemMap::sections_of(s, e));
    }
    wanted.dedup();
    let sections = wanted.len();
    // One contiguous, 4 MiB-aligned region for all of it: the blocks it covers stay wholly
    // reserved, so the allocator need not initialise their metadata.
    let section_bytes = PAGES_PER_SECTION * core::mem::size_of::<Page>() as u64;
    let base = mb
        .alloc(section_bytes * sections as u64, 4 << 20, None)
        .map_err(|e| format!("page metadata: {e}"))?;
    for (i, sec) in wanted.into_iter().enumerate() {
        let pa = base.as_u64() + i as u64 * section_bytes;
        // SAFETY: memblock gave us this RAM for good; the linear map covers it; each slice holds
        // exactly one section's `Page`s and nothing else uses it.
        unsafe {
            map.populate(
                sec,
                layout::phys_to_virt(crate::addr::PhysAddr::new(pa)).as_u64() as *mut Page,
            )
        };
    }
    let metadata_bytes = mb.allocated_bytes();
    let mut allocator = PageAllocator::new(LinearMap, map, &memory, limits);
    allocator.debug_pagealloc = debug_pagealloc;
    allocator.release(&memory, &mb.free_ranges());
    allocator.setup_watermarks();
    let report = InitReport {
        ram: mb.total(),
        reserved: mb.reserved_bytes(),
        metadata_bytes,
        sections,
    };
    PAGES.install(allocator);
    REPORT.call_once(|| report);
    Ok(report)
}
