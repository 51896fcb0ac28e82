//! Self-tests of the application's heap: values live in its region of the low half, pages
//! appear on first touch, and what is freed is reused.

use core::sync::atomic::Ordering;

use super::heap::{self, AppBox};
use crate::mm::vmstat::PGFAULT;
use crate::{kassert, kassert_eq, ktest};

ktest!(app_heap_lives_in_the_application_space_and_frees_on_drop, {
    let Some(before) = heap::stats() else {
        return Err(crate::ktest::TestError::Skip(
            "no application heap (jobs get one from runtime::run)".into(),
        ));
    };
    let faults = PGFAULT.load(Ordering::Relaxed);
    // 64 KiB: more than a page, so its pages fault in as it is filled.
    let mut big =
        AppBox::new([0u64; 8192]).map_err(|_| crate::ktest::TestError::Fail("no room".into()))?;
    for (i, w) in big.iter_mut().enumerate() {
        *w = i as u64 * 3;
    }
    kassert!(
        (before.start..before.start + before.reserved).contains(&big.addr()),
        "{:#x} is outside the heap region",
        big.addr()
    );
    kassert!(big.iter().enumerate().all(|(i, &w)| w == i as u64 * 3));
    kassert!(
        PGFAULT.load(Ordering::Relaxed) > faults,
        "no page was faulted in"
    );
    let during = heap::stats().unwrap_or(before);
    kassert!(during.in_use >= before.in_use + 64 * 1024);
    let addr = big.addr();
    drop(big);
    kassert_eq!(heap::stats().map(|s| s.in_use), Some(before.in_use));
    // Freed memory is handed out again.
    let again =
        AppBox::new([7u64; 8192]).map_err(|_| crate::ktest::TestError::Fail("no room".into()))?;
    kassert_eq!(again.addr(), addr);
    kassert_eq!(again[8191], 7);
    drop(again);
    // Requests past the growth step: the arena grows by a block of their own size.
    let fail = |what: &str| crate::ktest::TestError::Fail(what.into());
    let layout = core::alloc::Layout::from_size_align(4 << 20, 4096).map_err(|_| fail("layout"))?;
    let grown_before = heap::stats().map_or(0, |s| s.grown);
    let big = heap::alloc(layout).ok_or_else(|| fail("no 4 MiB block"))?;
    let grown = heap::stats().map_or(0, |s| s.grown) - grown_before;
    kassert!(
        grown <= 8 << 20,
        "grew {grown:#x} bytes for one 4 MiB block"
    );
    // SAFETY: from `alloc` with this layout, not used again.
    unsafe { heap::dealloc(big, layout) };
    Ok(())
});
