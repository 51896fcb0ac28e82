//! Translation-table manipulation. Owns the rules: largest blocks that fit, break-before-make when
//! a block is split or a memory type changes, table pages freed once empty (after the TLB has
//! forgotten them), TLB invalidation by VA batched per operation with one full invalidation past a
//! threshold, and all-or-nothing mapping (a failed map leaves nothing behind).
// A named exception to the crate's `deny(unsafe_code)`: page-table pages are raw memory reached through the `TableAlloc` backend.
#![allow(unsafe_code)]

use core::fmt;

use super::desc::{self, Attrs};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// Which translation regime a table serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// TTBR0: `0x0000_0000_0000_0000..0x0001_0000_0000_0000`.
    Lower,
    /// TTBR1: `0xffff_0000_0000_0000..`.
    Upper,
}

impl Half {
    pub const fn base(self) -> u64 {
        match self {
            Half::Lower => 0,
            Half::Upper => 0xffff_0000_0000_0000,
        }
    }
    fn contains(self, start: u64, end: u64) -> bool {
        // `end` is exclusive and at most 2^64 - 4 KiB for the upper half (no wrap allowed).
        start < end
            && match self {
                Half::Lower => end <= 1 << 48,
                Half::Upper => start >= Half::Upper.base(),
            }
    }
}

/// Why a page-table operation failed. Each prints as one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// An address or size is not page aligned.
    Misaligned { what: &'static str, value: u64 },
    /// The range is empty, wraps, or leaves this table's half.
    OutOfRange { va: VirtAddr, size: u64 },
    /// Something is already mapped here.
    Overlap { va: VirtAddr },
    /// A table page could not be allocated.
    NoMemory,
    /// `protect` found a hole in the range.
    NotMapped { va: VirtAddr },
    /// A ready-made descriptor that is not a valid page, or is writable and executable.
    BadDescriptor { desc: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Misaligned { what, value } => {
                write!(f, "{what} {value:#x} is not page aligned")
            }
            MapError::OutOfRange { va, size } => {
                write!(
                    f,
                    "range {va} + {size:#x} is empty or outside this half of the address space"
                )
            }
            MapError::Overlap { va } => write!(f, "{va} is already mapped"),
            MapError::NoMemory => write!(f, "out of memory for translation tables"),
            MapError::NotMapped { va } => write!(f, "{va} is not mapped"),
            MapError::BadDescriptor { desc } => {
                write!(
                    f,
                    "{desc:#018x} is not a page descriptor Ferrite allows (W^X)"
                )
            }
        }
    }
}

/// Pages for translation tables.
///
/// # Safety
/// `table_ptr` must return a pointer through which the 4 KiB table at `pa` can be read and written
/// for as long as the table is in use, and `alloc_table` must return pages nobody else uses.
pub unsafe trait TableAlloc {
    /// A page for a table (it need not be zeroed), or `None` when memory is exhausted.
    fn alloc_table(&mut self) -> Option<PhysAddr>;
    /// Gives back a table page that no walk can reach any more.
    fn free_table(&mut self, pa: PhysAddr);
    fn table_ptr(&self, pa: PhysAddr) -> *mut u64;
}

/// TLB and walker maintenance.
pub trait TlbFlush {
    /// Makes descriptor writes visible to the table walker (DSB ISHST on aarch64).
    fn sync_tables(&mut self);
    /// Starts invalidating every TLB and walk-cache entry for `va` (TLBI VAAE1IS).
    fn invalidate_va(&mut self, va: VirtAddr);
    /// Starts invalidating the whole TLB (TLBI VMALLE1IS).
    fn invalidate_all(&mut self);
    /// Waits until every invalidation started has completed everywhere (DSB ISH + ISB).
    fn wait(&mut self);

    /// Invalidates `va` and waits.
    fn flush_va(&mut self, va: VirtAddr) {
        self.invalidate_va(va);
        self.wait();
    }
    /// Invalidates everything and waits.
    fn flush_all(&mut self) {
        self.invalidate_all();
        self.wait();
    }
}

/// Where a virtual address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub pa: PhysAddr,
    pub attrs: Attrs,
    /// The level of the leaf: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u8,
}

/// The descriptors of one walk, level by level.
#[derive(Debug, Clone, Copy)]
pub struct Walk {
    entries: [(u8, u64); 4],
    len: usize,
}

impl Walk {
    pub fn iter(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.entries[..self.len].iter().copied()
    }
}

