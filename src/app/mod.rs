//! Jobs: the applications of the unikernel, chosen with `run=` on the command line. Each job is
//! one entry function in its own module, listed once in `JOBS` below. This module owns the
//! registry only; a job must return its status rather than power the machine off itself.

pub mod bench;
pub mod demo;
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
