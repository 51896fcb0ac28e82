//! The virtual address layout (4 KiB granule, 48-bit VAs in both halves) and the lookup that names
//! the region an address falls in, for fault reports. Owns the constants; must not map anything.
//!
//! | range | what |
//! | --- | --- |
//! | `0x0000_0000_0000_0000..0x0001_0000_0000_0000` | TTBR0: the application; page 0 never mapped |
//! | `0xffff_0000_0000_0000..0xffff_8000_0000_0000` | linear map of all RAM (`PA + PAGE_OFFSET`) |
//! | `0xffff_8000_0000_0000..0xffff_c000_0000_0000` | vmalloc area |
//! | `0xffff_c000_0000_0000..0xffff_c100_0000_0000` | ioremap area |
//! | `0xffff_ffff_8000_0000..` | kernel image (congruent to its load address modulo 2 MiB) |
#![forbid(unsafe_code)]

use core::fmt;

use crate::addr::{PhysAddr, VirtAddr};

pub const PAGE_OFFSET: u64 = 0xffff_0000_0000_0000;
pub const LINEAR_END: u64 = 0xffff_8000_0000_0000;
pub const VMALLOC_START: u64 = 0xffff_8000_0000_0000;
pub const VMALLOC_END: u64 = 0xffff_c000_0000_0000;
pub const IOREMAP_START: u64 = 0xffff_c000_0000_0000;
/// The start of the ioremap area `ioremap` may use: the first 16 MiB belong to the boot's
/// `early_ioremap`.
pub const IOREMAP_EARLY_END: u64 = IOREMAP_START + (16 << 20);
pub const IOREMAP_END: u64 = 0xffff_c100_0000_0000;
pub const KIMAGE_BASE: u64 = 0xffff_ffff_8000_0000;
/// The application's space: from page 1 to the top of TTBR0.
pub const USER_START: u64 = 0x1000;
pub const USER_END: u64 = 1 << 48;
/// The kernel image is placed at `KIMAGE_BASE` plus its load address modulo this.
pub const KIMAGE_ALIGN: u64 = 2 << 20;

/// The first physical address the kernel cannot use as RAM: past what the CPU can address
/// (`pa_bits`) or what the linear map can hold.
pub const fn linear_reach(pa_bits: u32) -> u64 {
    let cpu = 1u64 << pa_bits;
    let linear = LINEAR_END - PAGE_OFFSET;
    if cpu < linear {
        cpu
    } else {
        linear
    }
}

/// The linear-map address of a physical address.
pub const fn phys_to_virt(pa: PhysAddr) -> VirtAddr {
    VirtAddr::new(pa.as_u64() + PAGE_OFFSET)
}

/// The physical address behind a linear-map address.
pub fn virt_to_phys(va: VirtAddr) -> Option<PhysAddr> {
    let v = va.as_u64();
    (PAGE_OFFSET..LINEAR_END)
        .contains(&v)
        .then(|| PhysAddr::new(v - PAGE_OFFSET))
}

/// The kernel image's sections where they run, and where they are in RAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelImage {
    /// Virtual minus physical address of every byte of the image.
    pub va_offset: u64,
    pub text: (u64, u64),
    pub rodata: (u64, u64),
    /// Initialised data, through to the start of BSS.
    pub data: (u64, u64),
    pub bss: (u64, u64),
}

impl KernelImage {
    pub fn start(&self) -> u64 {
        self.text.0
    }
    pub fn end(&self) -> u64 {
        self.bss.1
    }
    pub fn pa_of(&self, va: u64) -> PhysAddr {
        PhysAddr::new(va.wrapping_sub(self.va_offset))
    }
}

/// The region a virtual address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    NullPage,
    Application,
    /// A hole in the TTBR0/TTBR1 split: no translation regime covers it.
    NonCanonical,
    LinearMap,
    Vmalloc,
    Ioremap,
    KernelText,
    KernelRodata,
    KernelData,
    KernelBss,
    /// In the kernel half but in no area Ferrite uses.
    KernelUnused,
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::NullPage => "null page",
            Region::Application => "application space (TTBR0)",
            Region::NonCanonical => "non-canonical address",
            Region::LinearMap => "linear map",
            Region::Vmalloc => "vmalloc area",
            Region::Ioremap => "ioremap area",
            Region::KernelText => "kernel text",
            Region::KernelRodata => "kernel rodata",
            Region::KernelData => "kernel data",
            Region::KernelBss => "kernel bss",
            Region::KernelUnused => "unused kernel space",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub fn region_of(va: u64, image: &KernelImage) -> Region {
    let within = |r: (u64, u64)| r.0 <= va && va < r.1;
    match va {
        0..USER_START => Region::NullPage,
        USER_START..USER_END => Region::Application,
        _ if va < PAGE_OFFSET => Region::NonCanonical,
        PAGE_OFFSET..LINEAR_END => Region::LinearMap,
        VMALLOC_START..VMALLOC_END => Region::Vmalloc,
        IOREMAP_START..IOREMAP_END => Region::Ioremap,
        _ if within(image.text) => Region::KernelText,
        _ if within(image.rodata) => Region::KernelRodata,
        _ if within(image.data) => Region::KernelData,
        _ if within(image.bss) => Region::KernelBss,
        _ => Region::KernelUnused,
    }
}

