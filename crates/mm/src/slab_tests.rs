//! Host tests of the slab allocator and `kmalloc` over real host memory, against models.
//!
//! The slabs come from the real page allocator (`PageAllocator`, with debug_pagealloc on so a
//! write into a slab after it went back is caught) managing a 4 MiB-aligned host buffer: a slab's
//! "virtual address" is its host address, its "physical address" that offset from `ARENA_BASE`,
//! and its metadata the page allocator's own `Page`s. The backend counts the pages it has handed
//! out and checks every page the slab layer gives back (right order, live, no slab flags left).
// A named exception to the crate's `deny(unsafe_code)`: the tests hand out simulated memory.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::string::{String, ToString};
use std::sync::Mutex;
use std::vec::Vec;

use super::*;
use crate::addr::{PhysAddr, PhysRange, PAGE_SHIFT};
use crate::host_ram::HostRam;
use crate::kmalloc::{KBuf, Kmalloc, KMALLOC_MAX_CACHE_SIZE, KMALLOC_SIZES, ZERO_SIZE_PTR};
use crate::page::{MemMapView, PG_ALLOCATED};
use crate::page_alloc::{Mark, PageAllocator};
use crate::zone::{ZoneLimits, MAX_ORDER};

// ---------------------------------------------------------------------------------------------
// The host backend
// ---------------------------------------------------------------------------------------------

/// Where the simulated RAM starts ("physical" addresses; the bytes live in a host buffer).
const ARENA_BASE: u64 = 0x4000_0000;
const PAGE: usize = PAGE_SIZE as usize;
/// Max-order blocks are this large: aligning the host buffer to it keeps buddy blocks naturally
/// aligned as host addresses too.
const MAX_BLOCK: usize = PAGE << MAX_ORDER;

/// Slabs from a real `PageAllocator` over host memory, with accounting and checks.
struct HostBackend {
    pages: Mutex<PageAllocator<HostRam>>,
    view: MemMapView,
    va_base: usize,
    size: usize,
    /// Pages handed out and not given back.
    outstanding: AtomicU64,
    /// Blocks handed out: address -> order.
    live: Mutex<BTreeMap<usize, u8>>,
    /// Frees the backend refused: not a live block, wrong order, slab state left in the
    /// metadata, or the page allocator said no.
    bad_frees: AtomicU64,
    /// At most this many pages out at once (memory pressure on demand).
    limit: AtomicU64,
}

impl HostBackend {
    /// A backend over `size` bytes of fresh host memory, leaked so it is `'static`.
    fn new(size: usize) -> &'static HostBackend {
        assert!(size.is_multiple_of(MAX_BLOCK));
        let (ram, map) = HostRam::new(ARENA_BASE, size);
        let base = ram.host_base();
        let end = ARENA_BASE + size as u64;
        let memory = [PhysRange::new(PhysAddr::new(ARENA_BASE), size as u64)];
        let limits = ZoneLimits {
            dma_end: end,
            dma32_end: end,
        };
        let mut a = PageAllocator::new(ram, map, &memory, limits);
        // Poison free pages: a slab layer that wrote into a slab it gave back is caught.
        a.debug_pagealloc = true;
        a.release(&memory, &memory);
        let view = a.map_view();
        Box::leak(Box::new(HostBackend {
            pages: Mutex::new(a),
            view,
            va_base: base,
            size,
            outstanding: AtomicU64::new(0),
            live: Mutex::new(BTreeMap::new()),
            bad_frees: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
        }))
    }

    fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::SeqCst)
    }

    fn bad_frees(&self) -> u64 {
        self.bad_frees.load(Ordering::SeqCst)
    }

    /// Everything is back: no page out, the page allocator's lists hold all memory, no page was
    /// written while free, no bad free.
    fn assert_all_back(&self) {
        assert_eq!(self.outstanding(), 0, "pages still out");
        assert!(self.live.lock().unwrap().is_empty());
        let a = self.pages.lock().unwrap();
        assert_eq!(a.free_pages(), a.managed_pages());
        assert_eq!(a.check_free_lists().unwrap(), a.managed_pages());
        assert_eq!(a.poison_errors, 0, "a page was written while free");
        assert_eq!(self.bad_frees(), 0, "bad frees reached the backend");
    }

    fn meta(&self, va: *const u8) -> Page {
        let m = self.page_meta(va).expect("arena address");
        // SAFETY: metadata of the arena; only read (copied).
        unsafe { m.as_ptr().read() }
    }

    fn pa(&self, va: usize) -> PhysAddr {
        PhysAddr::new(ARENA_BASE + (va - self.va_base) as u64)
    }
}

// SAFETY: blocks come from the page allocator, which hands out naturally aligned buddy blocks of
// the arena (aligned to MAX_BLOCK, so natural alignment carries over to host addresses), used by
// nobody else until freed; `page_meta` returns the allocator's metadata for the frame.
unsafe impl SlabBackend for HostBackend {
    fn alloc_pages(&self, order: u8, gfp: Gfp) -> Option<NonNull<u8>> {
        let n = 1u64 << order;
        let limit = self.limit.load(Ordering::SeqCst);
        if self.outstanding.load(Ordering::SeqCst) + n > limit {
            return None;
        }
        let pa = self
            .pages
            .lock()
            .unwrap()
            .alloc(gfp, order, Mark::Min)
            .ok()?;
        let va = self.va_base + (pa.as_u64() - ARENA_BASE) as usize;
        assert_eq!(va % (PAGE << order), 0, "block not naturally aligned");
        let old = self.live.lock().unwrap().insert(va, order);
        assert!(old.is_none(), "block {va:#x} handed out twice");
        self.outstanding.fetch_add(n, Ordering::SeqCst);
        NonNull::new(va as *mut u8)
    }

