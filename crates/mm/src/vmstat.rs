//! The memory manager's counters and reports in Linux's formats (`mm/vmstat.c`): the paging
//! events `/proc/vmstat` lists (faults, swap I/O, reclaim's scans and steals, the swap cache's
//! size), and, from a snapshot of the page allocator, `/proc/meminfo`'s first lines,
//! `/proc/buddyinfo`, a `/proc/zoneinfo`-like summary, the boot's zone ranges, and the
//! free-against-watermarks line `show_free_areas` prints (the line forms format without
//! allocating, for the out-of-memory report). The mechanisms count; this module only holds the
//! counters and formats: it never takes the allocator's lock.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::page_alloc::{Snapshot, ZoneSnapshot};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};

/// Faults on the application's pages handled (`pgfault`), and those that read from swap
/// (`pgmajfault`).
pub static PGFAULT: AtomicU64 = AtomicU64::new(0);
pub static PGMAJFAULT: AtomicU64 = AtomicU64::new(0);
/// Pages written to swap (`pswpout`) and read back (`pswpin`).
pub static PSWPOUT: AtomicU64 = AtomicU64::new(0);
pub static PSWPIN: AtomicU64 = AtomicU64::new(0);
/// Pages reclaim looked at, and pages it freed (written to swap, or dropped clean).
pub static PGSCAN: AtomicU64 = AtomicU64::new(0);
pub static PGSTEAL: AtomicU64 = AtomicU64::new(0);
/// Pages in memory whose copy on swap is still valid (`nr_swapcached`, Linux's `SwapCached`):
/// read back and not written since. Reclaim drops such a page without writing it.
pub static SWAPCACHE: AtomicU64 = AtomicU64::new(0);
/// Access-flag faults taken (software access-flag management only; none where the hardware
/// sets the flag).
pub static AF_FAULTS: AtomicU64 = AtomicU64::new(0);
/// Counter ticks spent in reclaim's swap-out and in faults' swap-in, device waits included
/// (benchmarks subtract the driver's wait ticks; not in `/proc/vmstat`).
pub static SWAPOUT_TICKS: AtomicU64 = AtomicU64::new(0);
pub static SWAPIN_TICKS: AtomicU64 = AtomicU64::new(0);

/// The same, split by who reclaimed: kswapd in the background, or an allocation that had to
/// reclaim itself (direct reclaim, which also counts an `allocstall`).
pub static PGSCAN_KSWAPD: AtomicU64 = AtomicU64::new(0);
pub static PGSCAN_DIRECT: AtomicU64 = AtomicU64::new(0);
pub static PGSTEAL_KSWAPD: AtomicU64 = AtomicU64::new(0);
pub static PGSTEAL_DIRECT: AtomicU64 = AtomicU64::new(0);
pub static ALLOCSTALL: AtomicU64 = AtomicU64::new(0);
/// Times kswapd was woken (`pageoutrun`).
pub static PAGEOUTRUN: AtomicU64 = AtomicU64::new(0);
/// Whether the reclaim running now is kswapd's (set around kswapd's reclaim; one CPU).
pub static RECLAIMER_IS_KSWAPD: AtomicBool = AtomicBool::new(false);

/// Counts `n` in `total` and in kswapd's or direct reclaim's share, whichever runs now.
fn count_reclaim(n: u64, total: &AtomicU64, kswapd: &AtomicU64, direct: &AtomicU64) {
    total.fetch_add(n, Relaxed);
    let share = if RECLAIMER_IS_KSWAPD.load(Relaxed) {
        kswapd
    } else {
        direct
    };
    share.fetch_add(n, Relaxed);
}

/// Counts `n` pages scanned by the reclaim running now.
pub fn count_scanned(n: u64) {
    count_reclaim(n, &PGSCAN, &PGSCAN_KSWAPD, &PGSCAN_DIRECT);
}

/// Counts `n` pages freed by the reclaim running now.
pub fn count_stolen(n: u64) {
    count_reclaim(n, &PGSTEAL, &PGSTEAL_KSWAPD, &PGSTEAL_DIRECT);
}

/// How many counters [`vmstat`] gives.
pub const VMSTAT_COUNTERS: usize = 13;

