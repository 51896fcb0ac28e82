//! The swap area in use (Linux's `mm/swapfile.c`): choosing the disk at boot (`swap=auto`, `off`,
//! `format`), activating it (header, slots) and its totals for `/proc/meminfo`.
//! Owns the choice and the area's bookkeeping; must never write to a disk that lacks the
//! `SWAPSPACE2` signature unless `swap=format` asked for it, and never write to a read-only disk.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::swap_header::{SwapHeader, SwapHeaderError};
use super::swap_slots::SwapSlots;
use super::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;

/// `swap=`: how the boot picks its swap disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwapMode {
    /// The first virtio-blk disk carrying the signature (the default).
    #[default]
    Auto,
    /// No swap, whatever the disks hold.
    Off,
    /// Write a fresh header on the first writable virtio-blk disk, then swap to it.
    Format,
}

/// What swapon needs from a disk: its size, whether it may be written, and page 0.
pub trait SwapDisk {
    /// Whole 4 KiB pages on the disk.
    fn pages(&self) -> u64;
    fn read_only(&self) -> bool;
    fn read_page0(&mut self, page: &mut [u8]) -> Result<(), String>;
    fn write_page0(&mut self, page: &[u8]) -> Result<(), String>;
}

/// Why a disk was passed over (each one is logged, so a user sees why swap is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub disk: usize,
    pub why: String,
    /// Not swap and not meant to be (no signature): worth a line, not a warning.
    pub not_swap: bool,
}

/// The outcome of swapon over the disks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The chosen disk's index and its header (read, or just written by `swap=format`).
    pub chosen: Option<(usize, SwapHeader)>,
    /// Disks passed over, in order, with the reason.
    pub skipped: Vec<Skipped>,
    /// Whether `swap=format` wrote a header.
    pub formatted: bool,
}

/// The smallest area worth having: the header page and one slot.
const MIN_PAGES: u64 = 2;

/// Picks the swap disk as `mode` says; `uuid` names an area that `swap=format` writes.
pub fn choose<D: SwapDisk>(mode: SwapMode, disks: &mut [D], uuid: [u8; 16]) -> Choice {
    let mut choice = Choice {
        chosen: None,
        skipped: Vec::new(),
        formatted: false,
    };
    if mode == SwapMode::Off {
        return choice;
    }
    let mut page = alloc::vec![0u8; PAGE];
    for (i, disk) in disks.iter_mut().enumerate() {
        let mut skip = |why: String| {
            choice.skipped.push(Skipped {
                disk: i,
                why,
                not_swap: false,
            })
        };
        let pages = disk.pages();
        if pages < MIN_PAGES {
            skip(format!("{pages} page(s): too small for a swap area"));
            continue;
        }
        if mode == SwapMode::Format {
            if disk.read_only() {
                skip("read-only: cannot format".into());
                continue;
            }
            let header = SwapHeader::for_disk(pages, uuid);
            if let Err(e) = header.write(&mut page) {
                skip(format!("cannot build a header: {e}"));
                continue;
            }
            if let Err(e) = disk.write_page0(&page) {
                skip(format!("writing the header failed: {e}"));
                continue;
            }
            // Read back what the disk now holds rather than trusting the write.
            if let Err(e) = disk.read_page0(&mut page) {
                skip(format!("reading the new header back failed: {e}"));
                continue;
            }
            match SwapHeader::parse(&page, pages) {
                Ok(h) if h == header => {
                    choice.chosen = Some((i, h));
                    choice.formatted = true;
                    return choice;
                }
                Ok(_) => skip("the header read back differs from the one written".into()),
                Err(e) => skip(format!("the header read back is not valid: {e}")),
            }
            continue;
        }
        if let Err(e) = disk.read_page0(&mut page) {
            skip(format!("reading page 0 failed: {e}"));
            continue;
        }
        match SwapHeader::parse(&page, pages) {
            Ok(_) if disk.read_only() => skip("read-only: cannot swap to it".into()),
            Ok(h) if h.usable_pages() == 0 => skip("the swap area has no usable page".into()),
            Ok(h) => {
                choice.chosen = Some((i, h));
                return choice;
            }
            Err(SwapHeaderError::NoSignature) => choice.skipped.push(Skipped {
                disk: i,
                why: "no SWAPSPACE2 signature (swap=format writes one)".into(),
                not_swap: true,
            }),
            Err(e) => skip(format!("{e}")),
        }
    }
    choice
}

