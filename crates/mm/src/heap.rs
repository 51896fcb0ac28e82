//! The kernel's `kmalloc` and the Rust global allocator on top of it: `alloc::` collections work
//! everywhere, in the kernel and in the application. The global allocator dispatches a new
//! allocation by context (`mm::context`): in kernel context it comes from `kmalloc` (before the
//! page allocator exists, the boot heap), memory that is never swapped, so a kernel lock holder
//! never faults on it; in application context from the application's allocator, a port the
//! kernel installs (`install_app_allocator`: the runtime's heap in the application's own,
//! swappable half), and its failure is the allocation's failure, never a fallback to `kmalloc`.
//! A block is freed and grown where it came from, decided by its address, not by the context (a
//! `Vec` the application made may be dropped by the kernel, and the reverse). Also the slab
//! backend over the page allocator and the shrinker the reclaim path calls. Must never let a
//! kernel-context allocation reach the application's half.
// A named exception to the crate's `deny(unsafe_code)`: the kernel's global allocator (`GlobalAlloc` is an unsafe trait) and the memory map's view.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Once;

use super::context::Context;
use super::early_heap;
use super::gfp::Gfp;
use super::init::PAGES;
use super::kmalloc::Kmalloc;
use super::layout::{self, LINEAR_END, PAGE_OFFSET, USER_END};
use super::page::{MemMapView, Page};
use super::port::Port;
use super::slab::SlabBackend;
use super::zone::ZoneId;
use crate::addr::{PhysAddr, VirtAddr, PAGE_SHIFT};

/// Slabs from the page allocator, reached through the linear map.
pub struct PageBackend {
    view: MemMapView,
}

// SAFETY: pages come from the page allocator (naturally aligned, ours until freed), addressed
// through the linear map; `page_meta` returns the memory map's entry for the frame, which the
// page allocator leaves alone while the page is allocated.
unsafe impl SlabBackend for PageBackend {
    #[inline]
    fn alloc_pages(&self, order: u8, gfp: Gfp) -> Option<NonNull<u8>> {
        let pa = PAGES.alloc_pages(gfp, order).ok()?;
        NonNull::new(layout::phys_to_virt(pa).as_u64() as *mut u8)
    }

    unsafe fn free_pages(&self, va: NonNull<u8>, order: u8) {
        if let Some(pa) = layout::virt_to_phys(VirtAddr::new(va.as_ptr() as u64)) {
            let _ = PAGES.free_pages(pa, order);
        }
    }

    #[inline(always)]
    fn page_meta(&self, va: *const u8) -> Option<NonNull<Page>> {
        let v = va as u64;
        if !(PAGE_OFFSET..LINEAR_END).contains(&v) {
            return None;
        }
        NonNull::new(self.view.get((v - PAGE_OFFSET) >> PAGE_SHIFT)?)
    }
}

static BACKEND: Once<PageBackend> = Once::new();
static KMALLOC: Once<Kmalloc> = Once::new();

/// Starts `kmalloc` (after the page allocator). `debug` is the `slub_debug` flag set.
pub fn init(debug: u32) {
    let view = PAGES.with(|a| a.map_view()).unwrap_or(MemMapView::empty());
    let backend: &'static PageBackend = BACKEND.call_once(|| PageBackend { view });
    KMALLOC.call_once(|| Kmalloc::new(backend, debug));
    PAGES.set_reclaim_hook(shrink_slabs);
}

/// The reclaim hook's slab part: empty slabs back to the page allocator.
pub(crate) fn shrink_slabs(_zone: ZoneId, _order: u8) -> u64 {
    KMALLOC.get().map_or(0, |k| k.shrink())
}

/// The metadata of a page frame (Linux's `pfn_to_page`), without the page allocator's lock: for
/// the owner of an allocated page, who alone may use its `private` word.
pub fn pfn_to_page(pfn: u64) -> Option<NonNull<Page>> {
    NonNull::new(BACKEND.get()?.view.get(pfn)?)
}

pub fn kmalloc_caches() -> Option<&'static Kmalloc> {
    KMALLOC.get()
}

/// The backend for caches made outside `kmalloc` (`KmemCache::new`).
pub fn slab_backend() -> Option<&'static PageBackend> {
    BACKEND.get()
}

/// `kmalloc(size, gfp)`.
#[inline]
pub fn kmalloc(size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
    KMALLOC.get()?.kmalloc(size, gfp)
}

/// `kfree(ptr)`.
///
/// # Safety
/// `ptr` must come from `kmalloc` (or be null) and not be used afterwards.
#[inline]
pub unsafe fn kfree(ptr: *mut u8) {
    if let Some(k) = KMALLOC.get() {
        // SAFETY: forwarded from the caller.
        unsafe { k.kfree(ptr) }
    }
}

/// The physical address of `kmalloc` memory (for drivers, later the DMA API).
pub fn kmalloc_phys(ptr: *const u8) -> Option<PhysAddr> {
    layout::virt_to_phys(VirtAddr::new(ptr as u64))
}

/// The application's allocator, which the kernel installs (mm never names the kernel's runtime):
/// it serves the global allocator in application context and frees (and grows) every block in
/// the application's half.
pub struct AppAllocator {
    /// A fresh block for the layout in the application's half, or null when there is no room.
    pub alloc: fn(Layout) -> *mut u8,
    /// Frees a block `alloc` handed out with this layout.
    ///
    /// # Safety
    /// The pointer must come from `alloc` with the layout, and not be used afterwards.
    pub dealloc: unsafe fn(*mut u8, Layout),
}

