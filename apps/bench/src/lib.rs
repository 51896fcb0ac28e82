//! `run=bench`: the memory manager's benchmarks, in instructions under QEMU with
//! `-icount shift=0` (`make bench`, which runs it), where one instruction takes exactly 1 ns of
//! virtual time. The kernel's micro-benchmarks (page tables, page allocator, slab, vmalloc,
//! interrupt latency, thread switch and wake-up) run in the kernel through `ferrite::bench`; the rest is this application's own work on its memory,
//! as any program's: demand-zero faults (the first write to each page of a fresh region), and,
//! with a swap disk, the swap workload (a 512 MiB region written and read back through swap).
//! Each result is printed as a table row and as one machine-readable line
//! `bench <name> <value> <unit>`. An application on the public API.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use ferrite::bench::{self, Figure};
use ferrite::mem::{self, Prot, Region};
use ferrite::time::{self, Instant};
use ferrite::{println, proc};

/// The page size of the application's memory.
const PAGE: u64 = 4096;

#[ferrite::main(name = "bench", about = "memory-manager benchmarks (use make bench)")]
fn main() -> Result<(), &'static str> {
    // Only under -icount shift=0 (scripts/qemu-run's ICOUNT=1 says so with `icount`) is a
    // nanosecond of virtual time an instruction; otherwise the figures are host-dependent time.
    let unit = if time::counts_instructions() {
        "insn"
    } else {
        ferrite::log::warn!(
            "bench: QEMU runs without -icount shift=0 (make bench uses it): figures are nanoseconds of virtual time, not instructions"
        );
        "ns"
    };
    let mut results: Vec<Figure> = bench::kernel()?;
    match bench::scheduler() {
        Ok(figures) => results.extend(figures),
        Err(e) => ferrite::log::warn!("bench: interrupts and threads not measured: {e}"),
    }
    results.push(demand_zero(unit)?);
    if mem::swap_totals().0 > 0 {
        swap_workload(&mut results, unit)?;
    }

    println!("{:<28} {:>12}  unit", "benchmark", "value");
    for f in &results {
        println!("{:<28} {:>12}  {}", f.name, f.value, f.unit);
    }
    for f in &results {
        println!("bench {} {} {}", f.name, f.value, f.unit);
    }
    Ok(())
}

/// Nanoseconds (instructions under `-icount shift=0`) per iteration.
fn per_iteration(nanos: u128, iterations: u64) -> u64 {
    (nanos / iterations.max(1) as u128) as u64
}

/// `fault.demand_zero`: the first write to each page of a lazy region (the fault, zeroing the
/// page, mapping it), per page.
fn demand_zero(unit: &'static str) -> Result<Figure, &'static str> {
    const PAGES: u64 = 1024;
    let mut region =
        Region::map(PAGES * PAGE, Prot::RW, "bench").map_err(|_| "no room for a 4 MiB region")?;
    let t0 = Instant::now();
    for i in 0..PAGES {
        region.write_u64(i * PAGE, 1);
    }
    let elapsed = t0.elapsed();
    Ok(Figure {
        name: "fault.demand_zero",
        value: per_iteration(elapsed.as_nanos(), PAGES),
        unit,
    })
}

/// The swap workload (with a swap disk attached; `make bench` runs it at 256 MiB with 512 MiB of
/// swap): a 512 MiB lazy region; phase 1 writes a page-unique pattern into every 64-bit word in
/// order, phase 2 reads every word back in order and checks it. Reports working-set MiB per
/// second of virtual time for each phase, pages per disk write, and the kernel's instructions
/// per page swapped out and in with the device waits taken out.
fn swap_workload(results: &mut Vec<Figure>, unit: &'static str) -> Result<(), &'static str> {
    const SIZE: u64 = 512 << 20;
    let mut region = Region::map(SIZE, Prot::RW, "swap-bench")
        .map_err(|_| "no room for the swap workload's region")?;
    let base = region.start();
    let word = |addr: u64| (addr >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ addr;
    let counter = |name| proc::vmstat_value(name).unwrap_or(0);
    let snap = || {
        (
            Instant::now(),
            counter("pswpout"),
            counter("pswpin"),
            bench::swap_cost(),
        )
    };

    // A page at a time, as a C program's loops would compile: the page's term once, the words
    // in a loop the compiler may vectorise.
    let s0 = snap();
    for (p, page) in region.words_mut().chunks_exact_mut(512).enumerate() {
        let addr = base + p as u64 * PAGE;
        for (i, w) in page.iter_mut().enumerate() {
            *w = word(addr + i as u64 * 8);
        }
    }
    let s1 = snap();
    let mut bad = 0u64;
    for (p, page) in region.words().chunks_exact(512).enumerate() {
        let addr = base + p as u64 * PAGE;
        for (i, &w) in page.iter().enumerate() {
            bad += (w != word(addr + i as u64 * 8)) as u64;
        }
    }
    let s2 = snap();
    drop(region);
    if bad != 0 {
        ferrite::log::error!("bench: the swap workload read back {bad} wrong word(s)");
        return Err("the swap workload read back wrong words");
    }

    let mib_s = |from: Instant, to: Instant| {
        let nanos = to.duration_since(from).as_nanos().max(1);
        ((SIZE >> 20) as u128 * 1_000_000_000 / nanos) as u64
    };
    let fig = |name, value, unit| Figure { name, value, unit };
    results.push(fig("swap.out_mib_s", mib_s(s0.0, s1.0), "MiB/s"));
    results.push(fig("swap.in_mib_s", mib_s(s1.0, s2.0), "MiB/s"));
    let (outs, ins) = (s2.1 - s0.1, s2.2 - s0.2);
    results.push(fig("swap.pswpout", outs, "pages"));
    results.push(fig("swap.pswpin", ins, "pages"));
    let (c0, c2) = (s0.3, s2.3);
    let writes = c2.disk_writes - c0.disk_writes;
    results.push(fig("swap.pages_per_write", outs / writes.max(1), "pages"));
    // The kernel's CPU work only: the driver's waits for the device are taken out of each side.
    let out_cpu = (c2.swapout_ns - c0.swapout_ns)
        .saturating_sub(c2.disk_write_wait_ns - c0.disk_write_wait_ns);
    let in_cpu =
        (c2.swapin_ns - c0.swapin_ns).saturating_sub(c2.disk_read_wait_ns - c0.disk_read_wait_ns);
    results.push(fig(
        "swap.out_insn_per_page",
        per_iteration(out_cpu as u128, outs),
        unit,
    ));
    results.push(fig(
        "swap.in_insn_per_page",
        per_iteration(in_cpu as u128, ins),
        unit,
    ));
    Ok(())
}
