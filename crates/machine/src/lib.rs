//! The machine description: what the device tree says about RAM, reservations, DMA reach, the
//! console, virtio devices, PCIe host bridges (ECAM), PSCI, CPUs, the interrupt controller and
//! the command line.
//!
//! Owns the interpretation of the tree (as Linux interprets it: zero-sized banks skipped,
//! overlapping banks merged, reservations clipped to RAM, addresses translated through `ranges`).
//! Must never touch hardware or panic on any input: the same code runs in the kernel and in
//! `scripts/dtb-info` on the host. Names no module of the crate but `addr` (the zone limits
//! `dtb-info` prints come from its caller), and holds no unsafe code, in any of its files.
//!
//! A crate of its own, depending only on `ferrite-addr`: naming the memory manager or the kernel
//! is a build error.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use ferrite_addr as addr;

pub mod describe;
pub mod fdt_check;
pub mod json;
pub mod report;
pub mod tree;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{PhysAddr, PhysRange};
pub use fdt_check::FdtDefect;
pub use tree::DeviceTree;

/// Why a tree cannot be described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineError {
    /// The blob itself is malformed.
    Malformed(FdtDefect),
    /// The blob is well formed but a property cannot be read as the specification says.
    BadProperty {
        path: String,
        property: &'static str,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_past_the_limit_is_clipped() {
        let mut m = Machine {
            memory: alloc::vec![
                PhysRange::new(PhysAddr::new(0x4000_0000), 0x4000_0000),
                PhysRange::new(PhysAddr::new((1 << 44) - 0x1000), 0x2000),
                PhysRange::new(PhysAddr::new(1 << 47), 0x1000),
            ],
            ..Machine::default()
        };
        let dropped = m.clip_memory(1 << 44);
        assert_eq!(m.memory.len(), 2);
        assert_eq!(
            m.memory[1],
            PhysRange::new(PhysAddr::new((1 << 44) - 0x1000), 0x1000)
        );
        assert_eq!(
            dropped,
            alloc::vec![
                PhysRange::new(PhysAddr::new(1 << 44), 0x1000),
                PhysRange::new(PhysAddr::new(1 << 47), 0x1000),
            ]
        );
    }
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineError::Malformed(d) => write!(f, "malformed device tree: {d}"),
            MachineError::BadProperty {
                path,
                property,
                reason,
            } => {
                write!(f, "malformed device tree: {property} of {path}: {reason}")
            }
        }
    }
}

impl From<FdtDefect> for MachineError {
    fn from(d: FdtDefect) -> Self {
        MachineError::Malformed(d)
    }
}

/// A `/reserved-memory` child, after resolution and clipping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedRegion {
    pub name: String,
    pub range: PhysRange,
    /// Not to be mapped at all (left out of the linear map).
    pub no_map: bool,
    /// May be used by the page allocator until its owner claims it (CMA).
    pub reusable: bool,
    /// Placed by us from `size`/`alignment`/`alloc-ranges`, not fixed by `reg`.
    pub dynamic: bool,
}

/// A dynamic reservation that could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedReservation {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// ARM PrimeCell PL011 (QEMU virt, Raspberry Pi uart0).
    Pl011,
    /// BCM2835 auxiliary mini-UART (Raspberry Pi uart1).
    MiniUart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uart {
    pub kind: UartKind,
    pub compatible: String,
    pub path: String,
    pub base: PhysAddr,
    pub size: u64,
    /// Reference clock in Hz, when the tree gives a fixed one.
    pub clock_hz: Option<u32>,
    /// Chosen through `/chosen/stdout-path` (rather than as the first UART found).
    pub from_stdout_path: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioMmio {
    pub base: PhysAddr,
    pub size: u64,
    /// The GIC interrupt ID (SPI n is 32 + n), if the node has an interrupt.
    pub irq: Option<u32>,
    pub dma_coherent: bool,
    /// Its DMA windows (empty: bus addresses are CPU addresses).
    pub dma_ranges: Vec<crate::addr::DmaRange>,
}

/// A PCIe host bridge whose configuration space is memory-mapped (ECAM, Linux's
/// `pci-host-ecam-generic`: QEMU `virt` has one). Plain CPU addresses; Ferrite drives no PCI
/// device, but it can say that one is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciEcam {
    /// CPU address of the configuration space: bus `bus_start` at offset 0, 1 MiB a bus.
    pub base: u64,
    pub size: u64,
    pub bus_start: u8,
    pub bus_end: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciMethod {
    Hvc,
    Smc,
}

impl PsciMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PsciMethod::Hvc => "hvc",
            PsciMethod::Smc => "smc",
        }
    }
}

