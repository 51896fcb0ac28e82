//! `run=bench`: micro-benchmarks of the memory manager, in instructions. Run under QEMU with
//! `-icount shift=0` (`make bench`), where one instruction takes exactly 1 ns of virtual time, so
//! the generic timer counts instructions deterministically. Each result is printed as a table row
//! and as one machine-readable line `bench <name> <value> <unit>`.

use crate::kernel::Kernel;
use crate::runtime::{Job, JobStatus};

pub const JOB: Job = Job {
    name: "bench",
    about: "memory-manager micro-benchmarks (use make bench)",
    main: bench,
    options: &[],
};

/// One measurement: total counter ticks over `iterations`, as instructions per iteration.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn per_iteration(ticks: u64, frequency: u64, iterations: u64) -> u64 {
    // Under -icount shift=0 a tick lasts 1e9 / frequency instructions.
    (ticks as u128 * 1_000_000_000 / frequency as u128 / iterations as u128) as u64
}

#[cfg(target_os = "none")]
fn bench(kernel: &'static Kernel) -> JobStatus {
    use crate::addr::{PhysAddr, VirtAddr};
    use crate::arch::aarch64::timer;
    use crate::mm::layout::VMALLOC_START;
    use crate::mm::pgtable::Attrs;

    // Only under -icount shift=0 (scripts/qemu-run's ICOUNT=1 says so with `icount`) is a
    // nanosecond of virtual time an instruction; otherwise the figures are host-dependent time.
    let unit = if kernel.options.icount {
        "insn"
    } else {
        log::warn!(
            "bench: QEMU runs without -icount shift=0 (make bench uses it): figures are nanoseconds of virtual time, not instructions"
        );
        "ns"
    };
    let mut results: alloc::vec::Vec<(&str, u64, &str)> = alloc::vec::Vec::new();
    let mut guard = crate::mm::kspace::KERNEL_PT.lock();
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
        unit,
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
    results.push(("pgtable.map_2m", per_iteration(t1 - t0, freq, B), unit));
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
        results.push((name, per_iteration(t1 - t0, freq, P), unit));
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
        results.push(("slab.kmalloc64", per_iteration(t1 - t0, freq, S), unit));
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
            results.push(("slab.cache", per_iteration(t1 - t0, freq, S), unit));
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
        results.push(("vmalloc.64k", per_iteration(t1 - t0, freq, V), unit));
    }

    // Demand-zero faults: the first write to each page of a lazy region (fault, zeroing, mapping).
    {
        const PAGES_N: u64 = 1024;
        use crate::mm::app_space::Region;
        if let Ok(region) = Region::map(PAGES_N * 4096, crate::mm::vma::Prot::RW, "bench") {
            let t0 = timer::ticks();
            for i in 0..PAGES_N {
                region.write_u64(i * 4096, 1);
            }
            let t1 = timer::ticks();
            results.push((
                "fault.demand_zero",
                per_iteration(t1 - t0, freq, PAGES_N),
                unit,
            ));
            drop(region);
        }
    }

    if crate::mm::swapfile::SWAP.active() {
        swap_workload(&mut results, freq, unit);
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

/// The swap workload (with a swap disk attached; `make bench` runs it at 256 MiB with 512 MiB of
/// swap): a 512 MiB lazy region, phase 1 writes a page-unique pattern into every 64-bit word in
/// order, phase 2 reads every word back in order and checks it. Reports working-set MiB per
/// second of virtual time for each phase, pages per disk write, and the CPU's instructions per
/// page swapped out and in with the device waits taken out.
#[cfg(target_os = "none")]
fn swap_workload(
    results: &mut alloc::vec::Vec<(&'static str, u64, &'static str)>,
    freq: u64,
    unit: &'static str,
) {
    use crate::arch::aarch64::timer;
    use crate::mm::vmstat::{PSWPIN, PSWPOUT};
    use crate::mm::vmstat::{SWAPIN_TICKS, SWAPOUT_TICKS};
    use core::sync::atomic::Ordering::Relaxed;

    const SIZE: u64 = 512 << 20;
    let Ok(base) = crate::mm::app_space::mmap(SIZE, crate::mm::vma::Prot::RW, "swap-bench") else {
        log::error!("bench: no room for the swap workload's region");
        return;
    };
    let word = |addr: u64| (addr >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ addr;
    #[derive(Clone, Copy)]
    struct Snap {
        ticks: u64,
        pswpout: u64,
        pswpin: u64,
        out_ticks: u64,
        in_ticks: u64,
        writes: u64,
        out_wait: u64,
        in_wait: u64,
    }
    let snap = || {
        // The swap disk's waits: its writes are swap-outs, its reads swap-ins.
        let disk = crate::mm::swapfile::SWAP.disk_stats().unwrap_or_default();
        Snap {
            ticks: timer::ticks(),
            pswpout: PSWPOUT.load(Relaxed),
            pswpin: PSWPIN.load(Relaxed),
            out_ticks: SWAPOUT_TICKS.load(Relaxed),
            in_ticks: SWAPIN_TICKS.load(Relaxed),
            writes: disk.write_requests,
            out_wait: disk.write_wait_ticks,
            in_wait: disk.read_wait_ticks,
        }
    };
    // The application's loops, a page at a time as a C program's would compile: the page
    // term once per page, the words in a loop the compiler may vectorise (the region is
    // memory the compiler cannot see used elsewhere, so every store and load happens).
    let s0 = snap();
    for page in (base..base + SIZE).step_by(crate::addr::PAGE_SIZE as usize) {
        // SAFETY: a page inside the region just created, which nothing else references.
        let words = unsafe { core::slice::from_raw_parts_mut(page as *mut u64, 512) };
        for (i, w) in words.iter_mut().enumerate() {
            *w = word(page + i as u64 * 8);
        }
    }
    let s1 = snap();
    let mut bad = 0u64;
    for page in (base..base + SIZE).step_by(crate::addr::PAGE_SIZE as usize) {
        // SAFETY: as above.
        let words = unsafe { core::slice::from_raw_parts(page as *const u64, 512) };
        for (i, &w) in words.iter().enumerate() {
            bad += (w != word(page + i as u64 * 8)) as u64;
        }
    }
    let s2 = snap();
    let _ = crate::mm::app_space::munmap(base, SIZE);
    if bad != 0 {
        log::error!("bench: the swap workload read back {bad} wrong word(s)");
        return;
    }
    // Virtual time in ns under -icount shift=0: ticks * 1e9 / freq.
    let mib_s = |ticks: u64| (SIZE >> 20) as u128 * freq as u128 / ticks.max(1) as u128;
    results.push(("swap.out_mib_s", mib_s(s1.ticks - s0.ticks) as u64, "MiB/s"));
    results.push(("swap.in_mib_s", mib_s(s2.ticks - s1.ticks) as u64, "MiB/s"));
    let (outs, ins) = (s2.pswpout - s0.pswpout, s2.pswpin - s0.pswpin);
    results.push(("swap.pswpout", outs, "pages"));
    results.push(("swap.pswpin", ins, "pages"));
    let writes = s2.writes - s0.writes;
    results.push(("swap.pages_per_write", outs / writes.max(1), "pages"));
    // CPU work only: the driver's polling for the device is taken out of each side.
    let out_cpu = (s2.out_ticks - s0.out_ticks).saturating_sub(s2.out_wait - s0.out_wait);
    let in_cpu = (s2.in_ticks - s0.in_ticks).saturating_sub(s2.in_wait - s0.in_wait);
    results.push((
        "swap.out_insn_per_page",
        per_iteration(out_cpu, freq, outs.max(1)),
        unit,
    ));
    results.push((
        "swap.in_insn_per_page",
        per_iteration(in_cpu, freq, ins.max(1)),
        unit,
    ));
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
