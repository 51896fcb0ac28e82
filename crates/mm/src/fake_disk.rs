//! A disk in memory behind mm's block-device port, for the host tests of swap: blank, random
//! data or `mkswap`'d, of 512- or 4096-byte sectors, with media errors (everywhere, or on a range
//! of sectors, as QEMU's blkdebug injects them) and driver errors on demand, and a log of the
//! requests it was given. Tests only.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use super::blkdev::{BlockDevice, BlockError, BlockStats};
use super::swap_header::SwapHeader;
use crate::addr::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;

/// One request as the disk saw it: a write or not, the first sector, the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub write: bool,
    pub sector: u64,
    pub pages: usize,
}

#[derive(Clone)]
pub struct FakeDisk {
    pub data: Vec<u8>,
    pub sector_size: u32,
    pub ro: bool,
    /// Every read fails as a media error.
    pub fail_read: bool,
    /// Every write fails as a media error.
    pub fail_write: bool,
    /// Requests touching these sectors fail as media errors.
    pub bad_sectors: Range<u64>,
    /// Every request fails in the driver (a broken queue), never reaching the media.
    pub driver_fault: bool,
    /// Write requests made, failed ones included.
    pub writes: usize,
    /// Every request, in order, failed ones included.
    pub requests: Vec<Request>,
    stats: BlockStats,
}

impl FakeDisk {
    pub fn blank(pages: usize) -> FakeDisk {
        FakeDisk {
            data: alloc::vec![0; pages * PAGE],
            sector_size: 512,
            ro: false,
            fail_read: false,
            fail_write: false,
            bad_sectors: 0..0,
            driver_fault: false,
            writes: 0,
            requests: Vec::new(),
            stats: BlockStats::default(),
        }
    }

    /// A disk `mkswap` prepared (4 KiB pages).
    pub fn swap(pages: usize) -> FakeDisk {
        let mut d = FakeDisk::blank(pages);
        SwapHeader::for_disk(pages as u64, [1; 16])
            .write(&mut d.data[..PAGE])
            .unwrap();
        d
    }

    /// Bytes that are not zero anywhere (a data disk).
    pub fn data(pages: usize) -> FakeDisk {
        let mut d = FakeDisk::blank(pages);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in d.data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8 | 1;
        }
        d
    }

    /// A disk `mkswap -p 16384` prepared: the signature at the end of a 16 KiB page.
    pub fn swap_16k(pages: usize) -> FakeDisk {
        let mut d = FakeDisk::blank(pages);
        d.data[16384 - 10..16384].copy_from_slice(b"SWAPSPACE2");
        d
    }

    /// The disk's page `n` (the bytes a slot's page lands on).
    pub fn page(&self, n: u64) -> &[u8] {
        &self.data[n as usize * PAGE..(n as usize + 1) * PAGE]
    }

    pub fn page_mut(&mut self, n: u64) -> &mut [u8] {
        &mut self.data[n as usize * PAGE..(n as usize + 1) * PAGE]
    }

    /// Shared, so a test keeps a handle on a disk it hands to swap.
    pub fn shared(self) -> SharedDisk {
        SharedDisk(Arc::new(spin::Mutex::new(self)))
    }

    /// Logs the request and says whether (and how) it fails; else the byte range it covers.
    fn request(
        &mut self,
        write: bool,
        sector: u64,
        pages: usize,
    ) -> Result<Range<usize>, BlockError> {
        self.requests.push(Request {
            write,
            sector,
            pages,
        });
        if write {
            self.writes += 1;
        }
        let start = sector as usize * self.sector_size as usize;
        let end = start + pages * PAGE;
        let sectors = sector..sector + (pages * PAGE / self.sector_size as usize) as u64;
        if self.driver_fault {
            return Err(BlockError::Driver {
                detail: "fake disk: queue broken".into(),
            });
        }
        if end > self.data.len() {
            return Err(BlockError::Driver {
                detail: "fake disk: past the end".into(),
            });
        }
        if write && self.ro {
            return Err(BlockError::Driver {
                detail: "fake disk: read-only".into(),
            });
        }
        let bad = sectors.start < self.bad_sectors.end && self.bad_sectors.start < sectors.end;
        if bad || (write && self.fail_write) || (!write && self.fail_read) {
            return Err(BlockError::Media {
                sector,
                detail: alloc::format!("fake disk: I/O error at sector {sector}").into(),
            });
        }
        Ok(start..end)
    }
}

impl BlockDevice for FakeDisk {
    fn name(&self) -> &str {
        "fake disk"
    }
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn capacity_sectors(&self) -> u64 {
        (self.data.len() / self.sector_size as usize) as u64
    }
    fn read_only(&self) -> bool {
        self.ro
    }
    fn read_pages(&mut self, sector: u64, pages: &mut [&mut [u8]]) -> Result<(), BlockError> {
        let range = self.request(false, sector, pages.len())?;
        for (page, src) in pages.iter_mut().zip(self.data[range].chunks_exact(PAGE)) {
            page.copy_from_slice(src);
        }
        self.stats.read_requests += 1;
        self.stats.sectors_read += (pages.len() * PAGE) as u64 / self.sector_size as u64;
        Ok(())
    }
    fn write_pages(&mut self, sector: u64, pages: &[&[u8]]) -> Result<(), BlockError> {
        let range = self.request(true, sector, pages.len())?;
        for (page, dst) in pages.iter().zip(self.data[range].chunks_exact_mut(PAGE)) {
            dst.copy_from_slice(page);
        }
        self.stats.write_requests += 1;
        self.stats.sectors_written += (pages.len() * PAGE) as u64 / self.sector_size as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.stats.flushes += 1;
        Ok(())
    }
    fn stats(&self) -> BlockStats {
        self.stats
    }
}

/// A [`FakeDisk`] the test still reaches after handing it to swap as a `Box<dyn BlockDevice>`.
#[derive(Clone)]
pub struct SharedDisk(pub Arc<spin::Mutex<FakeDisk>>);

impl SharedDisk {
    pub fn lock(&self) -> spin::MutexGuard<'_, FakeDisk> {
        self.0.lock()
    }
}

impl BlockDevice for SharedDisk {
    fn name(&self) -> &str {
        "fake disk"
    }
    fn sector_size(&self) -> u32 {
        self.lock().sector_size()
    }
    fn capacity_sectors(&self) -> u64 {
        self.lock().capacity_sectors()
    }
    fn read_only(&self) -> bool {
        self.lock().read_only()
    }
    fn read_pages(&mut self, sector: u64, pages: &mut [&mut [u8]]) -> Result<(), BlockError> {
        self.lock().read_pages(sector, pages)
    }
    fn write_pages(&mut self, sector: u64, pages: &[&[u8]]) -> Result<(), BlockError> {
        self.lock().write_pages(sector, pages)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.lock().flush()
    }
    fn stats(&self) -> BlockStats {
        self.lock().stats()
    }
}