/// How an interrupt line signals (Linux's `IRQ_TYPE_EDGE_*` and `IRQ_TYPE_LEVEL_*`, named as
/// `/proc/interrupts` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Edge,
    Level,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Edge => "Edge",
            Trigger::Level => "Level",
        }
    }
}

/// One interrupt, decoded from a node's specifier by the rules of the controller it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    /// The controller's node path (`/intc@8000000`).
    pub controller: String,
    /// The number the controller knows it by: a GIC's interrupt ID (SPI n is 32 + n, PPI n is
    /// 16 + n); a BCM2836 local controller's line; a BCM2835 ARM controller's bank * 32 + line.
    pub hwirq: u32,
    pub trigger: Trigger,
}

/// The architected generic timer (`arm,armv8-timer`): its per-CPU interrupts, in the tree's
/// order (secure physical, non-secure physical, virtual, hypervisor), where the tree has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchTimer {
    pub secure_phys: Option<Irq>,
    pub phys: Option<Irq>,
    pub virt: Option<Irq>,
    pub hyp: Option<Irq>,
}

/// The Raspberry Pi 3's interrupt controllers (BCM2836/BCM2837): the per-core local controller
/// (`brcm,bcm2836-l1-intc`: the generic timer's lines, mailboxes, the GPU's summary line) and,
/// chained on it, the BCM2835 ARM controller (`brcm,bcm2836-armctrl-ic`: the peripherals'
/// lines in three banks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bcm2836Intc {
    pub local_path: String,
    pub local: PhysRange,
    pub armctrl_path: Option<String>,
    pub armctrl: Option<PhysRange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gic {
    pub compatible: String,
    pub version: u8,
    pub regs: Vec<PhysRange>,
}

/// What the kernel knows about itself that the tree cannot say: where the image and the tree
/// were loaded. Both become reservations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootRanges {
    pub image: Option<PhysRange>,
    pub dtb: Option<PhysRange>,
}

/// Where a reservation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationKind {
    MemReserve,
    ReservedMemory { no_map: bool },
    Initrd,
    Dtb,
    KernelImage,
}

impl ReservationKind {
    pub fn label(self) -> &'static str {
        match self {
            ReservationKind::MemReserve => "memreserve",
            ReservationKind::ReservedMemory { no_map: true } => "reserved-memory (no-map)",
            ReservationKind::ReservedMemory { no_map: false } => "reserved-memory",
            ReservationKind::Initrd => "initrd",
            ReservationKind::Dtb => "device tree",
            ReservationKind::KernelImage => "kernel image",
        }
    }
}

