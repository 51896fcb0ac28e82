//! The MMU: registers (MAIR, TCR, SCTLR, TTBRs), the boot translation tables, the switch to the
//! high half, TLB maintenance for the portable page-table code, and hardware translation (AT) for
//! self-checks. The portable `mm::pgtable` decides what the tables say; this file only makes the
//! CPU use them.
//!
//! Boot sequence: entry.S calls `arch_early_mmu` at the load address with the MMU off. It builds,
//! from a pool of pages inside the image's BSS, the kernel's TTBR1 tables (the image by section:
//! text RX, rodata R, data and BSS RW, never RWX; plus the device tree as a read-only window in the
//! linear map) and an identity map of the image in TTBR0 (text RX, rodata and data RW-NX, for the
//! relocation pass only), programs the registers and turns the MMU on. entry.S then re-relocates
//! the image for its virtual address and jumps there. Later the kernel adds the console, the
//! linear map of RAM, and replaces TTBR0 by the empty application space.

use core::arch::asm;
use core::cell::UnsafeCell;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use spin::Mutex;

use crate::addr::{PhysAddr, PhysRange, VirtAddr, PAGE_SIZE};
use crate::machine::Machine;
use crate::mm::kspace::{self, KernelTables, KernelTlb, PageTableOps, IDENTITY_PT, KERNEL_PT};
use crate::mm::layout::{
    self, KernelImage, IOREMAP_EARLY_END, IOREMAP_START, KIMAGE_ALIGN, KIMAGE_BASE, PAGE_OFFSET,
};
use crate::mm::pgtable::{Attrs, Half, MapError, PageTable, TableAlloc, TlbFlush};

/// Table pages available before the page allocator exists: enough for the image, the console and
/// a linear map of RAM in blocks (each bank needs at most a few tables at its ragged edges).
const POOL_PAGES: usize = 96;

#[repr(C, align(4096))]
struct PoolPages([[u64; 512]; POOL_PAGES]);

/// State touched by the boot core only before the MMU is on (no atomics may be used then, as
/// exclusives need cacheable memory on real hardware), and afterwards only under `POOL_LOCK`
/// (the kernel's and the application's tables share the pool but not a lock).
struct BootCell<T>(UnsafeCell<T>);
// SAFETY: see the type's comment: one core and no locks before the MMU is on, `POOL_LOCK` after.
unsafe impl<T> Sync for BootCell<T> {}

/// Serialises the pool once the MMU is on (set by `adopt_boot_tables`).
static POOL_LOCK: Mutex<()> = Mutex::new(());
static MMU_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Runs `f` with the pool to itself: under `POOL_LOCK` once atomics work, directly before.
fn with_pool<R>(f: impl FnOnce(&mut PoolState) -> R) -> R {
    let _guard = MMU_ON
        .load(core::sync::atomic::Ordering::Relaxed)
        .then(|| POOL_LOCK.lock());
    // SAFETY: see `BootCell`: the lock (or the single-core MMU-off phase) makes this unique.
    f(unsafe { &mut *POOL_STATE.0.get() })
}

struct PoolState {
    used: [u64; POOL_PAGES.div_ceil(64)],
    /// Physical address of the pool's first page.
    pa: u64,
    /// Added to a physical address inside the image to get where it can be accessed now: 0 with
    /// the MMU off, the image's virtual offset after.
    image_offset: u64,
    image_pa: (u64, u64),
}

/// In `.noinit`: the page-table code zeroes every page it takes, so BSS clearing would be wasted.
#[link_section = ".noinit.table_pool"]
static POOL: BootCell<core::mem::MaybeUninit<PoolPages>> =
    BootCell(UnsafeCell::new(core::mem::MaybeUninit::uninit()));
static POOL_STATE: BootCell<PoolState> = BootCell(UnsafeCell::new(PoolState {
    used: [0; POOL_PAGES.div_ceil(64)],
    pa: 0,
    image_offset: 0,
    image_pa: (0, 0),
}));

/// The table-page allocator of the boot tables.
pub struct BootPool;

impl BootPool {
    pub fn pages_used() -> usize {
        with_pool(|s| s.used.iter().map(|w| w.count_ones() as usize).sum())
    }
}

