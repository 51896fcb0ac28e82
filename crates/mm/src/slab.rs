//! Slab caches, SLUB-like: objects of one size carved from slabs of 2^order pages taken from the
//! page allocator. Allocation pops the free list of the current ("CPU") slab under the cache's
//! lock (one CPU runs the kernel today); frees of objects of
//! that slab push onto it; everything else goes through the locked slow path with partial and
//! full slabs. Empty slabs go back to the page allocator when the shrinker runs (or when more
//! than `MIN_PARTIAL` pile up). `slub_debug` adds red zones, poisoning and checks that report a
//! defect with the cache's name and the offset instead of corrupting memory. `SlabObject` (bytes)
//! and `TypedCache`'s `SlabBox` (a `T`) own an object and free it when dropped; `page_owner` reads
//! which cache (if any) a page belongs to, for `kfree`, `ksize` and slub_debug.
//!
//! Owns the object layout and the slab lists; must never touch page-allocator internals (pages
//! come through `SlabBackend`) nor assume where memory is (portable, tested on the host), and
//! must never allocate while holding a cache lock (kmalloc could be that cache).
//! Lock order: a cache's lock, then the page allocator's (the reclaim hook's shrinker only
//! `try_lock`s caches, so a refill that reclaims cannot deadlock on itself).
// A named exception to the crate's `deny(unsafe_code)`: objects live in raw slab pages, with the free list threaded through them.
#![allow(unsafe_code)]

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use super::gfp::Gfp;
use super::page::{flags_order, Page, NIL, PG_ALLOCATED, PG_SLAB};
use crate::addr::PAGE_SIZE;

/// Where slabs come from.
///
/// # Safety
/// `alloc_pages` must return 2^order pages, naturally aligned (a slab's address rounded down to
/// its size finds its start), holding initialised bytes (any values: objects are handed out as
/// byte slices), readable and writable and used by nobody else until `free_pages`; `page_meta`
/// must return the metadata of the page holding an address for every page `alloc_pages`
/// returned, and nothing else may modify that metadata while the slab owns it; any pointer
/// `page_meta` returns must be valid for reads of a `Page` for as long as the backend lives.
pub unsafe trait SlabBackend: Sync {
    fn alloc_pages(&self, order: u8, gfp: Gfp) -> Option<NonNull<u8>>;
    /// # Safety
    /// `va` and `order` must be from `alloc_pages`, and nothing may use the pages afterwards.
    unsafe fn free_pages(&self, va: NonNull<u8>, order: u8);
    fn page_meta(&self, va: *const u8) -> Option<NonNull<Page>>;
}

/// Optional debugging (`slub_debug`).
pub const SLAB_RED_ZONE: u32 = 1 << 0;
pub const SLAB_POISON: u32 = 1 << 1;
/// Object state tracking: double and invalid frees.
pub const SLAB_CONSISTENCY: u32 = 1 << 2;
pub const SLAB_DEBUG_ALL: u32 = SLAB_RED_ZONE | SLAB_POISON | SLAB_CONSISTENCY;

const RED_LEFT: u8 = 0xbb;
const RED_RIGHT: u8 = 0xcc;
const POISON_FREE: u8 = 0x6b;
const POISON_END: u8 = 0xa5;
const STATE_ALLOCATED: u64 = 0xa110_ca7e_d0bb_ec70;
const STATE_FREE: u64 = 0xf4ee_d0bb_ec70_f4ee;
/// Empty slabs kept on the partial list before frees start handing them back.
/// Objects a slab should hold at least (Linux: 4 * (fls(nr_cpus) + 1), 16 for four CPUs). 32
/// here: short-lived objects freed in a different order from allocation (the host bench's
/// ring of 64 mixed objects) then stay within the CPU slab: 12.8 ns a pair with the smallest
/// slabs, 11.7 with 16 objects, 9.7 with 32.
const MIN_OBJECTS: usize = 32;
const MIN_PARTIAL: usize = 4;

/// A defect `slub_debug` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlabDefect {
    DoubleFree {
        object: u64,
    },
    NotObjectStart {
        ptr: u64,
        offset: u64,
    },
    RedzoneLeft {
        object: u64,
        offset: i64,
        value: u8,
    },
    RedzoneRight {
        object: u64,
        offset: u64,
        value: u8,
    },
    UseAfterFree {
        object: u64,
        offset: u64,
        value: u8,
    },
    /// Freed to a cache it does not belong to; `owner` names the cache it does (or why none).
    WrongCache {
        ptr: u64,
        owner: &'static str,
    },
}

