//! `run=kvstore`: an in-memory key-value store (`crates/kvstore`: a hash index, values in the
//! application's heap) driven by a YCSB workload (A: 50/50 read/update, B: 95/5, C: read-only;
//! scrambled Zipfian keys, theta 0.99; a fixed seed), with every read verified against a value
//! derived from its key and version. Sized from the command line, so the table can outgrow RAM
//! and live partly in swap. Prints the load and the run with operations per second of virtual
//! time (deterministic under `-icount`, `make bench`), the major faults and the paging counters.
//! A thin shell: the store and the workload are portable and run as a Linux program too
//! (`kvstore-bench` in crates/host-tools).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use ferrite::log::{error, info};
use ferrite::time::Instant;
use ferrite::{env, print, println, proc, AppOption, ExitStatus};
use kvstore::{Bench, Config, Workload};

fn whole(v: &str) -> bool {
    v.replace('_', "").parse::<u64>().is_ok_and(|n| n > 0)
}

/// The options kvstore takes, checked by the boot before `main` runs.
static OPTIONS: &[AppOption] = &[
    AppOption {
        key: "records",
        accepts: "a whole number of records above 0",
        valid: whole,
    },
    AppOption {
        key: "value_size",
        accepts: "a value size in bytes, at least 16 (a value starts with its key and version)",
        valid: |v| v.parse::<u64>().is_ok_and(|n| (16..=1 << 20).contains(&n)),
    },
    AppOption {
        key: "ops",
        accepts: "a whole number of operations above 0",
        valid: whole,
    },
    AppOption {
        key: "workload",
        accepts:
            "a, b or c (YCSB's core workloads), or several run one after another on one load (abc)",
        valid: |v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| Workload::from_name(c.encode_utf8(&mut [0; 4])).is_some())
        },
    },
    AppOption {
        key: "seed",
        accepts: "a whole number",
        valid: |v| v.parse::<u64>().is_ok(),
    },
];

fn number(key: &str, default: u64) -> u64 {
    env::option(key).map_or(default, |v| v.replace('_', "").parse().unwrap_or(default))
}

/// Operations per second of the clock (virtual time under `-icount`).
fn per_second(count: u64, start: Instant) -> u64 {
    let ns = start.elapsed().as_nanos().max(1);
    (count as u128 * 1_000_000_000 / ns) as u64
}

#[ferrite::main(name = "kvstore", options = OPTIONS)]
fn main() -> ExitStatus {
    let defaults = Config::default();
    let phases: alloc::vec::Vec<Workload> = env::option("workload")
        .unwrap_or("a")
        .chars()
        .filter_map(|c| Workload::from_name(c.encode_utf8(&mut [0; 4])))
        .collect();
    let config = Config {
        records: number("records", defaults.records),
        value_size: number("value_size", defaults.value_size as u64) as usize,
        operations: number("ops", defaults.operations),
        workload: phases[0],
        seed: number("seed", defaults.seed),
    };
    info!(
        "kvstore: {} records x {} B, workload(s) {}, {} operations each, seed {}",
        config.records,
        config.value_size,
        env::option("workload").unwrap_or("a"),
        config.operations,
        config.seed
    );
    let majfault = || proc::vmstat_value("pgmajfault").unwrap_or(0);
    let mut bench = match Bench::new(config) {
        Ok(b) => b,
        Err(e) => {
            error!("kvstore: cannot make the store: {e}");
            return ExitStatus::Failure;
        }
    };
    let (faults0, t0) = (majfault(), Instant::now());
    if let Err(e) = bench.load_all() {
        error!("kvstore: load: {e}");
        return ExitStatus::Failure;
    }
    let loaded = bench.report().loaded;
    info!(
        "kvstore: loaded {loaded} records in {:?}: {} inserts/s, {} major faults",
        t0.elapsed(),
        per_second(loaded, t0),
        majfault() - faults0
    );
    for (i, &workload) in phases.iter().enumerate() {
        if i > 0 {
            bench.next_phase(workload);
        }
        let name = workload.name();
        let (faults1, t1) = (majfault(), Instant::now());
        if let Err(e) = bench.run_all() {
            error!("kvstore: run: {e}");
            return ExitStatus::Failure;
        }
        let report = bench.report();
        let ops = report.operations();
        let ops_per_s = per_second(ops, t1);
        let faults = majfault() - faults1;
        info!(
            "kvstore: workload {name}: {ops} ops ({} reads, {} updates) in {:?}: {ops_per_s} ops/s, {faults} major faults",
            report.reads,
            report.updates,
            t1.elapsed(),
        );
        println!("bench kvstore.{name}_ops_s {ops_per_s} ops/s");
        println!("bench kvstore.{name}_pgmajfault {faults} faults");
    }
    let bad = bench.verify_all();
    let failures = bench.report().verify_failures;
    let stats = bench.store().stats();
    info!(
        "kvstore: {} records, {} MiB of values, {} MiB of index; {failures} verification failure(s)",
        stats.records,
        stats.value_bytes >> 20,
        stats.index_bytes >> 20
    );
    for f in &bench.report().failures {
        error!("kvstore: {f}");
    }
    println!("/proc/vmstat:");
    print!("{}", proc::vmstat());
    // Not freed value by value: the runtime unmaps the whole heap when main returns, and freeing
    // a table that lives mostly in swap would bring every page of it back first (as a C program
    // exits without freeing).
    core::mem::forget(bench);
    if bad == 0 && failures == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}
