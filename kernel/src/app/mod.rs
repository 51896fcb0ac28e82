//! The kernel's own jobs, registered in the image for `run=`: `selftest` (the in-kernel
//! self-test runner, which stays in the kernel as KUnit does) and `bench` (the memory manager's
//! micro-benchmarks, which measure kernel internals no application can reach). Applications on
//! the public API live in apps/. Only the registrations live here (the jobs' files forbid unsafe
//! code, which a linker section counts as).

pub mod bench;
pub mod selftest;

crate::register_app!(selftest::JOB);
crate::register_app!(bench::JOB);
