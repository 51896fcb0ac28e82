//! The aarch64 layer: the only code that uses assembly, system registers and barriers. `esr` is
//! pure decoding and is tested on the host; everything else exists only in the kernel build.

#[cfg(target_os = "none")]
pub mod barrier;
pub mod esr;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod cache;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
mod mmu_selftests;
#[cfg(target_os = "none")]
pub mod power;
#[cfg(target_os = "none")]
pub mod provoke;
#[cfg(target_os = "none")]
mod selftests;
#[cfg(target_os = "none")]
pub mod semihosting;
#[cfg(target_os = "none")]
pub mod simd;
#[cfg(target_os = "none")]
pub mod stack;
#[cfg(target_os = "none")]
pub mod switch;
#[cfg(target_os = "none")]
pub mod timer;

/// The CPU services mm's port asks for (`mm::cpu::CpuOps`), installed by the boot code.
#[cfg(target_os = "none")]
pub static CPU_OPS: crate::mm::cpu::CpuOps = crate::mm::cpu::CpuOps {
    zero_page: cache::zero_page,
    dma_cache_op: cache::dma_cache_op,
    dma_alignment: cache::dma_alignment,
    ticks: timer::ticks,
    tick_frequency: timer::frequency,
    fletcher4: simd::fletcher4,
};
