//! `run=selftest`: every registered self-test, in KTAP, then the status (any failure fails the
//! run). `ktest.filter=` narrows the set; `ktest.inject=` provokes a failure, a panic or an
//! unexpected exception, so the tests of the test runner can see each one caught.

use super::{Job, JobStatus};
use crate::cmdline::Inject;
use crate::kernel::Kernel;
use crate::ktest::TestError;

pub const JOB: Job = Job {
    name: "selftest",
    about: "run the in-kernel self-tests (KTAP)",
    main: selftest,
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
        &mut Console,
    );
    match kernel.options.inject {
        Some(Inject::Panic) => panic!("panic injected by ktest.inject=panic"),
        // SAFETY: UDF is permanently undefined; the resulting exception is the point.
        Some(Inject::Fault) => unsafe { core::arch::asm!("udf #0x7e") },
        // SAFETY: reading address 0 faults (page 0 is never mapped); the report is the point.
        Some(Inject::Null) => unsafe {
            core::arch::asm!("ldr {t}, [{z}]", z = in(reg) 0u64, t = out(reg) _)
        },
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
