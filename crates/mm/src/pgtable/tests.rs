//! Host tests of the page-table code over simulated physical memory, against a model.
// A named exception to the crate's `deny(unsafe_code)`: the tests simulate table memory.
#![allow(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use super::desc::{Attrs, MemType};
use super::table::*;
use crate::addr::{PhysAddr, VirtAddr};

const K4: u64 = 4096;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

/// Simulated RAM for tables, with an optional page budget (the address-space tests use it too).
#[derive(Default)]
pub(crate) struct SimMemory {
    pages: HashMap<u64, Box<[u64; 512]>>,
    next: u64,
    budget: Option<usize>,
    freed: Vec<u64>,
}

// SAFETY: every page handed out is a separate boxed array that lives until freed.
unsafe impl TableAlloc for SimMemory {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if self.budget.is_some_and(|b| self.pages.len() >= b) {
            return None;
        }
        self.next += K4;
        // Fill with garbage: the page-table code must zero what it gets.
        self.pages
            .insert(self.next, Box::new([0xdead_beef_dead_beef; 512]));
        Some(PhysAddr::new(self.next))
    }
    fn free_table(&mut self, pa: PhysAddr) {
        assert!(
            self.pages.remove(&pa.as_u64()).is_some(),
            "double free of table {pa}"
        );
        self.freed.push(pa.as_u64());
    }
    fn table_ptr(&self, pa: PhysAddr) -> *mut u64 {
        self.pages
            .get(&pa.as_u64())
            .expect("pointer to an unallocated table")
            .as_ptr() as *mut u64
    }
}

#[derive(Default)]
pub(crate) struct RecordingTlb {
    by_va: Vec<u64>,
    full: usize,
    syncs: usize,
    waits: usize,
}

impl TlbFlush for RecordingTlb {
    fn sync_tables(&mut self) {
        self.syncs += 1;
    }
    fn invalidate_va(&mut self, va: VirtAddr) {
        self.by_va.push(va.as_u64());
    }
    fn invalidate_all(&mut self) {
        self.full += 1;
    }
    fn wait(&mut self) {
        self.waits += 1;
    }
}

fn table(half: Half) -> PageTable<SimMemory, RecordingTlb> {
    PageTable::new(half, SimMemory::default(), RecordingTlb::default()).unwrap()
}

fn va(v: u64) -> VirtAddr {
    VirtAddr::new(v)
}
fn pa(p: u64) -> PhysAddr {
    PhysAddr::new(p)
}

#[test]
fn uses_the_largest_blocks_alignment_allows() {
    let mut pt = table(Half::Upper);
    let base = 0xffff_0000_0000_0000;
    // 1 GiB + 2 MiB + 4 KiB, all aligned to 1 GiB at the start.
    pt.map(va(base + G1), pa(G1), G1 + M2 + K4, Attrs::KERNEL_RW)
        .unwrap();
    assert_eq!(pt.translate(va(base + G1 + 0x1234)).unwrap().level, 1);
    assert_eq!(pt.translate(va(base + 2 * G1 + 5)).unwrap().level, 2);
    let t = pt.translate(va(base + 2 * G1 + M2 + 7)).unwrap();
    assert_eq!((t.level, t.pa), (3, pa(2 * G1 + M2 + 7)));
    assert!(pt.translate(va(base + 2 * G1 + M2 + K4)).is_none());
    // Misaligned physical address: pages only.
    pt.map(va(base + 8 * G1), pa(0x1000), M2, Attrs::KERNEL_RO)
        .unwrap();
    assert_eq!(pt.translate(va(base + 8 * G1)).unwrap().level, 3);
}

#[test]
fn splitting_a_block_keeps_the_rest_mapped_and_breaks_before_make() {
    let mut pt = table(Half::Lower);
    pt.map(va(G1), pa(4 * G1), G1, Attrs::USER_RW).unwrap();
    let before = pt.flusher().by_va.len();
    assert_eq!(pt.unmap(va(G1 + 3 * M2 + K4), K4).unwrap(), K4);
    // The block was invalidated by VA before the table replaced it.
    assert!(pt.flusher().by_va[before..].contains(&G1));
    assert!(pt.translate(va(G1 + 3 * M2 + K4)).is_none());
    let t = pt.translate(va(G1 + 3 * M2)).unwrap();
    assert_eq!(
        (t.level, t.pa, t.attrs),
        (3, pa(4 * G1 + 3 * M2), Attrs::USER_RW)
    );
    assert_eq!(pt.translate(va(G1 + 5 * M2)).unwrap().level, 2);
    assert_eq!(pt.translate(va(2 * G1 - 1)).unwrap().pa, pa(5 * G1 - 1));
}

