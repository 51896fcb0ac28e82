//! Time (Linux's kernel/time): the timer queue, one-shot deadlines on the generic timer's
//! virtual timer interrupt (`arch_timer`), with no periodic tick (the timer is armed only for
//! the nearest deadline, and disarmed when none is left); `sleep`, which blocks the thread until
//! its deadline's interrupt (before threads exist: idles in `WFI`); and `Deadline` for timeouts. Owns the queue; must never allocate or
//! sleep in the interrupt handler (the queue is a fixed table under an IRQ-safe lock), and never
//! programs the timer but through the arch layer.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use crate::arch::aarch64::irq;
use crate::arch::aarch64::timer;
use crate::sync::IrqSpinLock;

/// What runs when a timer expires: in interrupt context, with its `data`.
pub type TimerFn = fn(usize);

#[derive(Clone, Copy)]
struct Slot {
    deadline: u64,
    /// Distinguishes this use of the slot from earlier ones (`TimerId`s of old uses are stale).
    generation: u64,
    func: Option<TimerFn>,
    data: usize,
    pending: bool,
    fired: bool,
}

const EMPTY: Slot = Slot {
    deadline: 0,
    generation: 0,
    func: None,
    data: 0,
    pending: false,
    fired: false,
};

/// Timers that can be pending at once (each sleeper and each driver timeout takes one).
const SLOTS: usize = 32;
static QUEUE: IrqSpinLock<[Slot; SLOTS]> = IrqSpinLock::new("timer-queue", [EMPTY; SLOTS]);
static GENERATION: AtomicU64 = AtomicU64::new(1);
/// Whether the timer interrupt is wired (else `sleep` spins on the counter).
static ARMED: AtomicBool = AtomicBool::new(false);
/// Timer interrupts taken (the self-tests read it).
pub static TIMER_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// A queued timer, to cancel it or ask whether it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId {
    slot: usize,
    generation: u64,
}

/// Why a timer could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerError {
    /// Every slot holds a pending or unread timer.
    Full,
}

/// Requests the generic timer's virtual interrupt (`arch_timer`): from then on the queue's
/// deadlines raise interrupts. Called once at boot, after the interrupt controller.
pub fn init(machine: &crate::machine::Machine) -> Result<(), alloc::string::String> {
    let Some(t) = machine.timer.as_ref() else {
        return Err("the device tree has no arm,armv8-timer node".into());
    };
    let Some(virt) = t.virt.as_ref() else {
        return Err("the device tree gives no virtual timer interrupt".into());
    };
    timer::cancel_deadline();
    crate::irq::request_irq_of(virt, "arch_timer", alloc::boxed::Box::new(on_interrupt))
        .map_err(|e| alloc::format!("arch_timer: {e}"))?;
    ARMED.store(true, Ordering::Release);
    Ok(())
}

/// Whether deadlines raise interrupts (`init` succeeded).
pub fn interrupts_armed() -> bool {
    ARMED.load(Ordering::Acquire)
}

/// Ticks of the counter in `d` (rounded up, so a timeout is never early).
pub fn ticks_in(d: Duration) -> u64 {
    let f = timer::frequency() as u128;
    (d.as_nanos() * f).div_ceil(1_000_000_000) as u64
}

/// Arms the timer for the queue's nearest pending deadline, or disarms it.
fn program(slots: &[Slot; SLOTS]) {
    match slots.iter().filter(|s| s.pending).map(|s| s.deadline).min() {
        Some(d) => timer::set_deadline(d),
        None => timer::cancel_deadline(),
    }
}

/// Queues `func(data)` to run in interrupt context once the counter reaches `deadline` (ticks).
pub fn add_timer(deadline: u64, func: Option<TimerFn>, data: usize) -> Result<TimerId, TimerError> {
    let mut q = QUEUE.lock();
    let slot = q
        .iter()
        .position(|s| s.generation == 0)
        .ok_or(TimerError::Full)?;
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    q[slot] = Slot {
        deadline: deadline.max(1),
        generation,
        func,
        data,
        pending: true,
        fired: false,
    };
    program(&q);
    Ok(TimerId { slot, generation })
}

