//! kswapd (Linux's `kswapd0`): the kernel thread that reclaims in the background. An allocation
//! that crosses a zone's low watermark wakes it through the page allocator's hook
//! (`wakeup_kswapd`); it reclaims, a batch at a time, until the zone has its high watermark free
//! or reclaim frees nothing more, then sleeps again. Allocations reclaim for themselves (direct
//! reclaim, `allocstall`) only when they reach the min watermark, where kswapd did not keep up.
//! Owns the thread and its wake-up; the reclaim itself is the memory manager's (`vmscan`), and
//! `vm.swappiness` weighs what it takes. Never runs in interrupt context: the hook only marks and
//! wakes.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::mm::init::PAGES;
use crate::mm::zone::ZoneId;
use crate::sched::WaitQueue;

static WAIT: WaitQueue = WaitQueue::new();
static WANTED: AtomicBool = AtomicBool::new(false);
/// The zone of the last wake-up (its index in `ZoneId`'s order).
static ZONE: AtomicU8 = AtomicU8::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The page allocator's hook: marks the work and wakes kswapd (cheap, any context).
fn wakeup_kswapd(zone: ZoneId) {
    if RUNNING.load(Ordering::Relaxed) {
        return; // at work already: it rechecks the watermark after each batch
    }
    ZONE.store(zone as u8, Ordering::Relaxed);
    if !WANTED.swap(true, Ordering::Relaxed) {
        WAIT.wake_up();
    }
}

/// Starts kswapd and installs its wake-up in the page allocator.
pub fn start() -> Result<(), crate::sched::SpawnError> {
    crate::sched::spawn("kswapd0", true, alloc::boxed::Box::new(kswapd))?;
    PAGES.set_kswapd_hook(wakeup_kswapd);
    Ok(())
}

fn kswapd() {
    loop {
        WAIT.wait_event(|| WANTED.load(Ordering::Relaxed));
        RUNNING.store(true, Ordering::Relaxed);
        WANTED.store(false, Ordering::Relaxed);
        crate::mm::vmstat::PAGEOUTRUN.fetch_add(1, Ordering::Relaxed);
        let zone = crate::mm::zone::ZONES
            .get(ZONE.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(crate::mm::zone::ZONES[0]);
        while !PAGES.zone_balanced(zone) {
            if PAGES.kswapd_reclaim(zone) == 0 {
                break; // nothing more to take: direct reclaim or the OOM report decides
            }
            // Let the application run between batches when its slice says so.
            crate::sched::cond_resched();
        }
        RUNNING.store(false, Ordering::Relaxed);
    }
}
