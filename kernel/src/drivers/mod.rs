//! Device drivers: UARTs, virtio over virtio-mmio, and a PCI configuration-space scan. Each driver
//! owns its register block and nothing else, mapped through `ioremap` (the boot console starts on
//! an early mapping); the UARTs type theirs once, as an `Mmio<R>` (`regs`).

#[cfg(target_os = "none")]
pub mod irqchip;
pub mod pci;
pub mod regs;
pub mod uart;
pub mod virtio;
