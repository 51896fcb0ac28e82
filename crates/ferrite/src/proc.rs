//! The kernel's reports, in the formats of Linux's `/proc` files (text, one `String` each) and
//! as values a program can compute with: `meminfo`, `vmstat`, `buddyinfo`, `slabinfo` and
//! `swaps` (`*_values`, and `meminfo_value`/`vmstat_value` for one line).
//!
//! ```ignore
//! ferrite::print!("{}", ferrite::proc::meminfo());
//! let before = ferrite::proc::vmstat_value("pgmajfault");
//! ```
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

/// `/proc/meminfo`'s lines as `(label, bytes)` pairs (`MemTotal`, `MemFree`, `SwapTotal`, ...),
/// in the order [`meminfo`] prints them.
///
/// ```ignore
/// let free = ferrite::proc::meminfo_value("MemFree").unwrap();
/// ```
pub fn meminfo_values() -> Vec<(&'static str, u64)> {
    crate::in_kernel(|| ferrite_kernel::procfs::meminfo_values().lines)
}

/// One `/proc/meminfo` line's value in bytes, by its label; `None` for a label it does not have.
pub fn meminfo_value(label: &str) -> Option<u64> {
    value_of(meminfo_values(), label)
}

/// `/proc/meminfo`.
pub fn meminfo() -> String {
    crate::in_kernel(ferrite_kernel::procfs::meminfo)
}

/// `/proc/vmstat`'s paging counters (`pgfault`, `pgmajfault`, `pswpin`, `pswpout`, `pgscan`,
/// `pgsteal`, `nr_swapcached`, `pgscan_kswapd`, `pgscan_direct`, `pgsteal_kswapd`,
/// `pgsteal_direct`, `allocstall`, `pageoutrun`), one `name value` line each.
pub fn vmstat() -> String {
    crate::in_kernel(ferrite_kernel::procfs::vmstat)
}

/// The paging counters as `(name, value)` pairs, named as in [`vmstat`].
pub fn vmstat_values() -> [(&'static str, u64); ferrite_kernel::mm::vmstat::VMSTAT_COUNTERS] {
    ferrite_kernel::mm::vmstat::vmstat()
}

/// One paging counter by its `/proc/vmstat` name, `None` for a name it does not have.
///
/// ```ignore
/// let faults = ferrite::proc::vmstat_value("pgfault").unwrap();
/// ```
pub fn vmstat_value(name: &str) -> Option<u64> {
    value_of(vmstat_values(), name)
}

/// The value named `name` among `(name, value)` pairs.
fn value_of(pairs: impl IntoIterator<Item = (&'static str, u64)>, name: &str) -> Option<u64> {
    pairs.into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// `/proc/buddyinfo`: free blocks per order, per zone.
pub fn buddyinfo() -> String {
    crate::in_kernel(ferrite_kernel::procfs::buddyinfo)
}

/// A line of `/proc/buddyinfo` as values: a zone's free blocks per order.
pub use ferrite_kernel::procfs::BuddyInfo;

/// `/proc/buddyinfo` as values, one [`BuddyInfo`] per populated zone.
///
/// ```ignore
/// for zone in ferrite::proc::buddyinfo_values() {
///     let free_pages: u64 = zone.free.iter().enumerate().map(|(order, n)| n << order).sum();
///     ferrite::println!("{}: {free_pages} free pages", zone.zone);
/// }
/// ```
pub fn buddyinfo_values() -> Vec<BuddyInfo> {
    crate::in_kernel(ferrite_kernel::procfs::buddyinfo_values)
}

/// `/proc/slabinfo` (version 2.1) for the kernel's kmalloc caches.
pub fn slabinfo() -> String {
    crate::in_kernel(ferrite_kernel::procfs::slabinfo)
}

/// A line of `/proc/slabinfo` as values: one cache's objects and slabs.
pub use ferrite_kernel::mm::slab::SlabInfo;

/// `/proc/slabinfo` as values, one [`SlabInfo`] per kmalloc cache.
///
/// ```ignore
/// let in_use: u64 = ferrite::proc::slabinfo_values()
///     .iter()
///     .map(|c| c.active_objs * c.objsize)
///     .sum();
/// ```
pub fn slabinfo_values() -> Vec<SlabInfo> {
    crate::in_kernel(ferrite_kernel::procfs::slabinfo_values)
}

/// A `/proc/zoneinfo` summary: each zone's range, free pages and watermarks.
pub fn zoneinfo() -> String {
    crate::in_kernel(ferrite_kernel::procfs::zoneinfo)
}

/// `/proc/swaps`: the active swap area (sizes in KiB).
pub fn swaps() -> String {
    crate::in_kernel(ferrite_kernel::procfs::swaps)
}

/// A line of `/proc/swaps` as values: an active swap area.
pub use ferrite_kernel::procfs::SwapInfo;

/// `/proc/swaps` as values: the active swap areas (none without swap).
///
/// ```ignore
/// for area in ferrite::proc::swaps_values() {
///     ferrite::println!("{}: {} of {} KiB used", area.filename, area.used_kib, area.size_kib);
/// }
/// ```
pub fn swaps_values() -> Vec<SwapInfo> {
    crate::in_kernel(ferrite_kernel::procfs::swaps_values)
}

/// `/proc/interrupts`: each interrupt the kernel handles (number, count, controller, hardware
/// line, trigger, name: `arch_timer` for the timer).
///
/// ```ignore
/// ferrite::print!("{}", ferrite::proc::interrupts());
/// ```
pub fn interrupts() -> String {
    crate::in_kernel(ferrite_kernel::procfs::interrupts)
}

/// `/proc/iomem`: the machine's physical memory map.
pub fn iomem() -> String {
    crate::in_kernel(ferrite_kernel::procfs::iomem)
}
