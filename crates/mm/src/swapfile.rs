//! The swap area in use (Linux's `mm/swapfile.c`): swapon over the block devices the kernel
//! found (choosing one as the policy says: `swap=auto`, `format`, `format:N` on the command
//! line, and giving the others back to the kernel), activating it (header, slots, the checksum
//! each slot keeps of the page it holds), freeing slots, and its totals for `/proc/meminfo`.
//! Owns the choice, the device it keeps and the area's bookkeeping; the page I/O over the area's
//! device is `page_io`'s. Must never write to a disk
//! that lacks the `SWAPSPACE2` signature unless the policy is to format, and then only to a
//! blank disk (when no disk holds a usable area) or to the one [`SwapPolicy::Format`] names;
//! never to a read-only disk. Devices come through mm's port (`blkdev::BlockDevice`): this module
//! names no driver, and all of it but installing the reclaim hook builds on the host, where its
//! tests run over fake devices.
// A named exception to the crate's `deny(unsafe_code)`: the checksum reads a page as words (`align_to`).
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::blkdev::{BlockDevice, BlockError};
use super::swap_entry::SwapEntry;
use super::swap_header::{foreign_signature, SwapHeader, SwapHeaderError, FOREIGN_SCAN};
use super::swap_slots::SwapSlots;
use super::swap_table::SwapTable;
use crate::addr::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;

/// How swapon picks its device among those it is given (the command line's `swap=auto`,
/// `format` and `format:N`; the reasons it logs for passing a disk over name those values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapPolicy {
    /// The first device carrying a usable swap area; nothing is written (`swap=auto`).
    Existing,
    /// The first device with a usable swap area; only when there is none, a fresh header on the
    /// first writable device that is blank (see [`first_nonzero`]) (`swap=format`).
    ExistingElseBlank,
    /// A fresh header on device N of the list (counted from 0), whatever it holds
    /// (`swap=format:N`).
    Format(usize),
}

/// Reads the pages from page `first` on into `buf` (whole pages), in one request.
fn read_into<D: BlockDevice + ?Sized>(
    disk: &mut D,
    first: u64,
    buf: &mut [u8],
) -> Result<(), BlockError> {
    let mut pages: Vec<&mut [u8]> = buf.chunks_exact_mut(PAGE).collect();
    let sector = first * disk.sectors_per_page();
    disk.read_pages(sector, &mut pages)
}

/// Writes `page` as the disk's page 0 and makes it durable.
fn write_page0<D: BlockDevice + ?Sized>(disk: &mut D, page: &[u8]) -> Result<(), BlockError> {
    disk.write_pages(0, &[page])?;
    disk.flush()
}

/// Why a disk was passed over (each one is logged, so a user sees why swap is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub disk: usize,
    pub why: String,
    /// Not swap and not meant to be (no signature): worth a line, not a warning.
    pub not_swap: bool,
}

/// The outcome of swapon's choice over the disks it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The chosen disk's index and its header (read, or just written by `swap=format`).
    pub chosen: Option<(usize, SwapHeader)>,
    /// Disks passed over, in order, with the reason.
    pub skipped: Vec<Skipped>,
    /// Whether a header was written (the policy formats).
    pub formatted: bool,
}

/// The smallest area worth having: the header page and one slot.
const MIN_PAGES: u64 = 2;

/// Pages at each end of a disk that must be zero for `swap=format` to call it blank: the
/// first MiB holds page 0 (which the format writes) and where partition tables, file systems
/// and RAID keep their labels; the last MiB holds the backup GPT and end-of-disk labels.
const BLANK_PAGES: u64 = 256;

/// What a disk holds, as far as swap is concerned.
enum Found {
    /// A usable swap area.
    Swap(SwapHeader),
    /// Not usable, and why.
    Unusable { why: String, not_swap: bool },
    /// No swap signature of any kind.
    NoSignature,
}

/// Reads a disk's first pages (its first 64 KiB at most, into `buf`) and says what it holds.
fn inspect<D: BlockDevice + ?Sized>(disk: &mut D, buf: &mut [u8]) -> Found {
    let unusable = |why: String| Found::Unusable {
        why,
        not_swap: false,
    };
    let pages = disk.capacity_pages();
    if pages < MIN_PAGES {
        return unusable(format!("{pages} page(s): too small for a swap area"));
    }
    let len = (buf.len().min(FOREIGN_SCAN) as u64 / PAGE_SIZE).min(pages) as usize * PAGE;
    let head = &mut buf[..len];
    if let Err(e) = read_into(disk, 0, head) {
        return unusable(format!("reading its first pages failed: {e}"));
    }
    match SwapHeader::parse(head, pages) {
        Ok(_) if disk.read_only() => unusable("read-only: cannot swap to it".into()),
        Ok(h) if h.usable_pages() == 0 => unusable("the swap area has no usable page".into()),
        Ok(h) => Found::Swap(h),
        Err(SwapHeaderError::NoSignature) => match foreign_signature(head) {
            Some(foreign) => unusable(format!("{foreign}")),
            None => Found::NoSignature,
        },
        Err(e) => unusable(format!("{e}")),
    }
}

/// The offset of the first non-zero byte in a disk's first and last [`BLANK_PAGES`] pages (all
/// of it when smaller), read through `buf`; `None` when every one is zero: the disk is blank.
pub fn first_nonzero<D: BlockDevice + ?Sized>(
    disk: &mut D,
    buf: &mut [u8],
) -> Result<Option<u64>, BlockError> {
    let pages = disk.capacity_pages();
    let head = BLANK_PAGES.min(pages);
    let tail = pages.saturating_sub(BLANK_PAGES).max(head);
    let step = (buf.len() / PAGE).max(1) as u64;
    for range in [0..head, tail..pages] {
        let mut page = range.start;
        while page < range.end {
            let n = step.min(range.end - page);
            let chunk = &mut buf[..n as usize * PAGE];
            read_into(disk, page, chunk)?;
            if let Some(at) = chunk.iter().position(|&b| b != 0) {
                return Ok(Some(page * PAGE_SIZE + at as u64));
            }
            page += n;
        }
    }
    Ok(None)
}

