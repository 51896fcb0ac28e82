//! Kernel threads and the scheduler (Linux's kernel/sched and kthread, reduced to one CPU and one
//! policy): a fixed table of threads, each with its own vmalloc'd kernel stack (a guard page
//! below), a FIFO run queue, an idle thread that waits in `WFI`, wait queues (`wait_event`,
//! `wake_up`) and timed sleeps on the timer queue. The boot code becomes thread 0 and the job
//! runs on it. Preemption is Linux's `PREEMPT_NONE` with voluntary points: a thread running the
//! application's code is preempted when its time slice ends or a thread wakes; kernel code is
//! switched away only where it blocks, sleeps or calls `cond_resched`, so a kernel spin lock is
//! never held by a thread that is not running. Owns the thread table, the run queue and the
//! switch discipline (IRQs masked from the choice of the next thread to the switch); must never
//! allocate or free with IRQs masked, or in interrupt context (a wake-up only marks and queues).

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use crate::arch::aarch64::irq::{
    local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save,
};
use crate::arch::aarch64::switch::{self, CpuContext};
use crate::arch::aarch64::timer;
use crate::mm::context::{self, Context};
use crate::mm::vmap::KernelStack;
use crate::sync::IrqSpinLock;

/// A thread's number: its slot in the table.
pub type Tid = usize;

/// Threads that can exist at once (the boot thread and idle included).
pub const MAX_THREADS: usize = 64;
/// A kernel thread's stack.
pub const STACK_SIZE: usize = 32 << 10;
/// How long an application thread runs before another runnable thread gets the CPU.
pub const TIME_SLICE: Duration = Duration::from_millis(10);

const BOOT: Tid = 0;
const IDLE: Tid = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unused,
    Runnable,
    Running,
    Blocked,
    /// Ended; its slot waits for `join` (or for reuse, when detached) to free its stack.
    Dead,
}

struct Thread {
    state: State,
    name: &'static str,
    /// Its mm context (application or kernel) while switched out.
    context: Context,
    stack: Option<KernelStack>,
    entry: Option<Box<dyn FnOnce() + Send>>,
    /// Nobody will join it: its slot is reused once it is dead.
    detached: bool,
}

const UNUSED: Thread = Thread {
    state: State::Unused,
    name: "",
    context: Context::Kernel,
    stack: None,
    entry: None,
    detached: false,
};

static THREADS: IrqSpinLock<[Thread; MAX_THREADS]> =
    IrqSpinLock::new("threads", [UNUSED; MAX_THREADS]);

/// The saved CPU state of every thread, outside the table's lock: the switch reads and writes
/// them with IRQs masked, after the lock is dropped.
struct Contexts([UnsafeCell<CpuContext>; MAX_THREADS]);
// SAFETY: a context is written only by `switch` for the thread switching out and read only for
// the thread switching in, both on this CPU with IRQs masked, and by `spawn` for a slot no
// thread runs on yet; one CPU runs today (SMP will add the run queue's lock around it).
unsafe impl Sync for Contexts {}
static CONTEXTS: Contexts =
    Contexts([const { UnsafeCell::new(CpuContext::zeroed()) }; MAX_THREADS]);

/// The run queue: runnable threads in the order they became runnable (a ring of tids).
struct RunQueue {
    ring: [Tid; MAX_THREADS],
    head: usize,
    len: usize,
}

impl RunQueue {
    fn push(&mut self, t: Tid) {
        if self.len < MAX_THREADS && !self.contains(t) {
            self.ring[(self.head + self.len) % MAX_THREADS] = t;
            self.len += 1;
        }
    }
    fn pop(&mut self) -> Option<Tid> {
        (self.len > 0).then(|| {
            let t = self.ring[self.head];
            self.head = (self.head + 1) % MAX_THREADS;
            self.len -= 1;
            t
        })
    }
    fn contains(&self, t: Tid) -> bool {
        (0..self.len).any(|i| self.ring[(self.head + i) % MAX_THREADS] == t)
    }
}

static RUNQ: IrqSpinLock<RunQueue> = IrqSpinLock::new(
    "runqueue",
    RunQueue {
        ring: [0; MAX_THREADS],
        head: 0,
        len: 0,
    },
);
static CURRENT: AtomicUsize = AtomicUsize::new(BOOT);
static STARTED: AtomicBool = AtomicBool::new(false);
/// Set when a thread woke or a time slice ended: the next preemption point switches.
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);
/// Context switches so far (`/proc/stat`'s `ctxt`).
pub static SWITCHES: AtomicU64 = AtomicU64::new(0);
static SLICE_ARMED: AtomicBool = AtomicBool::new(false);

