//! The generic timer's virtual counter: timestamps for the log and elapsed-time measurement.
//! Read-only: must never program timer interrupts (nothing here owns an interrupt yet).
#![forbid(unsafe_code)]

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTVCT_EL0};

/// Counter ticks since an arbitrary origin (boot, on every machine we run on).
pub fn ticks() -> u64 {
    // Without the barrier the read could be hoisted before earlier instructions.
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Ticks per second; never 0 (a firmware that leaves CNTFRQ unset gets a plausible default).
pub fn frequency() -> u64 {
    match CNTFRQ_EL0.get() {
        0 => 62_500_000,
        f => f,
    }
}

/// Time since the counter started, in microseconds.
pub fn uptime_us() -> u64 {
    (ticks() as u128 * 1_000_000 / frequency() as u128) as u64
}
