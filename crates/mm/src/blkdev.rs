//! The block-device port: what the memory manager needs from a disk to swap to it. mm defines the
//! trait; drivers implement it (virtio-blk today, the SD card and partitions later) and the kernel
//! hands mm the devices it found, so this module and its users never name a driver. Owns the
//! contract only (requests of whole pages, the two kinds of failure, the counters); must never
//! name a driver or the arch layer. Portable: the host tests drive swap over fake devices.
#![forbid(unsafe_code)]

use alloc::borrow::Cow;
use core::fmt;

use crate::addr::PAGE_SIZE;

/// A disk the memory manager may read and write in whole pages.
///
/// **Requests.** A request is a start sector and a list of buffers, each exactly one page
/// ([`PAGE_SIZE`] bytes) of linear-map memory (page frames, `kmalloc`), at any address
/// alignment. Buffer *i* covers the page that starts `i * PAGE_SIZE` bytes after `sector`, so a
/// list is one run of consecutive sectors. An implementation carries a request in as few device
/// requests as the device allows (one, when its segment limit takes the whole list): swap writes
/// one run of consecutive slots as one request and counts on it. Requests are synchronous: the
/// call returns once the device has finished with every buffer, and the implementation never
/// touches a buffer after it returns. A device that needs DMA maps the buffers itself (streaming
/// mappings with the cache maintenance the direction needs, bounce buffers for memory it cannot
/// reach) and unmaps them before returning, so the CPU sees what the device wrote.
///
/// **Failures.** A request that fails returns a [`BlockError`] saying whether the media refused
/// it ([`BlockError::Media`]: the sectors are suspect) or the request never got that far
/// ([`BlockError::Driver`]: nothing is known about them). After a failed read the buffers hold
/// unspecified bytes; after a failed write any part of the run may or may not have reached the
/// disk. A request that reaches past [`capacity_sectors`](Self::capacity_sectors), or a write to
/// a read-only device, is refused before the device sees it.
///
/// **Geometry.** [`sector_size`](Self::sector_size) is a power of two from 512 to `PAGE_SIZE`
/// bytes, so a page is a whole number of sectors.
///
/// Devices move between CPUs behind a lock (the active swap device is one), hence `Send`.
pub trait BlockDevice: Send {
    /// What the device is, for messages: `virtio-blk at 0xa003e00`.
    fn name(&self) -> &str;

    /// Bytes in a sector, the unit of [`capacity_sectors`](Self::capacity_sectors) and of a
    /// request's start.
    fn sector_size(&self) -> u32;

    /// The device's size in sectors.
    fn capacity_sectors(&self) -> u64;

    /// Whether writes are refused (the device says so, or it is attached read-only).
    fn read_only(&self) -> bool;

    /// Reads `pages.len()` pages from consecutive sectors starting at `sector`, page *i* into
    /// `pages[i]` (each exactly `PAGE_SIZE` bytes).
    fn read_pages(&mut self, sector: u64, pages: &mut [&mut [u8]]) -> Result<(), BlockError>;

    /// Writes `pages` (each exactly `PAGE_SIZE` bytes) to consecutive sectors starting at
    /// `sector`. Completed means the device has the data; [`flush`](Self::flush) makes it
    /// durable on a device with a volatile write cache.
    fn write_pages(&mut self, sector: u64, pages: &[&[u8]]) -> Result<(), BlockError>;

    /// Makes every completed write durable (nothing to do for a write-through device).
    fn flush(&mut self) -> Result<(), BlockError>;

    /// The device's counters since it was set up.
    fn stats(&self) -> BlockStats;

    /// Whole pages on the device (a partial page at its end is not counted).
    fn capacity_pages(&self) -> u64 {
        self.capacity_sectors() / self.sectors_per_page()
    }

    /// Sectors in a page: the sector of page N is `N * sectors_per_page()`.
    fn sectors_per_page(&self) -> u64 {
        PAGE_SIZE / self.sector_size().max(1) as u64
    }
}

