//! The kernel's `vmalloc`, `vzalloc`, `vfree`, `vmap`, `vunmap` (or a `Vmapping` that unmaps
//! when it drops), `vmalloc_to_page` and kernel stacks: virtually contiguous memory in the vmalloc area, from order-0 pages (or the caller's),
//! each area followed by an unmapped guard page. Freed ranges are unmapped at once but their TLB
//! entries are flushed lazily, many frees at a time, before the range is used again.
//! Lock order: the area allocator, then the kernel page table, then the page allocator.
// A named exception to the crate's `deny(unsafe_code)`: mappings of raw kernel virtual memory.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use spin::Mutex;

use super::gfp::Gfp;
use super::init::PAGES;
use super::layout::{VMALLOC_END, VMALLOC_START};
use super::pgtable::Attrs;
use super::vmalloc::{VmKind, VmLookup, VmapAreas};
use crate::addr::{Pfn, PhysAddr, VirtAddr, PAGE_SIZE};
use crate::kspace::KERNEL_PT;

static AREAS: Mutex<Option<VmapAreas>> = Mutex::new(None);
/// Pages of freed areas, given back only after the purge's TLB flush: until then a stale TLB
/// entry may still reach them, and a use after `vfree` must not land in their next owner.
static LAZY_PAGES: Mutex<Vec<PhysAddr>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmError {
    /// No room in the vmalloc area.
    NoSpace(u64),
    /// No pages (or no page-table memory).
    NoMemory(u64),
    /// Not the start of a vmalloc/vmap area.
    NotAnArea(u64),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::NoSpace(n) => {
                write!(f, "vmalloc: no room for {n:#x} bytes in the vmalloc area")
            }
            VmError::NoMemory(n) => write!(f, "vmalloc: out of memory for {n:#x} bytes"),
            VmError::NotAnArea(a) => {
                write!(f, "vfree/vunmap({a:#x}): not the start of a vmalloc area")
            }
        }
    }
}

fn with_areas<R>(f: impl FnOnce(&mut VmapAreas) -> R) -> R {
    let mut g = AREAS.lock();
    // The first page stays unused: the page below every area is then inside the vmalloc area.
    f(g.get_or_insert_with(|| VmapAreas::new(VMALLOC_START + PAGE_SIZE, VMALLOC_END)))
}

/// Flushes the TLB once for every lazily freed range, then frees their empty tables.
fn purge_locked(areas: &mut VmapAreas) {
    let ranges = areas.purge();
    if ranges.is_empty() {
        return;
    }
    let mut pt = KERNEL_PT.lock();
    if let Some(pt) = pt.as_mut() {
        pt.flush_all_now();
        for (start, size) in ranges {
            let _ = pt.unmap(VirtAddr::new(start), size);
        }
    }
    drop(pt);
    for pa in core::mem::take(&mut *LAZY_PAGES.lock()) {
        let _ = PAGES.free_pages(pa, 0);
    }
}

/// Reserves an area, purging lazily freed ranges if that makes room.
fn reserve(size: u64, kind: VmKind, pages: Vec<PhysAddr>) -> Result<u64, VmError> {
    with_areas(|areas| {
        if let Some(va) = areas.alloc(size, PAGE_SIZE, kind, pages.clone()) {
            return Ok(va);
        }
        purge_locked(areas);
        areas
            .alloc(size, PAGE_SIZE, kind, pages)
            .ok_or(VmError::NoSpace(size))
    })
}

fn map_pages(va: u64, pages: &[PhysAddr], attrs: Attrs) -> Result<(), VmError> {
    let mut pt = KERNEL_PT.lock();
    let pt = pt.as_mut().ok_or(VmError::NoMemory(0))?;
    for (i, &pa) in pages.iter().enumerate() {
        if pt
            .map(
                VirtAddr::new(va + i as u64 * PAGE_SIZE),
                pa,
                PAGE_SIZE,
                attrs,
            )
            .is_err()
        {
            let _ = pt.unmap(VirtAddr::new(va), i as u64 * PAGE_SIZE);
            return Err(VmError::NoMemory(pages.len() as u64 * PAGE_SIZE));
        }
    }
    Ok(())
}

