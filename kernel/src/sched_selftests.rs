//! Self-tests of kernel threads, wait queues and timed waits (`run=selftest`): threads run and
//! are joined, a wait is woken from a timer interrupt, a wait with a timeout gives up. Skipped,
//! saying why, when the machine has no timer interrupt (no threads then).
// No unsafe code here; the `ktest!` registrations are link-section statics, which
// `forbid(unsafe_code)` would refuse.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use crate::arch::aarch64::timer;
use crate::ktest::TestError;
use crate::sched::{self, WaitQueue};
use crate::{kassert, kassert_eq, ktest};

fn needs_threads() -> Result<(), TestError> {
    if sched::started() && crate::time::interrupts_armed() {
        Ok(())
    } else {
        Err(TestError::Skip(
            "no threads (no timer interrupt on this machine)".into(),
        ))
    }
}

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

static SUM: AtomicU64 = AtomicU64::new(0);

ktest!(kernel_threads_run_in_turn_and_are_joined, {
    needs_threads()?;
    SUM.store(0, Ordering::SeqCst);
    let switches = sched::SWITCHES.load(Ordering::SeqCst);
    let mut tids = Vec::new();
    for i in 1..=3u64 {
        let tid = sched::spawn(
            "ktest",
            false,
            Box::new(move || {
                for _ in 0..5 {
                    SUM.fetch_add(i, Ordering::SeqCst);
                    sched::yield_now();
                }
            }),
        )
        .map_err(fail)?;
        tids.push(tid);
    }
    for tid in tids {
        sched::join(tid);
    }
    kassert_eq!(SUM.load(Ordering::SeqCst), 5 * (1 + 2 + 3));
    // Each thread yielded to the others: many switches, not three.
    kassert!(sched::SWITCHES.load(Ordering::SeqCst) - switches >= 15);
    Ok(())
});

static WQ: WaitQueue = WaitQueue::new();
static READY: AtomicBool = AtomicBool::new(false);
static WOKEN_IN_IRQ: AtomicBool = AtomicBool::new(false);

fn wake_from_irq(_: usize) {
    READY.store(true, Ordering::SeqCst);
    WOKEN_IN_IRQ.store(crate::irq::in_interrupt(), Ordering::SeqCst);
    WQ.wake_up();
}

ktest!(a_sleeping_wait_is_woken_by_an_interrupt, {
    needs_threads()?;
    READY.store(false, Ordering::SeqCst);
    WOKEN_IN_IRQ.store(false, Ordering::SeqCst);
    let start = timer::ticks();
    crate::time::add_timer(
        start + crate::time::ticks_in(Duration::from_millis(2)),
        Some(wake_from_irq),
        0,
    )
    .map_err(|e| fail(alloc::format!("{e:?}")))?;
    let held = WQ.wait_event_timeout(|| READY.load(Ordering::SeqCst), Duration::from_secs(2));
    kassert!(held);
    kassert!(WOKEN_IN_IRQ.load(Ordering::SeqCst));
    kassert!(timer::ticks() - start >= crate::time::ticks_in(Duration::from_millis(2)));
    Ok(())
});

ktest!(a_wait_with_a_timeout_gives_up, {
    needs_threads()?;
    let start = timer::ticks();
    let held = WQ.wait_event_timeout(|| false, Duration::from_millis(3));
    kassert!(!held);
    kassert!(timer::ticks() - start >= crate::time::ticks_in(Duration::from_millis(3)));
    Ok(())
});
