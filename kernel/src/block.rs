//! The block layer's registry of disks (Linux's `block/genhd.c`, with the exclusive open of
//! `bdev_open_by_path` and `bdev_release`): the disks found at boot, named as Linux names virtio
//! disks (`vda`, `vdb`, ... in probe order), each with its size, sector size and read-only flag,
//! and who has it: nobody (the device waits here), one opener (a [`BdevHandle`], which owns the
//! device until it is dropped and then gives it back), or swap (the active swap device, which
//! mm keeps for good). A handle reads and writes whole sectors over mm's block-device port,
//! which moves whole pages of kernel memory: it bounces through kernel buffers, one run of pages
//! at a time, so the caller's buffer may be anywhere (an application's swappable heap).
//!
//! Owns the devices while nobody has them, their names, and the handles' sector-granular I/O.
//! Must never let two owners drive one device (a device is in one place only: here, in one
//! handle, or in swap), never hand out the swap device, never let a request reach a device
//! before its arguments are checked (read-only, whole sectors, inside the disk), and never read
//! or write a disk on its own (what a disk holds is its users' business). The registry and the
//! I/O are portable and tested on the host over a disk in memory; the kernel's instance (the
//! virtio-blk disks, [`DISKS`]) and the probe are kernel only.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::addr::PAGE_SIZE;
use crate::mm::blkdev::BlockDevice;

const PAGE: usize = PAGE_SIZE as usize;

/// Pages one bounce buffer holds: a request's whole pages go to the device in runs of up to this
/// many (one device request each), so a large transfer needs no large allocation.
pub const BOUNCE_PAGES: usize = 16;

/// Who has a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    /// Nobody: the registry holds it and opening it succeeds.
    Free,
    /// A handle has it (an application, a self-test, swap's choice at boot) until it is dropped.
    Open,
    /// The active swap device: it is never handed out.
    Swap,
}

/// One disk as the registry lists it (what Linux's `/sys/block/<name>` says in `size`, `ro` and
/// `queue/logical_block_size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// The disk's name: `vda`, `vdb`, ... in the order the disks were found (on QEMU `virt`, the
    /// order of the `-device virtio-blk-device` options).
    pub name: String,
    /// What the driver calls the device: `virtio-blk at 0xa003e00`.
    pub device: String,
    /// The disk's size in sectors.
    pub sectors: u64,
    /// Bytes in a sector: the unit of a request's start and length.
    pub sector_size: u32,
    /// Whether writes are refused.
    pub read_only: bool,
    /// Who has it now.
    pub state: DiskState,
}

impl DiskInfo {
    /// The disk's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors * self.sector_size as u64
    }
}

/// Why opening a disk, or a request on an open one, failed. Each kind has Linux's meaning and
/// name ([`errno`](Self::errno)); the argument errors come before the device sees anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// `ENOENT`: no disk has that name.
    NoSuchDisk {
        /// The name asked for.
        name: String,
    },
    /// `EBUSY`: the disk is the active swap device, which is never handed out.
    SwapDevice {
        /// The disk.
        name: String,
    },
    /// `EBUSY`: the disk is open already (one opener at a time).
    AlreadyOpen {
        /// The disk.
        name: String,
    },
    /// `EROFS`: a write to a read-only disk.
    ReadOnly {
        /// The disk.
        name: String,
    },
    /// `EINVAL`: a buffer that is not a whole number of sectors.
    BadLength {
        /// The disk.
        name: String,
        /// The buffer's length in bytes.
        len: usize,
        /// The disk's sector size.
        sector_size: u32,
    },
    /// `EINVAL`: sectors past the end of the disk.
    OutOfRange {
        /// The disk.
        name: String,
        /// The request's first sector.
        sector: u64,
        /// Its length in sectors.
        sectors: u64,
        /// The disk's size in sectors.
        capacity: u64,
    },
    /// `EINVAL`: the disk is smaller than a page, the least the block-device port moves.
    TooSmall {
        /// The disk.
        name: String,
        /// The disk's size in sectors.
        sectors: u64,
    },
    /// `ENOMEM`: no kernel memory for the bounce buffer.
    NoMemory {
        /// The disk.
        name: String,
        /// The bounce buffer's size in bytes.
        bytes: usize,
    },
    /// `EIO`: the device failed the request (the driver's words in `detail`).
    Io {
        /// The disk.
        name: String,
        /// What failed and the driver's words for why.
        detail: String,
    },
}

