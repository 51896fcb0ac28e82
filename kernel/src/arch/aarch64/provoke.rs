//! Deliberate faults, for self-tests and the tests of the test runner: one instruction each, so
//! `catch_exception` can skip exactly it. Must never be used for anything but provoking a fault.

use core::arch::asm;

/// Executes a permanently undefined instruction (UDF).
pub fn undefined_instruction() {
    // SAFETY: UDF only raises an exception; its handler decides what happens next.
    unsafe { asm!("udf #0x7e") }
}

/// Reads 8 bytes at `addr` with a single load, whatever is (or is not) mapped there.
///
/// # Safety
/// Reading `addr` must not have side effects the caller did not intend (device registers); a
/// fault is the expected outcome under `catch_exception`.
pub unsafe fn read(addr: u64) {
    // SAFETY: see the function's contract.
    unsafe { asm!("ldr {t}, [{a}]", a = in(reg) addr, t = out(reg) _) }
}

/// Writes 8 zero bytes at `addr` with a single store.
///
/// # Safety
/// As `read`, and the write must not corrupt anything if it succeeds.
pub unsafe fn write(addr: u64) {
    // SAFETY: see the function's contract.
    unsafe { asm!("str xzr, [{a}]", a = in(reg) addr) }
}

/// Recurses with 256-byte frames until the stack it runs on overflows into its guard (callable
/// directly, or through `stack::run_on_stack`).
pub extern "C" fn overflow_stack(depth: usize) {
    let mut frame = [0u8; 256];
    frame[depth % 256] = depth as u8;
    core::hint::black_box(&mut frame);
    // Bounded only by the stack: the overflow is the point.
    if core::hint::black_box(depth) < usize::MAX {
        overflow_stack(depth + 1);
    }
    core::hint::black_box(&frame);
}
