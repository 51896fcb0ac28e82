//! The kernel's reports in the formats of Linux's `/proc` files, as text: `/proc/meminfo`,
//! `/proc/buddyinfo`, `/proc/slabinfo`, `/proc/vmstat` (the paging counters), a `/proc/zoneinfo`
//! summary, `/proc/iomem` and `/proc/swaps`. What the application API's `ferrite::proc` returns
//! and the kernel's own jobs print. Owns the assembly of each report from the mechanisms'
//! figures; must never change a count (reports only read), and formats nothing itself that a
//! mechanism already formats (mm::vmstat, mm::meminfo, machine::report).
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

/// `/proc/meminfo` as text.
#[cfg(target_os = "none")]
pub fn meminfo() -> String {
    meminfo_values().format()
}

/// `/proc/meminfo` as values: the page allocator's totals, the swap cache and swap, and what the
/// boot reserved (RAM outside the allocator, the image, the boot heap), in bytes.
#[cfg(target_os = "none")]
pub fn meminfo_values() -> crate::mm::meminfo::MemInfo {
    let mut info = crate::mm::meminfo::MemInfo::default();
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
    if let Some(k) = crate::kernel::get() {
        info.push("KernelImage", k.boot.image.size);
    }
    let (heap_used, heap_total) = crate::mm::early_heap::usage();
    info.push("BootHeapUsed", heap_used as u64);
    info.push("BootHeapTotal", heap_total as u64);
    info
}

/// `/proc/buddyinfo` (the per-CPU lists drained first, so every free page is counted once).
#[cfg(target_os = "none")]
pub fn buddyinfo() -> String {
    let pages = &crate::mm::init::PAGES;
    pages.with(|a| a.drain_pcp());
    lines(pages.snapshot().map(|s| s.buddyinfo()).unwrap_or_default())
}

/// A `/proc/zoneinfo` summary: each zone's range, free pages and watermarks.
#[cfg(target_os = "none")]
pub fn zoneinfo() -> String {
    let pages = &crate::mm::init::PAGES;
    lines(pages.snapshot().map(|s| s.zoneinfo()).unwrap_or_default())
}

/// `/proc/slabinfo`, version 2.1, for kmalloc's caches.
#[cfg(target_os = "none")]
pub fn slabinfo() -> String {
    let mut out = String::from("slabinfo - version: 2.1\n");
    out.push_str(
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n",
    );
    if let Some(k) = crate::mm::heap::kmalloc_caches() {
        for cache in k.caches() {
            let _ = writeln!(out, "{}", cache.slabinfo());
        }
    }
    out
}

/// `/proc/vmstat`'s paging counters, one `name value` line each.
pub fn vmstat() -> String {
    let mut out = String::new();
    for (name, value) in crate::mm::vmstat::vmstat() {
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// `/proc/iomem`: the machine's physical memory map.
pub fn iomem() -> String {
    crate::kernel::get()
        .map(|k| crate::machine::report::iomem(&k.machine))
        .unwrap_or_default()
}

/// `/proc/swaps`: the active swap area, in Linux's columns (sizes in KiB).
pub fn swaps() -> String {
    let mut out = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    let swap = crate::mm::swapfile::SWAP.lock();
    if let Some(s) = swap.as_ref() {
        let (total, free) = (s.area.total_bytes(), s.area.free_bytes());
        out.push_str(&format!(
            "/dev/{}\t\t\t\tpartition\t{}\t\t{}\t\t-2\n",
            s.disk.name(),
            total / 1024,
            (total - free) / 1024
        ));
    }
    out
}

#[cfg(target_os = "none")]
fn lines(lines: alloc::vec::Vec<String>) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}