impl BlockError {
    /// Linux's name for the error: `ENOENT`, `EBUSY`, `EROFS`, `EINVAL`, `ENOMEM` or `EIO`.
    pub fn errno(&self) -> &'static str {
        match self {
            BlockError::NoSuchDisk { .. } => "ENOENT",
            BlockError::SwapDevice { .. } | BlockError::AlreadyOpen { .. } => "EBUSY",
            BlockError::ReadOnly { .. } => "EROFS",
            BlockError::BadLength { .. }
            | BlockError::OutOfRange { .. }
            | BlockError::TooSmall { .. } => "EINVAL",
            BlockError::NoMemory { .. } => "ENOMEM",
            BlockError::Io { .. } => "EIO",
        }
    }

    /// The disk the error is about (the name asked for, for `ENOENT`).
    pub fn disk(&self) -> &str {
        match self {
            BlockError::NoSuchDisk { name }
            | BlockError::SwapDevice { name }
            | BlockError::AlreadyOpen { name }
            | BlockError::ReadOnly { name }
            | BlockError::BadLength { name, .. }
            | BlockError::OutOfRange { name, .. }
            | BlockError::TooSmall { name, .. }
            | BlockError::NoMemory { name, .. }
            | BlockError::Io { name, .. } => name,
        }
    }

    /// Linux's `strerror` text for [`errno`](Self::errno), in lower case.
    fn strerror(&self) -> &'static str {
        match self.errno() {
            "ENOENT" => "no such device",
            "EBUSY" => "device or resource busy",
            "EROFS" => "read-only file system",
            "EINVAL" => "invalid argument",
            "ENOMEM" => "cannot allocate memory",
            _ => "input/output error",
        }
    }
}

/// `vdb: device or resource busy (EBUSY): it is the active swap device`: the disk, Linux's words
/// and name for the error, then why.
impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}): ",
            self.disk(),
            self.strerror(),
            self.errno()
        )?;
        match self {
            BlockError::NoSuchDisk { .. } => write!(f, "no block device has that name"),
            BlockError::SwapDevice { .. } => write!(f, "it is the active swap device"),
            BlockError::AlreadyOpen { .. } => write!(f, "it is open already"),
            BlockError::ReadOnly { .. } => write!(f, "the disk is read-only"),
            BlockError::BadLength {
                len, sector_size, ..
            } => write!(
                f,
                "a {len}-byte buffer is not a whole number of {sector_size}-byte sectors"
            ),
            BlockError::OutOfRange {
                sector,
                sectors,
                capacity,
                ..
            } => write!(
                f,
                "{sectors} sector(s) from sector {sector} reach past the disk's end \
                 ({capacity} sectors)"
            ),
            BlockError::TooSmall { sectors, .. } => write!(
                f,
                "{sectors} sector(s), less than the {PAGE}-byte page the block-device port moves"
            ),
            BlockError::NoMemory { bytes, .. } => {
                write!(f, "no kernel memory for a {bytes}-byte bounce buffer")
            }
            BlockError::Io { detail, .. } => f.write_str(detail),
        }
    }
}

