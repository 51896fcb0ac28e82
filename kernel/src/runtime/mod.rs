//! The application runtime: the jobs (applications) the image holds, chosen with `run=` on the
//! command line. A job is an entry function registered with [`register_app!`](crate::register_app)
//! into the image's `.ferrite_apps` linker section, so the kernel never names an application:
//! whatever the image links is what `run=` can pick. This module owns the registry, the check of
//! a job's options, and `run` (the application's stack and heap around a job, the application
//! context it runs in, and the check that none of its memory is left, in RAM or on swap,
//! afterwards); a job must return its status rather than power the machine off itself. Names no
//! application.
//!
//! An application's main runs in application context (`mm::context`): the global allocator
//! serves it from its heap, in its own half, where its pages may go to swap (the kernel's own
//! jobs, registered by the kernel crate, run in kernel context). Every kernel entry point an
//! application calls must take `mm::context::Context::enter_kernel()` for its duration, so that
//! what the kernel allocates meanwhile comes from `kmalloc` (the exception entry and mm's
//! address-space entry points do it themselves).

#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
mod heap_selftests;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::kernel::Kernel;

/// How a job ended; the kernel turns it into the machine's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Success,
    Failure,
}

pub struct Job {
    /// The name `run=` selects.
    pub name: &'static str,
    pub about: &'static str,
    pub main: fn(&'static Kernel) -> JobStatus,
    /// The options the job takes on the command line, as `<name>.<key>=<value>`.
    pub options: &'static [JobOption],
}

/// One option a job takes: checked before the job starts, so a bad value stops the boot with
/// one line naming the option and what it accepts instead of being ignored.
pub struct JobOption {
    pub key: &'static str,
    /// What the option accepts, in words, for the error line.
    pub accepts: &'static str,
    pub valid: fn(&str) -> bool,
}

/// What the command line's job options (`key=value`, key with its job's prefix) mean for `job`:
/// errors that must stop the job (its own options, unknown or with a bad value) and warnings
/// (options of another job or of no job, which are ignored).
pub fn check_options(job: &Job, params: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for (key, value) in params {
        let (prefix, name) = key.split_once('.').unwrap_or((key, ""));
        if prefix != job.name {
            warnings.push(match find(prefix) {
                Some(other) => format!(
                    "ignoring '{key}={value}': an option of job {}, and the job is {}",
                    other.name, job.name
                ),
                None => format!("ignoring '{key}={value}': unknown option"),
            });
            continue;
        }
        match job.options.iter().find(|o| o.key == name) {
            Some(o) if (o.valid)(value) => {}
            Some(o) => errors.push(format!("{key}={value}: expected {}", o.accepts)),
            None => {
                let keys: Vec<&str> = job.options.iter().map(|o| o.key).collect();
                errors.push(if keys.is_empty() {
                    format!("{key}: job {} takes no options", job.name)
                } else {
                    format!(
                        "{key}: job {} has no such option (it takes {})",
                        job.name,
                        keys.join(", ")
                    )
                });
            }
        }
    }
    (errors, warnings)
}

/// Registers a [`Job`] in the image (the `.ferrite_apps` linker section), where `run=` finds it.
/// Applications on the public API do it through `#[ferrite::main]`; the kernel's own jobs (the
/// self-test runner) directly: `register_app!(JOB);`. The crate that registers it decides the
/// context its main runs in (see [`Registration`]).
#[macro_export]
macro_rules! register_app {
    ($job:expr) => {
        const _: () = {
            #[used]
            #[cfg_attr(target_os = "none", link_section = ".ferrite_apps")]
            static APP: $crate::runtime::Registration =
                $crate::runtime::Registration::new($job, module_path!());
        };
    };
}

/// A job as the image holds it (what [`register_app!`](crate::register_app) puts in the
/// section): the job, and whether the kernel crate itself registered it. The kernel's own jobs
/// (`selftest`, `bench`, ...) are kernel code, calling the kernel's internals directly, some of
/// which allocate under locks the fault handler takes: they run in kernel context. A job of any
/// other crate is an application: it runs in application context, its `Box`/`Vec` in its heap.
pub struct Registration {
    pub job: Job,
    kernels_own: bool,
}

impl Registration {
    /// `module` is the registering module's path (`module_path!()` at the registration).
    pub const fn new(job: Job, module: &'static str) -> Registration {
        Registration {
            job,
            kernels_own: same_crate(module, module_path!()),
        }
    }
}

/// Whether two module paths start with the same crate name (`a::b` and `a::c`, `a` and `a::c`).
const fn same_crate(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    loop {
        let end_a = i == a.len() || a[i] == b':';
        let end_b = i == b.len() || b[i] == b':';
        if end_a || end_b {
            return end_a && end_b;
        }
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
}

/// Every registration in this image, in link order.
#[cfg(target_os = "none")]
fn registrations() -> &'static [Registration] {
    extern "C" {
        static __ferrite_apps_start: u8;
        static __ferrite_apps_end: u8;
    }
    // SAFETY: the linker script places only `Registration` statics (from `register_app!`)
    // between these two symbols, contiguously and aligned, and they live for the whole run.
    unsafe {
        let start = (&raw const __ferrite_apps_start).cast::<Registration>();
        let end = (&raw const __ferrite_apps_end).cast::<Registration>();
        let count = (end as usize - start as usize) / core::mem::size_of::<Registration>();
        core::slice::from_raw_parts(start, count)
    }
}

/// The host build links no application.
#[cfg(not(target_os = "none"))]
fn registrations() -> &'static [Registration] {
    &[]
}

