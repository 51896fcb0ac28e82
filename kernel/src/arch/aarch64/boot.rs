//! The hand-over from the assembly entry (entry.S) to Rust: the image header and first
//! instructions, the vectors, and the facts only the entry code knows (where the image was loaded,
//! where it runs, at which exception level it was entered, where the device tree is).

use core::arch::global_asm;

use crate::addr::{PhysAddr, PhysRange};
use crate::kernel::BootInfo;
use crate::mm::layout::KernelImage;

global_asm!(include_str!("entry.S"));
global_asm!(include_str!("vectors.S"));

extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __bss_start: u8;
    static __kernel_end: u8;
    static __boot_stack_bottom: u8;
    static __boot_stack_top: u8;
    static exception_vectors: u8;
}

extern "Rust" {
    /// The kernel's boot order, in `src/main.rs`.
    fn kernel_main(boot: BootInfo) -> !;
}

/// The address of a linker symbol as the running image sees it (PC-relative: the load address
/// before the MMU is on, the high-half address after).
macro_rules! symbol_addr {
    ($sym:ident) => {
        (&raw const $sym) as usize as u64
    };
}

/// The image's sections at their run-time (virtual) addresses, and where they are in RAM.
pub fn kernel_image(load_pa: u64) -> KernelImage {
    let start = symbol_addr!(__kernel_start);
    KernelImage {
        va_offset: start.wrapping_sub(load_pa),
        text: (symbol_addr!(__text_start), symbol_addr!(__text_end)),
        rodata: (symbol_addr!(__rodata_start), symbol_addr!(__rodata_end)),
        data: (symbol_addr!(__data_start), symbol_addr!(__bss_start)),
        // BSS padded to a whole page, as the image's end.
        bss: (symbol_addr!(__bss_start), symbol_addr!(__kernel_end)),
    }
}

/// The boot stack, where it runs.
pub fn boot_stack() -> (u64, u64) {
    (
        symbol_addr!(__boot_stack_bottom),
        symbol_addr!(__boot_stack_top),
    )
}

/// Where VBAR_EL1 should point.
pub fn vectors_addr() -> u64 {
    symbol_addr!(exception_vectors)
}

static IMAGE: spin::Once<KernelImage> = spin::Once::new();

/// The running image's layout (set at the hand-over to Rust).
pub fn image() -> KernelImage {
    IMAGE.get().copied().unwrap_or_default()
}

/// Called by entry.S in the high half, on the boot stack, MMU on.
#[no_mangle]
extern "C" fn arch_boot_entry(dtb: u64, load_base: u64, entry_el: u64, entry_ticks: u64) -> ! {
    let image = *IMAGE.call_once(|| kernel_image(load_base));
    super::mmu::adopt_boot_tables(&image);
    let boot = BootInfo {
        dtb: PhysAddr::new(dtb),
        image: PhysRange::new(PhysAddr::new(load_base), image.end() - image.start()),
        kimage: image,
        entry_el: entry_el as u8,
        entry_ticks,
    };
    // SAFETY: `kernel_main` is defined once, in the kernel binary, with this signature.
    unsafe { kernel_main(boot) }
}

/// The device tree blob at `ptr` (where it can be read now), as long as its header says, or `None`
/// if there is no tree there (no magic, or an absurd size).
///
/// # Safety
/// `ptr` must be readable for 8 bytes, and for as many as a valid header there claims, for the
/// rest of the run.
pub unsafe fn device_tree_blob_at(ptr: *const u8) -> Option<&'static [u8]> {
    const MAX_DTB: u32 = 64 << 20;
    if ptr.is_null() || !(ptr as usize).is_multiple_of(8) {
        return None;
    }
    // SAFETY: the loader passed this address as the device tree; the first 8 bytes (magic and
    // size) are read before trusting any length.
    let head = unsafe { core::slice::from_raw_parts(ptr, 8) };
    let size = crate::machine::fdt_check::claimed_size(head).ok()?;
    if !(40..=MAX_DTB).contains(&size) {
        return None;
    }
    // SAFETY: the header claims `size` bytes; the structure checks that follow never read past
    // them, and the loader keeps the tree in place.
    Some(unsafe { core::slice::from_raw_parts(ptr, size as usize) })
}

/// The device tree at physical `addr`, through the linear map (the boot window, then all of RAM).
pub fn device_tree_blob(addr: PhysAddr) -> Option<&'static [u8]> {
    if addr.as_u64() == 0 {
        return None;
    }
    // SAFETY: the loader's tree is in RAM, which the linear map (or its boot window) maps.
    unsafe { device_tree_blob_at(crate::mm::layout::phys_to_virt(addr).as_u64() as *const u8) }
}
