//! `run=demo` (the default): what Ferrite found on this machine and the memory manager's state,
//! in Linux's `/proc` formats: `/proc/iomem`, `/proc/meminfo`, `/proc/buddyinfo`,
//! `/proc/slabinfo`, the paging counters of `/proc/vmstat`, a `/proc/zoneinfo` summary and
//! `/proc/swaps`, `/proc/interrupts` after a 1 ms sleep, and the block devices; with
//! `demo.input=line`, a line read from the console; with `demo.block=check`, a check of the
//! block-device API (the swap device is refused, and a pattern written to the tests' scratch disk
//! reads back). An application on the public API, like any other: it writes to no disk but one
//! whose first sector says it is the tests' scratch disk.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use ferrite::block::{self, BlockError, DiskInfo, DiskState};
use ferrite::{print, println, proc, AppOption};

/// `demo.input=line`: also read a line from the console and say what it was (the console's
/// input, shown). `demo.block=check`: check the block-device API on the disks attached.
static OPTIONS: &[AppOption] = &[
    AppOption {
        key: "input",
        accepts: "line",
        valid: |v| v == "line",
    },
    AppOption {
        key: "block",
        accepts: "check",
        valid: |v| v == "check",
    },
    AppOption {
        key: "threads",
        accepts: "check",
        valid: |v| v == "check",
    },
];

#[ferrite::main(name = "demo", options = OPTIONS)]
fn main() -> Result<(), String> {
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
    print_devices(&block::devices());
    if ferrite::env::option("block") == Some("check") {
        check_block_devices()?;
    }
    if ferrite::env::option("threads") == Some("check") {
        check_threads()?;
    }
    if ferrite::env::option("input") == Some("line") {
        let mut line = alloc::string::String::new();
        print!("demo: type a line: ");
        if ferrite::io::read_line(&mut line).is_some() {
            println!("demo: read \"{line}\" from the console");
        }
    }
    Ok(())
}

/// The disks, one line each, as `lsblk` would show them.
fn print_devices(disks: &[DiskInfo]) {
    if disks.is_empty() {
        println!("Block devices: none (attach a disk with QEMU_EXTRA: see the README's Disks)");
        return;
    }
    println!("Block devices:");
    println!("NAME     SECTORS SECTOR       SIZE RO STATE DEVICE");
    for d in disks {
        let size = match d.bytes() {
            b if b >= 1 << 20 => format!("{} MiB", b >> 20),
            b => format!("{} KiB", b >> 10),
        };
        let state = match d.state {
            DiskState::Free => "free",
            DiskState::Open => "open",
            DiskState::Swap => "swap",
        };
        println!(
            "{:<5} {:>10} {:>6} {:>10} {:>2} {:<5} {}",
            d.name, d.sectors, d.sector_size, size, d.read_only as u8, state, d.device
        );
    }
}

/// What the tests' scratch disk's first sector starts with: the only disk the check writes to.
const SCRATCH_SIGNATURE: &[u8] = b"FERRITE-SCRATCH-DISK";
/// The sectors the check may change on the scratch disk: 40 from sector 24576 (12 MiB in), of
/// which it writes those in [`WRITES`]; the others must keep what they held.
const WINDOW: (u64, u64) = (24576, 40);
/// Where the check writes, as (first sector, sectors): 3 sectors from an odd one (less than a
/// page: the kernel reads the page around them first), then two pages and 3 sectors from
/// another odd one (whole pages, then a short end).
const WRITES: [(u64, u64); 2] = [(24577, 3), (24595, 19)];