/// Every job registered in this image, by name.
pub fn registered() -> alloc::vec::Vec<&'static Job> {
    let mut jobs: alloc::vec::Vec<&'static Job> = registrations().iter().map(|r| &r.job).collect();
    jobs.sort_by_key(|j| j.name);
    jobs
}

/// Whether `job` is one of the kernel's own (registered by the kernel crate): it runs in kernel
/// context.
pub fn is_kernels_own(job: &Job) -> bool {
    registrations()
        .iter()
        .any(|r| core::ptr::eq(&r.job, job) && r.kernels_own)
}

/// The job the command line asks for: the one `run=` names, or without `run=`, `demo` if the
/// image has it, else the image's only application (an application built on its own; the
/// kernel's own jobs do not count).
pub fn chosen(name: &str, named: bool) -> Option<&'static Job> {
    find(name).or_else(|| {
        let apps: Vec<&'static Job> = registered()
            .into_iter()
            .filter(|j| !is_kernels_own(j))
            .collect();
        (!named && apps.len() == 1).then(|| apps[0])
    })
}

/// The job the boot chose, once it did ([`set_current`]).
static CURRENT: spin::Once<&'static Job> = spin::Once::new();

/// Records the job the boot is about to run (once).
pub fn set_current(job: &'static Job) {
    CURRENT.call_once(|| job);
}

/// The job running (or about to), if the boot chose one.
pub fn current() -> Option<&'static Job> {
    CURRENT.get().copied()
}

/// The registered job called `name`.
pub fn find(name: &str) -> Option<&'static Job> {
    registered().into_iter().find(|j| j.name == name)
}

/// What `run=` may name, for messages: `demo, memstress, selftest`.
pub fn names() -> String {
    let names: Vec<&str> = registered().iter().map(|j| j.name).collect();
    names.join(", ")
}

/// The application's stack: mapped at once in its own half (TTBR0), with a reserved guard below.
pub const STACK_SIZE: u64 = 512 << 10;
pub const STACK_GUARD_SIZE: u64 = 64 << 10;