impl fmt::Display for SlabDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlabDefect::DoubleFree { object } => write!(f, "double free of object {object:#x}"),
            SlabDefect::NotObjectStart { ptr, offset } => {
                write!(f, "free of {ptr:#x}, which is {offset:#x} bytes into an object, not its start")
            }
            SlabDefect::RedzoneLeft { object, offset, value } => write!(
                f,
                "write before object {object:#x}: left red zone at offset {offset} holds {value:#04x}"
            ),
            SlabDefect::RedzoneRight { object, offset, value } => write!(
                f,
                "write past the end of object {object:#x}: right red zone at offset {offset:#x} holds {value:#04x}"
            ),
            SlabDefect::UseAfterFree { object, offset, value } => write!(
                f,
                "object {object:#x} was written while free: offset {offset:#x} holds {value:#04x} (poison {POISON_FREE:#04x})"
            ),
            SlabDefect::WrongCache { ptr, owner } => write!(f, "{ptr:#x} is not an object of this cache ({owner})"),
        }
    }
}

/// One cache's `/proc/slabinfo` (version 2.1) line as values, named as Linux's header names
/// them (the tunables and shared fields, always 0 for a SLUB-style allocator, are left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabInfo {
    /// The cache's name (`kmalloc-64`).
    pub name: &'static str,
    /// Objects handed out.
    pub active_objs: u64,
    /// Objects the cache's slabs hold, free or not.
    pub num_objs: u64,
    /// Bytes an object takes in its slab.
    pub objsize: u64,
    /// Objects in one slab.
    pub objperslab: u64,
    /// Pages in one slab.
    pub pagesperslab: u64,
    /// Slabs with an object handed out.
    pub active_slabs: u64,
    /// Slabs the cache holds.
    pub num_slabs: u64,
}

/// Counters for `/proc/slabinfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlabStats {
    pub active_objs: u64,
    pub num_objs: u64,
    pub num_slabs: u64,
    pub empty_slabs: u64,
    pub partial_slabs: u64,
}

/// What the page metadata says about the memory holding an address (`page_owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOwner {
    /// Part of a slab of the cache at this address (`KmemCache::addr`).
    Slab(usize),
    /// A page outside any slab, with its flags (an allocation's head has `PG_ALLOCATED` and
    /// its order).
    Page { flags: u32 },
    /// The backend has no metadata for it: not memory it manages.
    Unknown,
}

impl PageOwner {
    /// The head of a live page allocation of this order (`kmalloc`'s large allocations).
    pub fn allocation_order(self) -> Option<u8> {
        match self {
            PageOwner::Page { flags } if flags & PG_ALLOCATED != 0 => Some(flags_order(flags)),
            _ => None,
        }
    }
}

/// Who owns the page holding `ptr`, from the metadata `backend` keeps for it: the one read of
/// `struct page` that `kfree`, `ksize` and slub_debug's checks share. Only `flags` and `private`
/// are read: the slab layer sets both when it makes a slab and clears both when it gives the
/// slab back, so they are stable while an object of the slab is live.
#[inline(always)]
pub fn page_owner(backend: &dyn SlabBackend, ptr: *const u8) -> PageOwner {
    let Some(meta) = backend.page_meta(ptr) else {
        return PageOwner::Unknown;
    };
    let p = meta.as_ptr();
    // SAFETY: `SlabBackend` guarantees pointers from `page_meta` are valid for reads of a
    // `Page`; the fields are read by value, so no reference outlives the read.
    let (flags, private) = unsafe {
        (
            (&raw const (*p).flags).read(),
            (&raw const (*p).private).read(),
        )
    };
    if flags & PG_SLAB != 0 {
        PageOwner::Slab(private as usize)
    } else {
        PageOwner::Page { flags }
    }
}

struct Inner {
    /// Free objects of the CPU slab (`None` has the null pointer's representation, so the fast
    /// paths test and store exactly what a raw pointer would).
    freelist: Option<NonNull<u8>>,
    /// The CPU slab's start (0: none). While it is the CPU slab its own free list is empty.
    cpu_slab: usize,
    /// Doubly linked through `Page::prev/next` (slab start addresses; NIL ends).
    partial: u64,
    nr_partial: usize,
    nr_empty: usize,
    nr_slabs: u64,
}

// SAFETY: the pointers are into slabs this cache owns; the cache's lock serialises access.
unsafe impl Send for Inner {}

