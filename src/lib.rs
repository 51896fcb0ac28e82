//! Ferrite: a single-address-space aarch64 unikernel whose heart is a Linux-style memory manager.
//!
//! This library holds everything but the boot order (which is `src/main.rs`). The portable parts
//! (`machine`, `mm`, `cmdline`, `ktest`'s reporting, `swap_setup`'s translation of `swap=`) build
//! for the host too and are tested there; only `arch::aarch64` touches system registers, assembly
//! and barriers, and only the kernel build (`target_os = "none"`) links it in.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod app;
pub mod arch;
pub mod cmdline;
pub mod console;
pub mod drivers;
pub mod kernel;
pub mod ktest;
pub mod machine;
pub mod mm;
pub mod swap_setup;

#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
mod panic;
