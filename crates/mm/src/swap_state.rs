//! The swap cache (Linux's `mm/swap_state.c`): the tie between a page read back from swap and
//! the slot that still holds its copy, so reclaim can drop the page again without a write while
//! it stays clean. The tie is the entry in the frame's metadata word (Linux keeps it in
//! `page->private` too), set and read through the space's `Backing`; `nr_swapcached` counts the
//! ties. Owns the tie's rules: a tied page is mapped read-only whatever its region allows, so
//! its first write faults and unties it, and untying frees the slot. Must never leave a slot
//! tied to a page that was written, nor free a slot that a table entry still names.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use super::addr_space::{AddrSpace, Backing};
use super::pgtable::desc;
use super::swap_entry::SwapEntry;
use super::vmstat::SWAPCACHE;
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// Ties `pa` to `entry`; `false` when the frame has nowhere to hold it (then it stays untied).
pub(super) fn tie<B: Backing>(backing: B, pa: PhysAddr, entry: SwapEntry) -> bool {
    let tied = backing.set_swap_tie(pa, Some(entry));
    if tied {
        SWAPCACHE.fetch_add(1, Relaxed);
    }
    tied
}

/// Unties `pa` from its slot without freeing the slot: its entry goes back into the table
/// (reclaim dropping a clean page) or the mapping failed.
pub(super) fn untie_keep_slot<B: Backing>(backing: B, pa: PhysAddr) {
    backing.set_swap_tie(pa, None);
    SWAPCACHE.fetch_sub(1, Relaxed);
}

/// Gives up the swap copy of a page about to be written or freed: its slot is free again.
pub(super) fn drop_swap_cache<B: Backing>(backing: B, pa: PhysAddr) {
    if let Some(entry) = backing.swap_tie(pa) {
        untie_keep_slot(backing, pa);
        if let Err(e) = backing.swap().swap_free(entry) {
            log::warn!("swap cache: {e}");
        }
    }
}

impl<B: Backing> AddrSpace<B> {
    /// The swap slots the pages of `[addr, addr + len)` hold: `(on swap, tied)`, the entries in
    /// the table and the pages in memory still tied to their copy. What `munmap` of the range
    /// gives back.
    pub fn swap_slots_held(&self, addr: u64, len: u64) -> (u64, u64) {
        let mut held = (0, 0);
        let start = addr & !(PAGE_SIZE - 1);
        for a in (start..addr.saturating_add(len)).step_by(PAGE_SIZE as usize) {
            match self.pt.pte(VirtAddr::new(a)) {
                Some(d) if desc::is_leaf(d, 3) => {
                    held.1 += self
                        .backing
                        .swap_tie(PhysAddr::new(desc::addr(d)))
                        .is_some() as u64;
                }
                Some(d) => held.0 += SwapEntry::from_pte(d).is_some() as u64,
                None => {}
            }
        }
        held
    }
}
