//! Self-tests of swap I/O on the running machine: pages written to the active swap area come
//! back byte for byte, a page changed on disk behind Ferrite's back is refused, and a full area,
//! a stale entry and a double free are errors. Without an active swap area (a boot without a
//! `mkswap`'d virtio-blk disk) they are skipped. They give back every slot they take.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use crate::arch::aarch64::timer;
use crate::ktest::TestError;
use crate::mm::page_io;
use crate::mm::swap_entry::SwapEntry;
use crate::mm::swapfile::{SwapError, SWAP};
use crate::mm::vmstat::{PSWPIN, PSWPOUT};
use crate::{kassert, kassert_eq, ktest};

const PAGE: usize = 4096;

#[repr(C, align(4096))]
struct Page([u8; PAGE]);

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

fn free_slots() -> Result<u64, TestError> {
    SWAP.lock()
        .as_ref()
        .map(|s| s.area.slots.free_slots())
        .ok_or(TestError::Skip(
            "no active swap area (attach a mkswap'd virtio-blk disk)".into(),
        ))
}

/// Bytes that depend on the page's index and on a per-run seed, so stale data from an earlier
/// run or a page in the wrong slot both fail.
fn fill(page: &mut [u8], seed: u64, index: u64) {
    for (i, w) in page.chunks_exact_mut(8).enumerate() {
        let v = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).rotate_left(17);
        w.copy_from_slice(&v.to_le_bytes());
    }
}

fn pages(n: usize, seed: u64) -> Vec<Box<Page>> {
    (0..n)
        .map(|i| {
            let mut p = Box::new(Page([0; PAGE]));
            fill(&mut p.0, seed, i as u64);
            p
        })
        .collect()
}

ktest!(swap_pages_come_back_byte_for_byte, {
    let free = free_slots()?;
    let seed = timer::ticks() | 1;
    let n = 40;
    let mut bufs = pages(n, seed);
    let (outs, ins) = (PSWPOUT.load(Relaxed), PSWPIN.load(Relaxed));
    let refs: Vec<&[u8]> = bufs.iter().map(|p| &p.0[..]).collect();
    let entries = SWAP.swap_out(&refs).map_err(fail)?;
    kassert_eq!(entries.len(), n);
    kassert_eq!(free_slots()?, free - n as u64);
    kassert_eq!(PSWPOUT.load(Relaxed), outs + n as u64);
    for p in bufs.iter_mut() {
        p.0.fill(0);
    }
    // Back in reverse order, each checked against what was written.
    let mut expect = Box::new(Page([0; PAGE]));
    for (i, &e) in entries.iter().enumerate().rev() {
        SWAP.swap_in(e, &mut bufs[i].0).map_err(fail)?;
        fill(&mut expect.0, seed, i as u64);
        kassert!(bufs[i].0 == expect.0, "page {i} ({e}) came back different");
    }
    kassert_eq!(PSWPIN.load(Relaxed), ins + n as u64);
    for &e in entries.iter() {
        SWAP.swap_free(e).map_err(fail)?;
    }
    kassert_eq!(free_slots()?, free);
    let again = SWAP.swap_free(entries[0]);
    kassert!(
        matches!(again, Err(SwapError::NotInUse(_))),
        "double free: {again:?}"
    );
    Ok(())
});

ktest!(swap_page_changed_on_disk_is_refused, {
    free_slots()?;
    let seed = timer::ticks() | 1;
    let mut bufs = pages(1, seed);
    let entry = SWAP.swap_out(&[&bufs[0].0[..]]).map_err(fail)?[0];
    // Flip one bit of the page on the disk itself.
    {
        let mut guard = SWAP.lock();
        let swap = guard.as_mut().ok_or_else(|| fail("swap went away"))?;
        let sector = swap.slot_sector(entry.slot());
        let mut raw = Box::new(Page([0; PAGE]));
        swap.disk
            .read_pages(sector, &mut [&mut raw.0[..]])
            .map_err(fail)?;
        raw.0[1234] ^= 0x10;
        swap.disk.write_pages(sector, &[&raw.0[..]]).map_err(fail)?;
    }
    let ins = PSWPIN.load(Relaxed);
    let r = SWAP.swap_in(entry, &mut bufs[0].0);
    kassert!(matches!(r, Err(SwapError::Checksum { .. })), "got {r:?}");
    // A refused page is not counted as read.
    kassert_eq!(PSWPIN.load(Relaxed), ins);
    SWAP.swap_free(entry).map_err(fail)?;
    Ok(())
});