    unsafe fn free_pages(&self, va: NonNull<u8>, order: u8) {
        let va = va.as_ptr() as usize;
        let mut live = self.live.lock().unwrap();
        if live.get(&va) != Some(&order) {
            self.bad_frees.fetch_add(1, Ordering::SeqCst);
            return;
        }
        // The metadata must be as `alloc_pages` handed it out: no slab state left in any page,
        // the head still an allocation of refcount 1.
        let head = self.meta(va as *const u8);
        if head.flags & PG_ALLOCATED == 0 || head.refcount != 1 {
            self.bad_frees.fetch_add(1, Ordering::SeqCst);
            return;
        }
        for i in 0..1usize << order {
            let m = self.meta((va + i * PAGE) as *const u8);
            if m.flags & PG_SLAB != 0 || m.private != 0 {
                self.bad_frees.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        if self.pages.lock().unwrap().free(self.pa(va), order).is_err() {
            self.bad_frees.fetch_add(1, Ordering::SeqCst);
            return;
        }
        live.remove(&va);
        self.outstanding.fetch_sub(1 << order, Ordering::SeqCst);
    }

    fn page_meta(&self, va: *const u8) -> Option<NonNull<Page>> {
        let v = va as usize;
        if v < self.va_base || v >= self.va_base + self.size {
            return None;
        }
        let pfn = (ARENA_BASE + (v - self.va_base) as u64) >> PAGE_SHIFT;
        NonNull::new(self.view.get(pfn)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

use crate::test_rng::Rng;

thread_local! {
    /// Constructor calls on this thread.
    static CTOR_CALLS: Cell<u64> = const { Cell::new(0) };
    /// Error lines logged on this thread (see `Capture`).
    static LOGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn ctor_byte(i: usize) -> u8 {
    (i as u8).wrapping_mul(7) ^ 0xc3
}

/// A constructor that fills the object (of `N` bytes) with `ctor_byte`.
fn ctor<const N: usize>(object: &mut [u8]) {
    CTOR_CALLS.with(|c| c.set(c.get() + 1));
    assert_eq!(object.len(), N, "the slab layer passes the whole object");
    for (i, b) in object.iter_mut().enumerate() {
        *b = ctor_byte(i);
    }
}

fn ctor_calls() -> u64 {
    CTOR_CALLS.with(|c| c.get())
}

fn ctor_for(size: usize) -> fn(&mut [u8]) {
    match size {
        8 => ctor::<8>,
        24 => ctor::<24>,
        64 => ctor::<64>,
        96 => ctor::<96>,
        100 => ctor::<100>,
        200 => ctor::<200>,
        1000 => ctor::<1000>,
        4096 => ctor::<4096>,
        _ => panic!("no constructor for {size} bytes"),
    }
}

fn is_constructed(object: &[u8]) -> bool {
    object.iter().enumerate().all(|(i, &v)| v == ctor_byte(i))
}

fn pattern_byte(id: u64, i: usize) -> u8 {
    (id as u8) ^ (i as u8).wrapping_mul(31) ^ ((id >> 8) as u8).rotate_left(3)
}

fn fill(object: &mut [u8], id: u64) {
    for (i, b) in object.iter_mut().enumerate() {
        *b = pattern_byte(id, i);
    }
}

/// The first offset where the object differs from its pattern.
fn check(object: &[u8], id: u64) -> Option<usize> {
    object
        .iter()
        .enumerate()
        .position(|(i, &v)| v != pattern_byte(id, i))
}

/// Captures log lines per thread, so a test can read the reports its own calls made.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LOGS.with(|l| l.borrow_mut().push(record.args().to_string()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Starts capturing (once per process) and forgets this thread's lines so far. Returns whether
/// lines are captured (another logger could have been installed first).
fn capture_logs() -> bool {
    static ONCE: std::sync::Once = std::sync::Once::new();
    static OK: AtomicU64 = AtomicU64::new(0);
    ONCE.call_once(|| {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Error);
            OK.store(1, Ordering::SeqCst);
        }
    });
    LOGS.with(|l| l.borrow_mut().clear());
    OK.load(Ordering::SeqCst) == 1
}

fn take_logs() -> Vec<String> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

fn leak_cache(
    name: &'static str,
    size: usize,
    align: usize,
    ctor: Option<fn(&mut [u8])>,
    debug: u32,
    backend: &'static HostBackend,
) -> &'static KmemCache {
    Box::leak(Box::new(KmemCache::new(
        name,
        size,
        align,
        Gfp::KERNEL,
        ctor,
        debug,
        backend,
    )))
}

fn defects(c: &KmemCache) -> u64 {
    c.defects.load(Ordering::SeqCst)
}

/// The page metadata says `[p, p + size)` is in a slab of `cache`.
fn assert_in_slab_of(b: &HostBackend, cache: &KmemCache, p: *const u8, size: usize) {
    for q in [p, p.wrapping_add(size - 1)] {
        let m = b.meta(q);
        assert!(m.flags & PG_SLAB != 0, "{:p}: page not marked PG_SLAB", q);
        assert_eq!(
            m.private,
            cache as *const KmemCache as u64,
            "{:p}: page does not point at cache {}",
            q,
            cache.name()
        );
    }
    let slab = (p as usize) & !(cache.slab_bytes() - 1);
    assert!(
        p as usize + size <= slab + cache.slab_bytes(),
        "object crosses its slab"
    );
}

// ---------------------------------------------------------------------------------------------
// Property test against a model
// ---------------------------------------------------------------------------------------------

struct Spec {
    size: usize,
    align: usize,
    ctor: bool,
    debug: u32,
}

const SIZES: [usize; 7] = [8, 24, 64, 96, 200, 1000, 4096];
const ALIGNS: [usize; 4] = [8, 16, 64, 256];

fn specs() -> Vec<Spec> {
    let mut v = Vec::new();
    for debug in [0, SLAB_DEBUG_ALL, SLAB_RED_ZONE | SLAB_CONSISTENCY] {
        for ctor in [false, true] {
            for (i, &size) in SIZES.iter().enumerate() {
                v.push(Spec {
                    size,
                    align: ALIGNS[(i + ctor as usize + debug as usize) % ALIGNS.len()],
                    ctor,
                    debug,
                });
            }
        }
    }
    v
}

struct Live {
    cache: usize,
    size: usize,
    id: u64,
    object: SlabObject<'static>,
}

fn verify_all(live: &BTreeMap<usize, Live>) {
    for (&p, o) in live {
        assert_eq!(
            check(&o.object, o.id),
            None,
            "object {p:#x} (cache {}) was overwritten while live",
            o.cache
        );
    }
}

#[test]
fn random_alloc_free_agrees_with_a_model_and_gives_every_page_back() {
    let names: Vec<&'static str> = specs()
        .iter()
        .map(|s| {
            &*Box::leak(
                format!(
                    "test-{}-a{}-c{}-d{}",
                    s.size, s.align, s.ctor as u8, s.debug
                )
                .into_boxed_str(),
            )
        })
        .collect();
    for seed in 1..=4u64 {
        let backend = HostBackend::new(64 << 20);
        let specs = specs();
        let caches: Vec<&'static KmemCache> = specs
            .iter()
            .zip(&names)
            .map(|(s, &name)| {
                let ctor = s.ctor.then(|| ctor_for(s.size));
                leak_cache(name, s.size, s.align, ctor, s.debug, backend)
            })
            .collect();
        let mut rng = Rng::new(seed);
        // Object start -> what lives there. Also the interval map for overlaps.
        let mut live: BTreeMap<usize, Live> = BTreeMap::new();
        let mut count = vec![0u64; caches.len()];
        let mut next_id = 1u64;
        // Phases: grow, shrink, grow again, drain mostly; percentages of allocations.
        for (phase, alloc_pct) in [70u64, 25, 65, 20].into_iter().enumerate() {
            for step in 0..6000 {
                let r = rng.below(100);
                if r < alloc_pct || live.is_empty() {
                    let ci = rng.below(caches.len() as u64) as usize;
                    let (c, s) = (caches[ci], &specs[ci]);
                    let mut object = c
                        .alloc_object()
                        .expect("allocation failed with memory to spare");
                    let p = object.as_ptr();
                    let a = p.as_ptr() as usize;
                    assert_eq!(a % s.align, 0, "{}: {a:#x} misaligned", c.name());
                    assert_in_slab_of(backend, c, p.as_ptr(), s.size);
                    if let Some((&prev, o)) = live.range(..=a).next_back() {
                        assert!(
                            prev + o.size <= a,
                            "phase {phase} step {step}: {a:#x} ({}) overlaps {prev:#x}+{}",
                            c.name(),
                            o.size
                        );
                    }
                    if let Some((&next, _)) = live.range(a..).next() {
                        assert!(
                            a + s.size <= next,
                            "phase {phase} step {step}: {a:#x}+{} ({}) overlaps {next:#x}",
                            s.size,
                            c.name()
                        );
                    }
                    assert_eq!(object.len(), s.size);
                    if s.ctor {
                        assert!(
                            is_constructed(&object),
                            "{}: object {a:#x} handed out unconstructed",
                            c.name()
                        );
                    }
                    let id = next_id;
                    next_id += 1;
                    fill(&mut object, id);
                    live.insert(
                        a,
                        Live {
                            cache: ci,
                            size: s.size,
                            id,
                            object,
                        },
                    );
                    count[ci] += 1;
                } else {
                    let k = rng.below(live.len() as u64) as usize;
                    let a = *live.keys().nth(k).unwrap();
                    let mut o = live.remove(&a).unwrap();
                    assert_eq!(
                        check(&o.object, o.id),
                        None,
                        "object {a:#x} overwritten while live"
                    );
                    if specs[o.cache].ctor {
                        // Constructed caches take objects back in their constructed state.
                        ctor_for(o.size)(&mut o.object);
                    }
                    count[o.cache] -= 1;
                    drop(o);
                }
                if rng.below(1000) == 0 {
                    // The shrinker runs at any time and must not disturb live objects.
                    let ci = rng.below(caches.len() as u64) as usize;
                    caches[ci].shrink();
                    verify_all(&live);
                }
            }
            verify_all(&live);
            for (ci, c) in caches.iter().enumerate() {
                let st = c.stats();
                assert_eq!(st.active_objs, count[ci], "{}: active objects", c.name());
                assert_eq!(st.num_objs, st.num_slabs * c.objects as u64);
                assert!(st.num_objs >= st.active_objs);
                assert!(st.empty_slabs <= st.partial_slabs && st.partial_slabs <= st.num_slabs);
                // Every slab holding a live object is counted.
                let slabs: HashSet<usize> = live
                    .iter()
                    .filter(|(_, o)| o.cache == ci)
                    .map(|(&a, _)| a & !(c.slab_bytes() - 1))
                    .collect();
                assert!(st.num_slabs >= slabs.len() as u64, "{}", c.name());
            }
        }
        // Free everything in random order: slabs empty out and, past MIN_PARTIAL empty ones,
        // go back to the page allocator even before the shrinker runs.
        let mut rest: Vec<(usize, Live)> = std::mem::take(&mut live).into_iter().collect();
        while !rest.is_empty() {
            let (_, mut o) = rest.swap_remove(rng.below(rest.len() as u64) as usize);
            assert_eq!(check(&o.object, o.id), None);
            if specs[o.cache].ctor {
                ctor_for(o.size)(&mut o.object);
            }
            drop(o);
        }
        let mut bound = 0;
        for c in &caches {
            let st = c.stats();
            assert_eq!(st.active_objs, 0, "{}", c.name());
            // All that is left: empty partial slabs, and maybe the CPU slab.
            assert_eq!(st.empty_slabs, st.partial_slabs, "{}: {st:?}", c.name());
            assert!(st.num_slabs - st.partial_slabs <= 1, "{}: {st:?}", c.name());
            assert!(
                st.num_slabs <= MIN_PARTIAL as u64 + 1,
                "{}: {} empty slabs kept without a shrink",
                c.name(),
                st.num_slabs
            );
            bound += (MIN_PARTIAL as u64 + 1) << c.order;
        }
        assert!(backend.outstanding() <= bound);
        let before = backend.outstanding();
        let freed: u64 = caches.iter().map(|c| c.shrink()).sum();
        assert_eq!(freed, before, "shrink reports the pages it freed");
        for (c, s) in caches.iter().zip(&specs) {
            assert_eq!(c.stats(), SlabStats::default(), "{}", c.name());
            // Constructor + poisoning is covered (and its false reports shown) by
            // `ctor_runs_before_first_use_and_after_poisoning`.
            if !(s.ctor && s.debug & SLAB_POISON != 0) {
                assert_eq!(defects(c), 0, "{}: false slub_debug report", c.name());
            }
        }
        backend.assert_all_back();
    }
}

#[test]
fn frees_that_empty_many_slabs_release_them_without_a_shrink() {
    let b = HostBackend::new(16 << 20);
    for debug in [0, SLAB_DEBUG_ALL] {
        let c = leak_cache("min-partial", 256, 8, None, debug, b);
        let per = c.objects;
        let n = per * 40;
        let objs: Vec<SlabObject> = (0..n).map(|_| c.alloc_object().unwrap()).collect();
        assert_eq!(c.stats().num_slabs, 40);
        assert_eq!(b.outstanding(), 40 << c.order);
        // Free slab by slab (in allocation order, so each slab empties in turn).
        for o in objs {
            drop(o);
        }
        let st = c.stats();
        assert_eq!(st.active_objs, 0);
        assert!(
            st.num_slabs <= MIN_PARTIAL as u64 + 1,
            "{} slabs kept",
            st.num_slabs
        );
        assert!(st.empty_slabs <= MIN_PARTIAL as u64);
        assert!(b.outstanding() <= (MIN_PARTIAL as u64 + 1) << c.order);
        assert!(c.shrink() > 0);
        assert_eq!(c.stats().num_slabs, 0);
        assert_eq!(defects(c), 0);
        b.assert_all_back();
    }
}

#[test]
fn concurrent_alloc_and_free_never_share_an_object() {
    let b = HostBackend::new(64 << 20);
    for debug in [0, SLAB_DEBUG_ALL] {
        let c = leak_cache("threads", 96, 16, None, debug, b);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                s.spawn(move || {
                    let mut rng = Rng::new(t + 17);
                    let mut mine: Vec<(SlabObject, u64)> = Vec::new();
                    for i in 0..20_000u64 {
                        if rng.below(100) < 55 || mine.is_empty() {
                            let mut o = c.alloc_object().unwrap();
                            let id = (t << 32) | i;
                            fill(&mut o, id);
                            mine.push((o, id));
                        } else {
                            let k = rng.below(mine.len() as u64) as usize;
                            let (o, id) = mine.swap_remove(k);
                            assert_eq!(check(&o, id), None, "shared object");
                        }
                    }
                    for (o, id) in mine {
                        assert_eq!(check(&o, id), None, "shared object");
                    }
                });
            }
        });
        assert_eq!(c.stats().active_objs, 0);
        c.shrink();
        assert_eq!(defects(c), 0);
        b.assert_all_back();
    }
}

