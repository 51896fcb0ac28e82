//! Ferrite's application API: what a program running on Ferrite uses, and nothing of the kernel
//! beyond it. An application is a crate with a `#[ferrite::main]` function:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! #[ferrite::main]
//! fn main() {
//!     ferrite::println!("hello from {}", ferrite::env::app_name());
//! }
//! ```
//!
//! The kernel boots, maps the application's stack and heap in its own half of the address space,
//! calls `main`, and powers the machine off with its status (a `Result`'s `Err` or a panic is a
//! failure). The modules: [`mem`] (regions of the application's memory, `mmap`-style), [`block`]
//! (the disks: listed, opened by name, read and written in sectors), [`proc`] (the kernel's
//! reports, as values and as Linux's `/proc` text), [`bench`](mod@bench) (the kernel's own
//! measurements, for benchmark programs), [`env`](mod@env) (the application's own
//! options and arguments), [`thread`] (threads that share the application's memory, sleep and
//! wait), [`time`] (a monotonic clock), [`io`] (lines typed on the console), and
//! [`println!`]/[`print!`] for the console; `log`'s
//! macros print through the kernel's logger.
//!
//! Every example in this documentation is built into one application and run under QEMU by
//! `make test` (`scripts/check-doc-examples`).
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bench;
pub mod block;
pub mod env;
pub mod io;
pub mod mem;
pub mod proc;
pub mod thread;
pub mod time;

pub use ferrite_macros::main;
pub use log;

/// How an application ended: the machine's exit status under QEMU (with semihosting) and in
/// the boot log.
///
/// ```ignore
/// #[ferrite::main]
/// fn main() -> ferrite::ExitStatus {
///     ferrite::ExitStatus::Success
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit status 0.
    Success,
    /// A non-zero exit status.
    Failure,
}

/// What `main` may return: `()`, [`ExitStatus`], or `Result<(), E>` with an `E` that displays
/// (an `Err` is printed as `Error: ...` and fails the run).
pub trait Termination {
    /// The exit status this value stands for (printing what it has to say first).
    fn report(self) -> ExitStatus;
}

impl Termination for () {
    fn report(self) -> ExitStatus {
        ExitStatus::Success
    }
}

impl Termination for ExitStatus {
    fn report(self) -> ExitStatus {
        self
    }
}

impl<E: core::fmt::Display> Termination for Result<(), E> {
    fn report(self) -> ExitStatus {
        match self {
            Ok(()) => ExitStatus::Success,
            Err(e) => {
                println!("Error: {e}");
                ExitStatus::Failure
            }
        }
    }
}

/// One option an application takes on the command line as `<name>.<key>=<value>`: the boot
/// checks each before `main` runs and stops with one line naming the option and what it
/// accepts. Declared in a static and given to `#[ferrite::main(options = ...)]`.
///
/// ```ignore
/// static OPTIONS: &[ferrite::AppOption] = &[ferrite::AppOption {
///     key: "records",
///     accepts: "a whole number of records",
///     valid: |v| v.parse::<u64>().is_ok(),
/// }];
///
/// #[ferrite::main(options = OPTIONS)]
/// fn main() {
///     let records = ferrite::env::option("records").unwrap_or("1000");
///     ferrite::println!("{records} records");
/// }
/// ```
pub use ferrite_kernel::runtime::JobOption as AppOption;

/// Prints to the console (the serial port), like `std::print!`.
///
/// ```ignore
/// ferrite::print!("{} + {} = ", 1, 1);
/// ferrite::println!("{}", 2);
/// ```
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::__rt::print(format_args!($($arg)*)) };
}

/// Prints a line to the console (the serial port), like `std::println!`.
///
/// ```ignore
/// ferrite::println!("hello");
/// ```
#[macro_export]
macro_rules! println {
    () => { $crate::__rt::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::__rt::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Runs `f` in kernel context: every entry point into the kernel that may allocate and does not
/// enter kernel context itself (the reports, the console; the address-space calls of `mem` do,
/// in `mm::app_space`) goes through it, so what the kernel allocates meanwhile (under its own
/// locks, which the fault handler may need) comes from the kernel's heap, never from the
/// application's swappable one. A value handed back is freed where it came from, whoever drops
/// it.
pub(crate) fn in_kernel<R>(f: impl FnOnce() -> R) -> R {
    let _kernel = ferrite_kernel::mm::context::Context::enter_kernel();
    f()
}

/// What `#[ferrite::main]` and the macros expand to; not part of the API.
#[doc(hidden)]
pub mod __rt {
    pub use ferrite_kernel::kernel::Kernel;
    pub use ferrite_kernel::register_app;
    pub use ferrite_kernel::runtime::{Job, JobStatus};

    /// The console's `print`.
    pub fn print(args: core::fmt::Arguments) {
        ferrite_kernel::console::print(args);
    }

    /// What `main` returned, as the job's status.
    pub fn report<T: crate::Termination>(value: T) -> JobStatus {
        match value.report() {
            crate::ExitStatus::Success => JobStatus::Success,
            crate::ExitStatus::Failure => JobStatus::Failure,
        }
    }
}
