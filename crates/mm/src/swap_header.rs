//! Linux's swap area header (`SWAPSPACE2`, version 1) in page 0 of a swap disk: the magic in the
//! page's last 10 bytes, the last usable page, and the bad-page list, so that util-linux's
//! `mkswap` prepares a disk for Ferrite and a Ferrite swap disk reads as swap to Linux tools.
//! Also recognises the swap signatures Ferrite cannot use (an area made for 8, 16 or 64 KiB
//! pages, or the old `SWAP-SPACE` format), so such a disk is named for what it is.
//! Owns the format only (parse and write a 4 KiB page, inspect a disk's first 64 KiB); must never
//! touch a disk.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use crate::addr::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;
pub const MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// The version-0 signature, which Linux stopped reading in 2.5.
pub const OLD_MAGIC: &[u8; 10] = b"SWAP-SPACE";
/// The page sizes Linux builds for (the signature ends the area's first page): what
/// [`foreign_signature`] looks at, so a disk's first `FOREIGN_SCAN` bytes are enough.
const PAGE_SIZES: [usize; 4] = [4096, 8192, 16384, 65536];
pub const FOREIGN_SCAN: usize = 65536;

/// A swap signature Ferrite cannot use, found where its own is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignSwap {
    /// `SWAPSPACE2` at the end of a larger page: an area for another page size (`mkswap -p`).
    PageSize(usize),
    /// The old `SWAP-SPACE` signature (version 0) at the end of a page of this size.
    Version0(usize),
}

impl fmt::Display for ForeignSwap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ForeignSwap::PageSize(size) => write!(
                f,
                "swap signature for {} KiB pages (mkswap -p {size}); Ferrite uses 4 KiB pages: \
                 recreate it with mkswap -p 4096",
                size / 1024
            ),
            ForeignSwap::Version0(size) => write!(
                f,
                "old swap signature SWAP-SPACE (version 0, unsupported since Linux 2.5) for {} KiB \
                 pages: recreate it with mkswap -p 4096",
                size / 1024
            ),
        }
    }
}

/// The swap signature a disk carries for another page size or in the old format, from its
/// first bytes (`head`, up to [`FOREIGN_SCAN`]); `None` when there is none, or when page 0
/// holds Ferrite's own (`SWAPSPACE2` for 4 KiB pages, which [`SwapHeader::parse`] reads).
pub fn foreign_signature(head: &[u8]) -> Option<ForeignSwap> {
    let at = |size: usize, magic: &[u8; 10]| head.len() >= size && &head[size - 10..size] == magic;
    if at(PAGE, MAGIC) {
        return None;
    }
    PAGE_SIZES.iter().find_map(|&size| {
        if size != PAGE && at(size, MAGIC) {
            Some(ForeignSwap::PageSize(size))
        } else if at(size, OLD_MAGIC) {
            Some(ForeignSwap::Version0(size))
        } else {
            None
        }
    })
}
/// Offsets in page 0 (`union swap_header` in linux/swap.h): 1024 boot bytes, then the info.
const VERSION: usize = 1024;
const LAST_PAGE: usize = 1028;
const NR_BADPAGES: usize = 1032;
const UUID: usize = 1036;
const LABEL: usize = 1052;
/// After 117 u32 of padding.
const BADPAGES: usize = 1068 + 117 * 4;
/// Bad-page entries that fit before the magic.
pub const MAX_BADPAGES: usize = (PAGE - 10 - BADPAGES) / 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapHeader {
    /// The last page the area may use (the header is page 0; slots are pages 1..=last_page).
    pub last_page: u32,
    pub bad_pages: Vec<u32>,
    pub uuid: [u8; 16],
    pub label: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapHeaderError {
    /// No `SWAPSPACE2` signature: not a swap area (never written unless told).
    NoSignature,
    UnsupportedVersion(u32),
    /// The header claims more pages than the disk has, or none.
    BadSize {
        last_page: u32,
        disk_pages: u64,
    },
    BadPageList {
        count: u32,
    },
    /// A bad page outside the area.
    BadPageOutOfRange(u32),
}

impl fmt::Display for SwapHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapHeaderError::NoSignature => write!(f, "no SWAPSPACE2 signature: not a swap area"),
            SwapHeaderError::UnsupportedVersion(v) => {
                write!(f, "swap header version {v} (only 1 is known)")
            }
            SwapHeaderError::BadSize {
                last_page,
                disk_pages,
            } => {
                write!(
                    f,
                    "swap header says last page {last_page}, the disk has {disk_pages} pages"
                )
            }
            SwapHeaderError::BadPageList { count } => write!(
                f,
                "swap header lists {count} bad pages (at most {MAX_BADPAGES})"
            ),
            SwapHeaderError::BadPageOutOfRange(p) => {
                write!(f, "bad page {p} is outside the swap area")
            }
        }
    }
}

