//! Leaving the machine: through semihosting when it works (the only way to hand an exit status to
//! the shell; see `semihosting` for when it is tried), else PSCI SYSTEM_OFF, else a clean halt.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use super::semihosting;
use crate::machine::PsciMethod;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
}

/// 0: no PSCI, 1: HVC, 2: SMC.
static PSCI: AtomicU8 = AtomicU8::new(0);

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// How the machine will be left, as `configure` found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Semihosting: the exit status reaches the shell.
    Semihosting,
    /// PSCI SYSTEM_OFF: QEMU exits 0 whatever happened.
    Psci,
    /// Neither: the core halts with interrupts masked.
    Halt,
}

/// Records how this machine can be left, once the command line (`semihosting`: it names
/// `semihosting`) and the device tree are read. Returns the way out and whether semihosting,
/// asked for, turned out not to work (QEMU started without `-semihosting`).
pub fn configure(semihosting: bool, psci: Option<PsciMethod>) -> (Exit, bool) {
    let method = match psci {
        None => 0,
        Some(PsciMethod::Hvc) => 1,
        Some(PsciMethod::Smc) => 2,
    };
    PSCI.store(method, Ordering::SeqCst);
    let works = semihosting::configure(semihosting);
    let exit = if semihosting::enabled() {
        Exit::Semihosting
    } else if method != 0 {
        Exit::Psci
    } else {
        Exit::Halt
    };
    (exit, !works)
}

/// Ends the run with `status`. Never returns.
pub fn shutdown(status: ExitStatus) -> ! {
    crate::console::flush();
    // Returns only when semihosting does not work (or is not asked for).
    semihosting::exit(match status {
        ExitStatus::Success => 0,
        ExitStatus::Failure => 1,
    });
    match PSCI.load(Ordering::SeqCst) {
        // SAFETY: the device tree says PSCI is reachable by HVC; SYSTEM_OFF does not return.
        1 => unsafe { asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack)) },
        // SAFETY: as above, by SMC.
        2 => unsafe { asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack)) },
        _ => {}
    }
    crate::console::emergency_print(format_args!("System halted.\n"));
    super::cpu::halt()
}
