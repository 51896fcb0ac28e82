//! The kernel's own job, registered in the image for `run=`: `selftest`, the in-kernel self-test
//! runner, which stays in the kernel as KUnit does. Applications on the public API (`bench`
//! among them, which reaches the kernel's micro-benchmarks through `ferrite::bench`) live in
//! apps/. Only the registration lives here (the job's file forbids unsafe code, which a linker
//! section counts as).

pub mod selftest;

crate::register_app!(selftest::JOB);