/// Runs `job` in the application's half of the address space, in application context unless it
/// is one of the kernel's own jobs ([`Registration`]): on its
/// stack (an overflow faults in the stack guard and is reported as one), with its heap
/// (`runtime::heap`, the global allocator's application allocator) beside it. Afterwards
/// both are unmapped, and a swap slot still in use is reported as a leak and fails the job.
#[cfg(target_os = "none")]
pub fn run(job: &'static Job, kernel: &'static Kernel) -> JobStatus {
    let (bottom, top) = match crate::mm::app_space::map_stack(STACK_SIZE, STACK_GUARD_SIZE) {
        Ok(range) => range,
        Err(e) => {
            log::error!("no stack for the application: {e}");
            return JobStatus::Failure;
        }
    };
    log::info!(
        "Application stack: [{bottom:#x}-{top:#x}), guard [{:#x}-{bottom:#x})",
        bottom - STACK_GUARD_SIZE
    );
    match heap::init() {
        Ok(h) => log::info!(
            "Application heap: [{:#x}-{:#x}), mapped on first touch",
            h.start,
            h.start + h.reserved
        ),
        // The job can still run: it only lacks `runtime::heap`.
        Err(e) => log::warn!("no heap for the application: {e}"),
    }
    struct Call {
        job: &'static Job,
        kernel: &'static Kernel,
        status: JobStatus,
    }
    extern "C" fn enter(arg: usize) {
        // SAFETY: `arg` is the `Call` below, alive and not otherwise used during the call.
        let call = unsafe { &mut *(arg as *mut Call) };
        call.status = (call.job.main)(call.kernel);
    }
    let mut call = Call {
        job,
        kernel,
        status: JobStatus::Failure,
    };
    // An application runs in application context: its `Box`, `Vec` and `String` come from its
    // heap (see `mm::heap`); the kernel's own jobs stay in kernel context. The guard lives in
    // this frame, on the kernel's stack, so a call abandoned at a trapped fault (its frames on
    // the application's stack never unwound) still ends in kernel context.
    crate::mm::heap::install_app_allocator(&heap::ALLOCATOR);
    let application = (!is_kernels_own(job)).then(crate::mm::context::Context::enter_application);
    // SAFETY: map_stack mapped [bottom, top) for this call alone, with a faulting guard below.
    unsafe {
        crate::arch::aarch64::stack::run_on_stack_at(top, enter, &mut call as *mut Call as usize)
    };
    drop(application);
    heap::release();
    crate::mm::app_space::unmap_stack(bottom, STACK_SIZE, STACK_GUARD_SIZE);
    // Nothing of the application is left in memory or on swap now: a slot still in use was
    // leaked (by the job, or by the memory manager on its behalf).
    let (total, free) = crate::mm::swapfile::SWAP.totals();
    if free != total {
        log::error!(
            "swap: {} slot(s) still in use after the job '{}' ended and its memory was unmapped: leaked",
            (total - free) / crate::addr::PAGE_SIZE,
            job.name
        );
        return JobStatus::Failure;
    }
    call.status
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn never(_: &'static Kernel) -> JobStatus {
        JobStatus::Failure
    }

    const STRESS: Job = Job {
        name: "stress",
        about: "",
        main: never,
        options: &[
            JobOption {
                key: "size",
                accepts: "a size",
                valid: |v| v.ends_with('M'),
            },
            JobOption {
                key: "passes",
                accepts: "a number above 0",
                valid: |v| v.parse::<u64>().is_ok_and(|n| n > 0),
            },
        ],
    };

    #[test]
    fn a_jobs_bad_options_stop_it_and_others_are_ignored() {
        let (errors, warnings) = check_options(
            &STRESS,
            &params(&[
                ("stress.size", "64M"),
                ("stress.passes", "0"),
                ("stress.passes", "abc"),
                ("stress.size", "7"),
                ("stress.colour", "red"),
                ("nosuch.x", "1"),
            ]),
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("stress.passes=0: expected a number above 0"));
        assert!(errors[2].starts_with("stress.size=7: expected a size"));
        assert!(errors[3].contains("size, passes"), "{}", errors[3]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("unknown option"));
        const BARE: Job = Job {
            name: "bare",
            about: "",
            main: never,
            options: &[],
        };
        let (errors, _) = check_options(&BARE, &params(&[("bare.x", "1")]));
        assert_eq!(errors, ["bare.x: job bare takes no options"]);
    }

    #[test]
    fn a_registration_is_the_kernels_own_only_from_the_kernel_crate() {
        assert!(same_crate("ferrite_kernel::app", module_path!()));
        assert!(same_crate("ferrite_kernel", "ferrite_kernel::runtime"));
        assert!(!same_crate(
            "ferrite_kernel_extra::app",
            "ferrite_kernel::runtime"
        ));
        assert!(!same_crate("ferrite", "ferrite_kernel::runtime"));
        assert!(!same_crate("hello", "ferrite_kernel::runtime"));
    }
}