#[test]
fn running_out_of_pages_fails_cleanly_and_the_cache_recovers() {
    let b = HostBackend::new(16 << 20);
    let c = leak_cache("oom", 200, 8, None, 0, b);
    b.limit.store(8, Ordering::SeqCst);
    let mut objs = Vec::new();
    while let Some(o) = c.alloc_object() {
        objs.push(o);
        assert!(objs.len() < 100_000);
    }
    assert_eq!(b.outstanding(), 8);
    let slabs = 8 / (c.slab_bytes() / 4096);
    assert_eq!(
        objs.len(),
        slabs * c.objects,
        "every object of every slab used"
    );
    let distinct: HashSet<NonNull<u8>> = objs.iter().map(|o| o.as_ptr()).collect();
    assert_eq!(distinct.len(), objs.len());
    // Still failing while full, and no state damaged by the failures.
    assert!(c.alloc().is_none());
    assert_eq!(c.stats().active_objs, objs.len() as u64);
    // Memory comes back: the cache works again.
    objs.pop();
    let again = c.alloc_object().expect("a free object again");
    objs.push(again);
    b.limit.store(u64::MAX, Ordering::SeqCst);
    objs.push(c.alloc_object().unwrap());
    drop(objs);
    c.shrink();
    b.assert_all_back();
}

