//! The application's memory at run time: its address space (`mmap`, `munmap`, `mprotect`, the
//! locked stack), the page-fault handler the exception vectors call (demand-zero pages, swap-in
//! with readahead, access-flag and write-protect faults), reclaim's clock over resident pages,
//! and the swap cache's tie between a page and its slot. Anything the handler cannot settle (no
//! region, a permission the region lacks, no memory left, a page that does not come back from
//! swap) is a real fault, which the exception report then describes. Kernel only.
//! Lock order: the address space, the application's page table, reclaim's queue, the swap area,
//! the page allocator. The fault path only `try_lock`s the first two, and the reclaim hook (run
//! from inside allocations) only `try_lock`s everything: a fault or reclaim that finds them held
//! (inside the memory manager itself) reports or gives up, never waits. With one CPU that is
//! exact; a second CPU will need owner-aware locks here. Must never touch a locked region's
//! pages in reclaim, nor hand the application a page that failed its check.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;

use super::gfp::Gfp;
use super::init::PAGES;
use super::page_alloc::PhysMem;
use super::page_io;
use super::pgtable::{desc, Attrs, MemType};
use super::swap_entry::SwapEntry;
use super::swapfile::{self, SwapError};
use super::vma::{AddressSpace, FaultDecision, Prot, VmaError};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::mm::cpu::ticks;
use crate::mm::kspace::{KernelPageTable, USER_PT};

static SPACE: Mutex<Option<AddressSpace>> = Mutex::new(None);

/// `/proc/vmstat` counters.
pub static PGFAULT: AtomicU64 = AtomicU64::new(0);
pub static PGMAJFAULT: AtomicU64 = AtomicU64::new(0);
/// Pages reclaim looked at, and pages it freed by writing them to swap.
pub static PGSCAN: AtomicU64 = AtomicU64::new(0);
pub static PGSTEAL: AtomicU64 = AtomicU64::new(0);
/// Counter ticks spent in reclaim's swap-out and in faults' swap-in, device waits included
/// (benchmarks subtract the driver's wait ticks).
pub static SWAPOUT_TICKS: AtomicU64 = AtomicU64::new(0);
pub static SWAPIN_TICKS: AtomicU64 = AtomicU64::new(0);
/// Counter ticks spent in the reclaim hook as a whole, the slab shrinker included: what a
/// swap-in takes out of its own time when its allocations run reclaim.
static RECLAIM_TICKS: AtomicU64 = AtomicU64::new(0);

/// Access-flag faults taken (software access-flag management only; none where the hardware
/// sets the flag).
pub static AF_FAULTS: AtomicU64 = AtomicU64::new(0);

/// Pages in memory whose copy on swap is still valid (`SwapCached`): read back and not written
/// since. Reclaim drops such a page without writing it.
pub static SWAPCACHE: AtomicU64 = AtomicU64::new(0);

/// The application's resident pages, in the order reclaim's clock visits them (the page-table
/// entry's access flag is the reference bit). Lock order: after the page table.
static RESIDENT: Mutex<VecDeque<u64>> = Mutex::new(VecDeque::new());
/// Reclaim is running: allocations it makes itself (the disk driver's) must not re-enter it.
static IN_RECLAIM: AtomicBool = AtomicBool::new(false);
/// Pages written to swap per batch: one disk request when the slots are consecutive.
const RECLAIM_BATCH: usize = 32;
/// Pages a swap-in fault reads in one request (the faulting one and those after it).
const SWAP_READAHEAD: usize = 16;

/// Why a fault was not handled (for the exception report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealFault {
    NoRegion,
    Protection {
        start: u64,
        end: u64,
        prot: Prot,
        name: &'static str,
    },
    OutOfMemory,
    /// The page could not be read back from swap.
    SwapIn {
        slot: u64,
        why: SwapInFailure,
    },
    /// The address space or page table was locked by the faulting code itself.
    Busy,
}

impl From<&super::vma::Vma> for RealFault {
    /// The region that refused an access.
    fn from(vma: &super::vma::Vma) -> RealFault {
        RealFault::Protection {
            start: vma.start,
            end: vma.end,
            prot: vma.prot,
            name: vma.name,
        }
    }
}

/// Why a swapped-out page could not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapInFailure {
    /// The disk refused the read, or the driver could not make it.
    Io,
    /// The page read is not the page written.
    Checksum,
    /// The entry names a slot that holds no page, or no swap area is active.
    NoPage,
}