/// Why a thread could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// Every slot of the thread table is taken.
    TooManyThreads,
    /// No memory for its stack.
    NoStack,
    /// The scheduler is not running yet.
    NotStarted,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::TooManyThreads => write!(f, "no free thread slot ({MAX_THREADS} threads)"),
            SpawnError::NoStack => write!(f, "no memory for the thread's stack"),
            SpawnError::NotStarted => write!(f, "the scheduler is not running"),
        }
    }
}

/// Makes the boot code thread 0 and starts the idle thread. Called once, after vmalloc and the
/// timer queue exist.
pub fn init() -> Result<(), SpawnError> {
    {
        let mut t = THREADS.lock();
        t[BOOT].state = State::Running;
        t[BOOT].name = "boot";
    }
    let stack = KernelStack::new(8 << 10).map_err(|_| SpawnError::NoStack)?;
    let top = stack.top();
    {
        let mut t = THREADS.lock();
        t[IDLE] = Thread {
            state: State::Runnable,
            name: "idle",
            context: Context::Kernel,
            stack: Some(stack),
            entry: None,
            detached: false,
        };
    }
    // SAFETY: the idle thread has never run: nothing else touches its context.
    unsafe { *CONTEXTS.0[IDLE].get() = CpuContext::new_thread(top, idle_main, 0) };
    STARTED.store(true, Ordering::Release);
    Ok(())
}

/// Whether threads exist (`init` ran).
pub fn started() -> bool {
    STARTED.load(Ordering::Acquire)
}

/// The running thread.
pub fn current() -> Tid {
    CURRENT.load(Ordering::Relaxed)
}

/// The running thread's name.
pub fn current_name() -> &'static str {
    THREADS.lock()[current()].name
}

extern "C" fn idle_main(_: usize) -> ! {
    loop {
        // Masked between the look at the queue and WFI, so a wake-up cannot slip in between:
        // WFI wakes on the pending interrupt and unmasking takes it.
        local_irq_disable();
        if RUNQ.lock().len == 0 {
            crate::arch::aarch64::irq::wait_for_interrupt();
        }
        local_irq_enable();
        schedule();
    }
}

/// Where every new thread starts: IRQs on, its function, then its end.
extern "C" fn thread_start(_: usize) -> ! {
    local_irq_enable();
    let entry = THREADS.lock()[current()].entry.take();
    if let Some(f) = entry {
        f();
    }
    exit()
}

/// Starts a kernel thread running `f`; it is runnable at once. `detached`: nobody will join it.
pub fn spawn(
    name: &'static str,
    detached: bool,
    f: Box<dyn FnOnce() + Send>,
) -> Result<Tid, SpawnError> {
    spawn_with_stack(name, STACK_SIZE, detached, f)
}

/// The application's threads that have not been joined (the runtime joins them when `main`
/// returns: their code and heap end with the job).
static APP_THREADS: AtomicU64 = AtomicU64::new(0);
/// An application thread's stack (kernel memory, never swapped, a guard page below).
pub const APP_STACK_SIZE: usize = 64 << 10;

/// Starts a thread of the application: `f` runs in application context (its allocations in the
/// application's heap), is preempted when its time slice ends, and must be joined.
pub fn spawn_app(f: Box<dyn FnOnce() + Send>) -> Result<Tid, SpawnError> {
    let tid = spawn_with_stack(
        "app",
        APP_STACK_SIZE,
        false,
        Box::new(move || {
            let _application = Context::enter_application();
            f();
        }),
    )?;
    APP_THREADS.fetch_or(1 << tid, Ordering::Relaxed);
    Ok(tid)
}

/// Joins an application thread (see [`join`]).
pub fn join_app(tid: Tid) {
    join(tid);
    APP_THREADS.fetch_and(!(1 << tid), Ordering::Relaxed);
}

/// Joins every application thread not joined yet; how many there were.
pub fn join_all_app() -> usize {
    let mut left = APP_THREADS.load(Ordering::Relaxed);
    let n = left.count_ones() as usize;
    while left != 0 {
        let tid = left.trailing_zeros() as usize;
        left &= left - 1;
        join_app(tid);
    }
    n
}

