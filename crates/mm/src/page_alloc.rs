//! The page allocator: zones on buddy allocators behind one API (`alloc_pages`, `free_pages`,
//! `PageBox`, `get_zeroed_page`), with GFP-directed zone fallback (NORMAL -> DMA32 -> DMA, never
//! upward), watermarks and lowmem reserves, a reclaim hook, checks that refuse bad frees without
//! damage, debug_pagealloc poisoning, lazily initialised page metadata, and a snapshot of the zones
//! for the reports (`mm::vmstat` formats them).
//! Portable: page contents are reached through `PhysMem`, so the host tests run this code.
// A named exception to the crate's `deny(unsafe_code)`: frames are raw memory (`PhysMem` is an unsafe trait).
#![allow(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::gfp::Gfp;
use super::page::{MemMap, Page, PG_ALLOCATED, PG_BUDDY, PG_PCP, PG_RESERVED};
use super::zone::{Zone, ZoneId, ZoneLimits, MAX_ORDER, NR_ORDERS, ZONES};
use crate::addr::{PhysAddr, PhysRange, PAGE_SHIFT, PAGE_SIZE};

/// Where page contents can be read and written.
///
/// # Safety
/// `page_ptr(pfn)` must point at the 4 KiB of frame `pfn`, writable, for every frame the
/// allocator manages.
pub unsafe trait PhysMem {
    fn page_ptr(&self, pfn: u64) -> *mut u8;

    /// Zeroes a frame (the kernel's implementation uses the fastest way the CPU offers).
    fn zero_page(&self, pfn: u64) {
        // SAFETY: `page_ptr` maps the frame's 4 KiB, writable.
        unsafe { self.page_ptr(pfn).write_bytes(0, PAGE_SIZE as usize) }
    }
}

const BLOCK_PAGES: u64 = 1 << MAX_ORDER;
/// States of a max-order block's metadata (lazy initialisation).
const BLOCK_NONE: u8 = 0;
const BLOCK_INIT: u8 = super::page::BLOCK_INIT;
/// Wholly free, on a free list; only the head page's metadata is valid.
const BLOCK_FREE_UNINIT: u8 = 2;
/// Wholly reserved; no page's metadata is valid.
const BLOCK_RESERVED_UNINIT: u8 = 3;

const POISON: u8 = 0xaa;

/// Which watermark an allocation must leave intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Low,
    Min,
    /// None at all: only for reclaim's own allocations (Linux's `ALLOC_NO_WATERMARKS` for a
    /// `PF_MEMALLOC` task), which free memory and must not fail for want of it.
    Reserve,
}

/// Blocks freed in interrupt context while the allocator's lock was held: a fixed ring (no
/// allocation), drained by the next free in process context. One CPU: an interrupt never
/// nests in another, and process context drains with the lock taken, so the ring's indexes are
/// only ever moved by one side at a time (atomics keep them coherent).
struct DeferredFrees {
    slots: [core::sync::atomic::AtomicU64; 32],
    head: core::sync::atomic::AtomicUsize,
    tail: core::sync::atomic::AtomicUsize,
}

impl DeferredFrees {
    #[inline(always)]
    fn pending(&self) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        self.head.load(Relaxed) != self.tail.load(Relaxed)
    }

    fn push(&self, pa: PhysAddr, order: u8) -> Result<(), ()> {
        use core::sync::atomic::Ordering::{Acquire, Release};
        let (head, tail) = (self.head.load(Acquire), self.tail.load(Acquire));
        if tail - head == self.slots.len() {
            return Err(());
        }
        self.slots[tail % self.slots.len()].store(pa.as_u64() | order as u64, Release);
        self.tail.store(tail + 1, Release);
        Ok(())
    }

    fn pop(&self) -> Option<(PhysAddr, u8)> {
        use core::sync::atomic::Ordering::{Acquire, Release};
        let (head, tail) = (self.head.load(Acquire), self.tail.load(Acquire));
        if head == tail {
            return None;
        }
        let v = self.slots[head % self.slots.len()].load(Acquire);
        self.head.store(head + 1, Release);
        // The order lives in the page offset's low bits (a block is page aligned).
        Some((PhysAddr::new(v & !0xfff), (v & 0xff) as u8))
    }
}

static DEFERRED_FREES: DeferredFrees = DeferredFrees {
    slots: [const { core::sync::atomic::AtomicU64::new(0) }; 32],
    head: core::sync::atomic::AtomicUsize::new(0),
    tail: core::sync::atomic::AtomicUsize::new(0),
};

/// Whether the code allocating now is reclaim (direct reclaim or kswapd; Linux's
/// `PF_MEMALLOC`): its allocations may use the reserve below the min watermark. One CPU: a flag.
pub static MEMALLOC: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    pub gfp: Gfp,
    pub order: u8,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "page allocation failure: order {}, gfp {:?}",
            self.order, self.gfp
        )
    }
}