// ---------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------

#[test]
fn ctor_runs_once_per_object_when_its_slab_is_made() {
    let b = HostBackend::new(16 << 20);
    let c = leak_cache("ctor", 100, 8, Some(ctor::<100>), 0, b);
    let before = ctor_calls();
    let mut objs = Vec::new();
    for _ in 0..c.objects * 3 + 1 {
        let o = c.alloc_object().unwrap();
        assert!(is_constructed(&o), "unconstructed object");
        objs.push(o);
    }
    // Four slabs made: each object constructed exactly once, before its first use.
    assert_eq!(ctor_calls() - before, 4 * c.objects as u64);
    // Objects go back constructed and come out as they went in (the free pointer is not in
    // the object).
    let n = objs.len();
    drop(objs);
    let again: Vec<SlabObject> = (0..n).map(|_| c.alloc_object().unwrap()).collect();
    assert!(again.iter().all(|o| is_constructed(o)));
    assert_eq!(ctor_calls() - before, 4 * c.objects as u64);
}

#[test]
fn ctor_runs_before_first_use_and_after_poisoning() {
    let b = HostBackend::new(16 << 20);
    let c = leak_cache("ctor-debug", 100, 8, Some(ctor::<100>), SLAB_DEBUG_ALL, b);
    let logs = capture_logs();
    let mut objs = Vec::new();
    for _ in 0..c.objects * 2 {
        let o = c.alloc_object().unwrap();
        assert!(is_constructed(&o), "unconstructed object");
        objs.push(o);
    }
    // Freed objects are poisoned; the constructor must run again before reuse.
    let n = objs.len();
    for o in objs {
        let p = o.as_ptr();
        drop(o);
        // SAFETY: the object part of a free object of ours (its slab is live), only read.
        let first = unsafe { p.as_ptr().read() };
        assert_eq!(first, POISON_FREE, "free objects are poisoned");
    }
    let again: Vec<SlabObject> = (0..n).map(|_| c.alloc_object().unwrap()).collect();
    assert!(
        again.iter().all(|o| is_constructed(o)),
        "poison left in a reused object"
    );
    let lines = take_logs();
    assert_eq!(
        defects(c),
        0,
        "false reports for a constructed cache: {:?}",
        if logs { lines.first().cloned() } else { None }
    );
}

// ---------------------------------------------------------------------------------------------
// slub_debug defects
// ---------------------------------------------------------------------------------------------

