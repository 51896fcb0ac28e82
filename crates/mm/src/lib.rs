//! Portable memory management, built on the address types of `ferrite-addr`. Owns the layout, the
//! page tables, the early allocator, zones, slab, vmalloc, faults and swap. Must never touch system
//! registers or name the arch layer or a driver: what it needs from them are ports the kernel
//! installs (`cpu`, `kspace`, `blkdev`). The logic is tested on the host (the application's
//! address space, `addr_space` with `mmap`, `memory`, `vmscan` and `swap_state`, over simulated
//! memory and a fake disk); the kernel's instances (`kspace`, `app_space`, `ioremap`, `vmap`,
//! `oom`, the boot heap) exist in the kernel build only; `host_ram`, host memory as page frames,
//! in the host builds only.
//!
//! A crate of its own, depending only on `ferrite-addr` and `ferrite-machine`: naming the arch
//! layer, a driver or the kernel is a build error. Unsafe code is denied but for named
//! exceptions, each file saying why at its top.
#![cfg_attr(not(any(test, feature = "host-ram")), no_std)]
#![deny(unsafe_code)]
// Small, named unsafe: every unsafe operation sits in its own block, with a `// SAFETY:` line
// saying why it holds, and every unsafe function says what its callers must uphold.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

use ferrite_addr as addr;
use ferrite_machine as machine;

pub mod addr_space;
#[cfg(target_os = "none")]
pub mod app_space;
pub mod blkdev;
pub mod context;
pub mod cpu;
pub mod dma;
#[cfg(target_os = "none")]
pub mod early_heap;
#[cfg(test)]
pub(crate) mod fake_disk;
pub mod gfp;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(any(test, feature = "host-ram"))]
pub mod host_ram;
pub mod init;
#[cfg(target_os = "none")]
pub mod ioremap;
pub mod kmalloc;
#[cfg(target_os = "none")]
pub mod kspace;
pub mod layout;
pub mod memblock;
pub mod meminfo;
pub mod memory;
pub mod mmap;
#[cfg(target_os = "none")]
pub mod oom;
pub mod page;
pub mod page_alloc;
pub mod page_io;
pub mod pgtable;
pub mod port;
pub mod slab;
pub mod swap_entry;
pub mod swap_header;
pub mod swap_slots;
pub mod swap_state;
pub mod swap_table;
pub mod swapfile;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod vma;
pub mod vmalloc;
#[cfg(target_os = "none")]
pub mod vmap;
pub mod vmscan;
pub mod vmstat;
pub mod zone;
