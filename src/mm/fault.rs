//! The application's memory at run time: its address space (`mmap`, `munmap`, `mprotect`) and
//! the page-fault handler the exception vectors call. A translation fault inside a region maps a
//! zeroed page with the region's permissions; anything else (no region, a permission the region
//! lacks, no memory left) is a real fault, which the exception report then describes. Kernel only.
//! Lock order: the address space, then the application's page table, then the page allocator.
//! The fault path only `try_lock`s the first two: a fault taken while they are held (inside the
//! memory manager itself) is reported, not waited on. With one CPU that is exact; a second CPU
//! will need owner-aware locks here.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::gfp::Gfp;
use super::init::PAGES;
use super::page_alloc::PhysMem;
use super::pgtable::{Attrs, MemType};
use super::vma::{AddressSpace, FaultDecision, Prot, VmaError};
use super::{VirtAddr, PAGE_SIZE};
use crate::arch::aarch64::mmu::USER_PT;

static SPACE: Mutex<Option<AddressSpace>> = Mutex::new(None);

/// `/proc/vmstat` counters.
pub static PGFAULT: AtomicU64 = AtomicU64::new(0);
pub static PGMAJFAULT: AtomicU64 = AtomicU64::new(0);

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
    /// The address space or page table was locked by the faulting code itself.
    Busy,
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

fn with_space<R>(f: impl FnOnce(&mut AddressSpace) -> R) -> R {
    let mut g = SPACE.lock();
    f(g.get_or_insert_with(AddressSpace::new))
}

/// `mmap`: a lazy anonymous region; pages appear on first touch.
pub fn mmap(len: u64, prot: Prot, name: &'static str) -> Result<u64, VmaError> {
    with_space(|s| s.mmap(None, len.next_multiple_of(PAGE_SIZE), prot, name))
}

/// Unmaps and frees every page present in `[start, end)`.
fn release_pages(start: u64, end: u64) {
    let mut pt = USER_PT.lock();
    let Some(pt) = pt.as_mut() else { return };
    let mut a = start;
    while a < end {
        if let Some(t) = pt.translate(VirtAddr::new(a)) {
            let _ = pt.unmap(VirtAddr::new(a), PAGE_SIZE);
            let _ = PAGES.free_pages(t.pa, 0);
        }
        a += PAGE_SIZE;
    }
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
            if pt.translate(VirtAddr::new(a)).is_some() {
                let _ = pt.protect(VirtAddr::new(a), PAGE_SIZE, attrs(prot));
            }
            a += PAGE_SIZE;
        }
    }
    Ok(())
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
        FaultDecision::Protection { vma } => {
            return Err(RealFault::Protection {
                start: vma.start,
                end: vma.end,
                prot: vma.prot,
                name: vma.name,
            })
        }
    };
    let page = VirtAddr::new(far & !(PAGE_SIZE - 1));
    // The order-0 fast path, then zeroing (DC ZVA) outside the allocator's lock.
    let pa = PAGES
        .alloc_pages(Gfp::KERNEL | Gfp::NOWARN, 0)
        .map_err(|_| RealFault::OutOfMemory)?;
    super::init::LinearMap.zero_page(pa.pfn().as_u64());
    let Some(mut pt) = USER_PT.try_lock() else {
        let _ = PAGES.free_pages(pa, 0);
        return Err(RealFault::Busy);
    };
    let Some(pt) = pt.as_mut() else {
        return Err(RealFault::Busy);
    };
    if pt.map_page(page, pa, attrs(prot)).is_err() {
        let _ = PAGES.free_pages(pa, 0);
        return Err(RealFault::OutOfMemory);
    }
    PGFAULT.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A permission fault in the application's space: never a first touch (the page is present), so
/// always real; says which region refused it.
pub fn classify_permission_fault(far: u64, write: bool, exec: bool) -> RealFault {
    let Some(space) = SPACE.try_lock() else {
        return RealFault::Busy;
    };
    let Some(space) = space.as_ref() else {
        return RealFault::NoRegion;
    };
    match space.decide(far, write, exec) {
        FaultDecision::NoRegion => RealFault::NoRegion,
        FaultDecision::Protection { vma } => RealFault::Protection {
            start: vma.start,
            end: vma.end,
            prot: vma.prot,
            name: vma.name,
        },
        // The region allows it but the page does not: a page mapped by someone else.
        FaultDecision::DemandZero { .. } => RealFault::Busy,
    }
}

/// Describes a real fault for the exception report, without allocating.
pub fn describe(fault: RealFault, print: &dyn Fn(core::fmt::Arguments)) {
    match fault {
        RealFault::NoRegion => print(format_args!("  application fault: the address is in no region\n")),
        RealFault::Protection { start, end, prot, name } => print(format_args!(
            "  application fault: region [{start:#x}-{end:#x}) {name} is {prot}, which does not allow this access\n"
        )),
        RealFault::OutOfMemory => print(format_args!(
            "  out of memory: no page left for the application's fault (pgfault {})\n",
            PGFAULT.load(Ordering::Relaxed)
        )),
        RealFault::Busy => print(format_args!("  the fault happened inside the memory manager itself\n")),
    }
}
