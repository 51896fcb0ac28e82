//! Block devices: the disks Ferrite found at boot (virtio-blk disks, named `vda`, `vdb`, ... as
//! Linux names them, in the order they are attached), listed with their size and who has them,
//! and opened by name to read and write whole sectors. An open disk is the application's alone
//! until its [`Disk`] is dropped, which gives it back; the active swap device is never handed
//! out (`EBUSY`), nor a disk open already. Buffers may be anywhere in the application's memory
//! (its heap, its stack, a region whose pages are on swap): the kernel moves the data between
//! them and its own buffers, which the device reaches. Errors are [`BlockError`]s with Linux's
//! meanings (`ENOENT`, `EBUSY`, `EROFS`, `EINVAL`, `ENOMEM`, `EIO`); a bad request (not whole
//! sectors, past the disk's end, a write to a read-only disk) is refused before the device sees
//! anything.
//!
//! ```no_run
//! use ferrite::block;
//!
//! for d in block::devices() {
//!     ferrite::println!("{}: {} sectors of {} bytes, {:?}", d.name, d.sectors, d.sector_size, d.state);
//! }
//! let mut disk = block::open("vdb")?;
//! let mut sector = alloc::vec![0u8; disk.sector_size() as usize];
//! disk.read(0, &mut sector)?;
//! disk.write(2048, &sector)?;
//! disk.flush()?;
//! // Dropping `disk` gives vdb back.
//! # Ok::<(), ferrite::block::BlockError>(())
//! ```
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Why opening a disk, or a request on an open one, failed: `vda: device or resource busy
/// (EBUSY): it is the active swap device` when displayed; [`BlockError::errno`] gives Linux's
/// name for it.
pub use ferrite_kernel::block::BlockError;
/// One disk as [`devices`] lists it: `name`, `sectors`, `sector_size`, `read_only`, `state`
/// (free, open, or the swap device) and the driver's `device` name.
pub use ferrite_kernel::block::DiskInfo;
/// Who has a disk: nobody ([`DiskState::Free`]: [`open`] succeeds), an opener, or swap.
pub use ferrite_kernel::block::DiskState;

/// Every disk, in the order found (Linux's `/sys/block`).
///
/// ```ignore
/// let swap = ferrite::block::devices()
///     .into_iter()
///     .find(|d| d.state == ferrite::block::DiskState::Swap);
/// ```
pub fn devices() -> Vec<DiskInfo> {
    ferrite_kernel::block::devices()
}

/// Opens the disk `name` for this application alone, until the [`Disk`] is dropped. An error
/// for a name no disk has (`ENOENT`), for the active swap device and for a disk open already
/// (`EBUSY`).
///
/// ```ignore
/// match ferrite::block::open("vda") {
///     Ok(disk) => ferrite::println!("{}: {} sectors", disk.name(), disk.sectors()),
///     Err(e) => ferrite::println!("{e}"),
/// }
/// ```
pub fn open(name: &str) -> Result<Disk, BlockError> {
    Ok(Disk {
        inner: ferrite_kernel::block::open(name)?,
    })
}

/// An open disk, the application's alone; dropping it gives the disk back.
pub struct Disk {
    inner: ferrite_kernel::block::Bdev,
}

impl Disk {
    /// The disk's name (`vdb`).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The disk's size in sectors.
    pub fn sectors(&self) -> u64 {
        self.inner.sectors()
    }

    /// Bytes in a sector (512 on a virtio-blk disk): a request's buffer is a whole number of
    /// them.
    pub fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }

    /// Whether writes are refused (`EROFS`).
    pub fn read_only(&self) -> bool {
        self.inner.read_only()
    }

    /// Reads the sectors from `sector` on into `buf`, whose length is a whole number of sectors
    /// (`EINVAL` otherwise, and for sectors past the disk's end; `EIO` when the device fails).
    ///
    /// ```no_run
    /// let mut disk = ferrite::block::open("vdb")?;
    /// let mut first = [0u8; 512];
    /// disk.read(0, &mut first)?;
    /// # Ok::<(), ferrite::block::BlockError>(())
    /// ```
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.inner.read(sector, buf)
    }

    /// Writes `buf`, a whole number of sectors, to the sectors from `sector` on (`EROFS` on a
    /// read-only disk, `EINVAL` for a length that is not whole sectors or sectors past the end,
    /// `EIO` when the device fails). The device has the data when it returns;
    /// [`flush`](Self::flush) makes it durable.
    ///
    /// ```no_run
    /// let mut disk = ferrite::block::open("vdb")?;
    /// disk.write(2048, &[0x5a; 1024])?; // sectors 2048 and 2049
    /// # Ok::<(), ferrite::block::BlockError>(())
    /// ```
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.inner.write(sector, buf)
    }

    /// Makes every write so far durable (the device's write cache goes to its media).
    pub fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.flush()
    }
}
