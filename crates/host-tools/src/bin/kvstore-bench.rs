//! kvstore-bench: the key-value store's YCSB run on the host, the Linux figure the same code on
//! Ferrite is compared with. Loads `--records` records of `--value-size` bytes, runs `--ops`
//! operations of `--workload` a, b or c from `--seed`, and prints the phases' rates, the store's
//! size and any verification failure, then one `bench host.kvstore.<workload>.ops_per_s` line for
//! scripts. Exits 1 if a read failed verification, 2 on bad arguments or a refused allocation.
//! Wall time from `Instant` around each phase: the crate itself never reads a clock.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kvstore::{Bench, Config, KvError, Workload};

const USAGE: &str = "usage: kvstore-bench [--records N] [--value-size BYTES] [--ops N] \
                     [--workload a|b|c] [--seed S]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| {
            value
                .replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{what} {value:?}: {e}"))
        };
        match flag.as_str() {
            "--records" => config.records = number("--records")?,
            "--value-size" => {
                config.value_size = usize::try_from(number("--value-size")?)
                    .map_err(|e| format!("--value-size {value}: {e}"))?;
            }
            "--ops" => config.operations = number("--ops")?,
            "--seed" => config.seed = number("--seed")?,
            "--workload" => {
                config.workload = Workload::from_name(&value)
                    .ok_or_else(|| format!("--workload {value:?}: not a, b or c"))?;
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(config)
}

/// Runs `phase` and says how long it took.
fn timed<T>(phase: impl FnOnce() -> Result<T, KvError>) -> Result<(T, Duration), KvError> {
    let start = Instant::now();
    let out = phase()?;
    Ok((out, start.elapsed()))
}

fn per_second(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64().max(1e-9)
}

fn run(config: Config) -> Result<Bench, KvError> {
    let mut bench = Bench::new(config)?;
    let (loaded, load_time) = timed(|| bench.load_all())?;
    let stats = bench.store().stats();
    println!(
        "kvstore: loaded {loaded} records x {} B in {:.3} s ({:.0} inserts/s); values {} MiB, \
         index {} MiB ({} slots)",
        config.value_size,
        load_time.as_secs_f64(),
        per_second(loaded, load_time),
        stats.value_bytes >> 20,
        stats.index_bytes >> 20,
        stats.index_slots,
    );
    let (ops, run_time) = timed(|| bench.run_all())?;
    let report = bench.report();
    let name = config.workload.name();
    let ops_per_s = per_second(ops, run_time);
    println!(
        "kvstore: workload {name}: {ops} ops ({} reads, {} updates) in {:.3} s, {ops_per_s:.0} \
         ops/s; {} verification failures (seed {})",
        report.reads,
        report.updates,
        run_time.as_secs_f64(),
        report.verify_failures,
        config.seed,
    );
    for failure in &report.failures {
        println!("kvstore: verification failure: {failure}");
    }
    println!("bench host.kvstore.{name}.ops_per_s {ops_per_s:.0} ops/s");
    Ok(bench)
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("kvstore-bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(bench) if bench.report().verify_failures == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kvstore-bench: {e}");
            ExitCode::from(2)
        }
    }
}