fn u32_at(page: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
}

impl SwapHeader {
    /// A header for a disk of `disk_pages` pages (the whole disk, like `mkswap` without a size).
    pub fn for_disk(disk_pages: u64, uuid: [u8; 16]) -> SwapHeader {
        SwapHeader {
            last_page: disk_pages.saturating_sub(1).min(u32::MAX as u64) as u32,
            bad_pages: Vec::new(),
            uuid,
            label: *b"ferrite-swap\0\0\0\0",
        }
    }

    /// Reads page 0 of a disk of `disk_pages` pages.
    pub fn parse(page: &[u8], disk_pages: u64) -> Result<SwapHeader, SwapHeaderError> {
        if page.len() < PAGE || &page[PAGE - 10..PAGE] != MAGIC {
            return Err(SwapHeaderError::NoSignature);
        }
        let version = u32_at(page, VERSION);
        if version != 1 {
            return Err(SwapHeaderError::UnsupportedVersion(version));
        }
        let last_page = u32_at(page, LAST_PAGE);
        if last_page == 0 || last_page as u64 >= disk_pages {
            return Err(SwapHeaderError::BadSize {
                last_page,
                disk_pages,
            });
        }
        let count = u32_at(page, NR_BADPAGES);
        if count as usize > MAX_BADPAGES {
            return Err(SwapHeaderError::BadPageList { count });
        }
        let mut bad_pages = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let p = u32_at(page, BADPAGES + 4 * i);
            if p == 0 || p > last_page {
                return Err(SwapHeaderError::BadPageOutOfRange(p));
            }
            bad_pages.push(p);
        }
        // A page listed twice is one bad page (counting it twice would shrink the area twice).
        bad_pages.sort_unstable();
        bad_pages.dedup();
        let mut uuid = [0; 16];
        uuid.copy_from_slice(&page[UUID..UUID + 16]);
        let mut label = [0; 16];
        label.copy_from_slice(&page[LABEL..LABEL + 16]);
        Ok(SwapHeader {
            last_page,
            bad_pages,
            uuid,
            label,
        })
    }

    /// Writes the header into page 0 (the boot bytes are left zero).
    pub fn write(&self, page: &mut [u8]) -> Result<(), SwapHeaderError> {
        if self.bad_pages.len() > MAX_BADPAGES {
            return Err(SwapHeaderError::BadPageList {
                count: self.bad_pages.len() as u32,
            });
        }
        page[..PAGE].fill(0);
        page[VERSION..VERSION + 4].copy_from_slice(&1u32.to_le_bytes());
        page[LAST_PAGE..LAST_PAGE + 4].copy_from_slice(&self.last_page.to_le_bytes());
        page[NR_BADPAGES..NR_BADPAGES + 4]
            .copy_from_slice(&(self.bad_pages.len() as u32).to_le_bytes());
        page[UUID..UUID + 16].copy_from_slice(&self.uuid);
        page[LABEL..LABEL + 16].copy_from_slice(&self.label);
        for (i, p) in self.bad_pages.iter().enumerate() {
            page[BADPAGES + 4 * i..BADPAGES + 4 * i + 4].copy_from_slice(&p.to_le_bytes());
        }
        page[PAGE - 10..PAGE].copy_from_slice(MAGIC);
        Ok(())
    }

    /// Usable slots: pages 1..=last_page minus the bad ones.
    pub fn usable_pages(&self) -> u64 {
        (self.last_page as u64).saturating_sub(self.bad_pages.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_page_listed_twice_counts_once() {
        let mut h = SwapHeader::for_disk(16, [7; 16]);
        h.bad_pages = alloc::vec![3, 3, 3, 1];
        let mut page = alloc::vec![0u8; PAGE];
        h.write(&mut page).unwrap();
        let parsed = SwapHeader::parse(&page, 16).unwrap();
        assert_eq!(parsed.bad_pages, [1, 3]);
        assert_eq!(parsed.usable_pages(), parsed.last_page as u64 - 2);
    }

    #[test]
    fn write_then_parse_round_trips_and_checks() {
        let mut h = SwapHeader::for_disk(131072, [7; 16]);
        h.bad_pages = alloc::vec![5, 99];
        let mut page = alloc::vec![0xffu8; PAGE];
        h.write(&mut page).unwrap();
        assert_eq!(&page[PAGE - 10..], MAGIC);
        assert_eq!(SwapHeader::parse(&page, 131072), Ok(h.clone()));
        assert_eq!(h.usable_pages(), 131071 - 2);
        assert!(matches!(
            SwapHeader::parse(&page, 1000),
            Err(SwapHeaderError::BadSize { .. })
        ));
        page[PAGE - 1] = b'X';
        assert_eq!(
            SwapHeader::parse(&page, 131072),
            Err(SwapHeaderError::NoSignature)
        );
        assert_eq!(
            SwapHeader::parse(&[0u8; 100], 10),
            Err(SwapHeaderError::NoSignature)
        );
    }

    #[test]
    fn signatures_for_other_page_sizes_and_the_old_format_are_named() {
        let mut head = alloc::vec![0u8; FOREIGN_SCAN];
        assert_eq!(foreign_signature(&head), None);
        for size in [8192, 16384, 65536] {
            head.fill(0);
            head[size - 10..size].copy_from_slice(MAGIC);
            assert_eq!(foreign_signature(&head), Some(ForeignSwap::PageSize(size)));
            // Too little of the disk read to see it: nothing claimed.
            assert_eq!(foreign_signature(&head[..size - 1]), None);
            head[size - 10..size].copy_from_slice(OLD_MAGIC);
            assert_eq!(foreign_signature(&head), Some(ForeignSwap::Version0(size)));
        }
        head.fill(0);
        head[PAGE - 10..PAGE].copy_from_slice(OLD_MAGIC);
        assert_eq!(foreign_signature(&head), Some(ForeignSwap::Version0(4096)));
        // Ferrite's own signature is not foreign, whatever else the disk holds.
        head[PAGE - 10..PAGE].copy_from_slice(MAGIC);
        head[16384 - 10..16384].copy_from_slice(MAGIC);
        assert_eq!(foreign_signature(&head), None);
        let why = alloc::format!("{}", ForeignSwap::PageSize(16384));
        assert!(why.contains("16 KiB pages (mkswap -p 16384)"), "{why}");
        assert!(why.contains("recreate it with mkswap -p 4096"), "{why}");
        assert!(!why.contains("swap=format"), "{why}");
    }

    /// util-linux mkswap, if installed, run over an 8 MiB file with `args`: the file's bytes.
    fn mkswap(args: &[&str]) -> Option<Vec<u8>> {
        let dir = std::env::var("CARGO_TARGET_TMPDIR")
            .or_else(|_| std::env::var("TMPDIR"))
            .unwrap_or_else(|_| "/tmp".into());
        let mkswap = ["/usr/sbin/mkswap", "/sbin/mkswap"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(mkswap) = mkswap else {
            eprintln!("note: mkswap (util-linux) not installed; its output was not checked");
            return None;
        };
        let path = std::path::Path::new(&dir).join(format!(
            "ferrite-mkswap-{}-{}.img",
            std::process::id(),
            args.join("").replace(['-', ' '], "")
        ));
        std::fs::write(&path, alloc::vec![0u8; 8 << 20]).unwrap();
        let out = std::process::Command::new(mkswap)
            .args(args)
            .arg(&path)
            .output()
            .unwrap();
        let disk = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(
            out.status.success(),
            "mkswap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(disk)
    }

    #[test]
    fn names_what_mkswap_writes_for_other_page_sizes() {
        for size in [8192usize, 16384, 65536] {
            let Some(disk) = mkswap(&["-p", &size.to_string()]) else {
                return;
            };
            assert_eq!(
                SwapHeader::parse(&disk[..PAGE], (disk.len() / PAGE) as u64),
                Err(SwapHeaderError::NoSignature)
            );
            assert_eq!(
                foreign_signature(&disk[..FOREIGN_SCAN]),
                Some(ForeignSwap::PageSize(size))
            );
        }
        if let Some(disk) = mkswap(&["-p", "4096"]) {
            assert_eq!(foreign_signature(&disk[..FOREIGN_SCAN]), None);
        }
    }

    #[test]
    fn reads_what_util_linux_mkswap_writes() {
        let Some(disk) = mkswap(&["-L", "ktest", "-U", "00112233-4455-6677-8899-aabbccddeeff"])
        else {
            return;
        };
        let h = SwapHeader::parse(&disk[..PAGE], (disk.len() / PAGE) as u64).unwrap();
        assert_eq!(h.last_page as usize, disk.len() / PAGE - 1);
        assert!(h.bad_pages.is_empty());
        assert_eq!(&h.label[..6], b"ktest\0");
        assert_eq!(h.uuid[0..2], [0x00, 0x11]);
        // And ours is byte-for-byte what Linux reads: the same fields at the same places.
        let mut ours = alloc::vec![0u8; PAGE];
        h.write(&mut ours).unwrap();
        assert_eq!(&ours[1024..], &disk[1024..PAGE]);
    }
}