#[test]
fn overlaps_and_misalignment_are_errors_that_change_nothing() {
    let mut pt = table(Half::Lower);
    pt.map(va(0x20_0000), pa(0x4000_0000), 4 * K4, Attrs::USER_RW)
        .unwrap();
    let tables = pt.tables_in_use();
    assert_eq!(
        pt.map(va(0x1f_e000), pa(0x5000_0000), 4 * K4, Attrs::USER_RW),
        Err(MapError::Overlap { va: va(0x20_0000) })
    );
    assert!(
        pt.translate(va(0x1f_e000)).is_none(),
        "the part before the overlap was rolled back"
    );
    assert_eq!(pt.tables_in_use(), tables);
    assert!(matches!(
        pt.map(va(0x123), pa(0), K4, Attrs::USER_RW),
        Err(MapError::Misaligned { .. })
    ));
    assert!(matches!(
        pt.map(va(0), pa(0x10), K4, Attrs::USER_RW),
        Err(MapError::Misaligned { .. })
    ));
    assert!(matches!(
        pt.map(va(0), pa(0), 100, Attrs::USER_RW),
        Err(MapError::Misaligned { .. })
    ));
    assert!(matches!(
        pt.map(va(0), pa(0), 0, Attrs::USER_RW),
        Err(MapError::OutOfRange { .. })
    ));
    assert!(matches!(
        pt.map(va(0xffff_0000_0000_0000), pa(0), K4, Attrs::USER_RW),
        Err(MapError::OutOfRange { .. })
    ));
    let mut upper = table(Half::Upper);
    assert!(matches!(
        upper.map(va(0x1000), pa(0), K4, Attrs::KERNEL_RW),
        Err(MapError::OutOfRange { .. })
    ));
    assert!(matches!(
        upper.map(va(0xffff_ffff_ffff_f000), pa(0), 2 * K4, Attrs::KERNEL_RW),
        Err(MapError::OutOfRange { .. })
    ));
}

#[test]
fn running_out_of_table_memory_leaves_nothing_behind() {
    let mut pt = table(Half::Lower);
    pt.allocator().budget = Some(3); // root + two tables: not enough for a level-3 page
    assert_eq!(
        pt.map(va(0x4000_0000), pa(0), K4, Attrs::USER_RW),
        Err(MapError::NoMemory)
    );
    assert_eq!(pt.tables_in_use(), 1);
    assert_eq!(pt.allocator().pages.len(), 1);
    pt.allocator().budget = Some(4);
    pt.map(va(0x4000_0000), pa(0), K4, Attrs::USER_RW).unwrap();
    // A second range needs a new level-3 table: fails and leaves the first alone.
    assert_eq!(
        pt.map(va(0x4000_0000 + M2 - K4), pa(0), 2 * K4, Attrs::USER_RW),
        Err(MapError::NoMemory)
    );
    assert!(pt.translate(va(0x4000_0000)).is_some());
    assert!(pt.translate(va(0x4000_0000 + M2 - K4)).is_none());
    assert_eq!(pt.allocator().pages.len(), 4);
}

