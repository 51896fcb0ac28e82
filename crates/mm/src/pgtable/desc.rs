//! VMSAv8-64 stage-1 descriptors for the 4 KiB granule and 48-bit VAs: the bits, and the mapping
//! attributes Ferrite speaks in (memory type, permissions, global, access flag). Owns the encoding
//! only; must agree with the MAIR layout the arch layer programs (`MemType` values are indexes).
#![forbid(unsafe_code)]

/// Memory types, as MAIR_EL1 attribute indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MemType {
    /// Device-nGnRnE: strongly ordered, for buses that need it (`ioremap_np`).
    DeviceNgnrne = 0,
    /// Device-nGnRE: ordinary device registers (`ioremap`).
    DeviceNgnre = 1,
    /// Normal, non-cacheable (`ioremap_wc`, non-coherent DMA buffers).
    NormalNc = 2,
    /// Normal, inner and outer write-back, read/write-allocate: RAM.
    Normal = 3,
}

impl MemType {
    #[inline]
    pub fn from_index(i: u64) -> MemType {
        match i & 7 {
            0 => MemType::DeviceNgnrne,
            1 => MemType::DeviceNgnre,
            2 => MemType::NormalNc,
            _ => MemType::Normal,
        }
    }
    #[inline]
    pub fn is_device(self) -> bool {
        matches!(self, MemType::DeviceNgnrne | MemType::DeviceNgnre)
    }
    #[inline]
    pub fn name(self) -> &'static str {
        match self {
            MemType::DeviceNgnrne => "Device-nGnRnE",
            MemType::DeviceNgnre => "Device-nGnRE",
            MemType::NormalNc => "Normal-NC",
            MemType::Normal => "Normal-WB",
        }
    }
}

/// How a range is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attrs {
    pub mem: MemType,
    pub write: bool,
    /// Executable at EL1 (PXN clear). Never together with `write` under W^X.
    pub kernel_exec: bool,
    /// Accessible from EL0.
    pub user: bool,
    /// Executable at EL0 (UXN clear).
    pub user_exec: bool,
    /// Global (nG clear): the same in every address space.
    pub global: bool,
    /// Access flag set; clear it to get an access-flag fault on first use.
    pub accessed: bool,
}

impl Attrs {
    /// Kernel data: RW, never executable, global.
    pub const KERNEL_RW: Attrs = Attrs {
        mem: MemType::Normal,
        write: true,
        kernel_exec: false,
        user: false,
        user_exec: false,
        global: true,
        accessed: true,
    };
    /// Kernel read-only data.
    pub const KERNEL_RO: Attrs = Attrs {
        write: false,
        ..Attrs::KERNEL_RW
    };
    /// Kernel text: read and execute.
    pub const KERNEL_RX: Attrs = Attrs {
        write: false,
        kernel_exec: true,
        ..Attrs::KERNEL_RW
    };
    /// Device registers (`ioremap`).
    pub const DEVICE: Attrs = Attrs {
        mem: MemType::DeviceNgnre,
        ..Attrs::KERNEL_RW
    };
    /// Application data: RW from EL0, never executable, per address space.
    pub const USER_RW: Attrs = Attrs {
        mem: MemType::Normal,
        write: true,
        kernel_exec: false,
        user: true,
        user_exec: false,
        global: false,
        accessed: true,
    };

    #[inline]
    pub const fn with_mem(self, mem: MemType) -> Attrs {
        Attrs { mem, ..self }
    }

    /// Short form for reports: `RW- Normal-WB G`.
    #[inline]
    pub fn describe(&self) -> alloc::string::String {
        alloc::format!(
            "{}{}{}{} {}{}{}",
            if self.user { "u" } else { "k" },
            "R",
            if self.write { "W" } else { "-" },
            if self.kernel_exec || self.user_exec {
                "X"
            } else {
                "-"
            },
            self.mem.name(),
            if self.global { " G" } else { " nG" },
            if self.accessed { "" } else { " !AF" }
        )
    }
}