/// Writes a fresh header on `disk` and reads it back: the header the disk now holds.
fn format<D: BlockDevice + ?Sized>(
    disk: &mut D,
    uuid: [u8; 16],
    buf: &mut [u8],
) -> Result<SwapHeader, String> {
    if disk.read_only() {
        return Err("read-only: cannot format".into());
    }
    let header = SwapHeader::for_disk(disk.capacity_pages(), uuid);
    let page = &mut buf[..PAGE];
    header
        .write(page)
        .map_err(|e| format!("cannot build a header: {e}"))?;
    write_page0(disk, page).map_err(|e| format!("writing the header failed: {e}"))?;
    // Read back what the disk now holds rather than trusting the write.
    read_into(disk, 0, page).map_err(|e| format!("reading the new header back failed: {e}"))?;
    match SwapHeader::parse(page, disk.capacity_pages()) {
        Ok(h) if h == header => Ok(h),
        Ok(_) => Err("the header read back differs from the one written".into()),
        Err(e) => Err(format!("the header read back is not valid: {e}")),
    }
}

/// Picks the swap disk as `policy` says; `uuid` names an area it writes. Every disk not chosen
/// is in `skipped` with the reason. Only a formatting policy writes, and only to a blank disk
/// when no disk holds a usable area, or to the disk [`SwapPolicy::Format`] names (none, when it
/// names a disk past the list's end).
pub fn choose<D: BlockDevice>(policy: SwapPolicy, disks: &mut [D], uuid: [u8; 16]) -> Choice {
    let mut choice = Choice {
        chosen: None,
        skipped: Vec::new(),
        formatted: false,
    };
    let mut buf = alloc::vec![0u8; FOREIGN_SCAN];
    match policy {
        SwapPolicy::Format(n) => {
            for (i, disk) in disks.iter_mut().enumerate() {
                if i != n {
                    choice.skipped.push(Skipped {
                        disk: i,
                        why: format!("swap=format:{n} names another disk"),
                        not_swap: true,
                    });
                    continue;
                }
                let formatted = if disk.capacity_pages() < MIN_PAGES {
                    Err(format!(
                        "{} page(s): too small for a swap area",
                        disk.capacity_pages()
                    ))
                } else {
                    format(disk, uuid, &mut buf)
                };
                match formatted {
                    Ok(h) => {
                        choice.chosen = Some((i, h));
                        choice.formatted = true;
                    }
                    Err(why) => choice.skipped.push(Skipped {
                        disk: i,
                        why,
                        not_swap: false,
                    }),
                }
            }
            return choice;
        }
        SwapPolicy::Existing | SwapPolicy::ExistingElseBlank => {}
    }
    let found: Vec<Found> = disks.iter_mut().map(|d| inspect(d, &mut buf)).collect();
    let swap_exists = found.iter().any(|f| matches!(f, Found::Swap(_)));
    for (i, (disk, found)) in disks.iter_mut().zip(found).enumerate() {
        let taken = choice.chosen.is_some();
        let (why, not_swap) = match found {
            Found::Swap(h) if !taken => {
                choice.chosen = Some((i, h));
                continue;
            }
            Found::Swap(_) => (
                "another disk's swap area is in use (one at a time)".into(),
                true,
            ),
            Found::Unusable { why, not_swap } => (why, not_swap),
            Found::NoSignature if policy == SwapPolicy::Existing => (
                "no SWAPSPACE2 signature: not a swap area (mkswap makes one)".into(),
                true,
            ),
            Found::NoSignature if swap_exists => (
                "no SWAPSPACE2 signature; not formatted: swap=format uses the swap area \
                 another disk holds"
                    .into(),
                true,
            ),
            Found::NoSignature if taken => (
                "no SWAPSPACE2 signature; not formatted: another disk was (one swap area at a \
                 time)"
                    .into(),
                true,
            ),
            Found::NoSignature if disk.read_only() => (
                "no SWAPSPACE2 signature, and read-only: cannot format".into(),
                false,
            ),
            Found::NoSignature => match first_nonzero(disk, &mut buf) {
                Ok(None) => match format(disk, uuid, &mut buf) {
                    Ok(h) => {
                        choice.chosen = Some((i, h));
                        choice.formatted = true;
                        continue;
                    }
                    Err(why) => (why, false),
                },
                Ok(Some(at)) => (
                    format!(
                        "no SWAPSPACE2 signature and not blank (byte {at:#x} is not zero): not \
                         formatted, swap=format takes only a blank disk (swap=format:{i} would \
                         format this one, destroying what it holds)"
                    ),
                    true,
                ),
                Err(e) => (format!("reading it failed: {e}; not formatted"), false),
            },
        };
        choice.skipped.push(Skipped {
            disk: i,
            why,
            not_swap,
        });
    }
    choice
}

/// An active swap area: its header, slot bookkeeping and the checksum of every page it holds
/// (the disk itself stays with the caller, which owns the driver).
pub struct SwapArea {
    pub header: SwapHeader,
    pub slots: SwapSlots,
    /// Per slot: the checksum of the page written there (0 for a free slot).
    sums: SwapTable<u64>,
}

