//! Reclaim of an address space's pages (Linux's `mm/vmscan.c`, and `MADV_PAGEOUT` from
//! `madvise.c`): a clock over the resident pages whose reference bit is the page-table entry's
//! access flag; a cold page tied to its swap copy is dropped without a write, the other cold
//! pages go to swap in one batch and their frames are freed. Must never touch a locked region's
//! pages, and must never free a page whose write failed: it stays mapped, as it was, and stays
//! in the clock.
// A named exception to the crate's `deny(unsafe_code)`: page-out reads the mapped frames it writes to swap.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use super::addr_space::{AddrSpace, Backing};
use super::pgtable::{desc, PageTable};
use super::swap_entry::SwapEntry;
use super::swap_state::{drop_swap_cache, untie_keep_slot};
use super::swapfile::SwapError;
use super::vmstat::{count_scanned, count_stolen};

/// `vm.swappiness` (0-200, default 60, `swappiness=` on the command line): how reclaim weighs
/// the application's anonymous pages (which must be written to swap) against reclaimable slab
/// (which is only freed). 0: anonymous pages only when slab gives nothing; 200: slab only when
/// anonymous pages give nothing; between, both, slab first up to 100 and anonymous first above.
pub static SWAPPINESS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(60);

/// Sets `vm.swappiness` (clamped to 0-200).
pub fn set_swappiness(value: u32) {
    SWAPPINESS.store(value.min(200), Ordering::Relaxed);
}
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// Pages written to swap per batch: one disk request when the slots are consecutive.
pub(super) const RECLAIM_BATCH: usize = 32;

/// Counter ticks spent in the reclaim hook as a whole, the slab shrinker included: what a
/// swap-in takes out of its own time when its allocations run reclaim.
pub(super) static RECLAIM_TICKS: AtomicU64 = AtomicU64::new(0);

impl<B: Backing> AddrSpace<B> {
    /// The clock: a page whose access flag is set gets it cleared and another round; one found
    /// clear is cold. A cold page tied to its swap copy (clean) is dropped: its entry goes back
    /// in the table, no write needed. The other cold pages go to swap in one batch, as many as
    /// there are free slots. Pages whose write fails stay mapped and in the queue. Returns the
    /// pages freed.
    pub fn shrink_resident(&mut self) -> u64 {
        let backing = self.backing;
        // Never more than the area can take: a batch is written whole or not at all.
        let dirty_max = RECLAIM_BATCH.min(backing.swap().free_slots_now() as usize);
        if dirty_max == 0 && super::vmstat::SWAPCACHE.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let (pt, q) = (&mut self.pt, &mut self.resident);
        let mut victims = [(0u64, 0u64); RECLAIM_BATCH];
        let mut n = 0;
        let mut clean = 0u64;
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
            } else if let Some(entry) = backing.swap_tie(pa).filter(|_| d & desc::AP_RO != 0) {
                // Clean: the slot still holds this page, verified when it comes back.
                drop_clean(pt, backing, v, pa, entry);
                clean += 1;
            } else if n < dirty_max {
                // A tied page found writable would be dirty: untie it, write it like any other.
                drop_swap_cache(backing, pa);
                victims[n] = (va, d);
                n += 1;
            } else {
                // No slot for it (the area is full): only clean pages can go now.
                q.push_back(va);
            }
        }
        count_scanned(scanned as u64);
        count_stolen(clean);
        match page_out(pt, backing, &victims[..n]) {
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

    /// Linux's `ptep_test_and_clear_young`: clears the access flag of the page at `va` (the
    /// TLB entry goes with it), as the clock does; whether it was set, `None` when no page is
    /// there.
    pub fn test_and_clear_young(&mut self, va: VirtAddr) -> Option<bool> {
        let d = self.pt.pte(va).filter(|&d| desc::is_leaf(d, 3))?;
        if d & desc::AF != 0 {
            let _ = self.pt.set_pte(va, d & !desc::AF);
        }
        Some(d & desc::AF != 0)
    }

    /// `madvise(MADV_PAGEOUT)`: reclaims the pages present in `[addr, addr + len)` now, whatever
    /// their access flags say: clean ones are dropped, the others written to swap in batches.
    /// Returns the pages reclaimed; an error when there is no swap, the range is not wholly
    /// inside regions, or a write failed (those pages stay in memory).
    pub fn madvise_pageout(&mut self, addr: u64, len: u64) -> Result<u64, SwapError> {
        let backing = self.backing;
        if !backing.swap().active() {
            return Err(SwapError::NoSwap);
        }
        let end = addr.saturating_add(len.next_multiple_of(PAGE_SIZE));
        let start = addr & !(PAGE_SIZE - 1);
        let mut a = start;
        while a < end {
            match self.vmas.find(a) {
                Some(v) => a = v.end,
                None => return Err(SwapError::NotMapped { addr: a }),
            }
        }
        let (pt, vmas) = (&mut self.pt, &self.vmas);
        // Pages leaving memory leave reclaim's queue too (they rejoin it when they come back),
        // so the clock never holds one twice.
        self.resident
            .retain(|&va| va < start || va >= end || vmas.is_locked(va));
        let mut victims = [(0u64, 0u64); RECLAIM_BATCH];
        let mut n = 0;
        let mut done = 0;
        let mut a = start;
        while a < end {
            let v = VirtAddr::new(a);
            // Locked regions (the stack the caller runs on) are not paged out, as Linux's
            // MADV_PAGEOUT skips VM_LOCKED ones.
            let locked = vmas.is_locked(a);
            if let Some(d) = pt.pte(v).filter(|&d| !locked && desc::is_leaf(d, 3)) {
                let pa = PhysAddr::new(desc::addr(d));
                if let Some(entry) = backing.swap_tie(pa) {
                    drop_clean(pt, backing, v, pa, entry);
                    count_stolen(1);
                    done += 1;
                } else {
                    victims[n] = (a, d);
                    n += 1;
                }
            }
            a += PAGE_SIZE;
            if n == RECLAIM_BATCH || (a >= end && n > 0) {
                done += page_out(pt, backing, &victims[..n])?;
                n = 0;
            }
        }
        Ok(done)
    }
}

