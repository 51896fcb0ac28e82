//! The page-fault handlers of an address space (Linux's `mm/memory.c`): demand-zero pages,
//! swap-in with readahead, access-flag faults (the reclaim clock's reference bit) and
//! write-protect faults on pages tied to their swap copy. Anything a handler cannot settle (no
//! region, a permission the region lacks, no memory left, a page that does not come back from
//! swap) is a real fault, which the exception report then describes. Must never hand the
//! application a page that failed its check, nor leak a frame on any path (frames are
//! `FrameBox`es until a table entry holds them).
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use super::addr_space::{AddrSpace, Backing, FrameBox};
use super::cpu::ticks;
use super::gfp::Gfp;
use super::mmap::STACK_GUARD;
use super::pgtable::{desc, Attrs, MemType, PageTable};
use super::swap_entry::SwapEntry;
use super::swap_state::{drop_swap_cache, tie, untie_keep_slot};
use super::swapfile::SwapError;
use super::vma::{FaultDecision, Prot, Vma};
use super::vmscan::RECLAIM_TICKS;
use super::vmstat::{AF_FAULTS, PGFAULT, PGMAJFAULT, SWAPIN_TICKS};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};

/// Pages a swap-in fault reads in one request (the faulting one and those after it).
const SWAP_READAHEAD: usize = 16;

/// Why a fault was not handled (for the exception report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealFault {
    NoRegion,
    Protection {
        start: u64,
        end: u64,
        prot: Prot,
        name: &'static str,
    },
    OutOfMemory,
    /// The page could not be read back from swap.
    SwapIn {
        slot: u64,
        why: SwapInFailure,
    },
    /// The address space was locked by the faulting code itself.
    Busy,
}

impl From<&Vma> for RealFault {
    /// The region that refused an access.
    fn from(vma: &Vma) -> RealFault {
        RealFault::Protection {
            start: vma.start,
            end: vma.end,
            prot: vma.prot,
            name: vma.name,
        }
    }
}

/// Why a swapped-out page could not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapInFailure {
    /// The disk refused the read, or the driver could not make it.
    Io,
    /// The page read is not the page written.
    Checksum,
    /// The entry names a slot that holds no page, or no swap area is active.
    NoPage,
}

/// How the application's pages are mapped: it runs at EL1 in the low half, so pages are
/// kernel-accessible, non-global (per address space), and never writable and executable.
pub(super) fn attrs(prot: Prot) -> Attrs {
    Attrs {
        mem: MemType::Normal,
        write: prot.write,
        kernel_exec: prot.exec && !prot.write,
        user: false,
        user_exec: false,
        global: false,
        accessed: true,
    }
}

/// A page tied to its swap copy is mapped read-only whatever the region allows, so the first
/// write faults and unties it (the copy is stale from then on).
pub(super) fn clean_attrs(prot: Prot) -> Attrs {
    attrs(Prot {
        write: false,
        ..prot
    })
}

/// The level-3 descriptor of an application page with `prot`, without its frame: built once
/// per permission set, so a fault only adds the address.
pub(super) fn leaf_template(prot: Prot) -> u64 {
    static TEMPLATES: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    let slot =
        &TEMPLATES[prot.read as usize | (prot.write as usize) << 1 | (prot.exec as usize) << 2];
    match slot.load(Ordering::Relaxed) {
        0 => {
            let d = desc::leaf(0, attrs(prot), 3);
            slot.store(d, Ordering::Relaxed);
            d
        }
        d => d,
    }
}

