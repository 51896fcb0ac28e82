//! `kmalloc`: general-purpose kernel memory in Linux's size classes (8 bytes to 8 KiB, powers of
//! two plus 96 and 192) on slab caches, larger requests straight from the page allocator, `kfree`
//! finding the owner from the page metadata, `krealloc`, `ksize`, and DMA-zone caches for
//! `Gfp::DMA`. Owns the size classes; must not know how pages are found (that is the backend).

use core::ptr::NonNull;

use super::gfp::Gfp;
use super::page::{Page, PG_ALLOCATED, PG_SLAB};
use super::slab::{KmemCache, SlabBackend};
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
        let Some(meta) = self.backend.page_meta(ptr) else {
            log::error!("kfree({ptr:p}): not kernel memory");
            return;
        };
        // SAFETY: the page's metadata; only read here.
        let m = unsafe { meta.as_ref() };
        if m.flags & PG_SLAB != 0 {
            // SAFETY: a slab page's `private` is its cache, which outlives every object.
            let cache = unsafe { &*(m.private as *const KmemCache) };
            // SAFETY: the caller passes a live object; slub_debug checks it if enabled.
            unsafe { cache.free(NonNull::new_unchecked(ptr)) };
        } else {
            // SAFETY: as above.
            unsafe { self.kfree_large(ptr, m) };
        }
    }

    /// `kfree` of a page allocation; `m` is the metadata `kfree` already looked up.
    #[inline(never)]
    unsafe fn kfree_large(&self, ptr: *mut u8, m: &Page) {
        if m.flags & PG_ALLOCATED == 0 || !(ptr as usize).is_multiple_of(PAGE_SIZE as usize) {
            log::error!("kfree({ptr:p}): not the start of a kmalloc allocation");
            return;
        }
        // SAFETY: the head of a live page allocation made by `kmalloc_large`.
        unsafe {
            self.backend
                .free_pages(NonNull::new_unchecked(ptr), m.order())
        };
    }

    /// The usable size of an allocation.
    pub fn ksize(&self, ptr: *const u8) -> usize {
        if (ptr as usize) <= ZERO_SIZE_PTR {
            return 0;
        }
        match self.backend.page_meta(ptr) {
            Some(meta) => {
                // SAFETY: only read.
                let m = unsafe { meta.as_ref() };
                if m.flags & PG_SLAB != 0 {
                    // SAFETY: as in `kfree`.
                    unsafe { (*(m.private as *const KmemCache)).object_size() }
                } else {
                    (PAGE_SIZE as usize) << m.order()
                }
            }
            None => 0,
        }
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