/// A cache of equal-sized objects.
///
/// Its slab pages record its address (`addr`, `PageOwner::Slab`), which `kfree` and slub_debug
/// follow: a cache must stay where it is while it has slabs (leaked, in a static, or in an owner
/// that does not move it), and be `shrink`ed empty before it goes.
pub struct KmemCache {
    name: &'static str,
    /// What the user asked for.
    object_size: usize,
    /// Bytes from one object to the next.
    stride: usize,
    /// Offset of the object in its stride (the left red zone, if any).
    left: usize,
    /// Offset of the free-list pointer in the stride.
    free_off: usize,
    /// Offset of the state word (debug only).
    state_off: usize,
    pub order: u8,
    /// `!(slab bytes - 1)`: a slab's start from any address in it.
    slab_mask: usize,
    pub objects: usize,
    pub align: usize,
    pub debug: u32,
    gfp: Gfp,
    ctor: Option<fn(&mut [u8])>,
    backend: &'static dyn SlabBackend,
    inner: spin::Mutex<Inner>,
    /// Defects `slub_debug` reported (for tests and reports).
    pub defects: AtomicU64,
}

fn round_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

impl KmemCache {
    /// A cache of `size`-byte objects aligned to `align` (a power of two, at least 8), with slabs
    /// of the smallest order that wastes under 1/8 of a slab (at most order 3).
    pub fn new(
        name: &'static str,
        size: usize,
        align: usize,
        gfp: Gfp,
        ctor: Option<fn(&mut [u8])>,
        debug: u32,
        backend: &'static dyn SlabBackend,
    ) -> KmemCache {
        let align = align.max(8).next_power_of_two();
        let object_size = size.max(1);
        let (left, free_off, state_off, stride) = if debug != 0 {
            // [left red zone][object][right red zone >= 8][free pointer][state]
            let left = align.max(16);
            let right_start = left + round_up(object_size, 8);
            let free_off = right_start + 8 + (round_up(object_size, 8) - object_size);
            let free_off = round_up(free_off, 8);
            let state_off = free_off + 8;
            (left, free_off, state_off, round_up(state_off + 8, align))
        } else {
            let stride = round_up(object_size, align);
            // A constructed object keeps its contents while free: the pointer goes after it.
            match ctor {
                Some(_) => (0, stride, stride, round_up(stride + 8, align)),
                None => (0, 0, 0, stride.max(8)),
            }
        };
        // As Linux's calculate_order: the smallest slab (at most order 3) that wastes at most an
        // eighth and holds at least MIN_OBJECTS, so a CPU slab serves runs of allocations and
        // frees of neighbouring objects without changing slabs.
        let mut order = 0u8;
        while order < 3 {
            let bytes = (PAGE_SIZE as usize) << order;
            if bytes >= stride * MIN_OBJECTS && (bytes % stride) * 8 <= bytes {
                break;
            }
            order += 1;
        }
        // Objects over 32 KiB get a 64 KiB slab (the free-list offsets are 16 bits); larger ones
        // do not fit a slab at all: such a cache refuses every allocation, with a report.
        if ((PAGE_SIZE as usize) << order) < stride {
            order = 4;
        }
        let objects = ((PAGE_SIZE as usize) << order) / stride;
        if objects == 0 {
            log::error!(
                "slab: cache {name}: objects of {size} bytes do not fit a slab (64 KiB at most)"
            );
        }
        KmemCache {
            name,
            object_size,
            stride,
            left,
            free_off,
            state_off,
            order,
            slab_mask: !(((PAGE_SIZE as usize) << order) - 1),
            objects,
            align,
            debug,
            gfp,
            ctor,
            backend,
            inner: spin::Mutex::new(Inner {
                freelist: None,
                cpu_slab: 0,
                partial: NIL,
                nr_partial: 0,
                nr_empty: 0,
                nr_slabs: 0,
            }),
            defects: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The cache's address, as its slab pages record it (`PageOwner::Slab`).
    pub fn addr(&self) -> usize {
        self as *const KmemCache as usize
    }
    pub fn object_size(&self) -> usize {
        self.object_size
    }
    pub fn slab_bytes(&self) -> usize {
        (PAGE_SIZE as usize) << self.order
    }

    #[inline(always)]
    fn slab_of(&self, p: usize) -> usize {
        p & self.slab_mask
    }

    /// The free-list link of `obj`.
    ///
    /// # Safety
    /// `obj` is an object (stride start) of one of our slabs.
    #[inline(always)]
    unsafe fn next_of(&self, obj: NonNull<u8>) -> Option<NonNull<u8>> {
        // SAFETY: the free pointer slot lies inside the object's stride, 8-aligned; it holds a
        // pointer or null, which `Option<NonNull<u8>>` represents exactly.
        unsafe {
            obj.as_ptr()
                .add(self.free_off)
                .cast::<Option<NonNull<u8>>>()
                .read()
        }
    }

    /// Sets the free-list link of `obj`.
    ///
    /// # Safety
    /// As `next_of`, and `obj` is free (its link slot is the slab's to write).
    #[inline(always)]
    unsafe fn set_next(&self, obj: NonNull<u8>, next: Option<NonNull<u8>>) {
        // SAFETY: as in `next_of`.
        unsafe {
            obj.as_ptr()
                .add(self.free_off)
                .cast::<Option<NonNull<u8>>>()
                .write(next)
        }
    }

    /// The object at byte offset `off` of `slab` (an offset into the slab, not an index).
    fn obj_at(slab: usize, off: usize) -> Option<NonNull<u8>> {
        NonNull::new((slab + off) as *mut u8)
    }

    /// Allocates an object. The fast path pops the CPU slab's free list.
    #[inline(always)]
    pub fn alloc(&self) -> Option<NonNull<u8>> {
        let mut g = self.inner.lock();
        if let Some(obj) = g.freelist.filter(|_| self.debug == 0) {
            // SAFETY: a free object of the CPU slab.
            g.freelist = unsafe { self.next_of(obj) };
            return Some(obj);
        }
        self.alloc_slow(&mut g)
    }

    /// Allocates an object owned by the returned handle, which frees it when dropped.
    pub fn alloc_object(&self) -> Option<SlabObject<'_>> {
        let ptr = self.alloc()?;
        Some(SlabObject { ptr, cache: self })
    }

    #[inline(never)]
    fn alloc_slow(&self, g: &mut Inner) -> Option<NonNull<u8>> {
        if g.freelist.is_none() {
            self.refill(g)?;
        }
        // `refill` leaves a non-empty free list of the CPU slab.
        let obj = g.freelist?;
        // SAFETY: a free object of the CPU slab.
        g.freelist = unsafe { self.next_of(obj) };
        if self.debug != 0 {
            self.check_on_alloc(obj.as_ptr());
        }
        // The user part starts `left` bytes into the stride.
        NonNull::new(obj.as_ptr().wrapping_add(self.left))
    }

    /// The metadata of the page holding `va`, if the backend has it, for the slab layer to write.
    // The `&mut` comes from the backend's metadata, not from `&self`: it is unique because every
    // caller holds this cache's lock, owns the slab holding `va` (or is making or discarding
    // it), and uses it for one statement or block at a time.
    #[allow(clippy::mut_from_ref)]
    fn slab_page(&self, va: usize) -> Option<&mut Page> {
        let p = self.backend.page_meta(va as *const u8)?;
        // SAFETY: the backend guarantees the metadata of our slab is ours while the slab lives,
        // and the cache lock serialises every access to it.
        Some(unsafe { &mut *p.as_ptr() })
    }

    #[allow(clippy::mut_from_ref)]
    fn meta(&self, slab: usize) -> &mut Page {
        self.slab_page(slab).expect("slab pages have metadata")
    }

    fn inuse(p: &Page) -> usize {
        (p.refcount >> 16) as usize
    }
    /// Offset of the slab's first free object plus one (0: none).
    fn free_head(p: &Page) -> usize {
        (p.refcount & 0xffff) as usize
    }
    fn set_counts(p: &mut Page, inuse: usize, free_head: usize) {
        p.refcount = ((inuse as u32) << 16) | free_head as u32;
    }

    fn partial_unlink(&self, g: &mut Inner, slab: usize) {
        let (prev, next) = {
            let m = self.meta(slab);
            (m.prev, m.next)
        };
        if prev != NIL {
            self.meta(prev as usize).next = next;
        } else {
            g.partial = next;
        }
        if next != NIL {
            self.meta(next as usize).prev = prev;
        }
        g.nr_partial -= 1;
    }

    fn partial_push(&self, g: &mut Inner, slab: usize) {
        let head = g.partial;
        {
            let m = self.meta(slab);
            m.prev = NIL;
            m.next = head;
        }
        if head != NIL {
            self.meta(head as usize).prev = slab as u64;
        }
        g.partial = slab as u64;
        g.nr_partial += 1;
    }

    /// Gives the CPU slab back to the lists (its free objects back to it) and takes a partial or
    /// new slab's objects as the CPU free list.
    fn refill(&self, g: &mut Inner) -> Option<()> {
        self.deactivate(g);
        let slab = if g.partial != NIL {
            let slab = g.partial as usize;
            self.partial_unlink(g, slab);
            if Self::inuse(self.meta(slab)) == 0 {
                g.nr_empty -= 1;
            }
            slab
        } else {
            self.new_slab(g)?
        };
        // Move the slab's free list to the CPU: the slab counts as fully in use while it is the
        // CPU slab (frees to it go to the CPU list).
        let m = self.meta(slab);
        let head = Self::free_head(m);
        Self::set_counts(m, self.objects, 0);
        g.freelist = head.checked_sub(1).and_then(|off| Self::obj_at(slab, off));
        g.cpu_slab = slab;
        Some(())
    }

    /// Returns the CPU slab's free objects to it and puts it where its count says.
    fn deactivate(&self, g: &mut Inner) {
        let slab = g.cpu_slab;
        if slab == 0 {
            return;
        }
        g.cpu_slab = 0;
        let mut free = 0;
        let mut head: Option<NonNull<u8>> = None;
        let mut next = g.freelist.take();
        while let Some(obj) = next {
            // SAFETY: objects on the CPU list belong to the CPU slab and are free.
            next = unsafe { self.next_of(obj) };
            // SAFETY: as above.
            unsafe { self.set_next(obj, head) };
            head = Some(obj);
            free += 1;
        }
        let inuse = self.objects - free;
        let m = self.meta(slab);
        let head_off = head.map_or(0, |h| h.as_ptr() as usize - slab + 1);
        Self::set_counts(m, inuse, head_off);
        if inuse < self.objects {
            self.partial_push(g, slab);
            if inuse == 0 {
                g.nr_empty += 1;
            }
        }
    }

    fn new_slab(&self, g: &mut Inner) -> Option<usize> {
        if self.objects == 0 {
            return None;
        }
        let base = self
            .backend
            .alloc_pages(self.order, self.gfp | Gfp::NOWARN)?;
        let slab = base.as_ptr() as usize;
        for i in 0..(1usize << self.order) {
            // The backend gave us these pages and their metadata.
            if let Some(p) = self.slab_page(slab + i * PAGE_SIZE as usize) {
                p.flags |= PG_SLAB;
                p.private = self.addr() as u64;
            }
        }
        // Thread the free list through the objects, first object first.
        let mut head = None;
        for i in (0..self.objects).rev() {
            // SAFETY: a stride start inside the new slab, which nothing else references yet: its
            // link slot, debug words and object bytes are ours to write.
            unsafe {
                let obj = base.add(i * self.stride);
                self.set_next(obj, head);
                head = Some(obj);
                if self.debug != 0 {
                    self.init_debug(core::slice::from_raw_parts_mut(obj.as_ptr(), self.stride));
                }
                // Under poisoning the object is constructed when it is handed out instead
                // (`check_on_alloc`): constructing it now would read as a write after free.
                if let Some(ctor) = self.ctor.filter(|_| self.debug & SLAB_POISON == 0) {
                    ctor(core::slice::from_raw_parts_mut(
                        obj.as_ptr().add(self.left),
                        self.object_size,
                    ));
                }
            }
        }
        let head = head.map_or(0, |h| h.as_ptr() as usize - slab + 1);
        Self::set_counts(self.meta(slab), 0, head);
        g.nr_slabs += 1;
        Some(slab)
    }

    /// Frees an object of this cache. The fast path pushes onto the CPU free list.
    ///
    /// # Safety
    /// `ptr` must be a live object of this cache (under `slub_debug` a bad pointer is reported
    /// instead).
    #[inline(always)]
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        let mut g = self.inner.lock();
        if self.debug == 0 && self.slab_of(ptr.as_ptr() as usize) == g.cpu_slab {
            // SAFETY: an object of the CPU slab, free again.
            unsafe { self.set_next(ptr, g.freelist) };
            g.freelist = Some(ptr);
            return;
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.free_slow(&mut g, ptr) };
    }

