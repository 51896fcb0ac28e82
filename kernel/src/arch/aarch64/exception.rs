//! Exception entry from the vectors (vectors.S): the saved register frame, the report for an
//! unexpected exception (for an application fault that found no memory, the out-of-memory report
//! of `mm::oom` instead), and `catch_exception` for code that provokes one on purpose (self-tests,
//! the semihosting probe).
//! Runs every handler in kernel context (`mm::context`), restoring the interrupted context on
//! return. Must not allocate or take locks on the report path: it may run while a lock is held.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use aarch64_cpu::registers::Readable;

use super::esr;
use super::power::{self, ExitStatus};
use crate::console::emergency_print;

/// The registers vectors.S saves, in its order.
#[repr(C)]
pub struct ExceptionFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    pub sp: u64,
}

const KIND_NAMES: [&str; 16] = [
    "synchronous, current EL with SP_EL0",
    "IRQ, current EL with SP_EL0",
    "FIQ, current EL with SP_EL0",
    "SError, current EL with SP_EL0",
    "synchronous, current EL with SP_ELx",
    "IRQ, current EL with SP_ELx",
    "FIQ, current EL with SP_ELx",
    "SError, current EL with SP_ELx",
    "synchronous, lower EL (AArch64)",
    "IRQ, lower EL (AArch64)",
    "FIQ, lower EL (AArch64)",
    "SError, lower EL (AArch64)",
    "synchronous, lower EL (AArch32)",
    "IRQ, lower EL (AArch32)",
    "FIQ, lower EL (AArch32)",
    "SError, lower EL (AArch32)",
];

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const CAUGHT: u8 = 2;

static CATCH_STATE: AtomicU8 = AtomicU8::new(IDLE);
static CAUGHT_ESR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_FAR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_ELR: AtomicU64 = AtomicU64::new(0);

/// A synchronous exception taken inside `catch_exception`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
}

/// Runs `f`; if it takes a synchronous exception at EL1, the faulting instruction is skipped and
/// the exception is returned instead of being reported. For code that provokes a fault on purpose
/// (self-tests, the semihosting probe). Not reentrant: `f` must not call it again.
pub fn catch_exception(f: impl FnOnce()) -> Option<Caught> {
    CATCH_STATE.store(ARMED, Ordering::SeqCst);
    f();
    let caught = CATCH_STATE.swap(IDLE, Ordering::SeqCst) == CAUGHT;
    caught.then(|| Caught {
        esr: CAUGHT_ESR.load(Ordering::SeqCst),
        far: CAUGHT_FAR.load(Ordering::SeqCst),
        elr: CAUGHT_ELR.load(Ordering::SeqCst),
    })
}

/// The vectors' entry into Rust. The common case, a first touch of a lazy page of the
/// application, is decided here in a few instructions; everything else goes to the full handler.
#[no_mangle]
extern "C" fn handle_exception(frame: &mut ExceptionFrame, kind: u64) {
    // The handler is kernel code whatever it interrupted: what it allocates (the resident queue,
    // swap I/O) comes from kmalloc, never from the application's swappable heap. Restored on
    // return, so the interrupted code goes on in its own context. Two stores and a load: this is
    // the demand-zero fault's path.
    let _kernel = crate::mm::context::Context::enter_kernel();
    if kind == 0 || kind == 4 {
        if let Some(write) = esr::data_translation_fault(frame.esr) {
            let far = frame.far;
            if (crate::mm::layout::USER_START..crate::mm::layout::USER_END).contains(&far) {
                match crate::mm::app_space::handle_page_fault(far, write, false) {
                    Ok(()) => {
                        // A fault that woke kswapd lets it run before the application goes on.
                        crate::sched::preempt_on_exception_return(
                            _kernel.interrupted_application(),
                        );
                        return;
                    }
                    Err(e) => return handle_exception_full(frame, kind, Some(e)),
                }
            }
        }
    }
    handle_exception_slow(frame, kind, _kernel.interrupted_application())
}

/// Interrupts and every exception the fast path did not settle, out of line so that the fault
/// fast path keeps its small frame.
#[inline(never)]
fn handle_exception_slow(frame: &mut ExceptionFrame, kind: u64, interrupted_application: bool) {
    // IRQ and FIQ (current EL either stack, or lower EL): the kernel's interrupt dispatch, on
    // the interrupt stack; IRQs stay masked throughout, as the exception left them.
    if matches!(kind, 1 | 2 | 5 | 6 | 9 | 10) {
        handle_interrupt();
    } else {
        handle_exception_full(frame, kind, None);
    }
    // The exception return's preemption point: the application's code may be switched away
    // from here (its whole state is in the frame on this thread's stack).
    crate::sched::preempt_on_exception_return(interrupted_application);
}