/// A free that was refused; the allocator is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    NotRam(u64),
    Reserved(u64),
    DoubleFree(u64),
    /// Not the first page of a live allocation (freed already, or an address inside one).
    NotAllocated(u64),
    WrongOrder {
        pfn: u64,
        given: u8,
        allocated: u8,
    },
    BadOrder(u8),
    /// Not a page boundary: no allocation starts there.
    Misaligned(u64),
    /// Freed in interrupt context while the allocator was busy, with the queue for such frees
    /// full: the block stays allocated (leaked), reported.
    DeferredQueueFull(PhysAddr),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pa = |pfn: &u64| pfn << PAGE_SHIFT;
        match self {
            FreeError::NotRam(p) => {
                write!(f, "free of {:#x}: not RAM the allocator manages", pa(p))
            }
            FreeError::Reserved(p) => write!(f, "free of {:#x}: the page is reserved", pa(p)),
            FreeError::DoubleFree(p) => {
                write!(f, "double free of {:#x}: the page is already free", pa(p))
            }
            FreeError::NotAllocated(p) => write!(
                f,
                "free of {:#x}: not the first page of an allocation (already freed, or inside one)",
                pa(p)
            ),
            FreeError::WrongOrder {
                pfn,
                given,
                allocated,
            } => write!(
                f,
                "free of {:#x} with order {given}, but it was allocated with order {allocated}",
                pa(pfn)
            ),
            FreeError::BadOrder(o) => write!(f, "free with order {o} (at most {MAX_ORDER})"),
            FreeError::Misaligned(a) => write!(f, "free of {a:#x}: not a page boundary"),
            FreeError::DeferredQueueFull(a) => write!(
                f,
                "free of {a} in interrupt context: the allocator is busy and the queue of deferred frees is full; the block is leaked"
            ),
        }
    }
}

pub struct PageAllocator<P: PhysMem> {
    map: MemMap,
    zones: [Zone; 3],
    block_state: Vec<u8>,
    /// The max-order block `block_state[0]` describes.
    block_base: u64,
    phys: P,
    /// Poison freed pages and check the poison when they are handed out again.
    pub debug_pagealloc: bool,
    /// Pages found modified while free (debug_pagealloc).
    pub poison_errors: u64,
    /// Lazily initialised blocks so far (for reports).
    pub blocks_initialised: u64,
    /// Per highest allowed zone, the first zone at or below it with memory (the fast path's
    /// choice; the full path still falls back further).
    first_zone: [u8; 3],
}

/// Writes the metadata of every page of the max-order block at `block_pfn` (lazily, on the
/// block's first use), each page's zone from `spans` (one lookup for the block unless a zone
/// boundary cuts through it).
fn init_block_metadata(map: &mut MemMap, spans: &[(u64, u64); 3], block_pfn: u64) {
    let zone_of = |pfn: u64| {
        spans
            .iter()
            .position(|&(s, e)| pfn >= s && pfn < e)
            .unwrap_or(0)
    };
    let (first, last) = (zone_of(block_pfn), zone_of(block_pfn + BLOCK_PAGES - 1));
    for pfn in block_pfn..block_pfn + BLOCK_PAGES {
        // Whatever the metadata held before (garbage, for RAM never used) is overwritten: every
        // bit pattern is a valid `Page`, and it has nothing to drop.
        if let Some(p) = map.get_mut(pfn) {
            let zone = if first == last { first } else { zone_of(pfn) };
            *p = Page::new(zone, 0);
        }
    }
}

/// The buddy allocator's hook for a max-order block about to be split or handed out.
fn init_block_on_first_use(
    map: &mut MemMap,
    head: u64,
    spans: &[(u64, u64); 3],
    block_state: &mut [u8],
    blocks_initialised: &mut u64,
    block_base: u64,
) {
    let b = (head / BLOCK_PAGES - block_base) as usize;
    if block_state[b] == BLOCK_FREE_UNINIT {
        init_block_metadata(map, spans, head);
        block_state[b] = BLOCK_INIT;
        *blocks_initialised += 1;
    }
}

impl<P: PhysMem> PageAllocator<P> {
    /// An allocator for RAM `memory` (sorted, page aligned) with metadata in `map`, zones cut at
    /// `limits`. Nothing is free until `release`.
    pub fn new(phys: P, map: MemMap, memory: &[PhysRange], limits: ZoneLimits) -> Self {
        let start = memory.first().map_or(0, |r| r.base.as_u64() >> PAGE_SHIFT);
        let end = memory.last().map_or(0, |r| (r.end() >> PAGE_SHIFT) as u64);
        let dma = (limits.dma_end >> PAGE_SHIFT).clamp(start, end);
        let dma32 = (limits.dma32_end >> PAGE_SHIFT).clamp(dma, end);
        let mut zones = [
            Zone::new(ZoneId::Dma, start, dma),
            Zone::new(ZoneId::Dma32, dma, dma32),
            Zone::new(ZoneId::Normal, dma32, end),
        ];
        for r in memory {
            let (s, e) = (
                r.base.as_u64() >> PAGE_SHIFT,
                (r.end() >> PAGE_SHIFT) as u64,
            );
            for z in zones.iter_mut() {
                let (a, b) = (s.max(z.start_pfn), e.min(z.end_pfn));
                if a < b {
                    z.present += b - a;
                }
            }
        }
        let block_base = start / BLOCK_PAGES;
        let blocks = (end.div_ceil(BLOCK_PAGES) - block_base) as usize;
        PageAllocator {
            map,
            zones,
            block_state: alloc::vec![BLOCK_NONE; blocks],
            block_base,
            phys,
            debug_pagealloc: false,
            poison_errors: 0,
            blocks_initialised: 0,
            first_zone: [0, 1, 2],
        }
    }

    pub fn zone(&self, id: ZoneId) -> &Zone {
        &self.zones[id.index()]
    }

    fn zone_index(&self, pfn: u64) -> Option<usize> {
        self.zones.iter().position(|z| z.spans(pfn))
    }

    fn page(&mut self, pfn: u64) -> Option<&mut Page> {
        self.map.get_mut(pfn)
    }

    fn page_ref(&self, pfn: u64) -> Option<&Page> {
        // SAFETY: shared access to populated metadata while no `&mut` to it exists (`&self`).
        self.map.get(pfn).map(|p| unsafe { &*p })
    }

