//! The processor's side of interrupts: masking them (PSTATE.I), waiting for one (`WFI`), the
//! GICv3 CPU interface's system registers (acknowledge, end of interrupt, priority mask, group
//! enable), and running a handler on the interrupt stack. Must never decide what an interrupt
//! means or which handler runs (that is kernel/src/irq.rs and the controller drivers).

use core::arch::{asm, global_asm};

/// What [`local_irq_save`] found: whether interrupts were unmasked, to put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "hand it back to local_irq_restore"]
pub struct IrqFlags(u64);

/// PSTATE.I in DAIF's layout.
const DAIF_I: u64 = 1 << 7;

/// Unmasks IRQs on this CPU.
#[inline(always)]
pub fn local_irq_enable() {
    // SAFETY: clears PSTATE.I; the vectors are installed before the boot first calls this, and
    // the compiler barrier (no `nomem`) keeps memory accesses of a critical section before it.
    unsafe { asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Masks IRQs on this CPU.
#[inline(always)]
pub fn local_irq_disable() {
    // SAFETY: sets PSTATE.I; no memory is touched, and the compiler barrier keeps the critical
    // section's accesses after it.
    unsafe { asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

/// Masks IRQs and says whether they were unmasked (Linux's `local_irq_save`).
#[inline(always)]
pub fn local_irq_save() -> IrqFlags {
    let daif: u64;
    // SAFETY: reads DAIF, then sets PSTATE.I; as `local_irq_disable`.
    unsafe {
        asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nostack, preserves_flags))
    };
    IrqFlags(daif & DAIF_I)
}

/// Puts PSTATE.I back as [`local_irq_save`] found it.
#[inline(always)]
pub fn local_irq_restore(flags: IrqFlags) {
    if flags.0 & DAIF_I == 0 {
        local_irq_enable();
    }
}

/// Whether IRQs are masked on this CPU.
#[inline(always)]
pub fn irqs_disabled() -> bool {
    let daif: u64;
    // SAFETY: reads DAIF.
    unsafe { asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack, preserves_flags)) };
    daif & DAIF_I != 0
}

/// Waits for an interrupt (`WFI`): the CPU idles until one is pending, masked or not. Called with
/// IRQs masked, the interrupt is taken when the caller unmasks them, so a wake-up between the
/// caller's check and the `WFI` is never lost.
#[inline(always)]
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` only waits; DSB first, so the writes before it are visible to whoever
    // wakes us.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// The GICv3 CPU interface, through its system registers (ICC_*_EL1).
pub mod gicv3 {
    use core::arch::asm;

    /// Sets ICC_SRE_EL1.SRE (system-register access to the CPU interface) and says whether it
    /// stuck: it does not where the CPU has no GICv3 interface or EL2 did not allow it.
    pub fn enable_system_registers() -> bool {
        // ID_AA64PFR0_EL1.GIC (bits 27:24): 0 means no system-register interface at all, and
        // touching ICC_SRE_EL1 would be undefined.
        let pfr0: u64;
        // SAFETY: reads an ID register.
        unsafe { asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
        if (pfr0 >> 24) & 0xf == 0 {
            return false;
        }
        let sre: u64;
        // SAFETY: the CPU has the interface (checked above); sets SRE, reads it back.
        unsafe {
            asm!(
                "mrs {t}, S3_0_C12_C12_5",
                "orr {t}, {t}, #1",
                "msr S3_0_C12_C12_5, {t}",
                "isb",
                "mrs {t}, S3_0_C12_C12_5",
                t = out(reg) sre,
                options(nostack)
            )
        };
        sre & 1 == 1
    }

    /// Priority mask (ICC_PMR_EL1): interrupts of higher priority (lower value) than `mask` are
    /// signalled.
    pub fn set_priority_mask(mask: u8) {
        // SAFETY: writes the priority mask of an enabled interface.
        unsafe { asm!("msr S3_0_C4_C6_0, {}", in(reg) mask as u64, options(nostack)) };
    }

    /// Enables group 1 interrupts (ICC_IGRPEN1_EL1), with no preemption grouping (ICC_BPR1_EL1
    /// 0) and EOI that also deactivates (ICC_CTLR_EL1.EOImode 0).
    pub fn enable_group1() {
        // SAFETY: CPU interface configuration of an enabled interface.
        unsafe {
            asm!(
                "msr S3_0_C12_C12_3, xzr",    // ICC_BPR1_EL1
                "mrs {t}, S3_0_C12_C12_4",    // ICC_CTLR_EL1
                "bic {t}, {t}, #2",           // EOImode 0
                "msr S3_0_C12_C12_4, {t}",
                "mov {t}, #1",
                "msr S3_0_C12_C12_7, {t}",    // ICC_IGRPEN1_EL1
                "isb",
                t = out(reg) _,
                options(nostack)
            )
        };
    }

    /// Acknowledges the highest-priority pending group 1 interrupt (ICC_IAR1_EL1): its ID, or
    /// 1023 when none is pending.
    #[inline]
    pub fn acknowledge() -> u32 {
        let iar: u64;
        // SAFETY: reading IAR1 acknowledges an interrupt; the caller ends it with `end`.
        unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) iar, options(nostack)) };
        (iar & 0xff_ffff) as u32
    }

    /// Ends (and deactivates) interrupt `id` (ICC_EOIR1_EL1).
    #[inline]
    pub fn end(id: u32) {
        // SAFETY: ends an interrupt `acknowledge` returned.
        unsafe { asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) id as u64, options(nostack)) };
    }

    /// This CPU's affinity (MPIDR_EL1's Aff3.Aff2.Aff1.Aff0) in GICR_TYPER's layout (bits 63:32).
    pub fn affinity() -> u64 {
        let mpidr = super::super::cpu::mpidr();
        ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff)
    }
}

global_asm!(
    r#"
.section .text.call_on_stack, "ax"
// arch_call_on_stack(top, f, arg): f(arg) on the stack whose top is `top`, then back. For
// interrupt handlers, which never trap out of it (unlike run_on_stack, whose recovery state an
// interrupt must leave alone). x29 (callee-saved) keeps the old stack.
.global arch_call_on_stack
arch_call_on_stack:
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    mov     sp, x0
    mov     x0, x2
    blr     x1
    mov     sp, x29
    ldp     x29, x30, [sp], #16
    ret
"#
);

extern "C" {
    fn arch_call_on_stack(top: u64, f: extern "C" fn(usize), arg: usize);
}

/// Runs `f(arg)` with the stack pointer at `top`.
///
/// # Safety
/// `top` is the 16-byte aligned top of a mapped stack that nothing else uses while `f` runs,
/// large enough for `f`.
pub unsafe fn call_on_stack(top: u64, f: extern "C" fn(usize), arg: usize) {
    // SAFETY: the caller's promise about the stack; f is an ordinary function.
    unsafe { arch_call_on_stack(top, f, arg) }
}