const DBG_SIZE: usize = 100;

fn debug_cache(name: &'static str) -> (&'static HostBackend, &'static KmemCache) {
    let b = HostBackend::new(8 << 20);
    (b, leak_cache(name, DBG_SIZE, 8, None, SLAB_DEBUG_ALL, b))
}

/// The cache still works after a report: a round of allocations and frees, no new report, no
/// object handed out twice, and everything goes back.
fn assert_usable<'c>(b: &HostBackend, c: &'c KmemCache, mut held: Vec<SlabObject<'c>>) {
    let d = defects(c);
    for i in 0..c.objects * 3 {
        let mut o = c.alloc_object().unwrap();
        fill(&mut o, i as u64);
        held.push(o);
    }
    let distinct: HashSet<NonNull<u8>> = held.iter().map(|o| o.as_ptr()).collect();
    assert_eq!(distinct.len(), held.len(), "an object was handed out twice");
    drop(held);
    assert_eq!(defects(c), d, "new reports from correct use");
    assert_eq!(c.stats().active_objs, 0);
    c.shrink();
    b.assert_all_back();
}

fn has_line(logs: bool, lines: &[String], needles: &[&str]) {
    if !logs {
        return;
    }
    assert!(
        lines.iter().any(|l| needles.iter().all(|n| l.contains(n))),
        "no report containing {needles:?} in {lines:?}"
    );
}

#[test]
fn slub_debug_reports_a_double_free_and_does_not_hand_the_object_out_twice() {
    let (b, c) = debug_cache("dbg-double");
    let logs = capture_logs();
    let object = c.alloc_object().unwrap();
    let other = c.alloc_object().unwrap();
    let a = object.as_ptr();
    drop(object);
    let active = c.stats().active_objs;
    // SAFETY: a deliberate double free, which slub_debug must catch.
    unsafe { c.free(a) };
    assert_eq!(defects(c), 1);
    assert_eq!(
        c.stats().active_objs,
        active,
        "a refused free changed the counts"
    );
    has_line(
        logs,
        &take_logs(),
        &[
            "dbg-double",
            "double free",
            &format!("{:#x}", a.as_ptr() as usize),
        ],
    );
    assert_usable(b, c, vec![other]);
}

#[test]
fn slub_debug_reports_a_free_of_a_pointer_inside_an_object() {
    let (b, c) = debug_cache("dbg-inside");
    let logs = capture_logs();
    let a = c.alloc_object().unwrap();
    let active = c.stats().active_objs;
    let inside = NonNull::new(a.as_ptr().as_ptr().wrapping_add(8)).unwrap();
    // SAFETY: a deliberate bad free, which slub_debug must catch.
    unsafe { c.free(inside) };
    assert_eq!(defects(c), 1);
    assert_eq!(c.stats().active_objs, active);
    has_line(
        logs,
        &take_logs(),
        &["dbg-inside", "0x8 bytes into an object"],
    );
    // The object is still live and frees normally.
    assert_usable(b, c, vec![a]);
}

#[test]
fn slub_debug_reports_a_write_past_the_end_on_free() {
    let (b, c) = debug_cache("dbg-right");
    let logs = capture_logs();
    let mut a = c.alloc_object().unwrap();
    fill(&mut a, 1);
    // SAFETY: inside the object's right red zone (deliberately past the object).
    unsafe { a.as_ptr().as_ptr().add(DBG_SIZE).write(0) };
    drop(a);
    assert_eq!(defects(c), 1);
    has_line(
        logs,
        &take_logs(),
        &[
            "dbg-right",
            "past the end",
            &format!("offset {DBG_SIZE:#x}"),
        ],
    );
    assert_eq!(c.stats().active_objs, 0, "the object is freed all the same");
    assert_usable(b, c, Vec::new());
}

#[test]
fn slub_debug_reports_a_write_before_the_start_on_free() {
    let (b, c) = debug_cache("dbg-left");
    let logs = capture_logs();
    let a = c.alloc_object().unwrap();
    // SAFETY: inside the object's left red zone (deliberately before the object).
    unsafe { a.as_ptr().as_ptr().sub(1).write(0) };
    drop(a);
    assert_eq!(defects(c), 1);
    has_line(
        logs,
        &take_logs(),
        &["dbg-left", "left red zone", "offset -1"],
    );
    assert_usable(b, c, Vec::new());
}

#[test]
fn slub_debug_reports_a_write_after_free_on_the_next_allocation() {
    let (b, c) = debug_cache("dbg-uaf");
    let logs = capture_logs();
    let keep = c.alloc_object().unwrap();
    let object = c.alloc_object().unwrap();
    let a = object.as_ptr();
    drop(object);
    // SAFETY: a deliberate write to a free object (still slab memory).
    unsafe { a.as_ptr().add(3).write(0x42) };
    assert_eq!(
        defects(c),
        0,
        "nothing is checked until the object is handed out"
    );
    let again = c.alloc_object().unwrap();
    assert_eq!(again.as_ptr(), a, "the free list is LIFO");
    assert_eq!(defects(c), 1);
    has_line(
        logs,
        &take_logs(),
        &["dbg-uaf", "written while free", "offset 0x3", "0x42"],
    );
    assert_usable(b, c, vec![keep, again]);
}

#[test]
fn slub_debug_reports_a_free_to_the_wrong_cache() {
    let b = HostBackend::new(8 << 20);
    let c1 = leak_cache("dbg-one", DBG_SIZE, 8, None, SLAB_DEBUG_ALL, b);
    let c2 = leak_cache("dbg-two", DBG_SIZE, 8, None, SLAB_DEBUG_ALL, b);
    let logs = capture_logs();
    let a = c1.alloc_object().unwrap();
    let x = c2.alloc_object().unwrap();
    // SAFETY: a deliberate free to the wrong cache, which slub_debug must catch.
    unsafe { c2.free(a.as_ptr()) };
    assert_eq!(defects(c2), 1);
    has_line(logs, &take_logs(), &["dbg-two"]);
    assert_eq!(c1.stats().active_objs, 1);
    assert_eq!(c2.stats().active_objs, 1);
    // The right caches now.
    drop((a, x));
    assert_eq!(defects(c1), 0);
    c1.shrink();
    c2.shrink();
    b.assert_all_back();
}

