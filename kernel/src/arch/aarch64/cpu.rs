//! The processor itself: exception level, identity, interrupt masking and stopping. Must never
//! change the translation regime or caches (that is `mmu` and `cache`).

use aarch64_cpu::asm;
use aarch64_cpu::registers::{CurrentEL, Readable, Writeable, DAIF, MIDR_EL1, MPIDR_EL1};

pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// The stack pointer in use where this is called (for self-tests and reports).
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: copies the stack pointer into a register, nothing else.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp) };
    sp
}

pub fn midr() -> u64 {
    MIDR_EL1.get()
}

pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

/// A name for the core from MIDR_EL1, for the boot log.
pub fn core_name() -> &'static str {
    let midr = midr();
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd04) => "Cortex-A35",
        (0x41, 0xd05) => "Cortex-A55",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd09) => "Cortex-A73",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4f) => "Neoverse-V2",
        (0x41, 0xd0d) => "Cortex-A77",
        (0x41, 0xd41) => "Cortex-A78",
        (0x41, 0xd44) => "Cortex-X1",
        (0x41, 0xd46) => "Cortex-A510",
        (0x41, 0xd47) => "Cortex-A710",
        (0x41, 0xd0f) => "Cortex-A15",
        _ => "unknown core",
    }
}

/// Masks all interrupts and waits forever: the end of the road when nothing can power off.
pub fn halt() -> ! {
    DAIF.write(DAIF::D::Masked + DAIF::A::Masked + DAIF::I::Masked + DAIF::F::Masked);
    loop {
        asm::wfe();
    }
}
