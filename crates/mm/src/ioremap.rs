//! `ioremap`: device registers mapped into the ioremap area with the memory type a bus needs
//! (Device-nGnRE, `ioremap_np` for nGnRnE, `ioremap_wc` for Normal non-cacheable), owned by an
//! `IoMem` that unmaps on drop. Requests are widened to whole pages; the same range with the same
//! type is one shared mapping; RAM (which the linear map already covers, cacheable) is refused, as
//! a second mapping with another memory type would break coherency. Kernel only.
// A named exception to the crate's `deny(unsafe_code)`: device registers, reached by volatile access.
#![allow(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use spin::Mutex;

use super::layout::IOREMAP_END;
use super::pgtable::{Attrs, MapError, MemType};
use super::vmalloc::{VmKind, VmapAreas};
use crate::addr::{PhysAddr, PhysRange, VirtAddr, PAGE_SIZE};
use crate::kspace::KERNEL_PT;
use crate::layout::IOREMAP_EARLY_END;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoremapError {
    ZeroSize,
    /// The range is RAM.
    Ram {
        pa: PhysAddr,
        bank: PhysRange,
    },
    /// No room left in the ioremap area.
    NoSpace(u64),
    Map(MapError),
    /// `ioremap` was called before the memory manager was up.
    NotReady,
}

impl fmt::Display for IoremapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoremapError::ZeroSize => write!(f, "ioremap of 0 bytes"),
            IoremapError::Ram { pa, bank } => {
                write!(
                    f,
                    "ioremap of {pa}: that is RAM (bank {bank}), already in the linear map"
                )
            }
            IoremapError::NoSpace(n) => write!(f, "ioremap: no room for {n:#x} bytes"),
            IoremapError::Map(e) => write!(f, "ioremap: {e}"),
            IoremapError::NotReady => write!(f, "ioremap before the memory manager is up"),
        }
    }
}

type Key = (u64, u64, u8);

struct State {
    areas: VmapAreas,
    /// (first page, bytes, memory type) -> (virtual address, users)
    maps: BTreeMap<Key, (u64, usize)>,
    ram: Vec<PhysRange>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Starts `ioremap` (after kmalloc), refusing the given RAM banks.
pub fn init(ram: &[PhysRange]) {
    *STATE.lock() = Some(State {
        areas: VmapAreas::new(IOREMAP_EARLY_END, IOREMAP_END),
        maps: BTreeMap::new(),
        ram: ram.to_vec(),
    });
}

/// Registers mapped into the kernel; unmapped when the last owner of the range drops it.
pub struct IoMem {
    base: VirtAddr,
    pa: PhysAddr,
    size: u64,
    key: Key,
}

impl IoMem {
    /// The virtual address of the requested physical address.
    pub fn addr(&self) -> VirtAddr {
        self.base
    }
    pub fn phys(&self) -> PhysAddr {
        self.pa
    }
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A 32-bit register read at `offset` (checked against the mapping).
    pub fn read32(&self, offset: u64) -> u32 {
        assert!(
            offset.checked_add(4).is_some_and(|e| e <= self.size) && offset.is_multiple_of(4),
            "register offset {offset:#x} out of range"
        );
        // SAFETY: inside the live device mapping, aligned; a volatile access as devices need.
        unsafe { ((self.base.as_u64() + offset) as *const u32).read_volatile() }
    }

    /// A 32-bit register write at `offset` (checked against the mapping).
    pub fn write32(&self, offset: u64, value: u32) {
        assert!(
            offset.checked_add(4).is_some_and(|e| e <= self.size) && offset.is_multiple_of(4),
            "register offset {offset:#x} out of range"
        );
        // SAFETY: as `read32`.
        unsafe { ((self.base.as_u64() + offset) as *mut u32).write_volatile(value) }
    }
}

impl fmt::Debug for IoMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IoMem({} -> {}, {:#x} bytes)",
            self.pa, self.base, self.size
        )
    }
}

