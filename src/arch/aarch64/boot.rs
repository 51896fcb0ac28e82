//! The hand-over from the assembly entry (entry.S) to Rust: the image header and first
//! instructions, the vectors, and the facts only the entry code knows (where the image was loaded,
//! at which exception level it was entered, where the device tree is).

use core::arch::global_asm;

use crate::kernel::BootInfo;
use crate::mm::addr::{PhysAddr, PhysRange};

global_asm!(include_str!("entry.S"));
global_asm!(include_str!("vectors.S"));

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __boot_stack_bottom: u8;
    static __boot_stack_top: u8;
    static exception_vectors: u8;
}

extern "Rust" {
    /// The kernel's boot order, in `src/main.rs`.
    fn kernel_main(boot: BootInfo) -> !;
}

/// The address of a linker symbol as the running image sees it (PC-relative, so correct
/// wherever the image was loaded).
macro_rules! symbol_addr {
    ($sym:ident) => {
        (&raw const $sym) as usize as u64
    };
}

/// The image's sections at their run-time addresses.
#[derive(Debug, Clone, Copy)]
pub struct ImageLayout {
    pub image: PhysRange,
    pub text: PhysRange,
    pub rodata: PhysRange,
    pub data: PhysRange,
    pub bss: PhysRange,
    pub boot_stack: PhysRange,
}

fn span(start: u64, end: u64) -> PhysRange {
    PhysRange::new(PhysAddr::new(start), end - start)
}

pub fn image_layout() -> ImageLayout {
    ImageLayout {
        image: span(symbol_addr!(__kernel_start), symbol_addr!(__kernel_end)),
        text: span(symbol_addr!(__text_start), symbol_addr!(__text_end)),
        rodata: span(symbol_addr!(__rodata_start), symbol_addr!(__rodata_end)),
        data: span(symbol_addr!(__data_start), symbol_addr!(__bss_start)),
        bss: span(symbol_addr!(__bss_start), symbol_addr!(__bss_end)),
        boot_stack: span(
            symbol_addr!(__boot_stack_bottom),
            symbol_addr!(__boot_stack_top),
        ),
    }
}

/// Where VBAR_EL1 should point.
pub fn vectors_addr() -> u64 {
    symbol_addr!(exception_vectors)
}

/// Called by entry.S on the boot stack, with BSS zeroed and relocations applied.
#[no_mangle]
extern "C" fn arch_boot_entry(dtb: u64, load_base: u64, entry_el: u64) -> ! {
    let layout = image_layout();
    let boot = BootInfo {
        dtb: PhysAddr::new(dtb),
        image: layout.image,
        load_base: PhysAddr::new(load_base),
        entry_el: entry_el as u8,
    };
    // SAFETY: `kernel_main` is defined once, in the kernel binary, with this signature.
    unsafe { kernel_main(boot) }
}

/// The device tree blob at `addr`, as long as its header says, or `None` if there is no tree
/// there (no magic, or an absurd size).
pub fn device_tree_blob(addr: PhysAddr) -> Option<&'static [u8]> {
    const MAX_DTB: u32 = 64 << 20;
    if addr.as_u64() == 0 || !addr.is_aligned(8) {
        return None;
    }
    let ptr = addr.as_u64() as *const u8;
    // SAFETY: the loader passed `addr` as the device tree; the first 8 bytes (magic and size) are
    // read before trusting any length, and memory is identity mapped (MMU off).
    let head = unsafe { core::slice::from_raw_parts(ptr, 8) };
    let size = crate::machine::fdt_check::claimed_size(head).ok()?;
    if !(40..=MAX_DTB).contains(&size) {
        return None;
    }
    // SAFETY: the header claims `size` bytes; the structure checks that follow never read past
    // them, and the loader keeps the tree in place.
    Some(unsafe { core::slice::from_raw_parts(ptr, size as usize) })
}