ktest!(swap_full_and_stale_entries_are_errors, {
    let free = free_slots()?;
    let page = Box::new(Page([0x5a; PAGE]));
    let too_many: Vec<&[u8]> = (0..=free).map(|_| &page.0[..]).collect();
    let r = SWAP.swap_out(&too_many);
    kassert!(
        matches!(r, Err(SwapError::Full { .. })),
        "got {:?}",
        r.map(|e| e.len())
    );
    // A refused batch takes no slot.
    kassert_eq!(free_slots()?, free);
    // One call writes at most SWAP_BATCH_MAX pages.
    if free > page_io::SWAP_BATCH_MAX as u64 {
        let r = SWAP.swap_out(&too_many[..page_io::SWAP_BATCH_MAX + 1]);
        kassert!(matches!(r, Err(SwapError::TooMany { .. })));
        kassert_eq!(free_slots()?, free);
    }
    // An entry for a slot that holds no page: the last one, unless something uses it.
    let (last, used) = SWAP
        .lock()
        .as_ref()
        .map(|s| {
            let last = s.area.header.last_page as u64;
            (last, s.area.slots.in_use(last))
        })
        .ok_or_else(|| fail("swap went away"))?;
    if !used {
        let stale = SwapEntry::new(0, last).ok_or_else(|| fail("no entry for the last slot"))?;
        let mut buf = Box::new(Page([0; PAGE]));
        let r = SWAP.swap_in(stale, &mut buf.0);
        kassert!(matches!(r, Err(SwapError::NotInUse(_))), "got {r:?}");
    }
    Ok(())
});

ktest!(swap_write_errors_keep_pages_and_retire_slots, {
    let free = free_slots()?;
    let seed = timer::ticks() | 1;
    let page = pages(1, seed).pop().ok_or_else(|| fail("no page"))?;
    let batch: Vec<&[u8]> = (0..32).map(|_| &page.0[..]).collect();
    let mut held: Vec<SwapEntry> = Vec::new();
    let mut retired = 0u64;
    // 256 slots' worth: a disk that fails writes somewhere in them (the boot tests attach one
    // through QEMU's blkdebug) must fail a batch, which is then written elsewhere.
    for _ in 0..8 {
        match SWAP.swap_out(&batch) {
            Ok(entries) => held.extend(entries.iter().copied()),
            Err(e @ SwapError::Write { pages, .. }) => {
                log::warn!("swap self-test: {e}");
                retired += pages as u64;
                let entries = SWAP.swap_out(&batch).map_err(fail)?;
                held.extend(entries.iter().copied());
            }
            Err(e) => return Err(fail(e)),
        }
    }
    kassert_eq!(held.len(), 256);
    let mut back = Box::new(Page([0; PAGE]));
    for &e in &held {
        SWAP.swap_in(e, &mut back.0).map_err(fail)?;
        kassert!(back.0 == page.0, "{e} came back different");
        SWAP.swap_free(e).map_err(fail)?;
    }
    // Slots whose write failed are never handed out again.
    kassert_eq!(free_slots()?, free - retired);
    Ok(())
});

/// The application's view of a page: read (`write` = None) or written through its address, so
/// faults go through the real handler.
fn word(addr: u64, write: Option<u64>) -> u64 {
    // SAFETY: `addr` is inside a region the calling test mapped and has not unmapped; the
    // access may fault and is retried by the handler.
    unsafe {
        match write {
            Some(v) => {
                (addr as *mut u64).write_volatile(v);
                v
            }
            None => (addr as *const u64).read_volatile(),
        }
    }
}

