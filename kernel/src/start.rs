//! The boot order (Linux's `init/main.c`): from the entry code to the application. The entry code
//! (arch/aarch64/entry.S) arrives in `kernel_main` on the boot core at EL1, in the high half with
//! the MMU on (boot tables), BSS zeroed, relocations applied; this brings up the CPU services,
//! the console, the machine description, the linear map, the page allocator, the heap and swap,
//! in that order, then runs the application `run=` names and powers off with its status. Owns the
//! order and the reasons it stops; every mechanism is another module's. Kernel only.

use crate::addr::PhysRange;
use crate::arch::aarch64::{boot, cpu, mmu, power};
use crate::cmdline::BootOptions;
use crate::kernel::{self, BootInfo, Kernel};
use crate::machine::{describe, report, BootRanges, DeviceTree};
use crate::mm::layout;
use crate::mm::pgtable::Attrs;
use crate::{console, drivers, logger, mm, runtime};
use log::{error, info, warn};

fn fail(reason: core::fmt::Arguments) -> ! {
    error!("{reason}");
    error!("cannot continue; stopping");
    power::shutdown(power::ExitStatus::Failure)
}

/// Stops before the console exists, leaving a sign where one can be left: on the console if
/// the UART could be reached after all, else through semihosting where it works.
fn early_stop(reason: core::fmt::Arguments) -> ! {
    if console::base().is_some() {
        console::emergency_print(format_args!("Ferrite stops at boot: {reason}\n"));
    } else {
        console::emergency_print(format_args!(
            "Ferrite stops before its console is up: {reason}\n"
        ));
    }
    power::shutdown(power::ExitStatus::Failure)
}

/// The part of a tree too large to parse whole that the boot needs to say so: `/chosen`,
/// `/aliases`, `/psci` and the nodes on the console's path.
fn console_part_of(blob: &[u8]) -> Option<DeviceTree<'_>> {
    let top =
        |names: &[&str]| names.len() == 1 && matches!(names[0], "chosen" | "aliases" | "psci");
    let small = DeviceTree::parse_filtered(blob, &mut |names| top(names)).ok()?;
    let target = describe::stdout_path(&small)?;
    let on_path = |names: &[&str]| {
        let mut segments = target.split('/').filter(|c| !c.is_empty());
        names.iter().all(|n| segments.next() == Some(n))
    };
    DeviceTree::parse_filtered(blob, &mut |names| top(names) || on_path(names)).ok()
}

/// Brings up the console `tree` names, if it names one Ferrite drives.
fn console_from(part: &DeviceTree) {
    if let Ok(Some(uart)) = describe::find_uart(part) {
        if let Ok(va) = mmu::early_ioremap(uart.base, uart.size, Attrs::DEVICE) {
            // SAFETY: the device tree names this UART as ours, mapped as device memory at `va`
            // until the kernel stops, just after this.
            console::init(unsafe { drivers::uart::SerialPort::new(&uart, va) });
        }
    }
}

