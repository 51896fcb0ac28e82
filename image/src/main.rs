//! The kernel image `make image` builds: the kernel with every application of the workspace
//! linked in, so `run=demo|memstress|kvstore|selftest|bench` picks one. This is the boot code's
//! only job: naming the applications (each registers itself in the image's `.ferrite_apps`
//! section when linked), which nothing else in the kernel may do. The boot order itself is the
//! kernel's (`ferrite_kernel::start`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

// The kernel: its entry code, boot order, panic handler and its own job (selftest).
extern crate ferrite_kernel;
// The applications on the public API.
extern crate ferrite_app_bench;
extern crate ferrite_app_demo;
extern crate ferrite_app_kvstore;
extern crate ferrite_app_memstress;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ferrite is a kernel for aarch64-unknown-none; boot it with `make run`.");
    std::process::exit(2);
}
