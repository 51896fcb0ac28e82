//! Data-cache maintenance by address range, with the line size CTR_EL0 reports.

use core::arch::asm;

use aarch64_cpu::asm::barrier;

/// The smallest data-cache line of any level, in bytes.
pub fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading the cache type register has no side effects (aarch64-cpu has no type for it).
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr) };
    4 << ((ctr >> 16) & 0xf)
}

/// Invalidates (discards) cached copies of `[start, end)` so memory's contents win.
pub fn invalidate_dcache_range(start: u64, end: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: only used on ranges whose memory already holds the right data (written with
        // the caches off), so discarding cached copies loses nothing.
        unsafe { asm!("dc ivac, {}", in(reg) a) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}
