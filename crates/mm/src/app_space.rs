//! The application's address space, the kernel's one instance of `AddrSpace` (what Linux reaches
//! as `current->mm`): its backing (the page allocator, the linear map, the frames' metadata, the
//! kernel's swap), and the entry points the rest of the kernel calls: `mmap`, `munmap`,
//! `mprotect`, `madvise_pageout` and the stack for the application's runtime; the fault
//! handlers for the exception vectors; the reclaim hook for the page allocator; walks for
//! reports. Owns the lock rules of the instance: the fault handlers and the reclaim hook only
//! `try_lock` it (a fault or reclaim that finds it held, inside the memory manager itself,
//! reports or gives up, never waits), and a fault takes its frame before the lock, because the
//! allocation may run reclaim, which needs the space. With one CPU that is exact; a second CPU
//! will need owner-aware locks here. The entry points and the reclaim hook switch to kernel
//! context (`mm::context`): what the space allocates under its lock must never be in the
//! application's swappable heap. Kernel only; must never name the arch layer.
// A named exception to the crate's `deny(unsafe_code)`: the application's frames' metadata is reached by pointer.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::addr_space::{AddrSpace, Backing, FrameBox};
use super::context::Context;
use super::cpu::ticks;
use super::gfp::Gfp;
use super::init::{LinearMap, PAGES};
use super::kspace::{KernelTables, KernelTlb};
use super::memory::RealFault;
use super::page_alloc::PhysMem;
use super::pgtable::table::Walk;
use super::pgtable::{Half, MapError, PageTable, Translation};
use super::swap_entry::SwapEntry;
use super::swapfile::{SwapError, SwapSpace, SWAP};
use super::vma::{Prot, Vma, VmaError};
use super::vmscan::RECLAIM_TICKS;
use super::vmstat::SWAPOUT_TICKS;
use crate::addr::{PhysAddr, VirtAddr};

/// The kernel's backing of the application's space.
#[derive(Clone, Copy)]
pub struct KernelBacking;

// SAFETY: frames come from the page allocator, which hands a frame out once until it is freed,
// and the linear map maps every frame it manages read-write at `phys_to_virt`.
unsafe impl Backing for KernelBacking {
    type Tables = KernelTables;
    type Tlb = KernelTlb;

    #[inline(always)]
    fn alloc_frame(self, gfp: Gfp) -> Option<PhysAddr> {
        PAGES.alloc_pages(gfp, 0).ok()
    }
    #[inline(always)]
    fn free_frame(self, pa: PhysAddr) {
        let _ = PAGES.free_pages(pa, 0);
    }
    #[inline(always)]
    fn frame_ptr(self, pa: PhysAddr) -> *mut u8 {
        LinearMap.page_ptr(pa.pfn().as_u64())
    }
    #[inline(always)]
    fn zero_frame(self, pa: PhysAddr) {
        LinearMap.zero_page(pa.pfn().as_u64());
    }
    fn swap_tie(self, pa: PhysAddr) -> Option<SwapEntry> {
        let page = super::heap::pfn_to_page(pa.pfn().as_u64())?;
        // SAFETY: the metadata of a frame the application's space owns (it maps it); its
        // `private` word is used only under the space's lock, which the caller holds.
        SwapEntry::from_pte(unsafe { page.as_ref() }.private)
    }
    fn set_swap_tie(self, pa: PhysAddr, entry: Option<SwapEntry>) -> bool {
        let Some(mut page) = super::heap::pfn_to_page(pa.pfn().as_u64()) else {
            return false;
        };
        // SAFETY: as in `swap_tie`; the space's lock, held by the caller, serialises writers.
        unsafe { page.as_mut() }.private = entry.map_or(0, SwapEntry::to_pte);
        true
    }
    #[inline(always)]
    fn swap(self) -> &'static SwapSpace {
        &SWAP
    }
}

/// The application's space, once the boot's identity map is gone ([`create`]).
static APP_MM: Mutex<Option<AddrSpace<KernelBacking>>> = Mutex::new(None);

