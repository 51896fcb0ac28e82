//! This application alone in a kernel image, for `make run APP=apps/demo` (and `make image`,
//! `make sdcard` with `APP=apps/demo`): without `run=` the boot runs it. The workspace's image
//! (`make image`) links every application instead.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

extern crate ferrite_app_demo;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is a Ferrite application for aarch64-unknown-none: run it with 'make run APP=apps/demo'");
    std::process::exit(2);
}