/// The name of disk `index` (from 0) with `prefix`, as Linux's `virtblk_name_format` makes it:
/// `vda` ... `vdz`, then `vdaa` ... `vdzz`, `vdaaa`, ...
pub fn disk_name(prefix: &str, index: usize) -> String {
    let mut letters = Vec::new();
    let mut i = index as u64;
    loop {
        letters.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    let mut name = String::from(prefix);
    name.extend(letters.iter().rev().map(|&b| b as char));
    name
}

/// One disk in the registry: the device is here exactly when the disk is [`DiskState::Free`].
struct Entry<D: ?Sized> {
    info: DiskInfo,
    dev: Option<Box<D>>,
}

/// The disks and who has each (the kernel's is [`DISKS`]; host tests make their own).
pub struct Registry<D: ?Sized> {
    disks: spin::Mutex<Vec<Entry<D>>>,
}

impl<D: BlockDevice + ?Sized> Default for Registry<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: BlockDevice + ?Sized> Registry<D> {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry {
            disks: spin::Mutex::new(Vec::new()),
        }
    }

    /// Registers a disk just found (free), named after the disks before it; returns its entry.
    pub fn add(&self, dev: Box<D>) -> DiskInfo {
        let mut disks = self.disks.lock();
        let info = DiskInfo {
            name: disk_name("vd", disks.len()),
            device: dev.name().to_string(),
            sectors: dev.capacity_sectors(),
            sector_size: dev.sector_size(),
            read_only: dev.read_only(),
            state: DiskState::Free,
        };
        disks.push(Entry {
            info: info.clone(),
            dev: Some(dev),
        });
        info
    }

    /// Every disk, in the order found.
    pub fn devices(&self) -> Vec<DiskInfo> {
        self.disks.lock().iter().map(|e| e.info.clone()).collect()
    }

    /// Disks nobody has.
    pub fn free(&self) -> usize {
        self.disks
            .lock()
            .iter()
            .filter(|e| e.info.state == DiskState::Free)
            .count()
    }

    /// Takes the disk `name` out of the registry for the handle's lifetime: an error for a name
    /// no disk has, for the active swap device and for a disk open already.
    pub fn open(&self, name: &str) -> Result<BdevHandle<'_, D>, BlockError> {
        let mut disks = self.disks.lock();
        let Some((index, entry)) = disks
            .iter_mut()
            .enumerate()
            .find(|(_, e)| e.info.name == name)
        else {
            return Err(BlockError::NoSuchDisk { name: name.into() });
        };
        let dev = match entry.info.state {
            DiskState::Free => entry.dev.take(),
            DiskState::Open => None,
            DiskState::Swap => {
                let name = entry.info.name.clone();
                return Err(BlockError::SwapDevice { name });
            }
        };
        // (Free means the device is here, see `Entry`.)
        let Some(dev) = dev else {
            let name = entry.info.name.clone();
            return Err(BlockError::AlreadyOpen { name });
        };
        entry.info.state = DiskState::Open;
        let info = entry.info.clone();
        Ok(BdevHandle {
            registry: self,
            index,
            info,
            dev: Some(dev),
        })
    }

    /// Lends every free disk, in the order found, to `swapon`, which gives back each one it does
    /// not keep in its place (`None` where it keeps the active swap device; a list shorter than
    /// the one it was given counts as `None` for the rest). The disks are open meanwhile, and the
    /// registry is not locked: swapon reads them (and writes the one it formats).
    pub fn lend_to_swapon(&self, swapon: impl FnOnce(Vec<Box<D>>) -> Vec<Option<Box<D>>>) {
        let mut lent = Vec::new();
        let mut devs = Vec::new();
        for (index, entry) in self.disks.lock().iter_mut().enumerate() {
            if let Some(dev) = entry.dev.take() {
                entry.info.state = DiskState::Open;
                lent.push(index);
                devs.push(dev);
            }
        }
        let mut back = swapon(devs).into_iter();
        let mut disks = self.disks.lock();
        for index in lent {
            match back.next().flatten() {
                Some(dev) => put_back(&mut disks[index], dev),
                None => disks[index].info.state = DiskState::Swap,
            }
        }
    }

    fn give_back(&self, index: usize, dev: Box<D>) {
        if let Some(entry) = self.disks.lock().get_mut(index) {
            put_back(entry, dev);
        }
    }
}

fn put_back<D: ?Sized>(entry: &mut Entry<D>, dev: Box<D>) {
    entry.dev = Some(dev);
    entry.info.state = DiskState::Free;
}

/// Kernel context for an entry point that allocates (the bounce buffer, the handle's copy of the
/// name, the driver's bookkeeping): from `kmalloc`, never from an application's swappable heap,
/// whoever calls. Only in the kernel: the host tests' threads share the one flag.
#[cfg(target_os = "none")]
fn kernel_context() -> crate::mm::context::ContextGuard {
    crate::mm::context::Context::enter_kernel()
}
#[cfg(not(target_os = "none"))]
struct NoContext;
#[cfg(not(target_os = "none"))]
fn kernel_context() -> NoContext {
    NoContext
}

/// An open disk (Linux's `struct bdev_handle`): owns the device until it is dropped, then gives
/// it back to the registry. Reads and writes whole sectors from any buffer, through kernel
/// bounce buffers.
pub struct BdevHandle<'r, D: BlockDevice + ?Sized> {
    registry: &'r Registry<D>,
    index: usize,
    info: DiskInfo,
    /// `Some` until the handle is dropped.
    dev: Option<Box<D>>,
}

impl<D: BlockDevice + ?Sized> Drop for BdevHandle<'_, D> {
    fn drop(&mut self) {
        if let Some(dev) = self.dev.take() {
            self.registry.give_back(self.index, dev);
        }
    }
}