#[test]
fn defect_reports_name_the_offset() {
    let d = SlabDefect::RedzoneRight {
        object: 0x1000,
        offset: 0x64,
        value: 0,
    };
    assert!(d.to_string().contains("0x1000") && d.to_string().contains("offset 0x64"));
    let d = SlabDefect::NotObjectStart {
        ptr: 0x1008,
        offset: 8,
    };
    assert!(d.to_string().contains("0x8 bytes into an object"));
}

// ---------------------------------------------------------------------------------------------
// kmalloc
// ---------------------------------------------------------------------------------------------

fn kmalloc_over(b: &'static HostBackend, debug: u32) -> &'static Kmalloc {
    // Leaked before first use: slab pages record their cache's address.
    Box::leak(Box::new(Kmalloc::new(b, debug)))
}

fn cache_of<'k>(k: &'k Kmalloc, b: &HostBackend, p: *const u8) -> &'k KmemCache {
    let PageOwner::Slab(cache) = page_owner(b, p) else {
        panic!("{p:p} is not in a slab");
    };
    k.cache_at(cache).expect("a kmalloc cache")
}

fn active(k: &Kmalloc) -> u64 {
    k.caches().map(|c| c.stats().active_objs).sum()
}

#[test]
fn kmalloc_sizes_land_in_their_class() {
    for debug in [0, SLAB_DEBUG_ALL] {
        let b = HostBackend::new(32 << 20);
        let k = kmalloc_over(b, debug);
        let mut held = Vec::new();
        for size in 1..=KMALLOC_MAX_CACHE_SIZE {
            let mut p = k.kmalloc_buf(size, Gfp::KERNEL).unwrap();
            let class = *KMALLOC_SIZES.iter().find(|&&c| c >= size).unwrap();
            assert_eq!(k.ksize(p.as_ptr()), class, "size {size}");
            let c = cache_of(k, b, p.as_ptr());
            assert_eq!(c.object_size(), class);
            assert!(c.name().starts_with("kmalloc-"), "{}", c.name());
            assert_in_slab_of(b, c, p.as_ptr(), class);
            assert_eq!(p.as_ptr() as usize % 8, 0);
            assert_eq!(p.len(), size);
            fill(&mut p, size as u64);
            held.push(p);
            if held.len() == 64 {
                for p in held.drain(..) {
                    assert_eq!(check(&p, p.len() as u64), None);
                }
            }
        }
        drop(held);
        assert_eq!(active(k), 0);
        assert!(k.caches().all(|c| defects(c) == 0));
        k.shrink();
        b.assert_all_back();
    }
}

/// Linux's guarantee: power-of-two sizes are naturally aligned, 96 and 192 to 32 and 64 (for
/// the classes up to `upto`).
fn natural_alignment(k: &Kmalloc, upto: usize) {
    let mut held = Vec::new();
    for (i, &class) in KMALLOC_SIZES.iter().enumerate() {
        if class > upto {
            continue;
        }
        let want = if class.is_power_of_two() {
            class
        } else {
            32 << (i / 6)
        };
        for _ in 0..5 {
            let p = k.kmalloc_buf(class, Gfp::KERNEL).unwrap();
            assert_eq!(
                p.as_ptr() as usize % want,
                0,
                "kmalloc({class}) at {:p}",
                p.as_ptr()
            );
            held.push(p);
        }
    }
    drop(held);
}

fn alignment_requests(b: &HostBackend, k: &Kmalloc) {
    let mut held: BTreeMap<usize, KBuf> = BTreeMap::new();
    let sizes = [1, 8, 24, 96, 100, 192, 200, 1000, 3000, 4096, 5000, 8192];
    for align in (3..=16).map(|s| 1usize << s) {
        for size in sizes {
            let mut p = k.kmalloc_buf_aligned(size, align, Gfp::KERNEL).unwrap();
            let a = p.as_ptr() as usize;
            assert_eq!(a % align, 0, "kmalloc_aligned({size}, {align}) at {a:#x}");
            assert!(k.ksize(p.as_ptr()) >= size);
            if let Some((&prev, q)) = held.range(..=a).next_back() {
                assert!(prev + q.len() <= a, "overlap");
            }
            if let Some((&next, _)) = held.range(a..).next() {
                assert!(a + size <= next, "overlap");
            }
            fill(&mut p, a as u64);
            held.insert(a, p);
        }
    }
    for (a, p) in held {
        assert_eq!(check(&p, a as u64), None);
    }
    assert_eq!(active(k), 0);
    k.shrink();
    b.assert_all_back();
}

#[test]
fn kmalloc_honours_alignment_requests() {
    let b = HostBackend::new(64 << 20);
    let k = kmalloc_over(b, 0);
    natural_alignment(k, KMALLOC_MAX_CACHE_SIZE);
    alignment_requests(b, k);
}

#[test]
fn kmalloc_honours_alignment_requests_under_slub_debug() {
    let b = HostBackend::new(64 << 20);
    let k = kmalloc_over(b, SLAB_DEBUG_ALL);
    natural_alignment(k, PAGE);
    alignment_requests(b, k);
}

#[test]
fn kmalloc_8k_is_naturally_aligned_under_slub_debug() {
    let b = HostBackend::new(16 << 20);
    let k = kmalloc_over(b, SLAB_DEBUG_ALL);
    natural_alignment(k, KMALLOC_MAX_CACHE_SIZE);
}

