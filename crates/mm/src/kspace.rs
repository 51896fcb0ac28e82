//! The kernel's page-table instances: the kernel's half (TTBR1: image, linear map, vmalloc,
//! ioremap) and the boot's identity map (TTBR0 until the application's space, whose table
//! `app_space` owns, replaces it), each behind its lock, typed with mm's own backends (the
//! application's table uses them too): `KernelTables` takes table pages from the operations the architecture installs at
//! boot (`install`) and reaches them by plain arithmetic, one offset from the physical address
//! (the image's until the linear map exists, when every table is a boot-pool page inside the
//! image; the linear map's after, `use_linear_map`), since that is on every walk; `KernelTlb`
//! calls TLB maintenance the architecture defines by name, bound at link time so whole-program
//! optimisation inlines it. The arch builds the boot tables with the MMU off, with its own
//! backend, and hands them over here once it runs in the high half (`PageTable::rebind`). Owns
//! the instances; must never name the arch layer.
// A named exception to the crate's `deny(unsafe_code)`: TLB maintenance is bound at link time (extern functions) and table pages are raw memory.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::layout::PAGE_OFFSET;
use super::pgtable::{PageTable, TableAlloc, TlbFlush};
use super::port::Port;
use crate::addr::{PhysAddr, VirtAddr};

/// Where the architecture takes table pages from and gives them back to (see `TableAlloc`).
pub struct PageTableOps {
    pub alloc_table: fn() -> Option<PhysAddr>,
    pub free_table: fn(PhysAddr),
}

static OPS: Port<PageTableOps> = Port::new("mm::kspace (the page-table operations)");
/// From a table page's physical address to where it is accessed now.
static TABLE_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Installs the architecture's table operations before any table is handed over;
/// `image_offset` leads from a physical address in the image to where the image runs.
///
/// # Safety
/// The operations must keep `TableAlloc`'s contract for every table of the instances (table
/// pages handed out once until freed), and until `use_linear_map` every table page must lie in
/// the image.
pub unsafe fn install(ops: &'static PageTableOps, image_offset: u64) {
    TABLE_OFFSET.store(image_offset, Ordering::Relaxed);
    OPS.install(ops);
}

/// From now on table pages are reached through the linear map, which maps every table page
/// (the image's own included).
///
/// # Safety
/// The linear map must map all RAM that holds or will hold a table page, the image included.
pub unsafe fn use_linear_map() {
    TABLE_OFFSET.store(PAGE_OFFSET, Ordering::Relaxed);
}

/// Table pages of the kernel's instances, through the installed operations.
pub struct KernelTables;

// SAFETY: every call forwards to the installed operations, which `install`'s caller vouched
// keep this trait's contract.
unsafe impl TableAlloc for KernelTables {
    #[inline]
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        (OPS.get().alloc_table)()
    }
    #[inline]
    fn free_table(&mut self, pa: PhysAddr) {
        (OPS.get().free_table)(pa)
    }
    #[inline]
    fn table_ptr(&self, pa: PhysAddr) -> *mut u64 {
        (pa.as_u64() + TABLE_OFFSET.load(Ordering::Relaxed)) as *mut u64
    }
}

/// TLB maintenance of the kernel's instances, through the installed operations.
pub struct KernelTlb;

impl TlbFlush for KernelTlb {
    #[inline]
    fn sync_tables(&mut self) {
        // SAFETY: the port's functions have these signatures (see `arch_tlb`).
        unsafe { arch_tlb::ferrite_tlb_sync_tables() }
    }
    #[inline]
    fn invalidate_va(&mut self, va: VirtAddr) {
        // SAFETY: as above.
        unsafe { arch_tlb::ferrite_tlb_invalidate_va(va.as_u64()) }
    }
    #[inline]
    fn invalidate_all(&mut self) {
        // SAFETY: as above.
        unsafe { arch_tlb::ferrite_tlb_invalidate_all() }
    }
    #[inline]
    fn wait(&mut self) {
        // SAFETY: as above.
        unsafe { arch_tlb::ferrite_tlb_wait() }
    }
}

/// TLB maintenance is on the fault path and in every map and unmap: a port bound when the image
/// is linked (the architecture defines these functions by name, as Linux's arch code defines
/// `flush_tlb_kernel_range`), so whole-program optimisation inlines the one instruction each
/// stands for. A missing definition is a link error.
mod arch_tlb {
    extern "Rust" {
        pub fn ferrite_tlb_sync_tables();
        pub fn ferrite_tlb_invalidate_va(va: u64);
        pub fn ferrite_tlb_invalidate_all();
        pub fn ferrite_tlb_wait();
    }
}

/// The type of the kernel's tables (the application's too).
pub type KernelPageTable = PageTable<KernelTables, KernelTlb>;

/// The kernel's (TTBR1) tables, once the arch hands them over.
pub static KERNEL_PT: Mutex<Option<KernelPageTable>> = Mutex::new(None);
/// The boot's identity map (TTBR0) until the application's space replaces it
/// (`app_space::create`).
pub static IDENTITY_PT: Mutex<Option<KernelPageTable>> = Mutex::new(None);