/// How the application's pages are mapped: it runs at EL1 in the low half, so pages are
/// kernel-accessible, non-global (per address space), and never writable and executable.
fn attrs(prot: Prot) -> Attrs {
    Attrs {
        mem: MemType::Normal,
        write: prot.write,
        kernel_exec: prot.exec && !prot.write,
        user: false,
        user_exec: false,
        global: false,
        accessed: true,
    }
}

/// The swap cache's tie between a page read back from swap and the slot that still holds its
/// copy (Linux keeps the entry in `page->private` too): the entry's descriptor encoding in the
/// frame's metadata `private` word, 0 for none. The frame is an application page, owned by this
/// module while it is mapped, and the word is only used under the application table's lock.
fn swap_cache_entry(pa: PhysAddr) -> Option<SwapEntry> {
    let page = super::heap::pfn_to_page(pa.pfn().as_u64())?;
    // SAFETY: the metadata of an application frame this module owns (see above); only read.
    SwapEntry::from_pte(unsafe { page.as_ref() }.private)
}

/// Ties `pa` to `entry` (or unties it); `false` when the frame has no metadata to hold it.
fn set_swap_cache_entry(pa: PhysAddr, entry: Option<SwapEntry>) -> bool {
    let Some(mut page) = super::heap::pfn_to_page(pa.pfn().as_u64()) else {
        return false;
    };
    // SAFETY: as in `swap_cache_entry`; the table lock held by the caller serialises writers.
    unsafe { page.as_mut() }.private = entry.map_or(0, SwapEntry::to_pte);
    true
}

/// Gives up the swap copy of a page about to be written or freed: its slot is free again.
fn drop_swap_cache(pa: PhysAddr) {
    if let Some(entry) = swap_cache_entry(pa) {
        set_swap_cache_entry(pa, None);
        SWAPCACHE.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = swapfile::swap_free(entry) {
            log::warn!("swap cache: {e}");
        }
    }
}

/// A page tied to its swap copy is mapped read-only whatever the region allows, so the first
/// write faults and unties it (the copy is stale from then on).
fn clean_attrs(prot: Prot) -> Attrs {
    attrs(Prot {
        write: false,
        ..prot
    })
}

/// The level-3 descriptor of an application page with `prot`, without its frame: built once
/// per permission set, so a fault only adds the address.
fn leaf_template(prot: Prot) -> u64 {
    static TEMPLATES: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    let slot =
        &TEMPLATES[prot.read as usize | (prot.write as usize) << 1 | (prot.exec as usize) << 2];
    match slot.load(Ordering::Relaxed) {
        0 => {
            let d = desc::leaf(0, attrs(prot), 3);
            slot.store(d, Ordering::Relaxed);
            d
        }
        d => d,
    }
}

fn with_space<R>(f: impl FnOnce(&mut AddressSpace) -> R) -> R {
    let mut g = SPACE.lock();
    f(g.get_or_insert_with(AddressSpace::new))
}

/// `mmap`: a lazy anonymous region; pages appear on first touch.
pub fn mmap(len: u64, prot: Prot, name: &'static str) -> Result<u64, VmaError> {
    with_space(|s| s.mmap(None, len.next_multiple_of(PAGE_SIZE), prot, name))
}

/// Unmaps and frees every page present in `[start, end)`, gives back the swap slots of pages on
/// swap or tied to a swap copy, and forgets the range in reclaim's queue.
fn release_pages(start: u64, end: u64) {
    let mut pt = USER_PT.lock();
    let Some(pt) = pt.as_mut() else { return };
    // One walk per page: swap entries are cleared (and their slots freed) at once; present
    // pages are collected and freed in batches after one unmap of their span, so no frame is
    // reused while a TLB may still map it, and tables left empty go with the unmap.
    const BATCH: usize = 64;
    let mut frames = [PhysAddr::new(0); BATCH];
    let mut n = 0;
    let mut span_start = start;
    let mut a = start;
    while a < end {
        let va = VirtAddr::new(a);
        match pt.pte(va) {
            Some(d) if desc::is_leaf(d, 3) => {
                frames[n] = PhysAddr::new(desc::addr(d));
                n += 1;
            }
            Some(d) => {
                if let Some(entry) = SwapEntry::from_pte(d) {
                    let _ = pt.set_pte(va, 0);
                    if let Err(e) = swapfile::swap_free(entry) {
                        log::warn!("munmap at {a:#x}: {e}");
                    }
                }
            }
            None => {}
        }
        a += PAGE_SIZE;
        if n == BATCH || a >= end {
            if pt.unmap(VirtAddr::new(span_start), a - span_start).is_ok() {
                for &pa in &frames[..n] {
                    drop_swap_cache(pa);
                    let _ = PAGES.free_pages(pa, 0);
                }
            }
            n = 0;
            span_start = a;
        }
    }
    if swapfile::active() {
        RESIDENT.lock().retain(|&va| va < start || va >= end);
    }
}

