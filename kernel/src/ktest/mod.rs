//! In-kernel self-tests: a registry of tests declared next to the code they test (the `ktest!`
//! macro puts each into the `.ktest` linker section), a runner that prints KTAP, and the markers
//! around reports a test provokes on purpose. Owns the test protocol; must not decide how the
//! kernel exits afterwards (the `selftest` job does).

pub mod ktap;

use alloc::string::String;

pub use ktap::{run, Order, Summary};

/// Why a test did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestError {
    Fail(String),
    /// Not applicable on this machine; reported as `# SKIP reason`.
    Skip(String),
}

pub type TestResult = Result<(), TestError>;

/// One registered self-test. `repr(C)` because the linker lays them out as an array.
#[repr(C)]
pub struct KTest {
    /// `module::path::name`, unique.
    pub name: &'static str,
    pub func: fn() -> TestResult,
}

impl KTest {
    /// The name without the crate prefix, as printed in KTAP.
    pub fn short_name(&self) -> &'static str {
        self.name
            .strip_prefix("ferrite_kernel::")
            .unwrap_or(self.name)
    }
}

/// Runs `provoke`, which makes the kernel print a report on purpose (a fault dump, a checker's
/// error lines), between a line saying that the report to come is expected and one closing it, so
/// a passing run does not look like a failing one. `test` names the test, `what` the report
/// (`"fault report"`, `"slub_debug reports"`).
pub fn expected_report<R>(test: &str, what: &str, provoke: impl FnOnce() -> R) -> R {
    crate::kprintln!("ktest: the next {what} is expected (test {test} provokes it)");
    let result = provoke();
    crate::kprintln!("ktest: end of expected {what}");
    result
}

/// Declares a self-test next to the code it tests:
/// `ktest!(name, { kassert!(1 + 1 == 2); Ok(()) });`
#[macro_export]
macro_rules! ktest {
    ($name:ident, $body:block) => {
        const _: () = {
            fn $name() -> $crate::ktest::TestResult $body
            #[used]
            #[cfg_attr(target_os = "none", link_section = ".ktest")]
            static ENTRY: $crate::ktest::KTest = $crate::ktest::KTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                func: $name,
            };
        };
    };
}

/// Fails the current self-test with the condition, file and line unless `cond` holds.
#[macro_export]
macro_rules! kassert {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::ktest::TestError::Fail(alloc::format!(
                "{}:{}: assertion failed: {}", file!(), line!(), stringify!($cond)
            )));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::ktest::TestError::Fail(alloc::format!(
                "{}:{}: {}", file!(), line!(), format_args!($($arg)+)
            )));
        }
    };
}

/// Fails the current self-test unless both sides are equal, showing both.
#[macro_export]
macro_rules! kassert_eq {
    ($left:expr, $right:expr) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::ktest::TestError::Fail(alloc::format!(
                        "{}:{}: {} == {} failed: {:?} != {:?}",
                        file!(),
                        line!(),
                        stringify!($left),
                        stringify!($right),
                        l,
                        r
                    )));
                }
            }
        }
    };
}

/// Every test the `ktest!` macro registered in this image.
#[cfg(target_os = "none")]
pub fn registered() -> &'static [KTest] {
    extern "C" {
        static __ktest_start: u8;
        static __ktest_end: u8;
    }
    // SAFETY: the linker script places only `KTest` statics (from `ktest!`) between these two
    // symbols, contiguously and aligned, and they live for the whole run.
    unsafe {
        let start = (&raw const __ktest_start).cast::<KTest>();
        let end = (&raw const __ktest_end).cast::<KTest>();
        let count = (end as usize - start as usize) / core::mem::size_of::<KTest>();
        core::slice::from_raw_parts(start, count)
    }
}