    /// # Safety
    /// As `free`.
    #[inline(never)]
    unsafe fn free_slow(&self, g: &mut Inner, p: NonNull<u8>) {
        let slab = self.slab_of(p.as_ptr() as usize);
        let mut obj = p;
        if self.debug != 0 {
            match self.check_on_free(slab, p.as_ptr()) {
                Ok(o) => obj = o,
                Err(defect) => {
                    self.report(&defect);
                    return;
                }
            }
        }
        if slab == g.cpu_slab {
            // SAFETY: an object of the CPU slab, free again.
            unsafe { self.set_next(obj, g.freelist) };
            g.freelist = Some(obj);
            return;
        }
        let (inuse, head) = {
            let m = self.meta(slab);
            (Self::inuse(m), Self::free_head(m))
        };
        let next = head.checked_sub(1).and_then(|off| Self::obj_at(slab, off));
        // SAFETY: an object of `slab`, free again.
        unsafe { self.set_next(obj, next) };
        let inuse = inuse - 1;
        Self::set_counts(self.meta(slab), inuse, obj.as_ptr() as usize - slab + 1);
        if inuse + 1 == self.objects {
            // It was full: now it has room.
            self.partial_push(g, slab);
        }
        if inuse == 0 {
            g.nr_empty += 1;
            if g.nr_empty > MIN_PARTIAL {
                self.partial_unlink(g, slab);
                g.nr_empty -= 1;
                self.discard(g, slab);
            }
        }
    }