/// The layout as Linux prints its "Virtual kernel memory layout".
pub fn describe(image: &KernelImage, ram_bytes: u64) -> alloc::vec::Vec<alloc::string::String> {
    use alloc::format;
    let line = |name: &str, start: u64, end: u64| {
        let size = end - start;
        let (amount, unit) = if size >= 1 << 40 {
            (size >> 40, "TiB")
        } else if size >= 1 << 30 {
            (size >> 30, "GiB")
        } else if size >= 1 << 20 {
            (size >> 20, "MiB")
        } else {
            (size >> 10, "KiB")
        };
        format!("    {name:<8}: {start:#018x} - {end:#018x}   ({amount:>5} {unit})")
    };
    alloc::vec![
        "Virtual kernel memory layout:".into(),
        line("app", USER_START, USER_END),
        line("linear", PAGE_OFFSET, LINEAR_END),
        line("  (RAM)", PAGE_OFFSET, PAGE_OFFSET + ram_bytes.max(1)),
        line("vmalloc", VMALLOC_START, VMALLOC_END),
        line("ioremap", IOREMAP_START, IOREMAP_END),
        line(".text", image.text.0, image.text.1),
        line(".rodata", image.rodata.0, image.rodata.1),
        line(".data", image.data.0, image.data.1),
        line(".bss", image.bss.0, image.bss.1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_named() {
        let image = KernelImage {
            va_offset: KIMAGE_BASE - 0x4008_0000,
            text: (KIMAGE_BASE + 0x8_0000, KIMAGE_BASE + 0xa_0000),
            rodata: (KIMAGE_BASE + 0xa_0000, KIMAGE_BASE + 0xb_0000),
            data: (KIMAGE_BASE + 0xb_0000, KIMAGE_BASE + 0xc_0000),
            bss: (KIMAGE_BASE + 0xc_0000, KIMAGE_BASE + 0x30_0000),
        };
        assert_eq!(region_of(0, &image), Region::NullPage);
        assert_eq!(region_of(0xfff, &image), Region::NullPage);
        assert_eq!(region_of(0x1000, &image), Region::Application);
        assert_eq!(region_of(1 << 48, &image), Region::NonCanonical);
        assert_eq!(
            region_of(PAGE_OFFSET + 0x4000_0000, &image),
            Region::LinearMap
        );
        assert_eq!(region_of(VMALLOC_START, &image), Region::Vmalloc);
        assert_eq!(region_of(IOREMAP_START + 5, &image), Region::Ioremap);
        assert_eq!(
            region_of(KIMAGE_BASE + 0x8_0000, &image),
            Region::KernelText
        );
        assert_eq!(
            region_of(KIMAGE_BASE + 0xa_0008, &image),
            Region::KernelRodata
        );
        assert_eq!(
            region_of(KIMAGE_BASE + 0xb_0000, &image),
            Region::KernelData
        );
        assert_eq!(
            region_of(KIMAGE_BASE + 0x2f_ffff, &image),
            Region::KernelBss
        );
        assert_eq!(
            region_of(KIMAGE_BASE + 0x30_0000, &image),
            Region::KernelUnused
        );
        assert_eq!(
            image.pa_of(KIMAGE_BASE + 0x8_0000),
            PhysAddr::new(0x4010_0000)
        );
        assert_eq!(
            phys_to_virt(PhysAddr::new(0x4000_0000)).as_u64(),
            0xffff_0000_4000_0000
        );
        assert_eq!(
            virt_to_phys(VirtAddr::new(0xffff_0000_4000_0000)),
            Some(PhysAddr::new(0x4000_0000))
        );
        assert_eq!(virt_to_phys(VirtAddr::new(VMALLOC_START)), None);
    }

    #[test]
    fn areas_do_not_overlap_and_fit_the_upper_half() {
        let areas = [
            (PAGE_OFFSET, LINEAR_END),
            (VMALLOC_START, VMALLOC_END),
            (IOREMAP_START, IOREMAP_END),
        ];
        for w in areas.windows(2) {
            assert!(w[0].1 <= w[1].0);
        }
        const { assert!(IOREMAP_END <= KIMAGE_BASE) };
        const { assert!(KIMAGE_BASE.is_multiple_of(KIMAGE_ALIGN)) };
        assert!(describe(&KernelImage::default(), 1 << 30)[2].contains("(  128 TiB)"));
    }
}