/// Removes a timer, fired or not, and frees its slot; says whether it had fired (a function
/// timer's slot frees itself when it runs: `false` then).
pub fn del_timer(id: TimerId) -> bool {
    let mut q = QUEUE.lock();
    let s = q[id.slot];
    if s.generation != id.generation {
        return false;
    }
    q[id.slot] = EMPTY;
    program(&q);
    s.fired
}

/// Whether the timer has fired.
pub fn fired(id: TimerId) -> bool {
    let q = QUEUE.lock();
    q[id.slot].generation == id.generation && q[id.slot].fired
}

/// `irq.latency`'s measurement: the counter when the handler began (0: not taken yet).
static BENCH_TAKEN: AtomicU64 = AtomicU64::new(0);
static BENCH_ARMED: AtomicBool = AtomicBool::new(false);

/// For `irq.latency` (IRQs masked): makes the timer's interrupt pending at once.
pub fn bench_arm_immediate() {
    BENCH_TAKEN.store(0, Ordering::Relaxed);
    BENCH_ARMED.store(true, Ordering::Relaxed);
    timer::set_deadline(0);
}

/// For `irq.latency`: the counter when the handler began, once it has.
pub fn bench_take() -> u64 {
    loop {
        let t = BENCH_TAKEN.load(Ordering::Relaxed);
        if t != 0 {
            return t;
        }
        core::hint::spin_loop();
    }
}

/// The timer interrupt: marks every expired timer fired, runs its function, re-arms for the next.
fn on_interrupt() {
    // A load first: the measurement is rare, the interrupt is not.
    if BENCH_ARMED.load(Ordering::Relaxed) {
        BENCH_ARMED.store(false, Ordering::Relaxed);
        BENCH_TAKEN.store(timer::ticks(), Ordering::Relaxed);
        // Back to the queue's own deadline.
        program(&QUEUE.lock());
        return;
    }
    TIMER_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    loop {
        let now = timer::ticks();
        let due = {
            let mut q = QUEUE.lock();
            let due = q
                .iter_mut()
                .find(|s| s.pending && s.deadline <= now)
                .map(|s| {
                    let due = (s.func, s.data);
                    if s.func.is_some() {
                        // Nobody waits on a function timer: its slot is free once it ran.
                        *s = EMPTY;
                    } else {
                        s.pending = false;
                        s.fired = true;
                    }
                    due
                });
            if due.is_none() {
                program(&q);
            }
            due
        };
        match due {
            // Run outside the lock: the function may queue another timer.
            Some((Some(f), data)) => f(data),
            Some((None, _)) => {}
            None => break,
        }
    }
}

/// Sleeps for `d`: idles in `WFI` until the deadline's interrupt (or, without a timer interrupt,
/// watches the counter). May be called only where sleeping is allowed: never in interrupt
/// context, never holding a spin lock.
pub fn sleep(d: Duration) {
    debug_assert!(!crate::irq::in_interrupt(), "sleep in interrupt context");
    let deadline = timer::ticks() + ticks_in(d);
    // With threads, the sleeper blocks and others run meanwhile.
    if interrupts_armed() && crate::sched::started() {
        return crate::sched::sleep_until(deadline);
    }
    let id = if interrupts_armed() {
        add_timer(deadline, None, 0).ok()
    } else {
        None
    };
    match id {
        Some(id) => {
            let flags = irq::local_irq_save();
            // Masked between the check and WFI, so the interrupt cannot slip in unseen: WFI
            // wakes on it pending, and unmasking takes it.
            while !fired(id) {
                irq::wait_for_interrupt();
                irq::local_irq_enable();
                irq::local_irq_disable();
            }
            irq::local_irq_restore(flags);
            del_timer(id);
        }
        None => {
            while timer::ticks() < deadline {
                core::hint::spin_loop();
            }
        }
    }
}

/// A point in time a wait gives up at (driver timeouts).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    /// `d` from now.
    pub fn after(d: Duration) -> Deadline {
        Deadline(timer::ticks() + ticks_in(d))
    }

    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        timer::ticks() >= self.0
    }
}
