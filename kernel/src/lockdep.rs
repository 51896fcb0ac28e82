//! lockdep, the lock validator (Linux's kernel/locking/lockdep.c, reduced to its two rules), on
//! with `lockdep` on the command line. Each named lock (`sync::IrqSpinLock`, `sync::SpinLock`) is
//! a class; every acquisition records the order of the classes already held (A held while B is
//! taken: the edge A -> B, with where each was taken) and checks two rules:
//! - **one global order**: taking B while holding A when B -> A was seen before is a possible
//!   deadlock (two threads, or a thread and an interrupt, taking them in opposite orders); the
//!   report shows both chains: what this thread holds, and where B was held when A was taken.
//! - **interrupt safety**: a lock that does not mask interrupts (`SpinLock`) taken in interrupt
//!   context could already be held by the code the interrupt stopped.
//!
//! Each report is printed once per pair (or class) and counted. Owns the classes, the held-lock
//! stack of this CPU and the order graph, all in fixed tables (it runs inside lock operations:
//! it must never allocate, and its own bookkeeping masks interrupts). With `lockdep` off every
//! hook is one load and a branch.
#![forbid(unsafe_code)]

use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::arch::aarch64::irq::{local_irq_restore, local_irq_save};

/// Lock classes lockdep can tell apart.
const MAX_CLASSES: usize = 32;
/// Locks one CPU may hold at once.
const MAX_HELD: usize = 16;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Reports printed so far (the self-tests count them).
pub static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Turns lockdep on (the boot, for `lockdep` on the command line).
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

/// Whether lockdep checks lock operations.
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A lock's class: its name, and the number lockdep gives it on first use (0: none yet).
pub struct LockClass {
    name: &'static str,
    /// Whether the lock masks interrupts while held (may be taken in interrupt context).
    irq_safe: bool,
    id: AtomicU8,
}

impl LockClass {
    pub const fn new(name: &'static str, irq_safe: bool) -> LockClass {
        LockClass {
            name,
            irq_safe,
            id: AtomicU8::new(0),
        }
    }
}

struct Held {
    class: u8,
    at: &'static Location<'static>,
}

struct State {
    names: [&'static str; MAX_CLASSES],
    classes: usize,
    held: [Option<Held>; MAX_HELD],
    depth: usize,
    /// `order[a][b]`: b was taken while a was held, first seen with a taken at `.0` and b at `.1`.
    order: [[Option<(&'static Location<'static>, &'static Location<'static>)>; MAX_CLASSES];
        MAX_CLASSES],
    /// Pairs (and classes, on the diagonal) already reported, so each is reported once.
    reported: [[bool; MAX_CLASSES]; MAX_CLASSES],
}

static STATE: spin::Mutex<State> = spin::Mutex::new(State {
    names: [""; MAX_CLASSES],
    classes: 0,
    held: [const { None }; MAX_HELD],
    depth: 0,
    order: [[None; MAX_CLASSES]; MAX_CLASSES],
    reported: [[false; MAX_CLASSES]; MAX_CLASSES],
});

fn class_id(state: &mut State, class: &LockClass) -> Option<u8> {
    match class.id.load(Ordering::Relaxed) {
        0 if state.classes < MAX_CLASSES - 1 => {
            state.classes += 1;
            state.names[state.classes] = class.name;
            class.id.store(state.classes as u8, Ordering::Relaxed);
            Some(state.classes as u8)
        }
        0 => None, // out of classes: not tracked
        id => Some(id),
    }
}

/// Called as a lock of `class` is about to be taken at `at`.
#[cold]
pub fn acquire(class: &LockClass, at: &'static Location<'static>) {
    let flags = local_irq_save();
    // lockdep's own lock: never contended on one CPU with interrupts masked.
    let mut guard = STATE.lock();
    let s = &mut *guard;
    if let Some(b) = class_id(s, class) {
        let b_us = b as usize;
        if !class.irq_safe && crate::mm::context::in_interrupt() && !s.reported[b_us][b_us] {
            s.reported[b_us][b_us] = true;
            REPORTS.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "lockdep: interrupt-unsafe lock '{}' taken in interrupt context at {at}: the code the interrupt stopped may hold it (make it an IrqSpinLock)",
                class.name
            );
            report_held(s);
        }
        for i in 0..s.depth {
            let Some(Held { class: a, at: a_at }) = s.held[i] else {
                continue;
            };
            let a_us = a as usize;
            if a == b {
                continue;
            }
            // b -> a seen before: the opposite order.
            if let Some((b_then, a_then)) = s.order[b_us][a_us] {
                if !s.reported[a_us][b_us] {
                    s.reported[a_us][b_us] = true;
                    s.reported[b_us][a_us] = true;
                    REPORTS.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "lockdep: possible circular locking dependency: '{}' taken at {at} while holding '{}' (taken at {a_at})",
                        class.name,
                        s.names[a_us]
                    );
                    log::error!("lockdep: this thread's chain:");
                    report_held(s);
                    log::error!(
                        "lockdep: the opposite order seen before: '{}' held (taken at {b_then}) when '{}' was taken at {a_then}",
                        s.names[b_us],
                        s.names[a_us]
                    );
                }
            }
            if s.order[a_us][b_us].is_none() {
                s.order[a_us][b_us] = Some((a_at, at));
            }
        }
        if s.depth < MAX_HELD {
            s.held[s.depth] = Some(Held { class: b, at });
            s.depth += 1;
        }
    }
    drop(guard);
    local_irq_restore(flags);
}

