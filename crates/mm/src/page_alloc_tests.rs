//! Host tests of the page allocator over simulated RAM, against a model.
// A named exception to the crate's `deny(unsafe_code)`: the tests simulate RAM.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::addr::{PhysAddr, PhysRange, PAGE_SHIFT};
use crate::gfp::Gfp;
use crate::memblock::Memblock;
use crate::page::{MemMap, Page, PAGES_PER_SECTION};
use crate::page_alloc::*;
use crate::zone::{ZoneId, ZoneLimits, MAX_ORDER};

/// Page contents, created on first touch.
#[derive(Default)]
struct SimRam(RefCell<HashMap<u64, Box<[u8; 4096]>>>);

/// A page's contents before anything wrote it: not zero, as RAM need not be.
fn fresh_page() -> Box<[u8; 4096]> {
    Box::new([0x5a; 4096])
}

// SAFETY: each frame gets its own boxed page, which lives as long as the SimRam.
unsafe impl PhysMem for SimRam {
    fn page_ptr(&self, pfn: u64) -> *mut u8 {
        let mut map = self.0.borrow_mut();
        map.entry(pfn).or_insert_with(fresh_page).as_mut_ptr()
    }
}

const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

fn r(base: u64, size: u64) -> PhysRange {
    PhysRange::new(PhysAddr::new(base), size)
}

struct Setup {
    alloc: PageAllocator<SimRam>,
    reserved: Vec<PhysRange>,
}

/// RAM 1 GiB at 1 GiB and 256 MiB at 4 GiB; DMA ends at 1.5 GiB, DMA32 at 4 GiB.
fn setup(debug: bool) -> Setup {
    let memory = [r(G, G), r(4 * G, 256 * M)];
    let reserved = vec![
        r(G + 0x8_0000, 0x23_4567),
        r(G + 128 * M, M),
        r(2 * G - 0x3000, 0x3000),
        r(4 * G + 3 * M, 5 * M + 0x1000),
    ];
    let mb = Memblock::new(&memory, &reserved);
    let end_pfn = (4 * G + 256 * M) >> PAGE_SHIFT;
    let mut map = MemMap::new(end_pfn);
    for bank in mb.memory() {
        let s = bank.base.as_u64() >> PAGE_SHIFT;
        let e = (bank.end() >> PAGE_SHIFT) as u64;
        for sec in MemMap::sections_of(crate::addr::Pfn::new(s), crate::addr::Pfn::new(e)) {
            if !map.is_populated(sec) {
                // Garbage, as RAM would hold: the allocator must not rely on zeroed metadata.
                let garbage = Page {
                    flags: 0xffff_ffff,
                    refcount: 7,
                    prev: 3,
                    next: 5,
                    private: 9,
                };
                map.populate_leaked(sec, vec![garbage; PAGES_PER_SECTION as usize].leak());
            }
        }
    }
    let limits = ZoneLimits {
        dma_end: G + G / 2,
        dma32_end: 4 * G,
    };
    let mut alloc = PageAllocator::new(SimRam::default(), map, mb.memory(), limits);
    alloc.debug_pagealloc = debug;
    alloc.release(mb.memory(), &mb.free_ranges());
    alloc.setup_watermarks();
    Setup {
        alloc,
        reserved: mb.reserved().to_vec(),
    }
}

#[test]
fn release_hands_over_exactly_the_free_memory_and_initialises_lazily() {
    let s = setup(false);
    let a = &s.alloc;
    let reserved: u64 = s.reserved.iter().map(|r| r.size).sum();
    assert_eq!(a.managed_pages() * 4096 + reserved, G + 256 * M);
    assert_eq!(a.free_pages(), a.managed_pages());
    assert_eq!(a.check_free_lists().unwrap(), a.managed_pages());
    // Only blocks with reservations or zone edges were initialised in full.
    assert!(
        a.blocks_initialised <= 8,
        "{} blocks initialised at boot",
        a.blocks_initialised
    );
    let z = a.zone(ZoneId::Dma);
    assert_eq!((z.start_pfn << 12, z.end_pfn << 12), (G, G + G / 2));
    assert_eq!(a.zone(ZoneId::Dma32).present, (G / 2) >> 12);
    assert_eq!(a.zone(ZoneId::Normal).present, (256 * M) >> 12);
    for z in a.zones() {
        assert!(
            z.watermark[0] > 0
                && z.watermark[0] < z.watermark[1]
                && z.watermark[1] < z.watermark[2]
        );
    }
    assert!(a.zone(ZoneId::Dma).lowmem_reserve[2] > 0);
    assert_eq!(a.zone(ZoneId::Normal).lowmem_reserve, [0, 0, 0]);
}