/// Why a page could not go to swap or come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapError {
    /// No swap area is active.
    NoSwap,
    /// Fewer free slots than pages to write.
    Full { wanted: usize, free: u64 },
    /// A write failed: the pages stay in memory; slots the disk refused are marked bad.
    Write {
        first_slot: u64,
        pages: usize,
        error: BlockError,
    },
    /// The disk refused a read: the page is lost to the application.
    Read { entry: SwapEntry, error: BlockError },
    /// The page read back is not the page written.
    Checksum {
        entry: SwapEntry,
        expected: u64,
        found: u64,
    },
    /// The entry names a slot that holds no page (a double free or a stale entry).
    NotInUse(SwapEntry),
    /// The address is in no region of the application's space.
    NotMapped { addr: u64 },
    /// The area is in use by the code that asked (reclaim inside swap I/O's own allocation).
    Busy,
    /// More pages than one call writes ([`SWAP_BATCH_MAX`](super::page_io::SWAP_BATCH_MAX)).
    TooMany { pages: usize },
}

impl fmt::Display for SwapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapError::NoSwap => write!(f, "no swap area is active"),
            SwapError::Full { wanted, free } => {
                write!(
                    f,
                    "swap full: {wanted} page(s) to write, {free} slot(s) free"
                )
            }
            SwapError::Write {
                first_slot,
                pages,
                error,
            } => write!(
                f,
                "swap write of {pages} page(s) at slot {first_slot} failed ({error}); the pages \
                 stay in memory"
            ),
            SwapError::Read { entry, error } => write!(f, "swap read of {entry} failed: {error}"),
            SwapError::Checksum {
                entry,
                expected,
                found,
            } => write!(
                f,
                "{entry} read back wrong: checksum {found:#018x}, written {expected:#018x}"
            ),
            SwapError::NotInUse(entry) => write!(f, "{entry} holds no page"),
            SwapError::NotMapped { addr } => write!(f, "{addr:#x} is in no region"),
            SwapError::Busy => write!(f, "the swap area is busy"),
            SwapError::TooMany { pages } => {
                write!(
                    f,
                    "{pages} pages in one swap-out (at most {})",
                    super::page_io::SWAP_BATCH_MAX
                )
            }
        }
    }
}