    /// Initialises every page of the max-order block at `block_pfn` (all not free, not reserved,
    /// in their zone) and marks the block initialised.
    fn init_block(map: &mut MemMap, zones: &[Zone; 3], state: &mut [u8], b: usize, block_pfn: u64) {
        let spans = core::array::from_fn(|i| (zones[i].start_pfn, zones[i].end_pfn));
        init_block_metadata(map, &spans, block_pfn);
        state[b] = BLOCK_INIT;
    }

    /// The hand-over from the early allocator: `free` (sorted, disjoint, inside RAM) becomes free
    /// memory; everything else in RAM is reserved. Whole free max-order blocks are put on the
    /// free lists without touching their other pages' metadata.
    pub fn release(&mut self, memory: &[PhysRange], free: &[PhysRange]) {
        let mut fi = 0;
        for r in memory {
            let (s, e) = (
                r.base.as_u64() >> PAGE_SHIFT,
                (r.end() >> PAGE_SHIFT) as u64,
            );
            let mut block = s & !(BLOCK_PAGES - 1);
            while block < e {
                let block_end = block + BLOCK_PAGES;
                let b = (block / BLOCK_PAGES - self.block_base) as usize;
                if self.block_state[b] != BLOCK_NONE {
                    block = block_end; // shared with the previous bank, done already
                    continue;
                }
                while fi < free.len() && ((free[fi].end() >> PAGE_SHIFT) as u64) <= block {
                    fi += 1;
                }
                // The free ranges inside this block start at `fi` (no allocation: this loop runs
                // once per 4 MiB of RAM).
                let part = |j: usize| -> Option<(u64, u64)> {
                    let f = free.get(j)?;
                    let fs = (f.base.as_u64() >> PAGE_SHIFT).max(block);
                    let fe = ((f.end() >> PAGE_SHIFT) as u64).min(block_end);
                    ((f.base.as_u64() >> PAGE_SHIFT) < block_end).then_some((fs, fe))
                };
                let first = part(fi).filter(|&(fs, fe)| fs < fe);
                let whole = first == Some((block, block_end));
                let zi = self.zone_index(block);
                if whole && zi.is_some_and(|z| self.zones[z].spans(block_end - 1)) {
                    let z = zi.unwrap_or(0);
                    if let Some(p) = self.map.get_mut(block) {
                        *p = Page::new(z, 0);
                    }
                    self.block_state[b] = BLOCK_FREE_UNINIT;
                    self.zones[z].add_free_block(&mut self.map, block, MAX_ORDER);
                    self.zones[z].managed += BLOCK_PAGES;
                    self.zones[z].free += BLOCK_PAGES;
                    if self.debug_pagealloc {
                        self.poison(block, MAX_ORDER);
                    }
                } else if first.is_none() {
                    self.block_state[b] = BLOCK_RESERVED_UNINIT;
                } else {
                    Self::init_block(&mut self.map, &self.zones, &mut self.block_state, b, block);
                    self.blocks_initialised += 1;
                    for pfn in block..block_end {
                        if let Some(p) = self.page(pfn) {
                            p.flags |= PG_RESERVED;
                        }
                    }
                    let mut j = fi;
                    while let Some((fs, fe)) = part(j) {
                        j += 1;
                        for pfn in fs..fe {
                            if let Some(p) = self.page(pfn) {
                                p.flags &= !PG_RESERVED;
                            }
                            let Some(z) = self.zone_index(pfn) else {
                                continue;
                            };
                            self.zones[z].managed += 1;
                            self.zones[z].free += 1;
                            if self.debug_pagealloc {
                                self.poison(pfn, 0);
                            }
                            self.zones[z].buddy_free(&mut self.map, pfn, 0);
                        }
                    }
                }
                block = block_end;
            }
        }
    }

    /// Linux's watermarks: `min_free_kbytes = sqrt(16 * managed kB)` (128 kB..256 MiB) shared
    /// out by size; low and high a quarter (or 0.1% of the zone) above; lowmem reserves with
    /// Linux's ratios (DMA 256, DMA32 256).
    pub fn setup_watermarks(&mut self) {
        let total: u64 = self.zones.iter().map(|z| z.managed).sum();
        let total_kb = total * (PAGE_SIZE / 1024);
        let min_kb = (total_kb * 16).isqrt().clamp(128, 262_144);
        let min_pages = min_kb / (PAGE_SIZE / 1024);
        for z in self.zones.iter_mut() {
            let min = if total == 0 {
                0
            } else {
                (min_pages as u128 * z.managed as u128 / total as u128) as u64
            };
            let step = (min / 4).max(z.managed * 10 / 10_000);
            z.watermark = [min, min + step, min + 2 * step];
        }
        for highest in 0..3 {
            self.first_zone[highest] = (0..=highest)
                .rev()
                .find(|&z| self.zones[z].managed > 0)
                .unwrap_or(0) as u8;
        }
        const RATIO: [u64; 3] = [256, 256, 32];
        let managed: [u64; 3] = [
            self.zones[0].managed,
            self.zones[1].managed,
            self.zones[2].managed,
        ];
        for (i, z) in self.zones.iter_mut().enumerate() {
            for j in 0..3 {
                z.lowmem_reserve[j] = if j > i {
                    managed[i + 1..=j].iter().sum::<u64>() / RATIO[i]
                } else {
                    0
                };
            }
        }
    }

    /// The highest zone a request may use.
    fn highest_zone(gfp: Gfp) -> usize {
        if gfp.contains(Gfp::DMA) {
            0
        } else if gfp.contains(Gfp::DMA32) {
            1
        } else {
            2
        }
    }

