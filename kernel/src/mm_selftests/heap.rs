//! Self-tests of kmalloc, slab caches, vmalloc and vmalloc'ed kernel stacks on the machine.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::addr::{PhysAddr, PAGE_SIZE};
use crate::arch::aarch64::esr::{self, FaultKind};
use crate::arch::aarch64::exception::catch_exception;
use crate::arch::aarch64::stack::run_on_stack;
use crate::ktest::TestError;
use crate::mm::gfp::Gfp;
use crate::mm::heap::{kfree, kmalloc, kmalloc_caches, slab_backend};
use crate::mm::init::PAGES;
use crate::mm::kmalloc::KMALLOC_SIZES;
use crate::mm::layout;
use crate::mm::slab::{page_owner, KmemCache, PageOwner, SlabBackend, SLAB_DEBUG_ALL};
use crate::mm::vmap::{self, KernelStack};
use crate::{kassert, kassert_eq, ktest};

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

use crate::mm_selftests::page_alloc::free_pages_settled as free_pages_now;

ktest!(collections_work_on_kmalloc, {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..100_000u64 {
        v.push(i ^ 0x55);
    }
    kassert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 ^ 0x55));
    let mut map = BTreeMap::new();
    for i in 0..10_000u32 {
        map.insert(
            i.wrapping_mul(2_654_435_761),
            String::from("x").repeat((i % 40) as usize),
        );
    }
    kassert_eq!(map.len(), 10_000);
    kassert_eq!(
        map.values().map(|s| s.len()).sum::<usize>(),
        (0..10_000).map(|i| i % 40).sum::<usize>()
    );
    let big: Box<[u8]> = alloc::vec![0x3cu8; 1 << 20].into_boxed_slice();
    kassert!(big.iter().all(|&b| b == 0x3c));
    // kmalloc memory is in the linear map, not the boot heap.
    kassert!(layout::virt_to_phys(crate::addr::VirtAddr::new(big.as_ptr() as u64)).is_some());
    Ok(())
});

ktest!(kmalloc_classes_alignment_and_large, {
    let k = kmalloc_caches().ok_or(fail("kmalloc not started"))?;
    for &size in KMALLOC_SIZES.iter() {
        for align in [8usize, 64, 4096] {
            let mut p = k
                .kmalloc_buf_aligned(size, align, Gfp::KERNEL)
                .ok_or(fail("kmalloc failed"))?;
            kassert!(
                (p.as_ptr() as usize).is_multiple_of(align),
                "size {size} align {align}: {:p}",
                p.as_ptr()
            );
            kassert!(k.ksize(p.as_ptr()) >= size);
            let backend = slab_backend().ok_or(fail("no slab backend"))?;
            kassert!(
                matches!(page_owner(backend, p.as_ptr()), PageOwner::Slab(_)),
                "size {size} not from a slab"
            );
            p.fill(0xab);
        }
    }
    let big = kmalloc(100_000, Gfp::KERNEL).ok_or(fail("large kmalloc"))?;
    kassert_eq!(k.ksize(big.as_ptr()), 128 << 10);
    kassert!((big.as_ptr() as usize).is_multiple_of(4096));
    // SAFETY: from kmalloc.
    unsafe { kfree(big.as_ptr()) };
    let dma = k.kmalloc_buf(64, Gfp::DMA).ok_or(fail("DMA kmalloc"))?;
    let pa = layout::virt_to_phys(crate::addr::VirtAddr::new(dma.as_ptr() as u64))
        .ok_or(fail("not linear"))?;
    let dma_end = PAGES
        .with(|a| a.zone(crate::mm::zone::ZoneId::Dma).end_pfn * PAGE_SIZE)
        .unwrap_or(0);
    kassert!(
        pa.as_u64() < dma_end,
        "DMA object at {pa} above {dma_end:#x}"
    );
    drop(dma);
    Ok(())
});

ktest!(empty_slabs_go_back_to_the_page_allocator, {
    let k = kmalloc_caches().ok_or(fail("kmalloc not started"))?;
    k.shrink();
    let before = free_pages_now();
    let objs: Vec<_> = (0..20_000)
        .filter_map(|_| k.kmalloc_buf(256, Gfp::KERNEL))
        .collect();
    kassert_eq!(objs.len(), 20_000);
    kassert!(
        free_pages_now() < before - 1000,
        "20000 objects of 256 bytes took no pages?"
    );
    drop(objs);
    k.shrink();
    kassert_eq!(free_pages_now(), before);
    Ok(())
});