static APP_ALLOCATOR: Port<AppAllocator> = Port::new("mm::heap (the application's allocator)");

/// Installs the application's allocator (before any code runs in application context).
pub fn install_app_allocator(allocator: &'static AppAllocator) {
    APP_ALLOCATOR.install(allocator);
}

/// Whether `ptr` is in the application's half, so the application's allocator handed it out.
/// The boot heap, `kmalloc` and every other kernel address are in the upper half.
#[inline(always)]
fn in_application_half(ptr: *const u8) -> bool {
    (ptr as u64) < USER_END
}

/// The last request the global allocator could not satisfy (size, align, and whether the
/// application's heap refused it): the panic handler turns Rust's allocation-failure panic
/// ("memory allocation of N bytes failed") into an out-of-memory report with the alignment
/// (`mm::oom`).
static FAILED_SIZE: AtomicUsize = AtomicUsize::new(0);
static FAILED_ALIGN: AtomicUsize = AtomicUsize::new(0);
static FAILED_IN_APPLICATION: AtomicBool = AtomicBool::new(false);

/// The last failed global allocation's alignment, if its size was `size`.
pub fn failed_align(size: usize) -> Option<usize> {
    let align = FAILED_ALIGN.load(Ordering::SeqCst);
    (align != 0 && FAILED_SIZE.load(Ordering::SeqCst) == size).then_some(align)
}

/// Whether the last failed global allocation of `size` bytes was the application heap's.
pub fn failed_in_application(size: usize) -> bool {
    failed_align(size).is_some() && FAILED_IN_APPLICATION.load(Ordering::SeqCst)
}

/// Records a failed request (see `FAILED_SIZE`) and returns the null pointer that reports it.
#[cold]
fn failed(size: usize, align: usize, application: bool) -> *mut u8 {
    FAILED_SIZE.store(size, Ordering::SeqCst);
    FAILED_ALIGN.store(align, Ordering::SeqCst);
    FAILED_IN_APPLICATION.store(application, Ordering::SeqCst);
    core::ptr::null_mut()
}

struct KernelHeap;

impl KernelHeap {
    /// A fresh kernel block for `layout` from kmalloc (or the boot heap before it), or null
    /// (recorded for the out-of-memory report).
    #[inline]
    fn allocate_kernel(layout: Layout) -> *mut u8 {
        // The slab caches' locks are not interrupt-safe: an interrupt handler must not
        // allocate from the heap (it may take pages with `alloc_pages(Gfp::ATOMIC)`).
        if super::context::in_interrupt() {
            log::error!(
                "kmalloc({}) in interrupt context: refused (the heap is not interrupt-safe; an interrupt handler allocates pages with Gfp::ATOMIC)",
                layout.size()
            );
            return core::ptr::null_mut();
        }
        let p = match KMALLOC.get() {
            Some(k) => k.kmalloc_aligned(layout.size(), layout.align(), Gfp::KERNEL | Gfp::NOWARN),
            None => early_heap::HEAP.lock().alloc(layout).ok(),
        };
        p.map_or_else(
            || failed(layout.size(), layout.align(), false),
            |p| p.as_ptr(),
        )
    }

    /// A fresh block from the application's allocator, or null (recorded).
    #[inline(never)]
    fn allocate_application(layout: Layout) -> *mut u8 {
        let p = (APP_ALLOCATOR.get().alloc)(layout);
        if p.is_null() {
            return failed(layout.size(), layout.align(), true);
        }
        p
    }
}

// SAFETY: every pointer handed out is a fresh, suitably aligned block of at least `size` bytes
// from the boot heap, kmalloc or the application's allocator (whose contract says the same), and
// is given back to the one it came from: the boot heap's by its range, the application's by its
// half (which neither kmalloc nor the boot heap ever hands out), kmalloc's otherwise.
unsafe impl GlobalAlloc for KernelHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Context::current() {
            Context::Kernel => Self::allocate_kernel(layout),
            Context::Application => Self::allocate_application(layout),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if early_heap::contains(ptr) {
            // SAFETY: the boot heap handed it out with this layout (so it is not null either).
            unsafe {
                early_heap::HEAP
                    .lock()
                    .dealloc(NonNull::new_unchecked(ptr), layout)
            };
        } else if in_application_half(ptr) {
            // SAFETY: the application's allocator handed it out with this layout; the caller
            // gives it up.
            unsafe { (APP_ALLOCATOR.get().dealloc)(ptr, layout) };
        } else if let Some(k) = KMALLOC.get() {
            // SAFETY: kmalloc handed it out; the caller gives it up.
            unsafe { k.kfree(ptr) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let application = in_application_half(ptr);
        if !application && !early_heap::contains(ptr) {
            if let Some(k) = KMALLOC.get() {
                // SAFETY: kmalloc memory, given up by the caller for the new block.
                return unsafe {
                    k.krealloc(ptr, new_size, layout.align(), Gfp::KERNEL | Gfp::NOWARN)
                }
                .map_or_else(|| failed(new_size, layout.align(), false), |p| p.as_ptr());
            }
        }
        // The application's blocks stay in its heap, whatever the context (its buddy allocator
        // has no in-place growth); the boot heap's move to kmalloc when they grow. `new_size`
        // with the old alignment is a valid layout (GlobalAlloc's contract), so the check never
        // fails.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return failed(new_size, layout.align(), application);
        };
        let new = if application {
            Self::allocate_application(new_layout)
        } else {
            Self::allocate_kernel(new_layout)
        };
        if !new.is_null() {
            // SAFETY: both live, distinct, at least the smaller size.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static GLOBAL: KernelHeap = KernelHeap;