use crate::test_rng::Rng;

#[test]
fn random_allocations_agree_with_a_model_and_coalesce_back() {
    for seed in 1..=4u64 {
        let mut s = setup(false);
        let a = &mut s.alloc;
        let initial: Vec<[u64; 11]> = a.zones().iter().map(|z| z.buddyinfo()).collect();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut live: BTreeMap<u64, (u8, usize)> = BTreeMap::new();
        let mut freed: Vec<(u64, u8)> = Vec::new();
        for step in 0..4000 {
            let choice = rng.below(10);
            if choice < 6 || live.is_empty() {
                let order = [0, 0, 0, 0, 1, 2, 3, 5, 8, 10][rng.below(10) as usize];
                let (gfp, highest) =
                    [(Gfp::KERNEL, 2), (Gfp::DMA32, 1), (Gfp::DMA, 0)][rng.below(3) as usize];
                let Ok(pa) = a.alloc(gfp, order, Mark::Min) else {
                    continue;
                };
                let pfn = pa.as_u64() >> PAGE_SHIFT;
                let pages = 1u64 << order;
                assert_eq!(
                    pfn % pages,
                    0,
                    "step {step}: order {order} block at {pfn:#x} misaligned"
                );
                let zone = a
                    .zones()
                    .iter()
                    .position(|z| z.spans(pfn) && z.spans(pfn + pages - 1))
                    .expect("in a zone");
                assert!(zone <= highest, "step {step}: {gfp:?} got zone {zone}");
                if let Some((&prev, &(o, _))) = live.range(..pfn).next_back() {
                    assert!(prev + (1 << o) <= pfn, "step {step}: overlaps {prev:#x}");
                }
                if let Some((&next, _)) = live.range(pfn..).next() {
                    assert!(pfn + pages <= next, "step {step}: overlaps {next:#x}");
                }
                let range = r(pa.as_u64(), pages << PAGE_SHIFT);
                assert!(
                    s.reserved.iter().all(|res| res.intersect(&range).is_none()),
                    "handed out reserved memory"
                );
                live.insert(pfn, (order, zone));
            } else if choice < 9 {
                let k = *live
                    .keys()
                    .nth(rng.below(live.len() as u64) as usize)
                    .unwrap();
                let (order, _) = live.remove(&k).unwrap();
                let pa = PhysAddr::new(k << PAGE_SHIFT);
                if !(order == 0 && rng.below(2) == 0 && a.free_fast(pa)) {
                    a.free(pa, order).unwrap();
                }
                freed.push((k, order));
            } else {
                // Bad frees are refused and change nothing.
                let before = a.free_pages();
                if let Some(&(k, order)) = freed.last() {
                    if !live.contains_key(&k) {
                        let e = a.free(PhysAddr::new(k << PAGE_SHIFT), order).unwrap_err();
                        assert!(
                            matches!(e, FreeError::DoubleFree(_) | FreeError::NotAllocated(_)),
                            "{e:?}"
                        );
                    }
                }
                if let Some((&k, &(order, _))) = live.iter().next() {
                    if order < MAX_ORDER {
                        let e = a
                            .free(PhysAddr::new(k << PAGE_SHIFT), order + 1)
                            .unwrap_err();
                        assert_eq!(
                            e,
                            FreeError::WrongOrder {
                                pfn: k,
                                given: order + 1,
                                allocated: order
                            }
                        );
                    }
                    if order > 0 {
                        let e = a.free(PhysAddr::new((k + 1) << PAGE_SHIFT), 0).unwrap_err();
                        assert!(matches!(e, FreeError::NotAllocated(_)), "{e:?}");
                    }
                }
                let image = PhysAddr::new(G + 0x8_0000);
                assert_eq!(
                    a.free(image, 0),
                    Err(FreeError::Reserved(image.as_u64() >> PAGE_SHIFT))
                );
                assert_eq!(
                    a.free(PhysAddr::new(3 * G), 0),
                    Err(FreeError::NotRam((3 * G) >> PAGE_SHIFT))
                );
                assert_eq!(a.free_pages(), before);
            }
            if step % 500 == 0 {
                let used: u64 = live.values().map(|&(o, _)| 1u64 << o).sum();
                assert_eq!(a.check_free_lists().unwrap() + used, a.managed_pages());
            }
        }
        for (k, (order, _)) in std::mem::take(&mut live) {
            a.free(PhysAddr::new(k << PAGE_SHIFT), order).unwrap();
        }
        a.drain_pcp();
        assert_eq!(a.check_free_lists().unwrap(), a.managed_pages());
        let end: Vec<[u64; 11]> = a.zones().iter().map(|z| z.buddyinfo()).collect();
        assert_eq!(
            end, initial,
            "seed {seed}: memory did not coalesce back to the starting state"
        );
    }
}