fn debug_cache() -> Result<KmemCache, TestError> {
    let backend: &'static dyn SlabBackend = slab_backend().ok_or(fail("no slab backend"))?;
    Ok(KmemCache::new(
        "ktest-debug-48",
        48,
        8,
        Gfp::KERNEL,
        None,
        SLAB_DEBUG_ALL,
        backend,
    ))
}

ktest!(slub_debug_catches_each_defect, {
    crate::ktest::expected_report(
        "slub_debug_catches_each_defect",
        "slub_debug report",
        slub_debug_defects,
    )
});

/// Each defect slub_debug checks for, made once; each prints its report.
fn slub_debug_defects() -> crate::ktest::TestResult {
    let cache = debug_cache()?;
    let defects = || cache.defects.load(Ordering::Relaxed);
    // Double free (the handle frees the object once, when dropped).
    let a = cache.alloc_object().ok_or(fail("alloc"))?;
    let freed = a.as_ptr();
    drop(a);
    // SAFETY: the second free is the defect under test, which is refused.
    unsafe { cache.free(freed) };
    kassert_eq!(defects(), 1);
    // A pointer into an object, not its start.
    let b = cache.alloc_object().ok_or(fail("alloc"))?;
    let inside = b.as_ptr().as_ptr().wrapping_add(8);
    // SAFETY: the defect under test; refused (not null: 8 bytes into an object).
    unsafe { cache.free(core::ptr::NonNull::new_unchecked(inside)) };
    kassert_eq!(defects(), 2);
    // A write past the end.
    // SAFETY: writing one byte past a 48-byte object: into its right red zone, which slub_debug
    // owns and checks; nothing else lives there.
    unsafe { b.as_ptr().as_ptr().add(48).write(0) };
    drop(b);
    kassert_eq!(defects(), 3);
    // A write before the start.
    let c = cache.alloc_object().ok_or(fail("alloc"))?;
    // SAFETY: into the left red zone, as above.
    unsafe { c.as_ptr().as_ptr().sub(1).write(0) };
    // slub_debug reports the red-zone damage when the object is freed.
    drop(c);
    kassert_eq!(defects(), 4);
    // A write after free, found when the object is handed out again (LIFO free list).
    let d = cache.alloc_object().ok_or(fail("alloc"))?;
    let freed = d.as_ptr();
    drop(d);
    // SAFETY: the object is free but its slab is still ours; this is the bug being caught.
    unsafe { freed.as_ptr().add(20).write(0x11) };
    let again = cache.alloc_object().ok_or(fail("alloc"))?;
    kassert_eq!(again.as_ptr(), freed);
    kassert_eq!(defects(), 5);
    // After all that the cache still works and hands out distinct objects.
    let x = cache.alloc_object().ok_or(fail("alloc"))?;
    kassert!(x.as_ptr() != again.as_ptr());
    drop((x, again));
    kassert_eq!(defects(), 5);
    cache.shrink();
    kassert_eq!(cache.stats().num_slabs, 0);
    Ok(())
}

ktest!(cache_constructor_and_slabinfo, {
    fn ctor(object: &mut [u8]) {
        object[..8].copy_from_slice(&0xc0ffee_u64.to_ne_bytes());
    }
    let backend: &'static dyn SlabBackend = slab_backend().ok_or(fail("no slab backend"))?;
    let cache = KmemCache::new("ktest-ctor", 40, 16, Gfp::KERNEL, Some(ctor), 0, backend);
    let objs: Vec<_> = (0..300).filter_map(|_| cache.alloc_object()).collect();
    kassert_eq!(objs.len(), 300);
    for o in &objs {
        kassert!((o.as_ptr().as_ptr() as usize).is_multiple_of(16));
        kassert_eq!(o[..8], 0xc0ffee_u64.to_ne_bytes());
    }
    let info = cache.slabinfo();
    kassert!(
        info.starts_with("ktest-ctor")
            && info.contains(" : tunables ")
            && info.contains(" : slabdata "),
        "{info}"
    );
    kassert_eq!(cache.stats().active_objs, 300);
    drop(objs);
    cache.shrink();
    kassert_eq!(cache.stats().num_slabs, 0);
    Ok(())
});