ktest!(swap_cache_keeps_clean_pages_tied_to_their_slots, {
    use crate::mm::app_space;
    use crate::mm::vma::Prot;
    use crate::mm::vmstat::SWAPCACHE;
    free_slots()?;
    let n = 8u64;
    let len = n * PAGE as u64;
    let base = app_space::mmap(len, Prot::RW, "ktest-swapcache").map_err(fail)?;
    // What this region holds: (pages on swap, pages tied to their copy). The test counts its own
    // region's slots, never the area's free count across faults: a fault's allocation may run
    // reclaim, which sends other regions' pages (the application heap's, say) to swap.
    let held = || app_space::swap_slots_held(base, len);
    let value = |i: u64| 0x5ca1_ab1e_0000_0000 ^ base ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for i in 0..n * 512 {
        word(base + i * 8, Some(value(i)));
    }
    // Dirty pages go to swap: eight writes. madvise_pageout holds the page table throughout,
    // so no reclaim runs inside it and the area's counts move by exactly its own pages.
    let (out0, free0) = (PSWPOUT.load(Relaxed), free_slots()?);
    kassert_eq!(app_space::madvise_pageout(base, len).map_err(fail)?, n);
    kassert_eq!(PSWPOUT.load(Relaxed), out0 + n);
    kassert_eq!(free_slots()?, free0 - n);
    kassert_eq!(held(), (n, 0));
    // Read back: the pages are in memory and still tied to their slots.
    let in0 = PSWPIN.load(Relaxed);
    for i in 0..n * 512 {
        kassert_eq!(word(base + i * 8, None), value(i));
    }
    kassert!(PSWPIN.load(Relaxed) >= in0 + n, "pages not read from swap");
    kassert_eq!(held(), (0, n));
    // Clean: reclaiming them again writes nothing and frees no slot.
    let (out1, free1, cached1) = (
        PSWPOUT.load(Relaxed),
        free_slots()?,
        SWAPCACHE.load(Relaxed),
    );
    kassert_eq!(app_space::madvise_pageout(base, len).map_err(fail)?, n);
    kassert!(
        PSWPOUT.load(Relaxed) == out1,
        "clean pages were written again"
    );
    kassert_eq!(free_slots()?, free1);
    kassert_eq!(SWAPCACHE.load(Relaxed), cached1 - n);
    kassert_eq!(held(), (n, 0));
    // Read back again, then one word written per even page: those are untied (their slots
    // freed, the copies stale), so the next pageout writes exactly them.
    for i in 0..n * 512 {
        kassert_eq!(word(base + i * 8, None), value(i));
    }
    for p in (0..n).step_by(2) {
        word(base + p * PAGE as u64, Some(!value(p * 512)));
    }
    // What every word holds from here on: the first word of each even page inverted.
    let after_writes = |i: u64| {
        if i.is_multiple_of(512) && (i / 512).is_multiple_of(2) {
            !value(i)
        } else {
            value(i)
        }
    };
    kassert_eq!(held(), (0, n / 2));
    let out2 = PSWPOUT.load(Relaxed);
    kassert_eq!(app_space::madvise_pageout(base, len).map_err(fail)?, n);
    kassert_eq!(PSWPOUT.load(Relaxed), out2 + n / 2);
    kassert_eq!(held(), (n, 0));
    for i in 0..n * 512 {
        kassert_eq!(word(base + i * 8, None), after_writes(i));
    }
    // The pages were paged out and came back: reclaim's clock must not hold any of them twice
    // (a dirty page chosen twice in one batch would be written twice, leak a slot and have its
    // frame freed twice). Dirty them all (same values), then let the clock run.
    for p in 0..n {
        word(base + p * PAGE as u64 + 8, Some(value(p * 512 + 1)));
    }
    for _ in 0..4 {
        app_space::reclaim_hook(crate::mm::zone::ZoneId::Normal, 0);
    }
    for i in 0..n * 512 {
        kassert_eq!(word(base + i * 8, None), after_writes(i));
    }
    // The stack this runs on is locked: paging it out is skipped, not done.
    let sp = crate::arch::aarch64::cpu::stack_pointer();
    let sp_page = sp & !(PAGE as u64 - 1);
    if crate::mm::layout::USER_END > sp {
        kassert_eq!(
            app_space::madvise_pageout(sp_page - PAGE as u64, 2 * PAGE as u64),
            Ok(0)
        );
    }
    // munmap gives back exactly the slots of the region's pages, on swap and tied alike (munmap
    // allocates nothing, so no reclaim moves the counts under it).
    app_space::madvise_pageout(base, len / 2).map_err(fail)?;
    let (on_swap, tied) = held();
    kassert!(
        on_swap >= n / 2,
        "{on_swap} pages on swap after a pageout of {}",
        n / 2
    );
    let (free3, cached3) = (free_slots()?, SWAPCACHE.load(Relaxed));
    app_space::munmap(base, len).map_err(fail)?;
    kassert_eq!(free_slots()?, free3 + on_swap + tied);
    kassert_eq!(SWAPCACHE.load(Relaxed), cached3 - tied);
    kassert_eq!(held(), (0, 0));
    // Outside every region: an error, not a crash.
    kassert!(matches!(
        app_space::madvise_pageout(base, len),
        Err(SwapError::NotMapped { .. })
    ));
    Ok(())
});
