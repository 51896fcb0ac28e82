//! An address space (Linux's `mm_struct`): the application's regions, its page table and
//! reclaim's clock over its resident pages, in one value that one lock owns, so no two of them
//! can be out of step and no lock order is needed among them. The mechanisms that work on it
//! keep Linux's file lines: `mmap` (mmap, munmap, mprotect, the locked stack), `memory` (the
//! fault handlers), `vmscan` (reclaim's clock and page-out, `MADV_PAGEOUT`), `swap_state` (the
//! tie between a page read back from swap and its slot). Everything an address space needs from
//! outside (frames, their bytes and metadata, swap) comes through [`Backing`], which the kernel
//! implements over its allocator and linear map (`mm::app_space`) and host tests over simulated
//! memory. Must never name the arch layer, a driver or a global instance.
//!
//! Locking: the space's lock first, then the swap area's, then the page allocator's. Whoever
//! holds the space must not wait for it again: the reclaim hook, which runs inside allocations,
//! only `try_lock`s it, and the fault handlers take their frame before they take the space (see
//! `app_space`).
// A named exception to the crate's `deny(unsafe_code)`: `Backing` is an unsafe trait, and a `FrameBox` lends its frame's bytes.
#![allow(unsafe_code)]

use alloc::collections::VecDeque;

use super::gfp::Gfp;
use super::pgtable::{PageTable, TableAlloc, TlbFlush};
use super::swap_entry::SwapEntry;
use super::swapfile::SwapSpace;
use super::vma::{Vma, VmaTree};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// What an address space is built on: where its frames come from and go back to, where their
/// bytes are, the metadata word that ties a frame to its swap copy, and the swap it pages to.
/// `Copy` because every frame owner carries it (the kernel's is a unit value).
///
/// # Safety
/// `frame_ptr` must lead to the 4 KiB of a frame `alloc_frame` handed out, readable and
/// writable, for as long as the frame is not freed; `alloc_frame` must never hand out a frame
/// twice before it is freed.
pub unsafe trait Backing: Copy {
    /// Where the page table's own pages come from.
    type Tables: TableAlloc;
    /// The page table's TLB maintenance.
    type Tlb: TlbFlush;

    /// One frame (order 0) as `gfp` allows, or `None`.
    fn alloc_frame(self, gfp: Gfp) -> Option<PhysAddr>;
    /// Gives back a frame `alloc_frame` handed out.
    fn free_frame(self, pa: PhysAddr);
    /// Where a frame's bytes are.
    fn frame_ptr(self, pa: PhysAddr) -> *mut u8;
    /// Zeroes a frame (the kernel's uses the fastest way the CPU has).
    fn zero_frame(self, pa: PhysAddr) {
        // SAFETY: `frame_ptr` leads to the frame's 4 KiB, writable (the trait's contract).
        unsafe { self.frame_ptr(pa).write_bytes(0, PAGE_SIZE as usize) }
    }
    /// The swap entry a frame is tied to (`page->private` under `PG_swapcache`), if any.
    fn swap_tie(self, pa: PhysAddr) -> Option<SwapEntry>;
    /// Ties a frame to `entry` or unties it; `false` when the frame has no metadata to hold it.
    fn set_swap_tie(self, pa: PhysAddr, entry: Option<SwapEntry>) -> bool;
    /// The swap the space pages to.
    fn swap(self) -> &'static SwapSpace;
}

/// One frame from a [`Backing`], given back when dropped unless it is handed on
/// ([`into_phys`](FrameBox::into_phys)): every error path of the fault handlers frees by
/// returning.
pub struct FrameBox<B: Backing> {
    backing: B,
    pa: PhysAddr,
}

impl<B: Backing> FrameBox<B> {
    #[inline(always)]
    pub fn alloc(backing: B, gfp: Gfp) -> Option<FrameBox<B>> {
        Some(FrameBox {
            pa: backing.alloc_frame(gfp)?,
            backing,
        })
    }

    pub fn phys(&self) -> PhysAddr {
        self.pa
    }

    /// The frame's bytes, which this owner alone reaches.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the frame is this value's alone until it is freed or handed on (`Backing`'s
        // contract: never handed out twice), and `frame_ptr` leads to its 4 KiB, writable.
        unsafe {
            core::slice::from_raw_parts_mut(self.backing.frame_ptr(self.pa), PAGE_SIZE as usize)
        }
    }

    #[inline(always)]
    pub fn zero(&mut self) {
        self.backing.zero_frame(self.pa);
    }

    /// Hands the frame on (to a page-table entry); whoever holds it now frees it.
    #[inline(always)]
    pub fn into_phys(self) -> PhysAddr {
        let pa = self.pa;
        core::mem::forget(self);
        pa
    }
}

impl<B: Backing> Drop for FrameBox<B> {
    fn drop(&mut self) {
        self.backing.free_frame(self.pa);
    }
}

/// An address space: its regions, page table and resident pages, on `B`.
pub struct AddrSpace<B: Backing> {
    pub(super) vmas: VmaTree,
    pub(super) pt: PageTable<B::Tables, B::Tlb>,
    /// The resident pages in the order reclaim's clock visits them (the page-table entry's
    /// access flag is the reference bit); kept only while swap is on, when pages can leave.
    pub(super) resident: VecDeque<u64>,
    pub(super) backing: B,
}

impl<B: Backing> AddrSpace<B> {
    /// A space with no region over `pt`, an empty table of the lower half.
    pub fn new(pt: PageTable<B::Tables, B::Tlb>, backing: B) -> AddrSpace<B> {
        AddrSpace {
            vmas: VmaTree::new(),
            pt,
            resident: VecDeque::new(),
            backing,
        }
    }

    /// The region holding `addr`.
    pub fn region_at(&self, addr: u64) -> Option<&Vma> {
        self.vmas.find(addr)
    }

    /// The regions, in address order.
    pub fn regions(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.regions()
    }

    /// The page table, for reports and checks (walks, translations).
    pub fn page_table(&self) -> &PageTable<B::Tables, B::Tlb> {
        &self.pt
    }

    /// Takes the page table back from a space with no region left (to free its tables).
    pub fn into_page_table(self) -> PageTable<B::Tables, B::Tlb> {
        self.pt
    }

    pub fn backing(&self) -> B {
        self.backing
    }

    /// Queues a newly mapped page for reclaim's clock. Only while swap is on: without it nothing
    /// can be reclaimed. The queue grows ahead of need; if it cannot grow the page is simply
    /// never reclaimed.
    #[inline(always)]
    pub(super) fn track_resident(&mut self, va: VirtAddr) {
        if self.backing.swap().active() {
            self.queue_resident(va.as_u64());
        }
    }

    fn queue_resident(&mut self, va: u64) {
        let q = &mut self.resident;
        let grow = q.len().max(4096);
        if q.len() == q.capacity() && q.try_reserve(grow).is_err() {
            return;
        }
        q.push_back(va);
    }
}

#[cfg(test)]
#[path = "addr_space_tests.rs"]
mod tests;