ktest!(vmalloc_guard_page_faults_and_is_named, {
    let size = 64 << 10;
    let p = vmap::vzalloc(size).map_err(fail)?;
    let base = p.as_ptr() as u64;
    // SAFETY: the area is ours, mapped and zeroed.
    let bytes = unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), size) };
    kassert!(bytes.iter().all(|&b| b == 0));
    bytes.fill(0x77);
    let guard = base + size as u64;
    let caught = catch_exception(|| {
        // SAFETY: a read of the guard page, expected to fault and be skipped.
        unsafe { crate::arch::aarch64::provoke::read(guard) }
    })
    .ok_or(fail("reading the guard page did not fault"))?;
    kassert_eq!(caught.far, guard);
    kassert!(matches!(
        esr::abort(caught.esr).map(|a| a.kind),
        Some(FaultKind::Translation { level: 3 })
    ));
    let written = catch_exception(|| {
        // SAFETY: a write to the guard page, expected to fault and be skipped.
        unsafe { crate::arch::aarch64::provoke::write(guard + 8) }
    });
    kassert!(written.is_some(), "writing the guard page did not fault");
    let text = core::cell::RefCell::new(String::new());
    let found = vmap::report_fault(guard, &|args| {
        let _ = core::fmt::Write::write_fmt(&mut *text.borrow_mut(), args);
    });
    let text = text.into_inner();
    kassert_eq!(found, Some(false));
    kassert!(
        text.contains(&alloc::format!(
            "guard page after vmalloc area [{base:#x}-{guard:#x})"
        )),
        "{text}"
    );
    // SAFETY: not used afterwards.
    unsafe { vmap::vfree(p.as_ptr()) };
    Ok(())
});

ktest!(vmap_and_vmalloc_to_page, {
    let pages: Vec<PhysAddr> = (0..3)
        .filter_map(|_| PAGES.alloc_pages(Gfp::KERNEL, 0).ok())
        .collect();
    kassert_eq!(pages.len(), 3);
    let v = vmap::vmap(&pages, crate::mm::pgtable::Attrs::KERNEL_RW).map_err(fail)?;
    for (i, pa) in pages.iter().enumerate() {
        // SAFETY: page i of the mapping.
        unsafe { v.as_ptr().add(i * 4096 + 7).write(i as u8 + 1) };
        let linear = layout::phys_to_virt(*pa).as_u64() as *const u8;
        // SAFETY: the same page through the linear map.
        kassert_eq!(unsafe { linear.add(7).read_volatile() }, i as u8 + 1);
        // An address inside the mapping.
        let page = v.as_ptr().wrapping_add(i * 4096);
        kassert_eq!(vmap::vmalloc_to_page(page), Some(pa.pfn()));
    }
    // SAFETY: not used afterwards.
    unsafe { vmap::vunmap(v.as_ptr()) }.map_err(fail)?;
    for pa in pages {
        PAGES.free_pages(pa, 0).map_err(fail)?;
    }
    Ok(())
});

ktest!(vfree_returns_everything_after_the_purge, {
    vmap::purge();
    let before = free_pages_now();
    let mut areas = Vec::new();
    for i in 0..64 {
        areas.push(vmap::vmalloc(4096 * (1 + i % 7)).map_err(fail)?);
    }
    kassert!(free_pages_now() < before);
    for a in areas {
        // SAFETY: not used afterwards.
        unsafe { vmap::vfree(a.as_ptr()) };
    }
    vmap::purge();
    kassert_eq!(free_pages_now(), before);
    Ok(())
});

ktest!(kernel_stack_overflow_is_reported_as_such, {
    let mut stack = KernelStack::new(KernelStack::DEFAULT_SIZE).map_err(fail)?;
    let trapped = crate::ktest::expected_report(
        "kernel_stack_overflow_is_reported_as_such",
        "fault report",
        || {
            run_on_stack(
                &mut stack,
                crate::arch::aarch64::provoke::overflow_stack,
                0,
                true,
            )
        },
    )
    .err()
    .ok_or(fail("the recursion returned"))?;
    kassert!(
        trapped.far < stack.bottom() && trapped.far >= stack.bottom() - PAGE_SIZE,
        "FAR {:#x}",
        trapped.far
    );
    kassert!(
        vmap::is_stack_guard(trapped.far),
        "not seen as a stack guard"
    );
    kassert!(matches!(
        esr::abort(trapped.esr).map(|a| a.kind),
        Some(FaultKind::Translation { .. })
    ));
    // And a call that fits returns normally on the same stack.
    extern "C" fn shallow(n: usize) {
        core::hint::black_box(n);
    }
    kassert!(run_on_stack(&mut stack, shallow, 5, true).is_ok());
    Ok(())
});
