//! Portable memory management, built on the address types of `crate::addr`. Owns the layout, the
//! page tables, the early allocator, zones, slab, vmalloc, faults and swap. Must never touch system
//! registers or name the arch layer or a driver: what it needs from them are ports the kernel
//! installs (`cpu`, `kspace`, `blkdev`). The logic is tested on the host (the application's
//! address space, `addr_space` with `mmap`, `memory`, `vmscan` and `swap_state`, over simulated
//! memory and a fake disk); the kernel's instances (`kspace`, `app_space`, `ioremap`, `vmap`,
//! `oom`, the boot heap) exist in the kernel build only; `host_ram`, host memory as page frames,
//! in the host builds only.

pub mod addr_space;
#[cfg(target_os = "none")]
pub mod app_space;
pub mod blkdev;
pub mod cpu;
pub mod dma;
#[cfg(target_os = "none")]
pub mod early_heap;
#[cfg(test)]
pub(crate) mod fake_disk;
pub mod gfp;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(any(test, feature = "host-tools"))]
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