#[test]
fn tlb_invalidation_is_batched_with_a_full_flush_past_the_threshold() {
    let mut pt = table(Half::Lower);
    pt.set_flush_all_threshold(16);
    pt.map(va(0x10_0000), pa(0x10_0000), 8 * K4, Attrs::USER_RW)
        .unwrap();
    pt.map(va(0x80_0000), pa(0x80_0000), 100 * K4, Attrs::USER_RW)
        .unwrap();
    assert_eq!(
        pt.flusher().by_va.len(),
        0,
        "new mappings need no invalidation"
    );
    let waits = pt.flusher().waits;
    pt.unmap(va(0x10_0000), 8 * K4).unwrap();
    assert_eq!(
        pt.flusher().waits,
        waits + 1,
        "one wait for the whole batch"
    );
    // Eight pages, then the emptied level-3 table (covering 0..2 MiB) leaves the walk caches.
    let mut expected: Vec<u64> = (0..8).map(|i| 0x10_0000 + i * K4).collect();
    expected.push(0);
    assert_eq!(pt.flusher().by_va, expected);
    assert_eq!(pt.flusher().full, 0);
    pt.unmap(va(0x80_0000), 100 * K4).unwrap();
    assert_eq!(
        pt.flusher().full,
        1,
        "past the threshold: one full invalidation"
    );
    assert_eq!(
        pt.flusher().by_va.len(),
        9 + 16,
        "no more than the threshold by VA"
    );
}

#[test]
fn protect_changes_attributes_and_refuses_holes() {
    let mut pt = table(Half::Upper);
    let base = 0xffff_0000_4000_0000;
    pt.map(va(base), pa(0x4000_0000), 4 * M2, Attrs::KERNEL_RW)
        .unwrap();
    pt.protect(va(base + M2), K4, Attrs::KERNEL_RO).unwrap();
    assert_eq!(pt.translate(va(base + M2)).unwrap().attrs, Attrs::KERNEL_RO);
    assert_eq!(
        pt.translate(va(base + M2 + K4)).unwrap().attrs,
        Attrs::KERNEL_RW
    );
    assert_eq!(pt.translate(va(base)).unwrap().level, 2);
    let nc = Attrs::KERNEL_RW.with_mem(MemType::NormalNc);
    pt.protect(va(base + 2 * M2), M2, nc).unwrap();
    assert_eq!(
        pt.translate(va(base + 2 * M2 + 5)).unwrap().attrs.mem,
        MemType::NormalNc
    );
    assert_eq!(
        pt.protect(va(base + 3 * M2), 2 * M2, Attrs::KERNEL_RO),
        Err(MapError::NotMapped {
            va: va(base + 4 * M2)
        })
    );
    assert_eq!(
        pt.translate(va(base + 3 * M2)).unwrap().attrs,
        Attrs::KERNEL_RW
    );
}

use crate::test_rng::Rng;

type Model = BTreeMap<u64, (u64, Attrs)>;

fn check(
    pt: &PageTable<SimMemory, RecordingTlb>,
    model: &Model,
    base: u64,
    pages: u64,
    probes: &[u64],
) {
    for &page in probes {
        let v = base + page * K4;
        let got = pt
            .translate(va(v + 0x10))
            .map(|t| (t.pa.as_u64() - 0x10, t.attrs));
        assert_eq!(got, model.get(&v).copied(), "translation of {v:#x}");
    }
    assert!(probes.iter().all(|&p| p < pages));
}

