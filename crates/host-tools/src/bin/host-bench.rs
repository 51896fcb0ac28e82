//! Host benchmarks, Ferrite beside its peers in one run (`make bench` prints them): the page
//! allocator against `buddy_system_allocator`'s `FrameAllocator` over the same 256 MiB of frames,
//! and the slab allocator (`kmalloc` + `kfree` on slab caches over the page allocator) against
//! `buddy_system_allocator::Heap`, `linked_list_allocator::Heap`, `talc` and the system `malloc`.
//! Each figure is the best of several rounds after a warm-up round, in nanoseconds per
//! alloc+free pair.
//!
//! Fairness of the slab table: every heap allocator gets its own arena of the same size, and the
//! ones that need `&mut` sit behind the same `spin::Mutex` Ferrite's caches take on every call (as
//! each would as a kernel's global allocator); `malloc` brings its own (per-thread) locking. All
//! requests are 8-byte aligned, and every pointer goes through `black_box`. The benchmarks hold
//! each allocation as an owner that gives it back when dropped: Ferrite's `KBuf`, a `RawBlock`
//! for the peers (the ring's slots cost about a nanosecond a pair more than raw pointers did).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

use buddy_system_allocator::FrameAllocator;
use ferrite_addr::{PhysAddr, PhysRange, PAGE_SHIFT};
use ferrite_mm::gfp::Gfp;
use ferrite_mm::host_ram::HostRam;
use ferrite_mm::kmalloc::{KBuf, Kmalloc};
use ferrite_mm::page::{MemMapView, Page};
use ferrite_mm::page_alloc::{GlobalPages, PageAllocator};
use ferrite_mm::slab::SlabBackend;
use ferrite_mm::zone::{ZoneLimits, MAX_ORDER};
use spin::Mutex;
use talc::base::Talc;
use talc::source::Claim;
use talc::DefaultBinning;

const BASE: u64 = 0x4000_0000;
const SIZE: u64 = 256 << 20;
const PAIRS: u64 = 2_000_000;
const ROUNDS: usize = 5;

/// A page allocator managing a fresh `size`-byte host arena as the frames at `base`, and the
/// arena's host address.
fn ferrite_allocator(base: u64, size: usize) -> (PageAllocator<HostRam>, usize) {
    let memory = [PhysRange::new(PhysAddr::new(base), size as u64)];
    let end = base + size as u64;
    let (ram, map) = HostRam::new(base, size);
    let va_base = ram.host_base();
    let limits = ZoneLimits {
        dma_end: end,
        dma32_end: end,
    };
    let mut a = PageAllocator::new(ram, map, &memory, limits);
    a.release(&memory, &memory);
    a.setup_watermarks();
    (a, va_base)
}

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..ROUNDS).map(|_| f()).fold(f64::INFINITY, f64::min)
}

// --- The slab table ---

/// Bytes of arena each heap allocator gets.
const ARENA: usize = 64 << 20;
/// Where the slab bench's page allocator puts its arena in "physical" addresses.
const SLAB_BASE: u64 = 0x8000_0000;
const SLAB_SIZES: [usize; 4] = [16, 64, 256, 512];
/// Objects alive at once in the ring pattern.
const RING: usize = 64;

/// A fresh arena of `ARENA` bytes for a peer heap, aligned and zeroed as Ferrite's (`HostRam`)
/// so every allocator starts alike: taken from `calloc` with room to align it by hand, so its
/// pages cost nothing until touched. Leaked.
fn arena() -> *mut u8 {
    let align = 4096 << MAX_ORDER;
    let layout = Layout::from_size_align(ARENA + align, 8).expect("arena layout");
    // SAFETY: a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null(), "no memory for a {ARENA}-byte arena");
    p.wrapping_add(p.align_offset(align))
}

/// Slabs for Ferrite's `kmalloc`, as the kernel's backend: the page allocator's order-0 fast
/// path, metadata through the lock-free memory-map view.
struct HostSlabBackend {
    pages: GlobalPages<HostRam>,
    view: MemMapView,
    va_base: usize,
}

// SAFETY: blocks come from the page allocator over the arena (naturally aligned, as the arena is
// aligned to the largest block), ours until freed; `page_meta` is the allocator's metadata.
unsafe impl SlabBackend for HostSlabBackend {
    #[inline]
    fn alloc_pages(&self, order: u8, gfp: Gfp) -> Option<NonNull<u8>> {
        let pa = self.pages.alloc_pages(gfp, order).ok()?;
        NonNull::new((self.va_base + (pa.as_u64() - SLAB_BASE) as usize) as *mut u8)
    }

    unsafe fn free_pages(&self, va: NonNull<u8>, order: u8) {
        let pa = SLAB_BASE + (va.as_ptr() as usize - self.va_base) as u64;
        let _ = self.pages.free_pages(PhysAddr::new(pa), order);
    }

