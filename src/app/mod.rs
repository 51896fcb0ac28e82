//! Jobs: the applications of the unikernel, chosen with `run=` on the command line. Each job is
//! one entry function in its own module, listed once in `JOBS` below. This module owns the
//! registry and `run` (the application's stack and heap around a job, and the check that none
//! of its memory is left, in RAM or on swap, afterwards); a job must return its status rather
//! than power the machine off itself.

pub mod bench;
pub mod demo;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
mod heap_selftests;
pub mod memstress;
pub mod selftest;

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
}

/// Every job in the image. To add one: write `src/app/<name>.rs` with a `pub const JOB: Job`, add
/// `pub mod <name>;` above and its `JOB` here.
pub static JOBS: &[Job] = &[demo::JOB, selftest::JOB, bench::JOB, memstress::JOB];

pub fn find(name: &str) -> Option<&'static Job> {
    JOBS.iter().find(|j| j.name == name)
}

/// The application's stack: mapped at once in its own half (TTBR0), with a reserved guard below.
pub const STACK_SIZE: u64 = 512 << 10;
pub const STACK_GUARD_SIZE: u64 = 64 << 10;

/// Runs `job` in the application's half of the address space: on its stack (an overflow faults
/// in the stack guard and is reported as one), with its heap (`app::heap`) beside it. Afterwards
/// both are unmapped, and a swap slot still in use is reported as a leak and fails the job.
#[cfg(target_os = "none")]
pub fn run(job: &'static Job, kernel: &'static Kernel) -> JobStatus {
    let (bottom, top) = match crate::mm::fault::map_stack(STACK_SIZE, STACK_GUARD_SIZE) {
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
        // The job can still run: it only lacks `app::heap`.
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
    // SAFETY: map_stack mapped [bottom, top) for this call alone, with a faulting guard below.
    unsafe {
        crate::arch::aarch64::stack::run_on_stack_at(top, enter, &mut call as *mut Call as usize)
    };
    heap::release();
    crate::mm::fault::unmap_stack(bottom, STACK_SIZE, STACK_GUARD_SIZE);
    // Nothing of the application is left in memory or on swap now: a slot still in use was
    // leaked (by the job, or by the memory manager on its behalf).
    let (total, free) = crate::mm::swapfile::totals();
    if free != total {
        log::error!(
            "swap: {} slot(s) still in use after the job '{}' ended and its memory was unmapped: leaked",
            (total - free) / crate::mm::PAGE_SIZE,
            job.name
        );
        return JobStatus::Failure;
    }
    call.status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_unique_and_found() {
        for (i, job) in JOBS.iter().enumerate() {
            assert!(
                JOBS[i + 1..].iter().all(|other| other.name != job.name),
                "{}",
                job.name
            );
            assert!(core::ptr::eq(find(job.name).unwrap(), job));
        }
        assert!(find("demo").is_some());
        assert!(find("no-such-job").is_none());
    }
}
