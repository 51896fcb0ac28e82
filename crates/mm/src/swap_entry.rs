//! Swap entries: where a swapped-out page lives (swap area and slot), kept in the page's own
//! last-level descriptor while it is invalid, in Linux arm64's layout (`__swp_entry`): the valid
//! bit clear, the area in bits [7:3], the slot in bits [57:8]. The fault handler reads the entry
//! back from the descriptor of the faulting address, so no other table is needed.
//! Owns the encoding only; must never produce a value that reads as a valid descriptor or as an
//! empty one (zero), since those mean "mapped" and "never touched".
#![forbid(unsafe_code)]

use core::fmt;

const TYPE_SHIFT: u32 = 3;
const TYPE_BITS: u32 = 5;
const SLOT_SHIFT: u32 = 8;
const SLOT_BITS: u32 = 50;

/// Swap areas an entry can name.
pub const MAX_SWAPFILES: u8 = 1 << TYPE_BITS;
/// The highest slot an entry can name (slot 0 is the area's header and never holds a page).
pub const MAX_SLOT: u64 = (1 << SLOT_BITS) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwapEntry {
    area: u8,
    slot: u64,
}

impl SwapEntry {
    /// The entry for `slot` of swap area `area`; `None` when either cannot be encoded (slot 0
    /// is the header, so it never names a page).
    pub const fn new(area: u8, slot: u64) -> Option<SwapEntry> {
        if area >= MAX_SWAPFILES || slot == 0 || slot > MAX_SLOT {
            return None;
        }
        Some(SwapEntry { area, slot })
    }

    pub const fn area(self) -> u8 {
        self.area
    }

    pub const fn slot(self) -> u64 {
        self.slot
    }

    /// The invalid descriptor that stands for the page while it is on swap.
    pub const fn to_pte(self) -> u64 {
        ((self.area as u64) << TYPE_SHIFT) | (self.slot << SLOT_SHIFT)
    }

    /// The entry an invalid descriptor holds; `None` for a valid or empty descriptor, or one
    /// with bits outside the layout set (not written by [`SwapEntry::to_pte`]).
    pub const fn from_pte(pte: u64) -> Option<SwapEntry> {
        let layout = (((MAX_SWAPFILES as u64) - 1) << TYPE_SHIFT) | (MAX_SLOT << SLOT_SHIFT);
        if pte & 1 != 0 || pte & !layout != 0 {
            return None;
        }
        SwapEntry::new(
            ((pte >> TYPE_SHIFT) & ((MAX_SWAPFILES as u64) - 1)) as u8,
            (pte >> SLOT_SHIFT) & MAX_SLOT,
        )
    }
}

impl fmt::Display for SwapEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "swap area {} slot {}", self.area, self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_linux_arm64s() {
        let e = SwapEntry::new(1, 5).unwrap();
        assert_eq!(e.to_pte(), (5 << 8) | (1 << 3));
        let top = SwapEntry::new(31, MAX_SLOT).unwrap();
        assert_eq!(top.to_pte(), 0x03ff_ffff_ffff_fff8);
    }

    #[test]
    fn entries_round_trip_and_never_look_valid_or_empty() {
        // A deterministic spread over the whole space (xorshift), plus the edges.
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut cases = alloc::vec![(0u8, 1u64), (31, MAX_SLOT), (0, MAX_SLOT), (31, 1)];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(((x >> 58) as u8 & 31, (x & MAX_SLOT).max(1)));
        }
        for (area, slot) in cases {
            let e = SwapEntry::new(area, slot).unwrap();
            let pte = e.to_pte();
            assert_ne!(pte, 0);
            assert_eq!(pte & 1, 0, "{e} encodes as a valid descriptor");
            assert_eq!(SwapEntry::from_pte(pte), Some(e));
            assert_eq!((e.area(), e.slot()), (area, slot));
        }
    }

    #[test]
    fn unencodable_entries_are_refused() {
        assert_eq!(SwapEntry::new(0, 0), None);
        assert_eq!(SwapEntry::new(32, 1), None);
        assert_eq!(SwapEntry::new(0, MAX_SLOT + 1), None);
    }

    #[test]
    fn valid_empty_and_foreign_descriptors_are_not_entries() {
        assert_eq!(SwapEntry::from_pte(0), None);
        // A valid page descriptor (AF, attrs, an address).
        assert_eq!(SwapEntry::from_pte(0x0060_0000_4000_0f43 | 1), None);
        let e = SwapEntry::new(2, 77).unwrap().to_pte();
        assert_eq!(SwapEntry::from_pte(e | 1), None);
        assert_eq!(SwapEntry::from_pte(e | (1 << 2)), None);
        assert_eq!(SwapEntry::from_pte(e | (1 << 63)), None);
        // Area bits alone name slot 0, the header: not a page.
        assert_eq!(SwapEntry::from_pte(3 << 3), None);
    }
}