    #[inline(always)]
    fn page_meta(&self, va: *const u8) -> Option<NonNull<Page>> {
        let off = (va as usize).wrapping_sub(self.va_base);
        if off >= ARENA {
            return None;
        }
        NonNull::new(self.view.get((SLAB_BASE + off as u64) >> PAGE_SHIFT)?)
    }
}

fn ferrite_kmalloc() -> &'static Kmalloc {
    let (a, va_base) = ferrite_allocator(SLAB_BASE, ARENA);
    let view = a.map_view();
    let backend: &'static HostSlabBackend = Box::leak(Box::new(HostSlabBackend {
        pages: GlobalPages::new(),
        view,
        va_base,
    }));
    backend.pages.install(a);
    // Leaked before first use: slab pages record their cache's address.
    Box::leak(Box::new(Kmalloc::new(backend, 0)))
}

/// An allocator under test, handing out blocks that go back to it when dropped (the benchmarks
/// hold blocks, never raw pointers). `block` never fails in these benchmarks (it panics instead).
trait Heap {
    type Block<'h>: Touch
    where
        Self: 'h;
    fn block(&self, size: usize) -> Self::Block<'_>;
}

/// What the benchmarks do with a block: show its address to `black_box` (so nothing is elided)
/// and write its first byte (a kernel's objects are touched when made).
trait Touch {
    fn addr(&self) -> *const u8;
    fn touch(&mut self, value: u8);
}

/// Ferrite's `kmalloc`, through its owner `KBuf` (which `kfree`s on drop).
struct Ferrite(&'static Kmalloc);

impl Heap for Ferrite {
    type Block<'h> = KBuf<'static>;
    #[inline(always)]
    fn block(&self, size: usize) -> KBuf<'static> {
        self.0.kmalloc_buf(size, Gfp::KERNEL).expect("ferrite")
    }
}

impl Touch for KBuf<'_> {
    #[inline(always)]
    fn addr(&self) -> *const u8 {
        self.as_ptr()
    }
    #[inline(always)]
    fn touch(&mut self, value: u8) {
        self[0] = value;
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("layout")
}

/// A peer crate's heap: a layout in, a pointer out, and the pointer and layout back to free.
trait RawHeap {
    fn alloc(&self, layout: Layout) -> NonNull<u8>;
    /// # Safety
    /// `p` must come from `alloc(layout)` and not be used afterwards.
    unsafe fn free(&self, p: NonNull<u8>, layout: Layout);
}

impl<H: RawHeap> Heap for H {
    type Block<'h>
        = RawBlock<'h, H>
    where
        H: 'h;
    #[inline(always)]
    fn block(&self, size: usize) -> RawBlock<'_, H> {
        RawBlock {
            heap: self,
            ptr: self.alloc(layout(size)),
            size,
        }
    }
}

/// One allocation from a peer heap, of at least one byte, given back when dropped.
struct RawBlock<'h, H: RawHeap> {
    heap: &'h H,
    ptr: NonNull<u8>,
    size: usize,
}

impl<H: RawHeap> Touch for RawBlock<'_, H> {
    #[inline(always)]
    fn addr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    #[inline(always)]
    fn touch(&mut self, value: u8) {
        // SAFETY: a live allocation of at least one byte owned by this block; only written.
        unsafe { self.ptr.as_ptr().write(value) };
    }
}

impl<H: RawHeap> Drop for RawBlock<'_, H> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: from `heap.alloc(layout)`, owned by this block and freed once, here.
        unsafe { self.heap.free(self.ptr, layout(self.size)) };
    }
}

/// The system `malloc`, called as the others are (not through the global allocator's shim).
struct Malloc;

impl RawHeap for Malloc {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> NonNull<u8> {
        // SAFETY: a non-zero size.
        NonNull::new(unsafe { System.alloc(layout) }).expect("malloc")
    }
    #[inline(always)]
    unsafe fn free(&self, p: NonNull<u8>, layout: Layout) {
        // SAFETY: from `System.alloc` with this layout.
        unsafe { System.dealloc(p.as_ptr(), layout) }
    }
}

struct Buddy(Mutex<buddy_system_allocator::Heap<32>>);

impl RawHeap for Buddy {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> NonNull<u8> {
        self.0.lock().alloc(layout).expect("buddy")
    }
    #[inline(always)]
    unsafe fn free(&self, p: NonNull<u8>, layout: Layout) {
        // SAFETY: from `alloc` with this layout.
        unsafe { self.0.lock().dealloc(p, layout) }
    }
}

struct LinkedList(Mutex<linked_list_allocator::Heap>);

impl RawHeap for LinkedList {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> NonNull<u8> {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .expect("linked_list")
    }
    #[inline(always)]
    unsafe fn free(&self, p: NonNull<u8>, layout: Layout) {
        // SAFETY: from `allocate_first_fit` with this layout.
        unsafe { self.0.lock().deallocate(p, layout) }
    }
}

struct Tlsf(Mutex<Talc<Claim, DefaultBinning>>);