    fn discard(&self, g: &mut Inner, slab: usize) {
        for i in 0..(1usize << self.order) {
            // Our slab's metadata, about to go back.
            if let Some(p) = self.slab_page(slab + i * PAGE_SIZE as usize) {
                p.flags &= !PG_SLAB;
                p.private = 0;
                p.prev = NIL;
                p.next = NIL;
            }
        }
        // The allocator expects an allocated head with refcount 1.
        self.meta(slab).refcount = 1;
        g.nr_slabs -= 1;
        // SAFETY: the slab is ours and nothing references its objects (none is in use).
        unsafe {
            self.backend
                .free_pages(NonNull::new_unchecked(slab as *mut u8), self.order)
        };
    }

    /// Gives every empty slab back to the page allocator (the shrinker). Returns pages freed.
    /// A cache busy on this CPU (the reclaim path can run inside its own refill) is skipped.
    pub fn shrink(&self) -> u64 {
        let Some(mut g) = self.inner.try_lock() else {
            return 0;
        };
        self.deactivate(&mut g);
        let mut freed = 0;
        let mut slab = g.partial;
        while slab != NIL {
            let next = self.meta(slab as usize).next;
            if Self::inuse(self.meta(slab as usize)) == 0 {
                self.partial_unlink(&mut g, slab as usize);
                g.nr_empty -= 1;
                self.discard(&mut g, slab as usize);
                freed += 1u64 << self.order;
            }
            slab = next;
        }
        freed
    }