// SAFETY: pool pages are distinct pages of the image's BSS, handed out once until freed, and
// `table_ptr` addresses them (or RAM, through the linear map) where they are accessible now.
unsafe impl TableAlloc for BootPool {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let from_pool = with_pool(|s| {
            for (w, word) in s.used.iter_mut().enumerate() {
                if *word != u64::MAX {
                    let bit = (!*word).trailing_zeros() as usize;
                    let index = w * 64 + bit;
                    if index >= POOL_PAGES {
                        break;
                    }
                    *word |= 1 << bit;
                    return Some(PhysAddr::new(s.pa + index as u64 * PAGE_SIZE));
                }
            }
            None
        });
        if from_pool.is_some() || !MMU_ON.load(core::sync::atomic::Ordering::Relaxed) {
            return from_pool;
        }
        // The pool is for the boot; once the page allocator runs, tables come from it. With
        // __GFP_HIGH (half the min watermark in reserve): a table is allocated while the
        // application's space is held, where reclaim, which needs the space, cannot help, and
        // the fault that needs it has just taken its frame at the min watermark.
        use crate::mm::gfp::Gfp;
        crate::mm::init::PAGES
            .alloc_pages(Gfp::KERNEL | Gfp::NOWARN | Gfp::HIGH, 0)
            .ok()
    }

    fn free_table(&mut self, pa: PhysAddr) {
        let in_pool = with_pool(|s| {
            let pool_end = s.pa + POOL_PAGES as u64 * PAGE_SIZE;
            let inside = (s.pa..pool_end).contains(&pa.as_u64());
            if inside {
                let index = ((pa.as_u64() - s.pa) / PAGE_SIZE) as usize;
                s.used[index / 64] &= !(1 << (index % 64));
            }
            inside
        });
        if !in_pool {
            let _ = crate::mm::init::PAGES.free_pages(pa, 0);
        }
    }

    fn table_ptr(&self, pa: PhysAddr) -> *mut u64 {
        // Read without the lock: these fields are written once before the MMU is on, and
        // `image_offset` once in `adopt_boot_tables`, before anything else runs.
        // SAFETY: see above; only plain reads.
        let s = unsafe { &*POOL_STATE.0.get() };
        let p = pa.as_u64();
        if (s.image_pa.0..s.image_pa.1).contains(&p) {
            (p + s.image_offset) as *mut u64
        } else {
            (p + PAGE_OFFSET) as *mut u64
        }
    }
}

/// TLB maintenance for tables shared by every core (inner shareable).
pub struct ArchTlb;

impl TlbFlush for ArchTlb {
    fn sync_tables(&mut self) {
        barrier::dsb(barrier::ISHST);
    }
    fn invalidate_va(&mut self, va: VirtAddr) {
        // SAFETY: TLB invalidation has no effect on memory; `wait` completes it.
        unsafe { asm!("tlbi vaae1is, {}", in(reg) (va.as_u64() >> 12) & ((1 << 44) - 1)) };
    }
    fn invalidate_all(&mut self) {
        // SAFETY: as above.
        unsafe { asm!("tlbi vmalle1is") };
    }
    fn wait(&mut self) {
        barrier::dsb(barrier::ISH);
        barrier::isb(barrier::SY);
    }
}

/// The boot tables' type: built with the MMU off, then handed over to mm's instances
/// (`mm::kspace`), whose backends reach the same pool and TLB through `PT_OPS`.
pub type BootPageTable = PageTable<BootPool, ArchTlb>;

struct BootTables {
    kernel: Option<BootPageTable>,
    identity: Option<BootPageTable>,
    dtb_window: Option<(VirtAddr, u64)>,
}

static BOOT_TABLES: BootCell<BootTables> = BootCell(UnsafeCell::new(BootTables {
    kernel: None,
    identity: None,
    dtb_window: None,
}));

/// The TLB port mm's instances use (`mm::kspace::KernelTlb`), bound by name at link time.
#[no_mangle]
fn ferrite_tlb_sync_tables() {
    ArchTlb.sync_tables()
}
#[no_mangle]
fn ferrite_tlb_invalidate_va(va: u64) {
    ArchTlb.invalidate_va(VirtAddr::new(va))
}
#[no_mangle]
fn ferrite_tlb_invalidate_all() {
    ArchTlb.invalidate_all()
}
#[no_mangle]
fn ferrite_tlb_wait() {
    ArchTlb.wait()
}

/// Where mm's page-table instances take table pages from (`mm::kspace::install`): the boot pool,
/// then the page allocator.
pub static PT_OPS: PageTableOps = PageTableOps {
    alloc_table: || BootPool.alloc_table(),
    free_table: |pa| BootPool.free_table(pa),
};
static IOREMAP_NEXT: Mutex<u64> = Mutex::new(IOREMAP_START);

extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __bss_start: u8;
    static __kernel_end: u8;
    static __noinit_start: u8;
}

fn sym(s: *const u8) -> u64 {
    s as u64
}

/// A `[start, end)` address span.
pub type Span = (u64, u64);

/// The image's sections (text, rodata, data, BSS) at the addresses the code runs at now.
pub fn image_sections() -> (Span, Span, Span, Span) {
    let start = sym(&raw const __kernel_start);
    let text_end = sym(&raw const __text_end);
    let rodata_end = sym(&raw const __rodata_end);
    let bss_start = sym(&raw const __bss_start);
    let end = sym(&raw const __kernel_end);
    (
        (start, text_end),
        (text_end, rodata_end),
        (rodata_end, bss_start),
        (bss_start, end),
    )
}

/// Which mapping of the image `map_image` builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ImageMap {
    /// The kernel's own, in TTBR1: text RX, rodata R, data to the image's end (the `.noinit`
    /// boot heap and table pool included) RW-NX.
    Kernel,
    /// The identity map in TTBR0, for entry.S's second relocation pass (and, until the boot
    /// retires it, a last resort to reach the console). Relocations may land in `.rodata` (the
    /// prebuilt `core` is not position independent: a debug build leaves dozens there), so
    /// rodata is RW-NX here until the pass is done (`adopt_boot_tables` makes it read-only); text
    /// stays RX (no relocation targets it) and nothing is writable and executable. The
    /// `.noinit` tail is left out.
    Identity,
}

/// Maps the image's sections at `offset` from their physical addresses as `which` says.
fn map_image(pt: &mut BootPageTable, offset: u64, which: ImageMap) -> Result<(), MapError> {
    let (text, rodata, data, bss) = image_sections();
    let (rodata_attrs, rw_end) = match which {
        ImageMap::Kernel => (Attrs::KERNEL_RO, bss.1),
        ImageMap::Identity => (Attrs::KERNEL_RW, sym(&raw const __noinit_start)),
    };
    let parts = [
        (text, Attrs::KERNEL_RX),
        (rodata, rodata_attrs),
        ((data.0, rw_end), Attrs::KERNEL_RW),
    ];
    for ((start, end), attrs) in parts {
        if end > start {
            pt.map(
                VirtAddr::new(start + offset),
                PhysAddr::new(start),
                end - start,
                attrs,
            )?;
        }
    }
    Ok(())
}

/// Where the image will run: `KIMAGE_BASE` plus the load address modulo 2 MiB.
pub fn kimage_offset(load_pa: u64) -> u64 {
    (KIMAGE_BASE + (load_pa & (KIMAGE_ALIGN - 1))).wrapping_sub(load_pa)
}

fn build_boot_tables(dtb_pa: u64, load_pa: u64) -> Result<(), MapError> {
    let (_, _, _, (_, end)) = image_sections();
    // SAFETY: the MMU-off phase: this core alone, before anything reads the pool.
    let s = unsafe { &mut *POOL_STATE.0.get() };
    s.pa = sym(POOL.0.get() as *const u8);
    // As for data and BSS in entry.S: no stale dirty line may overwrite the tables we write.
    // SAFETY: the pool holds nothing yet; its memory contents do not matter.
    unsafe { super::cache::invalidate_dcache_range(s.pa, s.pa + POOL_PAGES as u64 * PAGE_SIZE) };
    s.image_offset = 0;
    s.image_pa = (load_pa, end);
    let offset = kimage_offset(load_pa);
    // SAFETY: before the MMU is on only this function runs; nothing else holds these tables.
    let boot = unsafe { &mut *BOOT_TABLES.0.get() };

    let mut kernel = PageTable::new(Half::Upper, BootPool, ArchTlb)?;
    map_image(&mut kernel, offset, ImageMap::Kernel)?;
    // SAFETY: with the MMU off the loader's tree is readable at its physical address.
    if let Some(blob) = unsafe { super::boot::device_tree_blob_at(dtb_pa as *const u8) } {
        let start = dtb_pa & !(PAGE_SIZE - 1);
        let size = (dtb_pa + blob.len() as u64 - start).next_multiple_of(PAGE_SIZE);
        let va = layout::phys_to_virt(PhysAddr::new(start));
        kernel.map(va, PhysAddr::new(start), size, Attrs::KERNEL_RO)?;
        boot.dtb_window = Some((va, size));
    }
    let mut identity = PageTable::new(Half::Lower, BootPool, ArchTlb)?;
    map_image(&mut identity, 0, ImageMap::Identity)?;
    boot.kernel = Some(kernel);
    boot.identity = Some(identity);
    Ok(())
}