/// The interrupt stack's top (0 until the boot sets one up: then the handlers run on the
/// current stack).
static IRQ_STACK_TOP: AtomicU64 = AtomicU64::new(0);

/// Sets the stack interrupt handlers run on: the top of a mapped stack that nothing else uses
/// and that lives for the rest of the run.
pub fn set_irq_stack(top: u64) {
    IRQ_STACK_TOP.store(top, Ordering::Release);
}

/// Whether `sp` lies on the interrupt stack (for the report of a fault taken there).
fn on_irq_stack(sp: u64) -> bool {
    let top = IRQ_STACK_TOP.load(Ordering::Acquire);
    top != 0 && sp <= top && sp > top - crate::irq::IRQ_STACK_SIZE as u64
}

extern "C" fn dispatch_interrupts(_: usize) {
    crate::irq::handle_pending();
}

#[inline(never)]
fn handle_interrupt() {
    let top = IRQ_STACK_TOP.load(Ordering::Acquire);
    if top == 0 || on_irq_stack(super::cpu::stack_pointer()) {
        crate::irq::handle_pending();
    } else {
        // SAFETY: the interrupt stack is mapped for the rest of the run, 16-byte aligned (a page
        // top), and used by nothing else: interrupts stay masked while a handler runs, so no
        // second one starts on it, and a handler that faults reports and stops on it.
        unsafe { super::irq::call_on_stack(top, dispatch_interrupts, 0) };
    }
}

/// Every exception the fast path did not settle; `decided` is the page-fault handler's verdict
/// when the fast path already asked it.
#[inline(never)]
fn handle_exception_full(
    frame: &mut ExceptionFrame,
    kind: u64,
    decided: Option<crate::mm::memory::RealFault>,
) {
    if kind < 4 {
        // Taken while running on SP_EL0 (a kernel stack from `run_on_stack`): that is the
        // interrupted stack pointer, not the handler's.
        frame.sp = aarch64_cpu::registers::SP_EL0.get();
    }
    let synchronous_here = kind == 0 || kind == 4;
    // The application's lazy regions: a translation fault there may just be a first touch.
    let mut real_fault = decided;
    let in_application =
        (crate::mm::layout::USER_START..crate::mm::layout::USER_END).contains(&frame.far);
    if decided.is_none() && synchronous_here && in_application {
        if let Some(abort) = esr::abort(frame.esr).filter(|a| a.far_valid) {
            let write = abort.access == esr::Access::Write;
            let exec = abort.access == esr::Access::Execute;
            use crate::mm::app_space;
            let handled = match abort.kind {
                esr::FaultKind::Translation { .. } => {
                    Some(app_space::handle_page_fault(frame.far, write, exec))
                }
                // Software access-flag management: reclaim cleared it to see if the page is used.
                esr::FaultKind::AccessFlag { level: 3 } => {
                    Some(app_space::handle_access_flag(frame.far))
                }
                // A write to a page tied to its swap copy is retried once untied.
                esr::FaultKind::Permission { .. } => {
                    Some(app_space::handle_permission_fault(frame.far, write, exec))
                }
                _ => None,
            };
            match handled {
                Some(Ok(())) => return,
                Some(Err(e)) => real_fault = Some(e),
                None => {}
            }
        }
    }
    if synchronous_here
        && CATCH_STATE
            .compare_exchange(ARMED, CAUGHT, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        CAUGHT_ESR.store(frame.esr, Ordering::SeqCst);
        CAUGHT_FAR.store(frame.far, Ordering::SeqCst);
        CAUGHT_ELR.store(frame.elr, Ordering::SeqCst);
        let ec = esr::class(frame.esr);
        if ec == esr::ec::INSN_ABORT_SAME || ec == esr::ec::PC_ALIGNMENT {
            // A branch went somewhere it may not execute: return to where it was called from.
            frame.elr = frame.x[30];
        } else {
            frame.elr += 4;
        }
        return;
    }
    // The application ran out of memory: a report about memory, not a crash dump.
    let out_of_memory = real_fault == Some(crate::mm::memory::RealFault::OutOfMemory);
    if out_of_memory {
        let access = esr::abort(frame.esr).map_or("access", |a| a.access.as_str());
        crate::mm::oom::report_application(frame.far, access, &|args| emergency_print(args));
    } else {
        report(frame, kind, real_fault);
    }
    if kind == 0 && super::stack::take_trap(frame.esr, frame.far, &mut frame.elr, &mut frame.spsr) {
        emergency_print(format_args!(
            "*** The call was trapped: it is abandoned, the kernel goes on.\n"
        ));
        // Its frames are never unwound, so a lock it held is never released.
        crate::lockdep::report_abandoned(&|args| emergency_print(args));
        return;
    }
    if out_of_memory {
        let job = crate::kernel::get().map_or("?", |k| k.options.job.as_str());
        emergency_print(format_args!(
            "Job '{job}' failed: out of memory (the application cannot go on)\n"
        ));
    } else {
        emergency_print(format_args!("*** Stopping.\n"));
    }
    power::shutdown(ExitStatus::Failure);
}

