//! The kernel's own measurements, for benchmark programs: the memory manager's micro-benchmarks,
//! which run inside the kernel because they time what no application can reach (page-table
//! updates, the page allocator, slab, vmalloc), and the kernel's accounting of swap work, which
//! a program reads before and after its workload. Figures are in instructions under QEMU with
//! `-icount shift=0` (`make bench`; see [`time::counts_instructions`](crate::time::counts_instructions)),
//! else in nanoseconds of virtual time.
//!
//! ```ignore
//! for f in ferrite::bench::kernel().expect("the micro-benchmarks ran") {
//!     ferrite::println!("bench {} {} {}", f.name, f.value, f.unit);
//! }
//! let before = ferrite::bench::swap_cost();
//! // ... a workload that swaps ...
//! let after = ferrite::bench::swap_cost();
//! ferrite::println!("{} ns in page-out", after.swapout_ns - before.swapout_ns);
//! ```
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// One figure of [`kernel`]: `value` in `unit` (`insn` or `ns`) per operation, named as
/// `make bench` prints it (`page.alloc_free_o0`, `slab.kmalloc64`, ...).
pub use ferrite_kernel::mm_bench::Figure;
/// The kernel's time on swap and the swap disk's requests and waits so far (see
/// [`swap_cost`]).
pub use ferrite_kernel::mm_bench::SwapCost;

/// Runs the memory manager's micro-benchmarks in the kernel (page-table map and unmap of a
/// 4 KiB page and of 2 MiB blocks, page allocation and freeing at orders 0 and 3, `kmalloc(64)`,
/// a slab cache, `vmalloc(64 KiB)`) and returns one figure each; an error says what stopped
/// them.
pub fn kernel() -> Result<Vec<Figure>, &'static str> {
    crate::in_kernel(ferrite_kernel::mm_bench::run)
}

/// Runs the interrupt and thread micro-benchmarks in the kernel: `irq.latency` (from an
/// interrupt becoming deliverable to its handler), `sched.switch` (one switch between two threads
/// that yield to each other), `sched.wake` (from `wake_up` to the woken thread running); an error
/// on a machine without a timer interrupt.
pub fn scheduler() -> Result<Vec<Figure>, &'static str> {
    crate::in_kernel(ferrite_kernel::sched_bench::run)
}

/// The kernel's swap accounting now: the time spent in page-out and in swap-in faults, and the
/// swap disk's write requests and device waits (zeros without swap). The difference of two
/// gives the CPU's work per page swapped, with the waits for the device taken out.
pub fn swap_cost() -> SwapCost {
    ferrite_kernel::mm_bench::swap_cost()
}
