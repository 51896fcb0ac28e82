//! Swap page I/O over a block device (Linux's `mm/page_io.c`): a batch of pages written to free
//! slots of the active area with one request per run of consecutive slots, and pages read back,
//! with readahead, each verified against the checksum its slot keeps. Owns what a failed request
//! means for the slots (a media error retires them, a driver error only gives them back) and the
//! `pswpout`/`pswpin` counts; must never return entries for a batch that was not written whole,
//! nor call a page good that failed its check. The work is `ActiveSwap`'s (tested on the host
//! over fake devices); `SwapSpace`'s methods below run it on the active area under its lock.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use super::blkdev::BlockStats;
use super::swap_entry::SwapEntry;
use super::swapfile::{ActiveSwap, SwapError, SwapSpace};
use super::vmstat::{PSWPIN, PSWPOUT};
use crate::addr::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;

/// Pages one [`SwapSpace::swap_out`] call takes at most (reclaim writes 32 at a time).
pub const SWAP_BATCH_MAX: usize = 64;

/// Pages one readahead request reads at most (the mask of pages that verified is a `u32`).
pub const READ_BATCH_MAX: usize = 32;

/// Splits slots into runs of consecutive ones: `(index of the run's first slot, length)`, so each
/// run becomes one disk request. An iterator: swap-out runs inside reclaim, when memory is short.
pub fn consecutive_runs(slots: &[u64]) -> impl Iterator<Item = (usize, usize)> + Clone + '_ {
    let mut start = 0;
    core::iter::from_fn(move || {
        if start >= slots.len() {
            return None;
        }
        let mut len = 1;
        while start + len < slots.len() && slots[start + len] == slots[start] + len as u64 {
            len += 1;
        }
        let run = (start, len);
        start += len;
        Some(run)
    })
}

/// The entries of pages one [`SwapSpace::swap_out`] wrote, in order (a slice of them by `Deref`): a fixed
/// array, since swap-out runs inside reclaim, when memory is short.
pub struct SwapBatch {
    entries: [SwapEntry; SWAP_BATCH_MAX],
    n: usize,
}

impl core::ops::Deref for SwapBatch {
    type Target = [SwapEntry];
    fn deref(&self) -> &[SwapEntry] {
        &self.entries[..self.n]
    }
}

impl ActiveSwap {
    /// Writes `pages` (each one page) to free slots, each run of consecutive slots in one
    /// request, and returns their entries in order. All or nothing: on any error no entry is
    /// returned, the pages' contents are untouched (the caller keeps them in memory), the slots
    /// of a run the media refused are retired, and every other slot is given back.
    pub fn write_pages(&mut self, pages: &[&[u8]]) -> Result<SwapBatch, SwapError> {
        let mut slots = [0u64; SWAP_BATCH_MAX];
        let free = self.area.slots.free_slots();
        if pages.len() as u64 > free {
            return Err(SwapError::Full {
                wanted: pages.len(),
                free,
            });
        }
        if pages.len() > SWAP_BATCH_MAX {
            return Err(SwapError::TooMany { pages: pages.len() });
        }
        let slots = &mut slots[..pages.len()];
        self.area.reserve(slots)?;
        let runs = consecutive_runs(slots);
        for (n, (start, len)) in runs.clone().enumerate() {
            let first = slots[start];
            let sector = self.slot_sector(first);
            if let Err(error) = self.disk.write_pages(sector, &pages[start..start + len]) {
                // Only the media refusing these sectors says anything about them; a driver-side
                // failure (no DMA mapping, a broken queue) leaves them usable.
                if error.is_media() {
                    self.area.write_failed(&slots[start..start + len]);
                } else {
                    self.area.unreserve(&slots[start..start + len]);
                }
                for (k, (s, l)) in runs.clone().enumerate() {
                    if k != n {
                        self.area.unreserve(&slots[s..s + l]);
                    }
                }
                return Err(SwapError::Write {
                    first_slot: first,
                    pages: len,
                    error,
                });
            }
        }
        self.area.commit(slots, pages);
        const FIRST: SwapEntry = match SwapEntry::new(0, 1) {
            Some(e) => e,
            None => panic!("slot 1 of area 0 is an entry"),
        };
        let mut batch = SwapBatch {
            entries: [FIRST; SWAP_BATCH_MAX],
            n: pages.len(),
        };
        for (e, &slot) in batch.entries.iter_mut().zip(slots.iter()) {
            // A slot number is below the header's `last_page`, a u32, so it always fits the
            // entry's 50-bit offset.
            *e = SwapEntry::new(0, slot).expect("a swap slot number fits a swap entry");
        }
        Ok(batch)
    }