/// An active swap area: its header and slot bookkeeping (the disk itself stays with the caller,
/// which owns the driver).
pub struct SwapArea {
    pub header: SwapHeader,
    pub slots: SwapSlots,
}

impl SwapArea {
    pub fn new(header: SwapHeader) -> SwapArea {
        let bad: Vec<u64> = header.bad_pages.iter().map(|&p| p as u64).collect();
        let slots = SwapSlots::new(header.last_page as u64, &bad);
        SwapArea { header, slots }
    }

    /// `SwapTotal` in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.slots.total_slots() * PAGE_SIZE
    }

    /// `SwapFree` in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.slots.free_slots() * PAGE_SIZE
    }
}

/// The swap disk and its area, once swapon chose one (kernel only: the disk is a driver).
#[cfg(target_os = "none")]
pub struct ActiveSwap {
    pub disk: crate::drivers::virtio::blk::VirtioBlk,
    pub area: SwapArea,
}

#[cfg(target_os = "none")]
pub static SWAP: spin::Mutex<Option<ActiveSwap>> = spin::Mutex::new(None);

/// Boot-time swapon: probes the virtio-blk disks, picks one as `mode` says, logs why any disk was
/// passed over, and keeps the chosen one in [`SWAP`]. Disks not chosen are released (reset).
#[cfg(target_os = "none")]
pub fn swapon(mode: SwapMode) {
    use log::{info, warn};
    let mut disks = crate::drivers::virtio::blk::VirtioBlk::probe_all();
    if disks.is_empty() {
        info!("Swap: no virtio-blk disk; running without swap");
        return;
    }
    if mode == SwapMode::Off {
        info!("Swap: off (swap=off)");
        return;
    }
    // A name for a new area: the counter's value, spread by splitmix64, is as unique as a boot
    // needs.
    let mut state = crate::arch::aarch64::timer::ticks();
    let mut uuid = [0u8; 16];
    for half in uuid.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        half.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40; // RFC 4122 version 4 and variant, as mkswap writes
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let choice = choose(mode, &mut disks, uuid);
    for s in &choice.skipped {
        let base = disks[s.disk].base().as_u64();
        if s.not_swap {
            info!("Swap: virtio-blk at {base:#x} not used: {}", s.why);
        } else {
            warn!("Swap: virtio-blk at {base:#x} not used: {}", s.why);
        }
    }
    let Some((index, header)) = choice.chosen else {
        warn!("Swap: no usable swap area; running without swap");
        return;
    };
    let disk = disks.swap_remove(index);
    let area = SwapArea::new(header);
    info!(
        "Swap: {} virtio-blk at {:#x}: {} KiB in {} slots{}",
        if choice.formatted {
            "formatted"
        } else {
            "using"
        },
        disk.base().as_u64(),
        area.total_bytes() / 1024,
        area.slots.total_slots(),
        if area.header.bad_pages.is_empty() {
            String::new()
        } else {
            format!(", {} bad page(s) skipped", area.header.bad_pages.len())
        }
    );
    *SWAP.lock() = Some(ActiveSwap { disk, area });
}