    /// The fast path of `alloc` for order 0: a page from the per-CPU list of the first zone with
    /// memory the flags allow, above its low watermark. `None` means: take the full path.
    #[inline(always)]
    pub fn alloc_fast(&mut self, gfp: Gfp) -> Option<PhysAddr> {
        if self.debug_pagealloc || gfp.contains(Gfp::ZERO) {
            return None;
        }
        let highest = Self::highest_zone(gfp);
        let zi = self.first_zone[highest] as usize;
        let z = &mut self.zones[zi];
        let floor = z.watermark[1] + z.lowmem_reserve[highest];
        let pfn = z.pcp_pop_raw(floor)?;
        z.stats.alloc_success += 1;
        // SAFETY: the page came off this zone's list: its metadata is populated.
        let p = unsafe { self.map.get_mut(pfn).unwrap_unchecked() };
        p.flags = (p.flags & !(PG_PCP | super::page::ORDER_MASK)) | PG_ALLOCATED;
        p.refcount = 1;
        p.private = 0;
        Some(PhysAddr::new(pfn << PAGE_SHIFT))
    }

    /// The fast path of `free` for order 0: straight onto the per-CPU list when everything
    /// checks out. `false` means: take the full path (which also reports errors).
    #[inline(always)]
    pub fn free_fast(&mut self, pa: PhysAddr) -> bool {
        if self.debug_pagealloc || !pa.is_aligned(PAGE_SIZE) {
            return false;
        }
        let pfn = pa.as_u64() >> PAGE_SHIFT;
        // Only an initialised block's metadata can be trusted (and then its zone bits too).
        if self
            .block_state
            .get((pfn / BLOCK_PAGES).wrapping_sub(self.block_base) as usize)
            != Some(&BLOCK_INIT)
        {
            return false;
        }
        let Some(p) = self.map.get_mut(pfn) else {
            return false;
        };
        if p.flags & (PG_ALLOCATED | super::page::ORDER_MASK) != PG_ALLOCATED {
            return false;
        }
        let zi = p.zone();
        let old = p.flags;
        p.flags = (old & !PG_ALLOCATED) | PG_PCP;
        p.refcount = 0;
        let z = &mut self.zones[zi];
        if !z.pcp_push_raw(pfn) {
            // Full list: undo, and let the full path drain a batch.
            if let Some(p) = self.map.get_mut(pfn) {
                p.flags = old;
                p.refcount = 1;
            }
            return false;
        }
        z.stats.frees += 1;
        true
    }

    /// A block just taken from a zone becomes an allocation (Linux's `prep_new_page`): its
    /// metadata, the `debug_pagealloc` poison check, `__GFP_ZERO`.
    fn prep_new_page(&mut self, pfn: u64, order: u8, gfp: Gfp) -> PhysAddr {
        if let Some(p) = self.page(pfn) {
            p.flags = (p.flags & !(PG_BUDDY | PG_PCP)) | PG_ALLOCATED;
            p.set_order(order);
            p.refcount = 1;
            p.private = 0;
        }
        if self.debug_pagealloc {
            self.check_poison(pfn, order);
        }
        if gfp.contains(Gfp::ZERO) {
            for i in 0..1u64 << order {
                self.phys.zero_page(pfn + i);
            }
        }
        PhysAddr::new(pfn << PAGE_SHIFT)
    }

    /// One attempt over the zones the flags allow, highest first, keeping `mark` intact.
    pub fn alloc(&mut self, gfp: Gfp, order: u8, mark: Mark) -> Result<PhysAddr, AllocError> {
        if order > MAX_ORDER {
            return Err(AllocError { gfp, order });
        }
        let highest = Self::highest_zone(gfp);
        let pages = 1u64 << order;
        for zi in (0..=highest).rev() {
            let z = &self.zones[zi];
            if z.managed == 0 {
                continue;
            }
            let mut wmark = match mark {
                Mark::Low => z.watermark[1],
                Mark::Min => z.watermark[0],
                Mark::Reserve => 0,
            };
            if gfp.contains(Gfp::HIGH) || gfp.contains(Gfp::ATOMIC) {
                wmark /= 2;
            }
            if z.free < pages + wmark + z.lowmem_reserve[highest] {
                continue;
            }
            let got = self.take_from_zone(zi, pages, |zone, map, init| {
                if order == 0 {
                    zone.pcp_alloc(map, init)
                } else {
                    zone.buddy_alloc(map, order, init)
                }
            });
            if let Some(pfn) = got {
                return Ok(self.prep_new_page(pfn, order, gfp));
            }
        }
        if let Some(z) = self.zones.get_mut(highest) {
            z.stats.alloc_fail += 1;
        }
        Err(AllocError { gfp, order })
    }

    /// Takes `pages` from zone `zi` with `take` (a buddy or per-CPU list operation), handing it
    /// the lazy metadata initialisation of max-order blocks; counts the success.
    fn take_from_zone(
        &mut self,
        zi: usize,
        pages: u64,
        take: impl FnOnce(&mut Zone, &mut MemMap, &mut dyn FnMut(&mut MemMap, u64)) -> Option<u64>,
    ) -> Option<u64> {
        let Self {
            map,
            zones,
            block_state,
            blocks_initialised,
            block_base,
            ..
        } = self;
        let block_base = *block_base;
        let spans: [(u64, u64); 3] =
            core::array::from_fn(|i| (zones[i].start_pfn, zones[i].end_pfn));
        let mut init = |m: &mut MemMap, head: u64| {
            init_block_on_first_use(m, head, &spans, block_state, blocks_initialised, block_base)
        };
        let zone = &mut zones[zi];
        let pfn = take(zone, map, &mut init)?;
        zone.free -= pages;
        zone.stats.alloc_success += 1;
        Some(pfn)
    }

