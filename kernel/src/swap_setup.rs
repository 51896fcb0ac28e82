//! Swap at boot, the kernel's glue between the command line, the block layer and mm: says when a
//! disk is attached that Ferrite cannot drive (a virtio PCI disk), has the block layer register
//! the virtio-blk disks (`vda`, `vdb`, ... in the order `swap=format:N` counts them), turns
//! `swap=` into the policy mm's swapon takes, and lends swapon the registry's disks: the one it
//! keeps is the active swap device, the others go back to the registry for their next user. Owns
//! that translation and the lines about it (no disk, `swap=off`, a `swap=format:N` that names no
//! disk); mm owns the choice among the disks, the per-disk reasons and the area, the block layer
//! (`block`) the disks. Never reads or writes a disk itself. The translation is portable
//! (host-tested); the rest is kernel only.
#![forbid(unsafe_code)]

use crate::cmdline::SwapMode;
use crate::mm::swapfile::SwapPolicy;

/// What the boot does about swap, given `swap=` and the number of disks found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// mm's swapon over the disks, with this policy.
    Swapon(SwapPolicy),
    /// No disk was found.
    NoDisk,
    /// `swap=off`.
    Off,
    /// `swap=format:N` names a disk past the `found` ones.
    NoSuchDisk { disk: usize, found: usize },
}

/// `swap=` over `disks` disks found.
pub fn plan(mode: SwapMode, disks: usize) -> Plan {
    match mode {
        _ if disks == 0 => Plan::NoDisk,
        SwapMode::Off => Plan::Off,
        SwapMode::Auto => Plan::Swapon(SwapPolicy::Existing),
        SwapMode::Format => Plan::Swapon(SwapPolicy::ExistingElseBlank),
        SwapMode::FormatDisk(n) if n < disks => Plan::Swapon(SwapPolicy::Format(n)),
        SwapMode::FormatDisk(n) => Plan::NoSuchDisk {
            disk: n,
            found: disks,
        },
    }
}

/// Boot-time swap: points out virtio PCI disks (which Ferrite does not drive), registers the
/// virtio-blk disks with the block layer and runs mm's swapon over them as `swap=` says. Called
/// once, after the kernel state is published (the drivers find their devices through it). The
/// disks swapon does not keep stay in the registry, where `block::open` finds them.
#[cfg(target_os = "none")]
pub fn swapon(kernel: &'static crate::kernel::Kernel) {
    use crate::block::DISKS;
    use log::{info, warn};

    // A disk Ferrite cannot see as one: QEMU's `-drive if=virtio` makes a PCI device on virt.
    for f in crate::drivers::pci::virtio_blk_functions(&kernel.machine) {
        warn!(
            "Swap: a virtio PCI disk is attached at PCI {f} (QEMU -drive if=virtio); Ferrite \
             drives virtio-mmio disks only: attach it with -drive if=none,id=d0,file=... \
             -device virtio-blk-device,drive=d0"
        );
    }
    // The block layer owns the disks from here on; swap borrows them to choose.
    crate::block::probe();
    match plan(kernel.options.swap, DISKS.free()) {
        Plan::Swapon(policy) => {
            DISKS.lend_to_swapon(|disks| crate::mm::swapfile::swapon(policy, disks))
        }
        Plan::NoDisk => info!("Swap: no virtio-blk disk; running without swap"),
        Plan::Off => info!("Swap: off (swap=off)"),
        Plan::NoSuchDisk { disk, found } => {
            warn!(
                "Swap: swap=format:{disk} names no disk: {found} virtio-blk disk(s) found, \
                 counted from 0; nothing formatted"
            );
            warn!("Swap: no usable swap area; running without swap");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_modes_become_policies_over_the_disks_found() {
        assert_eq!(plan(SwapMode::Auto, 2), Plan::Swapon(SwapPolicy::Existing));
        assert_eq!(
            plan(SwapMode::Format, 1),
            Plan::Swapon(SwapPolicy::ExistingElseBlank)
        );
        assert_eq!(
            plan(SwapMode::FormatDisk(1), 2),
            Plan::Swapon(SwapPolicy::Format(1))
        );
        assert_eq!(
            plan(SwapMode::FormatDisk(2), 2),
            Plan::NoSuchDisk { disk: 2, found: 2 }
        );
        assert_eq!(plan(SwapMode::Off, 3), Plan::Off);
        // No disk: that is what the boot says, whatever swap= asks.
        for mode in [
            SwapMode::Auto,
            SwapMode::Off,
            SwapMode::Format,
            SwapMode::FormatDisk(0),
        ] {
            assert_eq!(plan(mode, 0), Plan::NoDisk, "{mode:?}");
        }
    }
}