#[test]
fn dma_memory_is_kept_from_ordinary_requests() {
    let mut s = setup(false);
    let a = &mut s.alloc;
    let dma_reserve = a.zone(ZoneId::Dma).lowmem_reserve[2] + a.zone(ZoneId::Dma).watermark[0];
    let mut n = 0u64;
    while a.alloc(Gfp::KERNEL, 0, Mark::Min).is_ok() {
        n += 1;
    }
    assert!(n > 0);
    // Ordinary requests fell back down to DMA but left its reserve.
    assert!(
        a.zone(ZoneId::Dma).free >= dma_reserve,
        "DMA free {} < {}",
        a.zone(ZoneId::Dma).free,
        dma_reserve
    );
    // A DMA request can still be served.
    assert!(a.alloc(Gfp::DMA, 0, Mark::Min).is_ok());
    // Upward fallback never happens: DMA requests exhaust DMA and then fail.
    while a.alloc(Gfp::DMA, 0, Mark::Min).is_ok() {}
    assert!(a.zone(ZoneId::Dma).free <= a.zone(ZoneId::Dma).watermark[0]);
    assert!(a.zone(ZoneId::Normal).free > 0 || a.zone(ZoneId::Normal).managed == 0);
}

static RECLAIM_CALLS: AtomicUsize = AtomicUsize::new(0);
fn count_reclaim(_zone: ZoneId, _order: u8) -> u64 {
    RECLAIM_CALLS.fetch_add(1, Ordering::SeqCst);
    0
}

#[test]
fn crossing_the_low_watermark_calls_reclaim_and_failure_is_an_error() {
    let global: GlobalPages<SimRam> = GlobalPages::new();
    global.install(setup(false).alloc);
    global.set_reclaim_hook(count_reclaim);
    let mut held = Vec::new();
    let err = loop {
        match global.alloc_pages(Gfp::DMA | Gfp::NOWARN, 3) {
            Ok(pa) => held.push(pa),
            Err(e) => break e,
        }
    };
    assert_eq!(
        err,
        AllocError {
            gfp: Gfp::DMA | Gfp::NOWARN,
            order: 3
        }
    );
    assert!(RECLAIM_CALLS.load(Ordering::SeqCst) > 0);
    let calls = RECLAIM_CALLS.load(Ordering::SeqCst);
    let _ = global.alloc_pages(Gfp::DMA | Gfp::NOWARN | Gfp::NORETRY, 3);
    assert_eq!(
        RECLAIM_CALLS.load(Ordering::SeqCst),
        calls + 1,
        "NORETRY reclaims once"
    );
    for pa in held {
        global.free_pages(pa, 3).unwrap();
    }
    {
        let page = global.get_zeroed_page(Gfp::KERNEL).unwrap();
        assert_eq!(page.order(), 0);
        let pa = page.phys();
        drop(page);
        // Freed on drop: freeing again is a double free.
        assert!(global.free_pages(pa, 0).is_err());
    }
}

