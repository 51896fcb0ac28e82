//! The kernel's interrupts (Linux's kernel/irq): one interrupt controller (`IrqChip`, found at
//! boot by drivers::irqchip), the handlers drivers request (`request_irq`) by the number their
//! controller knows the line by, a count per interrupt (`/proc/interrupts`), and the dispatch the
//! exception vector calls: on the CPU's interrupt stack (vmalloc'd, a guard page below), in
//! interrupt context (`in_interrupt`), IRQs masked throughout, every pending interrupt
//! acknowledged, handled and ended. Owns the table of handlers; must never touch a controller's
//! registers itself, and a handler must never sleep, wait for a lock a process holds without
//! masking interrupts, or allocate with anything but `Gfp::ATOMIC`.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::machine::Trigger;

/// What the kernel needs from an interrupt controller.
pub trait IrqChip: Send + Sync {
    /// The name `/proc/interrupts` shows (`GICv2`).
    fn name(&self) -> &'static str;
    /// Interrupt IDs it implements (the first `lines`).
    fn lines(&self) -> u32;
    /// The line an interrupt of the device tree is, in this chip's numbering (`None`: the
    /// interrupt goes to a controller this chip does not drive).
    fn map(&self, irq: &crate::machine::Irq) -> Option<u32>;
    /// Unmasks `hwirq` with `trigger`.
    fn enable(&self, hwirq: u32, trigger: Trigger);
    /// Masks `hwirq`.
    fn disable(&self, hwirq: u32);
    /// Acknowledges the highest-priority pending interrupt: a token for `end`, or `None` when
    /// nothing (more) is pending.
    fn acknowledge(&self) -> Option<u32>;
    /// The interrupt a token from `acknowledge` stands for.
    fn hwirq_of(&self, ack: u32) -> u32;
    /// Ends the interrupt `acknowledge` handed out.
    fn end(&self, ack: u32);
}

/// Why `request_irq` refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrqError {
    /// The kernel runs without an interrupt controller (the boot log says why).
    NoController,
    /// The controller has no such line.
    NoSuchLine(u32),
    /// Someone else has the line.
    Busy(u32),
    /// Every descriptor is taken.
    TooMany,
    /// The interrupt goes to a controller the kernel does not drive.
    NotOurs,
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrqError::NoController => write!(f, "no interrupt controller"),
            IrqError::NoSuchLine(n) => write!(f, "the interrupt controller has no line {n}"),
            IrqError::Busy(n) => write!(f, "interrupt {n} is already requested"),
            IrqError::TooMany => write!(f, "no free interrupt descriptor"),
            IrqError::NotOurs => write!(
                f,
                "the interrupt goes to a controller Ferrite does not drive"
            ),
        }
    }
}

/// A handler: runs in interrupt context, IRQs masked, on the interrupt stack.
pub type Handler = Box<dyn Fn() + Send + Sync>;

/// One requested interrupt (Linux's `irq_desc` with its one action).
struct Desc {
    hwirq: u32,
    trigger: Trigger,
    name: &'static str,
    handler: Handler,
    count: AtomicU64,
    enabled: AtomicBool,
}

/// Descriptors, indexed by the number `request_irq` hands out (Linux's virtual IRQ number,
/// counted from 1); written once each, in process context, read by the dispatch.
const MAX_IRQS: usize = 64;
static DESCS: [spin::Once<Desc>; MAX_IRQS] = [const { spin::Once::new() }; MAX_IRQS];
/// Serialises requests (never taken by the dispatch).
static REQUEST: spin::Mutex<()> = spin::Mutex::new(());
static CHIP: spin::Once<Box<dyn IrqChip>> = spin::Once::new();
/// Interrupts acknowledged that no handler claimed (`/proc/interrupts`'s `Err:` line).
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// The interrupt stack's size (vmalloc'd, with the unmapped guard page below it).
pub const IRQ_STACK_SIZE: usize = 16 << 10;
/// The boot CPU's interrupt stack (per CPU with SMP), alive for the rest of the run.
static IRQ_STACK: spin::Once<crate::mm::vmap::KernelStack> = spin::Once::new();

/// The interrupt stack's range `[bottom, top)`, once there is one.
pub fn irq_stack() -> Option<(u64, u64)> {
    IRQ_STACK.get().map(|s| (s.bottom(), s.top()))
}

/// Installs the machine's interrupt controller and this CPU's interrupt stack (once, at boot).
/// Interrupts stay masked until the boot unmasks them.
pub fn install(chip: Box<dyn IrqChip>) -> Result<(), String> {
    let stack = crate::mm::vmap::KernelStack::new(IRQ_STACK_SIZE)
        .map_err(|e| alloc::format!("no interrupt stack: {e}"))?;
    let top = IRQ_STACK.call_once(|| stack).top();
    crate::arch::aarch64::exception::set_irq_stack(top);
    CHIP.call_once(|| chip);
    Ok(())
}