/// Makes the application's space, with an empty table for the lower half; returns the table's
/// root, for TTBR0.
pub fn create() -> Result<PhysAddr, MapError> {
    let pt = PageTable::new(Half::Lower, KernelTables, KernelTlb)?;
    let root = pt.root();
    *APP_MM.lock() = Some(AddrSpace::new(pt, KernelBacking));
    Ok(root)
}

/// The entry points' way in: in kernel context, so what the space allocates under its lock (its
/// regions' tree, the resident queue, swap batches) comes from `kmalloc`, never from the
/// application's swappable heap, where a touch could fault and the fault handler would find the
/// lock held, whichever context the caller (an application through the API, or the kernel) runs in.
fn with_mm<R>(none: R, f: impl FnOnce(&mut AddrSpace<KernelBacking>) -> R) -> R {
    let _kernel = Context::enter_kernel();
    APP_MM.lock().as_mut().map_or(none, f)
}

/// `mmap` in the application's space: a lazy anonymous region; pages appear on first touch.
pub fn mmap(len: u64, prot: Prot, name: &'static str) -> Result<u64, VmaError> {
    with_mm(Err(VmaError::NoMemory), |mm| mm.mmap(len, prot, name))
}

/// A region of the application's space that unmaps itself when dropped, whose memory is read and
/// written through it without `unsafe`: each access may fault a page in (or back from swap), as
/// the application's own accesses do. Offsets are checked like slice indices.
pub struct Region {
    start: u64,
    len: u64,
}

impl Region {
    /// `mmap`s a lazy anonymous region of `len` bytes (rounded up to whole pages).
    pub fn map(len: u64, prot: Prot, name: &'static str) -> Result<Region, VmaError> {
        let len = len.next_multiple_of(crate::addr::PAGE_SIZE);
        Ok(Region {
            start: mmap(len, prot, name)?,
            len,
        })
    }

    /// The region's first address.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The word at `offset`, which must be 8-byte aligned and inside the region.
    #[inline(always)]
    fn word(&self, offset: u64) -> *mut u64 {
        assert!(
            offset.is_multiple_of(8) && offset < self.len,
            "offset {offset:#x} is not a word of the region [{:#x}, +{:#x})",
            self.start,
            self.len
        );
        (self.start + offset) as *mut u64
    }

    /// Reads the word at `offset` (8-byte aligned, inside the region).
    #[inline(always)]
    pub fn read_u64(&self, offset: u64) -> u64 {
        // SAFETY: the address is in the region this value mapped, in the application's half,
        // which holds nothing but the application's regions: the access either reaches the
        // region's page (faulted in on demand) or, if the region was changed behind this
        // value's back, raises a fault the exception handler reports. A volatile access through
        // a raw pointer makes no reference, so nothing else's memory is aliased.
        unsafe { self.word(offset).read_volatile() }
    }

    /// Writes the word at `offset` (8-byte aligned, inside the region). Takes `&mut self`, as
    /// [`as_mut_slice`](Self::as_mut_slice) does, so no shared slice of the region is alive
    /// while it changes.
    #[inline(always)]
    pub fn write_u64(&mut self, offset: u64, value: u64) {
        // SAFETY: as in `read_u64`; a region without write permission faults, and the fault
        // is reported as one. `&mut self` means no slice of the region is borrowed.
        unsafe { self.word(offset).write_volatile(value) }
    }