    /// Reads the pages of `pages.len()` consecutive slots (at most [`READ_BATCH_MAX`]) starting
    /// at `first` in one request and verifies each. Returns a mask of the pages that verified
    /// (bit i for `pages[i]`); a page whose bit is clear must not be used (its slot stays in
    /// use). Errors: a slot that holds no page (nothing is read), or the read itself.
    pub fn read_pages(
        &mut self,
        first: SwapEntry,
        pages: &mut [&mut [u8]],
    ) -> Result<u32, SwapError> {
        let n = pages.len().min(READ_BATCH_MAX);
        let entry = |i: usize| SwapEntry::new(first.area(), first.slot() + i as u64);
        for i in 0..n {
            let e = entry(i).ok_or(SwapError::NotInUse(first))?;
            self.area.check_in_use(e)?;
        }
        let sector = self.slot_sector(first.slot());
        self.disk
            .read_pages(sector, &mut pages[..n])
            .map_err(|error| SwapError::Read {
                entry: first,
                error,
            })?;
        let mut ok = 0u32;
        for (i, page) in pages[..n].iter().enumerate() {
            if entry(i).is_some_and(|e| self.area.verify(e, page).is_ok()) {
                ok |= 1 << i;
            }
        }
        Ok(ok)
    }

    /// Reads the page at `entry` into `page` and verifies it: the error says how a page that
    /// failed its check differs.
    pub fn read_page(&mut self, entry: SwapEntry, page: &mut [u8]) -> Result<(), SwapError> {
        if self.read_pages(entry, &mut [&mut page[..PAGE]])? & 1 != 0 {
            return Ok(());
        }
        self.area.verify(entry, page)
    }
}

impl SwapSpace {
    /// Writes `pages` to the active area ([`ActiveSwap::write_pages`]). Never waits for the
    /// area: reclaim calls this from inside allocations, which swap I/O itself makes (`Busy`
    /// then).
    pub fn swap_out(&self, pages: &[&[u8]]) -> Result<SwapBatch, SwapError> {
        let mut guard = self.try_lock().ok_or(SwapError::Busy)?;
        // The result is returned as it is: a batch is 520 bytes, not worth moving again.
        let written = guard.as_mut().ok_or(SwapError::NoSwap)?.write_pages(pages);
        if let Ok(batch) = &written {
            PSWPOUT.fetch_add(batch.len() as u64, Relaxed);
        }
        written
    }