fn alloc_area(size: usize, gfp: Gfp, kind: VmKind) -> Result<NonNull<u8>, VmError> {
    if size == 0 || size as u64 > VMALLOC_END - VMALLOC_START {
        return Err(VmError::NoSpace(size as u64));
    }
    let bytes = (size as u64).next_multiple_of(PAGE_SIZE);
    let n = (bytes / PAGE_SIZE) as usize;
    let mut pages = Vec::new();
    if pages.try_reserve_exact(n).is_err() {
        return Err(VmError::NoMemory(bytes));
    }
    for _ in 0..n {
        match PAGES.alloc_pages(gfp | Gfp::NOWARN, 0) {
            Ok(pa) => pages.push(pa),
            Err(_) => {
                for pa in pages {
                    let _ = PAGES.free_pages(pa, 0);
                }
                return Err(VmError::NoMemory(bytes));
            }
        }
    }
    let va = match reserve(bytes, kind, pages.clone()) {
        Ok(va) => va,
        Err(e) => {
            for pa in pages {
                let _ = PAGES.free_pages(pa, 0);
            }
            return Err(e);
        }
    };
    if let Err(e) = map_pages(va, &pages, Attrs::KERNEL_RW) {
        with_areas(|a| a.free(va));
        for pa in pages {
            let _ = PAGES.free_pages(pa, 0);
        }
        return Err(e);
    }
    Ok(area_ptr(va))
}

/// An area's start as a pointer: never null, the vmalloc area lies far above 0.
fn area_ptr(va: u64) -> NonNull<u8> {
    NonNull::new(va as *mut u8).expect("a vmalloc area at address 0")
}

/// `vmalloc(size)`: virtually contiguous memory from order-0 pages, with a guard page after it.
pub fn vmalloc(size: usize) -> Result<NonNull<u8>, VmError> {
    alloc_area(size, Gfp::KERNEL, VmKind::Vmalloc)
}

/// `vzalloc(size)`: `vmalloc`, zeroed.
pub fn vzalloc(size: usize) -> Result<NonNull<u8>, VmError> {
    alloc_area(size, Gfp::KERNEL | Gfp::ZERO, VmKind::Vmalloc)
}

/// Ends an area: unmaps it (TLB flush deferred to the next purge) and frees its pages if it owns
/// them.
fn release(ptr: *const u8, expect: &[VmKind]) -> Result<(), VmError> {
    let va = ptr as u64;
    with_areas(|areas| {
        match areas.find(va) {
            Some(a) if expect.contains(&a.kind) => {}
            _ => return Err(VmError::NotAnArea(va)),
        }
        let (area, purge_due) = areas.free(va).ok_or(VmError::NotAnArea(va))?;
        if let Some(pt) = KERNEL_PT.lock().as_mut() {
            let _ = pt.unmap_lazy(VirtAddr::new(area.start), area.size);
        }
        if area.kind != VmKind::Vmap {
            LAZY_PAGES.lock().extend_from_slice(&area.pages);
        }
        if purge_due {
            purge_locked(areas);
        }
        Ok(())
    })
}

/// `vfree`: a bad pointer is reported, not followed.
///
/// # Safety
/// Nothing may use the area afterwards.
pub unsafe fn vfree(ptr: *const u8) {
    if ptr.is_null() {
        return;
    }
    if let Err(e) = release(ptr, &[VmKind::Vmalloc, VmKind::Stack]) {
        log::error!("{e}");
    }
}

/// `vmap(pages)`: the caller's pages mapped contiguously (the caller keeps owning them).
pub fn vmap(pages: &[PhysAddr], attrs: Attrs) -> Result<NonNull<u8>, VmError> {
    let mapping = Vmapping::new(pages, attrs)?;
    let va = mapping.addr().as_u64();
    // The caller unmaps it with `vunmap`.
    core::mem::forget(mapping);
    Ok(area_ptr(va))
}

/// A `vmap` mapping owned by a value, unmapped when it drops: what a user that keeps the
/// mapping in a struct holds instead of a pointer to pass to `vunmap` (the pages stay the
/// caller's either way).
#[derive(Debug)]
pub struct Vmapping {
    va: u64,
}

