//! Whose code the CPU runs: the application's or the kernel's. The global allocator
//! (`mm::heap`) serves a new allocation from the application's heap in application context and
//! from `kmalloc` in kernel context, so an application's `Box`/`Vec`/`String` live in its own,
//! swappable half while the kernel's allocations stay in RAM that is never swapped (a kernel lock
//! holder must never fault on swapped memory).
//!
//! Owns the one context flag (one CPU today: with SMP it becomes a per-CPU word, and only this
//! module changes) and the guards that change it: [`Context::enter_application`] (the runtime,
//! around the job's main) and [`Context::enter_kernel`] (the exception entry, the kernel's entry
//! points an application calls, the memory manager's own locked entry points), each restoring
//! the previous context when dropped, so they nest. Must never allocate or take a lock: the
//! exception entry uses it on the demand-zero fault's hot path.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

/// Whose code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Kernel,
    Application,
}

/// Set while the CPU runs application code. Relaxed is enough: only the CPU that changes it
/// reads it, and an exception that changes it restores it before returning.
static IN_APPLICATION: AtomicBool = AtomicBool::new(false);

impl Context {
    /// The context the CPU runs in now.
    #[inline(always)]
    pub fn current() -> Context {
        if IN_APPLICATION.load(Ordering::Relaxed) {
            Context::Application
        } else {
            Context::Kernel
        }
    }

    /// Application context until the guard is dropped: the job's main (`runtime::run`).
    #[inline(always)]
    pub fn enter_application() -> ContextGuard {
        ContextGuard::enter(true)
    }

    /// Kernel context until the guard is dropped. Every way into kernel code from an application
    /// takes one: the exception entry, the API's entry points (anything that may allocate while
    /// holding a lock the fault handler takes), and mm's locked entry points themselves.
    #[inline(always)]
    pub fn enter_kernel() -> ContextGuard {
        ContextGuard::enter(false)
    }
}

/// Restores the context it replaced when dropped. Not `Send`: it belongs to the CPU (with SMP,
/// to the CPU's flag) that took it.
#[must_use = "the context reverts when the guard is dropped"]
pub struct ContextGuard {
    previous: bool,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl ContextGuard {
    #[inline(always)]
    fn enter(application: bool) -> ContextGuard {
        // A load and a store, not an atomic swap (an exclusive-access loop on this CPU): only
        // this CPU changes its flag, and an exception taken between the two restores it.
        let previous = IN_APPLICATION.load(Ordering::Relaxed);
        IN_APPLICATION.store(application, Ordering::Relaxed);
        ContextGuard {
            previous,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl ContextGuard {
    /// Whether the code this guard interrupted ran in application context (the exception
    /// entry's guard: an interrupt that arrived in the application's code, where the kernel may
    /// preempt it).
    #[inline(always)]
    pub fn interrupted_application(&self) -> bool {
        self.previous
    }
}

/// The scheduler's switch of the flag between threads: each thread has its own context, saved
/// when it is switched out and put back when it runs again. Returns the context that was
/// current. Nothing else may call it (guards nest on one thread's stack; this swaps stacks).
#[inline(always)]
pub fn switch_thread_context(next: Context) -> Context {
    let previous = Context::current();
    IN_APPLICATION.store(next == Context::Application, Ordering::Relaxed);
    previous
}

impl Drop for ContextGuard {
    #[inline(always)]
    fn drop(&mut self) {
        IN_APPLICATION.store(self.previous, Ordering::Relaxed);
    }
}

/// Interrupt handlers running on this CPU (nested count; one CPU today). The kernel's interrupt
/// dispatch marks them (`enter_interrupt`); the page allocator reads it to hold interrupt
/// context to `Gfp::ATOMIC` (one load on its fast path).
static IN_INTERRUPT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Whether this CPU is handling an interrupt (Linux's `in_interrupt`).
#[inline(always)]
pub fn in_interrupt() -> bool {
    IN_INTERRUPT.load(Ordering::Relaxed) > 0
}

/// Marks interrupt context until dropped (Linux's `irq_enter`/`irq_exit`).
#[must_use = "interrupt context ends when the guard is dropped"]
pub struct InterruptGuard {
    _not_send: core::marker::PhantomData<*const ()>,
}

/// Enters interrupt context (the kernel's interrupt dispatch only).
#[inline(always)]
pub fn enter_interrupt() -> InterruptGuard {
    IN_INTERRUPT.fetch_add(1, Ordering::Relaxed);
    InterruptGuard {
        _not_send: core::marker::PhantomData,
    }
}

impl Drop for InterruptGuard {
    #[inline(always)]
    fn drop(&mut self) {
        IN_INTERRUPT.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only host test that changes the flag (the tests run in parallel threads and share it).
    #[test]
    fn guards_nest_and_restore_what_they_replaced() {
        assert_eq!(Context::current(), Context::Kernel);
        {
            let _app = Context::enter_application();
            assert_eq!(Context::current(), Context::Application);
            {
                let _kernel = Context::enter_kernel();
                assert_eq!(Context::current(), Context::Kernel);
                {
                    let _again = Context::enter_application();
                    assert_eq!(Context::current(), Context::Application);
                }
                assert_eq!(Context::current(), Context::Kernel);
            }
            assert_eq!(Context::current(), Context::Application);
        }
        assert_eq!(Context::current(), Context::Kernel);
    }
}
