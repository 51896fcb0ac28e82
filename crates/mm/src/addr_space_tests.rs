//! Host tests of an address space (mmap, the fault handlers, reclaim, the swap cache) over
//! simulated memory and a fake swap disk: random sequences of mmap, munmap, mprotect, touches,
//! reclaim and `MADV_PAGEOUT` against a model of every page's permissions and contents, with a
//! simulated MMU that raises the faults the hardware would; and the cases that must not lose a
//! byte (a failed write, a corrupted slot, a full area).
// A named exception to the crate's `deny(unsafe_code)`: the tests simulate RAM and the application's accesses.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::blkdev::BlockDevice;
use crate::fake_disk::{FakeDisk, SharedDisk};
use crate::memory::{RealFault, SwapInFailure};
use crate::pgtable::tests::{RecordingTlb, SimMemory};
use crate::pgtable::{desc, Half};
use crate::swap_header::SwapHeader;
use crate::swapfile::{ActiveSwap, SwapArea, SwapError};
use crate::test_rng::Rng;
use crate::vma::Prot;

const PAGE: u64 = PAGE_SIZE;

/// Simulated RAM (a budget of frames, handed out full of garbage as real RAM may be), the
/// frames' swap-cache ties, and a swap area on a fake disk.
struct World {
    frames: RefCell<HashMap<u64, *mut [u8; 4096]>>,
    recycled: RefCell<Vec<u64>>,
    next: Cell<u64>,
    budget: Cell<usize>,
    ties: RefCell<HashMap<u64, SwapEntry>>,
    swap: &'static SwapSpace,
    disk: Option<SharedDisk>,
}

impl World {
    /// `frames` frames of RAM and, when `swap_pages` > 0, a swap disk of that many pages.
    fn new(frames: usize, swap_pages: usize) -> World {
        let swap: &'static SwapSpace = Box::leak(Box::new(SwapSpace::new()));
        let disk = (swap_pages > 0).then(|| {
            let disk = FakeDisk::swap(swap_pages).shared();
            let header = SwapHeader::for_disk(swap_pages as u64, [7; 16]);
            let area = SwapArea::new(header).unwrap();
            swap.install(ActiveSwap::new(Box::new(disk.clone()), area));
            disk
        });
        World {
            frames: RefCell::new(HashMap::new()),
            recycled: RefCell::new(Vec::new()),
            next: Cell::new(0x4000_0000),
            budget: Cell::new(frames),
            ties: RefCell::new(HashMap::new()),
            swap,
            disk,
        }
    }

    fn in_use(&self) -> usize {
        self.frames.borrow().len()
    }

    fn free_slots(&self) -> u64 {
        self.swap
            .lock()
            .as_ref()
            .map_or(0, |s| s.area.slots.free_slots())
    }

