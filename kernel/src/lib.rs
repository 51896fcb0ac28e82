//! Ferrite: a single-address-space aarch64 unikernel whose heart is a Linux-style memory manager.
//!
//! This library holds everything but the boot order (which is `src/main.rs`). The portable parts
//! (`addr`, `machine`, `mm`, `cmdline`, `ktest`'s reporting, `swap_setup`'s translation of `swap=`)
//! build for the host too and are tested there; only `arch::aarch64` touches system registers,
//! assembly and barriers, and only the kernel build (`target_os = "none"`) links it in. Which part
//! may name which is checked by `scripts/check-layers` (see the README's *Layers*).
#![cfg_attr(not(test), no_std)]
// Small, named unsafe: every unsafe operation sits in its own block, with a `// SAFETY:` line
// saying why it holds, and every unsafe function says what its callers must uphold.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

// The parts below the kernel, each a crate of its own, under the names the kernel's code uses.
pub use ferrite_addr as addr;
pub use ferrite_machine as machine;
pub use ferrite_mm as mm;

pub mod app;
pub mod arch;
pub mod block;
#[cfg(target_os = "none")]
mod block_selftests;
pub mod cmdline;
pub mod console;
pub mod drivers;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
mod irq_selftests;
pub mod kernel;
#[cfg(target_os = "none")]
pub mod kswapd;
pub mod ktest;
#[cfg(target_os = "none")]
pub mod lockdep;
#[cfg(target_os = "none")]
mod lockdep_selftests;
#[cfg(target_os = "none")]
mod machine_selftests;
pub mod mm_bench;
#[cfg(target_os = "none")]
mod mm_selftests;
pub mod procfs;
#[cfg(target_os = "none")]
mod procfs_selftests;
pub mod runtime;
#[cfg(target_os = "none")]
pub mod sched;
#[cfg(target_os = "none")]
pub mod sched_bench;
#[cfg(target_os = "none")]
mod sched_selftests;
#[cfg(target_os = "none")]
pub mod start;
pub mod swap_setup;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod time;

#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
mod panic;