/// A boxed device is a device (the kernel hands mm its disks as `Box<dyn BlockDevice>`).
impl<T: BlockDevice + ?Sized> BlockDevice for alloc::boxed::Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn capacity_sectors(&self) -> u64 {
        (**self).capacity_sectors()
    }
    fn read_only(&self) -> bool {
        (**self).read_only()
    }
    fn read_pages(&mut self, sector: u64, pages: &mut [&mut [u8]]) -> Result<(), BlockError> {
        (**self).read_pages(sector, pages)
    }
    fn write_pages(&mut self, sector: u64, pages: &[&[u8]]) -> Result<(), BlockError> {
        (**self).write_pages(sector, pages)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        (**self).flush()
    }
    fn stats(&self) -> BlockStats {
        (**self).stats()
    }
}

/// Why a block request failed: the two kinds call for different handling by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// The device carried the request out and reported that the media failed it (virtio-blk's
    /// `IOERR`): the sectors of the request, from `sector` on, are suspect and should not be
    /// used again (swap retires their slots).
    Media {
        /// The request's first sector.
        sector: u64,
        /// The driver's own words, for the log.
        detail: Cow<'static, str>,
    },
    /// The request never reached the media, or the driver cannot tell whether it did: no memory
    /// for its bookkeeping, no DMA mapping, a queue that broke or timed out, a request the
    /// driver or device refused (out of range, read-only, unsupported). Nothing is known about
    /// the sectors (swap only gives their slots back).
    Driver {
        /// The driver's own words, for the log (a fixed text needs no allocation, which matters
        /// when the failure is running out of memory).
        detail: Cow<'static, str>,
    },
}

impl BlockError {
    /// The driver's description of the failure.
    pub fn detail(&self) -> &str {
        match self {
            BlockError::Media { detail, .. } | BlockError::Driver { detail } => detail,
        }
    }

    /// Whether the media refused the request (see [`BlockError::Media`]).
    pub fn is_media(&self) -> bool {
        matches!(self, BlockError::Media { .. })
    }
}

/// The driver's words, as they are: callers put them in their own sentences.
impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

/// A device's counters since it was set up. Requests are the device requests a call turned into
/// (one per call when the segment limit allows); only requests that succeeded are counted, waits
/// of all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub read_requests: u64,
    pub write_requests: u64,
    pub flushes: u64,
    pub sectors_read: u64,
    pub sectors_written: u64,
    /// Time spent waiting for the device on reads, in [`super::cpu::ticks`] (benchmarks take it
    /// out to count the CPU's own work).
    pub read_wait_ticks: u64,
    /// The same for writes and flushes.
    pub write_wait_ticks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Geometry(u32, u64);

    impl BlockDevice for Geometry {
        fn name(&self) -> &str {
            "geometry"
        }
        fn sector_size(&self) -> u32 {
            self.0
        }
        fn capacity_sectors(&self) -> u64 {
            self.1
        }
        fn read_only(&self) -> bool {
            true
        }
        fn read_pages(&mut self, _: u64, _: &mut [&mut [u8]]) -> Result<(), BlockError> {
            Err(BlockError::Driver {
                detail: "no data".into(),
            })
        }
        fn write_pages(&mut self, _: u64, _: &[&[u8]]) -> Result<(), BlockError> {
            Err(BlockError::Driver {
                detail: "read-only".into(),
            })
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            Ok(())
        }
        fn stats(&self) -> BlockStats {
            BlockStats::default()
        }
    }

    #[test]
    fn pages_are_whole_pages_of_sectors() {
        let d = Geometry(512, 8 * 100 + 7);
        assert_eq!((d.sectors_per_page(), d.capacity_pages()), (8, 100));
        let d = Geometry(4096, 33);
        assert_eq!((d.sectors_per_page(), d.capacity_pages()), (1, 33));
    }

    #[test]
    fn errors_say_the_drivers_words_and_their_kind() {
        let media = BlockError::Media {
            sector: 8,
            detail: alloc::format!("I/O error at sector {}", 8).into(),
        };
        let driver = BlockError::Driver {
            detail: "no memory for the request".into(),
        };
        assert!(media.is_media() && !driver.is_media());
        assert_eq!(alloc::format!("{media}"), "I/O error at sector 8");
        assert_eq!(driver.detail(), "no memory for the request");
    }
}
