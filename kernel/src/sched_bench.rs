//! Micro-benchmarks of interrupts and threads, run inside the kernel (through `ferrite::bench`,
//! as the memory manager's are): `irq.latency`, instructions from an interrupt becoming
//! deliverable to its handler running (the vector, the frame, the switch to the interrupt stack,
//! the controller's acknowledge, the dispatch); `sched.switch`, one thread switch (the choice of
//! the next thread, its registers, both stacks, FP state) between two threads that yield to each
//! other; `sched.wake`, from `wake_up` to the woken thread running. Figures in instructions under
//! QEMU `-icount shift=0` (else nanoseconds). Owns the measurements only.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::aarch64::irq::{local_irq_disable, local_irq_enable};
use crate::arch::aarch64::timer;
use crate::mm_bench::Figure;
use crate::sched::{self, WaitQueue};

fn per(ticks: u64, n: u64) -> u64 {
    let f = timer::frequency().max(1) as u128;
    (ticks as u128 * 1_000_000_000 / f / n.max(1) as u128) as u64
}

/// Runs the three; an error says what stopped them (no timer interrupt, no threads).
pub fn run() -> Result<Vec<Figure>, &'static str> {
    if !crate::time::interrupts_armed() || !sched::started() {
        return Err("no timer interrupt and threads on this machine");
    }
    let unit = crate::mm_bench::unit();
    Ok(alloc::vec![
        Figure {
            name: "irq.latency",
            value: irq_latency(),
            unit
        },
        Figure {
            name: "sched.switch",
            value: switch()?,
            unit
        },
        Figure {
            name: "sched.wake",
            value: wake()?,
            unit
        },
    ])
}

fn irq_latency() -> u64 {
    const N: u64 = 500;
    let mut total = 0;
    for _ in 0..N {
        local_irq_disable();
        // The timer's interrupt, pending at once; taken the moment IRQs are unmasked.
        crate::time::bench_arm_immediate();
        let t0 = timer::ticks();
        local_irq_enable();
        let t1 = crate::time::bench_take();
        total += t1.saturating_sub(t0);
    }
    per(total, N)
}

static YIELDS: AtomicU64 = AtomicU64::new(0);

fn switch() -> Result<u64, &'static str> {
    const N: u64 = 2000;
    let spawn = |name| {
        sched::spawn(
            name,
            false,
            Box::new(|| {
                for _ in 0..N {
                    YIELDS.fetch_add(1, Ordering::Relaxed);
                    sched::yield_now();
                }
            }),
        )
        .map_err(|_| "no thread for the switch benchmark")
    };
    let s0 = sched::SWITCHES.load(Ordering::Relaxed);
    let t0 = timer::ticks();
    let (a, b) = (spawn("bench-a")?, spawn("bench-b")?);
    sched::join(a);
    sched::join(b);
    let t1 = timer::ticks();
    let switches = sched::SWITCHES.load(Ordering::Relaxed) - s0;
    Ok(per(t1 - t0, switches))
}

static WQ: WaitQueue = WaitQueue::new();
static SEQ: AtomicU64 = AtomicU64::new(0);
static T0: AtomicU64 = AtomicU64::new(0);
static WAKE_TICKS: AtomicU64 = AtomicU64::new(0);

fn wake() -> Result<u64, &'static str> {
    const N: u64 = 500;
    SEQ.store(0, Ordering::SeqCst);
    WAKE_TICKS.store(0, Ordering::SeqCst);
    let waiter = sched::spawn(
        "bench-wake",
        false,
        Box::new(|| {
            for i in 1..=N {
                WQ.wait_event(|| SEQ.load(Ordering::Acquire) >= i);
                let t = timer::ticks();
                WAKE_TICKS.fetch_add(
                    t.saturating_sub(T0.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
        }),
    )
    .map_err(|_| "no thread for the wake-up benchmark")?;
    // Let it block first.
    sched::yield_now();
    for i in 1..=N {
        T0.store(timer::ticks(), Ordering::Relaxed);
        SEQ.store(i, Ordering::Release);
        WQ.wake_up();
        sched::yield_now();
    }
    sched::join(waiter);
    Ok(per(WAKE_TICKS.load(Ordering::SeqCst), N))
}
