//! The memory manager's micro-benchmarks, run inside the kernel: page-table map/unmap, the page
//! allocator, slab and kmalloc, vmalloc (what no application can reach, as Linux's in-kernel
//! `test_vmalloc` and page-allocator benchmarks run in the kernel), and the kernel's own
//! accounting of swap work, which a benchmark program reads before and after its workload. Owns
//! the measurements and their conversion to instructions; prints nothing and decides nothing
//! about what is good: `apps/bench` (on the public API, `ferrite::bench`) runs and reports them.
//! Under QEMU with `-icount shift=0` (`make bench`; the boot option `icount` says so) one
//! nanosecond of virtual time is one instruction, so the figures are deterministic.

#[cfg(target_os = "none")]
use alloc::vec::Vec;

/// One measurement: `value` in `unit` (`insn` per iteration under `-icount shift=0`, else
/// `ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    pub name: &'static str,
    pub value: u64,
    pub unit: &'static str,
}

impl Figure {
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    fn new(name: &'static str, value: u64, unit: &'static str) -> Figure {
        Figure { name, value, unit }
    }
}

/// Whether QEMU runs with `-icount shift=0` (the boot option `icount`, which `make bench`
/// passes), so that a nanosecond of virtual time is one instruction.
pub fn counts_instructions() -> bool {
    crate::kernel::get().is_some_and(|k| k.options.icount)
}

/// The unit of a per-iteration figure: `insn` when [`counts_instructions`], else `ns`.
pub fn unit() -> &'static str {
    if counts_instructions() {
        "insn"
    } else {
        "ns"
    }
}

/// Total counter ticks over `iterations`, as nanoseconds (instructions under `-icount
/// shift=0`) per iteration.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn per_iteration(ticks: u64, frequency: u64, iterations: u64) -> u64 {
    (ticks as u128 * 1_000_000_000 / frequency.max(1) as u128 / iterations.max(1) as u128) as u64
}

/// The kernel's time spent on swap so far, in nanoseconds of virtual time, and the swap disk's
/// requests and waits: a benchmark takes one before and one after its workload, and the
/// differences give the CPU's work per page swapped with the device's waits taken out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapCost {
    /// Time in page-out (reclaim's writes to swap), device waits included.
    pub swapout_ns: u64,
    /// Time in swap-in faults, device waits included.
    pub swapin_ns: u64,
    /// Write requests the swap disk carried.
    pub disk_writes: u64,
    /// Time the swap disk's writes spent waiting for the device.
    pub disk_write_wait_ns: u64,
    /// Time the swap disk's reads spent waiting for the device.
    pub disk_read_wait_ns: u64,
}

/// The swap accounting now (zeros without swap).
#[cfg(target_os = "none")]
pub fn swap_cost() -> SwapCost {
    use crate::mm::vmstat::{SWAPIN_TICKS, SWAPOUT_TICKS};
    use core::sync::atomic::Ordering::Relaxed;
    let freq = crate::arch::aarch64::timer::frequency().max(1) as u128;
    let ns = |ticks: u64| (ticks as u128 * 1_000_000_000 / freq) as u64;
    let disk = crate::mm::swapfile::SWAP.disk_stats().unwrap_or_default();
    SwapCost {
        swapout_ns: ns(SWAPOUT_TICKS.load(Relaxed)),
        swapin_ns: ns(SWAPIN_TICKS.load(Relaxed)),
        disk_writes: disk.write_requests,
        disk_write_wait_ns: ns(disk.write_wait_ticks),
        disk_read_wait_ns: ns(disk.read_wait_ticks),
    }
}

/// Runs the micro-benchmarks (in kernel context: they allocate from the kernel's own heap) and
/// returns their figures, or what stopped them.
#[cfg(target_os = "none")]
pub fn run() -> Result<Vec<Figure>, &'static str> {
    use crate::addr::{PhysAddr, VirtAddr};
    use crate::arch::aarch64::timer;
    use crate::mm::layout::VMALLOC_START;
    use crate::mm::pgtable::Attrs;

    let unit = unit();
    let mut results: Vec<Figure> = Vec::new();
    let mut guard = crate::mm::kspace::KERNEL_PT.lock();
    let Some(pt) = guard.as_mut() else {
        return Err("no kernel page table");
    };
    let freq = timer::frequency();
    let pa = PhysAddr::new(0x4000_0000);

    // 4 KiB map + unmap in a table that stays populated (a neighbour page keeps it alive).
    let base = VirtAddr::new(VMALLOC_START);
    if pt.map(base, pa, 4096, Attrs::KERNEL_RW).is_err() {
        return Err("the kernel page table refused a mapping");
    }
    let va = VirtAddr::new(VMALLOC_START + 4096);
    const N: u64 = 2000;
    let t0 = timer::ticks();
    for _ in 0..N {
        let _ = pt.map(va, pa, 4096, Attrs::KERNEL_RW);
        let _ = pt.unmap(va, 4096);
    }
    let t1 = timer::ticks();
    results.push(Figure::new(
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
    results.push(Figure::new(
        "pgtable.map_2m",
        per_iteration(t1 - t0, freq, B),
        unit,
    ));
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
                Err(_) => return Err("the page allocator failed an allocation"),
            }
        }
        let t1 = timer::ticks();
        results.push(Figure::new(name, per_iteration(t1 - t0, freq, P), unit));
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
        results.push(Figure::new(
            "slab.kmalloc64",
            per_iteration(t1 - t0, freq, S),
            unit,
        ));
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
            results.push(Figure::new(
                "slab.cache",
                per_iteration(t1 - t0, freq, S),
                unit,
            ));
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
        results.push(Figure::new(
            "vmalloc.64k",
            per_iteration(t1 - t0, freq, V),
            unit,
        ));
    }

    Ok(results)
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