/// The checksum of a page as it goes to `slot`: Fletcher's two running sums, over four lanes of
/// 64-bit words (word i feeds lane i % 4), then mixed. A change confined to one word changes its
/// lane's first sum by a non-zero amount, so it is always caught; the second sum weighs each
/// word by its position, so words that trade places are caught too; seeding the lanes with the
/// slot catches a page that landed in, or was read from, the wrong place. Two adds per word,
/// which the compiler turns into SIMD adds: the page is read once at memory speed, not hashed
/// word by word (a multiply per word cost four times as much).
pub fn page_checksum(slot: u64, page: &[u8]) -> u64 {
    let seed = slot.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x6a09_e667_f3bc_c908;
    let mut a = [seed, seed ^ 1, seed ^ 2, seed ^ 3];
    let mut b = [0u64; 4];
    // SAFETY: every bit pattern is a valid u64; `align_to` only reinterprets the aligned middle.
    let (head, words, _) = unsafe { page.align_to::<u64>() };
    let whole = page.len() / 32 * 32;
    if head.is_empty() && cfg!(target_endian = "little") {
        // Pages are page-aligned: whole words, no byte assembly (with strict alignment an
        // unaligned read would be eight byte loads).
        (a, b) = fletcher4(a, b, &words[..whole / 8]);
    } else {
        for c in page[..whole].chunks_exact(32) {
            let w = |i: usize| {
                let mut x = [0u8; 8];
                x.copy_from_slice(&c[i * 8..i * 8 + 8]);
                u64::from_le_bytes(x)
            };
            fletcher_step(&mut a, &mut b, [w(0), w(1), w(2), w(3)]);
        }
    }
    // A tail shorter than four words (never for a page) is zero-padded into one more step.
    if whole < page.len() {
        let mut x = [0u8; 32];
        x[..page.len() - whole].copy_from_slice(&page[whole..]);
        let w = |i: usize| u64::from_le_bytes(x[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        fletcher_step(&mut a, &mut b, [w(0), w(1), w(2), w(3)]);
    }
    let mut h = seed ^ page.len() as u64;
    for v in a.into_iter().chain(b) {
        h = (h.rotate_left(23) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h ^ (h >> 29)
}

#[inline(always)]
fn fletcher_step(a: &mut [u64; 4], b: &mut [u64; 4], w: [u64; 4]) {
    for l in 0..4 {
        a[l] = a[l].wrapping_add(w[l]);
        b[l] = b[l].wrapping_add(a[l]);
    }
}

/// The checksum's sums over whole groups of four words: portable here; the kernel runs the
/// same sums in SIMD registers, two lanes an add (`arch::aarch64::simd::fletcher4`).
pub fn fletcher4_portable(mut a: [u64; 4], mut b: [u64; 4], words: &[u64]) -> ([u64; 4], [u64; 4]) {
    for c in words.chunks_exact(4) {
        fletcher_step(&mut a, &mut b, [c[0], c[1], c[2], c[3]]);
    }
    (a, b)
}

// The architecture's vector version in the kernel, the portable one on the host (mm::cpu).
use super::cpu::fletcher4;

impl SwapArea {
    /// The area's tables (about 9 bytes per slot: a checksum and a state, in chunks, so no
    /// large contiguous allocation); an error when they do not fit in memory.
    pub fn new(header: SwapHeader) -> Result<SwapArea, String> {
        let too_big = |_| {
            let slots = header.last_page as usize + 1;
            let bytes = SwapTable::<u64>::bytes_for(slots) + SwapTable::<u8>::bytes_for(slots);
            format!(
                "{} slots need {} KiB of tables, more than memory allows: make a smaller area \
                 (mkswap DISK SIZE-IN-KiB) or give the machine more RAM",
                header.last_page,
                bytes >> 10
            )
        };
        let bad: Vec<u64> = header.bad_pages.iter().map(|&p| p as u64).collect();
        let slots = SwapSlots::new(header.last_page as u64, &bad).map_err(too_big)?;
        let sums = SwapTable::new(header.last_page as usize + 1, 0).map_err(too_big)?;
        Ok(SwapArea {
            header,
            slots,
            sums,
        })
    }

    /// `SwapTotal` in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.slots.total_slots() * PAGE_SIZE
    }

    /// `SwapFree` in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.slots.free_slots() * PAGE_SIZE
    }

    /// Fills `slots` with free slots, as contiguous as the area allows; takes none at all if
    /// fewer are free.
    pub fn reserve(&mut self, slots: &mut [u64]) -> Result<(), SwapError> {
        let free = self.slots.free_slots();
        if (slots.len() as u64) > free {
            return Err(SwapError::Full {
                wanted: slots.len(),
                free,
            });
        }
        let got = self.slots.alloc_batch(slots);
        debug_assert_eq!(got, slots.len());
        Ok(())
    }

    /// The pages are on disk at `slots`: remember what they hold.
    pub fn commit(&mut self, slots: &[u64], pages: &[&[u8]]) {
        for (&slot, page) in slots.iter().zip(pages) {
            self.sums[slot as usize] = page_checksum(slot, page);
        }
    }

    /// A write to `slots` failed: they are never used again.
    pub fn write_failed(&mut self, slots: &[u64]) {
        for &slot in slots {
            self.slots.mark_bad(slot);
        }
    }

    /// Reserved slots that were not written (another run of the batch failed): free again.
    pub fn unreserve(&mut self, slots: &[u64]) {
        for &slot in slots {
            self.slots.free(slot);
        }
    }

    /// The entry may be read: its slot holds a page.
    pub fn check_in_use(&self, entry: SwapEntry) -> Result<(), SwapError> {
        if self.slots.in_use(entry.slot()) {
            Ok(())
        } else {
            Err(SwapError::NotInUse(entry))
        }
    }

    /// Whether `page`, read from `entry`'s slot, is the page written there.
    pub fn verify(&self, entry: SwapEntry, page: &[u8]) -> Result<(), SwapError> {
        self.check_in_use(entry)?;
        let expected = self.sums[entry.slot() as usize];
        let found = page_checksum(entry.slot(), page);
        if found == expected {
            Ok(())
        } else {
            Err(SwapError::Checksum {
                entry,
                expected,
                found,
            })
        }
    }

    /// The page at `entry` is no longer needed (read back for good, or its owner went away).
    pub fn release(&mut self, entry: SwapEntry) -> Result<(), SwapError> {
        if !self.slots.free(entry.slot()) {
            return Err(SwapError::NotInUse(entry));
        }
        self.sums[entry.slot() as usize] = 0;
        Ok(())
    }
}

/// The active swap area on its disk (Linux's `swap_info_struct`): the device, the area's
/// bookkeeping and where a slot's page lies on the device. Page I/O over it is `page_io`'s.
pub struct ActiveSwap {
    pub disk: Box<dyn BlockDevice>,
    pub area: SwapArea,
    /// The disk's sectors in a page (a slot's page starts at `slot * sectors_per_page`).
    sectors_per_page: u64,
}

impl ActiveSwap {
    /// `area` on `disk`, whose page 0 holds the area's header.
    pub fn new(disk: Box<dyn BlockDevice>, area: SwapArea) -> ActiveSwap {
        ActiveSwap {
            sectors_per_page: disk.sectors_per_page(),
            disk,
            area,
        }
    }

    /// The disk sector where a slot's page starts.
    #[inline]
    pub fn slot_sector(&self, slot: u64) -> u64 {
        slot * self.sectors_per_page
    }
}

/// The system's swap (Linux keeps it in `swap_info[]`): the active area behind its lock, once
/// swapon chose one, and what the reclaim path reads without that lock (it runs inside
/// allocations that swap I/O itself makes, so it must never wait for the area). The kernel's is
/// [`SWAP`]; host tests make their own over fake devices.
pub struct SwapSpace {
    area: spin::Mutex<Option<ActiveSwap>>,
    active: AtomicBool,
    total_slots: AtomicU64,
}

impl Default for SwapSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl SwapSpace {
    pub const fn new() -> SwapSpace {
        SwapSpace {
            area: spin::Mutex::new(None),
            active: AtomicBool::new(false),
            total_slots: AtomicU64::new(0),
        }
    }

    /// Makes `swap` the active area.
    pub fn install(&self, swap: ActiveSwap) {
        self.total_slots
            .store(swap.area.slots.total_slots(), Ordering::Relaxed);
        *self.area.lock() = Some(swap);
        self.active.store(true, Ordering::Release);
    }

    /// The active area, under its lock (`None` inside: no swap).
    pub fn lock(&self) -> spin::MutexGuard<'_, Option<ActiveSwap>> {
        self.area.lock()
    }

    /// As [`lock`](Self::lock), but `None` instead of waiting.
    pub fn try_lock(&self) -> Option<spin::MutexGuard<'_, Option<ActiveSwap>>> {
        self.area.try_lock()
    }

    /// Whether an area is active (an atomic, not the lock).
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Free slots, or 0 while the area is in use (never waits, see the type).
    pub fn free_slots_now(&self) -> u64 {
        self.area
            .try_lock()
            .and_then(|s| s.as_ref().map(|s| s.area.slots.free_slots()))
            .unwrap_or(0)
    }

    /// Slots in the active area (0 without swap), without the lock.
    pub fn total_slots(&self) -> u64 {
        self.total_slots.load(Ordering::Relaxed)
    }

    /// The page at `entry` is no longer needed; its slot is free again.
    pub fn swap_free(&self, entry: SwapEntry) -> Result<(), SwapError> {
        self.area
            .lock()
            .as_mut()
            .ok_or(SwapError::NoSwap)?
            .area
            .release(entry)
    }

    /// As [`totals`](Self::totals), without waiting: `None` if the area is locked (for fault
    /// reports).
    pub fn try_totals(&self) -> Option<(u64, u64)> {
        self.area.try_lock().map(|s| {
            s.as_ref()
                .map_or((0, 0), |s| (s.area.total_bytes(), s.area.free_bytes()))
        })
    }

    /// `SwapTotal` and `SwapFree` in bytes (zero without swap).
    pub fn totals(&self) -> (u64, u64) {
        self.area
            .lock()
            .as_ref()
            .map_or((0, 0), |s| (s.area.total_bytes(), s.area.free_bytes()))
    }
}

