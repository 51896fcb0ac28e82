//! `kmalloc`: general-purpose kernel memory in Linux's size classes (8 bytes to 8 KiB, powers of
//! two plus 96 and 192) on slab caches, larger requests straight from the page allocator, `kfree`
//! finding the owner from the page metadata, `krealloc`, `ksize`, and DMA-zone caches for
//! `Gfp::DMA`, and `KBuf`, an owned allocation that reads and writes as a byte slice and frees
//! itself. Owns the size classes; must not know how pages are found (that is the backend).
// A named exception to the crate's `deny(unsafe_code)`: kmalloc hands out raw memory and finds an object's cache from its page's metadata.
#![allow(unsafe_code)]

use core::ptr::NonNull;

use super::gfp::Gfp;
use super::page::flags_order;
use super::slab::{page_owner, KmemCache, PageOwner, SlabBackend};
use crate::addr::PAGE_SIZE;

/// The size classes, as Linux's `kmalloc_caches`.
pub const KMALLOC_SIZES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;
const NAMES: [&str; 13] = [
    "kmalloc-8",
    "kmalloc-16",
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-96",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "kmalloc-8k",
];
const DMA_NAMES: [&str; 13] = [
    "dma-kmalloc-8",
    "dma-kmalloc-16",
    "dma-kmalloc-32",
    "dma-kmalloc-64",
    "dma-kmalloc-96",
    "dma-kmalloc-128",
    "dma-kmalloc-192",
    "dma-kmalloc-256",
    "dma-kmalloc-512",
    "dma-kmalloc-1k",
    "dma-kmalloc-2k",
    "dma-kmalloc-4k",
    "dma-kmalloc-8k",
];

/// Sizes 1..=192 by 8-byte step -> class (Linux's `size_index`).
const SMALL_INDEX: [u8; 24] = [
    0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6,
];

/// The class for `size` bytes aligned to `align`, or `None` past 8 KiB.
#[inline(always)]
pub fn kmalloc_index(size: usize, align: usize) -> Option<usize> {
    // Objects of power-of-two classes are aligned to their size (slabs are page aligned); 96 and
    // 192 only to 32 and 64. Asking for more alignment picks a larger power of two.
    let size = if align > 8 {
        size.max(align).next_power_of_two()
    } else {
        size
    };
    if size <= 192 {
        return Some(SMALL_INDEX[(size.max(1) - 1) / 8] as usize);
    }
    if size > KMALLOC_MAX_CACHE_SIZE {
        return None;
    }
    // 256 -> 7 ... 8192 -> 12
    Some((usize::BITS - (size - 1).leading_zeros()) as usize - 1)
}

/// The pointer `kmalloc(0)` returns (Linux's ZERO_SIZE_PTR): not null, never dereferenced.
pub const ZERO_SIZE_PTR: usize = 16;

pub struct Kmalloc {
    normal: [KmemCache; 13],
    dma: [KmemCache; 13],
    backend: &'static dyn SlabBackend,
}

impl Kmalloc {
    pub fn new(backend: &'static dyn SlabBackend, debug: u32) -> Kmalloc {
        // Objects are aligned to the largest power of two dividing their size (as Linux's
        // kmalloc guarantees), which `kmalloc_index` relies on, slub_debug or not.
        let make = |names: &[&'static str; 13], gfp: Gfp| {
            core::array::from_fn(|i| {
                let size = KMALLOC_SIZES[i];
                let align = 1usize << size.trailing_zeros();
                KmemCache::new(names[i], size, align, gfp, None, debug, backend)
            })
        };
        Kmalloc {
            normal: make(&NAMES, Gfp::KERNEL),
            dma: make(&DMA_NAMES, Gfp::DMA),
            backend,
        }
    }

    pub fn caches(&self) -> impl Iterator<Item = &KmemCache> {
        self.normal.iter().chain(self.dma.iter())
    }

    /// `kmalloc(size, gfp)` with an alignment (the global allocator passes `Layout::align`).
    #[inline(always)]
    pub fn kmalloc_aligned(&self, size: usize, align: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        if size == 0 {
            return NonNull::new(ZERO_SIZE_PTR as *mut u8);
        }
        match kmalloc_index(size, align) {
            Some(i) if align <= PAGE_SIZE as usize => {
                let cache = if gfp.contains(Gfp::DMA) {
                    &self.dma[i]
                } else {
                    &self.normal[i]
                };
                let p = cache.alloc()?;
                if gfp.contains(Gfp::ZERO) {
                    // SAFETY: a fresh object of at least `size` bytes.
                    unsafe { p.as_ptr().write_bytes(0, size) };
                }
                Some(p)
            }
            _ => self.kmalloc_large(size, align, gfp),
        }
    }