#[test]
fn random_operations_agree_with_a_model_and_leak_nothing() {
    const ATTRS: [Attrs; 3] = [Attrs::USER_RW, Attrs::KERNEL_RO, Attrs::KERNEL_RX];
    for (half, base) in [
        (Half::Lower, 0x7f_c000_0000u64),
        (Half::Upper, 0xffff_0000_0000_0000),
    ] {
        // Unoptimised builds are ~20x slower; the release run (make test) covers more seeds.
        let seeds: u64 = if cfg!(debug_assertions) { 2 } else { 6 };
        for seed in 1..=seeds {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut pt = table(half);
            pt.set_flush_all_threshold(32);
            let mut model: Model = BTreeMap::new();
            // A 4 GiB window straddling a 512 GiB boundary for the lower half.
            let pages = (4 * G1) / K4;
            let mut blocks_seen = [0usize; 4];
            for _ in 0..300 {
                let unit = [K4, K4, M2, G1][rng.below(4) as usize];
                let count = 1 + rng.below(if unit == G1 { 1 } else { 6 });
                let size = unit * count;
                let start_page = (rng.below(pages) * K4 / unit * unit / K4).min(pages - size / K4);
                let v = base + start_page * K4;
                let p = (rng.below(64) * unit) + if rng.below(4) == 0 { K4 } else { 0 };
                let attrs = ATTRS[rng.below(3) as usize];
                let range: Vec<u64> = (0..size / K4).map(|i| v + i * K4).collect();
                match rng.below(3) {
                    0 => {
                        let free = range.iter().all(|a| !model.contains_key(a));
                        let r = pt.map(va(v), pa(p), size, attrs);
                        assert_eq!(r.is_ok(), free, "map {v:#x}+{size:#x}: {r:?}");
                        if free {
                            for (i, a) in range.iter().enumerate() {
                                model.insert(*a, (p + i as u64 * K4, attrs));
                            }
                            blocks_seen[pt.translate(va(v)).unwrap().level as usize] += 1;
                        }
                    }
                    1 => {
                        let mapped = range.iter().filter(|a| model.contains_key(a)).count() as u64;
                        assert_eq!(pt.unmap(va(v), size), Ok(mapped * K4));
                        for a in &range {
                            model.remove(a);
                        }
                    }
                    _ => {
                        let all = range.iter().all(|a| model.contains_key(a));
                        let r = pt.protect(va(v), size, attrs);
                        assert_eq!(r.is_ok(), all, "protect {v:#x}+{size:#x}: {r:?}");
                        if all {
                            for a in &range {
                                model.get_mut(a).unwrap().1 = attrs;
                            }
                        }
                    }
                }
                let mut probes: Vec<u64> = (0..64).map(|_| rng.below(pages)).collect();
                probes.extend([
                    start_page,
                    start_page + size / K4 - 1,
                    (start_page + size / K4).min(pages - 1),
                ]);
                if start_page > 0 {
                    probes.push(start_page - 1);
                }
                check(&pt, &model, base, pages, &probes);
            }
            // Every mapping the tree holds is in the model (nothing extra).
            let mut leaf_pages = 0u64;
            pt.for_each_mapping(|v, t, size| {
                for off in (0..size).step_by(K4 as usize) {
                    assert_eq!(
                        model.get(&(v.as_u64() + off)),
                        Some(&(t.pa.as_u64() + off, t.attrs))
                    );
                }
                leaf_pages += size / K4;
            });
            assert_eq!(leaf_pages, model.len() as u64);
            assert!(
                blocks_seen[1] + blocks_seen[2] > 0,
                "no block mappings were used"
            );
            pt.unmap(va(base), pages * K4).unwrap();
            assert_eq!(pt.tables_in_use(), 1, "seed {seed}: table pages leaked");
            assert_eq!(pt.allocator().pages.len(), 1);
        }
    }
}

#[test]
fn lazy_unmap_clears_without_invalidating_and_a_later_unmap_frees_the_tables() {
    let mut pt = table(Half::Upper);
    let base = 0xffff_8000_0000_0000;
    pt.map(va(base), pa(0x4000_0000), 4 * K4, Attrs::KERNEL_RW)
        .unwrap();
    let tables = pt.tables_in_use();
    assert_eq!(pt.unmap_lazy(va(base), 4 * K4), Ok(4 * K4));
    assert!(pt.translate(va(base)).is_none());
    assert!(
        pt.flusher().by_va.is_empty() && pt.flusher().full == 0,
        "no invalidation yet"
    );
    assert_eq!(pt.tables_in_use(), tables, "tables stay until the purge");
    pt.flush_all_now();
    assert_eq!(pt.unmap(va(base), 4 * K4), Ok(0));
    assert_eq!(pt.tables_in_use(), 1);
}

/// A flusher that checks the order of events: every TLBI must follow a publication (sync) of
/// the entry it is about, and a new table's zeroes must be published before it is linked.
#[derive(Default)]
struct OrderingTlb {
    /// Writes published since the last sync? (set by the test's memory through `dirty`)
    log: Vec<&'static str>,
}

impl TlbFlush for OrderingTlb {
    fn sync_tables(&mut self) {
        self.log.push("sync");
    }
    fn invalidate_va(&mut self, _va: VirtAddr) {
        self.log.push("tlbi");
    }
    fn invalidate_all(&mut self) {
        self.log.push("tlbi-all");
    }
    fn wait(&mut self) {
        self.log.push("wait");
    }
}

