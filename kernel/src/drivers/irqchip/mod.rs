//! Interrupt controllers, found from the device tree: the GIC (v2: QEMU virt's default, the
//! Raspberry Pi 4's GIC-400; v3 with redistributors: `-M virt,gic-version=3`) and the
//! Raspberry Pi 3's BCM2836 local controller with the BCM2835 ARM controller chained on it. Each implements
//! `irq::IrqChip`; which one runs is decided once at boot (`probe`). Owns the controllers'
//! registers; must never decide which handler an interrupt runs (kernel/src/irq.rs does).
#![forbid(unsafe_code)]

pub mod bcm2836;
pub mod gic;

use alloc::boxed::Box;

use crate::irq::IrqChip;
use crate::machine::Machine;

/// The machine's interrupt controller, set up with every line disabled; an error says why
/// there is none (the kernel then runs without interrupts).
pub fn probe(machine: &Machine) -> Result<Box<dyn IrqChip>, alloc::string::String> {
    let Some(g) = &machine.gic else {
        if let Some(b) = &machine.bcm2836_intc {
            return bcm2836::Bcm2836::new(b).map(|c| Box::new(c) as Box<dyn IrqChip>);
        }
        return Err("the device tree describes no interrupt controller Ferrite drives".into());
    };
    match g.version {
        2 => gic::GicV2::new(g).map(|c| Box::new(c) as Box<dyn IrqChip>),
        3 => gic::GicV3::new(g).map(|c| Box::new(c) as Box<dyn IrqChip>),
        v => Err(alloc::format!("GIC version {v} is not supported")),
    }
}
