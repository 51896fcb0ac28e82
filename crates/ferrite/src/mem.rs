//! The application's memory: regions of its own half of the address space, made like Linux's
//! `mmap(MAP_ANONYMOUS | MAP_PRIVATE)`: lazy (a page appears, zeroed, on its first touch), with
//! permissions (never writable and executable at once), and pages that may go to swap when
//! memory runs short and come back, verified, on the next touch. A [`Region`] is the handle:
//! its bytes are read and written through it without `unsafe`, as slices or a word at a time,
//! and it is unmapped when dropped. Like a `Vec`, it lends its bytes shared (`&self`) or
//! exclusively (`&mut self`), so nothing writes them while a slice of them is read.
//!
//! ```ignore
//! use ferrite::mem::{Region, Prot};
//!
//! let mut region = Region::map(1 << 20, Prot::RW, "buffer").expect("1 MiB");
//! region.write_u64(0, 42);
//! assert_eq!(region.read_u64(0), 42);
//! region.as_mut_slice()[8..13].copy_from_slice(b"hello");
//! assert_eq!(&region.as_slice()[8..13], b"hello");
//! ```
#![forbid(unsafe_code)]

use ferrite_kernel::mm::app_space;

pub use ferrite_kernel::mm::swapfile::SwapError;
/// A region's permissions: `Prot::READ`, `Prot::RW`, `Prot::NONE` (a reserved range), and the
/// `read`/`write`/`exec` fields for others.
pub use ferrite_kernel::mm::vma::Prot;
/// Why a region could not be mapped, changed or unmapped (Linux's `EINVAL`, `ENOMEM`, ...).
pub use ferrite_kernel::mm::vma::VmaError as MapError;

/// A region of the application's memory, unmapped when dropped.
pub struct Region {
    inner: app_space::Region,
}

impl Region {
    /// Maps a lazy anonymous region of `len` bytes (rounded up to whole 4 KiB pages), named
    /// `name` in fault reports.
    ///
    /// ```ignore
    /// # use ferrite::mem::{Region, Prot};
    /// let r = Region::map(8192, Prot::RW, "two pages").unwrap();
    /// assert_eq!(r.len(), 8192);
    /// ```
    pub fn map(len: u64, prot: Prot, name: &'static str) -> Result<Region, MapError> {
        Ok(Region {
            inner: app_space::Region::map(len, prot, name)?,
        })
    }

    /// The region's first address.
    pub fn start(&self) -> u64 {
        self.inner.start()
    }

    /// Its length in bytes (whole pages).
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// Whether the region is empty (never, for a mapped one).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Reads the 64-bit word at byte `offset` (8-byte aligned, inside the region; otherwise a
    /// panic, as for a slice index). The first touch of a page maps it, zeroed, or brings it
    /// back from swap.
    pub fn read_u64(&self, offset: u64) -> u64 {
        self.inner.read_u64(offset)
    }

    /// Writes the 64-bit word at byte `offset` (as [`read_u64`](Self::read_u64)). A write to a
    /// region without write permission is a fault, reported with the region, and ends the run.
    pub fn write_u64(&mut self, offset: u64, value: u64) {
        self.inner.write_u64(offset, value)
    }

    /// The region's bytes. Pages come in as the slice touches them (zeroed the first time, or
    /// back from swap); reading a region without read permission is a fault, reported with the
    /// region, and ends the run.
    ///
    /// ```ignore
    /// # use ferrite::mem::{Region, Prot};
    /// let r = Region::map(4096, Prot::RW, "zeros").unwrap();
    /// assert!(r.as_slice().iter().all(|&b| b == 0));
    /// ```
    pub fn as_slice(&self) -> &[u8] {
        self.inner.as_slice()
    }

    /// The region's bytes, to write (as [`as_slice`](Self::as_slice); a write to a region
    /// without write permission ends the run with a report).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.inner.as_mut_slice()
    }

    /// The region's 64-bit words (aligned: a region starts on a page).
    ///
    /// ```ignore
    /// # use ferrite::mem::{Region, Prot};
    /// let mut r = Region::map(8192, Prot::RW, "words").unwrap();
    /// for (i, w) in r.words_mut().iter_mut().enumerate() {
    ///     *w = i as u64;
    /// }
    /// assert_eq!(r.words()[1023], 1023);
    /// ```
    pub fn words(&self) -> &[u64] {
        self.inner.words()
    }

    /// The region's 64-bit words, to write.
    pub fn words_mut(&mut self) -> &mut [u64] {
        self.inner.words_mut()
    }

    /// `mprotect`: new permissions for the whole region (not `Prot::NONE`, which needs the pages
    /// unmapped). Takes `&mut self`: no slice of the region is borrowed while its permissions
    /// change.
    ///
    /// ```ignore
    /// # use ferrite::mem::{Region, Prot};
    /// let mut r = Region::map(4096, Prot::RW, "table").unwrap();
    /// r.write_u64(0, 1);
    /// r.protect(Prot::READ).unwrap();
    /// ```
    pub fn protect(&mut self, prot: Prot) -> Result<(), MapError> {
        app_space::mprotect(self.start(), self.len(), prot)
    }

    /// `madvise(MADV_PAGEOUT)`: sends the region's pages to swap now (clean ones are dropped
    /// without a write); returns how many left memory. An error when there is no swap or a
    /// write failed (those pages stay in memory).
    pub fn pageout(&self) -> Result<u64, SwapError> {
        app_space::madvise_pageout(self.start(), self.len())
    }

    /// Unmaps the region now and says whether that worked (dropping it does the same).
    pub fn unmap(self) -> Result<(), MapError> {
        self.inner.unmap()
    }
}

/// RAM the machine has, in bytes (the device tree's memory banks that Ferrite can use).
pub fn ram_bytes() -> u64 {
    ferrite_kernel::kernel::get().map_or(0, |k| k.machine.ram_bytes())
}

/// The swap area's size and free space in bytes, `(0, 0)` without swap (`SwapTotal`,
/// `SwapFree`).
pub fn swap_totals() -> (u64, u64) {
    ferrite_kernel::mm::swapfile::SWAP.totals()
}
