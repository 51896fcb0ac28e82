//! `run=bench`: micro-benchmarks of the memory manager, in instructions. Run under QEMU with
//! `-icount shift=0` (`make bench`), where one instruction takes exactly 1 ns of virtual time, so
//! the generic timer counts instructions deterministically. Each result is printed as a table row
//! and as one machine-readable line `bench <name> <value> <unit>`.

use super::{Job, JobStatus};
use crate::kernel::Kernel;

pub const JOB: Job = Job {
    name: "bench",
    about: "memory-manager micro-benchmarks (use make bench)",
    main: bench,
};

/// One measurement: total counter ticks over `iterations`, as instructions per iteration.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn per_iteration(ticks: u64, frequency: u64, iterations: u64) -> u64 {
    // Under -icount shift=0 a tick lasts 1e9 / frequency instructions.
    (ticks as u128 * 1_000_000_000 / frequency as u128 / iterations as u128) as u64
}

#[cfg(target_os = "none")]
fn bench(_kernel: &'static Kernel) -> JobStatus {
    use crate::arch::aarch64::{mmu, timer};
    use crate::mm::addr::{PhysAddr, VirtAddr};
    use crate::mm::layout::VMALLOC_START;
    use crate::mm::pgtable::Attrs;

    let mut results: alloc::vec::Vec<(&str, u64, &str)> = alloc::vec::Vec::new();
    let mut guard = mmu::KERNEL_PT.lock();
    let Some(pt) = guard.as_mut() else {
        log::error!("bench: no kernel page table");
        return JobStatus::Failure;
    };
    let freq = timer::frequency();
    let pa = PhysAddr::new(0x4000_0000);

    // 4 KiB map + unmap in a table that stays populated (a neighbour page keeps it alive).
    let base = VirtAddr::new(VMALLOC_START);
    if pt.map(base, pa, 4096, Attrs::KERNEL_RW).is_err() {
        return JobStatus::Failure;
    }
    let va = VirtAddr::new(VMALLOC_START + 4096);
    const N: u64 = 2000;
    let t0 = timer::ticks();
    for _ in 0..N {
        let _ = pt.map(va, pa, 4096, Attrs::KERNEL_RW);
        let _ = pt.unmap(va, 4096);
    }
    let t1 = timer::ticks();
    results.push((
        "pgtable.map_unmap_4k",
        per_iteration(t1 - t0, freq, N),
        "insn",
    ));
    let _ = pt.unmap(base, 4096);

    // 2 MiB block maps, each at a fresh 2 MiB-aligned address (one level-2 table reused).
    const B: u64 = 256;
    let blocks = VirtAddr::new(VMALLOC_START + (1 << 30));
    let t0 = timer::ticks();
    for i in 0..B {
        let _ = pt.map(
            VirtAddr::new(blocks.as_u64() + i * (2 << 20)),
            pa,
            2 << 20,
            Attrs::KERNEL_RW,
        );
    }
    let t1 = timer::ticks();
    results.push(("pgtable.map_2m", per_iteration(t1 - t0, freq, B), "insn"));
    let _ = pt.unmap(blocks, B * (2 << 20));
    drop(guard);

    // Page allocator: alloc+free pairs through the kernel-wide API (lock included).
    use crate::mm::gfp::Gfp;
    use crate::mm::init::PAGES;
    for (name, order) in [("page.alloc_free_o0", 0u8), ("page.alloc_free_o3", 3)] {
        // Warm up: the first pair fills the per-CPU list and initialises a block.
        if let Ok(pa) = PAGES.alloc_pages(Gfp::KERNEL, order) {
            let _ = PAGES.free_pages(pa, order);
        }
        const P: u64 = 4000;
        let t0 = timer::ticks();
        for _ in 0..P {
            match PAGES.alloc_pages(Gfp::KERNEL, order) {
                Ok(pa) => {
                    let _ = PAGES.free_pages(pa, order);
                }
                Err(_) => return JobStatus::Failure,
            }
        }
        let t1 = timer::ticks();
        results.push((name, per_iteration(t1 - t0, freq, P), "insn"));
    }

    // Slab: kmalloc(64)+kfree and a cache's alloc+free (fast paths, after a warm-up), and
    // vmalloc(64 KiB)+vfree.
    if let Some(k) = crate::mm::heap::kmalloc_caches() {
        const S: u64 = 4000;
        if let Some(p) = k.kmalloc(64, Gfp::KERNEL) {
            // SAFETY: from kmalloc.
            unsafe { k.kfree(p.as_ptr()) };
        }
        let t0 = timer::ticks();
        for _ in 0..S {
            if let Some(p) = k.kmalloc(64, Gfp::KERNEL) {
                // SAFETY: from kmalloc, not used again.
                unsafe { k.kfree(core::hint::black_box(p.as_ptr())) };
            }
        }
        let t1 = timer::ticks();
        results.push(("slab.kmalloc64", per_iteration(t1 - t0, freq, S), "insn"));
        if let Some(backend) = crate::mm::heap::slab_backend() {
            let cache =
                crate::mm::slab::KmemCache::new("bench-48", 48, 8, Gfp::KERNEL, None, 0, backend);
            if let Some(p) = cache.alloc() {
                // SAFETY: from this cache.
                unsafe { cache.free(p) };
            }
            let t0 = timer::ticks();
            for _ in 0..S {
                if let Some(p) = cache.alloc() {
                    // SAFETY: from this cache, not used again.
                    unsafe { cache.free(core::hint::black_box(p)) };
                }
            }
            let t1 = timer::ticks();
            results.push(("slab.cache", per_iteration(t1 - t0, freq, S), "insn"));
            cache.shrink();
        }
    }
    {
        const V: u64 = 200;
        let t0 = timer::ticks();
        for _ in 0..V {
            if let Ok(p) = crate::mm::vmap::vmalloc(64 << 10) {
                // SAFETY: not used again.
                unsafe { crate::mm::vmap::vfree(core::hint::black_box(p.as_ptr())) };
            }
        }
        let t1 = timer::ticks();
        results.push(("vmalloc.64k", per_iteration(t1 - t0, freq, V), "insn"));
    }

    // Demand-zero faults: the first write to each page of a lazy region (fault, zeroing, mapping).
    {
        const PAGES_N: u64 = 1024;
        if let Ok(base) = crate::mm::fault::mmap(PAGES_N * 4096, crate::mm::vma::Prot::RW, "bench")
        {
            let t0 = timer::ticks();
            for i in 0..PAGES_N {
                // SAFETY: inside the region just created.
                unsafe { ((base + i * 4096) as *mut u8).write_volatile(1) };
            }
            let t1 = timer::ticks();
            results.push((
                "fault.demand_zero",
                per_iteration(t1 - t0, freq, PAGES_N),
                "insn",
            ));
            let _ = crate::mm::fault::munmap(base, PAGES_N * 4096);
        }
    }

    crate::kprintln!("{:<28} {:>12}  unit", "benchmark", "value");
    for (name, value, unit) in &results {
        crate::kprintln!("{name:<28} {value:>12}  {unit}");
    }
    for (name, value, unit) in &results {
        crate::kprintln!("bench {name} {value} {unit}");
    }
    JobStatus::Success
}

#[cfg(not(target_os = "none"))]
fn bench(_kernel: &'static Kernel) -> JobStatus {
    JobStatus::Failure
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_convert_to_instructions_under_icount() {
        // 62.5 MHz counter: 16 instructions a tick.
        assert_eq!(super::per_iteration(1000, 62_500_000, 10), 1600);
        assert_eq!(super::per_iteration(1, 1_000_000_000, 1), 1);
    }
}
