//! `run=demo` (the default): what Ferrite found on this machine (the boot log's description, then
//! a `/proc/iomem`-style map) and its memory in `/proc/meminfo` form.

use log::info;

use super::{Job, JobStatus};
use crate::kernel::Kernel;
use crate::mm::meminfo::MemInfo;

pub const JOB: Job = Job {
    name: "demo",
    about: "print the machine description and a memory summary",
    main: demo,
};

/// The memory summary as far as the boot knows it: RAM the allocators will manage (RAM less every
/// reservation) and what the boot heap holds.
pub fn meminfo(kernel: &Kernel) -> MemInfo {
    let m = &kernel.machine;
    let total = m.ram_bytes() - m.reserved_bytes();
    let (heap_used, _) = early_heap_usage();
    let mut info = MemInfo::default();
    info.push("MemTotal", total);
    info.push("MemFree", total);
    info.push("MemAvailable", total);
    info.push("Reserved", m.reserved_bytes());
    info.push("KernelImage", kernel.boot.image.size);
    info.push("BootHeapUsed", heap_used as u64);
    info
}

#[cfg(target_os = "none")]
fn early_heap_usage() -> (usize, usize) {
    crate::mm::early_heap::usage()
}

#[cfg(not(target_os = "none"))]
fn early_heap_usage() -> (usize, usize) {
    (0, 0)
}

fn demo(kernel: &'static Kernel) -> JobStatus {
    // The boot log above already described the machine line by line; here are the reports.
    info!(
        "Ferrite demo: {} with {} CPU(s)",
        kernel.machine.model, kernel.machine.cpus
    );
    crate::kprintln!("/proc/iomem:");
    crate::kprint!("{}", crate::machine::report::iomem(&kernel.machine));
    crate::kprintln!("/proc/meminfo:");
    crate::kprint!("{}", meminfo(kernel).format());
    JobStatus::Success
}