impl RawHeap for Tlsf {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> NonNull<u8> {
        // SAFETY: a non-zero size.
        unsafe { self.0.lock().allocate(layout) }.expect("talc")
    }
    #[inline(always)]
    unsafe fn free(&self, p: NonNull<u8>, layout: Layout) {
        // SAFETY: from `allocate` with this layout.
        unsafe { self.0.lock().deallocate(p.as_ptr(), layout) }
    }
}

/// ns per alloc+free pair of one size: warm-up round, then the best of `ROUNDS`.
fn pairs<H: Heap>(h: &H, size: usize) -> f64 {
    let round = || {
        let t = Instant::now();
        for _ in 0..PAIRS {
            let block = h.block(black_box(size));
            black_box(block.addr());
            drop(block);
        }
        t.elapsed().as_nanos() as f64 / PAIRS as f64
    };
    round();
    best(round)
}

/// ns per pair with `RING` objects of mixed sizes alive: each step frees the oldest and
/// allocates a new one (writing its first byte), as a kernel's short-lived objects behave.
fn ring<H: Heap>(h: &H) -> f64 {
    let size_of = |i: u64| SLAB_SIZES[(i.wrapping_mul(0x9e37_79b9) >> 7) as usize % 4];
    let mut slots: Vec<Option<H::Block<'_>>> = (0..RING as u64)
        .map(|i| Some(h.block(size_of(i))))
        .collect();
    let mut round = || {
        let t = Instant::now();
        for i in 0..PAIRS {
            let slot = &mut slots[i as usize % RING];
            // The oldest object goes first, then its replacement is made.
            if let Some(old) = slot.take() {
                black_box(old.addr());
                drop(old);
            }
            let mut block = h.block(size_of(i));
            black_box(block.addr());
            block.touch(i as u8);
            *slot = Some(block);
        }
        t.elapsed().as_nanos() as f64 / PAIRS as f64
    };
    round();
    best(&mut round)
}

fn bench_heap<H: Heap>(name: &str, h: &H, results: &mut Vec<(String, f64)>) {
    for size in SLAB_SIZES {
        results.push((format!("host.slab.{name}.{size}"), pairs(h, size)));
    }
    results.push((format!("host.slab.{name}.ring{RING}"), ring(h)));
}

fn slab_benches(results: &mut Vec<(String, f64)>) {
    let k = ferrite_kmalloc();
    bench_heap("ferrite", &Ferrite(k), results);
    let live: u64 = k.caches().map(|c| c.stats().active_objs).sum();
    assert_eq!(live, 0, "ferrite: objects left after the benchmark");

    let mut buddy = buddy_system_allocator::Heap::<32>::new();
    // SAFETY: a fresh arena, used by this heap only.
    unsafe { buddy.init(arena() as usize, ARENA) };
    bench_heap("buddy_system_allocator", &Buddy(Mutex::new(buddy)), results);

    let mut list = linked_list_allocator::Heap::empty();
    // SAFETY: as above.
    unsafe { list.init(arena(), ARENA) };
    bench_heap(
        "linked_list_allocator",
        &LinkedList(Mutex::new(list)),
        results,
    );

    // SAFETY: as above: `Claim` hands the arena to talc on its first allocation.
    let talc = Talc::new(unsafe { Claim::new(arena(), ARENA) });
    bench_heap("talc", &Tlsf(Mutex::new(talc)), results);

    bench_heap("malloc", &Malloc, results);
}

fn main() {
    let mut results: Vec<(String, f64)> = Vec::new();
    let global: GlobalPages<HostRam> = GlobalPages::new();
    global.install(ferrite_allocator(BASE, SIZE as usize).0);
    let mut frames: FrameAllocator<32> = FrameAllocator::new();
    frames.add_frame(
        (BASE >> PAGE_SHIFT) as usize,
        ((BASE + SIZE) >> PAGE_SHIFT) as usize,
    );

    for order in [0u8, 3] {
        let ns = best(|| {
            let t = Instant::now();
            for _ in 0..PAIRS {
                let pa = global
                    .alloc_pages(Gfp::KERNEL, order)
                    .expect("ferrite alloc");
                global
                    .free_pages(black_box(pa), order)
                    .expect("ferrite free");
            }
            t.elapsed().as_nanos() as f64 / PAIRS as f64
        });
        let suffix = if order == 0 {
            String::new()
        } else {
            format!("_o{order}")
        };
        results.push((format!("host.page.ferrite{suffix}"), ns));
        let count = 1usize << order;
        let ns = best(|| {
            let t = Instant::now();
            for _ in 0..PAIRS {
                let frame = frames.alloc(count).expect("baseline alloc");
                frames.dealloc(black_box(frame), count);
            }
            t.elapsed().as_nanos() as f64 / PAIRS as f64
        });
        results.push((format!("host.page.buddy_system_allocator{suffix}"), ns));
    }
    slab_benches(&mut results);
    println!("{:<40} {:>10}  unit", "benchmark", "value");
    for (name, ns) in &results {
        println!("{name:<40} {ns:>10.1}  ns per alloc+free pair");
    }
    for (name, ns) in &results {
        println!("bench {name} {ns:.1} ns");
    }
}