/// The check's bytes for `sectors` sectors from `first`: each sector holds the line
/// `ferrite block sector NNNNNNNNNN` (its own number, 32 bytes with the newline), repeated, so
/// the host can rebuild them with `printf` and compare the disk image.
fn pattern(sector_size: u32, first: u64, sectors: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    for s in first..first + sectors {
        let line = format!("ferrite block sector {s:010}\n");
        for _ in 0..sector_size as usize / line.len() {
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    bytes
}

/// `demo.block=check`: the swap device is refused (EBUSY); on the tests' scratch disk, a disk
/// open already and bad requests are refused, and a pattern written to a few sectors reads back
/// while the sectors around them keep what they held. Every other disk is only read (its first
/// sector). Each step prints a line; the first failure is the job's error.
/// `demo.threads=check`: the application's threads. Four threads sum parts of a range and are
/// joined; a thread that never yields is preempted (the main thread spins until a second thread
/// has run, which only a time slice's end allows); a waiter sleeps on a wait queue until a
/// sleeper wakes it.
fn check_threads() -> Result<(), String> {
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicBool, Ordering};
    use core::time::Duration;
    use ferrite::thread;
    use ferrite::time::Instant;

    let handles = (0..4u64)
        .map(|i| thread::spawn(move || (i * 1000..(i + 1) * 1000).sum::<u64>()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spawn: {e}"))?;
    let total: u64 = handles.into_iter().map(|h| h.join()).sum();
    if total != (0..4000u64).sum::<u64>() {
        return Err(format!("threads: four threads summed {total}"));
    }
    println!("demo: threads: 4 threads summed 0..4000 = {total}");

    // Preemption: neither this thread nor the spinner ever yields.
    let ran = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (r, s) = (ran.clone(), stop.clone());
    let spinner = thread::spawn(move || {
        r.store(true, Ordering::Release);
        let mut spins = 0u64;
        while !s.load(Ordering::Acquire) {
            spins += 1;
            core::hint::spin_loop();
        }
        spins
    })
    .map_err(|e| format!("spawn: {e}"))?;
    let start = Instant::now();
    while !ran.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(2) {
        core::hint::spin_loop();
    }
    let preempted = ran.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    let spins = spinner.join();
    if !preempted {
        return Err("threads: a thread that never yields was not preempted in 2 s".into());
    }
    println!(
        "demo: threads: preempted after {} us; the other thread spun {spins} times",
        start.elapsed().as_micros()
    );

    // A wait queue: the waiter sleeps until the sleeper wakes it.
    let ready = Arc::new(AtomicBool::new(false));
    let wq = Arc::new(thread::WaitQueue::new());
    let (r, q) = (ready.clone(), wq.clone());
    let sleeper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        r.store(true, Ordering::Release);
        q.wake_all();
    })
    .map_err(|e| format!("spawn: {e}"))?;
    let start = Instant::now();
    let woken = wq.wait_until_timeout(|| ready.load(Ordering::Acquire), Duration::from_secs(2));
    sleeper.join();
    if !woken {
        return Err("threads: a waiter was not woken in 2 s".into());
    }
    println!(
        "demo: threads: a waiter woke after {} us (the other thread slept 5 ms)",
        start.elapsed().as_micros()
    );
    Ok(())
}

fn check_block_devices() -> Result<(), String> {
    let err = |e: BlockError| format!("demo: block: {e}");
    let disks = block::devices();
    for d in disks.iter().filter(|d| d.state == DiskState::Swap) {
        match block::open(&d.name) {
            Err(e @ BlockError::SwapDevice { .. }) => {
                println!("demo: block: opening the swap device is refused: {e}")
            }
            Err(e) => return Err(format!("demo: block: opening swap device {}: {e}", d.name)),
            Ok(_) => return Err(format!("demo: block: swap device {} opened", d.name)),
        }
    }
    let mut scratch = None;
    for d in disks.iter().filter(|d| d.state == DiskState::Free) {
        let mut disk = block::open(&d.name).map_err(err)?;
        let mut first = vec![0u8; disk.sector_size() as usize];
        disk.read(0, &mut first).map_err(err)?;
        if first.starts_with(SCRATCH_SIGNATURE)
            && !disk.read_only()
            && disk.sectors() >= WINDOW.0 + WINDOW.1
        {
            scratch = Some(disk);
            break;
        }
        println!(
            "demo: block: {} is not the tests' scratch disk: not written",
            d.name
        );
    }
    let Some(mut disk) = scratch else {
        return Err(
            "demo: block: no scratch disk (a writable disk of at least 16 MiB whose \
                    first sector starts with FERRITE-SCRATCH-DISK): nothing written"
                .into(),
        );
    };
    let (name, size) = (String::from(disk.name()), disk.sector_size());
    match block::open(&name) {
        Err(e @ BlockError::AlreadyOpen { .. }) => println!("demo: block: opened twice: {e}"),
        other => {
            return Err(format!(
                "demo: block: {name} opened twice: {:?}",
                other.err()
            ))
        }
    }
    let refused = [
        disk.write(WINDOW.0, &[0; 100]).err(),
        disk.read(disk.sectors(), &mut vec![0; size as usize]).err(),
    ];
    for e in refused {
        match e {
            Some(e) if e.errno() == "EINVAL" => println!("demo: block: bad request refused: {e}"),
            other => {
                return Err(format!(
                    "demo: block: a bad request gave {other:?}, not EINVAL"
                ))
            }
        }
    }
    let mut before = vec![0u8; (WINDOW.1 * size as u64) as usize];
    disk.read(WINDOW.0, &mut before).map_err(err)?;
    for (first, sectors) in WRITES {
        disk.write(first, &pattern(size, first, sectors))
            .map_err(err)?;
    }
    disk.flush().map_err(err)?;
    let mut after = vec![0u8; before.len()];
    disk.read(WINDOW.0, &mut after).map_err(err)?;
    let sector_len = size as usize;
    for (i, (now, was)) in after
        .chunks(sector_len)
        .zip(before.chunks(sector_len))
        .enumerate()
    {
        let s = WINDOW.0 + i as u64;
        let written = WRITES.iter().any(|&(f, n)| (f..f + n).contains(&s));
        let want = if written {
            pattern(size, s, 1)
        } else {
            Vec::from(was)
        };
        if now != want.as_slice() {
            return Err(format!(
                "demo: block: {name}: sector {s} reads back wrong ({})",
                if written {
                    "not what was written"
                } else {
                    "changed, though not written"
                }
            ));
        }
    }
    let total: u64 = WRITES.iter().map(|&(_, n)| n).sum();
    println!(
        "demo: block: {name}: wrote {total} sectors in {} writes, flushed, read them back: ok",
        WRITES.len()
    );
    Ok(())
}