/// `SwapTotal` and `SwapFree` in bytes (zero without swap).
#[cfg(target_os = "none")]
pub fn totals() -> (u64, u64) {
    SWAP.lock()
        .as_ref()
        .map_or((0, 0), |s| (s.area.total_bytes(), s.area.free_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeDisk {
        data: Vec<u8>,
        ro: bool,
        fail_read: bool,
        fail_write: bool,
        writes: usize,
    }

    impl FakeDisk {
        fn blank(pages: usize) -> FakeDisk {
            FakeDisk {
                data: alloc::vec![0; pages * PAGE],
                ro: false,
                fail_read: false,
                fail_write: false,
                writes: 0,
            }
        }
        fn swap(pages: usize) -> FakeDisk {
            let mut d = FakeDisk::blank(pages);
            SwapHeader::for_disk(pages as u64, [1; 16])
                .write(&mut d.data[..PAGE])
                .unwrap();
            d
        }
    }

    impl SwapDisk for FakeDisk {
        fn pages(&self) -> u64 {
            (self.data.len() / PAGE) as u64
        }
        fn read_only(&self) -> bool {
            self.ro
        }
        fn read_page0(&mut self, page: &mut [u8]) -> Result<(), String> {
            if self.fail_read {
                return Err("I/O error".into());
            }
            page.copy_from_slice(&self.data[..PAGE]);
            Ok(())
        }
        fn write_page0(&mut self, page: &[u8]) -> Result<(), String> {
            self.writes += 1;
            if self.fail_write {
                return Err("I/O error".into());
            }
            self.data[..PAGE].copy_from_slice(page);
            Ok(())
        }
    }

    #[test]
    fn auto_takes_the_first_disk_with_a_signature_and_writes_nothing() {
        let mut disks = [FakeDisk::blank(64), FakeDisk::swap(128), FakeDisk::swap(32)];
        let c = choose(SwapMode::Auto, &mut disks, [9; 16]);
        let (i, h) = c.chosen.unwrap();
        assert_eq!(i, 1);
        assert_eq!(h.last_page, 127);
        assert_eq!(c.skipped.len(), 1);
        assert!(c.skipped[0].why.contains("no SWAPSPACE2 signature"));
        assert!(c.skipped[0].not_swap);
        assert!(!c.formatted);
        assert!(disks.iter().all(|d| d.writes == 0));
        assert!(disks[0].data.iter().all(|&b| b == 0));
    }

    #[test]
    fn auto_without_a_swap_disk_leaves_every_disk_untouched() {
        let mut disks = [FakeDisk::blank(64), FakeDisk::blank(64)];
        let c = choose(SwapMode::Auto, &mut disks, [9; 16]);
        assert!(c.chosen.is_none());
        assert_eq!(c.skipped.len(), 2);
        assert!(disks.iter().all(|d| d.writes == 0));
    }

    #[test]
    fn off_reads_and_writes_nothing() {
        let mut disks = [FakeDisk::swap(64)];
        disks[0].fail_read = true; // would show up as a skip if it were read
        let c = choose(SwapMode::Off, &mut disks, [9; 16]);
        assert!(c.chosen.is_none() && c.skipped.is_empty());
        assert_eq!(disks[0].writes, 0);
    }

    #[test]
    fn format_writes_a_header_linux_would_read() {
        let mut disks = [FakeDisk::blank(256)];
        let c = choose(SwapMode::Format, &mut disks, [9; 16]);
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
        let c = choose(SwapMode::Format, &mut disks, [9; 16]);
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
        let c = choose(SwapMode::Auto, &mut disks, [9; 16]);
        assert!(c.chosen.is_none());
        let why: Vec<&str> = c.skipped.iter().map(|s| s.why.as_str()).collect();
        assert!(why[0].contains("reading page 0 failed"), "{why:?}");
        assert!(why[1].contains("last page 1000"), "{why:?}");
        assert!(why[2].contains("read-only"), "{why:?}");
        assert!(why[3].contains("too small"), "{why:?}");
        assert!(c.skipped.iter().all(|s| !s.not_swap));
    }

    #[test]
    fn area_totals_exclude_the_header_and_bad_pages() {
        let mut h = SwapHeader::for_disk(1024, [0; 16]);
        h.bad_pages = alloc::vec![3, 4];
        let area = SwapArea::new(h);
        assert_eq!(area.total_bytes(), (1023 - 2) * PAGE_SIZE);
        assert_eq!(area.free_bytes(), area.total_bytes());
    }
}