#[no_mangle]
pub fn kernel_main(boot: BootInfo) -> ! {
    // The CPU services mm calls through its port, before anything allocates.
    mm::cpu::install(&crate::arch::aarch64::CPU_OPS);
    mm::early_heap::init();

    let Some(blob) = boot::device_tree_blob(boot.dtb) else {
        early_stop(format_args!(
            "no device tree at {} (x0), so no console and no RAM are known",
            boot.dtb
        ))
    };
    // A tree the boot heap cannot hold is refused before it is parsed, and said on the console
    // found in its small part that names it.
    let census = match DeviceTree::census(blob) {
        Ok(census) => census,
        Err(e) => early_stop(format_args!("malformed device tree at {}: {e}", boot.dtb)),
    };
    let (nodes, props) = (census.nodes, census.props);
    let (used, total) = mm::early_heap::usage();
    let need = DeviceTree::heap_estimate(nodes, props);
    if need > total - used {
        if let Some(part) = console_part_of(blob) {
            // The way out and the console, from the part of the tree that names them.
            let bootargs = part
                .find("/chosen")
                .and_then(|c| part.prop(c, "bootargs"))
                .unwrap_or(&[]);
            let semihosting = BootOptions::parse_bytes(bootargs).semihosting;
            let _ = power::configure(semihosting, describe::psci_method(&part));
            console_from(&part);
        }
        early_stop(format_args!(
            "the device tree at {} is too large for the boot heap: {nodes} nodes and {props} properties need about {} KiB, and the boot heap has {} KiB free",
            boot.dtb,
            need.div_ceil(1024),
            (total - used) / 1024
        ))
    }
    let tree = census.parse();
    // Raw bytes: one that is not UTF-8 spoils only its own word (and is reported below).
    let bootargs = tree
        .find("/chosen")
        .and_then(|c| tree.prop(c, "bootargs"))
        .unwrap_or(&[]);
    let options = BootOptions::parse_bytes(bootargs);
    // Before the console: its absence is reported through semihosting if asked for.
    let (exit, semihosting_missing) =
        power::configure(options.semihosting, describe::psci_method(&tree));
    let uart = match describe::find_uart(&tree) {
        Ok(Some(uart)) => uart,
        Ok(None) => early_stop(format_args!(
            "the device tree names no console UART (no enabled arm,pl011 or brcm,bcm2835-aux-uart node)"
        )),
        Err(e) => early_stop(format_args!("the console UART is unusable: {e}")),
    };
    let uart_va = match mmu::early_ioremap(uart.base, uart.size, Attrs::DEVICE) {
        Ok(va) => va,
        Err(e) => {
            // The UART is known: say why on it, through the identity map while it lasts.
            if let Ok(va) = mmu::identity_map_device(uart.base, uart.size) {
                // SAFETY: the device tree names this UART as ours; it is mapped as device
                // memory at `va` until the kernel stops, just below.
                console::init(unsafe { drivers::uart::SerialPort::new(&uart, va) });
            }
            early_stop(format_args!(
                "cannot map the console UART at {}: {e}",
                uart.base
            ))
        }
    };
    // SAFETY: the device tree names this UART as ours, it is mapped as device memory at
    // `uart_va` for good, and nothing else drives it.
    console::init(unsafe { drivers::uart::SerialPort::new(&uart, uart_va) });
    logger::init(options.log_level);

    info!(
        "Ferrite {} on {} (MIDR {:#x}), entered at EL{}, running at EL{}",
        env!("CARGO_PKG_VERSION"),
        cpu::core_name(),
        cpu::midr(),
        boot.entry_el,
        cpu::current_el()
    );
    info!(
        "Image at {} running at {:#x}, device tree at {}",
        boot.image,
        boot.kimage.start(),
        boot.dtb
    );
    if semihosting_missing {
        warn!(
            "semihosting on the command line but QEMU was started without -semihosting; {}",
            match exit {
                power::Exit::Psci => "leaving through PSCI (the exit status is lost)",
                _ => "halting at the end (the exit status is lost)",
            }
        );
    }

    let ranges = BootRanges {
        image: Some(boot.image),
        dtb: Some(PhysRange::new(boot.dtb, blob.len() as u64)),
    };
    let mut machine = match describe::describe(&tree, ranges) {
        Ok(m) => m,
        Err(e) => fail(format_args!("{e}")),
    };
    for lost in machine.clip_memory(layout::linear_reach(mmu::pa_bits())) {
        warn!("RAM {lost} is beyond what this CPU or the linear map can address; not used");
    }
    for line in report::lines(&machine) {
        info!("{line}");
    }
    for (word, why) in &options.rejected {
        warn!("command line: ignoring '{word}': {why}");
    }
    if machine.memory.is_empty() {
        fail(format_args!("the device tree describes no RAM"));
    }
    if machine
        .bank_of(boot.image.base)
        .is_none_or(|b| !b.covers(&boot.image))
    {
        fail(format_args!(
            "the kernel image {} is not inside a RAM bank",
            boot.image
        ));
    }
    // The tree lives in the boot window that the linear map replaces.
    drop(tree);
    if let Err(e) = mmu::map_linear(&machine) {
        fail(format_args!("cannot build the linear map: {e}"));
    }
    let blocks = mmu::linear_map_stats();
    info!(
        "Linear map: {} x 1 GiB, {} x 2 MiB, {} x 4 KiB",
        blocks[1], blocks[2], blocks[3]
    );
    if let Err(e) = mmu::retire_identity_map() {
        fail(format_args!("cannot drop the identity map: {e}"));
    }
    match mm::init::init(&machine, options.zone_dma_bits, options.debug_pagealloc) {
        Ok(r) => {
            info!(
                "Page allocator: {} KiB of RAM, {} KiB reserved, {} KiB of page metadata ({} bytes a page, {} section(s)){}",
                r.ram >> 10,
                r.reserved >> 10,
                r.metadata_bytes >> 10,
                core::mem::size_of::<mm::page::Page>(),
                r.sections,
                if options.debug_pagealloc { ", debug_pagealloc on" } else { "" }
            );
            mm::heap::init(options.slub_debug);
            mm::ioremap::init(&machine.memory);
            // The console moves from its boot mapping to ioremap's, and the boot mappings go.
            match mm::ioremap::ioremap(uart.base, uart.size).map(console::rebase) {
                Ok(Ok(())) => mmu::early_iounmap_all(),
                Ok(Err(io)) => warn!("console stays on its boot mapping: {io:?} refused"),
                Err(e) => warn!("console stays on its boot mapping: {e}"),
            }
            if let Some(lines) = mm::init::PAGES.snapshot().map(|s| s.zone_ranges()) {
                for line in lines {
                    info!("{line}");
                }
            }
        }
        Err(e) => fail(format_args!("cannot start the page allocator: {e}")),
    }
    for line in layout::describe(&boot.kimage, machine.ram_bytes()) {
        info!("{line}");
    }
    info!(
        "MMU: 4 KiB pages, 48-bit VA, {}-bit PA; hardware access flag: {}; {} boot table pages in use",
        mmu::pa_bits(),
        mmu::hardware_access_flag(),
        mmu::BootPool::pages_used()
    );

    let kernel = kernel::publish(Kernel {
        boot,
        machine,
        options,
    });
    if kernel.options.lockdep {
        crate::lockdep::enable();
        info!(
            "lockdep: checking the order of the kernel's locks and their use in interrupt context"
        );
    }
    // Interrupts: the controller, then the timer on it. Without either the kernel runs as before
    // (polling, no timer interrupts) and says why.
    match crate::drivers::irqchip::probe(&kernel.machine).and_then(crate::irq::install) {
        Ok(()) => {
            info!(
                "IRQ: {} with {} lines, interrupt stack of {} KiB",
                crate::irq::chip_name().unwrap_or("?"),
                crate::irq::lines(),
                crate::irq::IRQ_STACK_SIZE >> 10
            );
            match crate::time::init(&kernel.machine) {
                Ok(()) => info!("Timer: arch_timer (virtual timer), one-shot deadlines, no tick"),
                Err(e) => warn!("Timer: {e}; sleeps watch the counter instead"),
            }
            match crate::sched::init() {
                Ok(()) => info!(
                    "Threads: the boot thread runs the job, idle waits in WFI; {} KiB stacks, {} ms slices",
                    crate::sched::STACK_SIZE >> 10,
                    crate::sched::TIME_SLICE.as_millis()
                ),
                Err(e) => warn!("Threads: {e}; the job runs alone"),
            }
        }
        Err(e) => warn!("IRQ: {e}; running without interrupts"),
    }
    crate::mm::vmscan::set_swappiness(kernel.options.swappiness);
    // Swap needs a virtio-blk disk; a Raspberry Pi has none (its SD card is not ours to swap
    // on). After publishing: the driver finds its devices through the published machine.
    crate::swap_setup::swapon(kernel);
    // Background reclaim, once there are threads (without them allocations reclaim directly).
    if crate::sched::started() {
        match crate::kswapd::start() {
            Ok(()) => info!(
                "kswapd0: background reclaim from the low to the high watermark; vm.swappiness = {}",
                kernel.options.swappiness
            ),
            Err(e) => warn!("kswapd0: {e}; allocations reclaim directly"),
        }
    }
    let Some(job) = runtime::chosen(&kernel.options.job, kernel.options.job_named) else {
        if kernel.options.job.is_empty() {
            fail(format_args!(
                "run= names no job (one of: {})",
                runtime::names()
            ));
        }
        fail(format_args!(
            "no job named '{}' (run= one of: {})",
            kernel.options.job,
            runtime::names()
        ));
    };
    let (errors, warnings) = runtime::check_options(job, &kernel.options.job_params);
    for w in &warnings {
        warn!("command line: {w}");
    }
    if !errors.is_empty() {
        for e in &errors {
            error!("command line: {e}");
        }
        fail(format_args!(
            "job '{}' not started: {} bad option(s) on the command line",
            job.name,
            errors.len()
        ));
    }
    let ticks = crate::arch::aarch64::timer::ticks() - kernel.boot.entry_ticks;
    let ns = ticks as u128 * 1_000_000_000 / crate::arch::aarch64::timer::frequency() as u128;
    // Under QEMU -icount shift=0 a nanosecond is an instruction: `make bench` reads this.
    info!("Boot: {ns} ns from the first instruction to the job");
    info!("Running job '{}': {}", job.name, job.about);
    runtime::set_current(job);
    // Interrupts are taken for the job's whole life (masked again for the shutdown).
    crate::arch::aarch64::irq::local_irq_enable();
    let status = runtime::run(job, kernel);
    crate::arch::aarch64::irq::local_irq_disable();
    info!("Job '{}' finished: {:?}", job.name, status);
    power::shutdown(match status {
        runtime::JobStatus::Success => power::ExitStatus::Success,
        runtime::JobStatus::Failure => power::ExitStatus::Failure,
    })
}
