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
    time::add_timer(
        timer::ticks() + time::ticks_in(Duration::from_micros(200)),
        Some(record),
        0,
    )
    .map_err(|e| TestError::Fail(alloc::format!("{e:?}")))?;
    let give_up = Deadline::after(Duration::from_millis(100));
    while SEEN.load(Ordering::SeqCst) == 0 && !give_up.passed() {
        core::hint::spin_loop();
    }
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
