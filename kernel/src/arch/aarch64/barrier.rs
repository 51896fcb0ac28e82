//! Memory barriers for drivers, with Linux's names and arm64 meanings: ordering between the CPU
//! and devices that share memory (rings in DMA buffers) and device registers.
#![forbid(unsafe_code)]

use aarch64_cpu::asm::barrier;

/// Orders earlier stores to DMA memory before later ones, as a device sees them (`dmb oshst`).
#[inline(always)]
pub fn dma_wmb() {
    barrier::dmb(barrier::OSHST);
}

/// Orders earlier loads from DMA memory before later ones (`dmb oshld`).
#[inline(always)]
pub fn dma_rmb() {
    barrier::dmb(barrier::OSHLD);
}

/// Completes earlier stores before a later register write (a doorbell): `dsb st`.
#[inline(always)]
pub fn wmb() {
    barrier::dsb(barrier::ST);
}
