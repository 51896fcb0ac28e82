//! The CPU services the memory manager needs and cannot write portably: zeroing a page, data-cache
//! maintenance for DMA and the alignment it needs, the tick counter, and the vector kernel of the
//! swap checksum. mm defines the port (`CpuOps`); the kernel installs the architecture's table
//! once at boot (`install`), before the page allocator runs, and mm calls through it. This module
//! must never name the arch layer; host builds use the portable table below, so the host tests run
//! the same mm code over simulated memory.
// A named exception to the crate's `deny(unsafe_code)`: the CPU-services port works on raw pages.
#![allow(unsafe_code)]

use super::port::Port;

/// Cache maintenance for DMA, by virtual address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOp {
    /// Write dirty lines back (the device will read).
    Clean,
    /// Discard lines (the device wrote memory).
    Invalidate,
    /// Both (either may happen).
    CleanInvalidate,
}

/// Fletcher's two sums over four lanes: `(a, b, words) -> (a, b)`, as `fletcher4_portable`
/// computes them (`mm::swapfile`); a table entry may do it in vector registers.
pub type Fletcher4 = fn([u64; 4], [u64; 4], &[u64]) -> ([u64; 4], [u64; 4]);

/// A 4 KiB page of memory, page-aligned by its type: what `zero_page` takes, so that a cache
/// line zeroing instruction (which zeroes whole aligned blocks) cannot reach past the borrow.
#[repr(C, align(4096))]
pub struct PageBytes(pub [u8; 4096]);

/// The table of CPU services an architecture provides.
pub struct CpuOps {
    /// Zeroes the page.
    pub zero_page: fn(page: &mut PageBytes),
    /// Performs `op` on every cache line of `[start, start + len)` and waits for it.
    ///
    /// # Safety
    /// `Invalidate` discards dirty data in the range (partial lines at its ends included): the
    /// caller must own whole lines or accept that.
    pub dma_cache_op: unsafe fn(op: CacheOp, start: u64, len: u64),
    /// The alignment a DMA buffer needs so that no cache line is shared with other data.
    pub dma_alignment: fn() -> u64,
    /// A free-running counter (for accounting time spent, never for correctness).
    pub ticks: fn() -> u64,
    /// Ticks per second of `ticks`.
    pub tick_frequency: fn() -> u64,
    /// The swap checksum's inner loop.
    pub fletcher4: Fletcher4,
}

/// Until the kernel installs its table: the portable one on the host; none in the kernel, where
/// a call before `install` is a boot-order bug and panics with a message saying so.
#[cfg(not(target_os = "none"))]
static OPS: Port<CpuOps> = Port::with(&PORTABLE, "mm::cpu (the CPU services)");
#[cfg(target_os = "none")]
static OPS: Port<CpuOps> = Port::new("mm::cpu (the CPU services)");

/// Installs the architecture's table. The kernel calls it once, first thing after the jump to
/// the high half (the table's address must be the one it runs at).
pub fn install(ops: &'static CpuOps) {
    OPS.install(ops);
}

/// The installed table.
#[inline(always)]
pub fn ops() -> &'static CpuOps {
    OPS.get()
}

/// Zeroes the page (see `CpuOps::zero_page`).
#[inline(always)]
pub fn zero_page(page: &mut PageBytes) {
    (ops().zero_page)(page)
}

/// Cache maintenance for DMA (see `CpuOps::dma_cache_op`).
///
/// # Safety
/// As `CpuOps::dma_cache_op`.
#[inline]
pub unsafe fn dma_cache_op(op: CacheOp, start: u64, len: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { (ops().dma_cache_op)(op, start, len) }
}

#[inline]
pub fn dma_alignment() -> u64 {
    (ops().dma_alignment)()
}

#[inline(always)]
pub fn ticks() -> u64 {
    (ops().ticks)()
}

#[inline]
pub fn tick_frequency() -> u64 {
    (ops().tick_frequency)()
}

#[inline]
pub fn fletcher4(a: [u64; 4], b: [u64; 4], words: &[u64]) -> ([u64; 4], [u64; 4]) {
    (ops().fletcher4)(a, b, words)
}

/// Portable versions, for host builds (the tests): plain stores, no caches to maintain, a
/// counter that counts calls.
#[cfg(not(target_os = "none"))]
pub static PORTABLE: CpuOps = CpuOps {
    zero_page: portable_zero_page,
    dma_cache_op: |_, _, _| {},
    dma_alignment: || 64,
    ticks: || {
        static T: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
        T.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
    },
    tick_frequency: || 1_000_000_000,
    fletcher4: super::swapfile::fletcher4_portable,
};

#[cfg(not(target_os = "none"))]
fn portable_zero_page(page: &mut PageBytes) {
    page.0.fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_builds_run_on_the_portable_table() {
        let mut page = alloc::boxed::Box::new(PageBytes([0xa5; 4096]));
        zero_page(&mut page);
        assert!(page.0.iter().all(|&b| b == 0));
        assert!(ticks() < ticks());
        assert_eq!(dma_alignment(), 64);
        let words = [1u64, 2, 3, 4];
        assert_eq!(
            fletcher4([0; 4], [0; 4], &words),
            super::super::swapfile::fletcher4_portable([0; 4], [0; 4], &words)
        );
    }
}
