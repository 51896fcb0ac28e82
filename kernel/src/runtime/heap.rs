//! The application's heap: a region of the application's own address space (TTBR0), mapped
//! lazily like any other (its pages appear on first touch and may go to swap), with `talc` (a
//! bin-indexed allocator: allocation and free in constant time, whatever the number of blocks,
//! which a store of millions of values needs; a buddy allocator's free searches its lists) over
//! it, grown a chunk at a time as the application allocates, as `malloc` grows with `brk`. It is the application's allocator of the global
//! allocator (`mm::heap::install_app_allocator`, done by `runtime::run`): in application context
//! `Box`, `Vec` and `String` live here, and every block in the application's half is freed here,
//! whatever the context that drops it.
//!
//! Owns the heap region and its allocator. The rule of its lock: it is taken to allocate in
//! application context, and to free or grow a block of the application's by whoever does; the fault
//! handler never takes it (it runs in kernel context and never frees the application's blocks),
//! so a fault while the lock is held (the allocator writes its free lists into the heap's own
//! pages, which may be on swap) always completes. Must never be used by kernel code that holds
//! the memory manager's locks: a touch may fault, and the fault handler needs them; for the same
//! reason kernel code holding such a lock must not drop a value the application made.

use core::alloc::Layout;
use core::ptr::NonNull;

use spin::Mutex;
use talc::base::Talc;
use talc::source::Manual;
use talc::DefaultBinning;

use crate::mm::app_space;
use crate::mm::heap::AppAllocator;
use crate::mm::vma::{Prot, VmaError};

/// Address space reserved for the heap (only touched pages cost memory).
pub const HEAP_REGION: u64 = 1 << 30;
/// How much the allocator's arena grows at a time (`brk` steps).
const GROW: u64 = 2 << 20;

struct AppHeap {
    /// The allocator, over `[start, brk)` (`Manual`: it takes memory only from `claim` and
    /// `extend` below).
    talc: Talc<Manual, DefaultBinning>,
    /// The end of the memory talc manages, as its `claim`/`extend` returned it (`None` before the
    /// first growth).
    heap_end: Option<NonNull<u8>>,
    start: u64,
    /// The end of the arena handed to the allocator so far (the program break).
    brk: u64,
    end: u64,
    /// Bytes in blocks handed out and not yet freed.
    in_use: u64,
}

// SAFETY: the allocator's pointers lead into the heap region only, which lives until `release`;
// the value is reached under `HEAP`'s lock alone.
unsafe impl Send for AppHeap {}

static HEAP: Mutex<Option<AppHeap>> = Mutex::new(None);

/// The heap's figures: address space reserved, arena grown so far, bytes in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    pub start: u64,
    pub reserved: u64,
    pub grown: u64,
    pub in_use: u64,
}

/// The heap as the global allocator's application allocator.
pub static ALLOCATOR: AppAllocator = AppAllocator {
    alloc: |layout| alloc(layout).map_or(core::ptr::null_mut(), NonNull::as_ptr),
    dealloc: dealloc_raw,
};

/// [`dealloc`] for the port, which speaks raw pointers.
///
/// # Safety
/// As [`dealloc`] (a null pointer is ignored).
unsafe fn dealloc_raw(ptr: *mut u8, layout: Layout) {
    if let Some(ptr) = NonNull::new(ptr) {
        // SAFETY: forwarded from the caller.
        unsafe { dealloc(ptr, layout) };
    }
}

/// Reserves the heap region (before the application starts).
pub fn init() -> Result<HeapStats, VmaError> {
    let start = app_space::mmap(HEAP_REGION, Prot::RW, "heap")?;
    *HEAP.lock() = Some(AppHeap {
        talc: Talc::new(Manual),
        heap_end: None,
        in_use: 0,
        start,
        brk: start,
        end: start + HEAP_REGION,
    });
    Ok(HeapStats {
        start,
        reserved: HEAP_REGION,
        grown: 0,
        in_use: 0,
    })
}

/// Gives the heap region back (after the application ended): its pages and swap slots too. A
/// value the application made must not outlive the job: its memory is gone now (a later free of
/// it finds no heap and is ignored).
pub fn release() {
    if let Some(h) = HEAP.lock().take() {
        let _ = app_space::munmap(h.start, h.end - h.start);
    }
}

pub fn stats() -> Option<HeapStats> {
    HEAP.lock().as_ref().map(|h| HeapStats {
        start: h.start,
        reserved: h.end - h.start,
        grown: h.brk - h.start,
        in_use: h.in_use,
    })
}

/// `malloc`: memory for `layout` in the application's heap, growing the arena when needed;
/// `None` when the region is used up (or no heap exists).
pub fn alloc(layout: Layout) -> Option<NonNull<u8>> {
    let mut guard = HEAP.lock();
    let h = guard.as_mut()?;
    loop {
        // SAFETY: talc manages only memory of the heap region claimed below, which this heap
        // owns until `release`.
        if let Some(p) = unsafe { h.talc.allocate(layout) } {
            h.in_use += layout.size() as u64;
            return Some(p);
        }
        // Grow by at least what the request needs, its alignment and talc's bookkeeping
        // included, in `GROW` steps.
        let need = (layout.size() as u64 + layout.align() as u64 + 4096).next_multiple_of(GROW);
        let new_brk = h.brk.checked_add(need).filter(|&b| b <= h.end)?;
        h.heap_end = match h.heap_end {
            // SAFETY: [start, new_brk) is inside the heap region, which belongs to this
            // allocator alone and stays mapped (lazily) until `release`.
            None => unsafe {
                h.talc
                    .claim(h.start as *mut u8, (new_brk - h.start) as usize)
            },
            // SAFETY: as above; `e` is the end talc returned last, and the memory up to
            // `new_brk` follows it.
            Some(e) => Some(unsafe { h.talc.extend(e, new_brk as *mut u8) }),
        };
        h.heap_end?;
        h.brk = new_brk;
    }
}

/// `free`.
///
/// # Safety
/// `ptr` must come from [`alloc`] with the same `layout`, and not be used afterwards.
pub unsafe fn dealloc(ptr: NonNull<u8>, layout: Layout) {
    if let Some(h) = HEAP.lock().as_mut() {
        // SAFETY: as the caller guarantees: a block `alloc` handed out with `layout`.
        unsafe { h.talc.deallocate(ptr.as_ptr(), layout) };
        h.in_use -= layout.size() as u64;
    }
}
