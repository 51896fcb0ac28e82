//! A thread's saved CPU state and the switch between two threads (Linux's `cpu_switch_to`): the
//! callee-saved registers (x19-x30, d8-d15), both stack pointers (SP_EL1, the thread's kernel
//! stack, and SP_EL0, the application's stack when the thread runs there), which one is in use
//! (SPSel), and the FP control and status. The switch is a function call, so the caller-saved
//! registers are the compiler's to save; a thread preempted by an interrupt has all of its
//! registers, SIMD included, in the exception frame on its own stack. Must never choose which
//! thread runs (kernel/src/sched.rs does).

use core::arch::global_asm;

/// What `switch` saves and restores. The layout is the assembly's (offsets in the comments).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuContext {
    /// x19-x29 and x30 (the return address). 0
    pub x19_x30: [u64; 12],
    /// 96
    pub sp_el1: u64,
    /// 104
    pub sp_el0: u64,
    /// 112
    pub spsel: u64,
    /// 120
    pub d8_d15: [u64; 8],
    /// 184
    pub fpcr: u64,
    /// 192
    pub fpsr: u64,
}

impl CpuContext {
    /// All zeros: a slot no thread has used.
    pub const fn zeroed() -> CpuContext {
        CpuContext {
            x19_x30: [0; 12],
            sp_el1: 0,
            sp_el0: 0,
            spsel: 0,
            d8_d15: [0; 8],
            fpcr: 0,
            fpsr: 0,
        }
    }

    /// The context of a new thread: it starts in `thread_start(entry, arg)` (the trampoline
    /// calls `entry(arg)`) on the kernel stack whose top is `stack_top`.
    pub fn new_thread(stack_top: u64, entry: extern "C" fn(usize) -> !, arg: usize) -> CpuContext {
        let mut c = CpuContext::default();
        c.x19_x30[0] = entry as usize as u64;
        c.x19_x30[1] = arg as u64;
        c.x19_x30[11] = arch_thread_trampoline as unsafe extern "C" fn() as usize as u64;
        c.sp_el1 = stack_top;
        c.spsel = 1;
        c
    }
}

global_asm!(
    r#"
.section .text.cpu_switch, "ax"
// arch_cpu_switch(prev: *mut CpuContext, next: *const CpuContext), IRQs masked.
.global arch_cpu_switch
arch_cpu_switch:
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mrs     x9, spsel
    str     x9, [x0, #112]
    msr     spsel, #1
    mov     x10, sp
    str     x10, [x0, #96]
    mrs     x11, sp_el0
    str     x11, [x0, #104]
    stp     d8, d9, [x0, #120]
    stp     d10, d11, [x0, #136]
    stp     d12, d13, [x0, #152]
    stp     d14, d15, [x0, #168]
    mrs     x12, fpcr
    mrs     x13, fpsr
    stp     x12, x13, [x0, #184]

    ldp     x19, x20, [x1, #0]
    ldp     x21, x22, [x1, #16]
    ldp     x23, x24, [x1, #32]
    ldp     x25, x26, [x1, #48]
    ldp     x27, x28, [x1, #64]
    ldp     x29, x30, [x1, #80]
    ldr     x10, [x1, #96]
    mov     sp, x10
    ldr     x11, [x1, #104]
    msr     sp_el0, x11
    ldp     d8, d9, [x1, #120]
    ldp     d10, d11, [x1, #136]
    ldp     d12, d13, [x1, #152]
    ldp     d14, d15, [x1, #168]
    ldp     x12, x13, [x1, #184]
    msr     fpcr, x12
    msr     fpsr, x13
    ldr     x9, [x1, #112]
    msr     spsel, x9
    ret

// A new thread's first return lands here: entry (x19) with its argument (x20); never returns.
.global arch_thread_trampoline
arch_thread_trampoline:
    mov     x0, x20
    mov     x29, xzr
    blr     x19
    b       .
"#
);

extern "C" {
    fn arch_cpu_switch(prev: *mut CpuContext, next: *const CpuContext);
    fn arch_thread_trampoline();
}

/// Saves the running thread's state in `prev` and resumes the thread saved in `next`; returns
/// when something switches back to `prev`.
///
/// # Safety
/// IRQs are masked; `prev` is where the running thread's state may be written and nothing else
/// reads or writes it until it is resumed; `next` holds a state saved by `switch` or made by
/// `CpuContext::new_thread` whose stacks are still mapped.
pub unsafe fn switch(prev: *mut CpuContext, next: *const CpuContext) {
    // SAFETY: the caller's promises are the assembly's preconditions.
    unsafe { arch_cpu_switch(prev, next) }
}