/// The name of the reserved range below the application's stack.
pub const STACK_GUARD: &str = "stack guard";

/// The application's stack: `len` bytes mapped at once, zeroed, and kept out of reclaim (Linux's
/// `MAP_POPULATE | MAP_LOCKED`), because kernel code the application calls runs on it too and
/// must never fault on it while it holds the memory manager's locks; below it `guard` bytes of
/// reserved address space, so an overflow is a fault in the stack-guard region, reported as one.
/// Returns the stack's `[bottom, top)`.
pub fn map_stack(len: u64, guard: u64) -> Result<(u64, u64), VmaError> {
    let (len, guard) = (
        len.next_multiple_of(PAGE_SIZE),
        guard.next_multiple_of(PAGE_SIZE),
    );
    let bottom = with_space(|s| -> Result<u64, VmaError> {
        // One gap for both, then the guard's upper part becomes the stack.
        let base = s.mmap(None, guard + len, Prot::NONE, STACK_GUARD)?;
        s.munmap(base + guard, len)?;
        let bottom = s.mmap(Some(base + guard), len, Prot::RW, "stack")?;
        // Neither reclaim, munmap nor mprotect may take it from under the code running on it.
        s.set_locked(base, guard + len, true)?;
        Ok(bottom)
    })?;
    let template = leaf_template(Prot::RW);
    let populated = {
        let mut pt = USER_PT.lock();
        let pt = pt.as_mut().ok_or(VmaError::NoMemory)?;
        (bottom..bottom + len)
            .step_by(PAGE_SIZE as usize)
            .try_for_each(|a| {
                let pa = PAGES
                    .alloc_pages(Gfp::KERNEL | Gfp::ZERO | Gfp::NOWARN, 0)
                    .map_err(|_| VmaError::NoMemory)?;
                pt.map_pte(VirtAddr::new(a), template | pa.as_u64())
                    .map_err(|_| {
                        let _ = PAGES.free_pages(pa, 0);
                        VmaError::NoMemory
                    })
            })
    };
    if let Err(e) = populated {
        unmap_stack(bottom, len, guard);
        return Err(e);
    }
    Ok((bottom, bottom + len))
}

/// Gives back a stack from [`map_stack`] (once nothing runs on it any more).
pub fn unmap_stack(bottom: u64, len: u64, guard: u64) {
    let (len, guard) = (
        len.next_multiple_of(PAGE_SIZE),
        guard.next_multiple_of(PAGE_SIZE),
    );
    let _ = with_space(|s| s.set_locked(bottom - guard, guard + len, false));
    let _ = munmap(bottom - guard, guard + len);
}

/// `munmap`.
pub fn munmap(addr: u64, len: u64) -> Result<(), VmaError> {
    let removed = with_space(|s| s.munmap(addr, len.next_multiple_of(PAGE_SIZE)))?;
    for v in removed {
        release_pages(v.start, v.end);
    }
    Ok(())
}

/// `mprotect`: the region's permissions, and those of the pages already present.
pub fn mprotect(addr: u64, len: u64, prot: Prot) -> Result<(), VmaError> {
    let len = len.next_multiple_of(PAGE_SIZE);
    with_space(|s| s.mprotect(addr, len, prot))?;
    let mut pt = USER_PT.lock();
    if let Some(pt) = pt.as_mut() {
        let mut a = addr;
        while a < addr + len {
            if let Some(t) = pt.translate(VirtAddr::new(a)) {
                // A page tied to its swap copy stays read-only until its first write.
                let attrs = match swap_cache_entry(t.pa) {
                    Some(_) => clean_attrs(prot),
                    None => attrs(prot),
                };
                let _ = pt.protect(VirtAddr::new(a), PAGE_SIZE, attrs);
            }
            a += PAGE_SIZE;
        }
    }
    Ok(())
}

/// The application's region holding `addr`, for reports (`None` also when the address space is
/// locked: reports never wait).
pub fn region_at(addr: u64) -> Option<super::vma::Vma> {
    SPACE.try_lock()?.as_ref()?.find(addr).cloned()
}

