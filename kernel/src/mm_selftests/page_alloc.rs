//! Self-tests of the page allocator on the running machine: zones against RAM and limits, the
//! hand-over's accounting, every order from every zone, refused bad frees, zeroing, poisoning,
//! and page tables that outgrow the boot pool; and the settled free-page count other tests
//! compare (`free_pages_settled`).

use crate::addr::{PhysAddr, PhysRange, PAGE_SIZE};
use crate::ktest::TestError;
use crate::mm::gfp::Gfp;
use crate::mm::init::{report, PAGES};
use crate::mm::layout;
use crate::mm::memblock::Memblock;
use crate::mm::page_alloc::FreeError;
use crate::mm::zone::{zone_limits, ZoneId, MAX_ORDER};
use crate::{kassert, kassert_eq, ktest};

fn kernel() -> Result<&'static crate::kernel::Kernel, TestError> {
    crate::kernel::get().ok_or(TestError::Fail("kernel state not published".into()))
}

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

/// Free pages once empty slabs and per-CPU lists are back in the buddy lists: what a test that
/// gives back everything it took compares, whatever earlier tests left in the caches (a test's
/// own kmalloc may take a fresh slab, which the cache keeps after the object is freed).
pub(crate) fn free_pages_settled() -> u64 {
    if let Some(k) = crate::mm::heap::kmalloc_caches() {
        k.shrink();
    }
    PAGES
        .with(|a| {
            a.drain_pcp();
            a.free_pages()
        })
        .unwrap_or(0)
}

ktest!(zones_match_ram_and_limits, {
    let k = kernel()?;
    let m = &k.machine;
    let (start, end) = (
        m.memory[0].base.as_u64(),
        m.memory.last().map_or(0, |b| b.end() as u64),
    );
    let limits = zone_limits(m.dma_limit, k.options.zone_dma_bits, start, end);
    let spans = PAGES.with(|a| {
        ZoneId::all().map(|id| {
            let z = a.zone(id);
            (z.start_pfn * PAGE_SIZE, z.end_pfn * PAGE_SIZE, z.present)
        })
    });
    let spans = spans.ok_or(fail("no page allocator"))?;
    kassert_eq!(spans[0].0, start);
    kassert_eq!(spans[0].1, limits.dma_end);
    kassert_eq!(spans[1].1, limits.dma32_end.max(limits.dma_end));
    kassert_eq!(spans[2].1, end);
    let present: u64 = spans.iter().map(|s| s.2).sum();
    kassert_eq!(present * PAGE_SIZE, m.ram_bytes());
    if let Some(limit) = m.dma_limit.filter(|&l| l > start) {
        // RAM reaches below the limit: the DMA zone must not pass it.
        kassert!(
            spans[0].1 <= limit,
            "DMA zone ends at {:#x}, past the DMA limit {limit:#x}",
            spans[0].1
        );
    }
    Ok(())
});

ktest!(memtotal_is_ram_minus_reserved, {
    let k = kernel()?;
    let r = report().ok_or(fail("no init report"))?;
    let reservations: alloc::vec::Vec<PhysRange> = k
        .machine
        .reservations()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let expected_reserved =
        Memblock::new(&k.machine.memory, &reservations).reserved_bytes() + r.metadata_bytes;
    kassert_eq!(r.reserved, expected_reserved);
    let managed = PAGES
        .with(|a| a.managed_pages())
        .ok_or(fail("no page allocator"))?;
    kassert_eq!(managed * PAGE_SIZE, k.machine.ram_bytes() - r.reserved);
    let [(label, total), _, _] = PAGES
        .with(|a| a.meminfo())
        .ok_or(fail("no page allocator"))?;
    kassert_eq!((label, total), ("MemTotal", managed * PAGE_SIZE));
    Ok(())
});

