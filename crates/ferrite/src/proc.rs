//! The kernel's reports, in the formats of Linux's `/proc` files (text, one `String` each) and,
//! for the counters a program compares before and after, as values.
//!
//! ```ignore
//! ferrite::print!("{}", ferrite::proc::meminfo());
//! let before = ferrite::proc::vmstat_value("pgmajfault");
//! ```
#![forbid(unsafe_code)]

use alloc::string::String;

/// `/proc/meminfo`'s lines as `(label, bytes)` pairs (`MemTotal`, `MemFree`, `SwapTotal`, ...),
/// in the order [`meminfo`] prints them.
///
/// ```ignore
/// let free = ferrite::proc::meminfo_value("MemFree").unwrap();
/// ```
pub fn meminfo_values() -> alloc::vec::Vec<(&'static str, u64)> {
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
/// `pgsteal`, `nr_swapcached`), one `name value` line each.
pub fn vmstat() -> String {
    crate::in_kernel(ferrite_kernel::procfs::vmstat)
}

/// The paging counters as `(name, value)` pairs, named as in [`vmstat`].
pub fn vmstat_values() -> [(&'static str, u64); 7] {
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

/// `/proc/slabinfo` (version 2.1) for the kernel's kmalloc caches.
pub fn slabinfo() -> String {
    crate::in_kernel(ferrite_kernel::procfs::slabinfo)
}

/// A `/proc/zoneinfo` summary: each zone's range, free pages and watermarks.
pub fn zoneinfo() -> String {
    crate::in_kernel(ferrite_kernel::procfs::zoneinfo)
}

/// `/proc/swaps`: the active swap area (sizes in KiB).
pub fn swaps() -> String {
    crate::in_kernel(ferrite_kernel::procfs::swaps)
}

/// `/proc/iomem`: the machine's physical memory map.
pub fn iomem() -> String {
    crate::in_kernel(ferrite_kernel::procfs::iomem)
}