    /// Allocates a block lying wholly below `limit` (a device's reach), from the zones the
    /// flags allow, keeping the min watermark; scans free lists (DMA allocations are rare).
    pub fn alloc_below(
        &mut self,
        gfp: Gfp,
        order: u8,
        limit: PhysAddr,
    ) -> Result<PhysAddr, AllocError> {
        if order > MAX_ORDER {
            return Err(AllocError { gfp, order });
        }
        let limit_pfn = limit.as_u64() >> PAGE_SHIFT;
        let pages = 1u64 << order;
        for zi in (0..=Self::highest_zone(gfp)).rev() {
            let z = &self.zones[zi];
            if z.managed == 0 || z.start_pfn + pages > limit_pfn || z.free < pages + z.watermark[0]
            {
                continue;
            }
            let got = self.take_from_zone(zi, pages, |zone, map, init| {
                zone.buddy_alloc_below(map, order, limit_pfn, init)
            });
            if let Some(pfn) = got {
                return Ok(self.prep_new_page(pfn, order, gfp));
            }
        }
        Err(AllocError { gfp, order })
    }

    /// Frees a block allocated with `order`, or explains why it cannot be.
    pub fn free(&mut self, pa: PhysAddr, order: u8) -> Result<(), FreeError> {
        if !pa.is_aligned(PAGE_SIZE) {
            return Err(FreeError::Misaligned(pa.as_u64()));
        }
        let pfn = pa.as_u64() >> PAGE_SHIFT;
        if order > MAX_ORDER {
            return Err(FreeError::BadOrder(order));
        }
        let zi = self.zone_index(pfn).ok_or(FreeError::NotRam(pfn))?;
        match self
            .block_state
            .get((pfn / BLOCK_PAGES).wrapping_sub(self.block_base) as usize)
            .copied()
            .unwrap_or(BLOCK_NONE)
        {
            BLOCK_INIT => {}
            BLOCK_FREE_UNINIT => return Err(FreeError::DoubleFree(pfn)),
            BLOCK_RESERVED_UNINIT => return Err(FreeError::Reserved(pfn)),
            _ => return Err(FreeError::NotRam(pfn)),
        }
        let page = self.page(pfn).ok_or(FreeError::NotRam(pfn))?;
        if !page.has(PG_ALLOCATED) {
            return Err(if page.has(PG_RESERVED) {
                FreeError::Reserved(pfn)
            } else if page.has(PG_BUDDY) || page.has(PG_PCP) {
                FreeError::DoubleFree(pfn)
            } else {
                FreeError::NotAllocated(pfn)
            });
        }
        if page.order() != order {
            return Err(FreeError::WrongOrder {
                pfn,
                given: order,
                allocated: page.order(),
            });
        }
        page.flags &= !PG_ALLOCATED;
        page.refcount = 0;
        if self.debug_pagealloc {
            self.poison(pfn, order);
        }
        let Self { map, zones, .. } = self;
        let zone = &mut zones[zi];
        zone.free += 1 << order;
        zone.stats.frees += 1;
        if order == 0 {
            zone.pcp_free(map, pfn);
        } else {
            zone.buddy_free(map, pfn, order);
        }
        Ok(())
    }

    /// Gives every per-CPU page back to the buddy lists (before reports and tests of state).
    pub fn drain_pcp(&mut self) {
        let Self { map, zones, .. } = self;
        for z in zones.iter_mut() {
            let n = z.pcp_count();
            z.pcp_drain(map, n);
        }
    }

    fn poison(&mut self, pfn: u64, order: u8) {
        for i in 0..1u64 << order {
            // SAFETY: a free block of managed frames; `PhysMem` maps them.
            unsafe {
                self.phys
                    .page_ptr(pfn + i)
                    .write_bytes(POISON, PAGE_SIZE as usize)
            };
        }
    }

    fn check_poison(&mut self, pfn: u64, order: u8) {
        for i in 0..1u64 << order {
            // SAFETY: as in `poison`; only read.
            let bytes = unsafe {
                core::slice::from_raw_parts(self.phys.page_ptr(pfn + i), PAGE_SIZE as usize)
            };
            if let Some(off) = bytes.iter().position(|&b| b != POISON) {
                self.poison_errors += 1;
                log::error!(
                    "debug_pagealloc: page {:#x} was written while free (offset {:#x} holds {:#04x}, poison is {:#04x})",
                    (pfn + i) << PAGE_SHIFT,
                    off,
                    bytes[off],
                    POISON
                );
            }
        }
    }

