//! `scripts/dtb-info FILE`: the kernel's device-tree reader, run on the host, printing the machine
//! description as JSON. A tree it cannot read gives one line naming the defect and exit status 1.

use std::process::ExitCode;

use ferrite::machine::{json, BootRanges, Machine};

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
            print!("{}", json::to_json(&machine));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dtb-info: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