    #[inline(always)]
    pub fn kmalloc(&self, size: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        self.kmalloc_aligned(size, 8, gfp)
    }

    /// `kmalloc_aligned`, owned: `size` bytes that free themselves when dropped.
    #[inline]
    pub fn kmalloc_buf_aligned(&self, size: usize, align: usize, gfp: Gfp) -> Option<KBuf<'_>> {
        let ptr = self.kmalloc_aligned(size, align, gfp)?;
        Some(KBuf {
            ptr,
            len: size,
            align,
            kmalloc: self,
        })
    }

    /// `kmalloc`, owned (see `KBuf`).
    #[inline]
    pub fn kmalloc_buf(&self, size: usize, gfp: Gfp) -> Option<KBuf<'_>> {
        self.kmalloc_buf_aligned(size, 8, gfp)
    }

    #[inline(never)]
    fn kmalloc_large(&self, size: usize, align: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        let bytes = size.max(align).div_ceil(PAGE_SIZE as usize);
        let order = bytes.next_power_of_two().trailing_zeros() as u8;
        // Buddy blocks are naturally aligned, which covers any alignment up to their size.
        self.backend.alloc_pages(order, gfp)
    }

    /// `kfree`. A pointer that is not from `kmalloc` is reported and left alone.
    ///
    /// # Safety
    /// `ptr` must be from `kmalloc` and not used afterwards (or null / ZERO_SIZE_PTR).
    #[inline(always)]
    pub unsafe fn kfree(&self, ptr: *mut u8) {
        if (ptr as usize) <= ZERO_SIZE_PTR {
            return;
        }
        match page_owner(self.backend, ptr) {
            PageOwner::Slab(cache) => {
                // SAFETY: a slab page's `private` is its cache, which outlives every object (and
                // the caller passes a live object).
                let cache = unsafe { &*(cache as *const KmemCache) };
                // SAFETY: the caller passes a live object (not null: past ZERO_SIZE_PTR);
                // slub_debug checks it if enabled.
                unsafe { cache.free(NonNull::new_unchecked(ptr)) };
            }
            // SAFETY: as above.
            owner @ PageOwner::Page { .. } => unsafe { self.kfree_large(ptr, owner) },
            PageOwner::Unknown => log::error!("kfree({ptr:p}): not kernel memory"),
        }
    }

    /// `kfree` of a page allocation; `owner` is what `kfree` already looked up.
    ///
    /// # Safety
    /// As `kfree`.
    #[inline(never)]
    unsafe fn kfree_large(&self, ptr: *mut u8, owner: PageOwner) {
        let Some(order) = owner
            .allocation_order()
            .filter(|_| (ptr as usize).is_multiple_of(PAGE_SIZE as usize))
        else {
            log::error!("kfree({ptr:p}): not the start of a kmalloc allocation");
            return;
        };
        // SAFETY: the head of a live page allocation made by `kmalloc_large` (not null: past
        // ZERO_SIZE_PTR).
        unsafe { self.backend.free_pages(NonNull::new_unchecked(ptr), order) };
    }

    /// The usable size of an allocation (0 for memory that is not `kmalloc`'s).
    pub fn ksize(&self, ptr: *const u8) -> usize {
        if (ptr as usize) <= ZERO_SIZE_PTR {
            return 0;
        }
        match page_owner(self.backend, ptr) {
            PageOwner::Slab(cache) => self.cache_at(cache).map_or(0, |c| c.object_size()),
            PageOwner::Page { flags } => (PAGE_SIZE as usize) << flags_order(flags),
            PageOwner::Unknown => 0,
        }
    }

    /// The cache at `addr` (a slab page's owner, `slab::page_owner`), if it is one of these:
    /// found by position in the arrays, so the address never has to be trusted as a pointer.
    pub fn cache_at(&self, addr: usize) -> Option<&KmemCache> {
        let size = core::mem::size_of::<KmemCache>();
        [&self.normal, &self.dma].into_iter().find_map(|caches| {
            let off = addr.wrapping_sub(caches.as_ptr() as usize);
            caches.get(off / size).filter(|c| c.addr() == addr)
        })
    }

    /// `krealloc`: grows or shrinks, keeping the contents up to the smaller size.
    ///
    /// # Safety
    /// As `kfree` for `ptr`.
    pub unsafe fn krealloc(
        &self,
        ptr: *mut u8,
        new_size: usize,
        align: usize,
        gfp: Gfp,
    ) -> Option<NonNull<u8>> {
        let old = self.ksize(ptr);
        if new_size <= old && new_size > 0 && (ptr as usize).is_multiple_of(align) {
            return NonNull::new(ptr);
        }
        let new = self.kmalloc_aligned(new_size, align, gfp)?;
        if old > 0 {
            // SAFETY: both regions are live and distinct; `old.min(new_size)` fits both.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new.as_ptr(), old.min(new_size)) };
            // SAFETY: the caller's `ptr` is ours to free now.
            unsafe { self.kfree(ptr) };
        }
        Some(new)
    }

    /// Gives empty slabs of every cache back to the page allocator. Returns pages freed.
    pub fn shrink(&self) -> u64 {
        self.caches().map(|c| c.shrink()).sum()
    }
}