    /// Counts are worked out here rather than kept on the fast paths: free objects are the CPU
    /// list plus what partial slabs have free (full slabs have none).
    pub fn stats(&self) -> SlabStats {
        let g = self.inner.lock();
        let mut free = 0u64;
        let mut next = g.freelist;
        while let Some(obj) = next {
            free += 1;
            // SAFETY: objects on the CPU list belong to the CPU slab.
            next = unsafe { self.next_of(obj) };
        }
        let mut slab = g.partial;
        while slab != NIL {
            let m = self.meta(slab as usize);
            free += (self.objects - Self::inuse(m)) as u64;
            slab = m.next;
        }
        SlabStats {
            active_objs: g.nr_slabs * self.objects as u64 - free,
            num_objs: g.nr_slabs * self.objects as u64,
            num_slabs: g.nr_slabs,
            empty_slabs: g.nr_empty as u64,
            partial_slabs: g.nr_partial as u64,
        }
    }

    /// The `/proc/slabinfo` line.
    pub fn slabinfo(&self) -> String {
        let i = self.slabinfo_values();
        format!(
            "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
            i.name,
            i.active_objs,
            i.num_objs,
            i.objsize,
            i.objperslab,
            i.pagesperslab,
            0,
            0,
            0,
            i.active_slabs,
            i.num_slabs,
            0
        )
    }

