//! Locks that know about interrupts: `IrqSpinLock<T>` masks IRQs on this CPU for as long as it
//! is held (Linux's `spin_lock_irqsave`), so an interrupt handler that takes the same lock can
//! never find it held by the code it interrupted. Every lock an interrupt handler may take is
//! one of these. Owns the masking discipline; must never be held across a sleep.
#![forbid(unsafe_code)]

use core::ops::{Deref, DerefMut};

use crate::arch::aarch64::irq::{local_irq_restore, local_irq_save, IrqFlags};

/// A spin lock taken with IRQs masked.
pub struct IrqSpinLock<T> {
    inner: spin::Mutex<T>,
}

/// The held lock: unlocks, then puts the IRQ mask back as it was, when dropped.
pub struct IrqSpinLockGuard<'a, T> {
    /// Always `Some` until the drop takes it (to unlock before the mask is restored).
    guard: Option<spin::MutexGuard<'a, T>>,
    flags: IrqFlags,
}

impl<T> IrqSpinLock<T> {
    pub const fn new(value: T) -> IrqSpinLock<T> {
        IrqSpinLock {
            inner: spin::Mutex::new(value),
        }
    }

    /// Masks IRQs, then takes the lock.
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let flags = local_irq_save();
        IrqSpinLockGuard {
            guard: Some(self.inner.lock()),
            flags,
        }
    }
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for IrqSpinLockGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        local_irq_restore(self.flags);
    }
}