/// The controller's name, once there is one.
pub fn chip_name() -> Option<&'static str> {
    CHIP.get().map(|c| c.name())
}

/// Interrupt IDs the controller implements (0 without one).
pub fn lines() -> u32 {
    CHIP.get().map_or(0, |c| c.lines())
}

/// Whether this CPU is handling an interrupt (Linux's `in_interrupt`/`in_hardirq`; the flag is
/// mm's, whose allocator holds interrupt context to `Gfp::ATOMIC`).
pub fn in_interrupt() -> bool {
    crate::mm::context::in_interrupt()
}

/// Requests `hwirq` (as the controller numbers it) with `trigger`: `handler` runs on each of its
/// interrupts from now on (the line is enabled). Returns its number for `/proc/interrupts`.
pub fn request_irq(
    hwirq: u32,
    trigger: Trigger,
    name: &'static str,
    handler: Handler,
) -> Result<usize, IrqError> {
    let chip = CHIP.get().ok_or(IrqError::NoController)?;
    if hwirq >= chip.lines() {
        return Err(IrqError::NoSuchLine(hwirq));
    }
    let _serial = REQUEST.lock();
    if DESCS
        .iter()
        .any(|d| d.get().is_some_and(|d| d.hwirq == hwirq))
    {
        return Err(IrqError::Busy(hwirq));
    }
    let slot = DESCS
        .iter()
        .position(|d| d.get().is_none())
        .ok_or(IrqError::TooMany)?;
    DESCS[slot].call_once(|| Desc {
        hwirq,
        trigger,
        name,
        handler,
        count: AtomicU64::new(0),
        enabled: AtomicBool::new(true),
    });
    chip.enable(hwirq, trigger);
    Ok(slot + 1)
}

/// Requests the device tree's interrupt `irq` (see [`request_irq`]).
pub fn request_irq_of(
    irq: &crate::machine::Irq,
    name: &'static str,
    handler: Handler,
) -> Result<usize, IrqError> {
    let chip = CHIP.get().ok_or(IrqError::NoController)?;
    let hwirq = chip.map(irq).ok_or(IrqError::NotOurs)?;
    request_irq(hwirq, irq.trigger, name, handler)
}

fn desc(irq: usize) -> Option<&'static Desc> {
    DESCS.get(irq.checked_sub(1)?)?.get()
}

/// Masks interrupt `irq` (a number from `request_irq`) at the controller.
pub fn disable_irq(irq: usize) {
    if let (Some(d), Some(chip)) = (desc(irq), CHIP.get()) {
        d.enabled.store(false, Ordering::Relaxed);
        chip.disable(d.hwirq);
    }
}

/// Unmasks interrupt `irq` again.
pub fn enable_irq(irq: usize) {
    if let (Some(d), Some(chip)) = (desc(irq), CHIP.get()) {
        d.enabled.store(true, Ordering::Relaxed);
        chip.enable(d.hwirq, d.trigger);
    }
}

/// How many times interrupt `irq` was handled.
pub fn count(irq: usize) -> u64 {
    desc(irq).map_or(0, |d| d.count.load(Ordering::Relaxed))
}

/// Handles every pending interrupt: what the IRQ vector runs, on the interrupt stack.
pub fn handle_pending() {
    let Some(chip) = CHIP.get() else {
        return;
    };
    let _irq = crate::mm::context::enter_interrupt();
    while let Some(ack) = chip.acknowledge() {
        let hwirq = chip.hwirq_of(ack);
        match DESCS
            .iter()
            .filter_map(|d| d.get())
            .find(|d| d.hwirq == hwirq)
        {
            Some(d) => {
                d.count.fetch_add(1, Ordering::Relaxed);
                (d.handler)();
            }
            None => {
                ERRORS.fetch_add(1, Ordering::Relaxed);
                chip.disable(hwirq);
            }
        }
        chip.end(ack);
    }
}

/// `/proc/interrupts`, in Linux's layout: a header of CPUs, then one row per requested
/// interrupt (number, count per CPU, controller, hardware IRQ, trigger, name), then `Err:`.
pub fn proc_interrupts() -> String {
    let mut out = String::from("           CPU0       \n");
    let chip = chip_name().unwrap_or("none");
    for (i, d) in DESCS.iter().enumerate() {
        let Some(d) = d.get() else { continue };
        let _ = writeln!(
            out,
            "{:>3}: {:>10} {:>8} {:>3} {:<5}     {}",
            i + 1,
            d.count.load(Ordering::Relaxed),
            chip,
            d.hwirq,
            d.trigger.as_str(),
            d.name
        );
    }
    let _ = writeln!(out, "Err: {:>10}", ERRORS.load(Ordering::Relaxed));
    out
}