    /// This cache's `/proc/slabinfo` line as values (the object size is the stride: what an
    /// object takes in its slab, red zones included under `slub_debug`).
    pub fn slabinfo_values(&self) -> SlabInfo {
        let s = self.stats();
        SlabInfo {
            name: self.name,
            active_objs: s.active_objs,
            num_objs: s.num_objs,
            objsize: self.stride as u64,
            objperslab: self.objects as u64,
            pagesperslab: 1u64 << self.order,
            active_slabs: s.num_slabs,
            num_slabs: s.num_slabs,
        }
    }

    // --- slub_debug ---

    // Under slub_debug every check works on one stride as a byte slice: [left red zone][object]
    // [right red zone][free pointer][state word]. Each entry point (a new slab, an object handed
    // out, an object given back) makes that slice once, where the stride is the slab layer's.

    /// Makes a new stride's red zones, poison and state (free).
    fn init_debug(&self, stride: &mut [u8]) {
        self.repair_redzones(stride);
        if self.debug & SLAB_POISON != 0 {
            self.poison(stride);
        }
        self.set_state(stride, STATE_FREE);
    }

    fn poison(&self, stride: &mut [u8]) {
        let object = &mut stride[self.left..self.left + self.object_size];
        object.fill(POISON_FREE);
        object[self.object_size - 1] = POISON_END;
    }

    fn state(&self, stride: &[u8]) -> u64 {
        let mut word = [0; 8];
        word.copy_from_slice(&stride[self.state_off..self.state_off + 8]);
        u64::from_ne_bytes(word)
    }

    fn set_state(&self, stride: &mut [u8], state: u64) {
        stride[self.state_off..self.state_off + 8].copy_from_slice(&state.to_ne_bytes());
    }

    fn report(&self, defect: &SlabDefect) {
        self.defects.fetch_add(1, Ordering::Relaxed);
        log::error!("slub_debug: cache {}: {defect}", self.name);
    }

    fn check_redzones(&self, stride: &[u8]) -> Result<(), SlabDefect> {
        if self.debug & SLAB_RED_ZONE == 0 {
            return Ok(());
        }
        let user = stride.as_ptr() as u64 + self.left as u64;
        let left = &stride[..self.left];
        if let Some(i) = left.iter().position(|&b| b != RED_LEFT) {
            return Err(SlabDefect::RedzoneLeft {
                object: user,
                offset: i as i64 - self.left as i64,
                value: left[i],
            });
        }
        let right = &stride[self.left + self.object_size..self.free_off];
        if let Some(i) = right.iter().position(|&b| b != RED_RIGHT) {
            return Err(SlabDefect::RedzoneRight {
                object: user,
                offset: (self.object_size + i) as u64,
                value: right[i],
            });
        }
        Ok(())
    }

    fn repair_redzones(&self, stride: &mut [u8]) {
        if self.debug & SLAB_RED_ZONE != 0 {
            stride[..self.left].fill(RED_LEFT);
            stride[self.left + self.object_size..self.free_off].fill(RED_RIGHT);
        }
    }

    fn check_on_alloc(&self, obj: *mut u8) {
        // SAFETY: `obj` is the stride start of the object being handed out, off the CPU free
        // list: the whole stride is the slab layer's (under the cache lock) until this returns.
        let stride = unsafe { core::slice::from_raw_parts_mut(obj, self.stride) };
        if self.debug & SLAB_POISON != 0 {
            let bytes = &stride[self.left..self.left + self.object_size];
            let last = self.object_size - 1;
            if let Some(i) = bytes
                .iter()
                .enumerate()
                .position(|(i, &b)| b != if i == last { POISON_END } else { POISON_FREE })
            {
                self.report(&SlabDefect::UseAfterFree {
                    object: obj as u64 + self.left as u64,
                    offset: i as u64,
                    value: bytes[i],
                });
            }
        }
        if let Err(d) = self.check_redzones(stride) {
            self.report(&d);
            self.repair_redzones(stride);
        }
        self.set_state(stride, STATE_ALLOCATED);
        if let Some(ctor) = self.ctor.filter(|_| self.debug & SLAB_POISON != 0) {
            // Poisoned objects are constructed here, when handed out (not at slab creation).
            ctor(&mut stride[self.left..self.left + self.object_size]);
        }
    }

