//! Regions of an address space made and changed (Linux's `mm/mmap.c`, `mprotect.c`, `mlock.c`):
//! `mmap` of lazy anonymous regions, `munmap` with every page, swap slot and swap-cache tie the
//! range held given back, `mprotect` of the region and of the pages already present, and the
//! application's stack, populated and locked at once. Must never free a frame a TLB may still
//! map (frames go after the unmap that removed them), nor let reclaim, `munmap` or `mprotect`
//! take the locked stack from under the code running on it.
#![forbid(unsafe_code)]

use super::addr_space::{AddrSpace, Backing, FrameBox};
use super::gfp::Gfp;
use super::memory::{attrs, clean_attrs, leaf_template};
use super::pgtable::desc;
use super::swap_entry::SwapEntry;
use super::swap_state::drop_swap_cache;
use super::vma::{Prot, VmaError};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// The name of the reserved range below the application's stack.
pub const STACK_GUARD: &str = "stack guard";

impl<B: Backing> AddrSpace<B> {
    /// `mmap`: a lazy anonymous region; pages appear on first touch.
    pub fn mmap(&mut self, len: u64, prot: Prot, name: &'static str) -> Result<u64, VmaError> {
        self.vmas
            .mmap(None, len.next_multiple_of(PAGE_SIZE), prot, name)
    }

    /// `munmap`.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), VmaError> {
        let removed = self.vmas.munmap(addr, len.next_multiple_of(PAGE_SIZE))?;
        for v in removed {
            self.release_pages(v.start, v.end);
        }
        Ok(())
    }

    /// Unmaps and frees every page present in `[start, end)`, gives back the swap slots of pages
    /// on swap or tied to a swap copy, and forgets the range in reclaim's queue.
    fn release_pages(&mut self, start: u64, end: u64) {
        let (pt, backing) = (&mut self.pt, self.backing);
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
                        if let Err(e) = backing.swap().swap_free(entry) {
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
                        drop_swap_cache(backing, pa);
                        backing.free_frame(pa);
                    }
                }
                n = 0;
                span_start = a;
            }
        }
        if backing.swap().active() {
            self.resident.retain(|&va| va < start || va >= end);
        }
    }

    /// `mprotect`: the region's permissions, and those of the pages already present.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), VmaError> {
        let len = len.next_multiple_of(PAGE_SIZE);
        self.vmas.mprotect(addr, len, prot)?;
        let mut a = addr;
        while a < addr + len {
            if let Some(t) = self.pt.translate(VirtAddr::new(a)) {
                // A page tied to its swap copy stays read-only until its first write.
                let attrs = match self.backing.swap_tie(t.pa) {
                    Some(_) => clean_attrs(prot),
                    None => attrs(prot),
                };
                let _ = self.pt.protect(VirtAddr::new(a), PAGE_SIZE, attrs);
            }
            a += PAGE_SIZE;
        }
        Ok(())
    }

    /// The application's stack: `len` bytes mapped at once, zeroed, and kept out of reclaim
    /// (Linux's `MAP_POPULATE | MAP_LOCKED`), because kernel code the application calls runs on
    /// it too and must never fault on it while it holds the memory manager's locks; below it
    /// `guard` bytes of reserved address space, so an overflow is a fault in the stack-guard
    /// region, reported as one. Returns the stack's `[bottom, top)`.
    pub fn map_stack(&mut self, len: u64, guard: u64) -> Result<(u64, u64), VmaError> {
        let (len, guard) = (
            len.next_multiple_of(PAGE_SIZE),
            guard.next_multiple_of(PAGE_SIZE),
        );
        // One gap for both, then the guard's upper part becomes the stack.
        let base = self.vmas.mmap(None, guard + len, Prot::NONE, STACK_GUARD)?;
        self.vmas.munmap(base + guard, len)?;
        let bottom = self.vmas.mmap(Some(base + guard), len, Prot::RW, "stack")?;
        // Neither reclaim, munmap nor mprotect may take it from under the code running on it.
        self.vmas.set_locked(base, guard + len, true)?;
        let template = leaf_template(Prot::RW);
        let backing = self.backing;
        let populated = (bottom..bottom + len)
            .step_by(PAGE_SIZE as usize)
            .try_for_each(|a| {
                let mut frame = FrameBox::alloc(backing, Gfp::KERNEL | Gfp::NOWARN)
                    .ok_or(VmaError::NoMemory)?;
                frame.zero();
                self.pt
                    .map_pte(VirtAddr::new(a), template | frame.phys().as_u64())
                    .map_err(|_| VmaError::NoMemory)?;
                frame.into_phys();
                Ok(())
            });
        if let Err(e) = populated {
            self.unmap_stack(bottom, len, guard);
            return Err(e);
        }
        Ok((bottom, bottom + len))
    }

    /// Gives back a stack from [`map_stack`](Self::map_stack) (once nothing runs on it any more).
    pub fn unmap_stack(&mut self, bottom: u64, len: u64, guard: u64) {
        let (len, guard) = (
            len.next_multiple_of(PAGE_SIZE),
            guard.next_multiple_of(PAGE_SIZE),
        );
        let _ = self.vmas.set_locked(bottom - guard, guard + len, false);
        let _ = self.munmap(bottom - guard, guard + len);
    }
}