ktest!(every_order_from_every_zone, {
    let k = kernel()?;
    // Allocated before the count: a kmalloc may take a fresh slab page, which the slab keeps.
    let reservations = k.machine.reservations();
    let free_before = free_pages_settled();
    for (gfp, highest) in [
        (Gfp::KERNEL, ZoneId::Normal),
        (Gfp::DMA32, ZoneId::Dma32),
        (Gfp::DMA, ZoneId::Dma),
    ] {
        for order in 0..=MAX_ORDER {
            let Ok(mut pages) = PAGES.alloc_box(gfp | Gfp::NOWARN, order) else {
                // An empty zone (DMA32 on virt) falls back to DMA; order 10 may not be free.
                continue;
            };
            let pa = pages.phys().as_u64();
            let size = pages.size();
            kassert!(
                pa % size == 0,
                "order {order} at {pa:#x} not naturally aligned"
            );
            let zone_end = PAGES
                .with(|a| a.zone(highest).end_pfn.max(a.zone(ZoneId::Dma).end_pfn) * PAGE_SIZE)
                .unwrap_or(0);
            kassert!(
                pa + size <= zone_end,
                "{gfp:?} order {order} at {pa:#x} above {zone_end:#x}"
            );
            let range = PhysRange::new(PhysAddr::new(pa), size);
            kassert!(
                k.machine
                    .bank_of(PhysAddr::new(pa))
                    .is_some_and(|b| b.covers(&range)),
                "not RAM"
            );
            kassert!(
                reservations
                    .iter()
                    .all(|(r, _)| r.intersect(&range).is_none()),
                "reserved"
            );
            // The memory is really ours: write and read back through the linear map (the
            // block escapes to `black_box` between the two, so both really reach memory).
            let bytes = pages.as_mut_slice();
            let words = bytes.len() / 8;
            let word = |i: usize| i * 8..i * 8 + 8;
            for i in [0, words / 2, words - 1] {
                bytes[word(i)].copy_from_slice(&(pa ^ i as u64).to_ne_bytes());
            }
            let bytes = core::hint::black_box(bytes);
            for i in [0, words / 2, words - 1] {
                let mut w = [0u8; 8];
                w.copy_from_slice(&bytes[word(i)]);
                kassert_eq!(u64::from_ne_bytes(w), pa ^ i as u64);
            }
        }
    }
    kassert_eq!(free_pages_settled(), free_before);
    Ok(())
});

ktest!(bad_frees_are_refused_and_change_nothing, {
    let k = kernel()?;
    let pa = PAGES.alloc_pages(Gfp::KERNEL, 2).map_err(fail)?;
    kassert_eq!(
        PAGES.with(|a| a.free(pa, 1)).ok_or(fail("no allocator"))?,
        Err(FreeError::WrongOrder {
            pfn: pa.pfn().as_u64(),
            given: 1,
            allocated: 2
        })
    );
    let inside = PhysAddr::new(pa.as_u64() + PAGE_SIZE);
    kassert!(matches!(
        PAGES.with(|a| a.free(inside, 0)),
        Some(Err(FreeError::NotAllocated(_)))
    ));
    PAGES.free_pages(pa, 2).map_err(fail)?;
    let free = PAGES.with(|a| a.free_pages());
    let again = PAGES.with(|a| a.free(pa, 2)).ok_or(fail("no allocator"))?;
    kassert!(
        matches!(
            again,
            Err(FreeError::DoubleFree(_) | FreeError::NotAllocated(_))
        ),
        "{again:?}"
    );
    kassert_eq!(PAGES.with(|a| a.free_pages()), free);
    let image = k.boot.image.base;
    kassert_eq!(
        PAGES.with(|a| a.free(image, 0)),
        Some(Err(FreeError::Reserved(image.pfn().as_u64())))
    );
    let beyond = PhysAddr::new(k.machine.memory.last().map_or(0, |b| b.end() as u64));
    kassert!(matches!(
        PAGES.with(|a| a.free(beyond, 0)),
        Some(Err(FreeError::NotRam(_)))
    ));
    kassert_eq!(PAGES.with(|a| a.free_pages()), free);
    Ok(())
});

ktest!(zeroed_pages_are_zero, {
    let mut page = PAGES.alloc_box(Gfp::KERNEL, 0).map_err(fail)?;
    // Dirty it so a missing zeroing would show.
    core::hint::black_box(page.as_mut_slice()).fill(0x5c);
    drop(page);
    let zeroed = PAGES.get_zeroed_page(Gfp::KERNEL).map_err(fail)?;
    kassert!(
        zeroed.as_slice().iter().all(|&b| b == 0),
        "get_zeroed_page returned dirty memory"
    );
    Ok(())
});

ktest!(debug_pagealloc_catches_use_after_free, {
    if !kernel()?.options.debug_pagealloc {
        return Err(TestError::Skip("boot with debug_pagealloc".into()));
    }
    let pa = PAGES.alloc_pages(Gfp::KERNEL, 0).map_err(fail)?;
    PAGES.free_pages(pa, 0).map_err(fail)?;
    let before = PAGES.with(|a| a.poison_errors).unwrap_or(0);
    // SAFETY: deliberately writing a free page (it stays mapped in the linear map): the bug the
    // poison exists to catch.
    unsafe {
        (layout::phys_to_virt(pa).as_u64() as *mut u8)
            .add(64)
            .write_volatile(1)
    };
    let again = crate::ktest::expected_report(
        "debug_pagealloc_catches_use_after_free",
        "debug_pagealloc report",
        || PAGES.alloc_pages(Gfp::KERNEL, 0),
    )
    .map_err(fail)?;
    kassert_eq!(again, pa);
    kassert_eq!(PAGES.with(|a| a.poison_errors).unwrap_or(0), before + 1);
    PAGES.free_pages(again, 0).map_err(fail)?;
    Ok(())
});
