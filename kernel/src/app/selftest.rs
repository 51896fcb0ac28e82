//! `run=selftest`: every registered self-test, in KTAP, then the status (any failure, or a filter
//! that selects nothing, fails the run). `ktest.filter=` narrows the set, `ktest.order=reverse`
//! and `ktest.shuffle=SEED` change the order; `ktest.inject=` provokes a failure, a panic, an
//! unexpected exception or running out of memory, so the tests of the test runner can see each
//! one caught.

use crate::cmdline::Inject;
use crate::kernel::Kernel;
use crate::ktest::TestError;
use crate::runtime::{Job, JobStatus};

pub const JOB: Job = Job {
    name: "selftest",
    about: "run the in-kernel self-tests (KTAP)",
    main: selftest,
    options: &[],
};

crate::ktest!(injected_failure, {
    match crate::kernel::get().and_then(|k| k.options.inject) {
        Some(Inject::Fail) => Err(TestError::Fail(
            "failure injected by ktest.inject=fail".into(),
        )),
        _ => Err(TestError::Skip("no failure injected".into())),
    }
});

#[cfg(target_os = "none")]
fn selftest(kernel: &'static Kernel) -> JobStatus {
    struct Console;
    impl core::fmt::Write for Console {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            crate::console::print(format_args!("{s}"));
            Ok(())
        }
    }
    let summary = crate::ktest::run(
        crate::ktest::registered(),
        kernel.options.ktest_filter.as_deref(),
        kernel.options.ktest_order,
        &mut Console,
    );
    match kernel.options.inject {
        Some(Inject::Panic) => panic!("panic injected by ktest.inject=panic"),
        Some(Inject::Fault) => crate::arch::aarch64::provoke::undefined_instruction(),
        // SAFETY: reading address 0 faults (page 0 is never mapped); the report is the point.
        Some(Inject::Null) => unsafe { crate::arch::aarch64::provoke::read(0) },
        Some(Inject::Guard) => {
            if let Ok(p) = crate::mm::vmap::vmalloc(64 << 10) {
                let guard = p.as_ptr() as u64 + (64 << 10);
                // SAFETY: reading the unmapped guard page: the fault report is the point.
                unsafe { crate::arch::aarch64::provoke::read(guard) };
            }
        }
        // Kernel memory (kmalloc, through `alloc::`) until none is left: the allocation that
        // fails ends the run with the out-of-memory report.
        Some(Inject::Oom) => {
            let mut hoard: alloc::vec::Vec<alloc::vec::Vec<u8>> = alloc::vec::Vec::new();
            loop {
                hoard.push(alloc::vec![0x5a; 1 << 20]);
            }
        }
        // A fault in an interrupt handler: reported as taken in interrupt context.
        Some(Inject::IrqFault) => {
            fn null_read(_: usize) {
                // SAFETY: reading address 0 faults (page 0 is never mapped); the report is the
                // point.
                unsafe { crate::arch::aarch64::provoke::read(0) }
            }
            let deadline = crate::arch::aarch64::timer::ticks() + 1000;
            if crate::time::add_timer(deadline, Some(null_read), 0).is_ok() {
                crate::time::sleep(core::time::Duration::from_millis(10));
            }
        }
        // The job runs on the application's stack: recurse on it, into its guard.
        Some(Inject::AppStack) => crate::arch::aarch64::provoke::overflow_stack(0),
        Some(Inject::Stack) => {
            if let Ok(mut stack) =
                crate::mm::vmap::KernelStack::new(crate::mm::vmap::KernelStack::DEFAULT_SIZE)
            {
                let _ = crate::arch::aarch64::stack::run_on_stack(
                    &mut stack,
                    crate::arch::aarch64::provoke::overflow_stack,
                    0,
                    false,
                );
            }
        }
        _ => {}
    }
    if summary.all_passed() {
        JobStatus::Success
    } else {
        JobStatus::Failure
    }
}

#[cfg(not(target_os = "none"))]
fn selftest(_kernel: &'static Kernel) -> JobStatus {
    JobStatus::Failure
}
