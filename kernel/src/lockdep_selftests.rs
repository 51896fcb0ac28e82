//! Self-tests of lockdep (`run=selftest lockdep`): a provoked lock-order inversion and a provoked
//! interrupt-unsafe lock in interrupt context are each reported (once); skipped, saying why,
//! when lockdep is off.
// No unsafe code here; the `ktest!` registrations are link-section statics, which
// `forbid(unsafe_code)` would refuse.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::ktest::TestError;
use crate::lockdep::{self, REPORTS};
use crate::sync::{IrqSpinLock, SpinLock};
use crate::{kassert_eq, ktest};

fn needs_lockdep() -> Result<(), TestError> {
    if lockdep::enabled() {
        Ok(())
    } else {
        Err(TestError::Skip("lockdep is off (boot with lockdep)".into()))
    }
}

static A: IrqSpinLock<()> = IrqSpinLock::new("ktest-lock-a", ());
static B: IrqSpinLock<()> = IrqSpinLock::new("ktest-lock-b", ());

ktest!(lockdep_reports_a_lock_order_inversion_once, {
    needs_lockdep()?;
    let before = REPORTS.load(Ordering::SeqCst);
    {
        let _a = A.lock();
        let _b = B.lock();
    }
    kassert_eq!(REPORTS.load(Ordering::SeqCst), before);
    {
        let _b = B.lock();
        let _a = A.lock();
    }
    kassert_eq!(REPORTS.load(Ordering::SeqCst), before + 1);
    // The same pair again: already reported.
    {
        let _b = B.lock();
        let _a = A.lock();
    }
    kassert_eq!(REPORTS.load(Ordering::SeqCst), before + 1);
    Ok(())
});

static UNSAFE: SpinLock<()> = SpinLock::new("ktest-irq-unsafe", ());
static TAKEN: AtomicBool = AtomicBool::new(false);

fn take_unsafe_lock(_: usize) {
    drop(UNSAFE.lock());
    TAKEN.store(true, Ordering::SeqCst);
}

ktest!(
    lockdep_reports_an_interrupt_unsafe_lock_in_interrupt_context,
    {
        needs_lockdep()?;
        if !crate::time::interrupts_armed() {
            return Err(TestError::Skip("no timer interrupt on this machine".into()));
        }
        let before = REPORTS.load(Ordering::SeqCst);
        // In process context: no report.
        drop(UNSAFE.lock());
        kassert_eq!(REPORTS.load(Ordering::SeqCst), before);
        TAKEN.store(false, Ordering::SeqCst);
        crate::irq_selftests::run_in_timer_interrupt(take_unsafe_lock, || {
            TAKEN.load(Ordering::SeqCst)
        })?;
        kassert_eq!(TAKEN.load(Ordering::SeqCst), true);
        kassert_eq!(REPORTS.load(Ordering::SeqCst), before + 1);
        Ok(())
    }
);