impl<D: BlockDevice + ?Sized> BdevHandle<'_, D> {
    /// The disk as the registry lists it (state [`DiskState::Open`]).
    pub fn info(&self) -> &DiskInfo {
        &self.info
    }

    /// `vda`, `vdb`, ...
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The disk's size in sectors.
    pub fn sectors(&self) -> u64 {
        self.info.sectors
    }

    /// Bytes in a sector.
    pub fn sector_size(&self) -> u32 {
        self.info.sector_size
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.info.read_only
    }

    /// The device itself (the kernel's self-tests use the driver's own calls and test hooks).
    pub fn device(&mut self) -> &mut D {
        match &mut self.dev {
            Some(dev) => dev,
            // Taken only by `drop`.
            None => unreachable!("a handle's device is there until it is dropped"),
        }
    }

    /// Reads `buf.len()` bytes (whole sectors) from the sectors starting at `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let _kernel = kernel_context();
        self.check(sector, buf.len(), false)?;
        let mut bounce = self.bounce(buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let run = self.run(sector, done, buf.len())?;
            let pages = &mut bounce[..run.pages * PAGE];
            self.read_pages(run.start, pages)?;
            buf[done..done + run.bytes].copy_from_slice(&pages[run.offset..][..run.bytes]);
            done += run.bytes;
        }
        Ok(())
    }

    /// Writes `buf` (whole sectors) to the sectors starting at `sector`. Completed means the
    /// device has the data; [`flush`](Self::flush) makes it durable. A piece shorter than a page
    /// at the end is written with the page around it, read first (read-modify-write).
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let _kernel = kernel_context();
        self.check(sector, buf.len(), true)?;
        let mut bounce = self.bounce(buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let run = self.run(sector, done, buf.len())?;
            let pages = &mut bounce[..run.pages * PAGE];
            if run.bytes < pages.len() {
                self.read_pages(run.start, pages)?;
            }
            pages[run.offset..][..run.bytes].copy_from_slice(&buf[done..done + run.bytes]);
            let list: Vec<&[u8]> = pages.chunks_exact(PAGE).collect();
            let result = self.device().write_pages(run.start, &list);
            result.map_err(|e| self.io(format!("writing at sector {}: {e}", run.start)))?;
            done += run.bytes;
        }
        Ok(())
    }

    /// Makes every completed write durable.
    pub fn flush(&mut self) -> Result<(), BlockError> {
        let _kernel = kernel_context();
        let result = self.device().flush();
        result.map_err(|e| self.io(format!("flushing its write cache: {e}")))
    }

    /// The argument checks, before the device sees anything.
    fn check(&self, sector: u64, len: usize, write: bool) -> Result<(), BlockError> {
        let name = || self.info.name.clone();
        if write && self.info.read_only {
            return Err(BlockError::ReadOnly { name: name() });
        }
        let sector_size = self.info.sector_size;
        if sector_size == 0 || !len.is_multiple_of(sector_size as usize) {
            return Err(BlockError::BadLength {
                name: name(),
                len,
                sector_size,
            });
        }
        let sectors = (len / sector_size as usize) as u64;
        if sector
            .checked_add(sectors)
            .is_none_or(|end| end > self.info.sectors)
        {
            return Err(BlockError::OutOfRange {
                name: name(),
                sector,
                sectors,
                capacity: self.info.sectors,
            });
        }
        Ok(())
    }

    /// A kernel buffer for the runs of a `len`-byte request: whole pages, at most
    /// [`BOUNCE_PAGES`].
    fn bounce(&self, len: usize) -> Result<Vec<u8>, BlockError> {
        let bytes = len.div_ceil(PAGE).min(BOUNCE_PAGES) * PAGE;
        let mut buf = Vec::new();
        if buf.try_reserve_exact(bytes).is_err() {
            return Err(BlockError::NoMemory {
                name: self.info.name.clone(),
                bytes,
            });
        }
        buf.resize(bytes, 0);
        Ok(buf)
    }

    /// The next run of a request from `sector` of `len` bytes, `done` of them moved already:
    /// whole pages from where it stands (up to [`BOUNCE_PAGES`]); for a piece shorter than a
    /// page at the end, the page of sectors that holds it and ends inside the disk.
    fn run(&self, sector: u64, done: usize, len: usize) -> Result<Run, BlockError> {
        let size = self.info.sector_size as usize;
        let at = sector + (done / size) as u64;
        let left = len - done;
        if left >= PAGE {
            let pages = (left / PAGE).min(BOUNCE_PAGES);
            return Ok(Run {
                start: at,
                pages,
                offset: 0,
                bytes: pages * PAGE,
            });
        }
        let per_page = (PAGE / size) as u64;
        let Some(last_page) = self.info.sectors.checked_sub(per_page) else {
            return Err(BlockError::TooSmall {
                name: self.info.name.clone(),
                sectors: self.info.sectors,
            });
        };
        let start = at.min(last_page);
        Ok(Run {
            start,
            pages: 1,
            offset: (at - start) as usize * size,
            bytes: left,
        })
    }

    fn read_pages(&mut self, start: u64, pages: &mut [u8]) -> Result<(), BlockError> {
        let mut list: Vec<&mut [u8]> = pages.chunks_exact_mut(PAGE).collect();
        let result = self.device().read_pages(start, &mut list);
        result.map_err(|e| self.io(format!("reading at sector {start}: {e}")))
    }

    fn io(&self, detail: String) -> BlockError {
        BlockError::Io {
            name: self.info.name.clone(),
            detail,
        }
    }
}

