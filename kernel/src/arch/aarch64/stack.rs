//! Running code on another stack (a vmalloc'ed `KernelStack`, or the application's stack): the
//! call runs with SP_EL0 as its stack pointer, so exceptions are taken on the boot stack (SP_EL1)
//! and a stack overflow can still be reported. A call armed with `trap` that overflows is
//! abandoned and reported instead of stopping the kernel (self-tests use this). Calls nest (one
//! made on a stack of ours moves SP_EL0 and puts it back); only the innermost can be trapped.
//! One CPU.
//! An abandoned call does not unwind: whatever locks it held stay held, so only calls that hold
//! none (the self-tests' recursion) may be trapped.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::mm::vmap::KernelStack;

global_asm!(
    r#"
.section .text.run_on_stack, "ax"
.global arch_run_on_stack
// x0: new stack top, x1: function (extern "C" fn(usize)), x2: its argument.
// Returns 0 when the function returned, 1 when a trapped fault abandoned it.
// Called on the boot stack (SPSel 1: the call switches to SP_EL0) or already on a stack of ours
// (SPSel 0: SP_EL0 itself moves, and comes back afterwards).
arch_run_on_stack:
    // Every callee-saved register, d8-d15 and FPCR included: a trapped call is abandoned, so
    // the caller gets them back from here, not from the function that would have restored them.
    stp     x29, x30, [sp, #-176]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x29, sp
    mrs     x19, spsel
    mov     x20, sp
    adrp    x9, ARCH_RECOVER_SP
    add     x9, x9, :lo12:ARCH_RECOVER_SP
    str     x20, [x9]
    adrp    x9, ARCH_RECOVER_SPSEL
    add     x9, x9, :lo12:ARCH_RECOVER_SPSEL
    str     x19, [x9]
    cbz     x19, 2f
    msr     sp_el0, x0
    msr     spsel, #0
    b       3f
2:  mov     sp, x0
3:  mov     x0, x2
    mov     x29, xzr
    blr     x1
    cbz     x19, 4f
    msr     spsel, #1
4:  mov     sp, x20
    mov     x0, #0
    b       1f
.global arch_stack_recover
arch_stack_recover:
    // The exception returned here in the caller's stack mode (see take_trap).
    adrp    x9, ARCH_RECOVER_SP
    add     x9, x9, :lo12:ARCH_RECOVER_SP
    ldr     x10, [x9]
    mov     sp, x10
    mov     x0, #1
1:  ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp], #176
    ret
"#
);

extern "C" {
    fn arch_run_on_stack(top: u64, f: extern "C" fn(usize), arg: usize) -> u64;
    fn arch_stack_recover();
}

/// The stack pointer to return to after a trapped fault, and the stack mode it belongs to
/// (SPSel: 1 the boot stack, 0 a stack of ours), both written and read by the assembly above.
#[no_mangle]
static ARCH_RECOVER_SP: AtomicU64 = AtomicU64::new(0);
#[no_mangle]
static ARCH_RECOVER_SPSEL: AtomicU64 = AtomicU64::new(1);

static TRAP: AtomicBool = AtomicBool::new(false);
static TRAPPED_ESR: AtomicU64 = AtomicU64::new(0);
static TRAPPED_FAR: AtomicU64 = AtomicU64::new(0);

/// A fault that ended a trapped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trapped {
    pub esr: u64,
    pub far: u64,
}

/// Calls `f(arg)` on `stack`. With `trap`, a synchronous exception inside it is reported and the
/// call abandoned (`Err`); without, it is reported and the kernel stops, as anywhere else.
pub fn run_on_stack(
    stack: &mut KernelStack,
    f: extern "C" fn(usize),
    arg: usize,
    trap: bool,
) -> Result<(), Trapped> {
    // SAFETY: a KernelStack is mapped and lives across the call; borrowed mutably for it, so no
    // other call runs on it at the same time.
    unsafe { run_at(stack.top(), f, arg, trap) }
}

/// Calls `f(arg)` on the stack whose top is `top` (the application's stack); an exception inside
/// is reported and stops the kernel, as anywhere else.
///
/// # Safety
/// `[top - size, top)` must be mapped, writable, used by nothing else during the call, and large
/// enough for `f` up to a guard below it that faults.
pub unsafe fn run_on_stack_at(top: u64, f: extern "C" fn(usize), arg: usize) {
    // SAFETY: as the caller guarantees.
    let _ = unsafe { run_at(top, f, arg, false) };
}

/// # Safety
/// As [`run_on_stack_at`].
unsafe fn run_at(top: u64, f: extern "C" fn(usize), arg: usize, trap: bool) -> Result<(), Trapped> {
    TRAP.store(trap, Ordering::SeqCst);
    // SAFETY: the stack is the caller's to give; the assembly saves and restores every
    // callee-saved register and puts the stack pointer back on both exits.
    let r = unsafe { arch_run_on_stack(top, f, arg) };
    TRAP.store(false, Ordering::SeqCst);
    if r == 0 {
        Ok(())
    } else {
        Err(Trapped {
            esr: TRAPPED_ESR.load(Ordering::SeqCst),
            far: TRAPPED_FAR.load(Ordering::SeqCst),
        })
    }
}

/// Called by the exception handler for a synchronous exception taken on SP_EL0: if the call was
/// armed, records the fault and makes the exception return into the recovery path.
pub(super) fn take_trap(esr: u64, far: u64, elr: &mut u64, spsr: &mut u64) -> bool {
    if !TRAP.swap(false, Ordering::SeqCst) {
        return false;
    }
    TRAPPED_ESR.store(esr, Ordering::SeqCst);
    TRAPPED_FAR.store(far, Ordering::SeqCst);
    *elr = arch_stack_recover as *const () as u64;
    // Return to EL1 on the caller's stack: SP_EL1 (EL1h) for a call made on the boot stack,
    // SP_EL0 (EL1t) for one made on a stack of ours; the recovery path restores its frame.
    let mode = if ARCH_RECOVER_SPSEL.load(Ordering::SeqCst) == 0 {
        0b0100
    } else {
        0b0101
    };
    *spsr = (*spsr & !0xf) | mode;
    true
}