/// Pending TLB work of one operation. Invalidations by VA are issued as entries are cleared and
/// waited for once at the end (as Linux batches them); past the threshold the rest become one
/// full invalidation. Freed tables wait in a small array until the wait; a full array forces an
/// early wait so they can be released. Nothing here touches the heap.
const BATCH_TABLES: usize = 8;

struct Batch {
    /// Lazy unmap: clear leaves only; no invalidation, no table freed (the caller purges later).
    lazy: bool,
    issued: usize,
    /// More invalidations than the threshold: a full one is due.
    overflow: bool,
    freed: [PhysAddr; BATCH_TABLES],
    n_freed: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            lazy: false,
            issued: 0,
            overflow: false,
            freed: [PhysAddr::new(0); BATCH_TABLES],
            n_freed: 0,
        }
    }
}

/// A translation table tree and what it needs to change it.
pub struct PageTable<M: TableAlloc, F: TlbFlush> {
    root: PhysAddr,
    half: Half,
    mem: M,
    tlb: F,
    /// The largest block level used (1: up to 1 GiB blocks, 2: up to 2 MiB, 3: pages only).
    largest_block_level: u8,
    /// More invalidations than this in one operation become one full invalidation.
    flush_all_threshold: usize,
    tables_in_use: usize,
    /// The level-3 table last walked to, as (2 MiB region number + 1, table): faults and
    /// reclaim come in runs over neighbouring pages, and the walk to it is most of their cost.
    /// Forgotten whenever any table is unlinked (the only way a table stops being the one).
    last_l3: core::cell::Cell<(u64, PhysAddr)>,
}

impl<M: TableAlloc, F: TlbFlush> PageTable<M, F> {
    /// Allocates an empty root table.
    pub fn new(half: Half, mut mem: M, tlb: F) -> Result<Self, MapError> {
        let root = mem.alloc_table().ok_or(MapError::NoMemory)?;
        let mut pt = PageTable {
            root,
            half,
            mem,
            tlb,
            largest_block_level: 1,
            flush_all_threshold: 64,
            tables_in_use: 1,
            last_l3: core::cell::Cell::new((0, PhysAddr::new(0))),
        };
        pt.zero(root);
        pt.tlb.sync_tables();
        Ok(pt)
    }

    /// The same tables with other backends: how the boot tables, built with the MMU off, are
    /// handed over to the kernel's instances. `mem` makes the new table-page backend from the
    /// old one. Nothing is walked, copied or invalidated.
    ///
    /// # Safety
    /// The new backend must reach and own every table page `self` uses (its `table_ptr` gives a
    /// usable address for each, and it accepts them back on `free_table`), and `tlb` must
    /// maintain the TLB of the same translation regime.
    pub unsafe fn rebind<M2: TableAlloc, F2: TlbFlush>(
        self,
        mem: impl FnOnce(M) -> M2,
        tlb: F2,
    ) -> PageTable<M2, F2> {
        PageTable {
            root: self.root,
            half: self.half,
            mem: mem(self.mem),
            tlb,
            largest_block_level: self.largest_block_level,
            flush_all_threshold: self.flush_all_threshold,
            tables_in_use: self.tables_in_use,
            last_l3: self.last_l3,
        }
    }

