//! This application alone in a kernel image, for `make run APP=apps/bench` (and `make image`,
//! `make sdcard` with `APP=apps/bench`): without `run=` the boot runs it. The workspace's image
//! (`make image`) links every application instead.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

extern crate ferrite_app_bench;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is a Ferrite application for aarch64-unknown-none: run it with 'make run APP=apps/bench'");
    std::process::exit(2);
}