    pub fn managed_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.managed).sum()
    }
    pub fn free_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.free).sum()
    }

    /// A copy of the zones' numbers, for reports: formatting allocates, which must never happen
    /// under the allocator's lock (the allocation would need that lock).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            zones: core::array::from_fn(|i| {
                let z = &self.zones[i];
                ZoneSnapshot {
                    id: z.id,
                    start_pfn: z.start_pfn,
                    end_pfn: z.end_pfn,
                    present: z.present,
                    managed: z.managed,
                    free: z.free,
                    watermark: z.watermark,
                    lowmem_reserve: z.lowmem_reserve,
                    buddy: z.buddyinfo(),
                    stats: z.stats,
                }
            }),
        }
    }

    /// Lines for `/proc/meminfo`: total, free and available (free minus the high watermarks).
    pub fn meminfo(&self) -> [(&'static str, u64); 3] {
        self.snapshot().meminfo()
    }

    /// Checks the free lists against the metadata (for tests): every listed block is a free head
    /// of its order, aligned, inside its zone; returns the free pages listed.
    pub fn check_free_lists(&self) -> Result<u64, String> {
        let mut total = 0;
        for z in &self.zones {
            let mut zone_total = z.pcp_count() as u64;
            for (o, area) in z.free_area.iter().enumerate() {
                let mut pfn = area.head;
                let mut n = 0;
                while pfn != super::page::NIL {
                    let p = self
                        .page_ref(pfn)
                        .ok_or(format!("listed frame {pfn:#x} has no metadata"))?;
                    if !p.has(PG_BUDDY) || p.order() as usize != o {
                        return Err(format!(
                            "frame {pfn:#x} on list {o} has flags {:#x}",
                            p.flags
                        ));
                    }
                    if pfn % (1 << o) != 0 || !z.spans(pfn) || !z.spans(pfn + (1 << o) - 1) {
                        return Err(format!(
                            "block {pfn:#x} order {o} misplaced in {}",
                            z.id.name()
                        ));
                    }
                    n += 1;
                    zone_total += 1 << o;
                    pfn = p.next;
                    if n > area.count {
                        return Err(format!(
                            "list {o} of {} is longer than its count",
                            z.id.name()
                        ));
                    }
                }
                if n != area.count {
                    return Err(format!(
                        "list {o} of {}: {n} blocks, count {}",
                        z.id.name(),
                        area.count
                    ));
                }
            }
            if zone_total != z.free {
                return Err(format!(
                    "{}: lists hold {zone_total} pages, free says {}",
                    z.id.name(),
                    z.free
                ));
            }
            total += zone_total;
        }
        Ok(total)
    }

    #[cfg(test)]
    pub(crate) fn phys_for_test(&self) -> &P {
        &self.phys
    }

    /// A lock-free view of the page metadata (see `MemMap::view`).
    pub fn map_view(&self) -> super::page::MemMapView {
        self.map
            .view_with_blocks(&self.block_state, self.block_base)
    }

    pub fn zones(&self) -> &[Zone; 3] {
        &self.zones
    }
}

/// One zone's numbers at a moment (see `PageAllocator::snapshot`).
#[derive(Debug, Clone, Copy)]
pub struct ZoneSnapshot {
    pub id: ZoneId,
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub present: u64,
    pub managed: u64,
    pub free: u64,
    pub watermark: [u64; 3],
    pub lowmem_reserve: [u64; 3],
    pub buddy: [u64; NR_ORDERS],
    pub stats: super::zone::ZoneStats,
}

/// The allocator's numbers at a moment, with the Linux-format reports.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub zones: [ZoneSnapshot; 3],
}

/// Called when a zone falls below its low watermark, with the preferred zone and the order
/// wanted; returns the pages it freed.
pub type ReclaimHook = fn(ZoneId, u8) -> u64;

/// Wakes the background reclaimer (kswapd) for a zone that fell below its low watermark.
pub type KswapdHook = fn(ZoneId);

/// The kernel-wide allocator: the lock, the reclaim hook and the allocation policy.
pub struct GlobalPages<P: PhysMem> {
    inner: spin::Mutex<Option<PageAllocator<P>>>,
    reclaim: spin::Mutex<Option<ReclaimHook>>,
    kswapd: spin::Mutex<Option<KswapdHook>>,
}

impl<P: PhysMem> Default for GlobalPages<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: PhysMem> GlobalPages<P> {
    pub const fn new() -> Self {
        GlobalPages {
            inner: spin::Mutex::new(None),
            reclaim: spin::Mutex::new(None),
            kswapd: spin::Mutex::new(None),
        }
    }

    pub fn install(&self, allocator: PageAllocator<P>) {
        *self.inner.lock() = Some(allocator);
    }

