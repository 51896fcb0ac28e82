//! What the boot established, shared read-only with jobs and self-tests: the boot facts, the
//! machine description and the command line. Set once by `kernel_main`; never changed afterwards.
#![forbid(unsafe_code)]

use spin::Once;

use crate::addr::{PhysAddr, PhysRange};
use crate::cmdline::BootOptions;
use crate::machine::Machine;
use crate::mm::layout::KernelImage;

/// Facts only the entry code knows.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// The device tree's address, from `x0`.
    pub dtb: PhysAddr,
    /// The image from its first byte to the end of BSS, in RAM (where the loader put it).
    pub image: PhysRange,
    /// The image's sections where they run (the high half).
    pub kimage: KernelImage,
    /// Exception level at entry (2 from the Pi firmware or QEMU with virtualization, else 1).
    pub entry_el: u8,
    /// The generic timer's count at the image's first instruction.
    pub entry_ticks: u64,
}

pub struct Kernel {
    pub boot: BootInfo,
    pub machine: Machine,
    pub options: BootOptions,
}

static KERNEL: Once<Kernel> = Once::new();

/// Publishes the boot's results. Only the first call has an effect.
pub fn publish(kernel: Kernel) -> &'static Kernel {
    KERNEL.call_once(|| kernel)
}

/// The published kernel state, once `kernel_main` has set it.
pub fn get() -> Option<&'static Kernel> {
    KERNEL.get()
}
