//! The DMA API: a device's view of memory (bus addresses through its `dma-ranges`, a mask, whether
//! it snoops the caches), coherent buffers (`dma_alloc_coherent`, a pool for small ones), and
//! streaming mappings (`dma_map_single` with the direction in the type, `sync_for_cpu` /
//! `sync_for_device`, bounce buffers when a page is out of reach). Every mapping checks in
//! software that the bus address is inside the device's reach: QEMU does not model the Pi's DMA
//! limits, so only this check catches the bug before a real board corrupts memory.
//! The address arithmetic is portable (tested on the host); the rest is kernel only. Cache
//! maintenance instructions stay in `arch::aarch64::cache`.
// A named exception to the crate's `deny(unsafe_code)`: memory shared with devices: volatile access and cache maintenance on raw spans.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use crate::addr::{DmaRange, PhysAddr};

/// An address as a device puts it on its bus.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DmaAddr(u64);

impl DmaAddr {
    pub const fn new(v: u64) -> DmaAddr {
        DmaAddr(v)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmaAddr({:#x})", self.0)
    }
}

impl fmt::Display for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// The memory is outside every window, or past the device's mask.
    OutOfReach {
        pa: PhysAddr,
        len: usize,
        device: &'static str,
    },
    /// No memory the device can reach is free.
    NoMemory {
        size: usize,
        device: &'static str,
    },
    /// The buffer is not in the linear map (map vmalloc memory page by page).
    NotLinear(u64),
    ZeroSize,
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaError::OutOfReach { pa, len, device } => {
                write!(f, "DMA: {pa} + {len:#x} is out of {device}'s reach")
            }
            DmaError::NoMemory { size, device } => {
                write!(f, "DMA: no memory {device} can reach for {size:#x} bytes")
            }
            DmaError::NotLinear(va) => write!(f, "DMA: buffer {va:#x} is not in the linear map"),
            DmaError::ZeroSize => write!(f, "DMA: zero-length mapping"),
        }
    }
}

/// A device's view of memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmaDevice {
    pub name: &'static str,
    /// Empty: bus addresses are CPU physical addresses.
    pub ranges: Vec<DmaRange>,
    /// The highest bus address the device can drive (`DMA_BIT_MASK(n)`).
    pub mask: u64,
    /// The device snoops the CPU caches (`dma-coherent`): no cache maintenance needed.
    pub coherent: bool,
}

/// `DMA_BIT_MASK(bits)`.
pub const fn dma_bit_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

impl DmaDevice {
    pub fn new(name: &'static str, ranges: Vec<DmaRange>, mask: u64, coherent: bool) -> DmaDevice {
        DmaDevice {
            name,
            ranges,
            mask,
            coherent,
        }
    }

    /// The bus address of CPU `[pa, pa + len)`, if the device can reach all of it.
    pub fn phys_to_dma(&self, pa: PhysAddr, len: usize) -> Result<DmaAddr, DmaError> {
        let out = DmaError::OutOfReach {
            pa,
            len,
            device: self.name,
        };
        if len == 0 {
            return Err(DmaError::ZeroSize);
        }
        let last = pa.as_u64().checked_add(len as u64 - 1).ok_or(out)?;
        let bus = if self.ranges.is_empty() {
            pa.as_u64()
        } else {
            let r = self
                .ranges
                .iter()
                .find(|r| pa >= r.cpu && last - r.cpu.as_u64() < r.size)
                .ok_or(out)?;
            r.bus + (pa.as_u64() - r.cpu.as_u64())
        };
        let bus_last = bus.checked_add(len as u64 - 1).ok_or(out)?;
        if bus_last > self.mask {
            return Err(out);
        }
        Ok(DmaAddr(bus))
    }

    /// The CPU address behind a bus address.
    pub fn dma_to_phys(&self, dma: DmaAddr) -> Option<PhysAddr> {
        if self.ranges.is_empty() {
            return Some(PhysAddr::new(dma.0));
        }
        self.ranges
            .iter()
            .find(|r| dma.0 >= r.bus && dma.0 - r.bus < r.size)
            .map(|r| PhysAddr::new(r.cpu.as_u64() + (dma.0 - r.bus)))
    }

