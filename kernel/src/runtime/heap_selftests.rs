//! Self-tests of the application's heap and of the global allocator's dispatch by context: in
//! application context `Box`/`Vec` live in the heap's region of the low half (pages appear on
//! first touch, may go to swap and come back intact, what is freed is reused), in kernel context
//! never; a block is freed and grown in the heap it came from, whatever the context; and what the
//! kernel allocates for an application (the fault handler, mm's entry points) stays in kmalloc.
//! The tests run in kernel context (the `selftest` job is the kernel's own) and enter
//! application context themselves.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::heap::{self, HeapStats};
use crate::ktest::{TestError, TestResult};
use crate::mm::context::Context;
use crate::mm::layout::{USER_END, USER_START};
use crate::mm::vmstat::{PGFAULT, PSWPIN};
use crate::{kassert, kassert_eq, ktest};

/// Runs `f` in application context, as the job's main runs, and back in the caller's after.
fn in_application<R>(f: impl FnOnce() -> R) -> R {
    let _application = Context::enter_application();
    f()
}

/// The heap's figures, or the skip of a run without one (only `runtime::run` makes it).
fn heap_stats() -> Result<HeapStats, TestError> {
    heap::stats().ok_or_else(|| {
        TestError::Skip("no application heap (jobs get one from runtime::run)".into())
    })
}

fn in_user_range(addr: u64) -> bool {
    (USER_START..USER_END).contains(&addr)
}

fn in_heap(stats: &HeapStats, addr: u64) -> bool {
    (stats.start..stats.start + stats.reserved).contains(&addr)
}

ktest!(app_context_vec_lives_in_the_heap_and_pages_fault_in, {
    let before = heap_stats()?;
    kassert_eq!(Context::current(), Context::Kernel);
    // 64 KiB: more than a page, so its pages fault in as it is filled: each never touched
    // before (an empty descriptor, not one an earlier test left resident or on swap, where a
    // read-ahead may bring several back in one fault) with a demand-zero fault of its own.
    let mut big: Vec<u64> = in_application(|| Vec::with_capacity(8192));
    let addr = big.as_ptr() as u64;
    kassert!(in_user_range(addr), "{addr:#x} is not in the low half");
    kassert!(
        in_heap(&before, addr),
        "{addr:#x} is outside the heap region"
    );
    let untouched = (addr.next_multiple_of(4096)..addr + 8192 * 8)
        .step_by(4096)
        .filter(|&va| {
            crate::mm::app_space::pte(crate::addr::VirtAddr::new(va)).is_none_or(|d| d == 0)
        })
        .count() as u64;
    let faults = PGFAULT.load(Ordering::Relaxed);
    in_application(|| big.extend((0..8192u64).map(|i| i * 3)));
    kassert_eq!(big.as_ptr() as u64, addr);
    kassert!(big.iter().enumerate().all(|(i, &w)| w == i as u64 * 3));
    kassert!(
        PGFAULT.load(Ordering::Relaxed) >= faults + untouched,
        "{untouched} pages were never touched, {} faults",
        PGFAULT.load(Ordering::Relaxed) - faults
    );
    let during = heap_stats()?;
    kassert!(during.in_use >= before.in_use + 64 * 1024);
    in_application(|| drop(big));
    kassert_eq!(heap_stats()?.in_use, before.in_use);
    // Freed memory is handed out again.
    let again: Box<[u64; 8192]> = in_application(|| Box::new([7u64; 8192]));
    kassert_eq!(again.as_ptr() as u64, addr);
    kassert_eq!(again[8191], 7);
    in_application(|| drop(again));
    Ok(())
});

ktest!(kernel_context_vec_is_never_in_the_low_half, {
    // Sizes from the smallest slab to whole pages and beyond: kmalloc, in the kernel's half,
    // also inside application context's nested kernel context (an entry point the application
    // called).
    let sizes = [8usize, 64, 1000, 4096, 64 << 10, 1 << 20, 4 << 20];
    let check = |label: &str| -> TestResult {
        for &size in &sizes {
            let v: Vec<u8> = Vec::with_capacity(size);
            let addr = v.as_ptr() as u64;
            kassert!(
                addr >= USER_END,
                "{label}: a kernel Vec of {size} bytes at {addr:#x}, in the low half"
            );
            let b = Box::new(size);
            let addr = &*b as *const usize as u64;
            kassert!(addr >= USER_END, "{label}: a kernel Box at {addr:#x}");
        }
        Ok(())
    };
    check("kernel context")?;
    in_application(|| {
        let _kernel = Context::enter_kernel();
        check("kernel context inside application context")
    })
});

