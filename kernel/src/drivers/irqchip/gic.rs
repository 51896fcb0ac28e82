//! The Arm Generic Interrupt Controller, versions 2 and 3 (IHI 0048 and IHI 0069): the
//! distributor (GICD) routes shared peripheral interrupts (SPIs, IDs 32-1019) to this CPU; the
//! per-CPU interrupts (PPIs 16-31, the timer's among them) are set in GICv2's banked distributor
//! registers or GICv3's redistributor (GICR); the CPU interface acknowledges and ends them
//! (GICv2: memory-mapped GICC; GICv3: system registers, through the arch layer). Every interrupt
//! is group 1 (non-secure), priority 0xa0, routed to the boot CPU. Owns the registers; must
//! never run a handler.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;

use crate::arch::aarch64::irq::gicv3;
use crate::irq::IrqChip;
use crate::machine::{Gic, Trigger};
use crate::mm::ioremap::{ioremap, IoMem};

// Distributor registers (both versions).
const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IGROUPR: u64 = 0x080;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ICPENDR: u64 = 0x280;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_ICFGR: u64 = 0xc00;
const GICD_IROUTER: u64 = 0x6000;
// GICv2 CPU interface.
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_BPR: u64 = 0x08;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;
// GICv3 redistributor: the RD frame, then the SGI frame 64 KiB above it.
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_FRAME: u64 = 0x2_0000;
const GICR_SGI: u64 = 0x1_0000;

const PRIORITY: u32 = 0xa0;
/// IDs at and above this are special (1020-1023: none pending, spurious).
const SPECIAL: u32 = 1020;

fn map(g: &Gic, index: usize, what: &str) -> Result<IoMem, String> {
    let r = g
        .regs
        .get(index)
        .ok_or_else(|| format!("the GIC node has no {what} registers (reg entry {index})"))?;
    ioremap(r.base, r.size).map_err(|e| format!("ioremap of the GIC's {what}: {e}"))
}

/// Reads a register once, catching the external abort of an address where nothing answers (a
/// device tree that describes a controller this machine does not have): `Err` says so instead
/// of a crash.
fn probe_read(io: &IoMem, offset: u64, what: &str) -> Result<u32, String> {
    let mut value = 0;
    match crate::arch::aarch64::exception::catch_exception(|| value = io.read32(offset)) {
        None => Ok(value),
        Some(_) => Err(format!(
            "nothing answers at the GIC's {what} ({:#x}): the device tree describes a controller this machine does not have",
            io.phys().as_u64() + offset
        )),
    }
}

/// The architecture version a GIC's peripheral ID register 2 gives (bits 7:4).
fn arch_rev(pidr2: u32) -> u32 {
    (pidr2 >> 4) & 0xf
}

