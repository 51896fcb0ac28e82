//! Out-of-memory reports, for the two places memory can run out for good: a fault of the
//! application that finds no page (after reclaim and swap did what they could), and an allocation
//! through the Rust global allocator that fails (the kernel's own, from `kmalloc`, or the
//! application's, from its heap). A report about memory,
//! not a crash dump: what was asked, `/proc/meminfo`-style lines, `/proc/buddyinfo` and each
//! zone's free memory against its watermarks, and the swap state; the caller then stops the job
//! with a failure. Printed without allocating and without waiting for a lock (memory is out, and
//! the code that ran out may hold one), through the print function the caller gives (the
//! console's emergency path). Kernel only.
#![forbid(unsafe_code)]

use core::fmt::Arguments;
use core::sync::atomic::Ordering;

use super::init::PAGES;
use super::meminfo::Line;
use super::swapfile;
use super::vmstat::{BuddyInfoLine, ZoneFreeLine};
use crate::addr::PAGE_SIZE;

/// The application's `access` ("read", "write", "execute") at `addr` needed a page and none was
/// left. Prints the report; the caller ends the job.
pub fn report_application(addr: u64, access: &str, print: &dyn Fn(Arguments)) {
    let faults = super::vmstat::PGFAULT.load(Ordering::Relaxed);
    match super::app_space::region_at(addr) {
        Some(v) => print(format_args!(
            "out of memory: no page left for the application's {access} access at {addr:#x} in region [{:#x}-{:#x}) {} ({}), after {faults} page faults\n",
            v.start, v.end, v.name, v.prot
        )),
        None => print(format_args!(
            "out of memory: no page left for the application's {access} access at {addr:#x}, after {faults} page faults\n"
        )),
    }
    report_state(print);
}

/// The kernel asked for `size` bytes aligned to `align` (`None`: not known) and the allocator
/// had none. Prints the report; the caller stops.
pub fn report_kernel(size: usize, align: Option<usize>, print: &dyn Fn(Arguments)) {
    // In application context the global allocator serves from the application's heap, whose
    // region (not RAM) may be what ran out: say whose allocation it was.
    if super::heap::failed_in_application(size) {
        print(format_args!(
            "out of memory: the application's heap could not allocate {size} bytes (align {})\n",
            align.unwrap_or(1)
        ));
        return report_state(print);
    }
    match align {
        Some(align) => print(format_args!(
            "out of memory: the kernel could not allocate {size} bytes (align {align})\n"
        )),
        None => print(format_args!(
            "out of memory: the kernel could not allocate {size} bytes\n"
        )),
    }
    report_state(print);
}

/// The memory's state: meminfo lines, buddyinfo, each zone against its watermarks, swap.
pub fn report_state(print: &dyn Fn(Arguments)) {
    match PAGES.try_snapshot() {
        Some(snapshot) => {
            for (label, bytes) in snapshot.meminfo() {
                print(format_args!("{}\n", Line(label, bytes)));
            }
            let cached = super::vmstat::SWAPCACHE.load(Ordering::Relaxed) * PAGE_SIZE;
            print(format_args!("{}\n", Line("SwapCached", cached)));
            if let Some((total, free)) = swapfile::SWAP.try_totals() {
                print(format_args!("{}\n", Line("SwapTotal", total)));
                print(format_args!("{}\n", Line("SwapFree", free)));
            }
            for zone in snapshot.populated() {
                print(format_args!("{}\n", BuddyInfoLine(zone)));
            }
            for zone in snapshot.populated() {
                print(format_args!("{}\n", ZoneFreeLine(zone)));
            }
        }
        None => print(format_args!(
            "(the page allocator is busy: no zone state to show)\n"
        )),
    }
    match swapfile::SWAP.try_totals() {
        Some((0, _)) => print(format_args!(
            "swap: no swap area is active (a virtio-blk disk with a Linux swap header adds one)\n"
        )),
        Some((total, free)) => print(format_args!(
            "swap: {} of {} KiB in use{}\n",
            (total - free) / 1024,
            total / 1024,
            if free == 0 { " (full)" } else { "" }
        )),
        None => print(format_args!("swap: busy (its state cannot be read now)\n")),
    }
}
