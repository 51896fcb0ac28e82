//! The panic handler: whose code panicked (an application's or the kernel's), location and
//! message on the console, then a failure exit. A panic while
//! panicking stops at once instead of recursing. Rust's allocation-failure panic ("memory
//! allocation of N bytes failed", which stable `no_std` cannot replace by a handler of its own)
//! is not a bug at a place in the code but memory running out: it becomes the out-of-memory
//! report of `mm::oom` instead.
#![forbid(unsafe_code)]

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::aarch64::{cpu, power};
use crate::console::emergency_print;

static PANICKING: AtomicBool = AtomicBool::new(false);

/// The panic message, rendered into a fixed buffer (no allocation: memory may be out).
struct Message {
    buf: [u8; 64],
    len: usize,
    truncated: bool,
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.truncated = true;
                return Ok(());
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// The size in "memory allocation of N bytes failed", the message of `alloc`'s default
/// allocation-error handler.
fn allocation_failure(info: &PanicInfo) -> Option<usize> {
    let mut m = Message {
        buf: [0; 64],
        len: 0,
        truncated: false,
    };
    let _ = write!(m, "{}", info.message());
    if m.truncated {
        return None;
    }
    let text = core::str::from_utf8(&m.buf[..m.len]).ok()?;
    text.strip_prefix("memory allocation of ")?
        .strip_suffix(" bytes failed")?
        .parse()
        .ok()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        cpu::halt();
    }
    if let Some(size) = allocation_failure(info) {
        crate::mm::oom::report_kernel(size, crate::mm::heap::failed_align(size), &|args| {
            emergency_print(args)
        });
        emergency_print(format_args!(
            "out of memory: the kernel cannot go on; stopping\n"
        ));
        power::shutdown(power::ExitStatus::Failure)
    }
    // Whose code panicked: an application's (running in application context) or the kernel's.
    let who = match crate::mm::context::Context::current() {
        crate::mm::context::Context::Application => "Application",
        crate::mm::context::Context::Kernel => "Kernel",
    };
    match info.location() {
        Some(l) => emergency_print(format_args!(
            "\n{who} panic at {}:{}:{}: {}\n",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        )),
        None => emergency_print(format_args!("\n{who} panic: {}\n", info.message())),
    }
    power::shutdown(power::ExitStatus::Failure)
}
