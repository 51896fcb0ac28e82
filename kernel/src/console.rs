//! The kernel console: one serial port, chosen from the device tree, shared by the logger, the
//! self-test output and the fault reports. Owns the port and line serialisation; must never block
//! forever, and the emergency path (panics, exceptions) must work even if the lock is held. Before
//! the port exists, the emergency path writes through semihosting where that works, so a kernel
//! that stops that early still leaves a sign.

#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use spin::{Mutex, Once};

use crate::drivers::uart::SerialPort;

static PORT: Once<SerialPort> = Once::new();
static LOCK: Mutex<()> = Mutex::new(());

/// Installs the console. Later calls are ignored: the first console stays.
pub fn init(port: SerialPort) {
    PORT.call_once(|| port);
}

pub fn is_ready() -> bool {
    PORT.is_completed()
}

/// Moves the console to `io`, another mapping of its registers, kept for good. Refused (the
/// mapping handed back) without a console or if `io` maps other registers.
#[cfg(target_os = "none")]
pub fn rebase(io: crate::mm::ioremap::IoMem) -> Result<(), crate::mm::ioremap::IoMem> {
    let Some(port) = PORT.get() else {
        return Err(io);
    };
    let _guard = LOCK.lock();
    port.flush();
    port.move_to(io)
}

/// The console's register base, for reports.
pub fn base() -> Option<usize> {
    PORT.get().map(|p| p.addr().as_u64() as usize)
}

struct Writer<'a>(&'a SerialPort);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(byte);
        }
        Ok(())
    }
}

/// Prints under the console lock, so lines from different paths do not interleave. In
/// interrupt context the lock is only tried (the interrupted code may hold it): when it is held
/// the line is written without it rather than waiting forever.
pub fn print(args: fmt::Arguments) {
    if let Some(port) = PORT.get() {
        let _guard = if crate::mm::context::in_interrupt() {
            LOCK.try_lock()
        } else {
            Some(LOCK.lock())
        };
        let _ = Writer(port).write_fmt(args);
    }
}

/// Prints without taking the lock: for panics and exception reports, which may interrupt a
/// holder of the lock. Before the console exists (a stop that early), through semihosting if it
/// works, else nowhere.
pub fn emergency_print(args: fmt::Arguments) {
    match PORT.get() {
        Some(port) => {
            let _ = Writer(port).write_fmt(args);
        }
        #[cfg(target_os = "none")]
        None => crate::arch::aarch64::semihosting::write_fmt(args),
        #[cfg(not(target_os = "none"))]
        None => {}
    }
}

/// Reads one line from the console into `line` (without its end, `\n` or `\r`), echoing what
/// arrives as a terminal would, with backspace taking back a character; `false` when there is no
/// console. Waits for the line: the receiver is polled until interrupts exist.
pub fn read_line(line: &mut alloc::string::String) -> bool {
    let Some(port) = PORT.get() else {
        return false;
    };
    let mut bytes = alloc::vec::Vec::new();
    loop {
        let Some(b) = port.try_read_byte() else {
            core::hint::spin_loop();
            continue;
        };
        let _guard = LOCK.lock();
        match b {
            b'\r' | b'\n' => {
                let _ = Writer(port).write_str("\n");
                break;
            }
            // Backspace and DEL: take back the last character on the screen too.
            0x08 | 0x7f => {
                if bytes.pop().is_some() {
                    let _ = Writer(port).write_str("\x08 \x08");
                }
            }
            _ => {
                bytes.push(b);
                port.write_byte(b);
            }
        }
    }
    line.push_str(&alloc::string::String::from_utf8_lossy(&bytes));
    true
}

/// Waits until the port has sent everything (before powering off).
pub fn flush() {
    if let Some(port) = PORT.get() {
        port.flush();
    }
}

#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