#[test]
fn every_invalidation_follows_a_publication_and_ends_with_a_wait() {
    let mut pt = PageTable::new(Half::Lower, SimMemory::default(), OrderingTlb::default()).unwrap();
    pt.map(va(0x20_0000), pa(0x4000_0000), 8 * K4, Attrs::USER_RW)
        .unwrap();
    pt.flusher().log.clear();
    pt.unmap(va(0x20_0000), 4 * K4).unwrap();
    pt.protect(va(0x20_0000 + 4 * K4), 2 * K4, Attrs::KERNEL_RO)
        .unwrap();
    let log = &pt.flusher().log;
    for (i, e) in log.iter().enumerate() {
        if *e == "tlbi" {
            assert_eq!(log[i - 1], "sync", "TLBI without a DSB before it: {log:?}");
        }
    }
    assert_eq!(log.last(), Some(&"wait"));
    assert_eq!(log.iter().filter(|e| **e == "tlbi").count(), 6);
}

#[test]
fn physical_addresses_past_48_bits_are_refused() {
    let mut pt = table(Half::Upper);
    let r = pt.map(va(0xffff_0000_0000_0000), pa(1 << 48), K4, Attrs::KERNEL_RW);
    assert!(matches!(r, Err(MapError::OutOfRange { .. })));
    let r = pt.map(
        va(0xffff_0000_0000_0000),
        pa((1 << 48) - K4),
        2 * K4,
        Attrs::KERNEL_RW,
    );
    assert!(matches!(r, Err(MapError::OutOfRange { .. })));
}

#[test]
fn map_page_is_map_for_one_page() {
    let mut pt = table(Half::Lower);
    pt.map_page(va(0x1000), pa(0x4000_0000), Attrs::USER_RW)
        .unwrap();
    let t = pt.translate(va(0x1fff)).unwrap();
    assert_eq!(
        (t.pa, t.level, t.attrs),
        (pa(0x4000_0fff), 3, Attrs::USER_RW)
    );
    assert_eq!(
        pt.map_page(va(0x1000), pa(0x5000_0000), Attrs::USER_RW),
        Err(MapError::Overlap { va: va(0x1000) })
    );
    assert!(matches!(
        pt.map_page(va(0x1001), pa(0), Attrs::USER_RW),
        Err(MapError::Misaligned { .. })
    ));
    assert!(matches!(
        pt.map_page(va(1 << 48), pa(0), Attrs::USER_RW),
        Err(MapError::OutOfRange { .. })
    ));
    pt.allocator().budget = Some(pt.allocator().pages.len());
    assert_eq!(
        pt.map_page(va(0x40_0000_0000), pa(0), Attrs::USER_RW),
        Err(MapError::NoMemory)
    );
    pt.allocator().budget = None;
    pt.unmap(va(0), 1 << 40).unwrap();
    assert_eq!(pt.tables_in_use(), 1);
}

#[test]
fn swap_entries_live_in_invalid_ptes_and_map_page_replaces_them() {
    use crate::pgtable::desc;
    use crate::swap_entry::SwapEntry;
    let mut pt = table(Half::Lower);
    let page = va(0x40_0000);
    assert_eq!(pt.pte(page), None, "no level-3 table yet");
    assert!(pt.set_pte(page, 0).is_err());
    pt.map_page(page, pa(0x8000_0000), Attrs::USER_RW).unwrap();
    let live = pt.pte(page).unwrap();
    assert!(desc::is_leaf(live, 3));
    // Clearing the access flag keeps the page and flushes its TLB entry.
    let flushed = pt.flusher().by_va.len();
    assert_eq!(pt.set_pte(page, live & !desc::AF).unwrap(), live);
    assert_eq!(pt.flusher().by_va[flushed..], [0x40_0000]);
    assert!(!pt.translate(page).unwrap().attrs.accessed);
    // Swapped out: the descriptor is the entry, the walk finds nothing.
    let entry = SwapEntry::new(0, 77).unwrap();
    pt.set_pte(page, entry.to_pte()).unwrap();
    assert!(pt.translate(page).is_none());
    assert_eq!(SwapEntry::from_pte(pt.pte(page).unwrap()), Some(entry));
    // Swapped in: an ordinary mapping over the entry.
    let flushed = pt.flusher().by_va.len();
    pt.map_page(page, pa(0x9000_0000), Attrs::USER_RW).unwrap();
    assert_eq!(pt.translate(page).unwrap().pa, pa(0x9000_0000));
    assert_eq!(
        pt.flusher().by_va.len(),
        flushed,
        "nothing valid was replaced"
    );
    // A neighbour in the same table is still empty.
    assert_eq!(pt.pte(va(0x40_1000)), Some(0));
}

