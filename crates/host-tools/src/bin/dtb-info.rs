//! `scripts/dtb-info FILE`: the kernel's device-tree reader, run on the host, printing the machine
//! description as JSON, with the zone limits the kernel's memory manager derives from it. A tree it
//! cannot read gives one line naming the defect and exit status 1.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ferrite_machine::json::{self, Zones};
use ferrite_machine::{BootRanges, Machine};
use ferrite_mm::zone::zone_limits;

/// The zone limits the kernel derives (`mm::zone`, the same code, without `zone_dma_bits=`): for
/// this tree's RAM, or, for a tree whose firmware fills in the RAM at boot, for RAM starting at 0.
fn zones(m: &Machine) -> Zones {
    let (start, end) = match (m.memory.first(), m.memory.last()) {
        (Some(f), Some(l)) => (f.base.as_u64(), l.end().min(u64::MAX as u128) as u64),
        _ => (0, u64::MAX),
    };
    let limits = zone_limits(m.dma_limit, None, start, end);
    Zones {
        dma_end: limits.dma_end,
        dma32_end: limits.dma32_end,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = args.as_slice() else {
        eprintln!("usage: dtb-info FILE.dtb");
        return ExitCode::from(2);
    };
    let blob = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("dtb-info: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    match Machine::from_blob(&blob, BootRanges::default()) {
        Ok(machine) => {
            print!("{}", json::to_json(&machine, zones(&machine)));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dtb-info: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