    /// One past the highest CPU address the device reaches (for choosing where to allocate).
    pub fn cpu_limit(&self) -> PhysAddr {
        if self.ranges.is_empty() {
            return PhysAddr::new(self.mask.saturating_add(1).max(self.mask));
        }
        let end = self
            .ranges
            .iter()
            .filter(|r| r.bus <= self.mask)
            .map(|r| {
                let usable = r.size.min(self.mask - r.bus + 1);
                r.cpu.as_u64() as u128 + usable as u128
            })
            .max()
            .unwrap_or(0);
        PhysAddr::new(end.min(u64::MAX as u128) as u64)
    }
}

mod sealed {
    /// Only this module's directions and buffer borrows: a direction whose flags disagreed with
    /// its borrow (a shared one for a device that writes) would let a mapping write through `&`.
    pub trait Sealed {}
}

/// Where data goes: fixed in the type, so a mapping cannot be synced the wrong way. Sealed.
pub trait Direction: sealed::Sealed {
    /// The device reads the buffer.
    const TO_DEVICE: bool;
    /// The device writes the buffer.
    const FROM_DEVICE: bool;
    /// What a mapping borrows for its life: `&[u8]` when the device only reads, `&mut [u8]`
    /// when it may write.
    type Buf<'a>: DmaBuf<'a>;
}

pub struct ToDevice;
pub struct FromDevice;
pub struct Bidirectional;

impl sealed::Sealed for ToDevice {}
impl sealed::Sealed for FromDevice {}
impl sealed::Sealed for Bidirectional {}

impl Direction for ToDevice {
    const TO_DEVICE: bool = true;
    const FROM_DEVICE: bool = false;
    type Buf<'a> = &'a [u8];
}
impl Direction for FromDevice {
    const TO_DEVICE: bool = false;
    const FROM_DEVICE: bool = true;
    type Buf<'a> = &'a mut [u8];
}
impl Direction for Bidirectional {
    const TO_DEVICE: bool = true;
    const FROM_DEVICE: bool = true;
    type Buf<'a> = &'a mut [u8];
}

/// A borrowed buffer a streaming mapping can hold: `&[u8]` or `&mut [u8]` (the default an empty
/// one, for splitting buffers in place). Sealed.
pub trait DmaBuf<'a>: sealed::Sealed + Sized + Default {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first byte's address (for the page arithmetic of splitting a request).
    fn addr(&self) -> usize;
    /// The buffer cut in two at `mid`, each part keeping the borrow.
    fn split_at(self, mid: usize) -> (Self, Self);
    /// The buffer as a pointer the mapping copies into only if the borrow is exclusive (the
    /// direction's `FROM_DEVICE`, which only `&mut [u8]` directions set).
    #[doc(hidden)]
    fn as_raw(&mut self) -> *mut u8;
}

impl sealed::Sealed for &[u8] {}
impl sealed::Sealed for &mut [u8] {}

impl<'a> DmaBuf<'a> for &'a [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn addr(&self) -> usize {
        self.as_ptr() as usize
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        <[u8]>::split_at(self, mid)
    }
    fn as_raw(&mut self) -> *mut u8 {
        self.as_ptr().cast_mut()
    }
}