impl Drop for IoMem {
    fn drop(&mut self) {
        let mut g = STATE.lock();
        let Some(state) = g.as_mut() else { return };
        let Some(entry) = state.maps.get_mut(&self.key) else {
            return;
        };
        entry.1 -= 1;
        if entry.1 == 0 {
            let va = entry.0;
            state.maps.remove(&self.key);
            if let Some(pt) = KERNEL_PT.lock().as_mut() {
                let _ = pt.unmap(VirtAddr::new(va), self.key.1);
            }
            if state.areas.free(va).is_some() {
                // The mapping was invalidated by `unmap` already: the range can return now.
                state.areas.purge();
            }
        }
    }
}

fn map(pa: PhysAddr, size: u64, mem: MemType) -> Result<IoMem, IoremapError> {
    if size == 0 {
        return Err(IoremapError::ZeroSize);
    }
    let start = pa.align_down(PAGE_SIZE);
    let end = pa
        .checked_add(size)
        .and_then(|e| e.align_up(PAGE_SIZE))
        .ok_or(IoremapError::Map(MapError::OutOfRange {
            va: VirtAddr::new(0),
            size,
        }))?;
    let len = end.as_u64() - start.as_u64();
    let range = PhysRange::new(start, len);
    let mut g = STATE.lock();
    let state = g.as_mut().ok_or(IoremapError::NotReady)?;
    if let Some(bank) = state.ram.iter().find(|b| b.intersect(&range).is_some()) {
        return Err(IoremapError::Ram { pa, bank: *bank });
    }
    let key = (start.as_u64(), len, mem as u8);
    let offset = pa.as_u64() - start.as_u64();
    if let Some(entry) = state.maps.get_mut(&key) {
        entry.1 += 1;
        return Ok(IoMem {
            base: VirtAddr::new(entry.0 + offset),
            pa,
            size,
            key,
        });
    }
    // As Linux's huge ioremap: a range of whole 2 MiB blocks at a 2 MiB-aligned address gets a
    // 2 MiB-aligned virtual address, so it maps as blocks (one descriptor each, not 512).
    const BLOCK: u64 = 2 << 20;
    let align = if start.as_u64().is_multiple_of(BLOCK) && len.is_multiple_of(BLOCK) {
        BLOCK
    } else {
        PAGE_SIZE
    };
    let va = state
        .areas
        .alloc(len, align, VmKind::Vmap, Vec::new())
        .ok_or(IoremapError::NoSpace(len))?;
    let attrs = Attrs {
        mem,
        ..Attrs::DEVICE
    };
    let mapped = KERNEL_PT
        .lock()
        .as_mut()
        .ok_or(IoremapError::NotReady)?
        .map(VirtAddr::new(va), start, len, attrs);
    if let Err(e) = mapped {
        state.areas.free(va);
        state.areas.purge();
        return Err(IoremapError::Map(e));
    }
    state.maps.insert(key, (va, 1));
    Ok(IoMem {
        base: VirtAddr::new(va + offset),
        pa,
        size,
        key,
    })
}

/// `ioremap`: Device-nGnRE.
pub fn ioremap(pa: PhysAddr, size: u64) -> Result<IoMem, IoremapError> {
    map(pa, size, MemType::DeviceNgnre)
}

/// `ioremap_np`: Device-nGnRnE, for buses that must not post writes.
pub fn ioremap_np(pa: PhysAddr, size: u64) -> Result<IoMem, IoremapError> {
    map(pa, size, MemType::DeviceNgnrne)
}

/// `ioremap_wc`: Normal non-cacheable (write-combining), e.g. frame buffers.
pub fn ioremap_wc(pa: PhysAddr, size: u64) -> Result<IoMem, IoremapError> {
    map(pa, size, MemType::NormalNc)
}

/// Mappings live now (for tests and reports).
pub fn mappings() -> usize {
    STATE.lock().as_ref().map_or(0, |s| s.maps.len())
}
