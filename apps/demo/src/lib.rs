//! `run=demo` (the default): what Ferrite found on this machine and the memory manager's state,
//! in Linux's `/proc` formats: `/proc/iomem`, `/proc/meminfo`, `/proc/buddyinfo`,
//! `/proc/slabinfo`, the paging counters of `/proc/vmstat`, a `/proc/zoneinfo` summary and
//! `/proc/swaps`, and `/proc/interrupts` after a 1 ms sleep; with `demo.input=line`, a line read
//! from the console. An application on the
//! public API, like any other.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use ferrite::{print, println, proc, AppOption};

/// `demo.input=line`: also read a line from the console and say what it was (the console's
/// input, shown).
static OPTIONS: &[AppOption] = &[AppOption {
    key: "input",
    accepts: "line",
    valid: |v| v == "line",
}];

#[ferrite::main(name = "demo", options = OPTIONS)]
fn main() {
    ferrite::log::info!(
        "Ferrite demo: {} MiB of RAM ({} MiB free), {} KiB of swap",
        ferrite::mem::ram_bytes() >> 20,
        proc::meminfo_value("MemFree").unwrap_or(0) >> 20,
        ferrite::mem::swap_totals().0 >> 10
    );
    println!("/proc/iomem:");
    print!("{}", proc::iomem());
    println!("/proc/meminfo:");
    print!("{}", proc::meminfo());
    println!("/proc/buddyinfo:");
    print!("{}", proc::buddyinfo());
    println!("/proc/slabinfo:");
    print!("{}", proc::slabinfo());
    println!("/proc/vmstat (paging):");
    print!("{}", proc::vmstat());
    println!("/proc/zoneinfo (summary):");
    print!("{}", proc::zoneinfo());
    println!("/proc/swaps:");
    print!("{}", proc::swaps());
    // A short sleep: the timer's interrupt wakes it, and /proc/interrupts counts it.
    ferrite::time::sleep(core::time::Duration::from_millis(1));
    println!("/proc/interrupts:");
    print!("{}", proc::interrupts());
    if ferrite::env::option("input") == Some("line") {
        let mut line = alloc::string::String::new();
        print!("demo: type a line: ");
        if ferrite::io::read_line(&mut line).is_some() {
            println!("demo: read \"{line}\" from the console");
        }
    }
}