/// One device request of a handle's transfer: `pages` pages from sector `start`, of which
/// `bytes` from byte `offset` are the caller's.
struct Run {
    start: u64,
    pages: usize,
    offset: usize,
    bytes: usize,
}

/// The kernel's disks: the virtio-blk disks found at boot.
#[cfg(target_os = "none")]
pub static DISKS: Registry<crate::drivers::virtio::blk::VirtioBlk> = Registry::new();

/// A handle on one of the kernel's disks.
#[cfg(target_os = "none")]
pub type Bdev = BdevHandle<'static, crate::drivers::virtio::blk::VirtioBlk>;

/// Finds the virtio-blk disks and registers them as `vda`, `vdb`, ... in the order found, one
/// line each. Called once at boot, before swap chooses among them (a second call finds nothing
/// new: the registered disks are claimed).
#[cfg(target_os = "none")]
pub fn probe() {
    use crate::drivers::virtio::blk::VirtioBlk;
    for disk in VirtioBlk::probe_all() {
        let info = DISKS.add(Box::new(disk));
        log::info!(
            "block: {}: {}, {} {}-byte sectors ({} MiB){}",
            info.name,
            info.device,
            info.sectors,
            info.sector_size,
            info.bytes() >> 20,
            if info.read_only { ", read-only" } else { "" }
        );
    }
}

/// Every disk of the kernel's, in the order found.
#[cfg(target_os = "none")]
pub fn devices() -> Vec<DiskInfo> {
    let _kernel = kernel_context();
    DISKS.devices()
}