pub const VALID: u64 = 1 << 0;
/// Table (levels 0-2) or page (level 3) when set with VALID; block when clear (levels 1-2).
pub const TABLE_OR_PAGE: u64 = 1 << 1;
pub const ATTR_INDEX_SHIFT: u32 = 2;
pub const AP_EL0: u64 = 1 << 6;
pub const AP_RO: u64 = 1 << 7;
pub const SH_INNER: u64 = 3 << 8;
pub const SH_OUTER: u64 = 2 << 8;
pub const AF: u64 = 1 << 10;
pub const NG: u64 = 1 << 11;
pub const DBM: u64 = 1 << 51;
pub const PXN: u64 = 1 << 53;
pub const UXN: u64 = 1 << 54;
/// Output address bits [47:12].
pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// The leaf (block or page) descriptor for `pa` with `attrs`, at `level` (1, 2 or 3).
#[inline]
pub fn leaf(pa: u64, attrs: Attrs, level: u8) -> u64 {
    let mut d = VALID | (pa & ADDR_MASK) | ((attrs.mem as u64) << ATTR_INDEX_SHIFT);
    if level == 3 {
        d |= TABLE_OR_PAGE;
    }
    // Device memory is always outer shareable in effect; RAM is inner shareable.
    d |= if attrs.mem.is_device() {
        SH_OUTER
    } else {
        SH_INNER
    };
    if !attrs.write {
        d |= AP_RO;
    }
    if attrs.user {
        d |= AP_EL0;
    }
    // W^X: a writable mapping is never executable, at any level of privilege. EL1 may never
    // execute what EL0 can write (PXN on every user mapping).
    if !attrs.kernel_exec || attrs.write || attrs.user || attrs.mem.is_device() {
        d |= PXN;
    }
    if !attrs.user_exec || attrs.write || !attrs.user || attrs.mem.is_device() {
        d |= UXN;
    }
    if !attrs.global {
        d |= NG;
    }
    if attrs.accessed {
        d |= AF;
    }
    d
}

/// The attributes a leaf descriptor encodes.
#[inline]
pub fn attrs_of(d: u64) -> Attrs {
    Attrs {
        mem: MemType::from_index(d >> ATTR_INDEX_SHIFT),
        write: d & AP_RO == 0,
        kernel_exec: d & PXN == 0,
        user: d & AP_EL0 != 0,
        user_exec: d & UXN == 0,
        global: d & NG == 0,
        accessed: d & AF != 0,
    }
}

#[inline]
pub fn table(pa: u64) -> u64 {
    VALID | TABLE_OR_PAGE | (pa & ADDR_MASK)
}

#[inline]
pub fn is_valid(d: u64) -> bool {
    d & VALID != 0
}

/// A valid table descriptor (levels 0-2).
#[inline]
pub fn is_table(d: u64, level: u8) -> bool {
    level < 3 && d & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE
}

/// A valid block (levels 1-2) or page (level 3) descriptor.
#[inline]
pub fn is_leaf(d: u64, level: u8) -> bool {
    match level {
        3 => d & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE,
        1 | 2 => d & (VALID | TABLE_OR_PAGE) == VALID,
        _ => false,
    }
}

#[inline]
pub fn addr(d: u64) -> u64 {
    d & ADDR_MASK
}

/// Bytes a single entry covers at `level`.
#[inline]
pub const fn level_size(level: u8) -> u64 {
    1 << (12 + 9 * (3 - level as u32))
}

/// The index of `va` in a table at `level`.
#[inline]
pub const fn index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * (3 - level as u32))) & 0x1ff) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_text_is_read_only_and_executable() {
        let d = leaf(0x4008_0000, Attrs::KERNEL_RX, 3);
        assert!(is_leaf(d, 3));
        assert_eq!(d & PXN, 0);
        assert_ne!(d & UXN, 0);
        assert_ne!(d & AP_RO, 0);
        assert_eq!(attrs_of(d), Attrs::KERNEL_RX);
    }

    #[test]
    fn writable_is_never_executable() {
        let wx = Attrs {
            kernel_exec: true,
            user_exec: true,
            user: true,
            ..Attrs::KERNEL_RW
        };
        let d = leaf(0x1000, wx, 3);
        assert_ne!(d & PXN, 0);
        assert_ne!(d & UXN, 0);
    }

    #[test]
    fn blocks_and_tables_are_told_apart() {
        let block = leaf(0x4000_0000, Attrs::KERNEL_RW, 1);
        assert!(is_leaf(block, 1) && !is_table(block, 1));
        let t = table(0x8_0000);
        assert!(is_table(t, 1) && !is_leaf(t, 1));
        assert!(!is_leaf(t, 0));
        assert_eq!(level_size(1), 1 << 30);
        assert_eq!(level_size(2), 2 << 20);
        assert_eq!(index(0xffff_0000_4020_1000, 0), 0);
        assert_eq!(index(0xffff_8000_0000_0000, 0), 256);
        assert_eq!(index(0x4020_1000, 2), 1);
        assert_eq!(index(0x4020_1000, 3), 1);
    }

    #[test]
    fn device_memory_is_never_executable() {
        let d = leaf(
            0x900_0000,
            Attrs {
                kernel_exec: true,
                write: false,
                ..Attrs::DEVICE
            },
            3,
        );
        assert_ne!(d & PXN, 0);
        assert_eq!(attrs_of(d).mem, MemType::DeviceNgnre);
    }
}