ktest!(blocks_are_freed_and_grown_in_the_heap_they_came_from, {
    let before = heap_stats()?;
    // Made by the application, freed by the kernel.
    let app_vec: Vec<u32> = in_application(|| alloc::vec![5; 10_000]);
    kassert!(in_heap(&before, app_vec.as_ptr() as u64));
    kassert!(heap_stats()?.in_use > before.in_use);
    drop(app_vec);
    kassert_eq!(heap_stats()?.in_use, before.in_use);
    // Made by the kernel, freed by the application: the application's heap never sees it.
    let kernel_vec: Vec<u32> = alloc::vec![6; 10_000];
    kassert!(kernel_vec.as_ptr() as u64 >= USER_END);
    in_application(|| drop(kernel_vec));
    kassert_eq!(heap_stats()?.in_use, before.in_use);
    // Grown in the other context, a block stays in its heap.
    let mut app_vec: Vec<u32> = in_application(|| alloc::vec![1; 100]);
    app_vec.extend(core::iter::repeat_n(2, 100_000));
    kassert!(
        in_heap(&before, app_vec.as_ptr() as u64),
        "the application's Vec moved to {:#x} when the kernel grew it",
        app_vec.as_ptr() as u64
    );
    kassert!(app_vec[..100].iter().all(|&w| w == 1) && app_vec[100..].iter().all(|&w| w == 2));
    let mut kernel_vec: Vec<u32> = alloc::vec![3; 100];
    in_application(|| kernel_vec.extend(core::iter::repeat_n(4, 100_000)));
    kassert!(
        kernel_vec.as_ptr() as u64 >= USER_END,
        "the kernel's Vec moved to {:#x} when the application grew it",
        kernel_vec.as_ptr() as u64
    );
    kassert!(
        kernel_vec[..100].iter().all(|&w| w == 3) && kernel_vec[100..].iter().all(|&w| w == 4)
    );
    in_application(|| drop(app_vec));
    drop(kernel_vec);
    kassert_eq!(heap_stats()?.in_use, before.in_use);
    Ok(())
});

ktest!(
    what_the_kernel_allocates_for_the_application_stays_in_kmalloc,
    {
        let before = heap_stats()?;
        // From application context: an mmap (the region's tree node) and demand-zero faults on it
        // (the resident queue grows): kernel allocations, through mm's entry point and the
        // exception entry, both in kernel context. The application's heap must not grow by a byte.
        const PAGES: u64 = 256;
        let result = in_application(|| -> Result<(), TestError> {
            let mut region = crate::mm::app_space::Region::map(
                PAGES * 4096,
                crate::mm::vma::Prot::RW,
                "ctx-test",
            )
            .map_err(|e| TestError::Fail(alloc::format!("mmap: {e:?}")))?;
            for i in 0..PAGES {
                region.write_u64(i * 4096, i);
            }
            let in_use = heap::stats().map_or(0, |s| s.in_use);
            drop(region);
            kassert_eq!(Context::current(), Context::Application);
            kassert_eq!(in_use, before.in_use);
            Ok(())
        });
        kassert_eq!(Context::current(), Context::Kernel);
        result?;
        kassert_eq!(heap_stats()?.in_use, before.in_use);
        Ok(())
    }
);

ktest!(app_context_allocations_survive_swap, {
    let before = heap_stats()?;
    if !crate::mm::swapfile::SWAP.active() {
        return Err(TestError::Skip(
            "no swap disk attached: the heap's pages have nowhere to go".into(),
        ));
    }
    // 4 MiB of Vec made by the application, a page-unique pattern in every word.
    const WORDS: usize = (4 << 20) / 8;
    let pattern = |i: usize| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa5a5;
    let data: Vec<u64> = in_application(|| (0..WORDS).map(pattern).collect());
    kassert!(in_heap(&before, data.as_ptr() as u64));
    // The whole arena goes to swap: the data, and the allocator's own free lists with it.
    let grown = heap_stats()?.grown;
    let written = crate::mm::app_space::madvise_pageout(before.start, grown)
        .map_err(|e| TestError::Fail(alloc::format!("madvise_pageout: {e:?}")))?;
    // (Not every page need be written: a boot with failing swap writes keeps a batch in RAM.)
    kassert!(written > 0, "no page of the heap went to swap");
    let swapped_in = PSWPIN.load(Ordering::Relaxed);
    // Read back by the application, and freed there (the free lists are touched: swapped in too).
    let bad = in_application(|| {
        let bad = data
            .iter()
            .enumerate()
            .filter(|&(i, &w)| w != pattern(i))
            .count();
        drop(data);
        bad
    });
    kassert_eq!(bad, 0);
    kassert!(
        PSWPIN.load(Ordering::Relaxed) > swapped_in,
        "nothing was read back from swap"
    );
    kassert_eq!(heap_stats()?.in_use, before.in_use);
    Ok(())
});

ktest!(requests_past_the_growth_step_grow_by_their_own_size, {
    let fail = |what: &str| TestError::Fail(what.into());
    heap_stats()?;
    let layout = core::alloc::Layout::from_size_align(4 << 20, 4096).map_err(|_| fail("layout"))?;
    let grown_before = heap_stats()?.grown;
    let big = in_application(|| heap::alloc(layout)).ok_or_else(|| fail("no 4 MiB block"))?;
    let grown = heap_stats()?.grown - grown_before;
    kassert!(
        grown <= 8 << 20,
        "grew {grown:#x} bytes for one 4 MiB block"
    );
    // SAFETY: from `alloc` with this layout, not used again.
    unsafe { heap::dealloc(big, layout) };
    Ok(())
});

ktest!(an_application_allocation_the_heap_cannot_serve_fails, {
    let before = heap_stats()?;
    // More than the heap's whole region: null, not a fallback to kmalloc (the region, not RAM,
    // is what ran out, as for malloc on Linux).
    let layout = core::alloc::Layout::from_size_align(2 * heap::HEAP_REGION as usize, 4096)
        .map_err(|_| TestError::Fail("layout".into()))?;
    // SAFETY: a valid, non-zero layout; a non-null result would be freed below.
    let p = in_application(|| unsafe { alloc::alloc::alloc(layout) });
    if !p.is_null() {
        // SAFETY: allocated just above with this layout.
        unsafe { alloc::alloc::dealloc(p, layout) };
    }
    kassert!(
        p.is_null(),
        "{:#x} for a request larger than the heap",
        p as u64
    );
    kassert!(crate::mm::heap::failed_in_application(layout.size()));
    kassert_eq!(heap_stats()?.in_use, before.in_use);
    Ok(())
});