    fn space(&self) -> AddrSpace<&World> {
        AddrSpace::new(
            PageTable::new(Half::Lower, SimMemory::default(), RecordingTlb::default()).unwrap(),
            self,
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (_, p) in self.frames.borrow_mut().drain() {
            // SAFETY: made by `Box::into_raw` in `alloc_frame`, freed once (removed from the map).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

// SAFETY: every frame is a separate boxed page that lives until `free_frame` (or the world's
// drop), and an address is handed out again only after it was freed.
unsafe impl Backing for &World {
    type Tables = SimMemory;
    type Tlb = RecordingTlb;

    fn alloc_frame(self, _gfp: Gfp) -> Option<PhysAddr> {
        if self.in_use() >= self.budget.get() {
            return None;
        }
        let pa = self.recycled.borrow_mut().pop().unwrap_or_else(|| {
            self.next.set(self.next.get() + PAGE);
            self.next.get()
        });
        let page = Box::into_raw(Box::new([0xa5u8; 4096]));
        self.frames.borrow_mut().insert(pa, page);
        Some(PhysAddr::new(pa))
    }
    fn free_frame(self, pa: PhysAddr) {
        let page = self.frames.borrow_mut().remove(&pa.as_u64());
        let page = page.unwrap_or_else(|| panic!("frame {pa} freed but not in use"));
        assert!(
            !self.ties.borrow().contains_key(&pa.as_u64()),
            "frame {pa} freed while tied to a swap slot"
        );
        // SAFETY: made by `Box::into_raw` in `alloc_frame`, and no longer in the map.
        drop(unsafe { Box::from_raw(page) });
        self.recycled.borrow_mut().push(pa.as_u64());
    }
    fn frame_ptr(self, pa: PhysAddr) -> *mut u8 {
        *self
            .frames
            .borrow()
            .get(&pa.as_u64())
            .unwrap_or_else(|| panic!("frame {pa} used but not allocated")) as *mut u8
    }
    fn swap_tie(self, pa: PhysAddr) -> Option<SwapEntry> {
        self.ties.borrow().get(&pa.as_u64()).copied()
    }
    fn set_swap_tie(self, pa: PhysAddr, entry: Option<SwapEntry>) -> bool {
        match entry {
            Some(e) => self.ties.borrow_mut().insert(pa.as_u64(), e),
            None => self.ties.borrow_mut().remove(&pa.as_u64()),
        };
        true
    }
    fn swap(self) -> &'static SwapSpace {
        self.swap
    }
}

type Space<'w> = AddrSpace<&'w World>;

/// An access by the application as the MMU sees it: a missing or swapped entry is a
/// translation fault, a clear access flag an access-flag fault, a write to a read-only entry a
/// permission fault; each goes to its handler and the access is retried, as the exception
/// vectors do. A translation fault that finds no frame runs reclaim and retries, as the page
/// allocator does below its watermark. Returns the frame the access reached.
fn access(mm: &mut Space, va: u64, write: bool) -> Result<PhysAddr, RealFault> {
    let world = mm.backing();
    for _ in 0..8 {
        match mm.page_table().pte(VirtAddr::new(va)) {
            Some(d) if desc::is_leaf(d, 3) => {
                if d & desc::AF == 0 {
                    mm.handle_access_flag(va)?;
                } else if write && d & desc::AP_RO != 0 {
                    mm.handle_permission_fault(va, true, false)?;
                } else {
                    return Ok(PhysAddr::new(desc::addr(d)));
                }
            }
            _ => {
                let mut frame = FrameBox::alloc(world, Gfp::KERNEL);
                if frame.is_none() && mm.shrink_resident() > 0 {
                    frame = FrameBox::alloc(world, Gfp::KERNEL);
                }
                mm.handle_page_fault(va, write, false, frame)?;
            }
        }
    }
    panic!("the access at {va:#x} kept faulting");
}

/// The application's write into a frame the space maps.
fn store(world: &World, pa: PhysAddr, seed: u64) {
    // SAFETY: a frame the space maps; the test is single-threaded and holds no other view.
    fill(
        unsafe { core::slice::from_raw_parts_mut(world.frame_ptr(pa), PAGE as usize) },
        seed,
    );
}

/// The application's read of a frame the space maps.
fn load(world: &World, pa: PhysAddr) -> Vec<u8> {
    // SAFETY: as in `store`.
    unsafe { core::slice::from_raw_parts(world.frame_ptr(pa), PAGE as usize) }.to_vec()
}

/// What the test writes into a page: every word depends on the seed and its offset.
fn fill(page: &mut [u8], seed: u64) {
    for (i, w) in page.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    }
}

fn filled(seed: u64) -> Vec<u8> {
    let mut p = vec![0; PAGE as usize];
    fill(&mut p, seed);
    p
}

fn write_page(mm: &mut Space, va: u64, seed: u64) -> Result<(), RealFault> {
    let pa = access(mm, va, true)?;
    store(mm.backing(), pa, seed);
    Ok(())
}

fn read_page(mm: &mut Space, va: u64) -> Result<Vec<u8>, RealFault> {
    let pa = access(mm, va, false)?;
    Ok(load(mm.backing(), pa))
}

/// The model: every mapped page's permissions, and what it holds (`None`: never written, so
/// zero).
#[derive(Default)]
struct Model {
    pages: BTreeMap<u64, (Prot, Option<u64>)>,
}

impl Model {
    fn expected(&self, va: u64) -> Vec<u8> {
        match self.pages[&va].1 {
            Some(seed) => filled(seed),
            None => vec![0; PAGE as usize],
        }
    }
}

/// One random run: `steps` operations on regions of up to 24 pages, with `frames` frames of
/// RAM and `swap` pages of swap, checked against the model at every step and in full at the
/// end, and nothing leaked after the last `munmap`.
fn random_run(seed: u64, steps: usize, frames: usize, swap: usize) {
    let world = World::new(frames, swap);
    let mut mm = world.space();
    let mut model = Model::default();
    let mut rng = Rng::new(seed);
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for step in 0..steps {
        let ctx = format!("seed {seed}, step {step}");
        let pick = |rng: &mut Rng, model: &Model| -> Option<u64> {
            let n = model.pages.len() as u64;
            (n > 0).then(|| *model.pages.keys().nth(rng.below(n) as usize).unwrap())
        };
        match rng.below(100) {
            0..=7 if regions.len() < 12 => {
                let len = (1 + rng.below(24)) * PAGE;
                let prot = if rng.below(4) == 0 {
                    Prot::READ
                } else {
                    Prot::RW
                };
                let a = mm.mmap(len, prot, "test").unwrap();
                for p in (a..a + len).step_by(PAGE as usize) {
                    assert!(
                        model.pages.insert(p, (prot, None)).is_none(),
                        "{ctx}: overlap"
                    );
                }
                regions.push((a, len));
            }
            8..=11 if !regions.is_empty() => {
                // Part of a region or all of it.
                let (a, len) = regions[rng.below(regions.len() as u64) as usize];
                let first = rng.below(len / PAGE);
                let n = 1 + rng.below(len / PAGE - first);
                let (start, end) = (a + first * PAGE, a + (first + n) * PAGE);
                mm.munmap(start, end - start).unwrap();
                model.pages.retain(|&p, _| p < start || p >= end);
            }
            12..=15 => {
                if let Some(p) = pick(&mut rng, &model) {
                    let n = 1 + rng.below(4);
                    let range: Vec<u64> = (0..n).map(|i| p + i * PAGE).collect();
                    let whole = range.iter().all(|q| model.pages.contains_key(q));
                    let prot = if rng.below(2) == 0 {
                        Prot::READ
                    } else {
                        Prot::RW
                    };
                    let r = mm.mprotect(p, n * PAGE, prot);
                    assert_eq!(r.is_ok(), whole, "{ctx}: mprotect {r:?}");
                    if whole {
                        for q in range {
                            model.pages.get_mut(&q).unwrap().0 = prot;
                        }
                    }
                }
            }
            16..=45 => {
                if let Some(p) = pick(&mut rng, &model) {
                    let s = rng.next();
                    let r = write_page(&mut mm, p, s);
                    let entry = model.pages.get_mut(&p).unwrap();
                    if entry.0.write {
                        r.unwrap_or_else(|e| panic!("{ctx}: write at {p:#x}: {e:?}"));
                        entry.1 = Some(s);
                    } else {
                        assert!(
                            matches!(r, Err(RealFault::Protection { .. })),
                            "{ctx}: {r:?}"
                        );
                    }
                }
            }
            46..=75 => {
                if let Some(p) = pick(&mut rng, &model) {
                    let got = read_page(&mut mm, p)
                        .unwrap_or_else(|e| panic!("{ctx}: read at {p:#x}: {e:?}"));
                    assert!(
                        got == model.expected(p),
                        "{ctx}: page {p:#x} holds the wrong bytes"
                    );
                }
            }
            76..=79 => {
                // An address in no region.
                let hole = 0x10_0000_0000 - PAGE;
                assert_eq!(read_page(&mut mm, hole), Err(RealFault::NoRegion), "{ctx}");
            }
            80..=89 => {
                mm.shrink_resident();
            }
            90..=94 if !regions.is_empty() => {
                let (a, len) = regions[rng.below(regions.len() as u64) as usize];
                let whole = (a..a + len)
                    .step_by(PAGE as usize)
                    .all(|q| model.pages.contains_key(&q));
                let r = mm.madvise_pageout(a, len);
                if swap == 0 {
                    assert_eq!(r, Err(SwapError::NoSwap), "{ctx}");
                } else if whole {
                    r.unwrap_or_else(|e| panic!("{ctx}: pageout: {e}"));
                } else {
                    assert!(
                        matches!(r, Err(SwapError::NotMapped { .. })),
                        "{ctx}: {r:?}"
                    );
                }
            }
            _ => {
                if let Some(p) = pick(&mut rng, &model) {
                    mm.test_and_clear_young(VirtAddr::new(p));
                }
            }
        }
        assert!(world.in_use() <= frames, "{ctx}: over the frame budget");
    }
    // Every page, then nothing left behind.
    let all: Vec<u64> = model.pages.keys().copied().collect();
    for p in all {
        let got = read_page(&mut mm, p).unwrap();
        assert!(
            got == model.expected(p),
            "seed {seed}: page {p:#x} at the end"
        );
    }
    for (a, len) in regions {
        mm.munmap(a, len).unwrap();
    }
    assert_eq!(mm.regions().count(), 0);
    assert_eq!(world.in_use(), 0, "seed {seed}: frames leaked");
    assert!(world.ties.borrow().is_empty(), "seed {seed}: ties leaked");
    if swap > 0 {
        let total = world.swap.total_slots();
        assert_eq!(world.free_slots(), total, "seed {seed}: swap slots leaked");
        // The run went through swap both ways (else it checked less than it claims).
        let stats = world.disk.as_ref().unwrap().stats();
        assert!(
            stats.write_requests > 0 && stats.read_requests > 0,
            "seed {seed}: swap not exercised: {stats:?}"
        );
    }
}

#[test]
fn random_sequences_keep_every_page_with_plenty_of_memory() {
    for seed in 0..8 {
        random_run(seed, 600, 4096, 0);
    }
}

#[test]
fn random_sequences_keep_every_page_through_swap() {
    // 40 frames for up to 12 regions of 24 pages: most pages live on swap.
    for seed in 100..124 {
        random_run(seed, 1500, 40, 1024);
    }
}

#[test]
fn random_sequences_keep_every_page_with_swap_barely_big_enough() {
    // RAM plus swap just covers the largest footprint (12 x 24 pages): reclaim often finds the
    // area full and must keep pages in memory then.
    for seed in 200..208 {
        random_run(seed, 1500, 96, 200);
    }
}

#[test]
fn demand_zero_pages_are_zero_though_frames_come_dirty() {
    let world = World::new(16, 0);
    let mut mm = world.space();
    let a = mm.mmap(4 * PAGE, Prot::RW, "t").unwrap();
    for p in (a..a + 4 * PAGE).step_by(PAGE as usize) {
        assert!(read_page(&mut mm, p).unwrap().iter().all(|&b| b == 0));
    }
}

#[test]
fn without_memory_a_fault_is_out_of_memory_and_leaks_nothing() {
    let world = World::new(2, 0);
    let mut mm = world.space();
    let a = mm.mmap(4 * PAGE, Prot::RW, "t").unwrap();
    write_page(&mut mm, a, 1).unwrap();
    write_page(&mut mm, a + PAGE, 2).unwrap();
    assert_eq!(
        write_page(&mut mm, a + 2 * PAGE, 3),
        Err(RealFault::OutOfMemory)
    );
    // A fault outside every region is that, whatever memory is left.
    assert_eq!(read_page(&mut mm, a + 8 * PAGE), Err(RealFault::NoRegion));
    assert_eq!(world.in_use(), 2);
    mm.munmap(a, 4 * PAGE).unwrap();
    assert_eq!(world.in_use(), 0);
}

/// `n` pages written with seeds `0..n` in a new region.
fn written(mm: &mut Space, n: u64) -> u64 {
    let a = mm.mmap(n * PAGE, Prot::RW, "t").unwrap();
    for i in 0..n {
        write_page(mm, a + i * PAGE, i).unwrap();
    }
    a
}

#[test]
fn a_failed_swap_write_keeps_every_page_in_memory() {
    let world = World::new(64, 256);
    let mut mm = world.space();
    let a = written(&mut mm, 8);
    let disk = world.disk.clone().unwrap();
    disk.lock().fail_write = true;
    let r = mm.madvise_pageout(a, 8 * PAGE);
    assert!(matches!(r, Err(SwapError::Write { .. })), "{r:?}");
    assert_eq!(
        mm.shrink_resident(),
        0,
        "reclaim freed pages whose write failed"
    );
    assert_eq!(world.in_use(), 8);
    for i in 0..8 {
        let p = a + i * PAGE;
        assert!(desc::is_leaf(
            mm.page_table().pte(VirtAddr::new(p)).unwrap(),
            3
        ));
        assert!(read_page(&mut mm, p).unwrap() == filled(i));
    }
    // The disk mended, the same pages go out and come back.
    disk.lock().fail_write = false;
    assert_eq!(mm.madvise_pageout(a, 8 * PAGE), Ok(8));
    assert_eq!(world.in_use(), 0);
    for i in 0..8 {
        assert!(read_page(&mut mm, a + i * PAGE).unwrap() == filled(i));
    }
}

#[test]
fn a_slot_changed_on_disk_is_refused_and_its_entry_kept() {
    let world = World::new(64, 256);
    let mut mm = world.space();
    let a = written(&mut mm, 2);
    assert_eq!(mm.madvise_pageout(a, 2 * PAGE), Ok(2));
    let slot = SwapEntry::from_pte(mm.page_table().pte(VirtAddr::new(a)).unwrap())
        .unwrap()
        .slot();
    world.disk.as_ref().unwrap().lock().page_mut(slot)[100] ^= 1;
    assert_eq!(
        read_page(&mut mm, a),
        Err(RealFault::SwapIn {
            slot,
            why: SwapInFailure::Checksum
        })
    );
    // Nothing was mapped or leaked; the entry still names the slot; the other page is fine.
    assert_eq!(
        SwapEntry::from_pte(mm.page_table().pte(VirtAddr::new(a)).unwrap()).map(|e| e.slot()),
        Some(slot)
    );
    assert!(read_page(&mut mm, a + PAGE).unwrap() == filled(1));
    assert_eq!(world.in_use(), 1);
    mm.munmap(a, 2 * PAGE).unwrap();
    assert_eq!(world.in_use(), 0);
    assert_eq!(world.free_slots(), world.swap.total_slots());
}

#[test]
fn pages_read_back_stay_tied_until_written_and_go_again_without_a_write() {
    let world = World::new(64, 256);
    let mut mm = world.space();
    let a = written(&mut mm, 4);
    assert_eq!(mm.madvise_pageout(a, 4 * PAGE), Ok(4));
    let disk = world.disk.clone().unwrap();
    // (One at a time: the disk's lock guard lives to the end of its statement.)
    let writes = disk.lock().writes;
    let reads = disk.stats().read_requests;
    // One fault reads all four (readahead), in one request.
    assert!(read_page(&mut mm, a).unwrap() == filled(0));
    assert_eq!(disk.stats().read_requests, reads + 1);
    assert_eq!(world.in_use(), 4);
    assert_eq!(mm.swap_slots_held(a, 4 * PAGE), (0, 4));
    // Clean: out again with no write.
    assert_eq!(mm.madvise_pageout(a, 4 * PAGE), Ok(4));
    assert_eq!(disk.lock().writes, writes);
    assert_eq!(mm.swap_slots_held(a, 4 * PAGE), (4, 0));
    // A write fault on page 1 reads pages 1..4 back; the written page is untied at once (its
    // slot freed, the page writable), the two read ahead stay tied, page 0 stays on swap. Out
    // again: the written page needs a write, the tied ones none.
    write_page(&mut mm, a + PAGE, 99).unwrap();
    assert_eq!(mm.swap_slots_held(a, 4 * PAGE), (1, 2));
    assert_eq!(mm.madvise_pageout(a, 4 * PAGE), Ok(3));
    assert_eq!(disk.lock().writes, writes + 1);
    assert!(read_page(&mut mm, a + PAGE).unwrap() == filled(99));
    mm.munmap(a, 4 * PAGE).unwrap();
    assert_eq!(world.free_slots(), world.swap.total_slots());
    assert!(world.ties.borrow().is_empty());
}

#[test]
fn the_clock_spares_pages_in_use_and_takes_cold_ones() {
    let world = World::new(64, 256);
    let mut mm = world.space();
    // 40 pages: more than one batch (32), so one pass cannot take them all.
    let a = written(&mut mm, 40);
    for i in 0..40 {
        assert_eq!(
            mm.test_and_clear_young(VirtAddr::new(a + i * PAGE)),
            Some(true)
        );
    }
    // Pages 0..8 used again (their access flags set again by access-flag faults); the other
    // 32 stay cold and are the batch.
    for i in 0..8 {
        read_page(&mut mm, a + i * PAGE).unwrap();
    }
    assert_eq!(mm.shrink_resident(), 32);
    for i in 0..40 {
        let d = mm.page_table().pte(VirtAddr::new(a + i * PAGE)).unwrap();
        assert_eq!(desc::is_leaf(d, 3), i < 8, "page {i}");
    }
    assert_eq!(mm.swap_slots_held(a, 40 * PAGE), (32, 0));
}

#[test]
fn a_full_area_keeps_dirty_pages_in_memory() {
    // A disk of 9 pages: the header and 8 slots.
    let world = World::new(64, 9);
    let mut mm = world.space();
    let a = written(&mut mm, 12);
    let r = mm.madvise_pageout(a, 12 * PAGE);
    assert!(matches!(r, Err(SwapError::Full { .. })), "{r:?}");
    for i in 0..12 {
        assert!(read_page(&mut mm, a + i * PAGE).unwrap() == filled(i));
    }
    mm.munmap(a, 12 * PAGE).unwrap();
    assert_eq!(world.in_use(), 0);
    assert_eq!(world.free_slots(), world.swap.total_slots());
}

#[test]
fn the_stack_is_populated_locked_and_never_paged_out() {
    let world = World::new(64, 256);
    let mut mm = world.space();
    let (bottom, top) = mm.map_stack(4 * PAGE, 2 * PAGE).unwrap();
    assert_eq!(top - bottom, 4 * PAGE);
    assert_eq!(world.in_use(), 4);
    for p in (bottom..top).step_by(PAGE as usize) {
        assert!(mm
            .page_table()
            .pte(VirtAddr::new(p))
            .is_some_and(|d| desc::is_leaf(d, 3)));
    }
    assert_eq!(mm.madvise_pageout(bottom, 4 * PAGE), Ok(0));
    assert!(
        mm.munmap(bottom, PAGE).is_err(),
        "munmap took a page of the locked stack"
    );
    // An overflow lands in the guard.
    assert!(matches!(
        read_page(&mut mm, bottom - PAGE),
        Err(RealFault::Protection {
            name: crate::mmap::STACK_GUARD,
            ..
        })
    ));
    mm.unmap_stack(bottom, 4 * PAGE, 2 * PAGE);
    assert_eq!(world.in_use(), 0);
    assert_eq!(mm.regions().count(), 0);
}