impl<B: Backing> AddrSpace<B> {
    /// A translation fault at `far`. `frame` is the page the caller allocated for it before it
    /// took the space (the allocation may run reclaim, which needs the space), `None` if there
    /// was none; it is freed unless a table entry takes it. `Ok` means the access can be
    /// retried.
    #[inline(always)]
    pub fn handle_page_fault(
        &mut self,
        far: u64,
        write: bool,
        exec: bool,
        frame: Option<FrameBox<B>>,
    ) -> Result<(), RealFault> {
        let prot = match self.vmas.decide(far, write, exec) {
            FaultDecision::DemandZero { prot } => prot,
            FaultDecision::NoRegion => return Err(RealFault::NoRegion),
            FaultDecision::Protection { vma } => return Err(RealFault::from(&vma)),
        };
        let mut frame = frame.ok_or(RealFault::OutOfMemory)?;
        let page = VirtAddr::new(far & !(PAGE_SIZE - 1));
        // Without a swap area no entry can hold a swapped page: skip the extra walk.
        let swapped = if self.backing.swap().active() {
            self.pt.pte(page).and_then(SwapEntry::from_pte)
        } else {
            None
        };
        if let Some(entry) = swapped {
            return self.swap_in_fault(far, write, page, frame, entry, prot);
        }
        frame.zero();
        self.pt
            .map_pte(page, leaf_template(prot) | frame.phys().as_u64())
            .map_err(|_| RealFault::OutOfMemory)?;
        frame.into_phys();
        self.track_resident(page);
        PGFAULT.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A fault on a page that is on swap (kept out of line so the demand-zero path stays
    /// small): reads it, and the following pages of the region whose entries hold the following
    /// slots, in one request; maps every page that verified. Unless the swap area is nearly full
    /// the pages stay tied to their slots (the swap cache), mapped read-only, so reclaim can drop
    /// them again without a write; the faulting page of a write fault is untied at once.
    #[cold]
    #[inline(never)]
    fn swap_in_fault(
        &mut self,
        far: u64,
        write: bool,
        page: VirtAddr,
        mut frame: FrameBox<B>,
        entry: SwapEntry,
        prot: Prot,
    ) -> Result<(), RealFault> {
        let backing = self.backing;
        let swap = backing.swap();
        // Pages read ahead with the faulting one: their frames, and which of them verified.
        let mut ahead: [Option<FrameBox<B>>; SWAP_READAHEAD - 1] = Default::default();
        let mut ahead_n = 0;
        let ahead_ok;
        {
            let t0 = ticks();
            // Reclaim run by the readahead's allocations (the slab shrinker and swap-out) is not
            // swap-in's time.
            let reclaim0 = RECLAIM_TICKS.load(Ordering::Relaxed);
            // Readahead: the following pages of the region whose entries hold the following
            // slots (what reclaim wrote together usually comes back together), as far as memory
            // allows: one attempt each, and the first refusal ends the readahead.
            let region_end = self.vmas.find(far).map_or(0, |v| v.end);
            while ahead_n < SWAP_READAHEAD - 1 {
                let v = page.as_u64() + (ahead_n as u64 + 1) * PAGE_SIZE;
                let next = SwapEntry::new(entry.area(), entry.slot() + ahead_n as u64 + 1);
                if v >= region_end
                    || next.is_none()
                    || self.pt.pte(VirtAddr::new(v)).and_then(SwapEntry::from_pte) != next
                {
                    break;
                }
                let Some(f) = FrameBox::alloc(backing, Gfp::KERNEL | Gfp::NOWARN | Gfp::NORETRY)
                else {
                    break;
                };
                ahead[ahead_n] = Some(f);
                ahead_n += 1;
            }
            let mut bufs: [&mut [u8]; SWAP_READAHEAD] = Default::default();
            bufs[0] = frame.bytes_mut();
            for (buf, f) in bufs[1..].iter_mut().zip(ahead[..ahead_n].iter_mut()) {
                if let Some(f) = f {
                    *buf = f.bytes_mut();
                }
            }
            let result = match swap.swap_in_ahead(entry, &mut bufs[..ahead_n + 1]) {
                Ok(mask) if mask & 1 != 0 => Ok(mask >> 1),
                Ok(_) => swap.swap_in(entry, bufs[0]).map(|_| 0),
                // A failure somewhere in the batch: the faulting page alone decides.
                Err(_) if ahead_n > 0 => swap.swap_in(entry, bufs[0]).map(|_| 0),
                Err(e) => Err(e),
            };
            match result {
                Ok(mask) => ahead_ok = mask,
                Err(e) => {
                    log::error!("page at {:#x}: {e}", page.as_u64());
                    return Err(RealFault::SwapIn {
                        slot: entry.slot(),
                        why: match e {
                            SwapError::Checksum { .. } => SwapInFailure::Checksum,
                            SwapError::NotInUse(_) | SwapError::NoSwap => SwapInFailure::NoPage,
                            _ => SwapInFailure::Io,
                        },
                    });
                }
            }
            let nested = RECLAIM_TICKS.load(Ordering::Relaxed) - reclaim0;
            SWAPIN_TICKS.fetch_add((ticks() - t0).saturating_sub(nested), Ordering::Relaxed);
        }
        // Linux gives up swap copies once half the area is used (`vm_swap_full`). Here reclaim
        // can always drop a clean copy without a write, even with the area full, so copies are
        // kept until the area is nearly full, when free slots for dirty pages are what count.
        let keep = swap.free_slots_now() * 16 >= swap.total_slots();
        map_swapped(
            &mut self.pt,
            backing,
            page,
            frame,
            entry,
            prot,
            keep && !write,
        )?;
        PGMAJFAULT.fetch_add(1, Ordering::Relaxed);
        for (i, f) in ahead[..ahead_n].iter_mut().enumerate() {
            let (Some(f), Some(e)) = (
                f.take(),
                SwapEntry::new(entry.area(), entry.slot() + i as u64 + 1),
            ) else {
                continue;
            };
            let v = VirtAddr::new(page.as_u64() + (i as u64 + 1) * PAGE_SIZE);
            // A page that failed its checksum keeps its entry: its own fault reports it.
            if ahead_ok & (1 << i) != 0
                && map_swapped(&mut self.pt, backing, v, f, e, prot, keep).is_ok()
            {
                self.track_resident(v);
            }
        }
        self.track_resident(page);
        PGFAULT.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An access-flag fault on a resident page (software access-flag management): sets the
    /// flag, which tells reclaim's clock the page is in use. `Ok` means retry the access.
    pub fn handle_access_flag(&mut self, far: u64) -> Result<(), RealFault> {
        AF_FAULTS.fetch_add(1, Ordering::Relaxed);
        let va = VirtAddr::new(far & !(PAGE_SIZE - 1));
        match self.pt.pte(va) {
            Some(d) if desc::is_leaf(d, 3) => {
                let _ = self.pt.set_pte(va, d | desc::AF);
                Ok(())
            }
            _ => Err(RealFault::NoRegion),
        }
    }

    /// A permission fault. A write the region allows, to a page tied to its swap copy, unties it
    /// (the slot is freed, the page becomes writable) and is retried (`Ok`); anything else is
    /// real, and the error says which region refused it.
    pub fn handle_permission_fault(
        &mut self,
        far: u64,
        write: bool,
        exec: bool,
    ) -> Result<(), RealFault> {
        let decision = self.vmas.decide(far, write, exec);
        if let (FaultDecision::DemandZero { prot }, true) = (&decision, write) {
            let va = VirtAddr::new(far & !(PAGE_SIZE - 1));
            if let Some(d) = self.pt.pte(va).filter(|&d| desc::is_leaf(d, 3)) {
                let pa = PhysAddr::new(desc::addr(d));
                if self.backing.swap_tie(pa).is_some() {
                    drop_swap_cache(self.backing, pa);
                    // Same frame, more permission: no break-before-make; set_pte invalidates
                    // the read-only entry the TLB may hold.
                    let _ = self
                        .pt
                        .set_pte(va, desc::leaf(pa.as_u64(), attrs(*prot), 3));
                    return Ok(());
                }
            }
        }
        Err(match decision {
            FaultDecision::NoRegion => RealFault::NoRegion,
            FaultDecision::Protection { vma } => RealFault::from(&vma),
            // The region allows it but the page does not: a page mapped by someone else.
            FaultDecision::DemandZero { .. } => RealFault::Busy,
        })
    }
}

/// Maps a page just read back from `entry` at `va`: tied to the slot and read-only when `cache`
/// (the slot keeps its copy), else with the region's permissions and the slot freed. On an
/// error the frame is freed and the entry stays in the table.
fn map_swapped<B: Backing>(
    pt: &mut PageTable<B::Tables, B::Tlb>,
    backing: B,
    va: VirtAddr,
    frame: FrameBox<B>,
    entry: SwapEntry,
    prot: Prot,
    cache: bool,
) -> Result<(), RealFault> {
    let pa = frame.phys();
    let cache = cache && tie(backing, pa, entry);
    let a = if cache {
        clean_attrs(prot)
    } else {
        attrs(prot)
    };
    if pt.map_page(va, pa, a).is_err() {
        if cache {
            untie_keep_slot(backing, pa);
        }
        return Err(RealFault::OutOfMemory);
    }
    frame.into_phys();
    if !cache {
        if let Err(e) = backing.swap().swap_free(entry) {
            log::warn!("swap-in at {:#x}: {e}", va.as_u64());
        }
    }
    Ok(())
}

/// Describes a real fault for the exception report, without allocating.
pub fn describe(fault: RealFault, print: &dyn Fn(core::fmt::Arguments)) {
    match fault {
        RealFault::NoRegion => print(format_args!("  application fault: the address is in no region\n")),
        RealFault::Protection { start, end, name: STACK_GUARD, .. } => print(format_args!(
            "  application stack overflow: the access is in the stack guard [{start:#x}-{end:#x}) below the application's stack\n"
        )),
        RealFault::Protection { start, end, prot, name } => print(format_args!(
            "  application fault: region [{start:#x}-{end:#x}) {name} is {prot}, which does not allow this access\n"
        )),
        // The exception handler prints the out-of-memory report (mm::oom) instead.
        RealFault::OutOfMemory => print(format_args!(
            "  out of memory: no page left for the application's fault\n"
        )),
        RealFault::SwapIn { slot, why: SwapInFailure::Checksum } => print(format_args!(
            "  swap: the page read back from slot {slot} is not the page written (checksum mismatch); it is not handed to the application\n"
        )),
        RealFault::SwapIn { slot, why: SwapInFailure::Io } => print(format_args!(
            "  swap: the page in slot {slot} could not be read back (I/O error)\n"
        )),
        RealFault::SwapIn { slot, why: SwapInFailure::NoPage } => print(format_args!(
            "  swap: the entry names slot {slot}, which holds no page (a stale entry)\n"
        )),
        RealFault::Busy => print(format_args!("  the fault happened inside the memory manager itself\n")),
    }
}
