//! The console's input: lines typed on the serial port (QEMU's standard input under `make run`
//! and `cargo run`). Output is [`println!`](crate::println) and [`print!`](crate::print).
//!
//! ```ignore
//! let mut name = alloc::string::String::new();
//! ferrite::print!("name? ");
//! ferrite::io::read_line(&mut name);
//! ferrite::println!("hello, {name}");
//! ```
#![forbid(unsafe_code)]

use alloc::string::String;

/// Reads one line from the console and appends it to `line` without its end (`\n` or `\r`),
/// echoing the characters as they arrive; backspace takes one back. Waits for the line. Returns
/// the bytes appended, or `None` when the machine has no console.
pub fn read_line(line: &mut String) -> Option<usize> {
    let before = line.len();
    crate::in_kernel(|| ferrite_kernel::console::read_line(line)).then(|| line.len() - before)
}
