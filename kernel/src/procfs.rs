//! The kernel's reports in the formats of Linux's `/proc` files, as text: `/proc/meminfo`,
//! `/proc/buddyinfo`, `/proc/slabinfo`, `/proc/vmstat` (the paging counters), a `/proc/zoneinfo`
//! summary, `/proc/iomem` and `/proc/swaps`; and as values (meminfo, buddyinfo, slabinfo,
//! swaps; the vmstat counters come as values from mm::vmstat). What the application API's `ferrite::proc` returns
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

/// One line of `/proc/buddyinfo` as values: a populated zone's free blocks per order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuddyInfo {
    /// The NUMA node (always 0).
    pub node: u32,
    /// The zone's name (`DMA`, `DMA32`, `Normal`).
    pub zone: &'static str,
    /// Free blocks of each order, order 0 first.
    pub free: alloc::vec::Vec<u64>,
}

/// `/proc/buddyinfo` as values, one per populated zone (the per-CPU lists drained first).
#[cfg(target_os = "none")]
pub fn buddyinfo_values() -> alloc::vec::Vec<BuddyInfo> {
    let pages = &crate::mm::init::PAGES;
    pages.with(|a| a.drain_pcp());
    pages
        .snapshot()
        .map(|s| {
            s.populated()
                .map(|z| BuddyInfo {
                    node: 0,
                    zone: z.id.name(),
                    free: z.buddy.to_vec(),
                })
                .collect()
        })
        .unwrap_or_default()
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

/// `/proc/slabinfo`'s lines as values, one per kmalloc cache.
#[cfg(target_os = "none")]
pub fn slabinfo_values() -> alloc::vec::Vec<crate::mm::slab::SlabInfo> {
    crate::mm::heap::kmalloc_caches()
        .map(|k| k.caches().map(|c| c.slabinfo_values()).collect())
        .unwrap_or_default()
}

/// `/proc/vmstat`'s paging counters, one `name value` line each.
pub fn vmstat() -> String {
    let mut out = String::new();
    for (name, value) in crate::mm::vmstat::vmstat() {
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// `/proc/interrupts`: one row per requested interrupt, with its count.
#[cfg(target_os = "none")]
pub fn interrupts() -> String {
    crate::irq::proc_interrupts()
}

/// `/proc/iomem`: the machine's physical memory map.
pub fn iomem() -> String {
    crate::kernel::get()
        .map(|k| crate::machine::report::iomem(&k.machine))
        .unwrap_or_default()
}

/// One line of `/proc/swaps` as values: an active swap area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapInfo {
    /// The device, as Linux names it (`/dev/...`).
    pub filename: String,
    /// `partition` (a whole disk, as Linux reports a block device).
    pub kind: &'static str,
    /// The area's size in KiB.
    pub size_kib: u64,
    /// KiB in use.
    pub used_kib: u64,
    /// Its priority (`-2`: the first area swapon set up without a priority, as Linux numbers it).
    pub priority: i32,
}

/// `/proc/swaps` as values: the active swap areas (one at most today).
pub fn swaps_values() -> alloc::vec::Vec<SwapInfo> {
    // The swap device's name in the block registry (`vda`), asked before the swap lock is taken.
    #[cfg(target_os = "none")]
    let registered = crate::block::devices()
        .into_iter()
        .find(|d| d.state == crate::block::DiskState::Swap)
        .map(|d| d.name);
    #[cfg(not(target_os = "none"))]
    let registered: Option<String> = None;
    let swap = crate::mm::swapfile::SWAP.lock();
    swap.as_ref()
        .map(|s| {
            let (total, free) = (s.area.total_bytes(), s.area.free_bytes());
            alloc::vec![SwapInfo {
                filename: format!(
                    "/dev/{}",
                    registered.as_deref().unwrap_or_else(|| s.disk.name())
                ),
                kind: "partition",
                size_kib: total / 1024,
                used_kib: (total - free) / 1024,
                priority: -2,
            }]
        })
        .unwrap_or_default()
}

/// `/proc/swaps`: the active swap area, in Linux's columns (sizes in KiB).
pub fn swaps() -> String {
    let mut out = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    for a in swaps_values() {
        let _ = writeln!(
            out,
            "{}\t\t\t\t{}\t{}\t\t{}\t\t{}",
            a.filename, a.kind, a.size_kib, a.used_kib, a.priority
        );
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
