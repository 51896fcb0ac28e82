//! PCI configuration space through ECAM (the machine description's `pci_ecam`, Linux's
//! `pci-host-ecam-generic`): enough to list the functions on a host bridge's first bus. Ferrite
//! drives no PCI device; the list lets it say that a disk it cannot use is attached (QEMU's
//! `-drive if=virtio` makes a virtio-blk PCI device on `virt`, not a virtio-mmio one).
//! Owns reading configuration headers (vendor, device, header type) through an `ioremap_np`
//! mapping held only while it scans; must never write configuration space. The scan itself is
//! portable (the host tests run it over a fake configuration space).
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

/// The virtio vendor ID (Red Hat, Inc.).
pub const VENDOR_VIRTIO: u16 = 0x1af4;
/// virtio-blk's PCI device IDs: transitional (legacy-capable) and modern (0x1040 + device type 2).
pub const VIRTIO_BLK_DEVICE_IDS: [u16; 2] = [0x1001, 0x1042];

/// Configuration space a bus takes in ECAM: 32 devices of 8 functions of 4 KiB.
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// One function found on a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciFunction {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub vendor: u16,
    pub device_id: u16,
}

impl PciFunction {
    pub fn is_virtio_blk(&self) -> bool {
        self.vendor == VENDOR_VIRTIO && VIRTIO_BLK_DEVICE_IDS.contains(&self.device_id)
    }
}

/// As Linux names it: `0000:00:02.0` (domain 0).
impl fmt::Display for PciFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0000:{:02x}:{:02x}.{}",
            self.bus, self.device, self.function
        )
    }
}

/// The functions on bus `bus`, whose configuration space `read32(offset)` reads (offsets from
/// the bus's start in ECAM layout). A device's other functions are looked at only when its
/// function 0 says it has several (header type bit 7), as Linux's scan does.
pub fn scan_bus(bus: u8, read32: impl Fn(u64) -> u32) -> Vec<PciFunction> {
    let mut found = Vec::new();
    for device in 0..32u8 {
        for function in 0..8u8 {
            let base = (device as u64) << 15 | (function as u64) << 12;
            let id = read32(base);
            let vendor = id as u16;
            if vendor == 0xffff || vendor == 0 {
                if function == 0 {
                    break;
                }
                continue;
            }
            found.push(PciFunction {
                bus,
                device,
                function,
                vendor,
                device_id: (id >> 16) as u16,
            });
            let header_type = (read32(base + 0x0c) >> 16) as u8;
            if function == 0 && header_type & 0x80 == 0 {
                break;
            }
        }
    }
    found
}

/// The virtio-blk functions on the first bus of every ECAM host bridge the machine has (mapped
/// for the scan, unmapped after). A bridge whose space cannot be mapped is reported and skipped.
#[cfg(target_os = "none")]
pub fn virtio_blk_functions(machine: &crate::machine::Machine) -> Vec<PciFunction> {
    let mut disks = Vec::new();
    for ecam in &machine.pci_ecam {
        if ecam.size < ECAM_BUS_SIZE {
            continue;
        }
        let pa = crate::addr::PhysAddr::new(ecam.base);
        // Two buses' worth where the window has them at a 2 MiB boundary: ioremap maps that as
        // one block, where one bus (1 MiB) takes 256 page descriptors to map and unmap.
        let len = if ecam.size >= 2 * ECAM_BUS_SIZE && ecam.base.is_multiple_of(2 * ECAM_BUS_SIZE) {
            2 * ECAM_BUS_SIZE
        } else {
            ECAM_BUS_SIZE
        };
        match crate::mm::ioremap::ioremap_np(pa, len) {
            Ok(cfg) => disks.extend(
                scan_bus(ecam.bus_start, |offset| cfg.read32(offset))
                    .into_iter()
                    .filter(PciFunction::is_virtio_blk),
            ),
            Err(e) => log::warn!(
                "PCI: configuration space at {:#x} not mapped ({e}); its bus not scanned",
                ecam.base
            ),
        }
    }
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// (device, function) and (vendor, device ID, header type).
    type Function = ((u64, u64), (u16, u16, u8));

    /// A fake bus holding `functions`.
    fn bus(functions: &[Function]) -> impl Fn(u64) -> u32 {
        let map: BTreeMap<(u64, u64), (u16, u16, u8)> = functions.iter().copied().collect();
        move |offset| {
            let key = (offset >> 15, (offset >> 12) & 7);
            match (map.get(&key), offset & 0xfff) {
                (Some(&(v, d, _)), 0) => v as u32 | (d as u32) << 16,
                (Some(&(_, _, h)), 0x0c) => (h as u32) << 16,
                (Some(_), _) => 0,
                (None, _) => u32::MAX,
            }
        }
    }

    #[test]
    fn finds_virtio_disks_on_qemu_virts_first_bus() {
        // QEMU virt with -drive if=virtio: the host bridge, a transitional virtio-blk at 00:01.0,
        // a modern one at 00:02.0, a multi-function device whose function 3 is a disk.
        let read = bus(&[
            ((0, 0), (0x1b36, 0x0008, 0x00)),
            ((1, 0), (0x1af4, 0x1001, 0x00)),
            ((2, 0), (0x1af4, 0x1042, 0x00)),
            ((4, 0), (0x8086, 0x1234, 0x80)),
            ((4, 3), (0x1af4, 0x1001, 0x00)),
            // Function 1 of a single-function device is never looked at.
            ((5, 0), (0x1af4, 0x1000, 0x00)),
            ((5, 1), (0x1af4, 0x1001, 0x00)),
        ]);
        let all = scan_bus(0, read);
        assert_eq!(all.len(), 6);
        let disks: Vec<alloc::string::String> = all
            .iter()
            .filter(|f| f.is_virtio_blk())
            .map(|f| alloc::format!("{f}"))
            .collect();
        assert_eq!(disks, ["0000:00:01.0", "0000:00:02.0", "0000:00:04.3"]);
        assert!(scan_bus(0, bus(&[])).is_empty());
    }
}