/// The physical address width the CPU supports, as TCR_EL1.IPS wants it.
fn ips() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101)
}

/// Physical address bits from ID_AA64MMFR0_EL1.PARange.
pub fn pa_bits() -> u32 {
    [32, 36, 40, 42, 44, 48, 52][ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(6) as usize]
}

/// FEAT_HAFDBS: does the hardware manage the access flag, and dirty state?
pub fn hardware_access_flag() -> &'static str {
    match ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::HAFDBS) {
        0 => "not supported (access-flag faults in software)",
        1 => "access flag managed by hardware (TCR_EL1.HA set)",
        _ => "access flag managed by hardware (TCR_EL1.HA set; dirty state by software)",
    }
}

/// Whether the hardware sets access flags itself (FEAT_HAFDBS, enabled with TCR_EL1.HA): then
/// reclaim's clock sees references without access-flag faults.
pub fn hardware_manages_access_flag() -> bool {
    ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::HAFDBS) >= 1
}

fn program_and_enable(kernel_root: u64, identity_root: u64, invalidate: (u64, u64)) {
    MAIR_EL1.write(
        MAIR_EL1::Attr0_Device::nonGathering_nonReordering_noEarlyWriteAck
            + MAIR_EL1::Attr1_Device::nonGathering_nonReordering_EarlyWriteAck
            + MAIR_EL1::Attr2_Normal_Outer::NonCacheable
            + MAIR_EL1::Attr2_Normal_Inner::NonCacheable
            + MAIR_EL1::Attr3_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL1::Attr3_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    // Hardware access-flag management where there is one; dirty state stays with the software
    // (a page tied to its swap copy is mapped read-only instead, see mm::memory).
    let ha = if hardware_manages_access_flag() {
        TCR_EL1::HA::Enable
    } else {
        TCR_EL1::HA::Disable
    };
    TCR_EL1.write(
        ha + TCR_EL1::TBI0::Used
            + TCR_EL1::IPS.val(ips())
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD0::EnableTTBR0Walks
            + TCR_EL1::T0SZ.val(16)
            + TCR_EL1::TG1::KiB_4
            + TCR_EL1::SH1::Inner
            + TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD1::EnableTTBR1Walks
            + TCR_EL1::A1::TTBR0
            + TCR_EL1::T1SZ.val(16),
    );
    TTBR0_EL1.set(identity_root);
    TTBR1_EL1.set(kernel_root);
    // Data and BSS (tables included) were written with the caches off; a loader may have left
    // stale lines for those addresses, which must not win once the caches are on.
    // SAFETY: this memory was written with the caches off, so memory holds its contents.
    unsafe { super::cache::invalidate_dcache_range(invalidate.0, invalidate.1) };
    barrier::dsb(barrier::ISH);
    // SAFETY: no translation is in use yet; this drops whatever the loader left in the TLB.
    unsafe { asm!("tlbi vmalle1") };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
    SCTLR_EL1.modify(
        SCTLR_EL1::M::Enable
            + SCTLR_EL1::C::Cacheable
            + SCTLR_EL1::I::Cacheable
            + SCTLR_EL1::WXN::Enable
            + SCTLR_EL1::SA::Enable
            + SCTLR_EL1::A::Disable,
    );
    barrier::isb(barrier::SY);
}

/// Called by entry.S with the MMU off, at the load address. Returns the offset to add to every
/// address of the image to reach its high-half address.
#[no_mangle]
extern "C" fn arch_early_mmu(dtb_pa: u64, load_pa: u64) -> u64 {
    if build_boot_tables(dtb_pa, load_pa).is_err() {
        // No console yet: nothing to say it on. The pool is sized so this cannot happen.
        super::cpu::halt();
    }
    // SAFETY: written just above by this core.
    let boot = unsafe { &*BOOT_TABLES.0.get() };
    let kernel_root = boot.kernel.as_ref().map_or(0, |t| t.root().as_u64());
    let identity_root = boot.identity.as_ref().map_or(0, |t| t.root().as_u64());
    let (_, _, (data, _), (_, _)) = image_sections();
    // Everything written with the caches off: data, BSS, and the pool pages taken (the pool is
    // the last thing in the image that was written).
    let pool_end = with_pool(|s| s.pa) + (BootPool::pages_used() as u64 + 1) * PAGE_SIZE;
    program_and_enable(kernel_root, identity_root, (data, pool_end.max(data)));
    kimage_offset(load_pa)
}

/// After the jump to the high half: takes the boot tables into their locks. Call once, first.
pub fn adopt_boot_tables(image: &KernelImage) {
    with_pool(|s| s.image_offset = image.va_offset);
    MMU_ON.store(true, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: PT_OPS reaches the boot pool and the page allocator as BootPool does, and keeps
    // TableAlloc's contract for the tables built from both.
    unsafe { kspace::install(&PT_OPS, image.va_offset) };
    // SAFETY: the MMU-off phase is over; from here on these tables live behind the locks.
    let boot = unsafe { &mut *BOOT_TABLES.0.get() };
    // The relocation pass is done: the identity map's rodata is read-only again, so a stray
    // write through it faults as it would in the kernel's own map. The range is mapped exactly
    // as `map_image` made it, so this cannot fail (and there is no console yet to say so).
    if let Some(identity) = boot.identity.as_mut() {
        let (start, end) = image.rodata;
        if end > start {
            let pa = VirtAddr::new(start.wrapping_sub(image.va_offset));
            let _ = identity.protect(pa, end - start, Attrs::KERNEL_RO);
        }
    }
    // SAFETY: KernelTables and KernelTlb forward to PT_OPS, i.e. to BootPool and ArchTlb, the
    // backends these tables were built with.
    let adopt = |t: BootPageTable| unsafe { t.rebind(|_boot_pool| KernelTables, KernelTlb) };
    *KERNEL_PT.lock() = boot.kernel.take().map(adopt);
    *IDENTITY_PT.lock() = boot.identity.take().map(adopt);
}

/// The device tree's window in the linear map, set up by the boot tables.
pub fn boot_dtb_window() -> Option<(VirtAddr, u64)> {
    // SAFETY: written before the MMU was on, only read afterwards.
    unsafe { (*BOOT_TABLES.0.get()).dtb_window }
}

/// The whole pages `[pa, pa + size)` touches: their first address and length (at least a page).
fn page_span(pa: PhysAddr, size: u64) -> Result<(PhysAddr, u64), MapError> {
    let start = pa.align_down(PAGE_SIZE);
    let end = pa
        .checked_add(size.max(1))
        .and_then(|e| e.align_up(PAGE_SIZE))
        .ok_or(MapError::OutOfRange {
            va: VirtAddr::new(0),
            size,
        })?;
    Ok((start, end.as_u64() - start.as_u64()))
}

/// Maps device registers into the ioremap area (the boot console's mapping until `ioremap`
/// proper exists), with an unmapped guard page after each.
pub fn early_ioremap(pa: PhysAddr, size: u64, attrs: Attrs) -> Result<VirtAddr, MapError> {
    let (start, len) = page_span(pa, size)?;
    let mut next = IOREMAP_NEXT.lock();
    if *next + len + PAGE_SIZE > IOREMAP_EARLY_END {
        return Err(MapError::NoMemory);
    }
    let va = VirtAddr::new(*next);
    KERNEL_PT
        .lock()
        .as_mut()
        .ok_or(MapError::NoMemory)?
        .map(va, start, len, attrs)?;
    *next += len + PAGE_SIZE;
    Ok(VirtAddr::new(va.as_u64() + (pa.as_u64() - start.as_u64())))
}

/// Maps device registers at their physical address in the identity map (TTBR0), while it still
/// exists: the console's last resort when `early_ioremap` failed, so the kernel can say why it
/// stops before it does.
pub fn identity_map_device(pa: PhysAddr, size: u64) -> Result<VirtAddr, MapError> {
    let (start, len) = page_span(pa, size)?;
    IDENTITY_PT.lock().as_mut().ok_or(MapError::NoMemory)?.map(
        VirtAddr::new(start.as_u64()),
        start,
        len,
        Attrs::DEVICE,
    )?;
    Ok(VirtAddr::new(pa.as_u64()))
}

/// Unmaps every `early_ioremap` mapping (once their users moved to `ioremap`).
pub fn early_iounmap_all() {
    let mut next = IOREMAP_NEXT.lock();
    if let Some(pt) = KERNEL_PT.lock().as_mut() {
        let _ = pt.unmap(VirtAddr::new(IOREMAP_START), *next - IOREMAP_START);
    }
    *next = IOREMAP_EARLY_END;
}

/// RAM the linear map covers: every bank, minus `no-map` reservations.
pub fn linear_ranges(machine: &Machine) -> alloc::vec::Vec<PhysRange> {
    let mut out = alloc::vec::Vec::new();
    for bank in &machine.memory {
        let mut pieces = alloc::vec![*bank];
        for r in machine.reserved_memory.iter().filter(|r| r.no_map) {
            let mut next = alloc::vec::Vec::new();
            for p in pieces {
                match p.intersect(&r.range) {
                    None => next.push(p),
                    Some(hole) => {
                        if hole.base > p.base {
                            next.push(PhysRange::new(p.base, hole.base.as_u64() - p.base.as_u64()));
                        }
                        if hole.end() < p.end() {
                            let b = hole.end() as u64;
                            next.push(PhysRange::new(
                                PhysAddr::new(b),
                                (p.end() - b as u128) as u64,
                            ));
                        }
                    }
                }
            }
            pieces = next;
        }
        out.extend(pieces);
    }
    // The linear map works in whole pages.
    out.into_iter()
        .filter_map(|r| {
            let start = r.base.align_up(PAGE_SIZE)?;
            let end = (r.end() as u64) & !(PAGE_SIZE - 1);
            (end > start.as_u64()).then(|| PhysRange::new(start, end - start.as_u64()))
        })
        .collect()
}

/// Replaces the device-tree window by the linear map of all RAM, in the largest blocks that fit.
pub fn map_linear(machine: &Machine) -> Result<(), MapError> {
    let mut guard = KERNEL_PT.lock();
    let pt = guard.as_mut().ok_or(MapError::NoMemory)?;
    if let Some((va, size)) = boot_dtb_window() {
        pt.unmap(va, size)?;
    }
    let ranges = linear_ranges(machine);
    for r in &ranges {
        pt.map(
            layout::phys_to_virt(r.base),
            r.base,
            r.size,
            Attrs::KERNEL_RW,
        )?;
    }
    // Table pages (the boot pool inside the image, then any RAM page) are reached through the
    // linear map from now on; the image must be in it, as it is unless a `no-map` reservation
    // covers the image (a broken tree: the boot stops with this error).
    let (image_start, image_end) = with_pool(|s| s.image_pa);
    if !ranges
        .iter()
        .any(|r| r.base.as_u64() <= image_start && image_end as u128 <= r.end())
    {
        return Err(MapError::OutOfRange {
            va: layout::phys_to_virt(PhysAddr::new(image_start)),
            size: image_end - image_start,
        });
    }
    // SAFETY: the linear map now maps every RAM page outside no-map ranges, which hold no table
    // page (the page allocator never hands them out), and the image, checked just above.
    unsafe { kspace::use_linear_map() };
    Ok(())
}

/// Drops the identity map: TTBR0 becomes the application's space, empty so far.
pub fn retire_identity_map() -> Result<(), MapError> {
    let root = crate::mm::app_space::create()?;
    TTBR0_EL1.set(root.as_u64());
    barrier::isb(barrier::SY);
    ArchTlb.flush_all();
    if let Some(mut identity) = IDENTITY_PT.lock().take() {
        // Give the identity tables back to the pool (all but its root page).
        let _ = identity.unmap(VirtAddr::new(0), 1 << 48);
        let root = identity.root();
        identity.allocator().free_table(root);
    }
    Ok(())
}

/// What the MMU itself says about `va` for an EL1 read (AT S1E1R): the physical address, or
/// `None` when the translation faults.
pub fn translate_hw(va: VirtAddr) -> Option<PhysAddr> {
    let par: u64;
    // SAFETY: AT only queries the translation; PAR_EL1 is read back after the ISB.
    unsafe {
        asm!("at s1e1r, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va.as_u64(), par = out(reg) par);
    }
    if par & 1 != 0 {
        return None;
    }
    Some(PhysAddr::new(
        (par & 0x0000_ffff_ffff_f000) | (va.as_u64() & 0xfff),
    ))
}

/// How the linear map is built: leaf mappings per level (index 1: 1 GiB, 2: 2 MiB, 3: 4 KiB).
pub fn linear_map_stats() -> [u64; 4] {
    let mut counts = [0u64; 4];
    if let Some(pt) = KERNEL_PT.lock().as_ref() {
        pt.for_each_mapping(|va, t, _| {
            if (layout::PAGE_OFFSET..layout::LINEAR_END).contains(&va.as_u64()) {
                counts[t.level as usize] += 1;
            }
        });
    }
    counts
}