#[test]
fn a_table_holding_swap_entries_is_not_empty() {
    use crate::swap_entry::SwapEntry;
    let mut pt = table(Half::Lower);
    let tables = pt.tables_in_use();
    // One page swapped out, its neighbour mapped: unmapping the neighbour must keep the table,
    // or the swapped page's entry (the only record of where its data is) would be lost.
    let swapped = va(0x40_0000);
    pt.map_page(swapped, pa(0x8000_0000), Attrs::USER_RW)
        .unwrap();
    let entry = SwapEntry::new(0, 9).unwrap();
    pt.set_pte(swapped, entry.to_pte()).unwrap();
    pt.map_page(va(0x40_1000), pa(0x8000_1000), Attrs::USER_RW)
        .unwrap();
    pt.unmap(va(0x40_1000), 4096).unwrap();
    assert_eq!(pt.pte(swapped).and_then(SwapEntry::from_pte), Some(entry));
    // Once the entry is gone too, the table is empty and an unmap frees it.
    pt.set_pte(swapped, 0).unwrap();
    pt.unmap(va(0x40_0000), 2 << 20).unwrap();
    assert_eq!(pt.tables_in_use(), tables);
}

#[test]
fn map_pte_takes_ready_made_page_descriptors_and_keeps_w_xor_x() {
    use crate::pgtable::desc;
    let mut pt = table(Half::Lower);
    let template = desc::leaf(0, Attrs::USER_RW, 3);
    pt.map_pte(va(0x40_0000), template | 0x8000_0000).unwrap();
    let t = pt.translate(va(0x40_0000)).unwrap();
    assert_eq!(t.pa, pa(0x8000_0000));
    assert_eq!(pt.pte(va(0x40_0000)), Some(template | 0x8000_0000));
    // Already mapped: refused, the mapping kept.
    assert!(pt.map_pte(va(0x40_0000), template | 0x9000_0000).is_err());
    assert_eq!(pt.translate(va(0x40_0000)).unwrap().pa, pa(0x8000_0000));
    // Writable and executable, a block or table descriptor, an unaligned address: refused.
    let wx = (template | 0x9000_0000) & !desc::PXN;
    assert_eq!(
        pt.map_pte(va(0x40_1000), wx),
        Err(MapError::BadDescriptor { desc: wx })
    );
    assert!(pt
        .map_pte(
            va(0x40_1000),
            (template | 0x9000_0000) & !desc::TABLE_OR_PAGE
        )
        .is_err());
    assert!(pt.map_pte(va(0x40_1008), template | 0x9000_0000).is_err());
    assert_eq!(pt.pte(va(0x40_1000)), Some(0));
}

/// The boot tables are built with one backend and handed over to another (`rebind`): the
/// translations and the table count carry over, table pages go back to the new backend, and its
/// TLB is the one maintained afterwards.
#[test]
fn rebinding_keeps_the_tables_and_moves_maintenance_to_the_new_backend() {
    let mut pt = table(Half::Lower);
    pt.map(va(0x40_0000), pa(0x8000_0000), 3 * K4, Attrs::KERNEL_RW)
        .unwrap();
    let tables = pt.tables_in_use();
    // SAFETY: the new memory backend is the old one, so it owns and reaches every table.
    let mut pt = unsafe { pt.rebind(|mem| mem, RecordingTlb::default()) };
    assert_eq!(pt.tables_in_use(), tables);
    for i in 0..3 {
        assert_eq!(
            pt.translate(va(0x40_0000 + i * K4)).map(|t| t.pa),
            Some(pa(0x8000_0000 + i * K4))
        );
    }
    pt.unmap(va(0x40_0000), 3 * K4).unwrap();
    assert_eq!(
        pt.tables_in_use(),
        1,
        "emptied tables went back to the backend"
    );
    assert!(pt.translate(va(0x40_1000)).is_none());
}