    /// The zones' numbers now (see `PageAllocator::snapshot`).
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.with(|a| a.snapshot())
    }

    /// As `snapshot`, but `None` instead of waiting when the allocator is locked (reports made
    /// from fault and panic paths, which may interrupt its holder).
    pub fn try_snapshot(&self) -> Option<Snapshot> {
        self.inner.try_lock()?.as_ref().map(|a| a.snapshot())
    }

    /// Runs `f` on the allocator, if there is one. `f` must not allocate memory: the global
    /// allocator may need this lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut PageAllocator<P>) -> R) -> Option<R> {
        self.inner.lock().as_mut().map(f)
    }

    /// Called when a zone falls below its low watermark; returns pages freed.
    pub fn set_reclaim_hook(&self, hook: ReclaimHook) {
        *self.reclaim.lock() = Some(hook);
    }

    /// Installs kswapd's wake-up: from then on an allocation that crosses a low watermark wakes
    /// it (Linux's `wakeup_kswapd`) instead of reclaiming itself, and reclaims directly only
    /// when the min watermark is reached.
    pub fn set_kswapd_hook(&self, hook: KswapdHook) {
        *self.kswapd.lock() = Some(hook);
    }

    /// Direct reclaim: the allocation reclaims for itself (an `allocstall`).
    fn reclaim(&self, gfp: Gfp, order: u8) -> u64 {
        use core::sync::atomic::Ordering::Relaxed;
        let hook = *self.reclaim.lock();
        let zone = ZONES[PageAllocator::<P>::highest_zone(gfp)];
        // Nested (reclaim allocating): the flag is already set and stays so.
        let outer = !MEMALLOC.swap(true, Relaxed);
        if outer {
            super::vmstat::ALLOCSTALL.fetch_add(1, Relaxed);
        }
        let freed = hook.map_or(0, |h| h(zone, order));
        if outer {
            MEMALLOC.store(false, Relaxed);
        }
        freed
    }

    /// Wakes kswapd for the zone `gfp` prefers; whether there is a kswapd to wake.
    fn wake_kswapd(&self, gfp: Gfp) -> bool {
        let hook = *self.kswapd.lock();
        let zone = ZONES[PageAllocator::<P>::highest_zone(gfp)];
        hook.map(|h| h(zone)).is_some()
    }

    /// kswapd's reclaim: one round of the reclaim hook for `zone`, counted as kswapd's; the
    /// pages it freed.
    pub fn kswapd_reclaim(&self, zone: ZoneId) -> u64 {
        use core::sync::atomic::Ordering::Relaxed;
        let hook = *self.reclaim.lock();
        super::vmstat::RECLAIMER_IS_KSWAPD.store(true, Relaxed);
        MEMALLOC.store(true, Relaxed);
        let freed = hook.map_or(0, |h| h(zone, 0));
        MEMALLOC.store(false, Relaxed);
        super::vmstat::RECLAIMER_IS_KSWAPD.store(false, Relaxed);
        freed
    }

    /// Whether an allocation that may use the zones up to `zone` finds one of them with its high
    /// watermark free (kswapd stops there; Linux's `pgdat_balanced` for order 0), or there is no
    /// such zone with memory at all.
    pub fn zone_balanced(&self, zone: ZoneId) -> bool {
        self.with(|a| {
            let mut eligible = a
                .zones
                .iter()
                .filter(|z| z.id <= zone && z.managed > 0)
                .peekable();
            eligible.peek().is_none() || eligible.any(|z| z.free >= z.watermark[2])
        })
        .unwrap_or(true)
    }

    fn try_alloc(&self, gfp: Gfp, order: u8, mark: Mark) -> Result<PhysAddr, AllocError> {
        let mut guard = self.inner.lock();
        guard
            .as_mut()
            .ok_or(AllocError { gfp, order })?
            .alloc(gfp, order, mark)
    }

    /// `alloc_pages`: 2^order contiguous pages, naturally aligned, from the zones `gfp` allows.
    /// The order-0 fast path is inlined into callers; everything else is an out-of-line call.
    #[inline(always)]
    pub fn alloc_pages(&self, gfp: Gfp, order: u8) -> Result<PhysAddr, AllocError> {
        // An atomic request (interrupt handlers make them) never waits for the lock: its own
        // path. The flag is a constant at nearly every call, so the test costs nothing.
        if gfp.contains(Gfp::ATOMIC) {
            return self.alloc_pages_atomic(gfp, order);
        }
        if order == 0 {
            let mut guard = self.inner.lock();
            if let Some(a) = guard.as_mut() {
                if let Some(pa) = a.alloc_fast(gfp) {
                    return Ok(pa);
                }
            }
        }
        self.alloc_pages_slow(gfp, order)
    }

    /// `Gfp::ATOMIC`, and interrupt context: the allocator's lock is tried, never waited for
    /// (in interrupt context the interrupted code may hold it: then the allocation fails, as an
    /// atomic one may); no reclaim, kswapd woken below the low watermark, and down to half the
    /// min watermark. A request without `ATOMIC` that reaches the slow path in interrupt context
    /// (where it would reclaim or wait) is refused with a report.
    #[cold]
    #[inline(never)]
    fn alloc_pages_atomic(&self, gfp: Gfp, order: u8) -> Result<PhysAddr, AllocError> {
        let err = AllocError { gfp, order };
        if !gfp.contains(Gfp::ATOMIC) {
            log::error!(
                "alloc_pages({gfp:?}, order {order}) in interrupt context: refused (interrupt \
                 context may not reclaim or wait: allocate with Gfp::ATOMIC)"
            );
            return Err(err);
        }
        // Held: by the code this interrupted (one CPU), which cannot go on until the handler
        // returns. Not held: nothing can take it before this does (interrupts stay masked).
        if self.inner.is_locked() {
            return Err(err);
        }
        if order == 0 {
            if let Some(a) = self.inner.lock().as_mut() {
                if let Some(pa) = a.alloc_fast(gfp) {
                    return Ok(pa);
                }
            }
        }
        if let Ok(pa) = self.try_alloc(gfp, order, Mark::Low) {
            return Ok(pa);
        }
        if let Some(hook) = self.kswapd.try_lock().and_then(|h| *h) {
            hook(ZONES[PageAllocator::<P>::highest_zone(gfp)]);
        }
        self.try_alloc(gfp, order, Mark::Min)
    }

    #[cold]
    #[inline(never)]
    fn alloc_pages_slow(&self, gfp: Gfp, order: u8) -> Result<PhysAddr, AllocError> {
        if super::context::in_interrupt() {
            return self.alloc_pages_atomic(gfp, order);
        }
        // Above the low watermark everywhere it may look: no reclaim needed.
        if let Ok(pa) = self.try_alloc(gfp, order, Mark::Low) {
            return Ok(pa);
        }
        // Reclaim's own allocations (swap batches, requests) may use the reserve: they are what
        // frees memory.
        if MEMALLOC.load(core::sync::atomic::Ordering::Relaxed) {
            if let Ok(pa) = self.try_alloc(gfp, order, Mark::Min) {
                return Ok(pa);
            }
            if let Ok(pa) = self.try_alloc(gfp, order, Mark::Reserve) {
                return Ok(pa);
            }
        }
        // Crossing low: kswapd is woken to reclaim in the background (without one, the
        // allocation reclaims here), then the request may dig down to the min watermark.
        let kswapd = self.wake_kswapd(gfp);
        if !kswapd {
            self.reclaim(gfp, order);
        }
        if let Ok(pa) = self.try_alloc(gfp, order, Mark::Min) {
            return Ok(pa);
        }
        // At min: kswapd did not keep up; the allocation reclaims for itself.
        if kswapd {
            self.reclaim(gfp, order);
            if let Ok(pa) = self.try_alloc(gfp, order, Mark::Min) {
                return Ok(pa);
            }
        }
        if !gfp.contains(Gfp::NORETRY) {
            let mut progress = self.reclaim(gfp, order);
            if let Ok(pa) = self.try_alloc(gfp, order, Mark::Min) {
                return Ok(pa);
            }
            while gfp.contains(Gfp::NOFAIL) && progress > 0 {
                if let Ok(pa) = self.try_alloc(gfp, order, Mark::Min) {
                    return Ok(pa);
                }
                progress = self.reclaim(gfp, order);
            }
        }
        let err = AllocError { gfp, order };
        if gfp.contains(Gfp::NOFAIL) {
            self.warn_failure(&err);
            panic!("{err}: __GFP_NOFAIL and reclaim can free nothing more");
        }
        if !gfp.contains(Gfp::NOWARN) {
            self.warn_failure(&err);
        }
        Err(err)
    }

    fn warn_failure(&self, err: &AllocError) {
        log::warn!("{err}");
        if let Some(snapshot) = self.snapshot() {
            for line in snapshot.buddyinfo() {
                log::warn!("  {line}");
            }
        }
    }

    /// `free_pages`: refuses (and reports) a bad free, leaving the allocator as it was.
    #[inline(always)]
    pub fn free_pages(&self, pa: PhysAddr, order: u8) -> Result<(), FreeError> {
        // In interrupt context the lock is only tried (the interrupted code may hold it).
        if super::context::in_interrupt() {
            return self.free_pages_interrupt(pa, order);
        }
        if order == 0 && self.inner.lock().as_mut().is_some_and(|a| a.free_fast(pa)) {
            return Ok(());
        }
        self.free_pages_slow(pa, order)
    }

    /// Interrupt context: the lock is tried, never waited for; when the interrupted code holds
    /// it, the block waits in a small queue for the next free in process context.
    #[cold]
    #[inline(never)]
    fn free_pages_interrupt(&self, pa: PhysAddr, order: u8) -> Result<(), FreeError> {
        // As `alloc_pages_atomic`: held means held by the interrupted code.
        if !self.inner.is_locked() {
            return self.free_pages_slow(pa, order);
        }
        DEFERRED_FREES
            .push(pa, order)
            .map_err(|()| FreeError::DeferredQueueFull(pa))
    }

    /// Frees what interrupt handlers could not (process context).
    #[cold]
    #[inline(never)]
    fn drain_deferred(&self) {
        while let Some((pa, order)) = DEFERRED_FREES.pop() {
            if let Some(a) = self.inner.lock().as_mut() {
                if let Err(e) = a.free(pa, order) {
                    log::error!("deferred free from interrupt context: {e}");
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn free_pages_slow(&self, pa: PhysAddr, order: u8) -> Result<(), FreeError> {
        if DEFERRED_FREES.pending() {
            self.drain_deferred();
        }
        let r = self
            .inner
            .lock()
            .as_mut()
            .map_or(Err(FreeError::NotRam(pa.as_u64() >> PAGE_SHIFT)), |a| {
                a.free(pa, order)
            });
        if let Err(e) = &r {
            log::error!("page allocator: {e}");
        }
        r
    }

    /// `alloc_pages` for a device that reaches only below `limit`.
    pub fn alloc_pages_below(
        &self,
        gfp: Gfp,
        order: u8,
        limit: PhysAddr,
    ) -> Result<PhysAddr, AllocError> {
        let r = self
            .inner
            .lock()
            .as_mut()
            .map_or(Err(AllocError { gfp, order }), |a| {
                a.alloc_below(gfp, order, limit)
            });
        if r.is_err() && !gfp.contains(Gfp::NOWARN) {
            log::warn!("page allocation below {limit} failed: order {order}, gfp {gfp:?}");
        }
        r
    }

    /// An owner of 2^order pages that frees them on drop.
    pub fn alloc_box(&self, gfp: Gfp, order: u8) -> Result<PageBox<'_, P>, AllocError> {
        Ok(PageBox {
            pages: self,
            pa: self.alloc_pages(gfp, order)?,
            order,
        })
    }

    /// `get_zeroed_page`: one zeroed page, owned.
    pub fn get_zeroed_page(&self, gfp: Gfp) -> Result<PageBox<'_, P>, AllocError> {
        self.alloc_box(gfp | Gfp::ZERO, 0)
    }
}

/// Pages from `GlobalPages`, given back when dropped.
pub struct PageBox<'a, P: PhysMem> {
    pages: &'a GlobalPages<P>,
    pa: PhysAddr,
    order: u8,
}

impl<P: PhysMem> PageBox<'_, P> {
    pub fn phys(&self) -> PhysAddr {
        self.pa
    }
    pub fn order(&self) -> u8 {
        self.order
    }
    pub fn size(&self) -> u64 {
        PAGE_SIZE << self.order
    }
    /// Gives up ownership without freeing; the caller frees with `free_pages`.
    pub fn into_phys(self) -> PhysAddr {
        let pa = self.pa;
        core::mem::forget(self);
        pa
    }
}

impl<P: PhysMem> Drop for PageBox<'_, P> {
    fn drop(&mut self) {
        let _ = self.pages.free_pages(self.pa, self.order);
    }
}

#[cfg(test)]
#[path = "page_alloc_tests.rs"]
mod tests;