    /// The region's bytes as a slice. A page is faulted in (zeroed, or back from swap) when
    /// the slice first touches it; a region without read permission faults, reported as one.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: [start, start + len) is this value's mapping in the application's half,
        // which nothing else maps or references: it stays mapped for as long as `self` is
        // borrowed (unmapping takes `self` by value), every byte of it is initialised (a page
        // not present is supplied, zeroed or from swap, by the fault handler on first touch),
        // and while the slice lives no write through `self` can happen (writes take
        // `&mut self`). Page-out and swap-in move a page's frame, never its bytes.
        unsafe { core::slice::from_raw_parts(self.start as *const u8, self.len as usize) }
    }

    /// The region's bytes as a mutable slice (a write to a region without write permission
    /// faults, reported as one).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference to the bytes.
        unsafe { core::slice::from_raw_parts_mut(self.start as *mut u8, self.len as usize) }
    }

    /// The region's 64-bit words (a region is page-aligned, so they are aligned).
    #[inline]
    pub fn words(&self) -> &[u64] {
        // SAFETY: as in `as_slice`; the start is page-aligned and the length a whole number
        // of pages, so the words are aligned and whole, and any bit pattern is a `u64`.
        unsafe { core::slice::from_raw_parts(self.start as *const u64, (self.len / 8) as usize) }
    }

    /// The region's 64-bit words, mutable.
    #[inline]
    pub fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `words` and `as_mut_slice`.
        unsafe { core::slice::from_raw_parts_mut(self.start as *mut u64, (self.len / 8) as usize) }
    }

    /// Unmaps the region now, saying whether `munmap` succeeded (dropping it does the same and
    /// logs a failure).
    pub fn unmap(self) -> Result<(), VmaError> {
        let r = munmap(self.start, self.len);
        core::mem::forget(self);
        r
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Err(e) = munmap(self.start, self.len) {
            log::warn!("munmap of the region at {:#x}: {e}", self.start);
        }
    }
}

/// `munmap` in the application's space.
pub fn munmap(addr: u64, len: u64) -> Result<(), VmaError> {
    with_mm(Err(VmaError::NotMapped(addr)), |mm| mm.munmap(addr, len))
}

/// `mprotect` in the application's space.
pub fn mprotect(addr: u64, len: u64, prot: Prot) -> Result<(), VmaError> {
    with_mm(Err(VmaError::NotMapped(addr)), |mm| {
        mm.mprotect(addr, len, prot)
    })
}

/// The application's stack (see `AddrSpace::map_stack`): `[bottom, top)`.
pub fn map_stack(len: u64, guard: u64) -> Result<(u64, u64), VmaError> {
    with_mm(Err(VmaError::NoMemory), |mm| mm.map_stack(len, guard))
}

/// Gives back a stack from [`map_stack`] (once nothing runs on it any more).
pub fn unmap_stack(bottom: u64, len: u64, guard: u64) {
    with_mm((), |mm| mm.unmap_stack(bottom, len, guard))
}

/// `madvise(MADV_PAGEOUT)` in the application's space.
pub fn madvise_pageout(addr: u64, len: u64) -> Result<u64, SwapError> {
    with_mm(Err(SwapError::NoSwap), |mm| mm.madvise_pageout(addr, len))
}

/// The swap slots the pages of a range hold: `(on swap, tied)` (see `AddrSpace`).
pub fn swap_slots_held(addr: u64, len: u64) -> (u64, u64) {
    with_mm((0, 0), |mm| mm.swap_slots_held(addr, len))
}

/// The application's region holding `addr`, for reports (`None` also when the space is
/// locked: reports never wait).
pub fn region_at(addr: u64) -> Option<Vma> {
    APP_MM.try_lock()?.as_ref()?.region_at(addr).cloned()
}

/// The walk of `va` in the application's table, for reports (`None` when the space is locked).
pub fn try_walk(va: VirtAddr) -> Option<Walk> {
    Some(APP_MM.try_lock()?.as_ref()?.page_table().walk(va))
}

/// The application's table entry for `va` (self-tests).
pub fn pte(va: VirtAddr) -> Option<u64> {
    APP_MM.lock().as_ref()?.page_table().pte(va)
}

/// Clears the access flag of the application's page at `va`, as reclaim's clock does (see
/// `AddrSpace::test_and_clear_young`).
pub fn test_and_clear_young(va: VirtAddr) -> Option<bool> {
    APP_MM.lock().as_mut()?.test_and_clear_young(va)
}