#[test]
fn debug_pagealloc_catches_writes_to_free_pages_and_zero_still_zeroes() {
    let mut s = setup(true);
    let a = &mut s.alloc;
    let pa = a.alloc(Gfp::KERNEL, 0, Mark::Min).unwrap();
    assert_eq!(a.poison_errors, 0);
    a.free(pa, 0).unwrap();
    // Use after free.
    SimRam::with_page(a, pa, |page| page[100] = 1);
    let again = a.alloc(Gfp::KERNEL, 0, Mark::Min).unwrap();
    assert_eq!(again, pa, "the per-CPU list is LIFO");
    assert_eq!(a.poison_errors, 1);
    let z = a.alloc(Gfp::KERNEL | Gfp::ZERO, 2, Mark::Min).unwrap();
    for i in 0..4 {
        let pa = PhysAddr::new(z.as_u64() + i * 4096);
        assert!(SimRam::with_page(a, pa, |page| page
            .iter()
            .all(|&b| b == 0)));
    }
    assert_eq!(a.poison_errors, 1);
}

impl SimRam {
    /// The simulated page at `pa`, borrowed from the map that owns it (while the allocator,
    /// borrowed by the caller too, cannot touch it).
    fn with_page<R>(
        a: &PageAllocator<SimRam>,
        pa: PhysAddr,
        f: impl FnOnce(&mut [u8; 4096]) -> R,
    ) -> R {
        let mut pages = a.phys_for_test().0.borrow_mut();
        f(pages
            .entry(pa.as_u64() >> PAGE_SHIFT)
            .or_insert_with(fresh_page))
    }
}

#[test]
fn reports_use_linux_formats() {
    let s = setup(false);
    let info = s.alloc.snapshot().buddyinfo();
    assert_eq!(info.len(), 3);
    assert!(info[0].starts_with("Node 0, zone      DMA "), "{}", info[0]);
    assert_eq!(info[0].split_whitespace().count(), 4 + 11);
    let zi = s.alloc.snapshot().zoneinfo().join("\n");
    assert!(zi.contains("Node 0, zone   Normal") && zi.contains("        min      "));
    let ranges = s.alloc.snapshot().zone_ranges();
    assert!(
        ranges[1].contains("DMA      [mem 0x0000000040000000-0x000000005fffffff]"),
        "{}",
        ranges[1]
    );
    let [total, free, avail] = s.alloc.meminfo();
    assert_eq!(total.0, "MemTotal");
    assert_eq!(total.1, free.1);
    assert!(avail.1 < free.1);
}

#[test]
fn allocations_below_a_limit_stay_below_it() {
    let mut s = setup(false);
    let a = &mut s.alloc;
    let limit = PhysAddr::new(G + 64 * M);
    let mut got = Vec::new();
    while let Ok(pa) = a.alloc_below(Gfp::KERNEL, 2, limit) {
        assert!(
            pa.as_u64() + 4 * 4096 <= limit.as_u64(),
            "{pa} crosses {limit}"
        );
        got.push(pa);
    }
    // Most of the 64 MiB (minus the image's reservation) was found, 16 KiB at a time.
    assert!(
        got.len() > 3000,
        "only {} blocks below the limit",
        got.len()
    );
    assert!(
        a.alloc_below(Gfp::KERNEL, 0, PhysAddr::new(G)).is_err(),
        "nothing lies below RAM"
    );
    for pa in got {
        a.free(pa, 2).unwrap();
    }
    a.drain_pcp();
    assert_eq!(a.check_free_lists().unwrap(), a.managed_pages());
}