    pub fn root(&self) -> PhysAddr {
        self.root
    }
    pub fn half(&self) -> Half {
        self.half
    }
    /// Table pages in use, the root included.
    pub fn tables_in_use(&self) -> usize {
        self.tables_in_use
    }
    pub fn set_largest_block_level(&mut self, level: u8) {
        self.largest_block_level = level.clamp(1, 3);
    }
    pub fn set_flush_all_threshold(&mut self, n: usize) {
        self.flush_all_threshold = n;
    }
    pub fn allocator(&mut self) -> &mut M {
        &mut self.mem
    }
    pub fn flusher(&mut self) -> &mut F {
        &mut self.tlb
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        debug_assert!(index < 512);
        // SAFETY: `TableAlloc` guarantees the table is readable; index < 512 stays inside it.
        unsafe { self.mem.table_ptr(table).add(index).read_volatile() }
    }

    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        debug_assert!(index < 512);
        // SAFETY: as in `read`; volatile because the hardware walker reads it concurrently.
        unsafe { self.mem.table_ptr(table).add(index).write_volatile(value) }
    }

    fn zero(&mut self, table: PhysAddr) {
        // Where the table is, once: `table_ptr` may read state it cannot prove unchanged
        // between volatile writes, so a per-entry lookup would be repeated 512 times.
        let p = self.mem.table_ptr(table);
        for i in 0..512 {
            // SAFETY: as in `write`, for each of the table's 512 entries.
            unsafe { p.add(i).write_volatile(0) };
        }
    }

    fn alloc(&mut self) -> Result<PhysAddr, MapError> {
        let pa = self.mem.alloc_table().ok_or(MapError::NoMemory)?;
        self.zero(pa);
        // The zeroes must reach the walker before the table is linked: a speculative walk of the
        // new link must never read the page's old contents.
        self.tlb.sync_tables();
        self.tables_in_use += 1;
        Ok(pa)
    }

    fn check_range(&self, va: VirtAddr, size: u64) -> Result<(u64, u64), MapError> {
        if !va.is_aligned(PAGE_SIZE) {
            return Err(MapError::Misaligned {
                what: "virtual address",
                value: va.as_u64(),
            });
        }
        if !size.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Misaligned {
                what: "size",
                value: size,
            });
        }
        let start = va.as_u64();
        let end = start
            .checked_add(size)
            .ok_or(MapError::OutOfRange { va, size })?;
        if !self.half.contains(start, end) {
            return Err(MapError::OutOfRange { va, size });
        }
        Ok((start, end))
    }

    /// Maps `size` bytes at `va` to `pa` with the largest blocks alignment allows. Fails without
    /// changing anything if any part is already mapped or memory runs out.
    pub fn map(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        size: u64,
        attrs: Attrs,
    ) -> Result<(), MapError> {
        let (start, end) = self.check_range(va, size)?;
        if !pa.is_aligned(PAGE_SIZE) {
            return Err(MapError::Misaligned {
                what: "physical address",
                value: pa.as_u64(),
            });
        }
        // Descriptors hold 48 bits of output address: anything above would silently wrap.
        if pa
            .checked_add(size - 1)
            .is_none_or(|last| last.as_u64() >= 1 << 48)
        {
            return Err(MapError::OutOfRange { va, size });
        }
        let mut v = start;
        while v < end {
            let p = pa.as_u64() + (v - start);
            let level = self.best_level(v, p, end - v);
            if let Err(e) = self.install(v, p, level, attrs) {
                // Leave nothing behind: our own mappings so far, and empty tables on the way.
                if v > start {
                    let _ = self.unmap(va, v - start);
                }
                let mut batch = Batch::new();
                let root = self.root;
                self.prune(
                    root,
                    0,
                    self.half.base(),
                    v,
                    v + desc::level_size(level),
                    &mut batch,
                );
                self.finish(batch);
                return Err(e);
            }
            v += desc::level_size(level);
        }
        // New entries replace invalid ones, which no TLB holds: publishing them is enough.
        self.tlb.sync_tables();
        Ok(())
    }

    /// Maps one 4 KiB page (the page-fault path): `map` without the block search.
    pub fn map_page(&mut self, va: VirtAddr, pa: PhysAddr, attrs: Attrs) -> Result<(), MapError> {
        let v = va.as_u64();
        if !va.is_aligned(PAGE_SIZE) || !pa.is_aligned(PAGE_SIZE) {
            return Err(MapError::Misaligned {
                what: "address",
                value: v | pa.as_u64(),
            });
        }
        if !self.half.contains(v, v.wrapping_add(PAGE_SIZE)) || pa.as_u64() >= 1 << 48 {
            return Err(MapError::OutOfRange {
                va,
                size: PAGE_SIZE,
            });
        }
        self.map_leaf(v, desc::leaf(pa.as_u64(), attrs, 3))
    }

    /// Maps one 4 KiB page from a ready-made level-3 descriptor (the page-fault path keeps one
    /// per permission set and adds the frame's address). Refuses anything that is not a valid
    /// page descriptor, and writable descriptors that are executable.
    pub fn map_pte(&mut self, va: VirtAddr, d: u64) -> Result<(), MapError> {
        let v = va.as_u64();
        if !va.is_aligned(PAGE_SIZE) {
            return Err(MapError::Misaligned {
                what: "address",
                value: v,
            });
        }
        // W^X holds for descriptors made elsewhere too: writable means never executable.
        let writable = d & desc::AP_RO == 0;
        if !desc::is_leaf(d, 3)
            || (writable && d & (desc::PXN | desc::UXN) != desc::PXN | desc::UXN)
        {
            return Err(MapError::BadDescriptor { desc: d });
        }
        if !self.half.contains(v, v.wrapping_add(PAGE_SIZE)) {
            return Err(MapError::OutOfRange {
                va,
                size: PAGE_SIZE,
            });
        }
        // The usual case of a fault run: the level-3 table is the one last walked to.
        if let Some(table) = self.cached_l3(v) {
            let i = desc::index(v, 3);
            if desc::is_valid(self.read(table, i)) {
                return Err(MapError::Overlap { va });
            }
            self.write(table, i, d);
            self.tlb.sync_tables();
            return Ok(());
        }
        self.map_leaf(v, d)
    }

    fn map_leaf(&mut self, v: u64, d: u64) -> Result<(), MapError> {
        if let Err(e) = self.install_leaf(v, 3, d) {
            let mut batch = Batch::new();
            let root = self.root;
            self.prune(root, 0, self.half.base(), v, v + PAGE_SIZE, &mut batch);
            self.finish(batch);
            return Err(e);
        }
        self.tlb.sync_tables();
        Ok(())
    }

    fn best_level(&self, va: u64, pa: u64, remaining: u64) -> u8 {
        (self.largest_block_level.max(1)..3)
            .find(|&level| {
                let size = desc::level_size(level);
                va.is_multiple_of(size) && pa.is_multiple_of(size) && remaining >= size
            })
            .unwrap_or(3)
    }

    fn install(&mut self, va: u64, pa: u64, level: u8, attrs: Attrs) -> Result<(), MapError> {
        self.install_leaf(va, level, desc::leaf(pa, attrs, level))
    }

    /// The cached level-3 table for `va`, if it is the one last walked to.
    #[inline(always)]
    fn cached_l3(&self, va: u64) -> Option<PhysAddr> {
        let (key, table) = self.last_l3.get();
        (key == (va >> 21) + 1).then_some(table)
    }

    fn install_leaf(&mut self, va: u64, level: u8, leaf: u64) -> Result<(), MapError> {
        if level == 3 {
            if let Some(table) = self.cached_l3(va) {
                let i = desc::index(va, 3);
                if desc::is_valid(self.read(table, i)) {
                    return Err(MapError::Overlap {
                        va: VirtAddr::new(va),
                    });
                }
                self.write(table, i, leaf);
                return Ok(());
            }
        }
        let mut table = self.root;
        for l in 0..level {
            let i = desc::index(va, l);
            let e = self.read(table, i);
            if desc::is_table(e, l) {
                table = PhysAddr::new(desc::addr(e));
            } else if desc::is_valid(e) {
                return Err(MapError::Overlap {
                    va: VirtAddr::new(va),
                });
            } else {
                let new = self.alloc()?;
                self.write(table, i, desc::table(new.as_u64()));
                table = new;
            }
        }
        let i = desc::index(va, level);
        if desc::is_valid(self.read(table, i)) {
            return Err(MapError::Overlap {
                va: VirtAddr::new(va),
            });
        }
        self.write(table, i, leaf);
        if level == 3 {
            self.last_l3.set(((va >> 21) + 1, table));
        }
        Ok(())
    }

    /// Unmaps whatever is mapped in the range (holes are fine), splitting blocks that straddle
    /// its ends and freeing tables that become empty. Returns the bytes that were mapped.
    pub fn unmap(&mut self, va: VirtAddr, size: u64) -> Result<u64, MapError> {
        let (batch, result) = self.clear_range(va, size, false)?;
        self.finish(batch);
        result
    }

    /// Clears the leaf entries of the range without invalidating the TLB or freeing tables: the
    /// caller guarantees nothing uses the range until it calls `flush_all` (vmalloc's lazy purge,
    /// which then `unmap`s the range again to free empty tables).
    pub fn unmap_lazy(&mut self, va: VirtAddr, size: u64) -> Result<u64, MapError> {
        let (_, result) = self.clear_range(va, size, true)?;
        self.tlb.sync_tables();
        result
    }

    /// The walk both unmaps share: the batch of TLB work it leaves, and the bytes it unmapped.
    fn clear_range(
        &mut self,
        va: VirtAddr,
        size: u64,
        lazy: bool,
    ) -> Result<(Batch, Result<u64, MapError>), MapError> {
        let (start, end) = self.check_range(va, size)?;
        let mut batch = Batch::new();
        batch.lazy = lazy;
        let root = self.root;
        let mut unmapped = 0;
        let result = self.unmap_in(
            root,
            0,
            self.half.base(),
            start,
            end,
            &mut batch,
            &mut unmapped,
        );
        Ok((batch, result.map(|_| unmapped)))
    }

    #[allow(clippy::too_many_arguments)]
    fn unmap_in(
        &mut self,
        table: PhysAddr,
        level: u8,
        table_va: u64,
        start: u64,
        end: u64,
        batch: &mut Batch,
        unmapped: &mut u64,
    ) -> Result<bool, MapError> {
        let size = desc::level_size(level);
        let (first, last) = Self::span(level, table_va, start, end);
        for i in first..=last {
            let e_va = table_va + i as u64 * size;
            let e = self.read(table, i);
            if !desc::is_valid(e) {
                continue;
            }
            let covered = start <= e_va && e_va + (size - 1) < end;
            if desc::is_table(e, level) {
                let child = PhysAddr::new(desc::addr(e));
                if self.unmap_in(child, level + 1, e_va, start, end, batch, unmapped)?
                    && !batch.lazy
                {
                    self.write(table, i, 0);
                    self.invalidate(batch, e_va);
                    self.defer_free(batch, child);
                }
            } else if covered {
                self.write(table, i, 0);
                self.invalidate(batch, e_va);
                *unmapped += size;
            } else {
                let child = self.split(table, i, level, e_va)?;
                self.unmap_in(child, level + 1, e_va, start, end, batch, unmapped)?;
            }
        }
        Ok(level > 0 && self.is_empty(table))
    }

    /// Frees empty tables in the range without touching any mapping.
    fn prune(
        &mut self,
        table: PhysAddr,
        level: u8,
        table_va: u64,
        start: u64,
        end: u64,
        batch: &mut Batch,
    ) -> bool {
        if level < 3 {
            let size = desc::level_size(level);
            let (first, last) = Self::span(level, table_va, start, end);
            for i in first..=last {
                let e = self.read(table, i);
                if desc::is_table(e, level) {
                    let child = PhysAddr::new(desc::addr(e));
                    let e_va = table_va + i as u64 * size;
                    if self.prune(child, level + 1, e_va, start, end, batch) {
                        self.write(table, i, 0);
                        self.invalidate(batch, e_va);
                        self.defer_free(batch, child);
                    }
                }
            }
        }
        level > 0 && self.is_empty(table)
    }

    /// The indexes of `table` (at `level`, covering from `table_va`) that overlap [start, end).
    fn span(level: u8, table_va: u64, start: u64, end: u64) -> (usize, usize) {
        let size = desc::level_size(level);
        let table_last = table_va + (512 * size - 1);
        let lo = start.max(table_va);
        let hi = (end - 1).min(table_last);
        (
            ((lo - table_va) / size) as usize,
            ((hi - table_va) / size) as usize,
        )
    }

    /// Every descriptor zero. An invalid descriptor that is not zero holds a software entry (a
    /// swapped-out page's swap entry), the only record of that page: its table must stay.
    fn is_empty(&self, table: PhysAddr) -> bool {
        let p = self.mem.table_ptr(table);
        // SAFETY: as in `read`, for each of the table's 512 entries.
        (0..512).all(|i| unsafe { p.add(i).read_volatile() } == 0)
    }

    /// Replaces the block at `table[index]` by a table of the same mappings one level down,
    /// break-before-make: invalid, TLB invalidated, then the new table.
    // Cold (a block broken up by a partial unmap or protect) and out of line: inlined into the
    // recursive `unmap_in` it costs every level's frame more saved registers on the hot path.
    #[cold]
    #[inline(never)]
    fn split(
        &mut self,
        table: PhysAddr,
        index: usize,
        level: u8,
        block_va: u64,
    ) -> Result<PhysAddr, MapError> {
        let old = self.read(table, index);
        let attrs = desc::attrs_of(old);
        let child_level = level + 1;
        let child_size = desc::level_size(child_level);
        let base = desc::addr(old) & !(desc::level_size(level) - 1);
        let new = self.alloc()?;
        for i in 0..512 {
            self.write(
                new,
                i,
                desc::leaf(base + i as u64 * child_size, attrs, child_level),
            );
        }
        self.write(table, index, 0);
        self.tlb.sync_tables();
        self.tlb.flush_va(VirtAddr::new(block_va));
        self.write(table, index, desc::table(new.as_u64()));
        self.tlb.sync_tables();
        Ok(new)
    }

    /// Changes the attributes of a wholly mapped range, splitting blocks at its ends. A change
    /// of memory type goes through break-before-make. Fails without changes if there is a hole.
    pub fn protect(&mut self, va: VirtAddr, size: u64, attrs: Attrs) -> Result<(), MapError> {
        let (start, end) = self.check_range(va, size)?;
        let mut v = start;
        while v < end {
            let t = self
                .translate(VirtAddr::new(v))
                .ok_or(MapError::NotMapped {
                    va: VirtAddr::new(v),
                })?;
            let leaf_size = desc::level_size(t.level);
            v = (v & !(leaf_size - 1)) + leaf_size;
        }
        let mut batch = Batch::new();
        let root = self.root;
        let result = self.protect_in(root, 0, self.half.base(), start, end, attrs, &mut batch);
        self.finish(batch);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn protect_in(
        &mut self,
        table: PhysAddr,
        level: u8,
        table_va: u64,
        start: u64,
        end: u64,
        attrs: Attrs,
        batch: &mut Batch,
    ) -> Result<(), MapError> {
        let size = desc::level_size(level);
        let (first, last) = Self::span(level, table_va, start, end);
        for i in first..=last {
            let e_va = table_va + i as u64 * size;
            let e = self.read(table, i);
            let covered = start <= e_va && e_va + (size - 1) < end;
            if desc::is_table(e, level) {
                self.protect_in(
                    PhysAddr::new(desc::addr(e)),
                    level + 1,
                    e_va,
                    start,
                    end,
                    attrs,
                    batch,
                )?;
            } else if desc::is_leaf(e, level) && covered {
                let new = desc::leaf(desc::addr(e), attrs, level);
                if new == e {
                    continue;
                }
                if desc::attrs_of(e).mem != attrs.mem {
                    self.write(table, i, 0);
                    self.tlb.sync_tables();
                    self.tlb.flush_va(VirtAddr::new(e_va));
                    self.write(table, i, new);
                } else {
                    // Permissions only: no break-before-make, but the new entry must be written
                    // before the TLB is told to forget the old one.
                    self.write(table, i, new);
                    self.invalidate(batch, e_va);
                }
            } else if desc::is_leaf(e, level) && desc::attrs_of(e) != attrs {
                let child = self.split(table, i, level, e_va)?;
                self.protect_in(child, level + 1, e_va, start, end, attrs, batch)?;
            }
        }
        Ok(())
    }

    /// Starts invalidating the entry just changed at `va`: the change is published first (DSB
    /// ISHST), so no walk after the TLBI can see the old entry; the completion wait is batched.
    fn invalidate(&mut self, batch: &mut Batch, va: u64) {
        if batch.overflow || batch.lazy {
            return;
        }
        self.tlb.sync_tables();
        if batch.issued < self.flush_all_threshold {
            self.tlb.invalidate_va(VirtAddr::new(va));
            batch.issued += 1;
        } else {
            batch.overflow = true;
        }
    }

    /// Queues an unlinked table for freeing once the TLB has forgotten it.
    fn defer_free(&mut self, batch: &mut Batch, table: PhysAddr) {
        self.last_l3.set((0, PhysAddr::new(0)));
        if batch.n_freed == BATCH_TABLES {
            // Make room: wait for what was issued, then release those tables.
            self.tlb.sync_tables();
            if batch.overflow {
                self.tlb.invalidate_all();
            }
            self.tlb.wait();
            self.release(batch);
        }
        batch.freed[batch.n_freed] = table;
        batch.n_freed += 1;
    }

    fn release(&mut self, batch: &mut Batch) {
        for i in 0..batch.n_freed {
            self.mem.free_table(batch.freed[i]);
            self.tables_in_use -= 1;
        }
        batch.n_freed = 0;
    }

    fn finish(&mut self, mut batch: Batch) {
        self.tlb.sync_tables();
        if batch.overflow {
            self.tlb.invalidate_all();
        }
        if batch.issued > 0 || batch.overflow {
            self.tlb.wait();
        }
        // Only now can no walker hold the freed tables.
        self.release(&mut batch);
    }

    /// One full TLB invalidation (the end of a lazy purge).
    pub fn flush_all_now(&mut self) {
        self.tlb.sync_tables();
        self.tlb.flush_all();
    }

    /// Where the level-3 descriptor for `va` lives; `None` where no level-3 table exists (a
    /// block mapping, or nothing mapped near `va`).
    fn pte_slot(&self, va: VirtAddr) -> Option<(PhysAddr, usize)> {
        let v = va.as_u64();
        if !self.half.contains(v, v.checked_add(1)?) {
            return None;
        }
        if let Some(table) = self.cached_l3(v) {
            return Some((table, desc::index(v, 3)));
        }
        let mut table = self.root;
        for level in 0..3u8 {
            let e = self.read(table, desc::index(v, level));
            if !desc::is_table(e, level) {
                return None;
            }
            table = PhysAddr::new(desc::addr(e));
        }
        self.last_l3.set(((v >> 21) + 1, table));
        Some((table, desc::index(v, 3)))
    }

    /// The raw level-3 descriptor for `va`, valid or not (an invalid one may hold a swap entry);
    /// `None` where there is no level-3 table.
    pub fn pte(&self, va: VirtAddr) -> Option<u64> {
        self.pte_slot(va).map(|(t, i)| self.read(t, i))
    }

    /// Replaces the level-3 descriptor for `va` by `new` and returns the old one. A valid old
    /// descriptor is invalidated in the TLB after the write, so no CPU keeps using it. Only for
    /// changes that need no break-before-make: to or from an invalid descriptor, or the access
    /// flag of a page that stays where it is.
    pub fn set_pte(&mut self, va: VirtAddr, new: u64) -> Result<u64, MapError> {
        let (t, i) = self.pte_slot(va).ok_or(MapError::NotMapped { va })?;
        let old = self.read(t, i);
        debug_assert!(
            !desc::is_valid(old) || !desc::is_valid(new) || desc::addr(old) == desc::addr(new),
            "set_pte would move a live page without break-before-make"
        );
        self.write(t, i, new);
        self.tlb.sync_tables();
        if desc::is_valid(old) {
            self.tlb.flush_va(va);
        }
        Ok(old)
    }

    /// The software walk: where `va` leads, if anywhere.
    pub fn translate(&self, va: VirtAddr) -> Option<Translation> {
        let v = va.as_u64();
        if !self.half.contains(v, v.checked_add(1)?) {
            return None;
        }
        let mut table = self.root;
        for level in 0..=3u8 {
            let e = self.read(table, desc::index(v, level));
            if desc::is_leaf(e, level) {
                let size = desc::level_size(level);
                let pa = (desc::addr(e) & !(size - 1)) + (v & (size - 1));
                return Some(Translation {
                    pa: PhysAddr::new(pa),
                    attrs: desc::attrs_of(e),
                    level,
                });
            }
            if !desc::is_table(e, level) {
                return None;
            }
            table = PhysAddr::new(desc::addr(e));
        }
        None
    }

    /// The descriptors a walk of `va` reads, level by level (for fault reports; no allocation,
    /// as a report may run inside an allocator).
    pub fn walk(&self, va: VirtAddr) -> Walk {
        let v = va.as_u64();
        let mut out = Walk {
            entries: [(0, 0); 4],
            len: 0,
        };
        let mut table = self.root;
        for level in 0..=3u8 {
            let e = self.read(table, desc::index(v, level));
            out.entries[out.len] = (level, e);
            out.len += 1;
            if !desc::is_table(e, level) {
                break;
            }
            table = PhysAddr::new(desc::addr(e));
        }
        out
    }

    /// Calls `f(va, translation, size)` for every leaf mapping in the tree, in address order.
    pub fn for_each_mapping(&self, mut f: impl FnMut(VirtAddr, Translation, u64)) {
        self.visit(self.root, 0, self.half.base(), &mut f);
    }

    fn visit(
        &self,
        table: PhysAddr,
        level: u8,
        table_va: u64,
        f: &mut impl FnMut(VirtAddr, Translation, u64),
    ) {
        let size = desc::level_size(level);
        for i in 0..512 {
            let e = self.read(table, i);
            let va = table_va.wrapping_add(i as u64 * size);
            if desc::is_table(e, level) {
                self.visit(PhysAddr::new(desc::addr(e)), level + 1, va, f);
            } else if desc::is_leaf(e, level) {
                let t = Translation {
                    pa: PhysAddr::new(desc::addr(e)),
                    attrs: desc::attrs_of(e),
                    level,
                };
                f(VirtAddr::new(va), t, size);
            }
        }
    }
}