/// For aborts: the address, its region and what the tables say about it.
fn report_abort(frame: &ExceptionFrame, abort: esr::Abort) {
    if !abort.far_valid {
        return;
    }
    let image = super::boot::image();
    let region = crate::mm::layout::region_of(frame.far, &image);
    emergency_print(format_args!(
        "  {} on {} access to {:#x} ({})",
        abort.kind.name(),
        abort.access.as_str(),
        frame.far,
        region
    ));
    match abort.kind.level() {
        Some(level) => emergency_print(format_args!(" at level {level}\n")),
        None => emergency_print(format_args!("\n")),
    }
    if region == crate::mm::layout::Region::Vmalloc {
        crate::mm::vmap::report_fault(frame.far, &|args| emergency_print(args));
    }
    if region == crate::mm::layout::Region::LinearMap {
        emergency_print(format_args!(
            "  (physical {:#x} through the linear map)\n",
            frame.far - crate::mm::layout::PAGE_OFFSET
        ));
    }
    // The tables may be locked by the code that faulted: then there is no walk to show.
    let va = crate::addr::VirtAddr::new(frame.far);
    let walk_in = |pt: &spin::Mutex<Option<crate::mm::kspace::KernelPageTable>>| {
        pt.try_lock().and_then(|g| g.as_ref().map(|pt| pt.walk(va)))
    };
    let walk = if frame.far >= crate::mm::layout::PAGE_OFFSET {
        walk_in(&crate::mm::kspace::KERNEL_PT)
    } else {
        // The application's space, or the boot's identity map before it exists.
        crate::mm::app_space::try_walk(va).or_else(|| walk_in(&crate::mm::kspace::IDENTITY_PT))
    };
    if let Some(walk) = walk {
        emergency_print(format_args!("  walk:"));
        for (level, d) in walk.iter() {
            emergency_print(format_args!(" L{level} {d:#018x}"));
        }
        emergency_print(format_args!("\n"));
    }
}

static REPORTING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Prints everything a person needs to find the cause: where, why, and the registers. A fault
/// inside the report itself (a corrupt table, say) stops at once instead of recursing.
fn report(frame: &ExceptionFrame, kind: u64, real_fault: Option<crate::mm::memory::RealFault>) {
    if REPORTING.swap(true, Ordering::SeqCst) {
        emergency_print(format_args!(
            "\n*** Exception while reporting an exception (ESR {:#x}, FAR {:#x}, ELR {:#x}); stopping.\n",
            frame.esr, frame.far, frame.elr
        ));
        super::cpu::halt();
    }
    let kind_name = KIND_NAMES
        .get(kind as usize)
        .copied()
        .unwrap_or("unknown vector");
    emergency_print(format_args!("\n*** Unexpected exception: {kind_name}\n"));
    if crate::irq::in_interrupt() {
        emergency_print(format_args!(
            "  in interrupt context (an interrupt handler{}), where no fault may be taken\n",
            if on_irq_stack(frame.sp) {
                ", on the interrupt stack"
            } else {
                ""
            }
        ));
    }
    let synchronous = kind.is_multiple_of(4);
    if synchronous {
        emergency_print(format_args!("  cause: {}\n", esr::Describe(frame.esr)));
        if let Some(abort) = esr::abort(frame.esr) {
            report_abort(frame, abort);
        }
        if let Some(f) = real_fault {
            crate::mm::memory::describe(f, &|args| emergency_print(args));
        }
    }
    emergency_print(format_args!(
        "  ESR  {:#018x}  FAR  {:#018x}\n  ELR  {:#018x}  SPSR {:#018x}  SP {:#018x}\n",
        frame.esr, frame.far, frame.elr, frame.spsr, frame.sp
    ));
    for row in 0..8 {
        for col in 0..4 {
            let i = row * 4 + col;
            if i < 31 {
                emergency_print(format_args!("  x{:<2} {:#018x}", i, frame.x[i]));
            }
        }
        emergency_print(format_args!("\n"));
    }
    REPORTING.store(false, Ordering::SeqCst);
}
