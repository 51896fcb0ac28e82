//! `Mmio<R>`: a device's registers as a typed block `R` (a `tock-registers` struct), in a
//! mapping the kernel keeps for good. The one unchecked claim, that `R` is the layout of the
//! registers at that address, is made once where the block is built (`new`); every register
//! access after that is safe. A console starts on a boot mapping and moves to `ioremap`'s
//! (`move_to`), which the block then keeps for the rest of the kernel's life.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::addr::{PhysAddr, VirtAddr};

pub struct Mmio<R> {
    /// Where the registers are mapped now (`move_to` changes it: boot mapping, then ioremap).
    base: AtomicUsize,
    phys: PhysAddr,
    _regs: PhantomData<R>,
}

// SAFETY: `R`'s registers are only read and written whole, through volatile accesses to device
// memory that no Rust value lives in; a CPU interleaving its accesses with another's cannot break
// memory safety (where the device needs an order, its driver takes a lock: the console's). `Send`
// needs no claim: the block is not tied to a thread.
unsafe impl<R> Sync for Mmio<R> {}

impl<R> Mmio<R> {
    /// The registers mapped at `va`, of the device at `phys`.
    ///
    /// # Safety
    /// `va` must map the device's registers as device memory for the kernel's lifetime (or until
    /// `move_to` moves away from it), `R` must describe them, and nothing else may drive them.
    pub unsafe fn new(va: VirtAddr, phys: PhysAddr) -> Mmio<R> {
        Mmio {
            base: AtomicUsize::new(va.as_u64() as usize),
            phys,
            _regs: PhantomData,
        }
    }

    #[inline]
    pub fn regs(&self) -> &R {
        // SAFETY: `new` and `move_to` accept only addresses that map these registers for good,
        // laid out as `R`.
        unsafe { &*(self.base.load(Ordering::Relaxed) as *const R) }
    }

    /// Where the registers are mapped now.
    pub fn addr(&self) -> VirtAddr {
        VirtAddr::new(self.base.load(Ordering::Relaxed) as u64)
    }

    pub fn phys(&self) -> PhysAddr {
        self.phys
    }

    /// Moves to `io`, another mapping of the same registers, and keeps it for good. Refused
    /// (the mapping handed back) if it maps other registers or fewer than `R` spans.
    #[cfg(target_os = "none")]
    pub fn move_to(&self, io: crate::mm::ioremap::IoMem) -> Result<(), crate::mm::ioremap::IoMem> {
        if io.phys() != self.phys || io.size() < core::mem::size_of::<R>() as u64 {
            return Err(io);
        }
        self.base
            .store(io.addr().as_u64() as usize, Ordering::SeqCst);
        // The registers stay mapped for the rest of the kernel's life.
        core::mem::forget(io);
        Ok(())
    }
}
