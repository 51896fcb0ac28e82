//! The boot heap: a fixed region in the image (`.noinit`) that backs `alloc` from the first Rust
//! instruction until `kmalloc` exists. It keeps serving whatever it allocated before (those
//! objects are freed back to it); it must stay small, since it is part of the image.
// A named exception to the crate's `deny(unsafe_code)`: the boot heap is a static in its own linker section.
#![allow(unsafe_code)]

use buddy_system_allocator::LockedHeap;

pub const EARLY_HEAP_SIZE: usize = 2 << 20;

#[repr(C, align(4096))]
struct HeapSpace([u8; EARLY_HEAP_SIZE]);

/// In `.noinit`: an allocator does not need zeroed memory, and clearing 2 MiB at boot costs
/// half a million instructions.
#[link_section = ".noinit.early_heap"]
static mut HEAP_SPACE: core::mem::MaybeUninit<HeapSpace> = core::mem::MaybeUninit::uninit();

pub static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands the region to the allocator. Call once, first thing in `kernel_main`.
pub fn init() {
    // SAFETY: called once on the boot core before anything allocates; the region is ours alone
    // and lives for the whole run.
    unsafe {
        let start = &raw mut HEAP_SPACE as usize;
        HEAP.lock().init(start, EARLY_HEAP_SIZE);
    }
}

/// Whether `ptr` was handed out by the boot heap.
#[inline(always)]
pub fn contains(ptr: *const u8) -> bool {
    let start = &raw const HEAP_SPACE as usize;
    (start..start + EARLY_HEAP_SIZE).contains(&(ptr as usize))
}

/// (bytes in use, bytes managed), for reports.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}
