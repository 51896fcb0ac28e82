//! A monotonic clock: the CPU's generic timer, which never goes back and counts from power-on.
//! Under QEMU with `-icount shift=0` (`make bench`) one nanosecond of it is one instruction, so
//! figures in virtual time are deterministic.
//!
//! ```ignore
//! use ferrite::time::Instant;
//!
//! let start = Instant::now();
//! // ... work ...
//! ferrite::println!("took {:?}", start.elapsed());
//! ```
#![forbid(unsafe_code)]

use core::time::Duration;

/// A moment of the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    ticks: u64,
}

impl Instant {
    /// Now.
    pub fn now() -> Instant {
        Instant {
            ticks: ferrite_kernel::arch::aarch64::timer::ticks(),
        }
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        let ticks = self.ticks.saturating_sub(earlier.ticks);
        let freq = ferrite_kernel::arch::aarch64::timer::frequency().max(1);
        let nanos = ticks as u128 * 1_000_000_000 / freq as u128;
        Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        )
    }

    /// The time since `self`.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }
}

/// Whether QEMU runs with `-icount shift=0` (the boot option `icount`, which `make bench`
/// passes): then one nanosecond of this clock is one instruction, and a figure measured with it
/// is deterministic and may be given in instructions.
///
/// ```ignore
/// let unit = if ferrite::time::counts_instructions() { "insn" } else { "ns" };
/// ```
pub fn counts_instructions() -> bool {
    ferrite_kernel::mm_bench::counts_instructions()
}

/// Sleeps for `d` (at least): the CPU idles until the timer's interrupt at the deadline.
///
/// ```ignore
/// ferrite::time::sleep(core::time::Duration::from_millis(10));
/// ```
pub fn sleep(d: Duration) {
    ferrite_kernel::time::sleep(d)
}