/// Opens the kernel's disk `name` (see [`Registry::open`]).
#[cfg(target_os = "none")]
pub fn open(name: &str) -> Result<Bdev, BlockError> {
    let _kernel = kernel_context();
    DISKS.open(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::blkdev::{BlockError as PortError, BlockStats};
    use alloc::sync::Arc;

    /// A disk in memory behind the port, with a log of its requests `(write, sector, pages)`,
    /// shared so a test still sees it while the registry or a handle has it.
    #[derive(Clone)]
    struct RamDisk {
        name: String,
        data: Arc<spin::Mutex<Vec<u8>>>,
        log: Arc<spin::Mutex<Vec<(bool, u64, usize)>>>,
        sector_size: u32,
        ro: bool,
        fail: bool,
    }

    impl RamDisk {
        fn new(name: &str, bytes: usize) -> RamDisk {
            RamDisk {
                name: name.into(),
                data: Arc::new(spin::Mutex::new(alloc::vec![0; bytes])),
                log: Arc::new(spin::Mutex::new(Vec::new())),
                sector_size: 512,
                ro: false,
                fail: false,
            }
        }
        fn requests(&self) -> Vec<(bool, u64, usize)> {
            self.log.lock().clone()
        }
        fn bytes(&self, range: core::ops::Range<usize>) -> Vec<u8> {
            self.data.lock()[range].to_vec()
        }
        fn request(&self, write: bool, sector: u64, pages: usize) -> Result<usize, PortError> {
            self.log.lock().push((write, sector, pages));
            let start = sector as usize * self.sector_size as usize;
            if self.fail {
                return Err(PortError::Media {
                    sector,
                    detail: "ram disk: I/O error".into(),
                });
            }
            // The port's contract: the handle checked first, so these never happen.
            assert!(
                start + pages * PAGE <= self.data.lock().len(),
                "past the end"
            );
            assert!(!(write && self.ro), "write to a read-only disk");
            Ok(start)
        }
    }

    impl BlockDevice for RamDisk {
        fn name(&self) -> &str {
            &self.name
        }
        fn sector_size(&self) -> u32 {
            self.sector_size
        }
        fn capacity_sectors(&self) -> u64 {
            (self.data.lock().len() / self.sector_size as usize) as u64
        }
        fn read_only(&self) -> bool {
            self.ro
        }
        fn read_pages(&mut self, sector: u64, pages: &mut [&mut [u8]]) -> Result<(), PortError> {
            let start = self.request(false, sector, pages.len())?;
            let data = self.data.lock();
            for (i, p) in pages.iter_mut().enumerate() {
                assert_eq!(p.len(), PAGE, "the port moves whole pages");
                p.copy_from_slice(&data[start + i * PAGE..][..PAGE]);
            }
            Ok(())
        }
        fn write_pages(&mut self, sector: u64, pages: &[&[u8]]) -> Result<(), PortError> {
            let start = self.request(true, sector, pages.len())?;
            let mut data = self.data.lock();
            for (i, p) in pages.iter().enumerate() {
                assert_eq!(p.len(), PAGE, "the port moves whole pages");
                data[start + i * PAGE..][..PAGE].copy_from_slice(p);
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), PortError> {
            if self.fail {
                return Err(PortError::Driver {
                    detail: "ram disk: queue broken".into(),
                });
            }
            Ok(())
        }
        fn stats(&self) -> BlockStats {
            BlockStats::default()
        }
    }

    fn registry(disks: &[&RamDisk]) -> Registry<RamDisk> {
        let r = Registry::new();
        for d in disks {
            r.add(Box::new((*d).clone()));
        }
        r
    }

    /// The byte a test writes at disk offset `pos`.
    fn pattern(pos: usize) -> u8 {
        (pos as u8) ^ (pos >> 9) as u8 ^ 0x5a
    }

    #[test]
    fn disks_are_named_as_linux_names_virtio_disks() {
        let names: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .iter()
            .map(|&i| disk_name("vd", i))
            .collect();
        assert_eq!(
            names,
            ["vda", "vdb", "vdz", "vdaa", "vdab", "vdaz", "vdba", "vdzz", "vdaaa"]
        );
        let a = RamDisk::new("virtio-blk at 0xa003e00", 1 << 20);
        let mut b = RamDisk::new("virtio-blk at 0xa003c00", 64 << 10);
        b.ro = true;
        b.sector_size = 4096;
        let r = registry(&[&a, &b]);
        let list = r.devices();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0],
            DiskInfo {
                name: "vda".into(),
                device: "virtio-blk at 0xa003e00".into(),
                sectors: 2048,
                sector_size: 512,
                read_only: false,
                state: DiskState::Free,
            }
        );
        assert_eq!((list[1].name.as_str(), list[1].sectors), ("vdb", 16));
        assert_eq!((list[1].sector_size, list[1].read_only), (4096, true));
        assert_eq!(list[1].bytes(), 64 << 10);
        assert_eq!(r.free(), 2);
    }

    #[test]
    fn open_is_exclusive_and_the_handle_gives_the_disk_back() {
        let a = RamDisk::new("a", 1 << 20);
        let r = registry(&[&a, &RamDisk::new("b", 1 << 20)]);
        let h = r.open("vda").unwrap();
        assert_eq!((h.name(), h.sectors(), h.sector_size()), ("vda", 2048, 512));
        assert_eq!(h.info().state, DiskState::Open);
        assert_eq!(r.devices()[0].state, DiskState::Open);
        assert_eq!(r.free(), 1);
        let again = r.open("vda").err().unwrap();
        assert_eq!(again, BlockError::AlreadyOpen { name: "vda".into() });
        assert_eq!(again.errno(), "EBUSY");
        assert_eq!(
            again.to_string(),
            "vda: device or resource busy (EBUSY): it is open already"
        );
        // Another disk opens meanwhile.
        let other = r.open("vdb").unwrap();
        drop(h);
        assert_eq!(r.devices()[0].state, DiskState::Free);
        let mut h = r.open("vda").expect("given back on drop");
        // The same device: what was written through one handle is read through the next.
        h.write(8, &[7u8; 512]).unwrap();
        drop(h);
        let mut buf = [0u8; 512];
        r.open("vda").unwrap().read(8, &mut buf).unwrap();
        assert_eq!(buf, [7u8; 512]);
        assert_eq!(a.bytes(8 * 512..9 * 512), [7u8; 512]);
        drop(other);
        assert_eq!(r.free(), 2);
        // A name no disk has.
        let e = r.open("vdz").err().unwrap();
        assert_eq!(e.errno(), "ENOENT");
        assert_eq!(
            e.to_string(),
            "vdz: no such device (ENOENT): no block device has that name"
        );
        assert_eq!(r.open("").err().unwrap().errno(), "ENOENT");
    }

    #[test]
    fn swapon_gets_the_free_disks_in_order_and_keeps_the_swap_device() {
        let disks = [
            RamDisk::new("d0", 1 << 20),
            RamDisk::new("d1", 1 << 20),
            RamDisk::new("d2", 1 << 20),
        ];
        let r = registry(&[&disks[0], &disks[1], &disks[2]]);
        // An open disk is not lent: only its opener has it.
        let held = r.open("vda").unwrap();
        r.lend_to_swapon(|devs| {
            let names: Vec<&str> = devs.iter().map(|d| d.name()).collect();
            assert_eq!(names, ["d1", "d2"]);
            assert_eq!(r.free(), 0, "open while swapon has them");
            // Keep the first, give back the second.
            devs.into_iter()
                .enumerate()
                .map(|(i, d)| (i != 0).then_some(d))
                .collect()
        });
        let states: Vec<DiskState> = r.devices().iter().map(|d| d.state).collect();
        assert_eq!(states, [DiskState::Open, DiskState::Swap, DiskState::Free]);
        let e = r.open("vdb").err().unwrap();
        assert_eq!(e, BlockError::SwapDevice { name: "vdb".into() });
        assert_eq!(
            e.to_string(),
            "vdb: device or resource busy (EBUSY): it is the active swap device"
        );
        assert!(r.open("vdc").is_ok());
        drop(held);
        assert_eq!(r.devices()[0].state, DiskState::Free);
        // A swapon that gives back fewer than it got keeps the rest: never handed out again.
        let r = registry(&[&disks[0], &disks[1]]);
        r.lend_to_swapon(|mut devs| {
            devs.truncate(1);
            devs.into_iter().map(Some).collect()
        });
        let states: Vec<DiskState> = r.devices().iter().map(|d| d.state).collect();
        assert_eq!(states, [DiskState::Free, DiskState::Swap]);
        // With nothing kept, every disk is free again.
        let r = registry(&[&disks[0]]);
        r.lend_to_swapon(|devs| devs.into_iter().map(Some).collect());
        assert_eq!(r.free(), 1);
    }

    #[test]
    fn arguments_are_checked_before_the_device_sees_anything() {
        let mut ro = RamDisk::new("ro", 1 << 20);
        ro.ro = true;
        let rw = RamDisk::new("rw", 1 << 20);
        let r = registry(&[&ro, &rw]);
        let mut h = r.open("vda").unwrap();
        let e = h.write(8, &[0; 512]).err().unwrap();
        assert_eq!(e, BlockError::ReadOnly { name: "vda".into() });
        assert_eq!(
            e.to_string(),
            "vda: read-only file system (EROFS): the disk is read-only"
        );
        assert!(h.read(8, &mut [0; 512]).is_ok(), "reading a read-only disk");
        let mut h = r.open("vdb").unwrap();
        let mut buf = alloc::vec![0u8; 8192];
        for len in [1, 100, 511, 513, 4095] {
            let e = h.read(0, &mut buf[..len]).err().unwrap();
            assert_eq!(e.errno(), "EINVAL");
            assert!(
                matches!(e, BlockError::BadLength { len: l, sector_size: 512, .. } if l == len)
            );
            assert!(h.write(0, &buf[..len]).is_err());
        }
        assert_eq!(
            h.read(0, &mut buf[..100]).err().unwrap().to_string(),
            "vdb: invalid argument (EINVAL): a 100-byte buffer is not a whole number of \
             512-byte sectors"
        );
        for (sector, len) in [
            (2047, 1024),
            (2048, 512),
            (u64::MAX, 512),
            (u64::MAX - 1, 1024),
        ] {
            let e = h.read(sector, &mut buf[..len]).err().unwrap();
            assert!(
                matches!(e, BlockError::OutOfRange { capacity: 2048, .. }),
                "{e:?}"
            );
            assert_eq!(e.errno(), "EINVAL");
            assert!(h.write(sector, &buf[..len]).is_err());
        }
        assert_eq!(
            h.write(2047, &buf[..1024]).err().unwrap().to_string(),
            "vdb: invalid argument (EINVAL): 2 sector(s) from sector 2047 reach past the \
             disk's end (2048 sectors)"
        );
        assert!(ro.requests().iter().all(|&(write, ..)| !write));
        assert_eq!(rw.requests(), [], "refused before any request");
        // Empty requests are fine and do nothing; the last sector is readable and writable.
        h.read(2048, &mut []).unwrap();
        h.write(0, &[]).unwrap();
        assert_eq!(rw.requests(), []);
        h.write(2047, &[3; 512]).unwrap();
        h.read(2047, &mut buf[..512]).unwrap();
        assert_eq!(buf[..512], [3; 512]);
    }

    #[test]
    fn whole_pages_go_in_runs_and_a_short_end_is_read_modify_write() {
        let d = RamDisk::new("d", 1 << 20);
        for (i, b) in d.data.lock().iter_mut().enumerate() {
            *b = !pattern(i);
        }
        let r = registry(&[&d]);
        let mut h = r.open("vda").unwrap();
        // 40 whole pages and 3 sectors from sector 101 (not page-aligned on the disk).
        let (sector, len) = (101u64, 40 * PAGE + 3 * 512);
        let start = sector as usize * 512;
        let buf: Vec<u8> = (start..start + len).map(pattern).collect();
        h.write(sector, &buf).unwrap();
        let pages_per_run = BOUNCE_PAGES as u64 * 8;
        assert_eq!(
            d.requests(),
            [
                (true, 101, 16),
                (true, 101 + pages_per_run, 16),
                (true, 101 + 2 * pages_per_run, 8),
                // The last 3 sectors: the page from there, read first, then written whole.
                (false, 101 + 320, 1),
                (true, 101 + 320, 1),
            ]
        );
        // Every byte written is where it belongs, and the bytes around are untouched.
        let disk = d.bytes(0..1 << 20);
        assert_eq!(disk[start..start + len], buf[..]);
        assert!((0..start).all(|i| disk[i] == !pattern(i)));
        assert!((start + len..1 << 20).all(|i| disk[i] == !pattern(i)));
        // Read back whole, and in pieces that are not pages.
        let mut back = alloc::vec![0u8; len];
        h.read(sector, &mut back).unwrap();
        assert_eq!(back, buf);
        let mut part = [0u8; 3 * 512];
        h.read(sector + 37, &mut part).unwrap();
        assert_eq!(part[..], buf[37 * 512..40 * 512]);
    }

    #[test]
    fn a_short_request_near_the_end_uses_the_last_page_of_the_disk() {
        // 2047 sectors: the last page does not end on a page boundary of the disk.
        let d = RamDisk::new("d", 2047 * 512);
        let r = registry(&[&d]);
        let mut h = r.open("vda").unwrap();
        h.write(2045, &[9; 1024]).unwrap();
        assert_eq!(d.requests(), [(false, 2039, 1), (true, 2039, 1)]);
        assert_eq!(d.bytes(2045 * 512..2047 * 512), [9; 1024]);
        assert!(d.bytes(0..2045 * 512).iter().all(|&b| b == 0));
        let mut back = [0u8; 512];
        h.read(2046, &mut back).unwrap();
        assert_eq!(back, [9; 512]);
        // A disk smaller than a page: refused, never sent.
        let tiny = RamDisk::new("tiny", 4 * 512);
        let r = registry(&[&tiny]);
        let mut h = r.open("vda").unwrap();
        let e = h.read(0, &mut [0; 512]).err().unwrap();
        assert_eq!(
            e,
            BlockError::TooSmall {
                name: "vda".into(),
                sectors: 4
            }
        );
        assert_eq!(e.errno(), "EINVAL");
        assert_eq!(tiny.requests(), []);
        // 4 KiB sectors: every request is whole pages.
        let mut big = RamDisk::new("big", 1 << 20);
        big.sector_size = 4096;
        let r = registry(&[&big]);
        let mut h = r.open("vda").unwrap();
        h.write(255, &[1; 4096]).unwrap();
        assert_eq!(big.requests(), [(true, 255, 1)]);
        assert!(h.write(255, &[1; 512]).is_err());
    }

    #[test]
    fn device_failures_are_io_errors_with_the_drivers_words() {
        let mut d = RamDisk::new("d", 1 << 20);
        d.fail = true;
        let r = registry(&[&d]);
        let mut h = r.open("vda").unwrap();
        let e = h.write(8, &[1; PAGE]).err().unwrap();
        assert_eq!(e.errno(), "EIO");
        assert_eq!(
            e.to_string(),
            "vda: input/output error (EIO): writing at sector 8: ram disk: I/O error"
        );
        let e = h.read(8, &mut [0; 512]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "vda: input/output error (EIO): reading at sector 8: ram disk: I/O error"
        );
        let e = h.flush().err().unwrap();
        assert_eq!(
            e.to_string(),
            "vda: input/output error (EIO): flushing its write cache: ram disk: queue broken"
        );
        // A failed handle still gives the disk back.
        drop(h);
        assert_eq!(r.free(), 1);
    }
}
