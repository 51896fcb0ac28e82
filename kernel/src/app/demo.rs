//! `run=demo` (the default): what Ferrite found on this machine (the boot log's description, then
//! a `/proc/iomem`-style map) and its memory in `/proc/meminfo` form.
#![forbid(unsafe_code)]

use log::info;

use crate::kernel::Kernel;
use crate::mm::meminfo::MemInfo;
use crate::runtime::{Job, JobStatus};

pub const JOB: Job = Job {
    name: "demo",
    about: "print the machine description and a memory summary",
    main: demo,
    options: &[],
};

/// `/proc/meminfo`: the page allocator's totals, plus what the boot reserved and the boot heap.
#[cfg(target_os = "none")]
pub fn meminfo(kernel: &Kernel) -> MemInfo {
    let mut info = MemInfo::default();
    if let Some(lines) = crate::mm::init::PAGES.with(|a| a.meminfo()) {
        for (label, bytes) in lines {
            info.push(label, bytes);
        }
    }
    // RAM the allocator does not manage: firmware, image, tree, page metadata.
    let present = crate::mm::init::PAGES
        .with(|a| a.zones().iter().map(|z| z.present).sum::<u64>())
        .unwrap_or(0);
    let managed = crate::mm::init::PAGES
        .with(|a| a.managed_pages())
        .unwrap_or(0);
    let (swap_total, swap_free) = crate::mm::swapfile::SWAP.totals();
    info.push(
        "SwapCached",
        crate::mm::vmstat::SWAPCACHE.load(core::sync::atomic::Ordering::Relaxed)
            * crate::addr::PAGE_SIZE,
    );
    info.push("SwapTotal", swap_total);
    info.push("SwapFree", swap_free);
    info.push("Reserved", (present - managed) * crate::addr::PAGE_SIZE);
    info.push("KernelImage", kernel.boot.image.size);
    let (heap_used, heap_total) = crate::mm::early_heap::usage();
    info.push("BootHeapUsed", heap_used as u64);
    info.push("BootHeapTotal", heap_total as u64);
    info
}

#[cfg(not(target_os = "none"))]
pub fn meminfo(_kernel: &Kernel) -> MemInfo {
    MemInfo::default()
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
    #[cfg(target_os = "none")]
    {
        let pages = &crate::mm::init::PAGES;
        pages.with(|a| a.drain_pcp());
        crate::kprintln!("/proc/buddyinfo:");
        for line in pages.snapshot().map(|s| s.buddyinfo()).unwrap_or_default() {
            crate::kprintln!("{line}");
        }
        crate::kprintln!("/proc/slabinfo:");
        crate::kprintln!("slabinfo - version: 2.1");
        crate::kprintln!(
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
        );
        if let Some(k) = crate::mm::heap::kmalloc_caches() {
            for cache in k.caches() {
                crate::kprintln!("{}", cache.slabinfo());
            }
        }
        crate::kprintln!("/proc/vmstat (paging):");
        for (name, value) in crate::mm::vmstat::vmstat() {
            crate::kprintln!("{name} {value}");
        }
        crate::kprintln!("/proc/zoneinfo (summary):");
        for line in pages.snapshot().map(|s| s.zoneinfo()).unwrap_or_default() {
            crate::kprintln!("{line}");
        }
    }
    JobStatus::Success
}