#[test]
fn kmalloc_beyond_8k_takes_whole_pages() {
    let b = HostBackend::new(64 << 20);
    let k = kmalloc_over(b, 0);
    for size in [
        KMALLOC_MAX_CACHE_SIZE + 1,
        12288,
        16384,
        16385,
        65536,
        100_000,
        1 << 20,
        4 << 20,
    ] {
        let pages = size.div_ceil(PAGE).next_power_of_two();
        let before = b.outstanding();
        let mut p = k.kmalloc_buf(size, Gfp::KERNEL).unwrap();
        assert_eq!(b.outstanding() - before, pages as u64, "size {size}");
        assert_eq!(k.ksize(p.as_ptr()), pages * PAGE, "size {size}");
        assert_eq!(p.as_ptr() as usize % (pages * PAGE), 0);
        let m = b.meta(p.as_ptr());
        assert!(m.flags & PG_SLAB == 0 && m.flags & PG_ALLOCATED != 0);
        fill(&mut p, 7);
        assert_eq!(check(&p, 7), None);
        drop(p);
        assert_eq!(b.outstanding(), before);
    }
    // Larger than the largest block: a clean failure.
    assert!(k.kmalloc(PAGE << (MAX_ORDER + 1), Gfp::KERNEL).is_none());
    // A second kfree of a page allocation is refused, not passed on.
    let p = k.kmalloc_buf(20_000, Gfp::KERNEL).unwrap();
    let freed = p.as_ptr();
    drop(p);
    // SAFETY: (deliberately) freed a second time, which kfree must refuse.
    unsafe { k.kfree(freed) };
    b.assert_all_back();
}

#[test]
fn krealloc_grows_and_shrinks_keeping_the_contents() {
    for debug in [0, SLAB_DEBUG_ALL] {
        let b = HostBackend::new(32 << 20);
        let k = kmalloc_over(b, debug);
        // krealloc(NULL) is kmalloc.
        // SAFETY: null is allowed.
        let p = unsafe { k.krealloc(std::ptr::null_mut(), 10, 8, Gfp::KERNEL) }.unwrap();
        assert!(k.ksize(p.as_ptr()) >= 10);
        // SAFETY: live kmalloc memory, freed once.
        unsafe { k.kfree(p.as_ptr()) };
        let mut p = k.kmalloc_buf(10, Gfp::KERNEL).unwrap();
        let mut valid = 10;
        fill(&mut p, 99);
        for new in [
            20, 100, 500, 3000, 9000, 20_000, 70_000, 5000, 100, 7, 1, 300, 8192,
        ] {
            let (old_cap, old) = (k.ksize(p.as_ptr()), p.as_ptr());
            let mut q = p.resize(new, Gfp::KERNEL).ok().unwrap();
            if new <= old_cap {
                assert_eq!(q.as_ptr(), old, "{valid} -> {new}: shrinking in place");
            } else {
                assert_ne!(q.as_ptr(), old);
            }
            let keep = valid.min(new);
            assert_eq!(
                check(&q[..keep], 99),
                None,
                "{valid} -> {new}: contents lost"
            );
            assert!(k.ksize(q.as_ptr()) >= new);
            fill(&mut q, 99);
            p = q;
            valid = new;
        }
        // A size no block can hold: the buffer comes back as it was, still owned.
        let p = p
            .resize(PAGE << (MAX_ORDER + 1), Gfp::KERNEL)
            .err()
            .expect("larger than the largest block");
        assert_eq!((p.len(), check(&p, 99)), (valid, None));
        // krealloc(p, 0) frees and returns ZERO_SIZE_PTR.
        let z = p.resize(0, Gfp::KERNEL).ok().unwrap();
        assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
        assert!(z.is_empty());
        drop(z);
        assert_eq!(active(k), 0);
        assert!(k.caches().all(|c| defects(c) == 0));
        k.shrink();
        b.assert_all_back();
    }
}

#[test]
fn kmalloc_zero_and_kfree_of_null_are_no_ops() {
    let b = HostBackend::new(8 << 20);
    let k = kmalloc_over(b, SLAB_DEBUG_ALL);
    let z = k.kmalloc(0, Gfp::KERNEL).unwrap().as_ptr();
    assert_eq!(z as usize, ZERO_SIZE_PTR);
    assert_eq!(
        k.kmalloc_aligned(0, 64, Gfp::KERNEL).unwrap().as_ptr() as usize,
        ZERO_SIZE_PTR
    );
    assert_eq!(k.ksize(z), 0);
    assert_eq!(b.outstanding(), 0);
    let keep = k.kmalloc_buf(64, Gfp::KERNEL).unwrap();
    let (pages, objs) = (b.outstanding(), active(k));
    let logs = capture_logs();
    // SAFETY: null and ZERO_SIZE_PTR are allowed.
    unsafe {
        k.kfree(std::ptr::null_mut());
        k.kfree(z);
    }
    if logs {
        assert_eq!(take_logs(), Vec::<String>::new(), "kfree(NULL) is silent");
    }
    // Pointers that are not kmalloc's: reported and left alone.
    let mut on_stack = 0u64;
    // SAFETY: kfree must refuse these without touching them.
    unsafe {
        k.kfree(std::ptr::addr_of_mut!(on_stack).cast());
        k.kfree((b.va_base + b.size - PAGE) as *mut u8);
    }
    assert_eq!(on_stack, 0);
    assert_eq!((b.outstanding(), active(k)), (pages, objs));
    assert!(k.caches().all(|c| defects(c) == 0));
    drop(keep);
    k.shrink();
    b.assert_all_back();
}

#[test]
fn gfp_zero_zeroes_and_dma_uses_the_dma_caches() {
    for debug in [0, SLAB_DEBUG_ALL] {
        let b = HostBackend::new(16 << 20);
        let k = kmalloc_over(b, debug);
        for size in [8, 64, 100, 1000, 4096, 8192, 20_000] {
            let mut p = k.kmalloc_buf(size, Gfp::KERNEL).unwrap();
            p.fill(0xff);
            let dirty = p.as_ptr();
            drop(p);
            let q = k.kmalloc_buf(size, Gfp::KERNEL | Gfp::ZERO).unwrap();
            if size <= KMALLOC_MAX_CACHE_SIZE {
                assert_eq!(q.as_ptr(), dirty, "the dirty object is reused first");
            }
            assert!(q.iter().all(|&v| v == 0), "size {size} not zeroed");
        }
        let d = k.kmalloc_buf(64, Gfp::DMA).unwrap();
        assert_eq!(cache_of(k, b, d.as_ptr()).name(), "dma-kmalloc-64");
        let n = k.kmalloc_buf(64, Gfp::KERNEL).unwrap();
        assert_eq!(cache_of(k, b, n.as_ptr()).name(), "kmalloc-64");
        drop((d, n));
        assert!(k.caches().all(|c| defects(c) == 0));
        k.shrink();
        b.assert_all_back();
    }
}