/// Starts a thread with a stack of `stack_size` bytes.
pub fn spawn_with_stack(
    name: &'static str,
    stack_size: usize,
    detached: bool,
    f: Box<dyn FnOnce() + Send>,
) -> Result<Tid, SpawnError> {
    if !started() {
        return Err(SpawnError::NotStarted);
    }
    reap_detached();
    let stack = KernelStack::new(stack_size).map_err(|_| SpawnError::NoStack)?;
    let top = stack.top();
    let tid = {
        let mut t = THREADS.lock();
        let Some(tid) = t.iter().position(|th| th.state == State::Unused) else {
            drop(t);
            return Err(SpawnError::TooManyThreads);
        };
        t[tid] = Thread {
            state: State::Blocked,
            name,
            context: Context::Kernel,
            stack: Some(stack),
            entry: Some(f),
            detached,
        };
        tid
    };
    // SAFETY: the slot was unused: no thread runs on its context, and none will until it is
    // queued below.
    unsafe { *CONTEXTS.0[tid].get() = CpuContext::new_thread(top, thread_start, 0) };
    wake(tid);
    Ok(tid)
}

/// Frees the stacks of detached threads that ended (in process context, IRQs on).
fn reap_detached() {
    let mut dead = [const { None }; 4];
    {
        let mut t = THREADS.lock();
        let mut n = 0;
        for th in t.iter_mut() {
            if th.state == State::Dead && th.detached && n < dead.len() {
                dead[n] = th.stack.take();
                *th = UNUSED;
                n += 1;
            }
        }
    }
    drop(dead);
}

/// Ends the running thread (never returns). Its joiner, if any, is woken.
pub fn exit() -> ! {
    let tid = current();
    let flags = local_irq_save();
    THREADS.lock()[tid].state = State::Dead;
    EXITED.wake_up();
    schedule_masked();
    local_irq_restore(flags);
    unreachable!("a dead thread was scheduled");
}

/// Woken whenever a thread ends (joiners wait on it).
static EXITED: WaitQueue = WaitQueue::new();

/// Waits until thread `tid` ended, then frees its stack and slot.
pub fn join(tid: Tid) {
    EXITED.wait_event(|| THREADS.lock()[tid].state == State::Dead);
    let stack = {
        let mut t = THREADS.lock();
        let s = t[tid].stack.take();
        t[tid] = UNUSED;
        s
    };
    drop(stack);
}

/// Makes `tid` runnable if it is blocked (from any context, interrupts included); asks for a
/// switch at the next preemption point.
pub fn wake(tid: Tid) {
    let mut t = THREADS.lock();
    if t[tid].state == State::Blocked {
        t[tid].state = State::Runnable;
        RUNQ.lock().push(tid);
        NEED_RESCHED.store(true, Ordering::Relaxed);
        // The running thread gets the rest of one slice at most (kernel code until it blocks).
        arm_time_slice();
    }
}

/// Arms the time-slice timer unless it is armed already.
fn arm_time_slice() {
    if !SLICE_ARMED.swap(true, Ordering::Relaxed) {
        let deadline = timer::ticks() + crate::time::ticks_in(TIME_SLICE);
        if crate::time::add_timer(deadline, Some(time_slice_over), 0).is_err() {
            SLICE_ARMED.store(false, Ordering::Relaxed);
        }
    }
}

/// Gives the CPU to the next runnable thread, if any (Linux's `sched_yield`).
pub fn yield_now() {
    schedule();
}

/// Gives up the CPU: the running thread stays runnable (unless it blocked) and the next one
/// runs; returns when this one is chosen again.
pub fn schedule() {
    let flags = local_irq_save();
    schedule_masked();
    local_irq_restore(flags);
}

/// Switches if a wake-up or the end of a time slice asked for it (kernel code's voluntary
/// preemption point, Linux's `cond_resched`).
pub fn cond_resched() {
    if NEED_RESCHED.load(Ordering::Relaxed) && started() && !crate::irq::in_interrupt() {
        schedule();
    }
}

/// The exception return's preemption point (interrupts, and faults the kernel handled): switches
/// when asked to and the code returned to is the application's (kernel code is never preempted:
/// it may hold a spin lock), as Linux reschedules on the return to user mode. A load and a
/// branch on the demand-zero fault's path.
#[inline(always)]
pub fn preempt_on_exception_return(interrupted_application: bool) {
    if interrupted_application && NEED_RESCHED.load(Ordering::Relaxed) {
        preempt();
    }
}

#[cold]
#[inline(never)]
fn preempt() {
    if started() {
        schedule_masked();
    }
}

fn time_slice_over(_: usize) {
    SLICE_ARMED.store(false, Ordering::Relaxed);
    NEED_RESCHED.store(true, Ordering::Relaxed);
}