/// `/proc/vmstat`: the paging counters, as Linux names them.
pub fn vmstat() -> [(&'static str, u64); VMSTAT_COUNTERS] {
    [
        ("pgfault", PGFAULT.load(Relaxed)),
        ("pgmajfault", PGMAJFAULT.load(Relaxed)),
        ("pswpin", PSWPIN.load(Relaxed)),
        ("pswpout", PSWPOUT.load(Relaxed)),
        ("pgscan", PGSCAN.load(Relaxed)),
        ("pgsteal", PGSTEAL.load(Relaxed)),
        ("nr_swapcached", SWAPCACHE.load(Relaxed)),
        ("pgscan_kswapd", PGSCAN_KSWAPD.load(Relaxed)),
        ("pgscan_direct", PGSCAN_DIRECT.load(Relaxed)),
        ("pgsteal_kswapd", PGSTEAL_KSWAPD.load(Relaxed)),
        ("pgsteal_direct", PGSTEAL_DIRECT.load(Relaxed)),
        ("allocstall", ALLOCSTALL.load(Relaxed)),
        ("pageoutrun", PAGEOUTRUN.load(Relaxed)),
    ]
}

/// One zone's `/proc/buddyinfo` line (`Node 0, zone      DMA      0      1 ...`), formatted
/// without allocating.
pub struct BuddyInfoLine<'a>(pub &'a ZoneSnapshot);

impl core::fmt::Display for BuddyInfoLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Node 0, zone {:>8} ", self.0.id.name())?;
        for n in self.0.buddy {
            write!(f, "{n:>6} ")?;
        }
        Ok(())
    }
}

/// One zone's free memory against its watermarks, as Linux's `show_free_areas` prints it
/// (`DMA free:4096kB min:1016kB low:1272kB high:1528kB managed:124928kB`), without allocating.
pub struct ZoneFreeLine<'a>(pub &'a ZoneSnapshot);

impl core::fmt::Display for ZoneFreeLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let z = self.0;
        let kb = |pages: u64| pages * (PAGE_SIZE / 1024);
        write!(
            f,
            "{} free:{}kB min:{}kB low:{}kB high:{}kB managed:{}kB",
            z.id.name(),
            kb(z.free),
            kb(z.watermark[0]),
            kb(z.watermark[1]),
            kb(z.watermark[2]),
            kb(z.managed)
        )
    }
}

impl Snapshot {
    /// `/proc/meminfo`'s first lines: total, free and available (free minus the high
    /// watermarks), in bytes.
    pub fn meminfo(&self) -> [(&'static str, u64); 3] {
        let total = self.zones.iter().map(|z| z.managed).sum::<u64>() * PAGE_SIZE;
        let free = self.zones.iter().map(|z| z.free).sum::<u64>() * PAGE_SIZE;
        let reserve = self.zones.iter().map(|z| z.watermark[2]).sum::<u64>() * PAGE_SIZE;
        [
            ("MemTotal", total),
            ("MemFree", free),
            ("MemAvailable", free.saturating_sub(reserve)),
        ]
    }

    /// The populated zones.
    pub fn populated(&self) -> impl Iterator<Item = &ZoneSnapshot> {
        self.zones.iter().filter(|z| z.present > 0)
    }

    /// `/proc/buddyinfo` lines, one per populated zone.
    pub fn buddyinfo(&self) -> Vec<String> {
        self.populated()
            .map(|z| format!("{}", BuddyInfoLine(z)))
            .collect()
    }

    /// A `/proc/zoneinfo`-like summary: spans, counts, watermarks and protections.
    pub fn zoneinfo(&self) -> Vec<String> {
        let mut out = Vec::new();
        for z in &self.zones {
            out.push(format!("Node 0, zone {:>8}", z.id.name()));
            if z.present == 0 {
                out.push("  (empty)".into());
                continue;
            }
            out.push(format!(
                "  range    [mem {:#011x}-{:#011x}]",
                z.start_pfn << PAGE_SHIFT,
                (z.end_pfn << PAGE_SHIFT) - 1
            ));
            out.push(format!("  pages free     {}", z.free));
            out.push(format!("        min      {}", z.watermark[0]));
            out.push(format!("        low      {}", z.watermark[1]));
            out.push(format!("        high     {}", z.watermark[2]));
            out.push(format!("        spanned  {}", z.end_pfn - z.start_pfn));
            out.push(format!("        present  {}", z.present));
            out.push(format!("        managed  {}", z.managed));
            out.push(format!(
                "        protection: ({}, {}, {})",
                z.lowmem_reserve[0], z.lowmem_reserve[1], z.lowmem_reserve[2]
            ));
        }
        out
    }

    /// Zone boundaries as Linux prints them at boot.
    pub fn zone_ranges(&self) -> Vec<String> {
        let mut out = alloc::vec![String::from("Zone ranges:")];
        for z in &self.zones {
            if z.present == 0 {
                out.push(format!("  {:<8} empty", z.id.name()));
            } else {
                out.push(format!(
                    "  {:<8} [mem {:#018x}-{:#018x}] {} pages managed",
                    z.id.name(),
                    z.start_pfn << PAGE_SHIFT,
                    (z.end_pfn << PAGE_SHIFT) - 1,
                    z.managed
                ));
            }
        }
        out
    }
}
