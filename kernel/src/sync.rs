//! Locks that know about interrupts: `IrqSpinLock<T>` masks IRQs on this CPU for as long as it
//! is held (Linux's `spin_lock_irqsave`), so an interrupt handler that takes the same lock can
//! never find it held by the code it interrupted. Every lock an interrupt handler may take is
//! one of these. `SpinLock<T>` does not mask them: process context only. Both are named, and
//! lockdep (`lockdep` on the command line) checks their order and context. Owns the masking
//! discipline; must never be held across a sleep.
#![forbid(unsafe_code)]

use core::ops::{Deref, DerefMut};

use crate::arch::aarch64::irq::{local_irq_restore, local_irq_save, IrqFlags};
use crate::lockdep::{self, LockClass};

/// A spin lock taken with IRQs masked.
pub struct IrqSpinLock<T> {
    inner: spin::Mutex<T>,
    class: LockClass,
}

/// The held lock: unlocks, then puts the IRQ mask back as it was, when dropped.
pub struct IrqSpinLockGuard<'a, T> {
    /// Always `Some` until the drop takes it (to unlock before the mask is restored).
    guard: Option<spin::MutexGuard<'a, T>>,
    flags: IrqFlags,
    class: &'a LockClass,
}

impl<T> IrqSpinLock<T> {
    /// A lock named `name` (its lockdep class).
    pub const fn new(name: &'static str, value: T) -> IrqSpinLock<T> {
        IrqSpinLock {
            inner: spin::Mutex::new(value),
            class: LockClass::new(name, true),
        }
    }

    /// Masks IRQs, then takes the lock.
    #[track_caller]
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let flags = local_irq_save();
        if lockdep::enabled() {
            lockdep::acquire(&self.class, core::panic::Location::caller());
        }
        IrqSpinLockGuard {
            guard: Some(self.inner.lock()),
            flags,
            class: &self.class,
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
        if lockdep::enabled() {
            lockdep::release(self.class);
        }
        local_irq_restore(self.flags);
    }
}

/// A spin lock that leaves interrupts as they are: for locks no interrupt handler takes
/// (lockdep reports one taken in interrupt context).
pub struct SpinLock<T> {
    inner: spin::Mutex<T>,
    class: LockClass,
}

/// The held `SpinLock`.
pub struct SpinLockGuard<'a, T> {
    guard: spin::MutexGuard<'a, T>,
    class: &'a LockClass,
}

impl<T> SpinLock<T> {
    /// A lock named `name` (its lockdep class).
    pub const fn new(name: &'static str, value: T) -> SpinLock<T> {
        SpinLock {
            inner: spin::Mutex::new(value),
            class: LockClass::new(name, false),
        }
    }

    /// Takes the lock.
    #[track_caller]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        if lockdep::enabled() {
            lockdep::acquire(&self.class, core::panic::Location::caller());
        }
        SpinLockGuard {
            guard: self.inner.lock(),
            class: &self.class,
        }
    }
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        if lockdep::enabled() {
            lockdep::release(self.class);
        }
    }
}
