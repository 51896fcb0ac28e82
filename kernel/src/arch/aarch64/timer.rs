//! The generic timer's virtual counter and virtual timer: timestamps for the log and elapsed-time
//! measurement, and the one deadline the kernel's timer queue (kernel/src/time.rs) programs.
//! Must never decide which deadline comes next (the queue does) or handle the interrupt.
#![forbid(unsafe_code)]

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    Readable, Writeable, CNTFRQ_EL0, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0,
};

/// Arms the virtual timer to raise its interrupt once the counter reaches `deadline` (at once if
/// it already has).
pub fn set_deadline(deadline: u64) {
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    barrier::isb(barrier::SY);
}

/// Disarms the virtual timer (its interrupt line goes low).
pub fn cancel_deadline() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::SET);
    barrier::isb(barrier::SY);
}

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