/// The kernel's swap.
pub static SWAP: SwapSpace = SwapSpace::new();

/// A name for a new area: the counter's value, spread by splitmix64, is as unique as a boot
/// needs; RFC 4122 version 4 and variant, as mkswap writes.
fn new_uuid() -> [u8; 16] {
    let mut state = super::cpu::ticks();
    let mut uuid = [0u8; 16];
    for half in uuid.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        half.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// swapon over the disks the kernel found (in the order [`SwapPolicy::Format`] counts them):
/// picks one as `policy` says, logs why any disk was passed over, makes the chosen one the
/// active area of [`SWAP`] and lets reclaim send pages to it. Gives back every disk it does not
/// keep, in its place in the list (`None` in the place of the one it keeps), so the kernel can
/// hand them to their next user: a disk swap passed over is not swap's to drop.
pub fn swapon<D: BlockDevice + 'static>(
    policy: SwapPolicy,
    disks: Vec<Box<D>>,
) -> Vec<Option<Box<D>>> {
    let disks = swapon_into(&SWAP, policy, disks);
    // Reclaim can now send application pages to swap (the application's address space is the
    // kernel's: a host build has none to reclaim).
    #[cfg(target_os = "none")]
    if SWAP.active() {
        super::init::PAGES.set_reclaim_hook(super::app_space::reclaim_hook);
    }
    disks
}

