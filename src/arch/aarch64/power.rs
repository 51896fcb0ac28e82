//! Leaving the machine: through semihosting when QEMU was started with `-semihosting` (the only
//! way to hand an exit status to the shell), else PSCI SYSTEM_OFF, else a clean halt. Semihosting
//! is used only when the command line says QEMU enabled it: on hardware the HLT instruction would
//! stop the core under a debugger, or trap.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::machine::PsciMethod;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
}

static SEMIHOSTING: AtomicBool = AtomicBool::new(false);
/// 0: no PSCI, 1: HVC, 2: SMC.
static PSCI: AtomicU8 = AtomicU8::new(0);

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Records how this machine can be left, once the command line and device tree are read.
pub fn configure(semihosting: bool, psci: Option<PsciMethod>) {
    SEMIHOSTING.store(semihosting, Ordering::SeqCst);
    let method = match psci {
        None => 0,
        Some(PsciMethod::Hvc) => 1,
        Some(PsciMethod::Smc) => 2,
    };
    PSCI.store(method, Ordering::SeqCst);
}

pub fn semihosting_enabled() -> bool {
    SEMIHOSTING.load(Ordering::SeqCst)
}

/// Ends the run with `status`. Never returns.
pub fn shutdown(status: ExitStatus) -> ! {
    crate::console::flush();
    if SEMIHOSTING.load(Ordering::SeqCst) {
        let code = match status {
            ExitStatus::Success => 0u64,
            ExitStatus::Failure => 1,
        };
        let block = [ADP_STOPPED_APPLICATION_EXIT, code];
        // SAFETY: semihosting was announced on the command line, so QEMU traps this HLT and exits;
        // the parameter block lives on our stack for the duration of the call.
        unsafe {
            asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
        }
    }
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