    /// Reads the page at `entry` into `page` and verifies it. On an error `page` must not be
    /// handed to anyone: it may hold part of the read or a page that failed its checksum. The
    /// slot stays in use until [`swap_free`](SwapSpace::swap_free).
    pub fn swap_in(&self, entry: SwapEntry, page: &mut [u8]) -> Result<(), SwapError> {
        self.lock()
            .as_mut()
            .ok_or(SwapError::NoSwap)?
            .read_page(entry, page)?;
        PSWPIN.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Swap-in with readahead from the active area ([`ActiveSwap::read_pages`]): a page whose
    /// bit is clear in the mask is left for its own fault, which reads it again and reports it.
    pub fn swap_in_ahead(
        &self,
        first: SwapEntry,
        pages: &mut [&mut [u8]],
    ) -> Result<u32, SwapError> {
        let ok = self
            .lock()
            .as_mut()
            .ok_or(SwapError::NoSwap)?
            .read_pages(first, pages)?;
        PSWPIN.fetch_add(ok.count_ones() as u64, Relaxed);
        Ok(ok)
    }

    /// The swap disk's counters (benchmarks: pages per write request, time waiting for the
    /// disk).
    pub fn disk_stats(&self) -> Option<BlockStats> {
        self.lock().as_ref().map(|s| s.disk.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_disk::{FakeDisk, Request, SharedDisk};
    use crate::swap_header::SwapHeader;
    use crate::swapfile::SwapArea;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    /// An active area over `disk` (page 0 holds its header), and a handle on the disk.
    fn active(disk: FakeDisk, bad: &[u32]) -> (ActiveSwap, SharedDisk) {
        let pages = disk.data.len() / PAGE;
        let mut header = SwapHeader::for_disk(pages as u64, [3; 16]);
        header.bad_pages = bad.to_vec();
        let shared = disk.shared();
        let swap = ActiveSwap::new(Box::new(shared.clone()), SwapArea::new(header).unwrap());
        (swap, shared)
    }

    fn page(fill: u64) -> Vec<u8> {
        (0..PAGE / 8)
            .flat_map(|i| (fill.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64).to_le_bytes())
            .collect()
    }

    fn refs(pages: &[Vec<u8>]) -> Vec<&[u8]> {
        pages.iter().map(|p| p.as_slice()).collect()
    }

    #[test]
    fn runs_of_consecutive_slots() {
        assert_eq!(consecutive_runs(&[]).count(), 0);
        assert_eq!(
            consecutive_runs(&[4, 5, 6, 9, 10, 3]).collect::<Vec<_>>(),
            alloc::vec![(0, 3), (3, 2), (5, 1)]
        );
    }

    #[test]
    fn pages_go_out_in_one_request_a_run_and_come_back_verified() {
        for sector_size in [512u32, 4096] {
            let mut disk = FakeDisk::swap(256);
            disk.sector_size = sector_size;
            let (mut swap, shared) = active(disk, &[]);
            let pages: Vec<Vec<u8>> = (0..40).map(page).collect();
            let batch = swap.write_pages(&refs(&pages)).unwrap();
            let slots: Vec<u64> = batch.iter().map(|e| e.slot()).collect();
            assert_eq!(slots, (1..=40).collect::<Vec<_>>());
            let per_page = 4096 / sector_size as u64;
            {
                let d = shared.lock();
                // One run: one request, at the sector of slot 1.
                assert_eq!(
                    d.requests,
                    [Request {
                        write: true,
                        sector: per_page,
                        pages: 40
                    }]
                );
                // Each page where its slot says.
                for (i, &slot) in slots.iter().enumerate() {
                    assert_eq!(d.page(slot), pages[i].as_slice());
                }
            }
            // Readahead: 16 pages in one request, all verified.
            let mut back: Vec<Vec<u8>> = (0..16).map(|_| alloc::vec![0; PAGE]).collect();
            let mut bufs: Vec<&mut [u8]> = back.iter_mut().map(|p| p.as_mut_slice()).collect();
            assert_eq!(swap.read_pages(batch[0], &mut bufs), Ok(0xffff));
            assert_eq!(&back[..], &pages[..16]);
            assert_eq!(shared.lock().requests.len(), 2);
            // One at a time, last first.
            let mut one = alloc::vec![0u8; PAGE];
            for (i, &e) in batch.iter().enumerate().rev() {
                swap.read_page(e, &mut one).unwrap();
                assert_eq!(one, pages[i]);
            }
            let stats = swap.disk.stats();
            assert_eq!((stats.write_requests, stats.read_requests), (1, 41));
            assert_eq!(stats.sectors_written, 40 * per_page);
        }
    }

    #[test]
    fn a_media_error_retires_the_runs_slots_and_gives_the_others_back() {
        // Slot 5 is bad in the header: a batch of 8 takes slots 1-4 and 6-9, two runs.
        let mut disk = FakeDisk::swap(64);
        disk.bad_sectors = 6 * 8..6 * 8 + 1;
        let (mut swap, shared) = active(disk, &[5]);
        let free = swap.area.slots.free_slots();
        let pages: Vec<Vec<u8>> = (0..8).map(page).collect();
        let before = pages.clone();
        match swap.write_pages(&refs(&pages)) {
            Err(SwapError::Write {
                first_slot: 6,
                pages: 4,
                error,
            }) => assert!(error.is_media(), "{error}"),
            other => panic!("{:?}", other.map(|b| b.len())),
        }
        assert_eq!(pages, before, "the pages stay as they were");
        assert_eq!(shared.lock().writes, 2, "the first run was written");
        // Slots 6-9 are retired; 1-4, written, are given back all the same.
        assert_eq!(swap.area.slots.free_slots(), free - 4);
        let batch = swap.write_pages(&refs(&pages)).unwrap();
        let mut one = alloc::vec![0u8; PAGE];
        for (i, &e) in batch.iter().enumerate() {
            swap.read_page(e, &mut one).unwrap();
            assert_eq!(one, pages[i]);
        }
        // Every slot the area still hands out: 1-4 among them, never 6-9.
        let mut handed: Vec<u64> = batch.iter().map(|e| e.slot()).collect();
        while let Some(slot) = swap.area.slots.alloc() {
            handed.push(slot);
        }
        assert!((1..=4).all(|s| handed.contains(&s)), "{handed:?}");
        assert!(handed.iter().all(|s| !(5..=9).contains(s)), "{handed:?}");
    }

    #[test]
    fn a_driver_error_only_gives_the_slots_back() {
        let (mut swap, shared) = active(FakeDisk::swap(64), &[]);
        let free = swap.area.slots.free_slots();
        let pages: Vec<Vec<u8>> = (0..8).map(page).collect();
        shared.lock().driver_fault = true;
        match swap.write_pages(&refs(&pages)) {
            Err(SwapError::Write {
                pages: 8, error, ..
            }) => {
                assert!(!error.is_media());
                assert_eq!(error.detail(), "fake disk: queue broken");
            }
            other => panic!("{:?}", other.map(|b| b.len())),
        }
        assert_eq!(swap.area.slots.free_slots(), free, "no slot retired");
        assert!((1..=8).all(|s| !swap.area.slots.in_use(s)));
        // The device recovers: the batch goes out, and every slot is still handed out.
        shared.lock().driver_fault = false;
        let batch = swap.write_pages(&refs(&pages)).unwrap();
        assert_eq!(swap.area.slots.free_slots(), free - 8);
        let mut handed: Vec<u64> = batch.iter().map(|e| e.slot()).collect();
        while let Some(slot) = swap.area.slots.alloc() {
            handed.push(slot);
        }
        handed.sort_unstable();
        assert_eq!(handed, (1..64).collect::<Vec<_>>());
    }

    #[test]
    fn a_page_changed_on_disk_or_a_failed_read_is_refused() {
        let (mut swap, shared) = active(FakeDisk::swap(64), &[]);
        let pages: Vec<Vec<u8>> = (0..3).map(page).collect();
        let batch = swap.write_pages(&refs(&pages)).unwrap();
        // One bit flipped in the middle page on the disk itself.
        shared.lock().page_mut(batch[1].slot())[1234] ^= 0x10;
        let mut back: Vec<Vec<u8>> = (0..3).map(|_| alloc::vec![0; PAGE]).collect();
        let mut bufs: Vec<&mut [u8]> = back.iter_mut().map(|p| p.as_mut_slice()).collect();
        assert_eq!(swap.read_pages(batch[0], &mut bufs), Ok(0b101));
        let mut one = alloc::vec![0u8; PAGE];
        assert!(matches!(
            swap.read_page(batch[1], &mut one),
            Err(SwapError::Checksum { entry, .. }) if entry == batch[1]
        ));
        // The page of another slot, put where this one's was: refused as well.
        let other = shared.lock().page(batch[0].slot()).to_vec();
        shared
            .lock()
            .page_mut(batch[2].slot())
            .copy_from_slice(&other);
        assert!(matches!(
            swap.read_page(batch[2], &mut one),
            Err(SwapError::Checksum { .. })
        ));
        // A read the disk fails: an error that says so, and the slot stays in use.
        shared.lock().fail_read = true;
        match swap.read_page(batch[0], &mut one) {
            Err(SwapError::Read { entry, error }) => {
                assert_eq!(entry, batch[0]);
                assert!(error.is_media());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(swap.area.check_in_use(batch[0]), Ok(()));
        // A slot that holds no page: refused before any read.
        let requests = shared.lock().requests.len();
        let stale = SwapEntry::new(0, 40).unwrap();
        assert_eq!(
            swap.read_page(stale, &mut one),
            Err(SwapError::NotInUse(stale))
        );
        assert_eq!(shared.lock().requests.len(), requests);
    }

    #[test]
    fn a_full_area_or_an_oversized_batch_takes_nothing() {
        let (mut swap, shared) = active(FakeDisk::swap(16), &[]);
        let p = page(1);
        let too_many: Vec<&[u8]> = (0..16).map(|_| p.as_slice()).collect();
        assert_eq!(
            swap.write_pages(&too_many).map(|b| b.len()),
            Err(SwapError::Full {
                wanted: 16,
                free: 15
            })
        );
        let (mut big, _) = active(FakeDisk::swap(128), &[]);
        let p65: Vec<&[u8]> = (0..SWAP_BATCH_MAX + 1).map(|_| p.as_slice()).collect();
        assert_eq!(
            big.write_pages(&p65).map(|b| b.len()),
            Err(SwapError::TooMany {
                pages: SWAP_BATCH_MAX + 1
            })
        );
        assert_eq!(big.area.slots.free_slots(), 127);
        assert_eq!(swap.area.slots.free_slots(), 15);
        assert!(shared.lock().requests.is_empty());
    }
}