/// [`swapon`] into `swap` (the host tests' own [`SwapSpace`]), without the reclaim hook.
pub fn swapon_into<D: BlockDevice + 'static>(
    swap: &SwapSpace,
    policy: SwapPolicy,
    mut disks: Vec<Box<D>>,
) -> Vec<Option<Box<D>>> {
    use log::{info, warn};
    let choice = choose(policy, &mut disks, new_uuid());
    for s in &choice.skipped {
        let name = disks[s.disk].name();
        if s.not_swap {
            info!("Swap: {name} not used: {}", s.why);
        } else {
            warn!("Swap: {name} not used: {}", s.why);
        }
    }
    let mut disks: Vec<Option<Box<D>>> = disks.into_iter().map(Some).collect();
    let Some((index, header)) = choice.chosen else {
        warn!("Swap: no usable swap area; running without swap");
        return disks;
    };
    let area = match SwapArea::new(header) {
        Ok(area) => area,
        Err(why) => {
            if let Some(disk) = &disks[index] {
                warn!(
                    "Swap: {} not used: {why}; running without swap",
                    disk.name()
                );
            }
            return disks;
        }
    };
    let Some(disk) = disks[index].take() else {
        return disks;
    };
    info!(
        "Swap: {} {}: {} KiB in {} slots{}",
        if choice.formatted {
            "formatted"
        } else {
            "using"
        },
        disk.name(),
        area.total_bytes() / 1024,
        area.slots.total_slots(),
        if area.header.bad_pages.is_empty() {
            String::new()
        } else {
            format!(", {} bad page(s) skipped", area.header.bad_pages.len())
        }
    );
    swap.install(ActiveSwap::new(disk, area));
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_disk::FakeDisk;

    #[test]
    fn auto_takes_the_first_disk_with_a_signature_and_writes_nothing() {
        let mut disks = [FakeDisk::blank(64), FakeDisk::swap(128), FakeDisk::swap(32)];
        let c = choose(SwapPolicy::Existing, &mut disks, [9; 16]);
        let (i, h) = c.chosen.unwrap();
        assert_eq!(i, 1);
        assert_eq!(h.last_page, 127);
        assert_eq!(c.skipped.len(), 2, "every disk not chosen says why");
        assert!(c.skipped[0].why.contains("no SWAPSPACE2 signature"));
        assert!(!c.skipped[0].why.contains("swap=format"));
        assert!(c.skipped[0].not_swap);
        assert_eq!(c.skipped[1].disk, 2);
        assert!(c.skipped[1].why.contains("one at a time"));
        assert!(!c.formatted);
        assert!(disks.iter().all(|d| d.writes == 0));
        assert!(disks[0].data.iter().all(|&b| b == 0));
    }

    /// Boxed fake disks, as the kernel hands its disks to swapon (boxed, since the one swapon
    /// keeps becomes the area's `Box<dyn BlockDevice>` as it is).
    #[allow(clippy::vec_box)]
    fn boxed(disks: impl IntoIterator<Item = FakeDisk>) -> Vec<Box<FakeDisk>> {
        disks.into_iter().map(Box::new).collect()
    }

    #[test]
    fn swapon_keeps_the_chosen_disk_and_gives_every_other_back_in_its_place() {
        let swap = SwapSpace::new();
        let data = FakeDisk::data(64);
        let back = swapon_into(
            &swap,
            SwapPolicy::Existing,
            boxed([data.clone(), FakeDisk::swap(128), FakeDisk::blank(32)]),
        );
        assert_eq!(back.len(), 3, "one place per disk given");
        assert!(back[1].is_none(), "the swap disk is kept");
        let (first, last) = (back[0].as_ref().unwrap(), back[2].as_ref().unwrap());
        assert_eq!(first.data, data.data, "the data disk comes back as it was");
        assert_eq!(last.data.len(), 32 * PAGE, "the blank disk comes back");
        assert_eq!((first.writes, last.writes), (0, 0));
        assert!(swap.active());
        assert_eq!(swap.totals(), (127 * PAGE_SIZE, 127 * PAGE_SIZE));
        // The kept disk is the area's (the 128-page one).
        let area = swap.lock();
        assert_eq!(area.as_ref().unwrap().disk.capacity_pages(), 128);
    }

    #[test]
    fn swapon_without_a_usable_disk_gives_them_all_back_and_activates_nothing() {
        let swap = SwapSpace::new();
        let back = swapon_into(
            &swap,
            SwapPolicy::Existing,
            boxed([FakeDisk::blank(64), FakeDisk::swap_16k(64)]),
        );
        assert!(back.iter().all(Option::is_some));
        assert!(!swap.active());
        assert_eq!(swap.totals(), (0, 0));
        // swap=format:N naming a disk past the list: nothing kept, nothing written.
        let back = swapon_into(&swap, SwapPolicy::Format(5), boxed([FakeDisk::blank(64)]));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].as_ref().unwrap().writes, 0);
        assert!(!swap.active());
        // No disk at all: an empty list back.
        assert!(swapon_into(&swap, SwapPolicy::Existing, boxed([])).is_empty());
    }

    #[test]
    fn swapon_format_keeps_the_disk_it_formatted() {
        let swap = SwapSpace::new();
        let back = swapon_into(
            &swap,
            SwapPolicy::ExistingElseBlank,
            boxed([FakeDisk::data(64), FakeDisk::blank(256)]),
        );
        assert!(back[0].as_ref().is_some_and(|d| d.writes == 0));
        assert!(back[1].is_none());
        assert_eq!(swap.totals().0, 255 * PAGE_SIZE);
    }

    #[test]
    fn auto_without_a_swap_disk_leaves_every_disk_untouched() {
        let mut disks = [FakeDisk::blank(64), FakeDisk::blank(64)];
        let c = choose(SwapPolicy::Existing, &mut disks, [9; 16]);
        assert!(c.chosen.is_none());
        assert_eq!(c.skipped.len(), 2);
        assert!(disks.iter().all(|d| d.writes == 0));
    }

    #[test]
    fn format_writes_a_header_linux_would_read() {
        let mut disks = [FakeDisk::blank(256)];
        let c = choose(SwapPolicy::ExistingElseBlank, &mut disks, [9; 16]);
        let (i, h) = c.chosen.unwrap();
        assert_eq!((i, h.last_page, h.uuid), (0, 255, [9; 16]));
        assert!(c.formatted);
        assert_eq!(&disks[0].data[PAGE - 10..PAGE], b"SWAPSPACE2");
        assert_eq!(SwapHeader::parse(&disks[0].data[..PAGE], 256), Ok(h));
    }

    #[test]
    fn format_passes_over_read_only_and_failing_disks() {
        let mut ro = FakeDisk::blank(64);
        ro.ro = true;
        let mut bad = FakeDisk::blank(64);
        bad.fail_write = true;
        let mut disks = [ro, bad, FakeDisk::blank(64)];
        let c = choose(SwapPolicy::ExistingElseBlank, &mut disks, [9; 16]);
        assert_eq!(c.chosen.map(|(i, _)| i), Some(2));
        assert_eq!(disks[0].writes, 0);
        assert!(c.skipped[0].why.contains("read-only"));
        assert!(c.skipped[1].why.contains("writing the header failed"));
    }

    #[test]
    fn read_errors_corrupt_headers_and_tiny_disks_are_reported_not_used() {
        let mut failing = FakeDisk::swap(64);
        failing.fail_read = true;
        let mut lying = FakeDisk::swap(64);
        lying.data[1028..1032].copy_from_slice(&1000u32.to_le_bytes());
        let mut ro = FakeDisk::swap(64);
        ro.ro = true;
        let mut disks = [failing, lying, ro, FakeDisk::blank(1)];
        let c = choose(SwapPolicy::Existing, &mut disks, [9; 16]);
        assert!(c.chosen.is_none());
        let why: Vec<&str> = c.skipped.iter().map(|s| s.why.as_str()).collect();
        assert!(why[0].contains("reading its first pages failed"), "{why:?}");
        assert!(why[1].contains("last page 1000"), "{why:?}");
        assert!(why[2].contains("read-only"), "{why:?}");
        assert!(why[3].contains("too small"), "{why:?}");
        assert!(c.skipped.iter().all(|s| !s.not_swap));
    }

    #[test]
    fn format_uses_an_existing_swap_area_and_writes_nothing() {
        // A data disk first, a mkswap'd disk second: the data disk is never written.
        let mut disks = [FakeDisk::data(64), FakeDisk::swap(64), FakeDisk::blank(64)];
        let before = disks[0].data.clone();
        let c = choose(SwapPolicy::ExistingElseBlank, &mut disks, [9; 16]);
        assert_eq!(c.chosen.map(|(i, _)| i), Some(1));
        assert!(!c.formatted);
        assert!(disks.iter().all(|d| d.writes == 0));
        assert_eq!(disks[0].data, before);
        assert_eq!(c.skipped.len(), 2);
        assert!(
            c.skipped[0]
                .why
                .contains("uses the swap area another disk holds"),
            "{:?}",
            c.skipped
        );
        assert!(
            c.skipped[1].why.contains("not formatted"),
            "{:?}",
            c.skipped
        );
    }

    #[test]
    fn format_takes_only_a_blank_disk() {
        // Data in page 0; data only in the last MiB (a backup GPT, say); a blank disk.
        let mut tail = FakeDisk::blank(1024);
        tail.data[1023 * PAGE + 7] = 1;
        let mut disks = [FakeDisk::data(64), tail, FakeDisk::blank(1024)];
        let c = choose(SwapPolicy::ExistingElseBlank, &mut disks, [9; 16]);
        assert_eq!(c.chosen.map(|(i, _)| i), Some(2));
        assert!(c.formatted);
        assert_eq!((disks[0].writes, disks[1].writes), (0, 0));
        let why: Vec<&str> = c.skipped.iter().map(|s| s.why.as_str()).collect();
        assert!(
            why[0].contains("not blank (byte 0x0 is not zero)"),
            "{why:?}"
        );
        assert!(
            why[0].contains("swap=format:0 would format this one"),
            "{why:?}"
        );
        assert!(
            why[1].contains(&format!("byte {:#x} is not zero", 1023 * PAGE + 7)),
            "{why:?}"
        );
        // Nothing blank: nothing formatted.
        let mut disks = [FakeDisk::data(64)];
        let c = choose(SwapPolicy::ExistingElseBlank, &mut disks, [9; 16]);
        assert!(c.chosen.is_none() && disks[0].writes == 0);
    }

    #[test]
    fn a_signature_for_another_page_size_is_named_and_never_formatted() {
        let mut big = FakeDisk::blank(64);
        big.data[16384 - 10..16384].copy_from_slice(b"SWAPSPACE2");
        let mut old = FakeDisk::blank(64);
        old.data[PAGE - 10..PAGE].copy_from_slice(b"SWAP-SPACE");
        for policy in [SwapPolicy::Existing, SwapPolicy::ExistingElseBlank] {
            let mut disks = [big.clone(), old.clone()];
            let c = choose(policy, &mut disks, [9; 16]);
            assert!(c.chosen.is_none(), "{policy:?}");
            assert!(disks.iter().all(|d| d.writes == 0));
            let why: Vec<&str> = c.skipped.iter().map(|s| s.why.as_str()).collect();
            assert!(
                why[0].contains("swap signature for 16 KiB pages (mkswap -p 16384)"),
                "{why:?}"
            );
            assert!(why[1].contains("SWAP-SPACE"), "{why:?}");
            assert!(why.iter().all(|w| !w.contains("swap=format")), "{why:?}");
            assert!(why.iter().all(|w| w.contains("mkswap -p 4096")), "{why:?}");
            assert!(c.skipped.iter().all(|s| !s.not_swap), "a warning each");
        }
    }

    #[test]
    fn format_n_formats_the_named_disk_whatever_it_holds() {
        let mut disks = [FakeDisk::data(64), FakeDisk::blank(64), FakeDisk::swap(64)];
        let c = choose(SwapPolicy::Format(0), &mut disks, [9; 16]);
        assert_eq!(c.chosen.as_ref().map(|(i, _)| *i), Some(0));
        assert!(c.formatted);
        assert_eq!(&disks[0].data[PAGE - 10..PAGE], b"SWAPSPACE2");
        assert_eq!((disks[1].writes, disks[2].writes), (0, 0));
        assert!(c
            .skipped
            .iter()
            .all(|s| s.why.contains("names another disk")));
        // A disk that is not there (the boot says so before swapon): nothing written.
        let mut disks = [FakeDisk::blank(64)];
        let c = choose(SwapPolicy::Format(3), &mut disks, [9; 16]);
        assert!(c.chosen.is_none() && disks[0].writes == 0);
        assert!(c.skipped[0]
            .why
            .contains("swap=format:3 names another disk"));
        // Read-only: refused.
        let mut ro = FakeDisk::blank(64);
        ro.ro = true;
        let c = choose(SwapPolicy::Format(0), &mut [ro], [9; 16]);
        assert!(c.chosen.is_none());
        assert!(c.skipped[0].why.contains("read-only"));
    }

    #[test]
    fn areas_of_16_and_32_gib_activate_and_keep_checksums_past_every_chunk() {
        // More than one contiguous allocation can hold (the 2 GiB limit of old).
        for gib in [16u64, 32] {
            let pages = (gib << 30) / PAGE_SIZE;
            let mut area = SwapArea::new(SwapHeader::for_disk(pages, [0; 16])).unwrap();
            assert_eq!(area.total_bytes(), (pages - 1) * PAGE_SIZE);
            while area.slots.alloc().is_some() {}
            assert_eq!(area.free_bytes(), 0);
            for slot in [1, pages / 2, pages - 1] {
                let e = SwapEntry::new(0, slot).unwrap();
                let p = page(slot);
                area.commit(&[slot], &[&p]);
                assert_eq!(area.verify(e, &p), Ok(()));
                assert!(matches!(
                    area.verify(e, &page(slot + 1)),
                    Err(SwapError::Checksum { .. })
                ));
                assert_eq!(area.release(e), Ok(()));
            }
            assert_eq!(area.free_bytes(), 3 * PAGE_SIZE);
        }
    }

    #[test]
    fn area_totals_exclude_the_header_and_bad_pages() {
        let mut h = SwapHeader::for_disk(1024, [0; 16]);
        h.bad_pages = alloc::vec![3, 4];
        let area = SwapArea::new(h).unwrap();
        assert_eq!(area.total_bytes(), (1023 - 2) * PAGE_SIZE);
        assert_eq!(area.free_bytes(), area.total_bytes());
    }

    fn page(fill: u64) -> Vec<u8> {
        (0..PAGE / 8)
            .flat_map(|i| (fill.wrapping_mul(31) ^ i as u64).to_le_bytes())
            .collect()
    }

    #[test]
    fn checksums_catch_any_one_word_change_and_the_wrong_slot() {
        let p = page(7);
        let base = page_checksum(5, &p);
        assert_ne!(base, page_checksum(6, &p), "same page, other slot");
        for word in [0, 1, 255, 511] {
            for bit in [0, 17, 63] {
                let mut q = p.clone();
                q[word * 8 + bit / 8] ^= 1 << (bit % 8);
                assert_ne!(page_checksum(5, &q), base, "word {word} bit {bit}");
            }
        }
        // Two words swapped.
        let mut q = p.clone();
        q.copy_within(0..8, 4088);
        q[0..8].copy_from_slice(&p[4088..4096]);
        assert_ne!(page_checksum(5, &q), base);
        // Every single-word change, and every slot nearby, on an all-zero page too.
        let zero = alloc::vec![0u8; PAGE];
        let z = page_checksum(9, &zero);
        for slot in 1..64 {
            assert_eq!(slot == 9, page_checksum(slot, &zero) == z, "slot {slot}");
        }
        for word in 0..PAGE / 8 {
            let mut q = zero.clone();
            q[word * 8 + 3] = 0x40;
            assert_ne!(page_checksum(9, &q), z, "word {word}");
        }
        // The same bytes through the unaligned path give the same checksum.
        let mut shifted = alloc::vec![0u8; PAGE + 8];
        let off = if !(shifted.as_ptr() as usize + 1).is_multiple_of(8) {
            1
        } else {
            2
        };
        shifted[off..off + PAGE].copy_from_slice(&p);
        assert!(!(shifted[off..].as_ptr() as usize).is_multiple_of(8));
        assert_eq!(page_checksum(5, &shifted[off..off + PAGE]), base);
    }

    #[test]
    fn reserve_commit_verify_release() {
        let mut area = SwapArea::new(SwapHeader::for_disk(64, [0; 16])).unwrap();
        let free = area.slots.free_slots();
        assert_eq!(
            area.reserve(&mut [0; 64]),
            Err(SwapError::Full {
                wanted: 64,
                free: 63
            })
        );
        assert_eq!(
            area.slots.free_slots(),
            free,
            "a refused batch takes nothing"
        );
        let mut slots = [0; 3];
        area.reserve(&mut slots).unwrap();
        assert_eq!(slots, [1, 2, 3]);
        let pages = [page(1), page(2), page(3)];
        let refs: Vec<&[u8]> = pages.iter().map(|p| p.as_slice()).collect();
        area.commit(&slots, &refs);
        let e2 = SwapEntry::new(0, 2).unwrap();
        assert_eq!(area.verify(e2, &pages[1]), Ok(()));
        assert!(matches!(
            area.verify(e2, &pages[0]),
            Err(SwapError::Checksum { .. })
        ));
        assert_eq!(area.release(e2), Ok(()));
        assert_eq!(
            area.release(e2),
            Err(SwapError::NotInUse(e2)),
            "double free"
        );
        assert_eq!(area.verify(e2, &pages[1]), Err(SwapError::NotInUse(e2)));
        // A failed write: slot 3's neighbour run is given back, slot 1 never reused.
        area.write_failed(&[1]);
        area.unreserve(&[3]);
        assert_eq!(area.slots.free_slots(), free - 1);
        let mut again = [0; 2];
        area.reserve(&mut again).unwrap();
        assert!(!again.contains(&1));
    }

    #[test]
    fn each_policy_over_blank_data_swap_and_16k_disks() {
        let kinds = || {
            [
                FakeDisk::data(512),
                FakeDisk::swap_16k(512),
                FakeDisk::blank(512),
                FakeDisk::swap(512),
            ]
        };
        let written = |d: &[FakeDisk]| d.iter().map(|d| d.writes).collect::<Vec<_>>();
        // auto and format: the swap disk, nothing written.
        for policy in [SwapPolicy::Existing, SwapPolicy::ExistingElseBlank] {
            let mut disks = kinds();
            let c = choose(policy, &mut disks, [9; 16]);
            assert_eq!(c.chosen.map(|(i, _)| i), Some(3), "{policy:?}");
            assert!(!c.formatted);
            assert_eq!(written(&disks), [0, 0, 0, 0]);
            assert_eq!(
                c.skipped.iter().map(|s| s.disk).collect::<Vec<_>>(),
                [0, 1, 2]
            );
        }
        // Without the swap disk: auto takes none, format the blank one.
        let mut disks = kinds();
        let c = choose(SwapPolicy::Existing, &mut disks[..3], [9; 16]);
        assert!(c.chosen.is_none() && written(&disks) == [0, 0, 0, 0]);
        let c = choose(SwapPolicy::ExistingElseBlank, &mut disks[..3], [9; 16]);
        assert_eq!(c.chosen.map(|(i, _)| i), Some(2));
        assert_eq!(written(&disks), [0, 0, 1, 0]);
        assert!(c.skipped[1].why.contains("16 KiB pages"));
        // format:N takes the disk it names, whatever it holds (the 16 KiB area too).
        for n in 0..4 {
            let mut disks = kinds();
            let c = choose(SwapPolicy::Format(n), &mut disks, [9; 16]);
            assert_eq!(c.chosen.map(|(i, _)| i), Some(n));
            let mut expect = [0; 4];
            expect[n] = 1;
            assert_eq!(written(&disks), expect);
            assert_eq!(&disks[n].page(0)[PAGE - 10..], b"SWAPSPACE2");
        }
    }
}