/// Spins until `done`, at most a generous number of reads, saying so if the GIC never answers.
fn wait(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    for _ in 0..1_000_000 {
        if done() {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(format!("the GIC did not finish {what}"))
}

/// The distributor's common setup: every SPI disabled, not pending, at `PRIORITY`, level
/// triggered; returns the number of interrupt IDs it implements.
fn distributor_defaults(d: &IoMem) -> u32 {
    let lines = ((d.read32(GICD_TYPER) & 0x1f) + 1) * 32;
    let lines = lines.min(SPECIAL);
    for n in (32..lines).step_by(32) {
        d.write32(GICD_ICENABLER + n as u64 / 8, !0);
        d.write32(GICD_ICPENDR + n as u64 / 8, !0);
    }
    for n in (32..lines).step_by(4) {
        d.write32(GICD_IPRIORITYR + n as u64, PRIORITY * 0x0101_0101);
    }
    for n in (32..lines).step_by(16) {
        d.write32(GICD_ICFGR + n as u64 / 4, 0);
    }
    lines
}

/// Sets a line's trigger in an ICFGR block (bit 2n+1 of each 2-bit field: edge).
fn set_trigger(regs: &IoMem, icfgr: u64, hwirq: u32, trigger: Trigger) {
    let reg = icfgr + (hwirq as u64 / 16) * 4;
    let bit = 1 << ((hwirq % 16) * 2 + 1);
    let v = regs.read32(reg);
    regs.write32(
        reg,
        match trigger {
            Trigger::Edge => v | bit,
            Trigger::Level => v & !bit,
        },
    );
}

pub struct GicV2 {
    dist: IoMem,
    cpu: IoMem,
    lines: u32,
}

impl GicV2 {
    pub fn new(g: &Gic) -> Result<GicV2, String> {
        let dist = map(g, 0, "distributor")?;
        let cpu = map(g, 1, "CPU interface")?;
        // Both parts answer, and the distributor says it is a GICv1 or v2.
        let rev = arch_rev(probe_read(&dist, 0xfe8, "distributor")?);
        probe_read(&cpu, 0xfc, "CPU interface")?;
        if !(rev == 1 || rev == 2) {
            return Err(format!(
                "the GIC distributor says architecture version {rev}, not 2"
            ));
        }
        dist.write32(GICD_CTLR, 0);
        let lines = distributor_defaults(&dist);
        // SGIs and PPIs: banked per CPU.
        dist.write32(GICD_ICENABLER, !0);
        dist.write32(GICD_ICPENDR, !0);
        for n in (0..32).step_by(4) {
            dist.write32(GICD_IPRIORITYR + n, PRIORITY * 0x0101_0101);
        }
        // Every SPI to CPU 0 (the only one running).
        for n in (32..lines).step_by(4) {
            dist.write32(GICD_ITARGETSR + n as u64, 0x0101_0101);
        }
        dist.write32(GICD_CTLR, 1);
        cpu.write32(GICC_PMR, 0xf0);
        cpu.write32(GICC_BPR, 0);
        cpu.write32(GICC_CTLR, 1);
        Ok(GicV2 { dist, cpu, lines })
    }
}

impl IrqChip for GicV2 {
    fn name(&self) -> &'static str {
        "GICv2"
    }

    fn map(&self, irq: &crate::machine::Irq) -> Option<u32> {
        // The GIC is the machine's only controller: every interrupt goes to it.
        Some(irq.hwirq)
    }

    fn lines(&self) -> u32 {
        self.lines
    }

    fn enable(&self, hwirq: u32, trigger: Trigger) {
        // SGI and PPI triggers are fixed or implementation defined: only SPIs are configured.
        if hwirq >= 32 {
            set_trigger(&self.dist, GICD_ICFGR, hwirq, trigger);
        }
        self.dist
            .write32(GICD_ISENABLER + (hwirq as u64 / 32) * 4, 1 << (hwirq % 32));
    }

    fn disable(&self, hwirq: u32) {
        self.dist
            .write32(GICD_ICENABLER + (hwirq as u64 / 32) * 4, 1 << (hwirq % 32));
    }

    fn acknowledge(&self) -> Option<u32> {
        let iar = self.cpu.read32(GICC_IAR);
        let id = iar & 0x3ff;
        (id < SPECIAL).then_some(iar)
    }

    fn hwirq_of(&self, ack: u32) -> u32 {
        ack & 0x3ff
    }

    fn end(&self, ack: u32) {
        self.cpu.write32(GICC_EOIR, ack);
    }
}

pub struct GicV3 {
    dist: IoMem,
    /// This CPU's redistributor: its RD frame, then its SGI frame.
    redist: IoMem,
    rd: u64,
    lines: u32,
}

impl GicV3 {
    pub fn new(g: &Gic) -> Result<GicV3, String> {
        if !gicv3::enable_system_registers() {
            return Err("GICv3 without a usable system-register CPU interface".into());
        }
        let dist = map(g, 0, "distributor")?;
        let redist = map(g, 1, "redistributors")?;
        let rev = arch_rev(probe_read(&dist, 0xffe8, "distributor")?);
        probe_read(&redist, GICR_TYPER, "redistributors")?;
        if !(rev == 3 || rev == 4) {
            return Err(format!(
                "the GIC distributor says architecture version {rev}, not 3 or 4"
            ));
        }
        // Disabled, then affinity routing (ARE) with group 1 enabled.
        dist.write32(GICD_CTLR, 0);
        wait("disabling the distributor", || {
            dist.read32(GICD_CTLR) & (1 << 31) == 0
        })?;
        let lines = distributor_defaults(&dist);
        for n in (32..lines).step_by(32) {
            dist.write32(GICD_IGROUPR + n as u64 / 8, !0);
        }
        dist.write32(GICD_CTLR, (1 << 4) | 0b11);
        wait("enabling the distributor", || {
            dist.read32(GICD_CTLR) & (1 << 31) == 0
        })?;
        let affinity = gicv3::affinity();
        for n in 32..lines {
            let at = GICD_IROUTER + n as u64 * 8;
            dist.write32(at, affinity as u32);
            dist.write32(at + 4, (affinity >> 32) as u32);
        }
        // This CPU's redistributor: the frame whose GICR_TYPER names its affinity.
        let mut rd = None;
        let mut frame = 0;
        while frame + GICR_FRAME <= redist.size() {
            let typer_hi = redist.read32(frame + GICR_TYPER + 4) as u64;
            if typer_hi == affinity {
                rd = Some(frame);
                break;
            }
            if redist.read32(frame + GICR_TYPER) & (1 << 4) != 0 {
                break; // GICR_TYPER.Last
            }
            frame += GICR_FRAME;
        }
        let rd = rd.ok_or_else(|| {
            format!("no GICv3 redistributor for this CPU (affinity {affinity:#x})")
        })?;
        // Awake (ProcessorSleep clear, then ChildrenAsleep clears).
        let waker = redist.read32(rd + GICR_WAKER);
        redist.write32(rd + GICR_WAKER, waker & !(1 << 1));
        wait("waking the redistributor", || {
            redist.read32(rd + GICR_WAKER) & (1 << 2) == 0
        })?;
        let sgi = rd + GICR_SGI;
        redist.write32(sgi + GICD_IGROUPR, !0);
        redist.write32(sgi + GICD_ICENABLER, !0);
        redist.write32(sgi + GICD_ICPENDR, !0);
        for n in (0..32).step_by(4) {
            redist.write32(sgi + GICD_IPRIORITYR + n, PRIORITY * 0x0101_0101);
        }
        gicv3::set_priority_mask(0xf0);
        gicv3::enable_group1();
        Ok(GicV3 {
            dist,
            redist,
            rd,
            lines,
        })
    }
}

impl IrqChip for GicV3 {
    fn name(&self) -> &'static str {
        "GICv3"
    }

    fn map(&self, irq: &crate::machine::Irq) -> Option<u32> {
        // The GIC is the machine's only controller: every interrupt goes to it.
        Some(irq.hwirq)
    }

    fn lines(&self) -> u32 {
        self.lines
    }

    fn enable(&self, hwirq: u32, trigger: Trigger) {
        let bit = 1 << (hwirq % 32);
        if hwirq < 32 {
            let sgi = self.rd + GICR_SGI;
            if hwirq >= 16 {
                set_trigger(&self.redist, sgi + GICD_ICFGR, hwirq, trigger);
            }
            self.redist.write32(sgi + GICD_ISENABLER, bit);
        } else {
            set_trigger(&self.dist, GICD_ICFGR, hwirq, trigger);
            self.dist
                .write32(GICD_ISENABLER + (hwirq as u64 / 32) * 4, bit);
        }
    }

    fn disable(&self, hwirq: u32) {
        let bit = 1 << (hwirq % 32);
        if hwirq < 32 {
            self.redist
                .write32(self.rd + GICR_SGI + GICD_ICENABLER, bit);
        } else {
            self.dist
                .write32(GICD_ICENABLER + (hwirq as u64 / 32) * 4, bit);
        }
    }

    fn acknowledge(&self) -> Option<u32> {
        let id = gicv3::acknowledge();
        (id < SPECIAL).then_some(id)
    }

    fn hwirq_of(&self, ack: u32) -> u32 {
        ack
    }

    fn end(&self, ack: u32) {
        gicv3::end(ack);
    }
}
