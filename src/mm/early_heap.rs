//! The boot heap: a fixed region in BSS that backs `alloc` from the first Rust instruction, before
//! the kernel knows where its RAM is. It is the global allocator until the page and slab
//! allocators exist; it must stay small, since BSS is part of the image the loader reserves.

use buddy_system_allocator::LockedHeap;

const EARLY_HEAP_SIZE: usize = 2 << 20;

#[repr(C, align(4096))]
struct HeapSpace([u8; EARLY_HEAP_SIZE]);

/// In `.noinit`: an allocator does not need zeroed memory, and clearing 2 MiB at boot costs
/// half a million instructions.
#[link_section = ".noinit.early_heap"]
static mut HEAP_SPACE: core::mem::MaybeUninit<HeapSpace> = core::mem::MaybeUninit::uninit();

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands the BSS region to the allocator. Call once, first thing in `kernel_main`.
pub fn init() {
    // SAFETY: called once on the boot core before anything allocates; the region is ours alone
    // and lives for the whole run.
    unsafe {
        let start = &raw mut HEAP_SPACE as usize;
        HEAP.lock().init(start, EARLY_HEAP_SIZE);
    }
}

/// (bytes in use, bytes managed), for reports.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}