impl Vmapping {
    /// The caller's pages mapped contiguously with `attrs`.
    pub fn new(pages: &[PhysAddr], attrs: Attrs) -> Result<Vmapping, VmError> {
        let bytes = pages.len() as u64 * PAGE_SIZE;
        let va = reserve(bytes, VmKind::Vmap, pages.to_vec())?;
        if let Err(e) = map_pages(va, pages, attrs) {
            with_areas(|a| a.free(va));
            return Err(e);
        }
        Ok(Vmapping { va })
    }

    pub fn addr(&self) -> VirtAddr {
        VirtAddr::new(self.va)
    }
}

impl Drop for Vmapping {
    fn drop(&mut self) {
        // The owner's use of the mapping ends here.
        if let Err(e) = release(self.va as *const u8, &[VmKind::Vmap]) {
            log::error!("{e}");
        }
    }
}

/// `vunmap`.
///
/// # Safety
/// Nothing may use the mapping afterwards.
pub unsafe fn vunmap(ptr: *const u8) -> Result<(), VmError> {
    release(ptr, &[VmKind::Vmap])
}

/// `vmalloc_to_page`: the frame behind a vmalloc address.
pub fn vmalloc_to_page(ptr: *const u8) -> Option<Pfn> {
    let pt = KERNEL_PT.lock();
    pt.as_ref()?
        .translate(VirtAddr::new(ptr as u64))
        .map(|t| t.pa.pfn())
}

/// Runs the lazy purge now (tests, and before reports of free space).
pub fn purge() {
    with_areas(purge_locked);
}

/// What a faulting vmalloc-area address is, for the exception report (printed through `print`,
/// without allocating: the fault may have happened inside an allocator). Returns whether it is a
/// stack overflow; `None` if the area allocator is busy (the fault happened inside it).
pub fn report_fault(va: u64, print: &dyn Fn(fmt::Arguments)) -> Option<bool> {
    let g = AREAS.try_lock()?;
    let areas = g.as_ref()?;
    Some(match areas.lookup(va) {
        VmLookup::Inside(a) => {
            print(format_args!(
                "  inside {} area [{:#x}-{:#x}) ({} bytes)\n",
                a.kind.name(),
                a.start,
                a.end(),
                a.size
            ));
            false
        }
        VmLookup::GuardAfter(a) => {
            print(format_args!(
                "  in the guard page after {} area [{:#x}-{:#x}) ({} bytes): an access past its end\n",
                a.kind.name(),
                a.start,
                a.end(),
                a.size
            ));
            false
        }
        VmLookup::StackGuard(a) => {
            print(format_args!(
                "  stack overflow: the guard page below kernel stack [{:#x}-{:#x}) ({} bytes)\n",
                a.start,
                a.end(),
                a.size
            ));
            true
        }
        VmLookup::None => {
            print(format_args!("  in no vmalloc area\n"));
            false
        }
    })
}

/// Whether `va` is the guard page below a kernel stack (for the stack-overflow trap).
pub fn is_stack_guard(va: u64) -> bool {
    AREAS.try_lock().is_some_and(|g| {
        g.as_ref()
            .is_some_and(|a| matches!(a.lookup(va), VmLookup::StackGuard(_)))
    })
}

/// A kernel stack from vmalloc: an overflow hits the unmapped page below it and is reported as a
/// stack overflow instead of corrupting memory. Freed on drop.
pub struct KernelStack {
    /// The area's start (an address, not a pointer: the stack is only handed to the CPU).
    base: u64,
    size: usize,
}

impl KernelStack {
    pub const DEFAULT_SIZE: usize = 16 << 10;

    pub fn new(size: usize) -> Result<KernelStack, VmError> {
        if size < PAGE_SIZE as usize {
            return Err(VmError::NoSpace(size as u64));
        }
        let base = alloc_area(size, Gfp::KERNEL, VmKind::Stack)?;
        Ok(KernelStack {
            base: base.as_ptr() as u64,
            size: size.next_multiple_of(PAGE_SIZE as usize),
        })
    }

    pub fn bottom(&self) -> u64 {
        self.base
    }

    /// The initial stack pointer (stacks grow down).
    pub fn top(&self) -> u64 {
        self.bottom() + self.size as u64
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        // The stack is no longer in use once its owner drops it.
        if let Err(e) = release(self.base as *const u8, &[VmKind::Stack]) {
            log::error!("{e}");
        }
    }
}