impl<'a> DmaBuf<'a> for &'a mut [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn addr(&self) -> usize {
        self.as_ptr() as usize
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        self.split_at_mut(mid)
    }
    fn as_raw(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use core::cell::Cell;
    use core::marker::PhantomData;

    use super::*;
    use crate::addr::{VirtAddr, PAGE_SIZE};
    use crate::cpu::{dma_cache_op, CacheOp};
    use crate::gfp::Gfp;
    use crate::init::PAGES;
    use crate::layout::{phys_to_virt, virt_to_phys};
    use crate::pgtable::{Attrs, MemType};
    use crate::vmap;

    /// Cache maintenance done for streaming mappings, by kind (clean, invalidate, both): the
    /// self-tests check that each direction did what it must.
    pub static CACHE_OPS: [core::sync::atomic::AtomicU64; 3] =
        [const { core::sync::atomic::AtomicU64::new(0) }; 3];

    fn cache_op(op: CacheOp, start: u64, len: u64) {
        let i = match op {
            CacheOp::Clean => 0,
            CacheOp::Invalidate => 1,
            CacheOp::CleanInvalidate => 2,
        };
        CACHE_OPS[i].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: callers pass memory owned by a mapping; see each call site for why the
        // operation loses nothing.
        unsafe { dma_cache_op(op, start, len) };
    }

    fn order_for(size: usize) -> u8 {
        (size.div_ceil(PAGE_SIZE as usize))
            .next_power_of_two()
            .trailing_zeros() as u8
    }

    /// Pages the device reaches, zeroed.
    fn alloc_reachable(dev: &DmaDevice, order: u8) -> Result<PhysAddr, DmaError> {
        let size = (PAGE_SIZE as usize) << order;
        let limit = dev.cpu_limit();
        PAGES
            .alloc_pages_below(Gfp::KERNEL | Gfp::ZERO | Gfp::NOWARN, order, limit)
            .map_err(|_| DmaError::NoMemory {
                size,
                device: dev.name,
            })
    }

    /// Plain data that CPU and device share through coherent memory: no padding bytes, and
    /// every bit pattern a value, so whatever the device wrote reads as one and writing one
    /// leaves no uninitialised byte behind. Integers are; a `#[repr(C)]` struct of them with no
    /// padding (a ring descriptor, a request header) may say so.
    ///
    /// # Safety
    /// Implement only for types with no padding whose every bit pattern is a valid value.
    pub unsafe trait DmaPod: Copy {}

    /// A `T` inside a [`DmaCoherent`] buffer, checked once to lie inside it and be aligned
    /// ([`DmaCoherent::cell`]); reading it is one volatile load.
    pub struct DmaCell<'a, T: DmaPod> {
        ptr: *mut T,
        _buffer: core::marker::PhantomData<&'a DmaCoherent>,
    }

    impl<T: DmaPod> DmaCell<'_, T> {
        /// Reads the value (volatile: the device may have written it).
        #[inline(always)]
        pub fn read(&self) -> T {
            // SAFETY: `DmaCoherent::cell` checked that the `T` lies inside the buffer and is
            // aligned; the cell borrows the buffer, which keeps it mapped; `T: DmaPod` makes any
            // bytes a value.
            unsafe { self.ptr.read_volatile() }
        }
    }

    macro_rules! dma_pod_integers {
        ($($t:ty),*) => {
            // SAFETY: integers have no padding and every bit pattern is a value.
            $(unsafe impl DmaPod for $t {})*
        };
    }
    dma_pod_integers!(u8, u16, u32, u64);

    /// A coherent buffer: CPU and device see the same bytes without maintenance. Freed on drop.
    /// The CPU side is reached only through the checked volatile accessors (`read`, `write`,
    /// `fill`): the device may change any byte at any time, so no Rust reference to the memory
    /// is ever handed out.
    pub struct DmaCoherent {
        /// The CPU's address of the buffer: the linear map, or `remap`'s.
        cpu: VirtAddr,
        dma: DmaAddr,
        pa: PhysAddr,
        size: usize,
        order: u8,
        /// The Normal non-cacheable mapping a non-coherent device's buffer is used through.
        remap: Option<vmap::Vmapping>,
        /// Not `Sync`: the accessors take `&self`, like a `Cell`'s, so two CPUs must not share
        /// one buffer without a lock. (`Send` it is: plain memory owned by this value.)
        _not_sync: PhantomData<Cell<()>>,
    }

    impl DmaCoherent {
        /// The CPU's address of the buffer (for reports and alignment checks; access it through
        /// the accessors).
        pub fn cpu_addr(&self) -> VirtAddr {
            self.cpu
        }

        /// The address of a `T` at `offset`, checked to lie inside the buffer and be aligned.
        #[inline(always)]
        fn at<T>(&self, offset: usize) -> *mut T {
            let size = core::mem::size_of::<T>();
            assert!(
                offset.checked_add(size).is_some_and(|end| end <= self.size)
                    && offset.is_multiple_of(core::mem::align_of::<T>()),
                "DMA buffer access of {size} bytes at {offset:#x}: outside the {:#x} bytes or misaligned",
                self.size
            );
            (self.cpu.as_u64() as usize + offset) as *mut T
        }

        /// Reads the `T` at `offset` (volatile: the device may have written it). Panics if it
        /// does not lie inside the buffer or is misaligned.
        #[inline(always)]
        pub fn read<T: DmaPod>(&self, offset: usize) -> T {
            let p = self.at::<T>(offset);
            // SAFETY: `at` checked that the `T` lies inside the buffer, which this value owns
            // and keeps mapped, and is aligned; `T: DmaPod` makes any bytes a value.
            unsafe { p.read_volatile() }
        }

        /// The `T` at `offset` as a cell to read again and again with the check made once (a
        /// device's index that a driver polls). Panics as `read`.
        #[inline(always)]
        pub fn cell<T: DmaPod>(&self, offset: usize) -> DmaCell<'_, T> {
            DmaCell {
                ptr: self.at::<T>(offset),
                _buffer: core::marker::PhantomData,
            }
        }

        /// Writes `value` at `offset` (volatile: the device reads it). Panics as `read`.
        #[inline(always)]
        pub fn write<T: DmaPod>(&self, offset: usize, value: T) {
            let p = self.at::<T>(offset);
            // SAFETY: as `read`; `T: DmaPod` leaves no uninitialised byte in the buffer.
            unsafe { p.write_volatile(value) }
        }

        /// Sets `len` bytes from `offset` to `byte`. Panics if the range leaves the buffer.
        pub fn fill(&self, offset: usize, len: usize, byte: u8) {
            assert!(
                offset.checked_add(len).is_some_and(|end| end <= self.size),
                "DMA buffer fill of {len:#x} bytes at {offset:#x}: outside the {:#x} bytes",
                self.size
            );
            // SAFETY: the range is inside the buffer, which this value owns and keeps mapped.
            unsafe { ((self.cpu.as_u64() as usize + offset) as *mut u8).write_bytes(byte, len) }
        }

        pub fn dma_addr(&self) -> DmaAddr {
            self.dma
        }
        pub fn phys(&self) -> PhysAddr {
            self.pa
        }
        pub fn size(&self) -> usize {
            self.size
        }
        /// Whether the CPU sees it non-cacheable (for a device that does not snoop caches).
        pub fn is_uncached(&self) -> bool {
            self.remap.is_some()
        }
    }

    impl Drop for DmaCoherent {
        fn drop(&mut self) {
            // The non-cacheable mapping goes before the pages it maps.
            drop(self.remap.take());
            let _ = PAGES.free_pages(self.pa, self.order);
        }
    }

    /// `dma_alloc_coherent`: zeroed memory the device reaches. For a device that does not snoop
    /// the caches the linear map's cacheable alias is cleaned and invalidated first and the CPU
    /// uses a Normal non-cacheable mapping.
    pub fn dma_alloc_coherent(dev: &DmaDevice, size: usize) -> Result<DmaCoherent, DmaError> {
        if size == 0 {
            return Err(DmaError::ZeroSize);
        }
        let order = order_for(size);
        let pa = alloc_reachable(dev, order)?;
        let bytes = (PAGE_SIZE as usize) << order;
        let dma = match dev.phys_to_dma(pa, bytes) {
            Ok(d) => d,
            Err(e) => {
                let _ = PAGES.free_pages(pa, order);
                return Err(e);
            }
        };
        let linear = phys_to_virt(pa).as_u64();
        if dev.coherent {
            return Ok(DmaCoherent {
                cpu: VirtAddr::new(linear),
                dma,
                pa,
                size,
                order,
                remap: None,
                _not_sync: PhantomData,
            });
        }
        // No dirty cacheable alias may later be written back over what the device wrote.
        // SAFETY: the pages are ours and hold only the zeroes just written.
        unsafe { dma_cache_op(CacheOp::CleanInvalidate, linear, bytes as u64) };
        let pages: Vec<PhysAddr> = (0..1u64 << order)
            .map(|i| PhysAddr::new(pa.as_u64() + i * PAGE_SIZE))
            .collect();
        let attrs = Attrs::KERNEL_RW.with_mem(MemType::NormalNc);
        match vmap::Vmapping::new(&pages, attrs) {
            Ok(remap) => Ok(DmaCoherent {
                cpu: remap.addr(),
                dma,
                pa,
                size,
                order,
                remap: Some(remap),
                _not_sync: PhantomData,
            }),
            Err(_) => {
                let _ = PAGES.free_pages(pa, order);
                Err(DmaError::NoMemory {
                    size,
                    device: dev.name,
                })
            }
        }
    }

    /// A pool of small coherent blocks (descriptor rings, request headers): Linux's `dma_pool`.
    pub struct DmaPool {
        block: usize,
        chunks: Vec<DmaCoherent>,
        free: Vec<(usize, usize)>,
        dev: DmaDevice,
    }

    /// A block from a `DmaPool`; give it back with `DmaPool::free` (not `Copy`: one owner).
    #[derive(Debug, PartialEq, Eq)]
    pub struct PoolBlock {
        /// The CPU's address of the block (for reports; the pool's chunk owns the memory).
        pub cpu: VirtAddr,
        pub dma: DmaAddr,
        chunk: usize,
        offset: usize,
    }

    impl PoolBlock {
        /// A second handle to the same block, for the test that a double free is refused.
        #[doc(hidden)]
        pub fn forge_for_test(b: &PoolBlock) -> PoolBlock {
            PoolBlock {
                cpu: b.cpu,
                dma: b.dma,
                chunk: b.chunk,
                offset: b.offset,
            }
        }
    }

    impl DmaPool {
        /// Blocks of `size` bytes aligned to `align` (a power of two).
        pub fn new(dev: &DmaDevice, size: usize, align: usize) -> DmaPool {
            let block = size
                .max(1)
                .next_multiple_of(align.max(8).next_power_of_two());
            DmaPool {
                block,
                chunks: Vec::new(),
                free: Vec::new(),
                dev: dev.clone(),
            }
        }

        /// Bytes of coherent memory each refill takes (at least one block).
        fn chunk_bytes(&self) -> usize {
            self.block.max(PAGE_SIZE as usize)
        }

        pub fn alloc(&mut self) -> Result<PoolBlock, DmaError> {
            if self.free.is_empty() {
                let chunk = dma_alloc_coherent(&self.dev, self.chunk_bytes())?;
                let index = self.chunks.len();
                let n = chunk.size() / self.block;
                self.chunks.push(chunk);
                self.free
                    .extend((0..n).rev().map(|i| (index, i * self.block)));
            }
            let (chunk, offset) = self.free.pop().ok_or(DmaError::NoMemory {
                size: self.block,
                device: self.dev.name,
            })?;
            let c = &self.chunks[chunk];
            // Zeroed for its new owner.
            c.fill(offset, self.block, 0);
            Ok(PoolBlock {
                cpu: VirtAddr::new(c.cpu_addr().as_u64() + offset as u64),
                dma: DmaAddr(c.dma_addr().as_u64() + offset as u64),
                chunk,
                offset,
            })
        }

        /// Gives a block back. A block that is not this pool's, or is free already, is refused
        /// (`false`) rather than handed to two owners.
        pub fn free(&mut self, block: PoolBlock) -> bool {
            let valid = self.chunks.get(block.chunk).is_some_and(|c| {
                block.offset.is_multiple_of(self.block)
                    && block.offset + self.block <= c.size()
                    && c.dma_addr().as_u64() + block.offset as u64 == block.dma.as_u64()
            });
            if !valid || self.free.contains(&(block.chunk, block.offset)) {
                return false;
            }
            self.free.push((block.chunk, block.offset));
            true
        }

        pub fn block_size(&self) -> usize {
            self.block
        }
    }

    /// A streaming mapping of a buffer for one device and one direction. It borrows the buffer
    /// (`D::Buf<'a>`: shared when the device only reads, exclusive when it writes) for its whole
    /// life, so the CPU cannot touch what the device owns. Unmapped on drop (with the CPU's view
    /// synced first when the device may have written).
    pub struct DmaMapping<'a, D: Direction> {
        dma: DmaAddr,
        /// The borrowed buffer's first byte; written through only when `D::FROM_DEVICE`, whose
        /// borrow is exclusive.
        buf: *mut u8,
        len: usize,
        coherent: bool,
        /// A bounce buffer (pages the device reaches) standing in for an unreachable buffer.
        bounce: Option<(PhysAddr, u8)>,
        _borrow: PhantomData<(D, D::Buf<'a>)>,
    }

    impl<D: Direction> DmaMapping<'_, D> {
        pub fn dma_addr(&self) -> DmaAddr {
            self.dma
        }
        pub fn len(&self) -> usize {
            self.len
        }
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
        pub fn is_bounced(&self) -> bool {
            self.bounce.is_some()
        }

        fn device_side(&self) -> *mut u8 {
            match self.bounce {
                Some((pa, _)) => phys_to_virt(pa).as_u64() as *mut u8,
                None => self.buf,
            }
        }

        /// Before the CPU reads what the device wrote: invalidate stale lines; copy back from a
        /// bounce buffer.
        pub fn sync_for_cpu(&mut self) {
            if !D::FROM_DEVICE {
                return;
            }
            let side = self.device_side() as u64;
            if !self.coherent {
                // The device side is ours for the mapping's life, and whole cache lines (an
                // unaligned buffer of a non-coherent device is bounced): invalidating loses
                // nothing the CPU wrote.
                cache_op(CacheOp::Invalidate, side, self.len as u64);
            }
            if self.bounce.is_some() {
                // SAFETY: both buffers are `len` bytes and distinct; the bounce pages are ours,
                // and `buf` is exclusively borrowed (`FROM_DEVICE` directions borrow `&mut`).
                unsafe { core::ptr::copy_nonoverlapping(side as *const u8, self.buf, self.len) };
            }
        }

        /// The bytes as the device sees them (the bounce buffer, if any): a test hook, standing
        /// in for the device's reads.
        #[doc(hidden)]
        pub fn device_view_for_test(&self) -> &[u8] {
            // SAFETY: `len` bytes, mapped, either the bounce pages this value owns or the
            // borrowed buffer; nothing writes them while `self` is borrowed (no device works on
            // a mapping a test holds).
            unsafe { core::slice::from_raw_parts(self.device_side(), self.len) }
        }

        /// Before the device reads (or writes) the buffer: copy into a bounce buffer; clean the
        /// CPU's writes out of the caches (and for reads, write back and drop partial lines).
        pub fn sync_for_device(&mut self) {
            let side = self.device_side();
            if self.bounce.is_some() && D::TO_DEVICE {
                // SAFETY: both buffers are `len` bytes and distinct; reading the borrowed buffer
                // is allowed under either borrow, and the bounce pages are ours.
                unsafe { core::ptr::copy_nonoverlapping(self.buf, side, self.len) };
            }
            if !self.coherent {
                let op = if D::FROM_DEVICE {
                    CacheOp::CleanInvalidate
                } else {
                    CacheOp::Clean
                };
                // Cleaning loses nothing; the invalidate half only drops lines just written back.
                cache_op(op, side as u64, self.len as u64);
            }
        }
    }

    impl DmaMapping<'_, FromDevice> {
        /// Writes the device side as the device would (test hook), into memory past the CPU's
        /// caches: what the CPU sees after `sync_for_cpu` or the unmap.
        #[doc(hidden)]
        pub fn device_fill_for_test(&mut self, byte: u8) {
            let side = self.device_side();
            // SAFETY: as `device_view_for_test`; the buffer is borrowed exclusively.
            unsafe { side.write_bytes(byte, self.len) };
            if !self.coherent {
                // A device writes memory, not the CPU's caches: the bytes go there.
                cache_op(CacheOp::Clean, side as u64, self.len as u64);
            }
        }
    }

    impl<D: Direction> Drop for DmaMapping<'_, D> {
        fn drop(&mut self) {
            self.sync_for_cpu();
            if let Some((pa, order)) = self.bounce {
                let _ = PAGES.free_pages(pa, order);
            }
        }
    }

    /// `dma_map_single`: maps `buf` (linear-map memory: kmalloc, pages) for `dev`, bouncing
    /// through reachable pages if the device cannot reach it, and syncs for the device. The
    /// mapping borrows `buf` until it is dropped: its syncs copy into it and maintain its cache
    /// lines, so the CPU must not use it meanwhile, and the borrow checker sees to that.
    pub fn dma_map_single<'a, D: Direction>(
        dev: &DmaDevice,
        mut buf: D::Buf<'a>,
    ) -> Result<DmaMapping<'a, D>, DmaError> {
        let len = buf.len();
        if len == 0 {
            return Err(DmaError::ZeroSize);
        }
        let buf = buf.as_raw();
        let pa = virt_to_phys(VirtAddr::new(buf as u64)).ok_or(DmaError::NotLinear(buf as u64))?;
        // A device that does not snoop may only write whole cache lines of ours: invalidating a
        // line it shares with other data would lose the CPU's writes there. Such buffers bounce
        // (as Linux bounces small kmalloc buffers for non-coherent DMA).
        let line = crate::cpu::dma_alignment() as usize;
        let partial_lines = !dev.coherent
            && D::FROM_DEVICE
            && (!(buf as usize).is_multiple_of(line) || !len.is_multiple_of(line));
        let reach = if partial_lines {
            Err(DmaError::OutOfReach {
                pa,
                len,
                device: dev.name,
            })
        } else {
            dev.phys_to_dma(pa, len)
        };
        let (dma, bounce) = match reach {
            Ok(dma) => (dma, None),
            Err(DmaError::OutOfReach { .. }) => {
                let order = order_for(len);
                let bpa = alloc_reachable(dev, order)?;
                match dev.phys_to_dma(bpa, len) {
                    Ok(dma) => (dma, Some((bpa, order))),
                    Err(e) => {
                        let _ = PAGES.free_pages(bpa, order);
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let mut m = DmaMapping {
            dma,
            buf,
            len,
            coherent: dev.coherent,
            bounce,
            _borrow: PhantomData,
        };
        if let Some((bpa, _)) = m.bounce {
            // The bounce buffer starts as a copy of the buffer in every direction: a device that
            // writes less than all of it (a short read, an error) must not make the copy back
            // replace the caller's bytes with stale ones (the swiotlb lesson of CVE-2022-0854).
            // SAFETY: both are `len` bytes and distinct; the buffer is borrowed (reading it is
            // allowed under either borrow) and the bounce pages are ours.
            unsafe {
                core::ptr::copy_nonoverlapping(buf, phys_to_virt(bpa).as_u64() as *mut u8, len)
            };
        }
        m.sync_for_device();
        Ok(m)
    }

    /// `dma_map_sg`: one mapping per segment (segments may bounce independently), each
    /// borrowing its segment.
    pub fn dma_map_sg<'a, D: Direction>(
        dev: &DmaDevice,
        segments: impl IntoIterator<Item = D::Buf<'a>>,
    ) -> Result<Vec<DmaMapping<'a, D>>, DmaError> {
        segments
            .into_iter()
            .map(|buf| dma_map_single::<D>(dev, buf))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi3_device() -> DmaDevice {
        // Raspberry Pi 3: the first 1008 MiB of RAM at bus 0xc000_0000.
        DmaDevice::new(
            "pi3",
            alloc::vec![DmaRange {
                cpu: PhysAddr::new(0),
                bus: 0xc000_0000,
                size: 0x3f00_0000
            }],
            dma_bit_mask(32),
            false,
        )
    }

    #[test]
    fn bus_addresses_go_through_the_windows() {
        let d = pi3_device();
        assert_eq!(
            d.phys_to_dma(PhysAddr::new(0x1000), 0x1000),
            Ok(DmaAddr::new(0xc000_1000))
        );
        assert_eq!(
            d.dma_to_phys(DmaAddr::new(0xc000_1000)),
            Some(PhysAddr::new(0x1000))
        );
        assert!(matches!(
            d.phys_to_dma(PhysAddr::new(0x3eff_f000), 0x2000),
            Err(DmaError::OutOfReach { .. })
        ));
        assert_eq!(d.cpu_limit(), PhysAddr::new(0x3f00_0000));
        let identity = DmaDevice::new("virt", Vec::new(), dma_bit_mask(64), true);
        assert_eq!(
            identity.phys_to_dma(PhysAddr::new(0x4000_0000), 8),
            Ok(DmaAddr::new(0x4000_0000))
        );
        assert_eq!(identity.cpu_limit(), PhysAddr::new(u64::MAX));
    }

    #[test]
    fn the_mask_limits_reach() {
        let d = DmaDevice::new("30-bit", Vec::new(), dma_bit_mask(30), true);
        assert!(d.phys_to_dma(PhysAddr::new(0x3fff_f000), 0x1000).is_ok());
        assert!(d.phys_to_dma(PhysAddr::new(0x3fff_f000), 0x1001).is_err());
        assert_eq!(d.cpu_limit(), PhysAddr::new(0x4000_0000));
        // A window whose bus side passes the mask is usable only below it.
        let w = DmaDevice::new(
            "window",
            alloc::vec![DmaRange {
                cpu: PhysAddr::new(0x4000_0000),
                bus: 0,
                size: 0x8000_0000
            }],
            dma_bit_mask(30),
            true,
        );
        assert_eq!(w.cpu_limit(), PhysAddr::new(0x8000_0000));
        assert!(w.phys_to_dma(PhysAddr::new(0x8000_0000), 0x1000).is_err());
        assert_eq!(
            w.phys_to_dma(PhysAddr::new(0x4000_2000), 0x10),
            Ok(DmaAddr::new(0x2000))
        );
        assert_eq!(
            d.phys_to_dma(PhysAddr::new(0x1000), 0),
            Err(DmaError::ZeroSize)
        );
    }
}