/// Everything Ferrite learns from the device tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Machine {
    pub model: String,
    pub compatible: Vec<String>,
    /// RAM banks: sorted, merged, none empty.
    pub memory: Vec<PhysRange>,
    /// `/memreserve/` entries, clipped to RAM.
    pub memreserve: Vec<PhysRange>,
    pub reserved_memory: Vec<ReservedRegion>,
    pub refused_reservations: Vec<RefusedReservation>,
    /// First CPU physical address the most restricted DMA master cannot reach.
    pub dma_limit: Option<u64>,
    pub uart: Option<Uart>,
    /// The DMA windows of devices on the console's bus (the SoC bus on a Raspberry Pi; empty
    /// where bus addresses are CPU addresses).
    pub platform_dma: Vec<crate::addr::DmaRange>,
    pub virtio_mmio: Vec<VirtioMmio>,
    /// PCIe host bridges with ECAM configuration space.
    pub pci_ecam: Vec<PciEcam>,
    pub psci_method: Option<PsciMethod>,
    pub cpus: usize,
    /// `enable-method` of the CPUs (`psci`, `spin-table`), when they agree.
    pub cpu_enable_method: Option<String>,
    pub gic: Option<Gic>,
    /// The Raspberry Pi 3's controllers, when the tree has them (and no GIC).
    pub bcm2836_intc: Option<Bcm2836Intc>,
    /// The generic timer's interrupts (absent when the tree has no `arm,armv8-timer` node).
    pub timer: Option<ArchTimer>,
    pub bootargs: String,
    pub initrd: Option<PhysRange>,
    pub boot: BootRanges,
    /// Oddities handled the way Linux handles them, one line each.
    pub warnings: Vec<String>,
}

impl Machine {
    /// Validates and describes a blob.
    pub fn from_blob(blob: &[u8], boot: BootRanges) -> Result<Machine, MachineError> {
        let tree = DeviceTree::parse(blob)?;
        describe::describe(&tree, boot)
    }

    /// Total bytes of RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.memory.iter().map(|r| r.size).sum()
    }

    /// Every range that is not free RAM, with its origin, sorted by base.
    pub fn reservations(&self) -> Vec<(PhysRange, ReservationKind)> {
        let mut all: Vec<(PhysRange, ReservationKind)> = Vec::new();
        all.extend(
            self.memreserve
                .iter()
                .map(|r| (*r, ReservationKind::MemReserve)),
        );
        all.extend(self.reserved_memory.iter().map(|r| {
            (
                r.range,
                ReservationKind::ReservedMemory { no_map: r.no_map },
            )
        }));
        all.extend(self.initrd.iter().map(|r| (*r, ReservationKind::Initrd)));
        all.extend(self.boot.dtb.iter().map(|r| (*r, ReservationKind::Dtb)));
        all.extend(
            self.boot
                .image
                .iter()
                .map(|r| (*r, ReservationKind::KernelImage)),
        );
        all.sort_by_key(|(r, _)| (r.base, r.size));
        all
    }

    /// Bytes of RAM covered by at least one reservation (overlaps counted once).
    pub fn reserved_bytes(&self) -> u64 {
        let mut ranges: Vec<PhysRange> = Vec::new();
        for (r, _) in self.reservations() {
            for bank in &self.memory {
                if let Some(part) = bank.intersect(&r) {
                    ranges.push(part);
                }
            }
        }
        crate::addr::normalize(&mut ranges);
        ranges.iter().map(|r| r.size).sum()
    }

    /// Drops RAM at or above `limit` (what the CPU can address, or the linear map can hold), as
    /// Linux's `arm64_memblock_init` does; returns the parts dropped, for a warning each.
    pub fn clip_memory(&mut self, limit: u64) -> Vec<PhysRange> {
        let mut dropped = Vec::new();
        let mut kept = Vec::new();
        for bank in &self.memory {
            if bank.end() <= limit as u128 {
                kept.push(*bank);
                continue;
            }
            if bank.base.as_u64() < limit {
                kept.push(PhysRange::new(bank.base, limit - bank.base.as_u64()));
                dropped.push(PhysRange::new(
                    PhysAddr::new(limit),
                    (bank.end() - limit as u128) as u64,
                ));
            } else {
                dropped.push(*bank);
            }
        }
        self.memory = kept;
        dropped
    }

    /// The bank holding `addr`, if it is RAM.
    pub fn bank_of(&self, addr: PhysAddr) -> Option<PhysRange> {
        self.memory.iter().copied().find(|b| b.contains(addr))
    }
}