#[test]
fn kmalloc_shrink_returns_the_empty_slabs() {
    let b = HostBackend::new(32 << 20);
    let k = kmalloc_over(b, 0);
    let mut rng = Rng::new(5);
    let mut held = Vec::new();
    for _ in 0..5000 {
        let size = 1 + rng.below(KMALLOC_MAX_CACHE_SIZE as u64) as usize;
        held.push(k.kmalloc_buf(size, Gfp::KERNEL).unwrap());
    }
    let peak = b.outstanding();
    drop(held);
    let kept = b.outstanding();
    assert!(kept < peak, "frees gave nothing back");
    assert!(kept > 0, "no empty slab is kept for reuse");
    assert_eq!(k.shrink(), kept);
    assert_eq!(k.shrink(), 0);
    b.assert_all_back();
}

// ---------------------------------------------------------------------------------------------
// Reports and geometry
// ---------------------------------------------------------------------------------------------

#[test]
fn slabinfo_lines_follow_proc_slabinfo() {
    let b = HostBackend::new(8 << 20);
    let c = leak_cache("test-obj", 200, 8, None, 0, b);
    let objs: Vec<SlabObject> = (0..c.objects + 3)
        .map(|_| c.alloc_object().unwrap())
        .collect();
    let line = c.slabinfo();
    // # name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>
    //   : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 16, "{line}");
    assert_eq!(f[0], "test-obj");
    let n = |i: usize| f[i].parse::<u64>().unwrap();
    let st = c.stats();
    assert_eq!(n(1), c.objects as u64 + 3);
    assert_eq!(n(1), st.active_objs);
    assert_eq!(n(2), 2 * c.objects as u64);
    assert_eq!(n(3), 200);
    assert_eq!(n(4), c.objects as u64);
    assert_eq!(n(5), 1 << c.order);
    assert_eq!((f[6], f[7]), (":", "tunables"));
    assert_eq!((f[11], f[12]), (":", "slabdata"));
    assert_eq!((n(13), n(14)), (2, 2));
    // Linux pads the name to 17 columns.
    assert!(line.starts_with("test-obj          "), "{line:?}");
    drop(objs);
    // A cache of multi-page slabs.
    let c = leak_cache("test-big", 3000, 8, None, 0, b);
    let p = c.alloc_object().unwrap();
    let f: Vec<String> = c.slabinfo().split_whitespace().map(String::from).collect();
    assert!(c.order > 0);
    assert_eq!(f[5], (1u32 << c.order).to_string());
    assert_eq!(f[4], c.objects.to_string());
    assert_eq!((f[1].as_str(), f[3].as_str()), ("1", "3000"));
    drop(p);
}

#[test]
fn slab_geometry_wastes_little() {
    let b = HostBackend::new(8 << 20);
    for size in [8, 24, 64, 96, 200, 1000, 2000, 3000, 4096, 5000, 8192] {
        for debug in [0, SLAB_DEBUG_ALL] {
            let c = KmemCache::new("geo", size, 8, Gfp::KERNEL, None, debug, b);
            assert!(c.objects >= 1);
            assert!(c.order <= 3);
            let used = c.objects * c.stride;
            if c.order < 3 {
                assert!(
                    (c.slab_bytes() - used) * 8 <= c.slab_bytes(),
                    "{size}: {} of {} bytes wasted",
                    c.slab_bytes() - used,
                    c.slab_bytes()
                );
            }
            assert!(c.stride >= size);
        }
    }
}

#[test]
fn caches_of_large_objects_have_room_for_one() {
    let b = HostBackend::new(8 << 20);
    for size in [32 << 10, 40 << 10, 64 << 10] {
        let c = KmemCache::new("big", size, 8, Gfp::KERNEL, None, 0, b);
        assert!(
            c.objects >= 1,
            "{size}-byte objects: {} per slab",
            c.objects
        );
    }
}

#[test]
fn backend_counts_are_live() {
    // The accounting the other tests rely on: it sees pages go out and come back.
    let b = HostBackend::new(8 << 20);
    let p = b.alloc_pages(2, Gfp::KERNEL).unwrap();
    assert_eq!(b.outstanding(), 4);
    // SAFETY: wrong order: the backend refuses it and counts a bad free.
    unsafe { b.free_pages(p, 1) };
    assert_eq!((b.outstanding(), b.bad_frees()), (4, 1));
    // SAFETY: the block as allocated.
    unsafe { b.free_pages(p, 2) };
    assert_eq!(b.outstanding(), 0);
    b.bad_frees.store(0, Ordering::SeqCst);
    b.assert_all_back();
}

#[test]
fn caches_of_objects_too_large_for_a_slab_refuse_cleanly() {
    let b = HostBackend::new(8 << 20);
    let c = KmemCache::new("huge", 100 << 10, 8, Gfp::KERNEL, None, 0, b);
    assert_eq!(c.objects, 0);
    assert!(
        c.alloc().is_none(),
        "a 100 KiB object was handed out of a 64 KiB slab"
    );
    let fits = KmemCache::new("64k", 64 << 10, 8, Gfp::KERNEL, None, 0, b);
    let p = fits
        .alloc_object()
        .expect("a 64 KiB object fits an order-4 slab");
    assert_eq!(p.len(), 64 << 10);
    drop(p);
    fits.shrink();
    b.assert_all_back();
}

#[test]
fn typed_caches_hand_out_owners_that_drop_and_free() {
    use std::rc::Rc;
    let b = HostBackend::new(8 << 20);
    let cache: super::TypedCache<(u64, Rc<()>)> =
        super::TypedCache::new("typed", Gfp::KERNEL, 0, b);
    let token = Rc::new(());
    let mut boxes: Vec<_> = (0..500)
        .map(|i| cache.alloc((i, token.clone())).unwrap())
        .collect();
    assert_eq!(Rc::strong_count(&token), 501);
    boxes[7].0 = 77;
    assert_eq!(boxes[7].0, 77);
    assert_eq!(boxes[8].0, 8);
    drop(boxes);
    assert_eq!(Rc::strong_count(&token), 1, "the values were dropped");
    cache.cache().shrink();
    b.assert_all_back();
}
