//! Self-tests of interrupts and time on the machine (`run=selftest`): the timer's interrupt
//! arrives, runs its function in interrupt context on the interrupt stack, wakes a sleeper, and
//! is counted; a timeout passes. Skipped, saying why, on a machine without an interrupt
//! controller Ferrite drives.
// No unsafe code here; the `ktest!` registrations are link-section statics, which
// `forbid(unsafe_code)` would refuse.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::arch::aarch64::timer;
use crate::ktest::TestError;
use crate::time::{self, Deadline};
use crate::{kassert, ktest};

fn needs_timer_interrupts() -> Result<(), TestError> {
    if time::interrupts_armed() {
        Ok(())
    } else {
        Err(TestError::Skip(
            "no timer interrupt (no interrupt controller Ferrite drives on this machine)".into(),
        ))
    }
}

/// Runs `f` from the timer's interrupt about 200 µs from now and waits, at most 500 ms, until
/// `done` says it has run (the caller then checks what it did).
pub(crate) fn run_in_timer_interrupt(
    f: time::TimerFn,
    done: impl Fn() -> bool,
) -> Result<(), TestError> {
    time::add_timer(
        timer::ticks() + time::ticks_in(Duration::from_micros(200)),
        Some(f),
        0,
    )
    .map_err(|e| TestError::Fail(alloc::format!("{e:?}")))?;
    let give_up = Deadline::after(Duration::from_millis(500));
    while !done() && !give_up.passed() {
        core::hint::spin_loop();
    }
    Ok(())
}

/// What the timer function saw: 1 + whether it ran in interrupt context (2) or not (1), and
/// the stack pointer it ran on.
static SEEN: AtomicU64 = AtomicU64::new(0);
static SEEN_SP: AtomicU64 = AtomicU64::new(0);

fn record(_: usize) {
    SEEN.store(1 + crate::irq::in_interrupt() as u64, Ordering::SeqCst);
    SEEN_SP.store(crate::arch::aarch64::cpu::stack_pointer(), Ordering::SeqCst);
}

ktest!(a_timer_runs_its_function_in_interrupt_context, {
    needs_timer_interrupts()?;
    SEEN.store(0, Ordering::SeqCst);
    let before = time::TIMER_INTERRUPTS.load(Ordering::SeqCst);
    run_in_timer_interrupt(record, || SEEN.load(Ordering::SeqCst) != 0)?;
    kassert!(SEEN.load(Ordering::SeqCst) == 2);
    kassert!(time::TIMER_INTERRUPTS.load(Ordering::SeqCst) > before);
    // On the interrupt stack, not the interrupted one.
    let (bottom, top) =
        crate::irq::irq_stack().ok_or(TestError::Fail("no interrupt stack".into()))?;
    kassert!((bottom..top).contains(&SEEN_SP.load(Ordering::SeqCst)));
    Ok(())
});

ktest!(a_sleep_is_woken_by_the_timer_interrupt, {
    needs_timer_interrupts()?;
    let before = time::TIMER_INTERRUPTS.load(Ordering::SeqCst);
    let start = timer::ticks();
    time::sleep(Duration::from_millis(2));
    let slept = timer::ticks() - start;
    kassert!(slept >= time::ticks_in(Duration::from_millis(2)));
    kassert!(time::TIMER_INTERRUPTS.load(Ordering::SeqCst) > before);
    kassert!(!crate::irq::in_interrupt());
    Ok(())
});

ktest!(a_timeout_passes_and_a_cancelled_timer_never_fires, {
    needs_timer_interrupts()?;
    SEEN.store(0, Ordering::SeqCst);
    // Queued and cancelled with IRQs masked, so a slow host cannot let it fire in between.
    let flags = crate::arch::aarch64::irq::local_irq_save();
    let id = time::add_timer(
        timer::ticks() + time::ticks_in(Duration::from_millis(1)),
        Some(record),
        0,
    );
    if let Ok(id) = id {
        time::del_timer(id);
    }
    crate::arch::aarch64::irq::local_irq_restore(flags);
    id.map_err(|e| TestError::Fail(alloc::format!("{e:?}")))?;
    let deadline = Deadline::after(Duration::from_millis(3));
    kassert!(!deadline.passed());
    while !deadline.passed() {
        core::hint::spin_loop();
    }
    kassert!(SEEN.load(Ordering::SeqCst) == 0);
    Ok(())
});

/// What the timer function's allocations gave: the atomic page (0: failed), whether the
/// `Gfp::KERNEL` one was refused, whether freeing the page in interrupt context worked.
static ATOMIC_PAGE: AtomicU64 = AtomicU64::new(0);
static KERNEL_REFUSED: AtomicU64 = AtomicU64::new(0);
static FREED_IN_IRQ: AtomicU64 = AtomicU64::new(0);

fn allocate_in_irq(_: usize) {
    use crate::mm::gfp::Gfp;
    use crate::mm::init::PAGES;
    match PAGES.alloc_pages(Gfp::ATOMIC, 0) {
        Ok(pa) => {
            ATOMIC_PAGE.store(pa.as_u64(), Ordering::SeqCst);
            // A second one, freed right here.
            if let Ok(pb) = PAGES.alloc_pages(Gfp::ATOMIC, 0) {
                FREED_IN_IRQ.store(PAGES.free_pages(pb, 0).is_ok() as u64 + 1, Ordering::SeqCst);
            }
        }
        Err(_) => ATOMIC_PAGE.store(1, Ordering::SeqCst),
    }
    // Order 1: past the per-CPU list, where a GFP_KERNEL request would reclaim or wait.
    let refused = PAGES.alloc_pages(Gfp::KERNEL | Gfp::NOWARN, 1).is_err();
    KERNEL_REFUSED.store(refused as u64 + 1, Ordering::SeqCst);
    SEEN.store(1 + crate::irq::in_interrupt() as u64, Ordering::SeqCst);
}

ktest!(
    an_interrupt_handler_allocates_atomically_and_is_refused_gfp_kernel,
    {
        needs_timer_interrupts()?;
        for s in [&ATOMIC_PAGE, &KERNEL_REFUSED, &FREED_IN_IRQ, &SEEN] {
            s.store(0, Ordering::SeqCst);
        }
        run_in_timer_interrupt(allocate_in_irq, || {
            KERNEL_REFUSED.load(Ordering::SeqCst) != 0
        })?;
        kassert!(SEEN.load(Ordering::SeqCst) == 2);
        let pa = ATOMIC_PAGE.load(Ordering::SeqCst);
        kassert!(pa > 1 && pa.is_multiple_of(4096));
        kassert!(FREED_IN_IRQ.load(Ordering::SeqCst) == 2);
        kassert!(KERNEL_REFUSED.load(Ordering::SeqCst) == 2);
        // The atomic page is ordinary memory: freed here, in process context.
        kassert!(crate::mm::init::PAGES
            .free_pages(crate::addr::PhysAddr::new(pa), 0)
            .is_ok());
        Ok(())
    }
);