/// The choice and the switch, IRQs masked.
fn schedule_masked() {
    NEED_RESCHED.store(false, Ordering::Relaxed);
    let prev = current();
    let next = {
        let mut t = THREADS.lock();
        let mut rq = RUNQ.lock();
        if t[prev].state == State::Running && prev != IDLE {
            t[prev].state = State::Runnable;
            rq.push(prev);
        }
        let next = rq.pop().unwrap_or(IDLE);
        t[next].state = State::Running;
        if next != prev {
            t[prev].context = context::switch_thread_context(t[next].context);
        }
        // Others waiting: this thread gets one slice.
        if rq.len > 0 {
            arm_time_slice();
        }
        next
    };
    if next == prev {
        return;
    }
    CURRENT.store(next, Ordering::Relaxed);
    SWITCHES.fetch_add(1, Ordering::Relaxed);
    // SAFETY: IRQs are masked; `prev` is the running thread, whose context only this switch
    // writes; `next` was saved by a switch or made by `new_thread`, and its stack lives in the
    // table until it is joined or reaped, which needs it dead, so never while it is resumed.
    unsafe { switch::switch(CONTEXTS.0[prev].get(), CONTEXTS.0[next].get()) };
}

/// Threads whose sleep timer has fired (a bit per thread).
static SLEEP_DONE: AtomicU64 = AtomicU64::new(0);

fn sleep_timer_fired(tid: usize) {
    SLEEP_DONE.fetch_or(1 << tid, Ordering::Relaxed);
    wake(tid);
}

/// Blocks the running thread until its timer at `deadline` (counter ticks) fires. A sleep always
/// ends by its timer's interrupt (one whose deadline passed already fires at once), as Linux's
/// hrtimer sleeps do, so it never ends early and never depends on how fast the caller got here.
pub fn sleep_until(deadline: u64) {
    let me = current();
    SLEEP_DONE.fetch_and(!(1 << me), Ordering::Relaxed);
    if crate::time::add_timer(deadline, Some(sleep_timer_fired), me).is_err() {
        // The timer table is full: wait the old way.
        while timer::ticks() < deadline {
            schedule();
        }
        return;
    }
    loop {
        let flags = local_irq_save();
        if SLEEP_DONE.load(Ordering::Relaxed) & (1 << me) != 0 {
            local_irq_restore(flags);
            break;
        }
        THREADS.lock()[me].state = State::Blocked;
        schedule_masked();
        local_irq_restore(flags);
    }
}

fn wake_from_timer(tid: usize) {
    wake(tid);
}

/// Threads waiting for a condition (Linux's `wait_queue_head_t`): a set of tids, so neither
/// waiting nor waking allocates.
pub struct WaitQueue {
    waiters: AtomicU64,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> WaitQueue {
        WaitQueue {
            waiters: AtomicU64::new(0),
        }
    }

    /// Blocks until `condition` holds (checked with IRQs masked before each sleep, so a
    /// `wake_up` between the check and the sleep is never lost). Process context only.
    pub fn wait_event(&self, mut condition: impl FnMut() -> bool) {
        self.wait_event_until(&mut condition, None);
    }

    /// As `wait_event`, giving up at `deadline` (ticks): whether the condition held.
    pub fn wait_event_timeout(
        &self,
        mut condition: impl FnMut() -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = timer::ticks() + crate::time::ticks_in(timeout);
        self.wait_event_until(&mut condition, Some(deadline))
    }

    fn wait_event_until(&self, condition: &mut dyn FnMut() -> bool, deadline: Option<u64>) -> bool {
        debug_assert!(
            !crate::irq::in_interrupt(),
            "wait_event in interrupt context"
        );
        let me = current();
        let timer_id =
            deadline.and_then(|d| crate::time::add_timer(d, Some(wake_from_timer), me).ok());
        let held = loop {
            let flags = local_irq_save();
            if condition() {
                local_irq_restore(flags);
                break true;
            }
            if deadline.is_some_and(|d| timer::ticks() >= d) {
                local_irq_restore(flags);
                break false;
            }
            if !started() {
                // Before the scheduler: nothing to switch to; wait for an interrupt.
                crate::arch::aarch64::irq::wait_for_interrupt();
                local_irq_restore(flags);
                continue;
            }
            self.waiters.fetch_or(1 << me, Ordering::Relaxed);
            THREADS.lock()[me].state = State::Blocked;
            schedule_masked();
            local_irq_restore(flags);
        };
        self.waiters.fetch_and(!(1 << me), Ordering::Relaxed);
        if let Some(id) = timer_id {
            crate::time::del_timer(id);
        }
        held
    }

    /// Wakes every waiter (from any context, interrupt handlers included); each checks its
    /// condition again.
    pub fn wake_up(&self) {
        let mut w = self.waiters.swap(0, Ordering::Relaxed);
        while w != 0 {
            let tid = w.trailing_zeros() as usize;
            w &= w - 1;
            wake(tid);
        }
    }
}