/// Called by the exception handler for a translation fault at `far` in the application's space.
/// `Ok` means the access can be retried.
pub fn handle_page_fault(far: u64, write: bool, exec: bool) -> Result<(), RealFault> {
    let Some(space) = SPACE.try_lock() else {
        return Err(RealFault::Busy);
    };
    let Some(space) = space.as_ref() else {
        return Err(RealFault::NoRegion);
    };
    let prot = match space.decide(far, write, exec) {
        FaultDecision::DemandZero { prot } => prot,
        FaultDecision::NoRegion => return Err(RealFault::NoRegion),
        FaultDecision::Protection { vma } => return Err(RealFault::from(&vma)),
    };
    let page = VirtAddr::new(far & !(PAGE_SIZE - 1));
    // The order-0 fast path; below the low watermark the allocator runs reclaim first, which
    // may change the application's entries, so the entry is read only after allocating.
    let pa = PAGES
        .alloc_pages(Gfp::KERNEL | Gfp::NOWARN, 0)
        .map_err(|_| RealFault::OutOfMemory)?;
    let Some(mut pt) = USER_PT.try_lock() else {
        let _ = PAGES.free_pages(pa, 0);
        return Err(RealFault::Busy);
    };
    let Some(pt) = pt.as_mut() else {
        let _ = PAGES.free_pages(pa, 0);
        return Err(RealFault::Busy);
    };
    // Without a swap area no entry can hold a swapped page: skip the extra walk.
    let swapped = if swapfile::active() {
        pt.pte(page).and_then(SwapEntry::from_pte)
    } else {
        None
    };
    if let Some(entry) = swapped {
        return swap_in_fault(pt, space, far, write, page, pa, entry, prot);
    }
    super::init::LinearMap.zero_page(pa.pfn().as_u64());
    if pt.map_pte(page, leaf_template(prot) | pa.as_u64()).is_err() {
        let _ = PAGES.free_pages(pa, 0);
        return Err(RealFault::OutOfMemory);
    }
    track_resident(page.as_u64());
    PGFAULT.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A fault on a page that is on swap (kept out of line so the demand-zero path stays small):
/// reads it, and the following pages of the region whose entries hold the following slots, in
/// one request; maps every page that verified. Unless the swap area is nearly full the pages
/// stay tied to their slots (the swap cache), mapped read-only, so reclaim can drop them
/// again without a write; the faulting page of a write fault is untied at once.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn swap_in_fault(
    pt: &mut KernelPageTable,
    space: &AddressSpace,
    far: u64,
    write: bool,
    page: VirtAddr,
    pa: PhysAddr,
    entry: SwapEntry,
    prot: Prot,
) -> Result<(), RealFault> {
    // Pages read ahead with the faulting one: (address, frame), and which of them verified.
    let mut ahead = [(0u64, PhysAddr::new(0)); SWAP_READAHEAD - 1];
    let mut ahead_n = 0;
    let mut ahead_ok = 0u32;
    {
        let t0 = ticks();
        // Reclaim run by the readahead's allocations (the slab shrinker and swap-out) is not
        // swap-in's time.
        let reclaim0 = RECLAIM_TICKS.load(Ordering::Relaxed);
        // Readahead: the following pages of the region whose entries hold the following slots
        // (what reclaim wrote together usually comes back together), as far as memory allows:
        // one attempt each, and the first refusal ends the readahead.
        let region_end = space.find(far).map_or(0, |v| v.end);
        while ahead_n < SWAP_READAHEAD - 1 {
            let v = page.as_u64() + (ahead_n as u64 + 1) * PAGE_SIZE;
            let next = SwapEntry::new(entry.area(), entry.slot() + ahead_n as u64 + 1);
            if v >= region_end
                || next.is_none()
                || pt.pte(VirtAddr::new(v)).and_then(SwapEntry::from_pte) != next
            {
                break;
            }
            let Ok(p) = PAGES.alloc_pages(Gfp::KERNEL | Gfp::NOWARN | Gfp::NORETRY, 0) else {
                break;
            };
            ahead[ahead_n] = (v, p);
            ahead_n += 1;
        }
        let frame = |p: PhysAddr| {
            // SAFETY: each frame was just allocated for this fault, is mapped read-write by the
            // linear map, and is used by nothing else until it is mapped below; the frames are
            // distinct, so the slices do not overlap.
            unsafe {
                core::slice::from_raw_parts_mut(
                    super::layout::phys_to_virt(p).as_u64() as *mut u8,
                    PAGE_SIZE as usize,
                )
            }
        };
        let mut bufs: [&mut [u8]; SWAP_READAHEAD] = core::array::from_fn(|i| match i {
            0 => frame(pa),
            i if i <= ahead_n => frame(ahead[i - 1].1),
            _ => &mut [],
        });
        let result = match page_io::swap_in_ahead(entry, &mut bufs[..ahead_n + 1]) {
            Ok(mask) if mask & 1 != 0 => {
                ahead_ok = mask >> 1;
                Ok(())
            }
            Ok(_) => page_io::swap_in(entry, bufs[0]),
            // A failure somewhere in the batch: the faulting page alone decides.
            Err(_) if ahead_n > 0 => page_io::swap_in(entry, bufs[0]),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let _ = PAGES.free_pages(pa, 0);
            for &(_, p) in &ahead[..ahead_n] {
                let _ = PAGES.free_pages(p, 0);
            }
            log::error!("page at {:#x}: {e}", page.as_u64());
            return Err(RealFault::SwapIn {
                slot: entry.slot(),
                why: match e {
                    SwapError::Checksum { .. } => SwapInFailure::Checksum,
                    SwapError::NotInUse(_) | SwapError::NoSwap => SwapInFailure::NoPage,
                    _ => SwapInFailure::Io,
                },
            });
        }
        let nested = RECLAIM_TICKS.load(Ordering::Relaxed) - reclaim0;
        SWAPIN_TICKS.fetch_add((ticks() - t0).saturating_sub(nested), Ordering::Relaxed);
    }
    // Linux gives up swap copies once half the area is used (`vm_swap_full`). Here reclaim can
    // always drop a clean copy without a write, even with the area full, so copies are kept
    // until the area is nearly full, when free slots for dirty pages are what count.
    let keep = swapfile::free_slots_now() * 16 >= swapfile::total_slots();
    if !map_swapped(pt, page, pa, entry, prot, keep && !write) {
        let _ = PAGES.free_pages(pa, 0);
        for &(_, p) in &ahead[..ahead_n] {
            let _ = PAGES.free_pages(p, 0);
        }
        return Err(RealFault::OutOfMemory);
    }
    PGMAJFAULT.fetch_add(1, Ordering::Relaxed);
    for (i, &(v, p)) in ahead[..ahead_n].iter().enumerate() {
        let e = SwapEntry::new(entry.area(), entry.slot() + i as u64 + 1);
        // A page that failed its checksum keeps its entry: its own fault reports it.
        match e {
            Some(e)
                if ahead_ok & (1 << i) != 0
                    && map_swapped(pt, VirtAddr::new(v), p, e, prot, keep) =>
            {
                track_resident(v)
            }
            _ => {
                let _ = PAGES.free_pages(p, 0);
            }
        }
    }
    track_resident(page.as_u64());
    PGFAULT.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Maps a page just read back from `entry` at `va`: tied to the slot and read-only when `cache`
/// (the slot keeps its copy), else with the region's permissions and the slot freed. `false`:
/// not mapped (the caller frees the frame; the entry stays in the table).
fn map_swapped(
    pt: &mut KernelPageTable,
    va: VirtAddr,
    pa: PhysAddr,
    entry: SwapEntry,
    prot: Prot,
    cache: bool,
) -> bool {
    let cache = cache && set_swap_cache_entry(pa, Some(entry));
    let a = if cache {
        clean_attrs(prot)
    } else {
        attrs(prot)
    };
    if pt.map_page(va, pa, a).is_err() {
        if cache {
            set_swap_cache_entry(pa, None);
        }
        return false;
    }
    if cache {
        SWAPCACHE.fetch_add(1, Ordering::Relaxed);
    } else if let Err(e) = swapfile::swap_free(entry) {
        log::warn!("swap-in at {:#x}: {e}", va.as_u64());
    }
    true
}

/// Queues a newly mapped page for reclaim's clock. Only while swap is on: without it nothing
/// can be reclaimed. The queue grows ahead of need; if it cannot grow the page is simply never
/// reclaimed.
#[inline(always)]
fn track_resident(va: u64) {
    if swapfile::active() {
        queue_resident(va);
    }
}

fn queue_resident(va: u64) {
    let mut q = RESIDENT.lock();
    let grow = q.len().max(4096);
    if q.len() == q.capacity() && q.try_reserve(grow).is_err() {
        return;
    }
    q.push_back(va);
}

/// An access-flag fault on a resident application page (software access-flag management): sets
/// the flag, which tells reclaim's clock the page is in use. `Ok` means retry the access.
pub fn handle_access_flag(far: u64) -> Result<(), RealFault> {
    AF_FAULTS.fetch_add(1, Ordering::Relaxed);
    let Some(mut pt) = USER_PT.try_lock() else {
        return Err(RealFault::Busy);
    };
    let Some(pt) = pt.as_mut() else {
        return Err(RealFault::Busy);
    };
    let va = VirtAddr::new(far & !(PAGE_SIZE - 1));
    match pt.pte(va) {
        Some(d) if desc::is_leaf(d, 3) => {
            let _ = pt.set_pte(va, d | desc::AF);
            Ok(())
        }
        _ => Err(RealFault::NoRegion),
    }
}

/// The page allocator's reclaim hook once swap is on (it runs when a zone falls below its low
/// watermark): the slab shrinker, then up to one batch of cold application pages written to
/// swap and their frames freed. Returns the pages freed. The swap part does nothing when it
/// would re-enter itself or when the allocating code holds the application's table.
pub fn reclaim_hook(zone: super::zone::ZoneId, order: u8) -> u64 {
    // Timed only at the outermost level: reclaim's own allocations may run the hook again.
    let outermost = !IN_RECLAIM.load(Ordering::Relaxed);
    let start = ticks();
    let slabs = super::heap::shrink_slabs(zone, order);
    if !swapfile::active() || IN_RECLAIM.swap(true, Ordering::Acquire) {
        if outermost {
            RECLAIM_TICKS.fetch_add(ticks() - start, Ordering::Relaxed);
        }
        return slabs;
    }
    let t0 = ticks();
    let freed = USER_PT
        .try_lock()
        .and_then(|mut pt| pt.as_mut().map(shrink_resident))
        .unwrap_or(0);
    let end = ticks();
    SWAPOUT_TICKS.fetch_add(end - t0, Ordering::Relaxed);
    RECLAIM_TICKS.fetch_add(end - start, Ordering::Relaxed);
    IN_RECLAIM.store(false, Ordering::Release);
    slabs + freed
}

/// The clock: a page whose access flag is set gets it cleared and another round; one found
/// clear is cold. A cold page tied to its swap copy (clean) is dropped: its entry goes back in
/// the table, no write needed. The other cold pages go to swap in one batch, as many as there
/// are free slots. Pages whose write fails stay mapped and in the queue.
fn shrink_resident(pt: &mut KernelPageTable) -> u64 {
    // Never more than the area can take: a batch is written whole or not at all.
    let dirty_max = RECLAIM_BATCH.min(swapfile::free_slots_now() as usize);
    if dirty_max == 0 && SWAPCACHE.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    let mut victims = [(0u64, 0u64); RECLAIM_BATCH];
    let mut n = 0;
    let mut clean = 0u64;
    // Not waiting: the allocation that called reclaim may be queueing a page itself.
    let Some(mut q) = RESIDENT.try_lock() else {
        return 0;
    };
    let limit = 2 * q.len();
    let mut scanned = 0;
    while n < dirty_max.max(1) && (clean as usize) < RECLAIM_BATCH && scanned < limit {
        let Some(va) = q.pop_front() else { break };
        scanned += 1;
        let v = VirtAddr::new(va);
        let Some(d) = pt.pte(v).filter(|&d| desc::is_leaf(d, 3)) else {
            continue; // unmapped since
        };
        let pa = PhysAddr::new(desc::addr(d));
        if d & desc::AF != 0 {
            let _ = pt.set_pte(v, d & !desc::AF);
            q.push_back(va);
        } else if victims[..n].iter().any(|&(x, _)| x == va) {
            continue; // queued twice: already chosen
        } else if let Some(entry) = swap_cache_entry(pa).filter(|_| d & desc::AP_RO != 0) {
            // Clean: the slot still holds this page, verified when it comes back.
            drop_clean(pt, v, pa, entry);
            clean += 1;
        } else if n < dirty_max {
            // A tied page found writable would be dirty: untie it, write it like any other.
            drop_swap_cache(pa);
            victims[n] = (va, d);
            n += 1;
        } else {
            // No slot for it (the area is full): only clean pages can go now.
            q.push_back(va);
        }
    }
    PGSCAN.fetch_add(scanned as u64, Ordering::Relaxed);
    PGSTEAL.fetch_add(clean, Ordering::Relaxed);
    match page_out(pt, &victims[..n]) {
        Ok(written) => clean + written,
        Err(e) => {
            if !matches!(e, SwapError::Full { .. }) {
                log::warn!("reclaim: {e}");
            }
            for &(va, _) in &victims[..n] {
                q.push_back(va);
            }
            clean
        }
    }
}

/// Drops a clean page (tied to its swap copy): the entry goes back in the table and the frame
/// is freed, no write needed.
fn drop_clean(pt: &mut KernelPageTable, va: VirtAddr, pa: PhysAddr, entry: SwapEntry) {
    let _ = pt.set_pte(va, entry.to_pte());
    set_swap_cache_entry(pa, None);
    SWAPCACHE.fetch_sub(1, Ordering::Relaxed);
    let _ = PAGES.free_pages(pa, 0);
}

/// Writes the pages `(address, descriptor)` to swap in one batch, puts their entries in the
/// table and frees the frames. On an error every page stays mapped as it was.
fn page_out(pt: &mut KernelPageTable, victims: &[(u64, u64)]) -> Result<u64, SwapError> {
    let n = victims.len().min(RECLAIM_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut pages: [&[u8]; RECLAIM_BATCH] = [&[]; RECLAIM_BATCH];
    for (slot, &(_, d)) in pages.iter_mut().zip(&victims[..n]) {
        let frame = super::layout::phys_to_virt(PhysAddr::new(desc::addr(d)));
        // SAFETY: the frame is a mapped application page; the application cannot run while
        // the fault path or an allocation holds this CPU, so it does not change under the read.
        *slot =
            unsafe { core::slice::from_raw_parts(frame.as_u64() as *const u8, PAGE_SIZE as usize) };
    }
    let entries = page_io::swap_out(&pages[..n])?;
    for (&(va, d), &entry) in victims[..n].iter().zip(entries.iter()) {
        if pt.set_pte(VirtAddr::new(va), entry.to_pte()).is_ok() {
            let _ = PAGES.free_pages(PhysAddr::new(desc::addr(d)), 0);
        }
    }
    PGSTEAL.fetch_add(n as u64, Ordering::Relaxed);
    Ok(n as u64)
}

/// `madvise(MADV_PAGEOUT)`: reclaims the pages present in `[addr, addr + len)` now, whatever
/// their access flags say: clean ones are dropped, the others written to swap in batches.
/// Returns the pages reclaimed; an error when there is no swap, the range is not wholly inside
/// regions, or a write failed (those pages stay in memory).
pub fn madvise_pageout(addr: u64, len: u64) -> Result<u64, SwapError> {
    if !swapfile::active() {
        return Err(SwapError::NoSwap);
    }
    let end = addr.saturating_add(len.next_multiple_of(PAGE_SIZE));
    let space = SPACE.lock();
    let mut a = addr & !(PAGE_SIZE - 1);
    while a < end {
        match space.as_ref().and_then(|s| s.find(a)) {
            Some(v) => a = v.end,
            None => return Err(SwapError::NotMapped { addr: a }),
        }
    }
    let mut pt = USER_PT.lock();
    let Some(pt) = pt.as_mut() else {
        return Ok(0);
    };
    let mut victims = [(0u64, 0u64); RECLAIM_BATCH];
    let mut n = 0;
    let mut done = 0;
    let start = addr & !(PAGE_SIZE - 1);
    // Pages leaving memory leave reclaim's queue too (they rejoin it when they come back), so
    // the clock never holds one twice.
    RESIDENT
        .lock()
        .retain(|&va| va < start || va >= end || space.as_ref().is_some_and(|s| s.is_locked(va)));
    let mut a = start;
    while a < end {
        let v = VirtAddr::new(a);
        // Locked regions (the stack the caller runs on) are not paged out, as Linux's
        // MADV_PAGEOUT skips VM_LOCKED ones.
        let locked = space.as_ref().is_some_and(|s| s.is_locked(a));
        if let Some(d) = pt.pte(v).filter(|&d| !locked && desc::is_leaf(d, 3)) {
            let pa = PhysAddr::new(desc::addr(d));
            if let Some(entry) = swap_cache_entry(pa) {
                drop_clean(pt, v, pa, entry);
                PGSTEAL.fetch_add(1, Ordering::Relaxed);
                done += 1;
            } else {
                victims[n] = (a, d);
                n += 1;
            }
        }
        a += PAGE_SIZE;
        if n == RECLAIM_BATCH || (a >= end && n > 0) {
            done += page_out(pt, &victims[..n])?;
            n = 0;
        }
    }
    Ok(done)
}

/// The swap slots the pages of `[addr, addr + len)` hold: `(on swap, tied)`, the entries in the
/// table and the pages in memory still tied to their copy (the swap cache). What `munmap` of
/// the range gives back.
pub fn swap_slots_held(addr: u64, len: u64) -> (u64, u64) {
    let mut held = (0, 0);
    let pt = USER_PT.lock();
    let Some(pt) = pt.as_ref() else {
        return held;
    };
    let start = addr & !(PAGE_SIZE - 1);
    for a in (start..addr.saturating_add(len)).step_by(PAGE_SIZE as usize) {
        match pt.pte(VirtAddr::new(a)) {
            Some(d) if desc::is_leaf(d, 3) => {
                held.1 += swap_cache_entry(PhysAddr::new(desc::addr(d))).is_some() as u64;
            }
            Some(d) => held.0 += SwapEntry::from_pte(d).is_some() as u64,
            None => {}
        }
    }
    held
}

/// A permission fault in the application's space. A write the region allows, to a page tied to
/// its swap copy, unties it (the slot is freed, the page becomes writable) and is retried (`Ok`);
/// anything else is real, and the error says which region refused it.
pub fn handle_permission_fault(far: u64, write: bool, exec: bool) -> Result<(), RealFault> {
    let Some(space) = SPACE.try_lock() else {
        return Err(RealFault::Busy);
    };
    let Some(space) = space.as_ref() else {
        return Err(RealFault::NoRegion);
    };
    let decision = space.decide(far, write, exec);
    if let (FaultDecision::DemandZero { prot }, true) = (&decision, write) {
        let Some(mut pt) = USER_PT.try_lock() else {
            return Err(RealFault::Busy);
        };
        let Some(pt) = pt.as_mut() else {
            return Err(RealFault::Busy);
        };
        let va = VirtAddr::new(far & !(PAGE_SIZE - 1));
        if let Some(d) = pt.pte(va).filter(|&d| desc::is_leaf(d, 3)) {
            let pa = PhysAddr::new(desc::addr(d));
            if swap_cache_entry(pa).is_some() {
                drop_swap_cache(pa);
                // Same frame, more permission: no break-before-make; set_pte invalidates the
                // read-only entry the TLB may hold.
                let _ = pt.set_pte(va, desc::leaf(pa.as_u64(), attrs(*prot), 3));
                return Ok(());
            }
        }
    }
    Err(match decision {
        FaultDecision::NoRegion => RealFault::NoRegion,
        FaultDecision::Protection { vma } => RealFault::from(&vma),
        // The region allows it but the page does not: a page mapped by someone else.
        FaultDecision::DemandZero { .. } => RealFault::Busy,
    })
}

/// `/proc/vmstat`: the paging counters, as Linux names them.
pub fn vmstat() -> [(&'static str, u64); 7] {
    [
        ("pgfault", PGFAULT.load(Ordering::Relaxed)),
        ("pgmajfault", PGMAJFAULT.load(Ordering::Relaxed)),
        ("pswpin", page_io::PSWPIN.load(Ordering::Relaxed)),
        ("pswpout", page_io::PSWPOUT.load(Ordering::Relaxed)),
        ("pgscan", PGSCAN.load(Ordering::Relaxed)),
        ("pgsteal", PGSTEAL.load(Ordering::Relaxed)),
        ("nr_swapcached", SWAPCACHE.load(Ordering::Relaxed)),
    ]
}

/// Describes a real fault for the exception report, without allocating.
pub fn describe(fault: RealFault, print: &dyn Fn(core::fmt::Arguments)) {
    match fault {
        RealFault::NoRegion => print(format_args!("  application fault: the address is in no region\n")),
        RealFault::Protection { start, end, name: STACK_GUARD, .. } => print(format_args!(
            "  application stack overflow: the access is in the stack guard [{start:#x}-{end:#x}) below the application's stack\n"
        )),
        RealFault::Protection { start, end, prot, name } => print(format_args!(
            "  application fault: region [{start:#x}-{end:#x}) {name} is {prot}, which does not allow this access\n"
        )),
        // The exception handler prints the out-of-memory report (mm::oom) instead.
        RealFault::OutOfMemory => print(format_args!(
            "  out of memory: no page left for the application's fault\n"
        )),
        RealFault::SwapIn { slot, why: SwapInFailure::Checksum } => print(format_args!(
            "  swap: the page read back from slot {slot} is not the page written (checksum mismatch); it is not handed to the application\n"
        )),
        RealFault::SwapIn { slot, why: SwapInFailure::Io } => print(format_args!(
            "  swap: the page in slot {slot} could not be read back (I/O error)\n"
        )),
        RealFault::SwapIn { slot, why: SwapInFailure::NoPage } => print(format_args!(
            "  swap: the entry names slot {slot}, which holds no page (a stale entry)\n"
        )),
        RealFault::Busy => print(format_args!("  the fault happened inside the memory manager itself\n")),
    }
}