/// Drops a clean page (tied to its swap copy): the entry goes back in the table and the frame
/// is freed, no write needed.
fn drop_clean<B: Backing>(
    pt: &mut PageTable<B::Tables, B::Tlb>,
    backing: B,
    va: VirtAddr,
    pa: PhysAddr,
    entry: SwapEntry,
) {
    let _ = pt.set_pte(va, entry.to_pte());
    untie_keep_slot(backing, pa);
    backing.free_frame(pa);
}

/// Writes the pages `(address, descriptor)` to swap in one batch, puts their entries in the
/// table and frees the frames. On an error every page stays mapped as it was.
fn page_out<B: Backing>(
    pt: &mut PageTable<B::Tables, B::Tlb>,
    backing: B,
    victims: &[(u64, u64)],
) -> Result<u64, SwapError> {
    let n = victims.len().min(RECLAIM_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut pages: [&[u8]; RECLAIM_BATCH] = [&[]; RECLAIM_BATCH];
    for (slot, &(_, d)) in pages.iter_mut().zip(&victims[..n]) {
        let frame = backing.frame_ptr(PhysAddr::new(desc::addr(d)));
        // SAFETY: the frame is a page the table maps (its descriptor was just read under the
        // space's lock, which the caller holds until the write is done), so nothing frees or
        // reuses it meanwhile, and the application, which alone writes it otherwise, cannot
        // run while its space is held.
        *slot = unsafe { core::slice::from_raw_parts(frame, PAGE_SIZE as usize) };
    }
    let entries = backing.swap().swap_out(&pages[..n])?;
    for (&(va, d), &entry) in victims[..n].iter().zip(entries.iter()) {
        if pt.set_pte(VirtAddr::new(va), entry.to_pte()).is_ok() {
            backing.free_frame(PhysAddr::new(desc::addr(d)));
        }
    }
    count_stolen(n as u64);
    Ok(n as u64)
}