fn report_held(s: &State) {
    for held in s.held[..s.depth].iter().flatten() {
        log::error!(
            "lockdep:   holds '{}' (taken at {})",
            s.names[held.class as usize],
            held.at
        );
    }
}

/// Called as a lock of `class` is released.
#[cold]
pub fn release(class: &LockClass) {
    let id = class.id.load(Ordering::Relaxed);
    if id == 0 {
        return;
    }
    let flags = local_irq_save();
    let mut s = STATE.lock();
    if let Some(i) = (0..s.depth)
        .rev()
        .find(|&i| s.held[i].as_ref().is_some_and(|h| h.class == id))
    {
        let depth = s.depth;
        s.held[i..depth].rotate_left(1);
        s.held[depth - 1] = None;
        s.depth -= 1;
    }
    drop(s);
    local_irq_restore(flags);
}

/// For a call abandoned at a trapped fault (its frames never unwound, so no lock it held is
/// released): names the locks this CPU still holds, which stay held (the kernel may deadlock on
/// them later), and forgets them; without lockdep, says it cannot know. Prints through `print`
/// without allocating or waiting (the fault may have struck inside lockdep's own bookkeeping).
pub fn report_abandoned(print: &dyn Fn(core::fmt::Arguments)) {
    if !enabled() {
        print(format_args!(
            "    Locks the call held, if any, stay held (boot with lockdep to list them).\n"
        ));
        return;
    }
    let Some(mut s) = STATE.try_lock() else {
        print(format_args!(
            "    lockdep is busy: the locks the call held are unknown.\n"
        ));
        return;
    };
    if s.depth == 0 {
        print(format_args!("    The call held no lock.\n"));
        return;
    }
    print(format_args!(
        "    The call held these locks, which stay held (the kernel may deadlock on them):\n"
    ));
    for held in s.held[..s.depth].iter().flatten() {
        print(format_args!(
            "      '{}' (taken at {})\n",
            s.names[held.class as usize], held.at
        ));
    }
    let depth = s.depth;
    s.held[..depth].iter_mut().for_each(|h| *h = None);
    s.depth = 0;
}

/// Forgets what this CPU holds (a thread switch leaves no lock held; the self-tests start
/// clean).
pub fn held_depth() -> usize {
    STATE.lock().depth
}