/// What the application's table maps at `va` (checks against the MMU).
pub fn translate(va: VirtAddr) -> Option<Translation> {
    APP_MM.lock().as_ref()?.page_table().translate(va)
}

/// A translation fault at `far` in the application's space, from the exception vectors. `Ok`
/// means the access can be retried.
#[inline(always)]
pub fn handle_page_fault(far: u64, write: bool, exec: bool) -> Result<(), RealFault> {
    // The frame first, without the space: below the low watermark the allocation runs
    // reclaim, which needs it. The order-0 fast path is inlined here.
    let frame = FrameBox::alloc(KernelBacking, Gfp::KERNEL | Gfp::NOWARN);
    let Some(mut mm) = APP_MM.try_lock() else {
        return Err(RealFault::Busy);
    };
    let Some(mm) = mm.as_mut() else {
        return Err(RealFault::NoRegion);
    };
    mm.handle_page_fault(far, write, exec, frame)
}

/// An access-flag fault in the application's space (software access-flag management).
pub fn handle_access_flag(far: u64) -> Result<(), RealFault> {
    let Some(mut mm) = APP_MM.try_lock() else {
        return Err(RealFault::Busy);
    };
    mm.as_mut().ok_or(RealFault::Busy)?.handle_access_flag(far)
}

/// A permission fault in the application's space.
pub fn handle_permission_fault(far: u64, write: bool, exec: bool) -> Result<(), RealFault> {
    let Some(mut mm) = APP_MM.try_lock() else {
        return Err(RealFault::Busy);
    };
    mm.as_mut()
        .ok_or(RealFault::NoRegion)?
        .handle_permission_fault(far, write, exec)
}

/// Reclaim is running: allocations it makes itself (the disk driver's) must not re-enter it.
static IN_RECLAIM: AtomicBool = AtomicBool::new(false);

/// The page allocator's reclaim hook once swap is on (it runs when a zone falls below its low
/// watermark): the slab shrinker, then up to one batch of the application's cold pages written
/// to swap and their frames freed. Returns the pages freed. The swap part does nothing when it
/// would re-enter itself or when the allocating code holds the application's space.
pub fn reclaim_hook(zone: super::zone::ZoneId, order: u8) -> u64 {
    // Reclaim allocates (swap batches, I/O requests) while it holds the space: from kmalloc,
    // whatever context the allocation that ran out of memory came from.
    let _kernel = Context::enter_kernel();
    // Timed only at the outermost level: reclaim's own allocations may run the hook again.
    let outermost = !IN_RECLAIM.load(Ordering::Relaxed);
    let start = ticks();
    // vm.swappiness decides the order and whether the second kind is tried (see vmscan).
    let swappiness = super::vmscan::SWAPPINESS.load(Ordering::Relaxed);
    let mut slabs = if swappiness < 200 {
        super::heap::shrink_slabs(zone, order)
    } else {
        0
    };
    let anon_wanted = swappiness > 0 || slabs == 0;
    if !anon_wanted || !SWAP.active() || IN_RECLAIM.swap(true, Ordering::Acquire) {
        if swappiness == 200 && slabs == 0 {
            slabs = super::heap::shrink_slabs(zone, order);
        }
        if outermost {
            RECLAIM_TICKS.fetch_add(ticks() - start, Ordering::Relaxed);
        }
        return slabs;
    }
    let t0 = ticks();
    let freed = APP_MM
        .try_lock()
        .and_then(|mut mm| mm.as_mut().map(AddrSpace::shrink_resident))
        .unwrap_or(0);
    let end = ticks();
    SWAPOUT_TICKS.fetch_add(end - t0, Ordering::Relaxed);
    RECLAIM_TICKS.fetch_add(end - start, Ordering::Relaxed);
    IN_RECLAIM.store(false, Ordering::Release);
    if swappiness == 200 && freed == 0 {
        slabs = super::heap::shrink_slabs(zone, order);
    }
    slabs + freed
}