/// A `kmalloc` allocation, owned: its bytes read and write as a slice (they hold what the memory
/// held, or zeroes under `Gfp::ZERO`) and go back to `kfree` when it is dropped.
pub struct KBuf<'k> {
    ptr: NonNull<u8>,
    len: usize,
    /// The alignment asked for, which `resize` keeps.
    align: usize,
    kmalloc: &'k Kmalloc,
}

impl<'k> KBuf<'k> {
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// `krealloc`: the buffer grown or shrunk to `new_size` bytes (in place when it fits), its
    /// contents kept up to the smaller size. On failure the buffer comes back as it was.
    pub fn resize(self, new_size: usize, gfp: Gfp) -> Result<KBuf<'k>, KBuf<'k>> {
        let (kmalloc, len, align) = (self.kmalloc, self.len, self.align);
        let old = self.into_raw();
        // SAFETY: our live allocation from this `Kmalloc`, given up for the result (`krealloc`
        // frees it only when it returns a new block).
        match unsafe { kmalloc.krealloc(old.as_ptr(), new_size, align, gfp) } {
            Some(ptr) => Ok(KBuf {
                ptr,
                len: new_size,
                align,
                kmalloc,
            }),
            None => Err(KBuf {
                ptr: old,
                len,
                align,
                kmalloc,
            }),
        }
    }

    /// Gives the allocation up without freeing it: the caller frees it (`Kmalloc::kfree`).
    pub fn into_raw(self) -> NonNull<u8> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }
}

impl core::ops::Deref for KBuf<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: a live allocation of at least `len` initialised bytes (`SlabBackend` memory
        // holds initialised bytes; a zero-length buffer's ZERO_SIZE_PTR is non-null and aligned),
        // owned by this buffer.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl core::ops::DerefMut for KBuf<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the slice unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for KBuf<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: from this `Kmalloc`, owned by this buffer and freed once, here.
        unsafe { self.kmalloc.kfree(self.ptr.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_match_linux() {
        let cases = [
            (1, 8),
            (8, 8),
            (9, 16),
            (16, 16),
            (17, 32),
            (32, 32),
            (33, 64),
            (64, 64),
            (65, 96),
            (96, 96),
            (97, 128),
            (128, 128),
            (129, 192),
            (192, 192),
            (193, 256),
            (256, 256),
            (257, 512),
            (4096, 4096),
            (4097, 8192),
            (8192, 8192),
        ];
        for (size, class) in cases {
            assert_eq!(
                KMALLOC_SIZES[kmalloc_index(size, 8).unwrap()],
                class,
                "size {size}"
            );
        }
        assert_eq!(kmalloc_index(8193, 8), None);
        // Alignment beyond 8 picks a power-of-two class at least that large.
        assert_eq!(KMALLOC_SIZES[kmalloc_index(65, 64).unwrap()], 128);
        assert_eq!(KMALLOC_SIZES[kmalloc_index(8, 256).unwrap()], 256);
        assert_eq!(KMALLOC_SIZES[kmalloc_index(96, 32).unwrap()], 128);
    }
}
