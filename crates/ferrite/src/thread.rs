//! Threads of the application: they share its memory (its regions and heap), run in turn on the
//! CPU (one runs at a time today; a thread that runs longer than its time slice is preempted),
//! sleep, and wait for each other. A thread is joined with [`JoinHandle::join`]; threads still
//! running when `main` returns are waited for before the run ends.
//!
//! ```ignore
//! use ferrite::thread;
//!
//! let handles: alloc::vec::Vec<_> = (0..4u64)
//!     .map(|i| thread::spawn(move || (i * 1000..(i + 1) * 1000).sum::<u64>()).unwrap())
//!     .collect();
//! let total: u64 = handles.into_iter().map(|h| h.join()).sum();
//! assert_eq!(total, (0..4000).sum::<u64>());
//! ```
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::time::Duration;

/// Why a thread could not be started (no free thread slot, no memory for its stack).
pub use ferrite_kernel::sched::SpawnError;

/// An application thread to wait for; [`join`](Self::join) returns what its function returned.
pub struct JoinHandle<T> {
    tid: usize,
    result: Arc<spin::Mutex<Option<T>>>,
}

/// Starts a thread running `f`. Its stack is 64 KiB of kernel memory (never swapped) with a guard
/// page below; everything it allocates comes from the application's heap.
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let result = Arc::new(spin::Mutex::new(None));
    let slot = result.clone();
    let tid = ferrite_kernel::sched::spawn_app(Box::new(move || {
        let value = f();
        *slot.lock() = Some(value);
    }))?;
    Ok(JoinHandle { tid, result })
}

impl<T> JoinHandle<T> {
    /// Waits until the thread's function returned, and gives its value.
    pub fn join(self) -> T {
        ferrite_kernel::sched::join_app(self.tid);
        self.result
            .lock()
            .take()
            .expect("a joined thread left its value")
    }
}

/// Sleeps for `d` (the other threads run meanwhile).
///
/// ```ignore
/// ferrite::thread::sleep(core::time::Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    ferrite_kernel::time::sleep(d)
}

/// Lets the other runnable threads run first.
pub fn yield_now() {
    ferrite_kernel::sched::yield_now()
}

/// Threads waiting for a condition another thread makes true (Linux's wait queue): a waiter
/// sleeps until woken and the condition holds; a waker changes what the condition reads, then
/// calls [`wake_all`](Self::wake_all).
///
/// ```ignore
/// use core::sync::atomic::{AtomicBool, Ordering};
/// use alloc::sync::Arc;
///
/// let ready = Arc::new(AtomicBool::new(false));
/// let wq = Arc::new(ferrite::thread::WaitQueue::new());
/// let (r, q) = (ready.clone(), wq.clone());
/// let t = ferrite::thread::spawn(move || {
///     r.store(true, Ordering::Release);
///     q.wake_all();
/// }).unwrap();
/// wq.wait_until(|| ready.load(Ordering::Acquire));
/// t.join();
/// ```
#[derive(Default)]
pub struct WaitQueue {
    inner: ferrite_kernel::sched::WaitQueue,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> WaitQueue {
        WaitQueue {
            inner: ferrite_kernel::sched::WaitQueue::new(),
        }
    }

    /// Sleeps until `condition` holds (it is checked before each sleep, so a wake-up is never
    /// missed).
    pub fn wait_until(&self, condition: impl FnMut() -> bool) {
        self.inner.wait_event(condition)
    }

    /// As [`wait_until`](Self::wait_until), giving up after `timeout`: whether the condition held.
    pub fn wait_until_timeout(&self, condition: impl FnMut() -> bool, timeout: Duration) -> bool {
        self.inner.wait_event_timeout(condition, timeout)
    }

    /// Wakes every waiting thread (each checks its condition again).
    pub fn wake_all(&self) {
        self.inner.wake_up()
    }
}
