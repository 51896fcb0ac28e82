//! Self-tests of the application's address space: demand-zero first touches, munmap giving pages
//! back, and the real faults (no region, a permission the region lacks) staying real.

use core::sync::atomic::Ordering;

use crate::arch::aarch64::esr::{self, Access, FaultKind};
use crate::arch::aarch64::exception::catch_exception;
use crate::arch::aarch64::provoke;
use crate::ktest::TestError;
use crate::mm::app_space::{self, Region};
use crate::mm::init::PAGES;
use crate::mm::memory::RealFault;
use crate::mm::vma::Prot;
use crate::mm::vmstat::{AF_FAULTS, PGFAULT};
use crate::mm_selftests::page_alloc::free_pages_settled as free_pages;
use crate::{kassert, kassert_eq, ktest};

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

/// A region of `len` bytes mapped, every page touched, and unmapped again.
fn touch_and_unmap(len: u64) -> Result<(), TestError> {
    let mut region = Region::map(len, Prot::RW, "ktest-warm-up").map_err(fail)?;
    for off in (0..len).step_by(4096) {
        region.write_u64(off, off);
    }
    region.unmap().map_err(fail)
}

ktest!(lazy_regions_fill_on_first_touch_and_munmap_returns_pages, {
    let len = 64 << 10;
    // Once the same way first: what a first region grows and keeps (reclaim's queue of resident
    // pages) is then grown already, and the count below sees this region's pages alone.
    touch_and_unmap(len)?;
    let before = free_pages();
    let mut region = Region::map(len, Prot::RW, "ktest").map_err(fail)?;
    let base = region.start();
    kassert!((crate::mm::layout::USER_START..crate::mm::layout::USER_END).contains(&base));
    let faults = PGFAULT.load(Ordering::Relaxed);
    // The first read faults in a zero page.
    kassert_eq!(region.read_u64(0), 0);
    kassert_eq!(PGFAULT.load(Ordering::Relaxed), faults + 1);
    for i in 0..len / 8 {
        region.write_u64(i * 8, i ^ base);
    }
    kassert_eq!(PGFAULT.load(Ordering::Relaxed), faults + len / 4096);
    for i in 0..len / 8 {
        kassert_eq!(region.read_u64(i * 8), i ^ base);
    }
    region.unmap().map_err(fail)?;
    kassert_eq!(free_pages(), before);
    // Gone: touching it now is a real fault.
    let caught = catch_exception(|| {
        // SAFETY: an access expected to fault and be skipped.
        unsafe { provoke::read(base) }
    });
    kassert!(caught.is_some(), "the unmapped region still answered");
    Ok(())
});

ktest!(out_of_region_and_protection_faults_are_real, {
    let len = 8 << 10;
    let mut region = Region::map(len, Prot::RW, "ktest-ro").map_err(fail)?;
    let base = region.start();
    // Outside every region (just past this one, which the next mmap would not fill).
    let outside = base + (1 << 30);
    let caught = catch_exception(|| {
        // SAFETY: an access expected to fault and be skipped.
        unsafe { provoke::read(outside) }
    })
    .ok_or(fail("no fault outside every region"))?;
    kassert!(matches!(
        esr::abort(caught.esr).map(|a| a.kind),
        Some(FaultKind::Translation { .. })
    ));
    kassert_eq!(
        app_space::handle_page_fault(outside, false, false),
        Err(RealFault::NoRegion)
    );
    // Faults in a page.
    region.write_u64(0, 7);
    app_space::mprotect(base, len, Prot::READ).map_err(fail)?;
    // Reading is still allowed.
    kassert_eq!(region.read_u64(0), 7);
    let caught = catch_exception(|| {
        // SAFETY: a write to a read-only page, expected to fault and be skipped.
        unsafe { provoke::write(base) }
    })
    .ok_or(fail("a write to a read-only region did not fault"))?;
    let a = esr::abort(caught.esr).ok_or(fail("not an abort"))?;
    kassert!(
        matches!(a.kind, FaultKind::Permission { .. }),
        "{:?}",
        a.kind
    );
    kassert_eq!(a.access, Access::Write);
    // An untouched page of a read-only region: the fault handler refuses the write too.
    kassert!(matches!(
        app_space::handle_page_fault(base + 4096, true, false),
        Err(RealFault::Protection { .. })
    ));
    // The value survived the failed write.
    kassert_eq!(region.read_u64(0), 7);
    region.unmap().map_err(fail)?;
    Ok(())
});

ktest!(access_flag_faults_set_the_flag_and_retry, {
    use crate::addr::VirtAddr;
    use crate::mm::pgtable::desc;
    let mut region = Region::map(4096, Prot::RW, "ktest-af").map_err(fail)?;
    let base = region.start();
    region.write_u64(0, 0x5eed);
    // What reclaim's clock does: clear the access flag (the TLB entry goes with it).
    let was_young = app_space::test_and_clear_young(VirtAddr::new(base));
    kassert_eq!(was_young, Some(true));
    let cleared = app_space::pte(VirtAddr::new(base)).unwrap_or(0);
    kassert!(desc::is_leaf(cleared, 3) && cleared & desc::AF == 0);
    // The next access sets the flag again: the hardware does it where it manages access flags
    // (no fault), otherwise an access-flag fault does and the access is retried.
    let faults = AF_FAULTS.load(Ordering::Relaxed);
    kassert_eq!(region.read_u64(0), 0x5eed);
    let hardware = crate::arch::aarch64::mmu::hardware_manages_access_flag();
    kassert_eq!(
        AF_FAULTS.load(Ordering::Relaxed),
        faults + (!hardware) as u64
    );
    let after = app_space::pte(VirtAddr::new(base)).unwrap_or(0);
    kassert!(after & desc::AF != 0, "the access flag was not set again");
    region.unmap().map_err(fail)?;
    Ok(())
});

ktest!(demand_zero_pages_are_zero_in_every_byte, {
    // A dirty frame freed just before the fault is the one the per-CPU list hands out next, so
    // zeroing that skips any line shows here. The region comes first: creating it may allocate.
    let region = Region::map(4096, Prot::RW, "ktest-zero").map_err(fail)?;
    let mut dirty = PAGES
        .alloc_box(crate::mm::gfp::Gfp::KERNEL, 0)
        .map_err(fail)?;
    dirty.as_mut_slice().fill(0xa5);
    drop(dirty);
    let mut nonzero = 0;
    for i in 0..512u64 {
        // The first read faults in a zeroed page.
        nonzero += (region.read_u64(i * 8) != 0) as u32;
    }
    region.unmap().map_err(fail)?;
    kassert_eq!(nonzero, 0);
    Ok(())
});
