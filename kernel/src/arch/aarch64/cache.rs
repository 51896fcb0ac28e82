//! Data-cache maintenance by address range, with the line size CTR_EL0 reports. Owns only the
//! instructions; must never decide on its own which memory to discard.

use core::arch::asm;

use aarch64_cpu::asm::barrier;

/// The smallest data-cache line of any level, in bytes.
pub fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading the cache type register has no side effects (aarch64-cpu has no type for it).
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr) };
    4 << ((ctr >> 16) & 0xf)
}

/// The alignment a buffer needs so that no cache line of any level is shared with other data
/// (CTR_EL0.CWG, the cache writeback granule; 2 KiB, the architectural maximum, when it reads 0).
pub fn dma_alignment() -> u64 {
    let ctr: u64;
    // SAFETY: reading the cache type register has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr) };
    match (ctr >> 24) & 0xf {
        0 => 2048,
        cwg => (4 << cwg).max(dcache_line()),
    }
}

/// Invalidates (discards) cached copies of `[start, end)` so memory's contents win.
///
/// # Safety
/// Dirty data in the range is lost: the caller must know memory holds what it needs (written
/// with the caches off, or not needed at all).
pub unsafe fn invalidate_dcache_range(start: u64, end: u64) {
    // SAFETY: the caller vouches that discarding cached copies of the range loses nothing.
    unsafe { dma_cache_op(CacheOp::Invalidate, start, end.saturating_sub(start)) }
}

/// Cache maintenance for DMA (mm's port type): Clean is DC CVAC, Invalidate DC IVAC,
/// CleanInvalidate DC CIVAC.
pub use crate::mm::cpu::CacheOp;

/// Performs `op` on every line of `[start, start + len)` and waits for it (DSB SY).
///
/// # Safety
/// `Invalidate` discards dirty data in the range (partial lines at its ends included): the
/// caller must own whole lines or accept that.
pub unsafe fn dma_cache_op(op: CacheOp, start: u64, len: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    let end = start + len;
    while a < end {
        // SAFETY: maintenance on memory the caller owns; the caller vouches for invalidation.
        unsafe {
            match op {
                CacheOp::Clean => asm!("dc cvac, {}", in(reg) a),
                CacheOp::Invalidate => asm!("dc ivac, {}", in(reg) a),
                CacheOp::CleanInvalidate => asm!("dc civac, {}", in(reg) a),
            }
        }
        a += line;
    }
    barrier::dsb(barrier::SY);
}

/// Zeroes a 4 KiB page of Normal cacheable memory with DC ZVA (a cache line of zeroes at a time,
/// without reading memory), or with plain stores where the CPU forbids DC ZVA. The page is
/// borrowed exclusively, aligned by its type, and (as every Rust value) Normal memory.
pub fn zero_page(page: &mut crate::mm::cpu::PageBytes) {
    let va = page.0.as_mut_ptr() as u64;
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid) };
    if dczid & (1 << 4) == 0 {
        let block = 4u64 << (dczid & 0xf);
        let mut a = va;
        if block == 64 {
            // The usual line size: sixteen lines (1 KiB) an iteration, offsets as immediates.
            while a < va + 4096 {
                // SAFETY: inside the caller's page: 16 * 64 bytes from a 1 KiB-aligned address.
                unsafe {
                    asm!(
                        "dc zva, {a}",
                        "add {t}, {a}, #64", "dc zva, {t}",
                        "add {t}, {a}, #128", "dc zva, {t}",
                        "add {t}, {a}, #192", "dc zva, {t}",
                        "add {t}, {a}, #256", "dc zva, {t}",
                        "add {t}, {a}, #320", "dc zva, {t}",
                        "add {t}, {a}, #384", "dc zva, {t}",
                        "add {t}, {a}, #448", "dc zva, {t}",
                        "add {t}, {a}, #512", "dc zva, {t}",
                        "add {t}, {a}, #576", "dc zva, {t}",
                        "add {t}, {a}, #640", "dc zva, {t}",
                        "add {t}, {a}, #704", "dc zva, {t}",
                        "add {t}, {a}, #768", "dc zva, {t}",
                        "add {t}, {a}, #832", "dc zva, {t}",
                        "add {t}, {a}, #896", "dc zva, {t}",
                        "add {t}, {a}, #960", "dc zva, {t}",
                        a = in(reg) a, t = out(reg) _
                    )
                };
                a += 1024;
            }
        } else if block <= 1024 {
            // Four blocks an iteration (blocks are at most 2 KiB; a page holds a multiple of 4).
            while a < va + 4096 {
                // SAFETY: inside the caller's page: 4 * block <= 4096 and the page is aligned.
                unsafe {
                    asm!(
                        "dc zva, {a}",
                        "add {t}, {a}, {b}", "dc zva, {t}",
                        "add {t}, {t}, {b}", "dc zva, {t}",
                        "add {t}, {t}, {b}", "dc zva, {t}",
                        a = in(reg) a, b = in(reg) block, t = out(reg) _
                    )
                };
                a += 4 * block;
            }
        } else {
            while a < va + 4096 {
                // SAFETY: inside the caller's page.
                unsafe { asm!("dc zva, {}", in(reg) a) };
                a += block;
            }
        }
    } else {
        let mut a = va;
        while a < va + 4096 {
            // SAFETY: inside the caller's page; 64 bytes per iteration.
            unsafe {
                asm!(
                    "stp xzr, xzr, [{a}]", "stp xzr, xzr, [{a}, #16]",
                    "stp xzr, xzr, [{a}, #32]", "stp xzr, xzr, [{a}, #48]",
                    a = in(reg) a
                )
            };
            a += 64;
        }
    }
}
