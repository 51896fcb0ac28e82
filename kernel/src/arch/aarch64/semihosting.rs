//! Arm semihosting (`hlt #0xf000`): the exit status for the shell and the last words of a kernel
//! that stops before its console exists. The instruction works only when QEMU runs with
//! `-semihosting` (or a debugger serves it); elsewhere it is undefined, so it is used only once a
//! probe has shown that it works. The probe (a harmless `SYS_ERRNO`) runs under
//! `catch_exception`, which skips the instruction if it faults.
//!
//! When is it tried: when the command line says `semihosting` (`configure`), and, before the
//! command line is known, on the way to a stop (a tree that cannot be read, an exception before
//! the console exists): stopping anyway, a probe costs nothing, and on hardware under a debugger
//! the core halting at the HLT is itself the sign.

use core::arch::asm;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use super::exception::catch_exception;

const SYS_WRITE0: u64 = 0x04;
const SYS_ERRNO: u64 = 0x13;
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// The command line has not been read: a stop path may probe.
const UNKNOWN: u8 = 0;
/// Probed: it works.
const AVAILABLE: u8 = 1;
/// Probed: the instruction is undefined here.
const UNAVAILABLE: u8 = 2;
/// The command line does not ask for it: never used.
const NOT_ASKED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// One semihosting call.
///
/// # Safety
/// Semihosting must be known to work (or the call be made under `catch_exception`), and `arg`
/// must be what operation `op` expects (a pointer to a parameter block or string that stays
/// valid for the call).
unsafe fn call(op: u64, arg: u64) -> u64 {
    let ret: u64;
    // SAFETY: forwarded from the caller; the host reads (never writes) the memory `arg` names.
    unsafe {
        asm!("hlt #0xf000", inout("x0") op => ret, in("x1") arg, options(nostack));
    }
    ret
}

/// Tries a harmless call once and remembers whether it worked.
fn probe() -> bool {
    let caught = catch_exception(|| {
        // SAFETY: SYS_ERRNO takes no parameter block; without semihosting the HLT is undefined
        // and `catch_exception` skips it.
        unsafe { call(SYS_ERRNO, 0) };
    });
    let works = caught.is_none();
    STATE.store(
        if works { AVAILABLE } else { UNAVAILABLE },
        Ordering::SeqCst,
    );
    works
}

/// Records what the command line says (`asked`: it names `semihosting`), probing if it does.
/// Returns `false` when it was asked for but does not work (QEMU without `-semihosting`).
pub fn configure(asked: bool) -> bool {
    if !asked {
        STATE.store(NOT_ASKED, Ordering::SeqCst);
        return true;
    }
    match STATE.load(Ordering::SeqCst) {
        AVAILABLE => true,
        UNAVAILABLE => false,
        _ => probe(),
    }
}

/// Whether semihosting may be used now: it was probed and works, or the command line is not
/// known yet and a probe (made now, once) shows it works. For stop paths only.
pub fn usable() -> bool {
    match STATE.load(Ordering::SeqCst) {
        AVAILABLE => true,
        UNKNOWN => probe(),
        _ => false,
    }
}

/// `usable`, and also when the command line did not ask for semihosting: for a kernel that
/// stops with no console, whose last words have nowhere else to go (a probe then costs nothing,
/// and a working probe also lets the failure status reach the shell).
fn usable_for_last_words() -> bool {
    STATE.load(Ordering::SeqCst) == NOT_ASKED && probe() || usable()
}

/// Whether the exit status can reach the shell (semihosting configured and working).
pub fn enabled() -> bool {
    STATE.load(Ordering::SeqCst) == AVAILABLE
}

/// Writes text to the host's console (QEMU: its stderr) with SYS_WRITE0, through a small
/// buffer; nothing happens unless `usable_for_last_words()`.
pub fn write_fmt(args: fmt::Arguments) {
    struct Chunks {
        buf: [u8; 128],
        len: usize,
    }
    impl Chunks {
        fn flush(&mut self) {
            if self.len > 0 {
                self.buf[self.len] = 0;
                // SAFETY: `usable_for_last_words()` was checked; the buffer is NUL-terminated and lives on the
                // stack for the duration of the call.
                unsafe { call(SYS_WRITE0, self.buf.as_ptr() as u64) };
                self.len = 0;
            }
        }
    }
    impl Write for Chunks {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for &b in s.as_bytes() {
                // A NUL would end the string early: leave it out.
                if b == 0 {
                    continue;
                }
                if self.len == self.buf.len() - 1 {
                    self.flush();
                }
                self.buf[self.len] = b;
                self.len += 1;
            }
            Ok(())
        }
    }
    if !usable_for_last_words() {
        return;
    }
    let mut chunks = Chunks {
        buf: [0; 128],
        len: 0,
    };
    let _ = chunks.write_fmt(args);
    chunks.flush();
}

/// Ends the run with `code` as QEMU's exit status, if semihosting is usable; returns otherwise.
pub fn exit(code: u64) {
    if !usable() {
        return;
    }
    let block = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: semihosting works (checked above); the parameter block lives on our stack for the
    // duration of the call, which does not return.
    unsafe { call(SYS_EXIT, block.as_ptr() as u64) };
}