    /// Validates a free under slub_debug; returns the object's stride start.
    fn check_on_free(&self, slab: usize, p: *mut u8) -> Result<NonNull<u8>, SlabDefect> {
        let owner = page_owner(self.backend, p);
        // No allocation here: this runs under the cache's lock, and kmalloc may be this cache.
        if owner != PageOwner::Slab(self.addr()) {
            let owner = match owner {
                PageOwner::Slab(other) => {
                    // SAFETY: a slab page's `private` is its cache, which outlives its objects.
                    unsafe { (*(other as *const KmemCache)).name() }
                }
                PageOwner::Page { .. } => "not a slab page",
                PageOwner::Unknown => "not kernel memory",
            };
            return Err(SlabDefect::WrongCache {
                ptr: p as u64,
                owner,
            });
        }
        let off = p as usize - slab;
        let rel = off
            .checked_sub(self.left)
            .map(|r| (r / self.stride, r % self.stride));
        let index = match rel {
            Some((i, 0)) if i < self.objects => i,
            _ => {
                let into = (off % self.stride).wrapping_sub(self.left) as u64;
                return Err(SlabDefect::NotObjectStart {
                    ptr: p as u64,
                    offset: into,
                });
            }
        };
        let Some(stride_start) = Self::obj_at(slab, index * self.stride) else {
            // Nothing lives at address 0: the owner check above refused such a pointer already.
            return Err(SlabDefect::WrongCache {
                ptr: p as u64,
                owner: "not kernel memory",
            });
        };
        // SAFETY: a stride of our slab (the owner and index checks above), whose object the
        // caller gives back or which is free already: either way the slab layer's, under the
        // cache lock, while this runs.
        let stride = unsafe { core::slice::from_raw_parts_mut(stride_start.as_ptr(), self.stride) };
        if self.state(stride) != STATE_ALLOCATED {
            return Err(SlabDefect::DoubleFree { object: p as u64 });
        }
        if let Err(d) = self.check_redzones(stride) {
            self.report(&d);
            self.repair_redzones(stride);
        }
        self.set_state(stride, STATE_FREE);
        if self.debug & SLAB_POISON != 0 {
            self.poison(stride);
        }
        Ok(stride_start)
    }
}

/// A cache of `T`s handing out owners: `KmemCache<T>` in the words.
pub struct TypedCache<T> {
    cache: KmemCache,
    _type: core::marker::PhantomData<fn() -> T>,
}

impl<T> TypedCache<T> {
    pub fn new(
        name: &'static str,
        gfp: Gfp,
        debug: u32,
        backend: &'static dyn SlabBackend,
    ) -> TypedCache<T> {
        let cache = KmemCache::new(
            name,
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
            gfp,
            None,
            debug,
            backend,
        );
        TypedCache {
            cache,
            _type: core::marker::PhantomData,
        }
    }

    /// A new object holding `value`, freed (and dropped) when the owner is.
    pub fn alloc(&self, value: T) -> Option<SlabBox<'_, T>> {
        let p = self.cache.alloc()?.cast::<T>();
        // SAFETY: a fresh object of at least `size_of::<T>()` bytes, aligned for `T`.
        unsafe { p.as_ptr().write(value) };
        Some(SlabBox {
            ptr: p,
            cache: self,
        })
    }

    pub fn cache(&self) -> &KmemCache {
        &self.cache
    }
}

/// A `T` in a slab object; drops `T` and frees the object when dropped.
pub struct SlabBox<'c, T> {
    ptr: NonNull<T>,
    cache: &'c TypedCache<T>,
}

impl<T> core::ops::Deref for SlabBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised in `alloc`, owned by this box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::DerefMut for SlabBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, uniquely.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for SlabBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped once; the object came from this cache.
        unsafe {
            self.ptr.as_ptr().drop_in_place();
            self.cache.cache.free(self.ptr.cast());
        }
    }
}

/// One object of a `KmemCache`, owned: its bytes read and write as a slice (they hold what the
/// object held: the constructor's work, poison under slub_debug, or an earlier user's data), and
/// the object goes back to its cache when the handle is dropped.
pub struct SlabObject<'c> {
    ptr: NonNull<u8>,
    cache: &'c KmemCache,
}

impl SlabObject<'_> {
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl core::ops::Deref for SlabObject<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: a live object of `object_size` initialised bytes (`SlabBackend` pages hold
        // initialised bytes), owned by this handle.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.cache.object_size) }
    }
}

impl core::ops::DerefMut for SlabObject<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the slice unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cache.object_size) }
    }
}

impl Drop for SlabObject<'_> {
    fn drop(&mut self) {
        // SAFETY: a live object of this cache, owned by this handle and freed once, here.
        unsafe { self.cache.free(self.ptr) };
    }
}

#[cfg(test)]
#[path = "slab_tests.rs"]
mod tests;
